"""Prior checks: prior-predictive draws against scipy, widening, and prior sensitivity on fits.

The prior-predictive tests only draw from the priors (no MCMC). The two sensitivity tests each
sample twice (2 chains x 300 + 300).
"""

import math
import warnings

import numpy as np
import numpyro.distributions as dist
import pytest
from scipy import stats

import bayescale as bs
from bayescale import DataError, FitError, ScalingData
from bayescale.checks import widen_prior
from conftest import SAMPLER, simulate_chinchilla

SMALL = dict(**SAMPLER, progress=False, seed=1)


@pytest.fixture(scope="module")
def sim_data():
    N, D, loss, truth = simulate_chinchilla(seed=1)
    return ScalingData.from_arrays(N=N, D=D, loss=loss)


@pytest.fixture(scope="module")
def pp(sim_data):
    return bs.prior_predictive(sim_data, n=4000, seed=0)


def test_prior_draws_follow_the_default_priors(pp, sim_data):
    # E ~ LogNormal(log(lowest loss) - 0.5, 0.75) and alpha ~ LogNormal(log 0.3, 1): scipy's CDFs
    E = stats.lognorm(s=0.75, scale=np.exp(np.log(sim_data.loss.min()) - 0.5))
    assert stats.kstest(pp.draws("E"), E.cdf).pvalue > 1e-3
    assert stats.kstest(pp.draws("alpha"), stats.lognorm(s=1.0, scale=0.3).cdf).pvalue > 1e-3
    q = [0.1, 0.5, 0.9]
    np.testing.assert_allclose(np.quantile(pp.draws("E"), q), E.ppf(q), rtol=0.06)
    # natural units: A = A_ref * N_ref^alpha with N_ref the geometric mean of N
    log_nref = np.mean(np.log(sim_data.N))
    np.testing.assert_allclose(np.log(pp.draws("A")),
                               np.log(pp.draws("A_ref")) + pp.draws("alpha") * log_nref,
                               rtol=1e-9, atol=1e-9)


def test_prior_predictive_losses_are_law_plus_student_t_noise(pp, sim_data):
    # recompute the law in numpy from the natural-unit draws; the standardised residual of the
    # prior-predictive log loss must be Student-t with the fixed nu = 2
    p = pp.params_draws()
    mean = (p["E"][:, None] + p["A"][:, None] / sim_data.N ** p["alpha"][:, None]
            + p["B"][:, None] / sim_data.D ** p["beta"][:, None])
    z = (pp.log_loss - np.log(mean)) / pp.draws("sigma")[:, None]
    assert pp.log_loss.shape == (4000, sim_data.n_points)
    assert stats.kstest(z[:, 0], stats.t(2).cdf).pvalue > 1e-3
    assert stats.kstest(z[:, -1], stats.t(2).cdf).pvalue > 1e-3
    ratio = np.exp(pp.log_loss) / sim_data.loss
    inside = (ratio >= 0.5) & (ratio <= 2)
    assert pp.frac_within() == pytest.approx(inside.mean())
    assert 0.2 < pp.frac_within() < 0.95  # weakly informative: neither ruled out nor pinned
    d = pp.to_dict()
    assert d["frac_within_2x"] == pytest.approx(inside.mean())
    assert d["min_run_frac_within_2x"] == pytest.approx(inside.mean(axis=0).min())
    assert "within 0.5x-2x" in repr(pp)


def test_prior_predictive_same_seed_same_draws_and_overrides(sim_data):
    a = bs.prior_predictive(sim_data, n=50, seed=3)
    b = bs.prior_predictive(sim_data, n=50, seed=3)
    np.testing.assert_array_equal(a.log_loss, b.log_loss)
    tight = bs.prior_predictive(sim_data, n=2000, noise="normal", priors={
        "E": dist.LogNormal(math.log(1.8), 0.01), "A_ref": dist.LogNormal(0.0, 0.01),
        "alpha": dist.LogNormal(math.log(0.35), 0.01), "beta": dist.LogNormal(math.log(0.37), 0.01),
    })
    assert "nu" not in tight.idata.prior
    # the override reaches the draws: E's spread is that of the given prior
    assert np.std(np.log(tight.draws("E"))) == pytest.approx(0.01, rel=0.1)


def test_prior_predictive_one_variable_and_repeats():
    x = np.geomspace(1e6, 1e9, 8)
    pp = bs.prior_predictive(ScalingData.from_arrays(x=x, loss=2 + 50 * x**-0.3), "power", n=20)
    assert set(pp.params_draws()) == {"E", "A", "alpha"} and pp.log_loss.shape == (20, 8)
    data = ScalingData.from_arrays(N=[1e8, 1e8, 2e8, 2e8, 4e8, 8e8, 9e8],
                                   D=[1e9, 1e9, 3e9, 3e9, 8e9, 1e10, 2e10],
                                   loss=[3.0, 3.05, 2.8, 2.78, 2.6, 2.5, 2.4], seed=list("ababaaa"))
    pp = bs.prior_predictive(data, n=20)
    assert "sigma_fit" in pp.idata.prior and pp.log_loss.shape == (20, 7)


def test_prior_predictive_errors(sim_data):
    with pytest.raises(DataError, match="needs input 'x'"):
        bs.prior_predictive(sim_data, "power")
    with pytest.raises(FitError, match="n must be a positive integer"):
        bs.prior_predictive(sim_data, n=0)
    with pytest.raises(FitError, match="no prior site 'gamma'"):
        bs.prior_predictive(sim_data, priors={"gamma": dist.Normal()})


@pytest.mark.parametrize("prior,check", [
    (dist.LogNormal(1.0, 0.5), lambda w: (w.loc, w.scale) == (1.0, 1.0)),
    (dist.Normal(-2.0, 3.0), lambda w: (w.loc, w.scale) == (-2.0, 6.0)),
    (dist.StudentT(3.0, 0.0, 1.0), lambda w: (w.df, w.scale) == (3.0, 2.0)),
    (dist.HalfNormal(0.1), lambda w: w.scale == 0.2),
    (dist.Exponential(4.0), lambda w: w.rate == 2.0),
    (dist.Uniform(0.0, 1.0), lambda w: w is None),
    (4.0, lambda w: w is None),
])
def test_widen_prior(prior, check):
    assert check(widen_prior(prior, 2.0))


def test_widened_lognormal_keeps_median_and_doubles_log_spread(x64):
    w = widen_prior(dist.LogNormal(math.log(0.3), 1.0), 2.0)
    ref = stats.lognorm(s=2.0, scale=0.3)
    x = np.array([0.01, 0.3, 2.0])
    np.testing.assert_allclose(np.exp(np.asarray(w.log_prob(x))), ref.pdf(x), rtol=1e-10)


def test_sensitivity_well_identified_fit_flags_nothing(sim_data):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)  # ESS < 400 with 600 draws
        fit = bs.fit(sim_data, **SMALL)
        sens = bs.prior_sensitivity(fit)
    t = sens.table
    assert list(t.index) == ["E", "A", "B", "alpha", "beta", "tokens_per_param"]
    assert sens.flagged == [] and (t["shift"].abs() < 0.1).all(), t
    assert sens.unchanged == ("nu",)  # the fixed Student-t degrees of freedom has no scale
    assert sens.budget == pytest.approx(100 * sim_data.C.max())
    # the refit really used wider priors, with the same data, options and seed
    assert sens.refit.priors["alpha"].scale == 2 * fit.priors["alpha"].scale
    assert sens.refit.seed == fit.seed and sens.refit.options == fit.options
    assert sens.to_dict()["flagged"] == []


def test_sensitivity_flags_a_prior_driven_fit():
    # 16 runs and confident exponent priors centred well below the truth (0.35, 0.37): the
    # posterior leans on them, so widening them moves beta by far more than 10% of its interval
    N, D, loss, _ = simulate_chinchilla(n_side=4, sigma=0.02, seed=3)
    priors = {"alpha": dist.LogNormal(math.log(0.2), 0.15),
              "beta": dist.LogNormal(math.log(0.2), 0.15)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        fit = bs.fit(ScalingData.from_arrays(N=N, D=D, loss=loss), noise="normal",
                     priors=priors, **SMALL)
        sens = bs.prior_sensitivity(fit, quantities=["alpha", "beta", "tokens_per_param"])
    assert "beta" in sens.flagged and sens.table.loc["beta", "shift"] > 0.3, sens.table
    assert sens.unchanged == ()  # normal noise: every prior has a scale
    with pytest.raises(FitError, match="no quantity 'gamma'"):
        bs.prior_sensitivity(fit, quantities=["gamma"])
