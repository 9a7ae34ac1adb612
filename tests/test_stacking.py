"""Stacking of laws by leave-future-out density: the weights against an independent optimiser
and a root of the optimality condition, and lfo_stacking's scores against scipy's densities of
the refits' held-out errors. Fixed numbers; nothing samples."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from scipy import optimize, stats
from scipy.special import logsumexp

import bayescale as bs
from bayescale.comparison import stacking_weights
from bayescale.errors import FitError
from bayescale.extrapolation import Evidence, Holdout


def objective(w, lp):
    return float(np.sum(logsumexp(lp + np.log(w)[:, None], axis=0)))


def test_weights_maximise_the_log_score_like_scipy():
    rng = np.random.default_rng(3)
    for k in (2, 3, 4):
        lp = rng.normal(0.0, 1.5, size=(k, 60)) + rng.normal(0.0, 0.5, size=(k, 1))
        w = stacking_weights(lp)
        res = optimize.minimize(lambda w, lp=lp: -objective(np.clip(w, 1e-300, None), lp),
                                np.full(k, 1 / k), method="SLSQP", bounds=[(0, 1)] * k,
                                constraints={"type": "eq", "fun": lambda w: w.sum() - 1},
                                options={"ftol": 1e-14, "maxiter": 1000})
        assert w.sum() == pytest.approx(1.0) and np.all(w >= 0)
        assert objective(w, lp) >= -res.fun - 1e-7
        np.testing.assert_allclose(w, res.x, atol=2e-3)


def test_two_models_weight_is_the_root_of_the_optimality_condition():
    # d/dw sum_i log(w p1 + (1 - w) p2) = sum_i (p1 - p2) / (w p1 + (1 - w) p2) = 0
    p1 = np.array([0.9, 0.5, 0.05, 0.7, 0.2])
    p2 = np.array([0.2, 0.6, 0.80, 0.1, 0.3])
    w_star = optimize.brentq(lambda w: np.sum((p1 - p2) / (w * p1 + (1 - w) * p2)), 1e-9,
                             1 - 1e-9)
    w = stacking_weights(np.log([p1, p2]))
    assert w[0] == pytest.approx(w_star, abs=1e-6)


def test_a_model_better_on_every_point_takes_all_the_weight():
    lp = np.log([[0.5, 0.4, 0.6], [0.1, 0.2, 0.3]])
    np.testing.assert_allclose(stacking_weights(lp), [1.0, 0.0], atol=1e-6)
    with pytest.raises(FitError, match="finite"):
        stacking_weights(np.array([[0.0, np.nan]]))


def holdout(cutoff, error, law_sd, noise_sd):
    error = np.asarray(error, float)
    return Holdout(cutoff=cutoff, error=error, law_cov=np.diag(np.full(error.size, law_sd**2)),
                   noise_var=np.full(error.size, noise_sd**2), R=np.ones((error.size, 1)))


def fake_fit(name, holdouts, loss=(2.0, 2.5, 3.0)):
    return SimpleNamespace(law=SimpleNamespace(name=name), data=SimpleNamespace(
        n_points=len(loss), loss=np.asarray(loss)), evidence=Evidence(("C",), tuple(holdouts)))


def test_lfo_stacking_scores_the_refits_held_out_runs():
    a = fake_fit("chinchilla", [holdout(1e20, [0.01, -0.02], 0.01, 0.02),
                                holdout(3e20, [0.03], 0.02, 0.02)])
    # a third cutoff only this law could refit: not shared, so not scored
    b = fake_fit("kaplan", [holdout(1e20, [0.05, 0.06], 0.01, 0.02),
                            holdout(3e20, [0.09], 0.03, 0.02), holdout(1e21, [0.5], 0.1, 0.1)])
    table = bs.lfo_stacking([b, a])
    lp_a = stats.norm.logpdf([0.01, -0.02, 0.03], 0, np.sqrt([5e-4, 5e-4, 8e-4]))
    lp_b = stats.norm.logpdf([0.05, 0.06, 0.09], 0, np.sqrt([5e-4, 5e-4, 13e-4]))
    assert list(table.index) == ["kaplan", "chinchilla"]  # in the order given
    assert table.loc["chinchilla", "elpd_lfo"] == pytest.approx(lp_a.sum())
    assert table.loc["kaplan", "elpd_lfo"] == pytest.approx(lp_b.sum())
    assert (table["n_heldout"] == 3).all()
    np.testing.assert_allclose(table.loc[["chinchilla", "kaplan"], "weight"],
                               stacking_weights(np.array([lp_a, lp_b])))
    assert table.loc["chinchilla", "weight"] > 0.9


def test_lfo_stacking_refuses_what_it_cannot_score():
    a = fake_fit("chinchilla", [holdout(1e20, [0.01], 0.01, 0.02)])
    with pytest.raises(FitError, match="at least two"):
        bs.lfo_stacking([a])
    with pytest.raises(FitError, match="different data"):
        bs.lfo_stacking([a, fake_fit("kaplan", [holdout(1e20, [0.0], 0.01, 0.02)],
                                     loss=(2.0, 2.5, 3.1))])
    with pytest.raises(FitError, match="no leave-future-out refits"):
        bs.lfo_stacking([a, fake_fit("kaplan", [])])
    with pytest.raises(FitError, match="share no"):
        bs.lfo_stacking([a, fake_fit("kaplan", [holdout(3e20, [0.0], 0.01, 0.02)])])
