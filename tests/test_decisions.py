"""Risk-aware decisions on fixed posterior draws, checked against brute force and closed forms.

Nothing here samples a posterior. The brute-force checks evaluate the Chinchilla law in natural
units with NumPy (not through ``bayescale.laws``) on dense grids, and the value-of-experiment
estimate is compared with the exact conjugate answer of Bayesian linear regression.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from bayescale.decisions import (
    choose_allocation,
    compute_for_target,
    cvar,
    expected,
    inference_aware,
    mean_std,
    parse_objective,
    prob_below_target,
    quantile,
)
from bayescale.errors import FitError
from bayescale.voi import value_of_experiment

K = 6.0
C = 5.88e23
OBJECTIVES = ["expected", "quantile:0.9", "cvar:0.9", "mean_std:1"]

from conftest import post  # noqa: E402


def chinchilla_draws(n: int = 400, seed: int = 0) -> dict[str, np.ndarray]:
    """Draws around Epoch's refit of Chinchilla (E 1.82, A 482, B 2085, alpha 0.35, beta 0.37)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((5, n))
    return {
        "E": 1.8 + 0.02 * z[0],
        "A": 480.0 * np.exp(0.2 * z[1]),
        "B": 2100.0 * np.exp(0.3 * z[2]),
        "alpha": 0.35 + 0.015 * z[3],
        "beta": 0.37 + 0.02 * z[4],
    }


NOISE = {"sigma": 0.02, "nu": 5.0}


def loss(p, N, D):
    """Chinchilla in natural units, draws on the last axis: E + A/N^alpha + B/D^beta."""
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def hoffmann_n_opt(p, C):
    """Hoffmann et al. eq. 4, written out: N* = G (C/6)^(beta/(alpha+beta))."""
    a, b = p["alpha"], p["beta"]
    G = (a * p["A"] / (b * p["B"])) ** (1 / (a + b))
    return G * (C / K) ** (b / (a + b))


def brute_objective(name: str, x: np.ndarray) -> np.ndarray:
    """The objectives computed independently along the last axis."""
    if name == "expected":
        return x.mean(-1)
    if name == "quantile:0.9":
        return np.quantile(x, 0.9, axis=-1)
    if name == "cvar:0.9":
        top = np.sort(x, axis=-1)[..., -x.shape[-1] // 10 :]
        return top.mean(-1)
    return x.mean(-1) + x.std(-1)


# --- objectives ---------------------------------------------------------------------------------


def test_objectives_equal_numpy():
    x = np.random.default_rng(3).gamma(2.0, 1.0, 1000)
    assert quantile(0.9)(x) == pytest.approx(np.quantile(x, 0.9))
    assert cvar(0.9)(x) == pytest.approx(np.sort(x)[-100:].mean())
    assert cvar(0.95)(x) == pytest.approx(np.sort(x)[-50:].mean())
    assert expected()(x) == pytest.approx(x.mean())
    assert mean_std(2.0)(x) == pytest.approx(x.mean() + 2 * x.std())
    # 1001 draws at q = 0.9: the top 100.1 draws, the 101st from the top counting 0.1.
    y = np.append(x, 0.5)
    top = np.sort(y)[::-1]
    assert cvar(0.9)(y) == pytest.approx((top[:100].sum() + 0.1 * top[100]) / 100.1)
    # draws on the last axis: rows are scored separately
    rows = x.reshape(4, 250)
    assert np.allclose(cvar(0.9)(rows), [np.sort(r)[-25:].mean() for r in rows])


def test_parse_objective_specs_and_errors():
    assert [parse_objective(s).spec for s in OBJECTIVES] == OBJECTIVES
    assert parse_objective(" CVaR:0.95 ").spec == "cvar:0.95"
    bad_specs = ["quantile:1.5", "cvar:0", "quantile:abc", "median", "expected:3", "mean_std:-1"]
    bad_specs.append(0.9)  # not a string
    for bad in bad_specs:
        with pytest.raises(FitError) as err:
            parse_objective(bad)
        assert isinstance(err.value, ValueError)
    with pytest.raises(FitError, match="strictly between 0 and 1"):
        quantile(1.0)


# --- choosing a split ---------------------------------------------------------------------------


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_choice_equals_dense_grid_optimum(objective):
    p = chinchilla_draws()
    dec = choose_allocation(post("chinchilla", p, NOISE), C, objective=objective, include_noise=False)
    # default search interval: 1e-2..1e6 tokens per parameter
    grid = np.linspace(0.5 * math.log(C / K / 1e6), 0.5 * math.log(C / K / 1e-2), 4001)
    N = np.exp(grid)[:, None]
    values = brute_objective(objective, loss(p, N, C / (K * N)))
    i = np.argmin(values)
    assert dec.choice.objective_value <= values[i] * (1 + 1e-12)
    assert abs(math.log(dec.choice.N) - grid[i]) <= 2 * (grid[1] - grid[0])
    n, d = dec.choice.N, dec.choice.D
    assert K * n * d == pytest.approx(C)
    assert dec.choice.objective_value == pytest.approx(brute_objective(objective, loss(p, n, d)))


def test_choice_with_noise_equals_grid_optimum_under_common_random_numbers():
    p = chinchilla_draws()
    dec = choose_allocation(post("chinchilla", p, NOISE), C, objective="cvar:0.9", seed=4)
    n, d = dec.choice.N, dec.choice.D
    eps = np.log(dec.choice.loss_draws) - np.log(loss(p, n, d))  # the noise draws it used
    assert np.std(eps) == pytest.approx(0.02 * math.sqrt(5 / 3), rel=0.2)  # t_5 sd
    grid = np.linspace(math.log(n) - 1.0, math.log(n) + 1.0, 2001)
    N = np.exp(grid)[:, None]
    values = brute_objective("cvar:0.9", loss(p, N, C / (K * N)) * np.exp(eps))
    assert dec.choice.objective_value <= values.min() * (1 + 1e-12)
    assert abs(math.log(n) - grid[np.argmin(values)]) <= 2 * (grid[1] - grid[0])


@pytest.mark.parametrize("objective", OBJECTIVES)
def test_choice_is_never_worse_than_plugin(objective):
    p = chinchilla_draws(seed=1)
    dec = choose_allocation(post("chinchilla", p, NOISE), 1e22, objective=objective)
    median = {k: np.median(v) for k, v in p.items()}
    assert dec.plugin.N == pytest.approx(hoffmann_n_opt(median, 1e22), rel=1e-9)
    assert dec.choice.objective_value <= dec.plugin.objective_value
    # the plug-in split ignores the spread of the draws: the risk-aware choice differs from it
    assert abs(math.log(dec.choice.N / dec.plugin.N)) > 0.02


def test_regret_and_within_1pct_by_brute_force():
    p = chinchilla_draws(seed=2)
    dec = choose_allocation(post("chinchilla", p, NOISE), C)
    best = loss(p, hoffmann_n_opt(p, C), C / (K * hoffmann_n_opt(p, C)))
    at_plugin = loss(p, dec.plugin.N, dec.plugin.D)
    assert dec.regret_of_plugin == pytest.approx(np.mean(at_plugin - best), rel=1e-6)
    assert dec.regret_of_plugin > 0
    at_choice = loss(p, dec.choice.N, dec.choice.D)
    assert dec.choice.p_within_1pct == pytest.approx(np.mean(at_choice <= 1.01 * best))
    assert dec.plugin.p_within_1pct == pytest.approx(np.mean(at_plugin <= 1.01 * best))


@pytest.mark.parametrize("n_draws", [1, 20])
def test_identical_draws_without_noise_give_closed_form(n_draws):
    one = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    p = {k: np.full(n_draws, v) for k, v in one.items()}
    dec = choose_allocation(post("chinchilla", p, {"sigma": 0.0}), C, objective="quantile:0.9")
    n_star = hoffmann_n_opt(one, C)
    assert dec.choice.N == pytest.approx(n_star, rel=1e-5)
    assert dec.plugin.N == pytest.approx(n_star, rel=1e-9)
    assert dec.regret_of_plugin == pytest.approx(0.0, abs=1e-12)
    assert dec.choice.p_within_1pct == 1.0
    assert dec.choice.objective_value == pytest.approx(loss(one, n_star, C / (K * n_star)))


def test_kaplan_choice_equals_dense_grid():
    p = {"N_c": np.array([8.8e13]), "D_c": np.array([5.4e13]), "alpha_N": np.array([0.076]),
         "alpha_D": np.array([0.095])}
    dec = choose_allocation(post("kaplan", p, None), 1e21)
    grid = np.linspace(*np.log([1e6, 1e14]), 20001)
    N = np.exp(grid)
    r = p["alpha_N"] / p["alpha_D"]
    values = ((p["N_c"] / N) ** r + p["D_c"] / (1e21 / (K * N))) ** p["alpha_D"]
    assert math.log(dec.choice.N) == pytest.approx(grid[np.argmin(values)], abs=2e-3)
    assert dec.plugin.N == pytest.approx(dec.choice.N, rel=1e-4)
    assert dec.regret_of_plugin == pytest.approx(0.0, abs=1e-9)


def test_decision_to_dict_is_plain_json():
    dec = choose_allocation(post("chinchilla", chinchilla_draws(n=100), NOISE), C, objective="cvar:0.9")
    out = json.loads(json.dumps(dec.to_dict(level=0.9)))
    assert set(out) == {"compute", "objective", "choice", "plugin", "regret_of_plugin"}
    assert out["objective"] == "cvar:0.9"
    assert set(out["choice"]) == {"N", "D", "objective_value", "loss", "p_within_1pct"}
    assert set(out["plugin"]) == {"N", "D", "objective_value", "p_within_1pct"}
    band = out["choice"]["loss"]
    assert band["lo"] < band["median"] < band["hi"]
    assert band["hi"] == pytest.approx(np.quantile(dec.choice.loss_draws, 0.95))


def test_bounds_are_respected_with_a_warning_at_the_edge():
    p = chinchilla_draws(n=100)
    with pytest.warns(UserWarning, match="edge of the search interval"):
        dec = choose_allocation(post("chinchilla", p, NOISE), C, bounds=(1e8, 1e10))
    assert dec.choice.N == pytest.approx(1e10)
    assert dec.plugin.N > 1e10  # reported, though outside the bounds


def test_law_of_one_input_cannot_be_split():
    p = {"A": np.array([10.0]), "alpha": np.array([0.1])}
    with pytest.raises(FitError, match="law of N and D"):
        choose_allocation(post("power_pure", p, None), C)


# --- targets ------------------------------------------------------------------------------------


def test_prob_below_target_at_a_run_without_noise():
    p = chinchilla_draws()
    N, D = 7e10, 1.4e12
    got = prob_below_target(post("chinchilla", p, NOISE), 1.95, N=N, D=D, include_noise=False)
    assert got == pytest.approx(np.mean(loss(p, N, D) <= 1.95))
    with pytest.raises(FitError, match="not both"):
        prob_below_target(post("chinchilla", p, NOISE), 1.95, N=N, D=D, C=C)


def test_compute_for_target_grows_with_probability():
    p = chinchilla_draws(n=200)
    budgets = []
    for prob in (0.5, 0.8, 0.95):
        tc = compute_for_target(post("chinchilla", p, NOISE), 2.0, probability=prob)
        budgets.append(tc.compute)
        assert K * tc.N * tc.D == pytest.approx(tc.compute)
        assert tc.objective == f"quantile:{prob:g}"
        kw = {"objective": tc.objective}
        reached = prob_below_target(post("chinchilla", p, NOISE), 2.0, C=tc.compute, **kw)
        short = prob_below_target(post("chinchilla", p, NOISE), 2.0, C=tc.compute * 0.99, **kw)
        assert short < prob <= reached
    assert budgets[0] < budgets[1] < budgets[2]
    assert set(tc.to_dict()) == {"target_loss", "probability", "compute", "N", "D"}


def test_compute_for_target_is_least_budget_by_brute_force():
    """No split of any smaller budget reaches the target with the required probability."""
    p = chinchilla_draws(n=100)
    tc = compute_for_target(post("chinchilla", p, None), 2.0, probability=0.8)
    budgets = np.geomspace(tc.compute / 1.2, tc.compute * 1.2, 201)
    N = np.geomspace(1e10, 1e12, 601)[:, None, None]
    best = np.mean(loss(p, N, budgets[:, None] / (K * N)) <= 2.0, axis=-1).max(axis=0)
    least = budgets[np.argmax(best >= 0.8)]
    assert tc.compute == pytest.approx(least, rel=2 * (budgets[1] / budgets[0] - 1))


def test_unreachable_target_is_a_clear_error():
    p = chinchilla_draws(n=100)  # irreducible loss E ~ 1.8
    with pytest.raises(FitError, match="unreachable.*irreducible loss"):
        compute_for_target(post("chinchilla", p, NOISE), 1.7, probability=0.9)
    with pytest.raises(FitError, match="unreachable"):
        inference_aware(post("chinchilla", p, NOISE), 1.7, inference_tokens=1e12)


# --- inference-aware allocation -----------------------------------------------------------------


def test_inference_aware_model_shrinks_as_inference_grows():
    p = chinchilla_draws(n=80)
    runs = [
        inference_aware(post("chinchilla", p, NOISE), 2.0, inference_tokens=T)
        for T in (0, 1e12, 1e13, 1e14)
    ]
    N = [r.N for r in runs]
    assert N[0] > N[1] > N[2] > N[3]
    assert all(a.D < b.D for a, b in zip(runs, runs[1:]))
    medians = [np.median(r.N_draws) for r in runs]
    assert medians[0] > medians[1] > medians[2] > medians[3]
    out = json.loads(json.dumps(runs[2].to_dict()))
    assert out["total_flops"] == pytest.approx(6 * N[2] * runs[2].D + 2 * N[2] * 1e13)


def test_inference_aware_single_draw_by_brute_force():
    one = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    p = {k: np.array([v]) for k, v in one.items()}
    target, T = 2.0, 1e13
    dec = inference_aware(post("chinchilla", p, None), target, inference_tokens=T)
    # least D reaching the target at N, in closed form, then total FLOPs on a dense grid of N
    N = np.geomspace(1e9, 1e12, 200001)
    slack = target - one["E"] - one["A"] / N ** one["alpha"]
    D = np.where(slack > 0, (one["B"] / np.where(slack > 0, slack, 1)) ** (1 / one["beta"]), np.inf)
    i = np.argmin(K * N * D + 2 * N * T)
    assert dec.N == pytest.approx(N[i], rel=1e-3)
    assert dec.D == pytest.approx(D[i], rel=1e-3)
    assert dec.N_draws[0] == pytest.approx(dec.N, rel=1e-6)
    assert loss(one, dec.N, dec.D) == pytest.approx(target, rel=1e-8)


def _with_form_error(p, noise, slope, scatter, seed=0):
    """Chinchilla draws with a form error along C: ``slope`` (mean, sd) per decade beyond the
    domain of 1e8-1e10 parameters, 1e9-1e11 tokens, 6e17-6e21 FLOPs; ``scatter`` per decade."""
    from bayescale.laws import get_law
    from bayescale.posterior import Domain, Posterior

    n = len(p["E"])
    rng = np.random.default_rng(seed)
    noise = {"sigma": 0.0} if noise is None else noise
    return Posterior(law=get_law("chinchilla"), params=p, sigma=noise["sigma"],
                     nu=noise.get("nu"), flops_per_param_token=K,
                     domain=Domain({"N": (1e8, 1e10), "D": (1e9, 1e11), "C": (6e17, 6e21)}),
                     form_slopes=(slope[0] + slope[1] * rng.standard_normal(n))[:, None],
                     form_scatter=np.full(n, scatter), form_directions=("C",))


def test_inference_aware_form_error_single_draw_by_brute_force():
    """One draw, no noise, a form error rising 0.01 nats of log loss per decade of compute
    beyond the data: the least D at each N is where law x e^(0.01 r_C) first reaches the
    target, found here on dense grids of N and D."""
    one = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    p = {k: np.array([v]) for k, v in one.items()}
    target, T = 2.0, 1e13
    post = _with_form_error(p, None, (0.01, 0.0), 0.0)
    dec = inference_aware(post, target, inference_tokens=T)
    assert dec.form_error and dec.to_dict()["form_error"] is True
    N = np.geomspace(1e9, 1e12, 3001)[:, None]
    D = np.geomspace(1e10, 1e16, 6001)[None, :]
    r = np.maximum(0.0, np.log10(K * N * D / 6e21))
    ok = np.log(loss(one, N, D)) + 0.01 * r <= np.log(target)
    least = np.where(ok.any(axis=1), D[0, np.argmax(ok, axis=1)], np.inf)
    cost = K * N[:, 0] * least + 2 * N[:, 0] * T
    i = np.argmin(cost)
    # the total is flat along the optimum's valley: N and D to 2%; the total no worse than the
    # dense grids' best, and within 0.1% of it (the grids' steps cost them a little)
    assert dec.N == pytest.approx(N[i, 0], rel=2e-2)
    assert dec.D == pytest.approx(least[i], rel=2e-2)
    total = dec.training_flops + dec.inference_flops
    assert cost[i] * (1 - 1e-3) <= total <= cost[i] * (1 + 1e-6)
    assert np.log(loss(one, dec.N, dec.D)) + 0.01 * np.log10(K * dec.N * dec.D / 6e21) \
        == pytest.approx(np.log(target), abs=1e-8)
    # the law alone reaches the target sooner: the form error costs compute here
    plain = inference_aware(post, target, inference_tokens=T, form_error=False)
    assert not plain.form_error
    assert plain.training_flops + plain.inference_flops < 0.99 * cost[i]


def test_inference_aware_with_no_inference_is_compute_for_target():
    """With T = 0 the train + serve search minimises training FLOPs alone, as
    compute_for_target does by bisection on C with its quantile split: the two searches, with
    the form error and the noise included (one seed, the same draws), agree."""
    p = chinchilla_draws(n=300)
    post = _with_form_error(p, NOISE, (-0.01, 0.02), 0.01)
    target = 2.1
    dec = inference_aware(post, target, inference_tokens=0.0, probability=0.9)
    tc = compute_for_target(post, target, probability=0.9)
    # 2%: the 0.9-quantile of 300 draws is jagged in N (measured 0.9% apart; 35% without the
    # form error)
    assert dec.training_flops == pytest.approx(tc.compute, rel=2e-2)
    assert dec.N == pytest.approx(tc.N, rel=0.1)
    without = inference_aware(post, target, inference_tokens=0.0, probability=0.9,
                              form_error=False)
    assert abs(without.training_flops / tc.compute - 1) > 0.2  # the form error mattered


def test_a_form_error_reaches_a_target_below_the_laws_floor():
    """One draw, no noise, E = 1.82, and a form error falling 0.02 per decade of compute beyond
    the data: the law alone never reaches 1.80 nats, its predictive beyond the data does. Both
    searches answer the least budget of a dense grid (they refused it, saying 'unreachable
    with unlimited compute', which their own predictive contradicts), warn that it lies
    beyond 1000x the data, and the form-error-free answer is still refused."""
    from bayescale.extrapolation import ExtrapolationWarning

    one = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    p = {k: np.array([v]) for k, v in one.items()}
    post = _with_form_error(p, None, (-0.02, 0.0), 0.0)
    with pytest.warns(ExtrapolationWarning, match="beyond the training data"):
        tc = compute_for_target(post, 1.80, probability=0.5)
    C = np.geomspace(1e23, 1e30, 1401)[:, None]
    N = np.geomspace(1e9, 1e15, 3001)[None, :]
    D = C / (K * N)
    ok = np.log(loss(one, N, D)) - 0.02 * np.log10(C / 6e21) <= np.log(1.80)
    least = C[np.argmax(ok.any(axis=1)), 0]
    assert tc.compute == pytest.approx(least, rel=2 * (C[1, 0] / C[0, 0] - 1))
    with pytest.warns(ExtrapolationWarning):
        dec = inference_aware(post, 1.80, inference_tokens=0.0, probability=0.5)
    assert dec.form_error and dec.training_flops == pytest.approx(tc.compute, rel=1e-2)
    with pytest.raises(FitError, match="unreachable"):
        inference_aware(post, 1.80, inference_tokens=0.0, probability=0.5, form_error=False)


def test_x_for_target_when_the_form_error_makes_the_largest_x_miss():
    """A one-variable law with a form error rising 0.01 per decade beyond x = 1e4: the target
    is missed at x = 1e45 (+0.41 on log loss) and reached near 5e4; the least such x matches a
    dense grid, and a target no x reaches is one error that says why."""
    from bayescale.laws import get_law
    from bayescale.posterior import Domain, Posterior

    post = Posterior(law=get_law("power"), params={"E": [1.0], "A": [5.0], "alpha": [0.3]},
                     sigma=0.0, domain=Domain({"x": (10.0, 1e4)}), form_slopes=[[0.01]],
                     form_scatter=[0.0], form_directions=("x",))
    tc = compute_for_target(post, 1.2, probability=0.5, compute_range=(10.0, 1e45))
    x = np.geomspace(1e4, 1e7, 300001)
    ok = np.log(1.0 + 5.0 * x ** -0.3) + 0.01 * np.log10(x / 1e4) <= np.log(1.2)
    assert tc.compute == pytest.approx(x[np.argmax(ok)], rel=1e-4)
    with pytest.raises(FitError, match="largest values of x can fare worse"):
        compute_for_target(post, 1.01, probability=0.5, compute_range=(10.0, 1e45))


def test_compute_for_target_when_the_form_error_makes_the_largest_budget_miss():
    """The form error's spread grows with the distance from the data: at 1e45 FLOPs no split
    reaches the target with probability 0.9, at some budget in between one does. The least
    such budget is found (it was a 'not reached within 1e45 FLOPs' error), and it reaches the
    target where a budget 1% smaller does not."""
    from bayescale._draws import common_noise

    p = chinchilla_draws(n=300)
    post = _with_form_error(p, NOISE, (0.0, 0.01), 0.005)
    common = common_noise(post, 0, True)
    far = np.log(1e45 / K) / 2  # N = D = sqrt(C / 6): the spread there is 23 decades' worth
    assert np.quantile(common.log_loss(far, far), 0.9) > np.log(2.05)
    tc = compute_for_target(post, 2.05, probability=0.9)
    assert 1e23 < tc.compute < 1e26
    reach = np.mean(common.log_loss(np.log(tc.N), np.log(tc.D)) <= np.log(2.05))
    assert reach >= 0.9
    below = choose_allocation(post, 0.99 * tc.compute, objective="quantile:0.9").choice
    assert np.mean(common.log_loss(np.log(below.N), np.log(below.D)) <= np.log(2.05)) < 0.9
    with pytest.raises(FitError, match="largest budgets can fare worse"):
        compute_for_target(post, 1.95, probability=0.9)
    # a target already reached at the smallest budget searched is said so, though the largest
    # misses it
    above = choose_allocation(post, 1.5 * tc.compute, objective="quantile:0.9").choice
    assert np.mean(common.log_loss(np.log(above.N), np.log(above.D)) <= np.log(2.05)) >= 0.9
    with pytest.raises(FitError, match="already reached"):
        compute_for_target(post, 2.05, probability=0.9, compute_range=(1.5 * tc.compute, 1e45))


# --- value of the next experiment ---------------------------------------------------------------


def _conjugate_power_pure(sigma: float):
    """Three runs of power_pure (x = 1e3, 3e3, 1e4) with Gaussian noise ``sigma`` and a Gaussian
    prior on (log A, alpha): the exact posterior covariance V and 4000 draws from it."""
    rng = np.random.default_rng(0)
    x = np.array([1e3, 3e3, 1e4])
    H = np.c_[np.ones(3), -np.log(x)]
    prior_mean, prior_cov = np.array([2.0, 0.3]), np.diag([4.0, 1.0])
    y = H @ np.array([2.5, 0.32]) + sigma * rng.standard_normal(3)
    V = np.linalg.inv(np.linalg.inv(prior_cov) + H.T @ H / sigma**2)
    m = V @ (np.linalg.solve(prior_cov, prior_mean) + H.T @ y / sigma**2)
    theta = rng.multivariate_normal(m, V, size=4000)
    return V, {"A": np.exp(theta[:, 0]), "alpha": theta[:, 1]}


def test_value_of_experiment_matches_exact_conjugate_update():
    """power_pure with Gaussian noise of known sigma and a Gaussian prior on (log A, alpha) is
    Bayesian linear regression in log x: the posterior variance after one more run is exact."""
    sigma = 0.05
    V, params = _conjugate_power_pure(sigma)

    x0, pilots = 1e8, np.array([1e3, 3e4, 1e5, 1e6])
    g = np.array([1.0, -math.log(x0)])  # log L(x0) = g . theta
    exact_after = []
    for xc in pilots:
        h = np.array([1.0, -math.log(xc)])
        V_new = V - np.outer(V @ h, V @ h) / (sigma**2 + h @ V @ h)
        exact_after.append(g @ V_new @ g)
    exact_after = np.array(exact_after)

    table = value_of_experiment(
        post("power_pure", params, {"sigma": sigma}), {"x": pilots, "cost": pilots},
        quantity="log_loss", at={"x": x0},
    ).sort_index()
    # Monte Carlo error of a variance from ~1000+ effective draws is a few percent
    assert np.allclose(table["var_now"], g @ V @ g, rtol=0.08)
    assert np.allclose(table["var_after"], exact_after, rtol=0.08)
    assert np.allclose(table["reduction"], g @ V @ g - exact_after, rtol=0.1)
    assert ((table["ess_mean"] > 500) & (table["ess_mean"] <= 4000)).all()
    exact_rank = np.argsort(-(g @ V @ g - exact_after) / pilots)
    assert list(table.sort_values("rank").index) == list(exact_rank)


def test_value_of_experiment_beyond_the_data_counts_the_form_errors_scatter():
    """The conjugate case again, with a form error beyond x = 1e4: no slope, a run-to-run part
    of sd 0.05 per decade. A pilot r decades beyond the data then measures the law through
    noise of variance sigma^2 + (0.05 r)^2, and the exact update uses that; a pilot inside the
    data is unchanged. (Without the scatter in the outcome and the likelihood, the pilot 2
    decades out was credited with the update of sigma alone.)"""
    from bayescale.laws import get_law
    from bayescale.posterior import Domain, Posterior

    sigma, tau = 0.05, 0.05
    V, params = _conjugate_power_pure(sigma)
    d = Posterior(law=get_law("power_pure"), params=params, sigma=sigma, domain=Domain({"x": (1e3, 1e4)}),
                  form_slopes=np.zeros((4000, 1)), form_scatter=np.full(4000, tau),
                  form_directions=("x",))
    x0, pilots = 1e8, np.array([3e3, 1e5, 1e6])
    g = np.array([1.0, -math.log(x0)])
    exact = []
    for xc in pilots:
        h = np.array([1.0, -math.log(xc)])
        noise = sigma**2 + (tau * max(0.0, math.log10(xc / 1e4))) ** 2
        exact.append(g @ V @ g - (g @ V @ h) ** 2 / (noise + h @ V @ h))
    table = value_of_experiment(d, {"x": pilots, "cost": pilots}, quantity="log_loss",
                                at={"x": x0}, n_sim=512).sort_index()
    assert np.allclose(table["var_after"], exact, rtol=0.08)
    # the farthest pilot leaves 3.7x the variance that sigma alone would leave
    h = np.array([1.0, -math.log(1e6)])
    sigma_only = g @ V @ g - (g @ V @ h) ** 2 / (sigma**2 + h @ V @ h)
    assert abs(table["var_after"].iloc[2] / sigma_only - 1) > 0.3
    assert exact[2] / sigma_only == pytest.approx(3.7, rel=0.01)  # README's "3.7 times"


def test_value_of_experiment_log_n_opt_and_errors():
    p = chinchilla_draws(n=1000)
    runs = [(1e9, 2e10), (4e9, 8e10), (1e10, 2e11)]
    table = value_of_experiment(post("chinchilla", p, NOISE), runs, quantity="log_N_opt", C=C, n_sim=64)
    assert np.allclose(table["cost"].sort_values(), sorted(K * n * d for n, d in runs))
    assert np.allclose(table["var_now"], np.var(np.log(hoffmann_n_opt(p, C)), ddof=1),
                       rtol=1e-9)
    assert (table["reduction"] >= -1e-3 * table["var_now"]).all()
    with pytest.raises(FitError, match="needs the budget C"):
        value_of_experiment(post("chinchilla", p, NOISE), runs)
    with pytest.raises(FitError, match="sigma"):
        value_of_experiment(post("chinchilla", p, {"sigma": 0.0}), runs, C=C)
    with pytest.raises(FitError, match="row 1: N"):
        value_of_experiment(post("chinchilla", p, NOISE), [(1e9, 2e10), (-1.0, 2e10)], C=C)


def test_value_of_experiment_refuses_candidates_with_collapsed_weights():
    # 500 draws whose exponent spreads 0.002: the log loss at x = 1e9 spreads ~0.04 nats, seen
    # through noise of 0.002, so an outcome there is matched by a few draws; at x = 10 by dozens
    rng = np.random.default_rng(1)
    params = {"A": np.full(500, math.exp(2.0)), "alpha": 0.3 + 0.002 * rng.standard_normal(500)}
    pilots = {"x": [10.0, 1e9], "cost": [1.0, 1.0]}
    with pytest.warns(UserWarning, match=r"1 of 2 candidate pilot runs \(x=1e\+09\) are not"):
        table = value_of_experiment(post("power_pure", params, {"sigma": 0.002}), pilots,
                                    quantity="log_loss", at={"x": 1e10}, n_sim=64)
    near, far = table.set_index("x").loc[10.0], table.set_index("x").loc[1e9]
    assert near["reliable"] and near["ess_min"] >= 10 and near["rank"] == 1
    assert not far["reliable"] and far["ess_min"] < 10 and far["rank"] == 2
    assert np.isnan(far["var_after"]) and np.isnan(far["reduction_per_cost"])
    assert near["var_after"] < near["var_now"]


def test_compute_for_target_of_kaplan_compute_law_is_quantile_of_closed_form():
    # power_pure on x = C is Kaplan's L(C) = (C / C0)^-alpha_C: each draw reaches the target at
    # C_i = C0_i target^(-1/alpha_i), so the least C reached with probability p is the p-quantile
    rng = np.random.default_rng(1)
    alpha = 0.050 + 0.002 * rng.standard_normal(400)
    c0 = 2.3e8 * 8.64e19 * np.exp(0.2 * rng.standard_normal(400))  # Kaplan's 2.3e8 PF-days
    draws = {"A": c0 ** alpha, "alpha": alpha}
    tc = compute_for_target(post("power_pure", draws, None), 2.6, probability=0.9)
    c_i = c0 * 2.6 ** (-1 / alpha)
    assert tc.compute == pytest.approx(np.quantile(c_i, 0.9), rel=0.02)
    assert math.isnan(tc.N) and set(tc.to_dict()) == {"target_loss", "probability", "compute"}
    with pytest.raises(FitError, match="not reached"):
        compute_for_target(post("power_pure", draws, None), 2.6, compute_range=(1e6, 1e10))


def test_capped_decision_and_what_the_cap_costs_by_brute_force():
    p = chinchilla_draws(n=200, seed=3)
    cap = 3e10  # below every draw's N* at 5.88e23 FLOPs (~7e10)
    dec = choose_allocation(post("chinchilla", p, None), C, max_params=cap)
    N = np.geomspace(1e9, 1e12, 3001)
    mean = loss(p, N[:, None], C / (K * N[:, None])).mean(axis=1)
    inside = N <= cap
    assert dec.choice.N == pytest.approx(cap, rel=1e-6)
    assert mean[inside].min() * (1 - 1e-5) <= dec.choice.objective_value <= mean[inside].min()
    assert dec.uncapped.N == pytest.approx(N[np.argmin(mean)], rel=0.01)
    assert dec.cap_cost == pytest.approx(mean[inside].min() - mean.min(), rel=1e-3)
    assert dec.cap_cost > 0 and dec.plugin.N <= cap * (1 + 1e-12)
    # regret against each draw's best split within the cap: its optimum, clipped to the cap
    n_best = np.minimum(hoffmann_n_opt(p, C), cap)
    best = loss(p, n_best, C / (K * n_best))
    assert dec.regret_of_plugin == pytest.approx(
        np.mean(loss(p, dec.plugin.N, dec.plugin.D) - best), rel=1e-6)
    out = dec.to_dict()
    assert out["caps"] == {"max_params": cap, "max_tokens": None}
    assert out["cap_cost"]["objective"] == pytest.approx(dec.cap_cost)
    # a token cap that binds: D <= 5e11 forces N >= C / (6 * 5e11)
    dec = choose_allocation(post("chinchilla", p, None), C, max_tokens=5e11)
    assert dec.choice.D <= 5e11 * (1 + 1e-9) and dec.choice.N == pytest.approx(C / (K * 5e11))
    assert choose_allocation(post("chinchilla", p, None), C).caps is None


def test_capped_compute_for_target_by_brute_force():
    p = chinchilla_draws(n=100)
    free = compute_for_target(post("chinchilla", p, None), 2.0, probability=0.8)
    cap = free.N / 3
    tc = compute_for_target(post("chinchilla", p, None), 2.0, probability=0.8, max_params=cap)
    assert tc.N <= cap * (1 + 1e-9) and tc.compute > free.compute
    budgets = np.geomspace(tc.compute / 1.2, tc.compute * 1.2, 201)
    N = np.geomspace(cap / 100, cap, 601)[:, None, None]
    best = np.mean(loss(p, N, budgets[:, None] / (K * N)) <= 2.0, axis=-1).max(axis=0)
    least = budgets[np.argmax(best >= 0.8)]
    assert tc.compute == pytest.approx(least, rel=2 * (budgets[1] / budgets[0] - 1))
    with pytest.raises(FitError, match="within the caps"):
        compute_for_target(post("chinchilla", p, None), 2.0, probability=0.8, max_params=cap,
                           max_tokens=1e11)
