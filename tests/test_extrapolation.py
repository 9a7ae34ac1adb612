"""The law's form error beyond the data: the slope model against closed forms and numerical
integration, its draws, and how predictions carry it. Fixed draws; nothing samples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate, stats

from bayescale import Domain, Posterior
from bayescale.errors import FitError
from bayescale.laws import get_law
from bayescale.extrapolation import (Evidence, FormErrorPrior, Holdout, draw_form_error,
                                     holdout_log_density, holdout_pit, slope_posterior,
                                     with_form_error)
from bayescale.predict import predict
from conftest import chinchilla_draws

PRIOR = FormErrorPrior(log_c_mean=math.log(3.0), log_c_sd=0.6, scatter=0.5,
                       evidence_inflation=2.0)
SIGMA = 0.01


def holdout_at(r, error, *, law_sd=0.004, noise_sd=0.01, seed=0):
    """A held-out set at distances ``r`` with a law covariance that correlates its runs."""
    r = np.asarray(r, float)
    corr = np.exp(-np.abs(r[:, None] - r[None, :]))
    return Holdout(cutoff=1.0, error=np.asarray(error, float), law_cov=law_sd**2 * corr,
                   noise_var=np.full(r.size, noise_sd**2), R=r[:, None])


def test_slope_posterior_is_bayesian_linear_regression_per_scale():
    h = holdout_at([0.1, 0.3, 0.5], [0.004, 0.011, 0.02])
    log_w, means, covs = slope_posterior(SIGMA, Evidence(("C",), (h,)), PRIOR)
    log_c, prior_w = PRIOR.grid()
    S = PRIOR.evidence_inflation * h.cov(PRIOR.scatter * SIGMA)
    for i, lc in enumerate(log_c[::10]):
        k2 = (math.exp(lc) * SIGMA) ** 2
        Si = np.linalg.inv(S)
        V = 1 / (1 / k2 + h.R[:, 0] @ Si @ h.R[:, 0])
        np.testing.assert_allclose(covs[10 * i, 0, 0], V, rtol=1e-9)
        np.testing.assert_allclose(means[10 * i, 0], V * (h.R[:, 0] @ Si @ h.error), rtol=1e-9)
    # weights: prior times the marginal likelihood of the errors (b integrated out)
    marg = np.array([stats.multivariate_normal(np.zeros(3), S + (math.exp(lc) * SIGMA) ** 2
                                               * np.outer(h.R, h.R)).logpdf(h.error)
                     for lc in log_c])
    want = prior_w + marg
    np.testing.assert_allclose(log_w, want - np.logaddexp.reduce(want), atol=1e-9)
    # without evidence: the prior, zero-mean, variance (c sigma)^2
    log_w0, m0, v0 = slope_posterior(SIGMA, Evidence(("C",)), PRIOR)
    np.testing.assert_allclose(log_w0, prior_w)
    assert np.all(m0 == 0)
    np.testing.assert_allclose(v0[:, 0, 0], (np.exp(log_c) * SIGMA) ** 2)


def test_held_out_density_equals_numerical_integration_over_the_slope():
    inner = holdout_at([0.2, 0.4], [0.01, 0.015])
    outer = holdout_at([0.6, 1.2], [0.03, 0.05])
    ev = Evidence(("C",), (inner,))
    got = holdout_log_density(outer, SIGMA, ev, PRIOR)
    # the same number without the model's algebra: integrate over b and c on a grid
    log_c, prior_w = PRIOR.grid()
    S_in = PRIOR.evidence_inflation * inner.cov(PRIOR.scatter * SIGMA)
    S_out = outer.cov(PRIOR.scatter * SIGMA)

    def joint(b, lc):
        k = math.exp(lc) * SIGMA
        return (stats.norm.pdf(b, 0, k)
                * stats.multivariate_normal(inner.R[:, 0] * b, S_in).pdf(inner.error)
                * stats.multivariate_normal(outer.R[:, 0] * b, S_out).pdf(outer.error))

    def evidence(b, lc):
        k = math.exp(lc) * SIGMA
        return stats.norm.pdf(b, 0, k) * stats.multivariate_normal(
            inner.R[:, 0] * b, S_in).pdf(inner.error)

    num = sum(np.exp(w) * integrate.quad(joint, -0.5, 0.5, args=(lc,), points=[0.05])[0]
              for lc, w in zip(log_c, prior_w))
    den = sum(np.exp(w) * integrate.quad(evidence, -0.5, 0.5, args=(lc,), points=[0.05])[0]
              for lc, w in zip(log_c, prior_w))
    assert got == pytest.approx(math.log(num / den), abs=1e-5)


def test_held_out_pit_is_the_models_own_cdf_by_simulation():
    # Simulate the model forward, independently of its algebra: c from the prior, b given c
    # and the refit's errors by importance weights (the refit's likelihood), then each held-out
    # run's error from the law's, the noise's and the scatter's variance. The PIT of an
    # observed error is the share of simulated errors below it.
    inner = holdout_at([0.2, 0.4], [0.01, 0.015])
    outer = holdout_at([0.6, 1.2, 1.5], [0.03, -0.01, 0.08])
    ev = Evidence(("C",), (inner,))
    got = holdout_pit(outer, SIGMA, ev, PRIOR)
    rng = np.random.default_rng(3)
    n = 400_000
    c = np.exp(PRIOR.log_c_mean + PRIOR.log_c_sd * rng.standard_normal(n))
    b = c * SIGMA * rng.standard_normal(n)
    S_in = PRIOR.evidence_inflation * inner.cov(PRIOR.scatter * SIGMA)
    resid = inner.error[None, :] - b[:, None] * inner.R[:, 0][None, :]
    logw = -0.5 * np.einsum("ni,ij,nj->n", resid, np.linalg.inv(S_in), resid)
    w = np.exp(logw - logw.max())
    w /= w.sum()
    sd = np.sqrt(np.diag(outer.cov(PRIOR.scatter * SIGMA)))
    z = rng.standard_normal((n, 3))
    sims = b[:, None] * outer.R[:, 0][None, :] + sd * z
    want = np.array([np.sum(w * (sims[:, j] <= outer.error[j])) for j in range(3)])
    np.testing.assert_allclose(got, want, atol=0.01)
    assert got[2] > 0.5 > got[1]  # the far, high error sits in the upper tail; -0.01 below


def test_strong_evidence_recovers_a_known_slope():
    # 60 held-out runs whose errors grow by 0.05 per decade: the slope is found, tightly
    rng = np.random.default_rng(1)
    r = np.tile(np.linspace(0.1, 1.0, 20), 3)
    h = Holdout(cutoff=1.0, error=0.05 * r + 0.002 * rng.standard_normal(60),
                law_cov=np.zeros((60, 60)), noise_var=np.full(60, 0.002**2), R=r[:, None])
    prior = FormErrorPrior(math.log(5.0), 1.0, 0.0, 1.0)
    slopes, scatter = draw_form_error(np.full(4000, 0.01), Evidence(("C",), (h,)), prior,
                                      seed=0)
    assert slopes.shape == (4000, 1) and np.all(scatter == 0)
    assert np.mean(slopes) == pytest.approx(0.05, abs=0.002)
    assert np.std(slopes) < 0.003


def test_offset_is_a_level_shared_by_a_refits_runs_not_a_slope():
    # The offset is a second regression coefficient a ~ N(0, (o sigma)^2) on a column of ones of
    # each refit, integrated out: the slope's posterior equals the b-marginal of the 2-D
    # Bayesian regression of the errors on [R, 1] (computed here directly, per scale c).
    prior = FormErrorPrior(math.log(3.0), 0.6, 0.5, 2.0, offset=2.0)
    inner = holdout_at([0.1, 0.12, 0.3], [-0.02, -0.021, -0.02])
    log_w, means, covs = slope_posterior(SIGMA, Evidence(("C",), (inner,)), prior)
    S = prior.evidence_inflation * inner.cov(prior.scatter * SIGMA)
    X = np.column_stack([inner.R[:, 0], np.ones(3)])
    log_c, prior_w = prior.grid()
    marg = []
    for i, lc in enumerate(log_c):
        P0 = np.diag([(math.exp(lc) * SIGMA) ** 2, (prior.offset * SIGMA) ** 2])
        V = np.linalg.inv(np.linalg.inv(P0) + X.T @ np.linalg.solve(S, X))
        m = V @ X.T @ np.linalg.solve(S, inner.error)
        np.testing.assert_allclose(means[i, 0], m[0], rtol=1e-8, atol=1e-12)
        np.testing.assert_allclose(covs[i, 0, 0], V[0, 0], rtol=1e-8)
        marg.append(stats.multivariate_normal(np.zeros(3), S + X @ P0 @ X.T).logpdf(
            inner.error))
    want = prior_w + np.array(marg)
    np.testing.assert_allclose(log_w, want - np.logaddexp.reduce(want), atol=1e-9)
    # errors of one level at every distance: with the offset they say little about a slope,
    # without it they are read as a steep one
    log_w0, means0, _ = slope_posterior(SIGMA, Evidence(("C",), (inner,)),
                                        FormErrorPrior(math.log(3.0), 0.6, 0.5, 2.0))
    assert abs(np.exp(log_w) @ means[:, 0]) < 0.5 * abs(np.exp(log_w0) @ means0[:, 0])
    with pytest.raises(FitError, match="offset >= 0"):
        FormErrorPrior(0.0, 1.0, 0.0, offset=-1.0)


def test_form_error_draws_have_the_mixture_moments():
    h = holdout_at([0.2, 0.5], [-0.01, -0.02])
    ev = Evidence(("C",), (h,))
    log_w, means, covs = slope_posterior(SIGMA, ev, PRIOR)
    w = np.exp(log_w)
    mean = w @ means[:, 0]
    var = w @ (covs[:, 0, 0] + means[:, 0] ** 2) - mean**2
    slopes, scatter = draw_form_error(np.full(100_000, SIGMA), ev, PRIOR, seed=3)
    assert np.mean(slopes) == pytest.approx(mean, abs=4 * math.sqrt(var / 1e5))
    assert np.var(slopes) == pytest.approx(var, rel=0.03)
    np.testing.assert_allclose(scatter, PRIOR.scatter * SIGMA)


def test_predictions_carry_the_form_error_beyond_the_domain_only():
    p = chinchilla_draws(2000)
    base = Posterior.from_draws("chinchilla", p, {"sigma": 0.01},
                                domain=Domain({"N": (1e8, 1e10), "D": (1e9, 1e11),
                                               "C": (6e17, 6e21)}))
    post = with_form_error(base, Evidence(("C",)), PRIOR, seed=0)
    assert post.form_slopes.shape == (2000, 1)
    N, D = np.array([1e9, 1e11]), np.array([2e10, 2e12])  # inside; 2.3 decades beyond in C
    pred = predict(post, N=N, D=D, seed=7)
    exact = predict(base, N=N, D=D, seed=7)
    # the same noise draws with and without the form error (it is drawn after the noise)
    np.testing.assert_array_equal(pred.noise_only_draws, exact.new_run_draws)
    np.testing.assert_array_equal(pred.new_run_draws[:, 0], pred.noise_only_draws[:, 0])
    offset = np.log(pred.new_run_draws[:, 1] / pred.noise_only_draws[:, 1])
    # the slope times the decades of compute beyond (C = 1.2e24 against 6e21), plus the
    # scatter times the largest distance (N: 1 decade, D: 1.3, C: 2.3)
    r_c = math.log10(6 * 1e11 * 2e12 / 6e21)
    r = max(r_c, math.log10(1e11 / 1e10), math.log10(2e12 / 1e11))
    eta = (offset - post.form_slopes[:, 0] * r_c) / (post.form_scatter * r)
    assert stats.kstest(eta, "norm").pvalue > 1e-3  # the rest is the scatter's normal part
    assert pred.beyond["decades"][0] == 0 and pred.beyond["decades"][1] == pytest.approx(r)
    assert pred.beyond["C"][1] == pytest.approx(6 * 1e11 * 2e12 / 6e21)
    # the law band is the law's alone; the new-run band is wider beyond the data
    np.testing.assert_array_equal(pred.law_draws, exact.law_draws)
    assert np.std(np.log(pred.new_run_draws[:, 1])) > 1.5 * np.std(
        np.log(pred.noise_only_draws[:, 1]))


def test_below_the_data_the_slope_shifts_nothing_and_the_spread_grows():
    """A slope of +0.1 per decade, scatter 0.05 per decade: 2 decades above the compute trained
    on, the law's log loss moves by 0.2 (plus 0.1 eta); 2 decades below, by 0.1 eta only (the
    slope was applied there too, with the same sign)."""
    post = Posterior(law=get_law("chinchilla"), params={k: [v[0]] for k, v in
                                                        chinchilla_draws(1).items()},
                     sigma=0.01, domain=Domain({"N": (1e8, 1e10), "D": (1e9, 1e11),
                                                "C": (6e17, 6e21)}),
                     form_slopes=[[0.1]], form_scatter=[0.05], form_directions=("C",))
    above = {"N": np.array([1e10]), "D": np.array([1e13])}  # C 6e23: C 2, D 2 decades above
    below = {"N": np.array([1e8]), "D": np.array([1e7])}  # C 6e15: C 2, D 2 decades below
    assert post.form_offset(above) == pytest.approx(0.2)
    assert post.form_offset(above, eta=1.0) == pytest.approx(0.3)
    assert post.form_offset(below) == pytest.approx(0.0)
    assert post.form_offset(below, eta=1.0) == pytest.approx(0.1)


def test_far_predictions_warn():
    from bayescale.predict import ExtrapolationWarning

    base = Posterior.from_draws("power", {"E": [1.0], "A": [5.0], "alpha": [0.3]},
                                domain=Domain({"x": (10.0, 1e4)}))
    with pytest.warns(ExtrapolationWarning, match="1000x"):
        predict(base, x=[1e8])


def test_evidence_round_trip_and_checks():
    h = holdout_at([0.2, 0.5], [0.01, 0.02])
    ev = Evidence(("C",), (h,))
    back = Evidence.from_dict(ev.to_dict())
    np.testing.assert_array_equal(back.holdouts[0].law_cov, h.law_cov)
    assert back.directions == ("C",)
    with pytest.raises(FitError, match="prior"):
        FormErrorPrior(0.0, -1.0, 0.0)
    with pytest.raises(FitError, match="domain"):  # distances need a domain to start from
        Posterior(law=get_law("power"), params={"E": [1.0], "A": [5.0], "alpha": [0.3]},
                  sigma=0.0, form_slopes=[[0.1]], form_directions=("x",))


def test_a_large_held_out_set_enters_the_evidence_thinned_evenly_along_compute():
    # A 100,000-run table holds out thousands of runs above its top levels: their covariance
    # takes gigabytes. At most MAX_HELDOUT of them enter the evidence, evenly spread in rank along
    # compute (the first and the last kept); a smaller set is kept whole, the same Holdout.
    from bayescale import ScalingData
    from bayescale.extrapolation import MAX_HELDOUT, evenly_in_rank, holdout

    rng = np.random.default_rng(0)
    values = rng.permutation(2000).astype(float)
    idx = evenly_in_rank(values, 500)
    assert len(idx) == 500 and np.all(np.diff(idx) > 0)
    ranks = np.sort(values[idx])  # the values are the ranks 0..1999
    assert ranks[0] == 0 and ranks[-1] == 1999
    assert np.all(np.abs(np.diff(ranks) - 1999 / 499) <= 1)
    np.testing.assert_array_equal(evenly_in_rank(values[:300], 500), np.arange(300))

    base = Posterior.from_draws("chinchilla", chinchilla_draws(200), {"sigma": 0.01},
                                domain=Domain({"N": (1e8, 1e10), "D": (1e9, 1e11),
                                               "C": (6e17, 6e21)}))
    n = MAX_HELDOUT + 1500
    N = np.exp(rng.uniform(np.log(1e10), np.log(1e11), n))
    D = 20 * N
    big = ScalingData.from_arrays(N=N, D=D, loss=2.0 + 0.01 * rng.standard_normal(n))
    h = holdout(base, big, 6e21, ("C",))
    assert h.error.shape == (MAX_HELDOUT,) and h.law_cov.shape == (MAX_HELDOUT, MAX_HELDOUT)
    kept = np.sort(h.R[:, 0])
    r = np.log10(6 * N * D / 6e21)
    assert kept[0] == pytest.approx(r.min()) and kept[-1] == pytest.approx(r.max())
    keep = np.zeros(n, dtype=bool)
    keep[evenly_in_rank(6 * N * D)] = True
    small = big.subset(keep)
    whole = holdout(base, small, 6e21, ("C",))
    np.testing.assert_allclose(whole.error, h.error)
    np.testing.assert_allclose(whole.law_cov, h.law_cov)
