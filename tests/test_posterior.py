"""Posterior: the one validator, the one new-run noise sampler, mixtures of laws, the training
domain, least-squares fits as posteriors, and no global JAX state. Fixed draws; nothing samples."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from bayescale import Domain, Posterior
from bayescale import baselines as bl
from bayescale.allocation import compute_optimal
from bayescale.errors import FitError
from bayescale.predict import predict
from conftest import chinchilla_draws, simulate_chinchilla

KAPLAN = {"N_c": np.full(300, 8.8e13), "D_c": np.full(300, 5.4e13),
          "alpha_N": np.linspace(0.07, 0.08, 300), "alpha_D": np.linspace(0.09, 0.1, 300)}


def test_importing_and_using_bayescale_leaves_jax_in_float32():
    # A user's own JAX code must not change behaviour because bayescale was imported or used;
    # bayescale's own numbers are still float64 (the law to 1e-12 of NumPy's).
    code = """
import json, numpy as np, bayescale, jax, jax.numpy as jnp
before = jax.config.jax_enable_x64
from bayescale import Posterior
from bayescale.predict import predict
p = {"E": [1.8], "A": [480.0], "B": [2100.0], "alpha": [0.35], "beta": [0.37]}
law = predict(Posterior.from_draws("chinchilla", p), N=7e10, D=1.4e12).law_draws[0, 0]
print(json.dumps({"before": before, "after": jax.config.jax_enable_x64,
                  "user": str(jnp.ones(2).dtype), "law": float(law)}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=300, check=True).stdout
    got = json.loads(out.strip().splitlines()[-1])
    assert got["before"] is False and got["after"] is False and got["user"] == "float32"
    exact = 1.8 + 480.0 / 7e10**0.35 + 2100.0 / 1.4e12**0.37
    assert got["law"] == pytest.approx(exact, rel=1e-12)


def test_the_one_validator():
    p = chinchilla_draws(4)
    with pytest.raises(FitError, match="missing beta"):
        Posterior.from_draws("chinchilla", {k: v for k, v in p.items() if k != "beta"})
    with pytest.raises(FitError, match="NaN"):
        Posterior.from_draws("chinchilla", dict(p, E=[1.0, np.nan, 1.0, 1.0]))
    with pytest.raises(FitError, match="differ in length"):
        Posterior.from_draws("chinchilla", dict(p, E=[1.0, 2.0]))
    with pytest.raises(FitError, match="sigma"):
        Posterior.from_draws("chinchilla", p, {"sigma": -0.1})
    with pytest.raises(FitError, match="sigma"):
        Posterior.from_draws("chinchilla", p, {"nu": 3.0})  # a noise mapping needs its scale
    with pytest.raises(FitError, match="nu"):
        Posterior.from_draws("chinchilla", p, {"sigma": 0.1, "nu": 0.0})
    with pytest.raises(FitError, match="4 draws"):
        Posterior.from_draws("chinchilla", p, {"sigma": [0.1, 0.2]})
    with pytest.raises(FitError, match="shape"):
        Posterior.from_draws("chinchilla", p, shape=(3, 2))
    with pytest.raises(FitError, match="unknown law"):
        Posterior.from_draws("chinchila", p)
    ok = Posterior.from_draws("chinchilla", p, {"sigma": 0.02}, shape=(2, 2))
    assert ok.size == 4 and ok.shape == (2, 2) and np.all(np.isinf(ok.nu))
    with pytest.raises(FitError, match="expected a Posterior"):
        predict({"E": 1.0}, N=1e9, D=1e10)


def test_new_run_noise_scale_and_tails():
    n = 200_000
    p = {"E": np.ones(n), "A": np.ones(n), "alpha": np.full(n, 0.3)}
    # repeated runs: a new configuration's deviation and the seed noise add in variance
    gauss = Posterior.from_draws("power", p, {"sigma": 0.03, "sigma_fit": 0.04})
    eps = gauss.noise(np.random.default_rng(0))
    assert eps.shape == (n,)
    assert np.std(eps) == pytest.approx(0.05, rel=0.01)
    assert stats.kstest(eps / 0.05, "norm").pvalue > 1e-3
    heavy = Posterior.from_draws("power", p, {"sigma": 0.02, "nu": 3.0})
    eps = heavy.noise(np.random.default_rng(1), shape=(2,))
    assert eps.shape == (n, 2)
    assert stats.kstest(eps[:, 1] / 0.02, stats.t(3).cdf).pvalue > 1e-3
    # a subset of draws: the noise of those draws only (a mixed scale picks the right ones)
    mixed = Posterior.from_draws("power", p, {"sigma": np.where(np.arange(n) % 2, 1.0, 1e-9)})
    idx = np.arange(1, n, 2)
    assert np.std(mixed.noise(np.random.default_rng(2), idx)) == pytest.approx(1.0, rel=0.01)
    # the same generator state gives the same draws, whoever asks (predict uses this sampler)
    pred = predict(heavy, x=[10.0, 20.0], seed=5)
    eps_pred = np.log(pred.new_run_draws / pred.law_draws)
    np.testing.assert_allclose(eps_pred, heavy.noise(np.random.default_rng(5), shape=(2,)),
                               rtol=1e-9, atol=1e-15)


def test_new_run_noise_of_tails_heavier_than_a_cauchy_is_clipped_not_infinite():
    # A learned nu can sit below 1 (it did on four Porian groups): t draws then reach 1e30 and
    # beyond, exp() of them overflowed, and the new-run density came out nan.
    from bayescale.posterior import NOISE_CAP

    n = 20_000
    p = {"E": np.ones(n), "A": np.ones(n), "alpha": np.full(n, 0.3)}
    post = Posterior.from_draws("power", p, {"sigma": 0.04, "nu": 0.5})
    eps = post.noise(np.random.default_rng(0), shape=(3,))
    rng = np.random.default_rng(0)
    rng.standard_normal((n, 3))  # noise() draws the normals first (see its docstring)
    raw = 0.04 * rng.standard_t(np.full((n, 1), 0.5), size=(n, 3))
    with np.errstate(over="ignore"):
        assert np.isinf(np.exp(raw)).any()  # what overflowed before
    assert np.all(np.abs(eps) <= NOISE_CAP) and np.any(np.abs(eps) == NOISE_CAP)
    inside = np.abs(raw) < NOISE_CAP
    np.testing.assert_array_equal(eps[inside], raw[inside])
    pred = predict(post, x=[10.0, 20.0, 40.0], seed=0)
    assert np.all(np.isfinite(pred.new_run_draws))
    y = np.array([2.0, 1.5, 1.9])
    law = pred.law_draws[0]  # every draw has the same law
    expected = stats.t.logpdf(np.log(y), 0.5, loc=np.log(law), scale=0.04)
    np.testing.assert_allclose(pred.log_density(y), expected, rtol=1e-9)


def test_log_lik_is_the_student_t_density():
    p = {"E": np.ones(3), "A": np.ones(3), "alpha": np.full(3, 0.3)}
    post = Posterior.from_draws("power", p, {"sigma": [0.01, 0.02, 0.03], "nu": 4.0})
    r = np.array([0.01, -0.02, 0.05])
    np.testing.assert_allclose(post.log_lik(r), stats.t.logpdf(r, 4.0, scale=[0.01, 0.02, 0.03]))


def test_mixture_of_two_laws_is_a_posterior_of_both():
    chin = Posterior.from_draws("chinchilla", chinchilla_draws(300), {"sigma": 0.01})
    kap = Posterior.from_draws("kaplan", KAPLAN, {"sigma": 0.02, "nu": 4.0})
    mix = Posterior.mixture([chin, kap], [0.25, 0.75], size=400, seed=3)
    comp = mix.params["component"]
    assert mix.size == 400 and (comp == 0).sum() == 100 and (comp == 1).sum() == 300
    # each draw is one of its component's draws, with that component's noise
    first, second = comp == 0, comp == 1
    assert set(mix.params["0:E"][first]) <= set(chin.params["E"])
    np.testing.assert_array_equal(mix.sigma[first], 0.01)
    np.testing.assert_array_equal(mix.nu[second], 4.0)
    assert np.all(np.isinf(mix.nu[first]))
    # the law of a mixture draw is its component's law
    N, D = np.array([1e9, 7e10]), np.array([2e10, 1.4e12])
    law = predict(mix, N=N, D=D).law_draws
    own = {k[2:]: v[first] for k, v in mix.params.items() if k.startswith("0:")}
    np.testing.assert_allclose(law[first], predict(Posterior.from_draws("chinchilla", own), N=N,
                                                   D=D).law_draws, rtol=1e-12)
    # the mixture's optimum (numerical, through the mixture law) is each component's optimum
    alloc = compute_optimal(mix, [1e22, 1e24])
    ref = compute_optimal(Posterior.from_draws("chinchilla", own), [1e22, 1e24])  # closed form
    np.testing.assert_allclose(alloc.N_opt[first], ref.N_opt, rtol=1e-6)
    own_k = {k[2:]: v[second] for k, v in mix.params.items() if k.startswith("1:")}
    ref_k = compute_optimal(Posterior.from_draws("kaplan", own_k), [1e22, 1e24])
    np.testing.assert_allclose(alloc.N_opt[second], ref_k.N_opt, rtol=1e-9)
    with pytest.raises(FitError, match="same inputs"):
        Posterior.mixture([chin, Posterior.from_draws("power", {"E": [1.0], "A": [1.0],
                                                                "alpha": [0.3]})])
    with pytest.raises(FitError, match="weights"):
        Posterior.mixture([chin, kap], [1.0, -1.0])


def test_domain_distance_in_decades():
    dom = Domain({"N": (1e8, 1e10), "C": (1e18, 1e21)})
    d = dom.distance(N=[1e9, 1e11, 1e7], C=[1e20, 1e20, 1e24], D=[1.0, 1.0, 1.0])
    np.testing.assert_allclose(d, [0.0, 1.0, 3.0])  # D is not in the domain: ignored
    assert Domain.from_arrays(x=[3.0, 1.0, 2.0]).ranges == {"x": (1.0, 3.0)}
    with pytest.raises(FitError, match="domain"):
        Domain({"N": (10.0, 1.0)})


def test_least_squares_fit_is_a_posterior():
    N, D, loss, _ = simulate_chinchilla(n_side=5, seed=2)
    fit = bl.fit_lsq("curve_fit", "chinchilla", N=N, D=D, loss=loss, bootstrap=20, seed=0)
    post = fit.posterior
    assert post.size == 20 and post.law.name == "chinchilla"
    resid = np.log(loss) - np.log(fit.params["E"] + fit.params["A"] / N ** fit.params["alpha"]
                                  + fit.params["B"] / D ** fit.params["beta"])
    assert float(post.sigma[0]) == pytest.approx(np.sqrt(np.sum(resid**2) / (N.size - 5)),
                                                 rel=1e-9)
    assert np.all(np.isinf(post.nu))  # Gaussian residuals
    assert post.domain.ranges["C"] == pytest.approx((6 * (N * D).min(), 6 * (N * D).max()))
    np.testing.assert_allclose(post.params["alpha"], fit.draws["alpha"])
    # what a Bayesian fit is asked, a least-squares one answers the same way
    assert predict(fit, N=7e10, D=1.4e12).new_run_draws.shape == (20, 1)
