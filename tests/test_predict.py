"""Posterior predictions and interval summaries, on fixed synthetic draws."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayescale.allocation import compute_optimal
from bayescale.errors import FitError
from bayescale.predict import predict
from bayescale.summaries import interval, summary_dict

from conftest import chinchilla_draws as _draws  # noqa: E402
from conftest import post  # noqa: E402

S = 4000


def chinchilla_draws(n: int = S, seed: int = 0) -> dict[str, np.ndarray]:
    return _draws(n, seed)


def chinchilla_np(p, N, D):
    return p["E"][:, None] + p["A"][:, None] / N ** p["alpha"][:, None] + p["B"][:, None] / D ** p["beta"][:, None]


P = chinchilla_draws()
NOISE = {"sigma": np.full(S, 0.02), "nu": None}
N_NEW = np.array([1e9, 7e10, 1e12])
D_NEW = np.array([2e10, 1.4e12, 3e13])


def test_law_draws_equal_the_law_per_draw():
    pred = predict(post("chinchilla", P, NOISE), N=N_NEW, D=D_NEW)
    assert pred.law_draws.shape == pred.new_run_draws.shape == (S, 3)
    np.testing.assert_allclose(pred.law_draws, chinchilla_np(P, N_NEW, D_NEW), rtol=1e-12)


def test_power_law_in_x():
    p = {"E": np.array([1.5, 1.6]), "A": np.array([10.0, 12.0]), "alpha": np.array([0.3, 0.25])}
    x = np.array([1e3, 1e6])
    pred = predict(post("power", p, {"sigma": 0.01}), x=x)
    ref = p["E"][:, None] + p["A"][:, None] * x ** -p["alpha"][:, None]
    np.testing.assert_allclose(pred.law_draws, ref, rtol=1e-12)
    assert list(pred.to_dict()["points"][0]) == ["x", "law", "noise_only", "new_run"]
    # Draws of one's own carry no form error: a new run is the law plus its noise, nothing more.
    np.testing.assert_array_equal(pred.draws("new_run"), pred.draws("noise_only"))


def test_new_run_interval_contains_law_interval():
    pred = predict(post("chinchilla", P, NOISE), N=N_NEW, D=D_NEW, level=0.9)
    table = pred.table()
    law, new = table[table.kind == "law"], table[table.kind == "new_run"]
    assert np.all(new["lo"].to_numpy() < law["lo"].to_numpy())
    assert np.all(new["hi"].to_numpy() > law["hi"].to_numpy())
    # the noise is centred on log loss: medians agree to sampling error
    np.testing.assert_allclose(new["median"].to_numpy(), law["median"].to_numpy(), rtol=2e-3)


def test_tiny_sigma_new_run_equals_law():
    pred = predict(post("chinchilla", P, {"sigma": 1e-13, "nu": 3.0}), N=N_NEW, D=D_NEW)
    np.testing.assert_allclose(pred.new_run_draws, pred.law_draws, rtol=1e-10)
    zero = predict(post("chinchilla", P, {"sigma": 0.0}), N=N_NEW, D=D_NEW)
    np.testing.assert_array_equal(zero.new_run_draws, zero.law_draws)


def test_noise_scale_and_student_t_tails():
    sigma = 0.02
    gauss = predict(post("chinchilla", P, {"sigma": sigma, "nu": None}), N=7e10, D=1.4e12, seed=1)
    heavy = predict(post("chinchilla", P, {"sigma": sigma, "nu": np.full(S, 3.0)}), N=7e10, D=1.4e12, seed=1)
    eps_g = np.log(gauss.new_run_draws / gauss.law_draws)[:, 0]
    eps_t = np.log(heavy.new_run_draws / heavy.law_draws)[:, 0]
    # Normal(0, sigma): sd sigma; StudentT(3, 0, sigma): sd sigma * sqrt(3), standard error ~2-5%.
    assert np.std(eps_g) == pytest.approx(sigma, rel=0.06)
    assert np.quantile(np.abs(eps_g), 0.99) == pytest.approx(2.5758 * sigma, rel=0.08)
    assert np.quantile(np.abs(eps_t), 0.99) == pytest.approx(5.8409 * sigma, rel=0.15)
    assert np.quantile(np.abs(eps_t), 0.99) > 1.8 * np.quantile(np.abs(eps_g), 0.99)
    # nu = inf is Gaussian; seeds reproduce draws exactly and differ between seeds
    same = predict(post("chinchilla", P, {"sigma": sigma, "nu": np.inf}), N=7e10, D=1.4e12, seed=1)
    np.testing.assert_array_equal(same.new_run_draws, gauss.new_run_draws)
    other = predict(post("chinchilla", P, {"sigma": sigma}), N=7e10, D=1.4e12, seed=2)
    assert not np.array_equal(other.new_run_draws, gauss.new_run_draws)


def test_broadcasting_pairs_N_and_D():
    pred = predict(post("chinchilla", P, NOISE), N=N_NEW, D=1e12)
    np.testing.assert_array_equal(pred.inputs["D"], [1e12] * 3)
    np.testing.assert_allclose(pred.law_draws, chinchilla_np(P, N_NEW, np.full(3, 1e12)), rtol=1e-12)


def test_prediction_at_compute_uses_each_draws_optimum():
    C = np.array([1e21, 5.88e23])
    pred = predict(post("chinchilla", P, NOISE), C=C)
    alloc = compute_optimal(post("chinchilla", P), C)
    np.testing.assert_allclose(pred.law_draws, alloc.loss)
    # no other split of the same budget does better for any draw
    for factor in (0.5, 2.0):
        n = alloc.N_opt * factor
        worse = chinchilla_np(P, n, C / (6.0 * n))
        assert np.all(worse > pred.law_draws)
    point = pred.to_dict()["points"][1]
    assert point["compute"] == 5.88e23
    assert point["N"] == pytest.approx(np.median(alloc.N_opt[:, 1]), rel=1e-12)
    assert point["D"] == pytest.approx(np.median(alloc.D_opt[:, 1]), rel=1e-12)
    assert pred.allocation is not None


def test_table_and_to_dict():
    pred = predict(post("chinchilla", P, NOISE), N=N_NEW, D=D_NEW)
    table = pred.table(level=0.8)
    assert len(table) == 9
    assert list(table.columns) == ["N", "D", "kind", "median", "mean", "lo", "hi", "level"]
    assert list(table["kind"]) == ["law", "noise_only", "new_run"] * 3
    row = table.iloc[3]  # second point, law
    assert row["N"] == 7e10 and row["kind"] == "law"
    assert row["lo"] == pytest.approx(np.quantile(pred.law_draws[:, 1], 0.1), rel=1e-12)
    assert row["mean"] == pytest.approx(np.mean(pred.law_draws[:, 1]), rel=1e-12)
    out = json.loads(json.dumps(pred.to_dict(0.8)))
    assert out["level"] == 0.8
    point = out["points"][2]
    assert point["N"] == 1e12 and point["D"] == 3e13
    assert point["new_run"]["hi"] == pytest.approx(np.quantile(pred.new_run_draws[:, 2], 0.9), rel=1e-12)
    assert set(point["law"]) == {"median", "lo", "hi"}


@pytest.mark.parametrize(
    "law, kwargs, match",
    [
        ("chinchilla", {"N": 1e9}, "N and D"),
        ("chinchilla", {"x": 1e9}, "N and D"),
        ("chinchilla", {"N": 1e9, "D": 1e10, "C": 1e20}, "C alone"),
        ("chinchilla", {"N": [1e9, -1.0], "D": 1e10}, "positive"),
        ("chinchilla", {"N": [1e9, 2e9], "D": [1e10, 2e10, 3e10]}, "elementwise"),
        ("chinchilla", {"N": 1e9, "D": 0.0}, "positive"),
        ("chinchilla", {"C": -1e20}, "compute budgets"),
        ("power", {"N": 1e9}, "x="),
        ("power", {"C": 1e20}, "needs a law in N and D"),
    ],
)
def test_bad_inputs_raise(law, kwargs, match):
    p = chinchilla_draws(3) if law == "chinchilla" else {"E": [1.0], "A": [2.0], "alpha": [0.3]}
    with pytest.raises(FitError, match=match):
        predict(post(law, p, {"sigma": 0.02}), **kwargs)


def test_bad_noise_and_level_raise():
    p = chinchilla_draws(3)
    with pytest.raises(FitError, match="sigma"):
        predict(post("chinchilla", p, {"nu": 3.0}), N=1e9, D=1e10)
    with pytest.raises(FitError, match="sigma"):
        predict(post("chinchilla", p, {"sigma": -0.1}), N=1e9, D=1e10)
    with pytest.raises(FitError, match="nu"):
        predict(post("chinchilla", p, {"sigma": 0.1, "nu": 0.0}), N=1e9, D=1e10)
    with pytest.raises(FitError, match="draws"):
        predict(post("chinchilla", p, {"sigma": [0.1, 0.2]}), N=1e9, D=1e10)
    with pytest.raises(FitError, match="level"):
        predict(post("chinchilla", p, {"sigma": 0.1}), N=1e9, D=1e10, level=95)


def test_interval_and_summary_dict():
    med, lo, hi = interval(np.arange(101.0), 0.9)
    np.testing.assert_allclose([med, lo, hi], [50.0, 5.0, 95.0], rtol=1e-12)
    draws = np.random.default_rng(0).standard_normal((20000, 2)) * [1.0, 2.0]
    med, lo, hi = interval(draws, 0.95, axis=0)
    np.testing.assert_allclose(hi, [1.96, 3.92], rtol=0.05)
    np.testing.assert_allclose(lo, -hi, rtol=0.05)
    out = summary_dict(np.arange(101.0), 0.5)
    assert out == {"median": 50.0, "lo": 25.0, "hi": 75.0}
    assert all(type(v) is float for v in out.values())
    with pytest.raises(FitError, match="level"):
        interval([1.0, 2.0], 1.0)
