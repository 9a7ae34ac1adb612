"""Models and priors without sampling: site names, natural-unit sites, likelihood by scipy."""

import numpy as np
import numpyro.distributions as dist
import pytest
from numpyro import handlers
from scipy import stats

import jax
from bayescale.errors import FitError
from bayescale.laws import LAWS
from bayescale.models import OBS_SITE, scaling_model
from bayescale.priors import default_priors, priors_from_json, priors_to_json, resolve_priors

pytestmark = pytest.mark.usefixtures("x64_module")

LOSS = np.array([3.2, 3.0, 2.8, 2.65, 2.5, 2.4, 2.3])
LOG_IN = {"N": np.log(np.geomspace(1e8, 6e9, 7)), "D": np.log(np.geomspace(2e9, 1e11, 7))}
REF = {"N": float(LOG_IN["N"].mean()), "D": float(LOG_IN["D"].mean())}


def trace(law="chinchilla", y=None, seed=0, **kw):
    law = LAWS[law]
    priors = resolve_priors(law, LOSS, kw.pop("priors", None), repeats="config" in kw,
                            noise=kw.pop("noise", "student_t"))
    model = handlers.seed(scaling_model, jax.random.PRNGKey(seed))
    return handlers.trace(model).get_trace(LOG_IN, y, law=law, priors=priors, log_ref=REF, **kw)


def test_sites_and_natural_units():
    tr = trace()
    for site in ("E", "A_ref", "B_ref", "alpha", "beta", "sigma", "A", "B", OBS_SITE):
        assert site in tr
    assert tr["A"]["type"] == "deterministic"
    a_nat = tr["A_ref"]["value"] * np.exp(tr["alpha"]["value"] * REF["N"])
    assert float(tr["A"]["value"]) == pytest.approx(float(a_nat), rel=1e-12)


def test_student_t_log_likelihood_matches_scipy():
    y = np.log(LOSS)
    tr = trace(y=y, seed=3)
    p = {k: float(tr[k]["value"]) for k in ("E", "A", "B", "alpha", "beta", "sigma")}
    mu = np.log(p["E"] + p["A"] * np.exp(-p["alpha"] * LOG_IN["N"])
                + p["B"] * np.exp(-p["beta"] * LOG_IN["D"]))
    got = np.asarray(tr[OBS_SITE]["fn"].log_prob(y))
    np.testing.assert_allclose(got, stats.t.logpdf(y, df=2.0, loc=mu, scale=p["sigma"]), rtol=1e-9)


def test_normal_noise_and_learned_nu():
    tr = trace(noise="normal")
    assert isinstance(tr[OBS_SITE]["fn"].base_dist if hasattr(tr[OBS_SITE]["fn"], "base_dist")
                      else tr[OBS_SITE]["fn"], dist.Normal)
    tr = trace(priors={"nu": dist.Gamma(2.0, 0.1)})
    assert tr["nu"]["type"] == "sample"


def test_repeats_model_has_config_effects():
    config = np.array([0, 0, 1, 1, 2, 3, 4])
    tr = trace(config=config, n_config=5)  # simulating: an effect per configuration
    assert tr["delta_config"]["value"].shape == (5,)
    assert "sigma_fit" in tr and "nu" not in tr
    tr = trace(config=config, n_config=5, y=np.log(LOSS))  # fitting: effects integrated out
    assert "delta_config" not in tr and tr["log_loss_by_config"]["type"] == "sample"


def test_kaplan_sites():
    tr = trace("kaplan")
    assert {"L_N_ref", "L_D_ref", "alpha_N", "alpha_D", "N_c", "D_c"} <= set(tr)


def test_prior_defaults_scale_with_data():
    pri = default_priors(LAWS["chinchilla"], LOSS)
    # the noise prior is centred on 0.02 nats of seed-to-seed spread, on log loss
    assert float(np.exp(pri["sigma"].loc)) == pytest.approx(0.02 / np.median(LOSS))
    assert pri["nu"] == 2.0


def test_prior_overrides_and_errors():
    law = LAWS["chinchilla"]
    pri = resolve_priors(law, LOSS, {"alpha": dist.Uniform(0.0, 2.0)}, repeats=False,
                         noise="student_t")
    assert isinstance(pri["alpha"], dist.Uniform)
    with pytest.raises(FitError, match="put the prior on A_ref"):
        resolve_priors(law, LOSS, {"A": dist.LogNormal(0, 1)}, repeats=False, noise="normal")
    with pytest.raises(FitError, match="no prior site 'gamma'"):
        resolve_priors(law, LOSS, {"gamma": dist.LogNormal(0, 1)}, repeats=False, noise="normal")
    with pytest.raises(FitError, match="must be a numpyro distribution"):
        resolve_priors(law, LOSS, {"alpha": "wide"}, repeats=False, noise="normal")


def test_priors_json_round_trip():
    pri = resolve_priors(LAWS["chinchilla"], LOSS, {"alpha": dist.Uniform(0.0, 2.0)},
                         repeats=True, noise="student_t")
    back = priors_from_json(priors_to_json(pri))
    assert set(back) == set(pri)
    for k, v in pri.items():
        if isinstance(v, float):
            assert back[k] == v
        else:
            assert type(back[k]) is type(v)
            for arg in v.arg_constraints:
                np.testing.assert_allclose(getattr(back[k], arg), getattr(v, arg))


def test_config_likelihood_equals_multivariate_normal():
    # Integrating out a N(0, tau^2) effect per configuration gives y_c ~ MVN(mu_c 1,
    # sigma^2 I + tau^2 11^T); compare with scipy on configurations of 1, 2 and 4 runs.
    from bayescale.models import config_log_likelihood

    rng = np.random.default_rng(0)
    config = np.array([0, 1, 1, 2, 2, 2, 2])
    mu = np.array([1.0, 0.5, 0.5, 0.8, 0.8, 0.8, 0.8])
    y = mu + 0.05 * rng.standard_normal(7)
    sigma, tau = 0.02, 0.04
    got = np.asarray(config_log_likelihood(y, mu, config, 3, sigma=sigma, sigma_fit=tau))
    for c in range(3):
        idx = config == c
        n = idx.sum()
        cov = sigma**2 * np.eye(n) + tau**2 * np.ones((n, n))
        want = stats.multivariate_normal(mu[idx], cov).logpdf(y[idx])
        assert got[c] == pytest.approx(want, rel=1e-10)
