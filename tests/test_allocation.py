"""Compute-optimal allocation, isoFLOP profiles and data sufficiency, on fixed synthetic draws."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from scipy.optimize import brentq, minimize_scalar

from bayescale._jax import jnp
from bayescale.allocation import (
    _isoflop_minimum,
    compute_optimal,
    data_sufficiency,
    isoflop_profile,
    numerical_optimum,
)
from bayescale.errors import FitError
from bayescale.laws import LAWS, chinchilla_exponents, chinchilla_optimum

from conftest import chinchilla_draws  # noqa: E402
from conftest import post  # noqa: E402

BUDGETS = np.logspace(18, 26, 9)




def kaplan_draws(n: int = 200, seed: int = 1) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((4, n))
    return {
        "N_c": 8.8e13 * np.exp(0.1 * z[0]),
        "D_c": 5.4e13 * np.exp(0.1 * z[1]),
        "alpha_N": 0.076 + 0.002 * z[2],
        "alpha_D": 0.095 + 0.002 * z[3],
    }


def kaplan_optimum(p, C, k=6.0):
    """Independent derivation: minimise (N_c/N)^r + D_c k N / C, r = alpha_N/alpha_D, so
    N*^(r+1) = r N_c^r C / (k D_c)."""
    r = (p["alpha_N"] / p["alpha_D"])[:, None]
    log_n = (np.log(r) + r * np.log(p["N_c"])[:, None] + np.log(C / k) - np.log(p["D_c"])[:, None])
    return np.exp(log_n / (r + 1))


def two_term(log_N, log_D, *, E, A, alpha, A2, alpha2, B, beta):
    """E + A N^-alpha + A2 N^-alpha2 + B D^-beta: N* is not a power law of C."""
    terms = jnp.stack(jnp.broadcast_arrays(
        jnp.log(E) + 0 * log_N, jnp.log(A) - alpha * log_N, jnp.log(A2) - alpha2 * log_N,
        jnp.log(B) - beta * log_D,
    ))
    return jnp.log(jnp.sum(jnp.exp(terms), axis=0))


TWO_TERM = replace(
    LAWS["chinchilla"], name="two_term", params=("E", "A", "alpha", "A2", "alpha2", "B", "beta"),
    fn=two_term, formula="E + A/N^alpha + A2/N^alpha2 + B/D^beta",
)


def test_numerical_optimum_matches_chinchilla_closed_form():
    p = chinchilla_draws(500)
    num = numerical_optimum(post("chinchilla", p), BUDGETS)
    col = {k: v[:, None] for k, v in p.items()}
    n_ref, d_ref = chinchilla_optimum(BUDGETS, A=col["A"], B=col["B"], alpha=col["alpha"], beta=col["beta"])
    assert num.N_opt.shape == (500, BUDGETS.size)
    assert not num.at_edge.any()
    np.testing.assert_allclose(num.N_opt, n_ref, rtol=1e-6)
    np.testing.assert_allclose(num.D_opt, d_ref, rtol=1e-6)
    a_ref, _ = chinchilla_exponents(alpha=col["alpha"], beta=col["beta"])
    np.testing.assert_allclose(num.a, np.broadcast_to(a_ref, num.a.shape), rtol=1e-6)


def test_kaplan_numerical_matches_independent_closed_form():
    p = kaplan_draws()
    alloc = compute_optimal(post("kaplan", p), BUDGETS)
    assert not alloc.at_edge.any()
    np.testing.assert_allclose(alloc.N_opt, kaplan_optimum(p, BUDGETS), rtol=1e-6)
    # The optimum is a minimum: moving N either way along C = kND raises the loss of every draw.
    for factor in (0.9, 1.1):
        n = alloc.N_opt * factor
        d = BUDGETS / (6.0 * n)
        col = {k: v[:, None] for k, v in p.items()}
        other = np.exp(_kaplan_np(col, n, d))
        assert np.all(other > alloc.loss)


def _kaplan_np(p, N, D):
    return p["alpha_D"] * np.log((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D)


@pytest.mark.parametrize("law, draws", [("chinchilla", chinchilla_draws), ("kaplan", kaplan_draws)])
@pytest.mark.parametrize("k", [6.0, 8.0])
def test_budget_identity_per_draw(law, draws, k):
    alloc = compute_optimal(post(law, draws(), k=k), BUDGETS)
    np.testing.assert_allclose(k * alloc.N_opt * alloc.D_opt, np.broadcast_to(BUDGETS, alloc.N_opt.shape), rtol=1e-12)
    np.testing.assert_allclose(alloc.tokens_per_param, alloc.D_opt / alloc.N_opt)
    # a and b are the slopes of log N* and log D* in log C: finite differences agree
    h = 1e-4
    up = compute_optimal(post(law, draws(), k=k), BUDGETS * np.exp(h))
    np.testing.assert_allclose(np.log(up.N_opt / alloc.N_opt) / h, alloc.a, rtol=1e-3, atol=1e-6)
    np.testing.assert_allclose(np.log(up.D_opt / alloc.D_opt) / h, alloc.b, rtol=1e-3, atol=1e-6)


def test_chinchilla_exponents_and_scaling():
    p = chinchilla_draws(300)
    alloc = compute_optimal(post("chinchilla", p), [1e20, 1e22])
    a_ref = p["beta"] / (p["alpha"] + p["beta"])
    np.testing.assert_allclose(alloc.a[:, 0], a_ref, rtol=1e-12)
    np.testing.assert_allclose(alloc.b[:, 1], p["alpha"] / (p["alpha"] + p["beta"]), rtol=1e-12)
    # 100x the compute multiplies N* by 100^a and D* by 100^b, draw by draw.
    np.testing.assert_allclose(alloc.N_opt[:, 1] / alloc.N_opt[:, 0], 100.0**a_ref, rtol=1e-9)
    np.testing.assert_allclose(alloc.exponents()["a"], a_ref, rtol=1e-9)
    # The loss at the optimum is the law evaluated there (numpy, independent of jax).
    n, d = alloc.N_opt[:, 0], alloc.D_opt[:, 0]
    ref = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / d ** p["beta"]
    np.testing.assert_allclose(alloc.loss[:, 0], ref, rtol=1e-12)


def test_bounded_isoflop_minimum_matches_scipy_per_draw():
    # The optimiser decisions and voi share, on brackets of log N that cut off about half the
    # draws' optima (per budget, broadcast against the draws): bounded Brent per draw and budget
    # on the law in NumPy is the truth, the closed form says which edge a draw must stop at.
    p = kaplan_draws()
    C = np.array([1e19, 1e21, 1e23])
    log_c = np.log(C / 6.0)
    lo, hi = np.log([4e8, 5e9, 6.5e10]), np.log([5e8, 6.5e9, 8e10])
    col = {k: v[:, None] for k, v in p.items()}
    log_n, log_loss, _, at_lo, at_hi = _isoflop_minimum(LAWS["kaplan"], col, log_c, lo, hi)
    assert log_n.shape == (200, 3)
    free = np.log(kaplan_optimum(p, C))
    np.testing.assert_array_equal(at_lo, free < lo)
    np.testing.assert_array_equal(at_hi, free > hi)
    assert 0.2 < np.mean(at_lo | at_hi) < 0.8
    for s in range(200):
        q = {k: v[s] for k, v in p.items()}
        for j in range(3):
            res = minimize_scalar(
                lambda u: _kaplan_np(q, np.exp(u), np.exp(log_c[j] - u)), bounds=(lo[j], hi[j]),
                method="bounded", options={"xatol": 1e-10},
            )
            assert log_n[s, j] == pytest.approx(res.x, abs=1e-6)
    n = np.exp(log_n)
    np.testing.assert_allclose(log_loss, _kaplan_np(col, n, C / (6.0 * n)), rtol=1e-12)


def test_kaplan_local_slope_matches_finite_difference():
    p = kaplan_draws()
    C, h = BUDGETS, 1e-3
    opt = numerical_optimum(post("kaplan", p), C)
    up = numerical_optimum(post("kaplan", p), C * np.exp(h)).N_opt
    down = numerical_optimum(post("kaplan", p), C * np.exp(-h)).N_opt
    np.testing.assert_allclose(opt.a, np.log(up / down) / (2 * h), rtol=1e-6)
    np.testing.assert_allclose(opt.a, (p["alpha_D"] / (p["alpha_N"] + p["alpha_D"]))[:, None] + 0 * C, rtol=1e-9)


def test_local_slope_of_a_law_whose_exponent_drifts():
    p = {"E": np.array([1.7, 1.8]), "A": np.array([400.0, 500.0]), "alpha": np.array([0.3, 0.35]),
         "A2": np.array([20.0, 30.0]), "alpha2": np.array([0.1, 0.12]), "B": np.array([2000.0, 2100.0]),
         "beta": np.array([0.37, 0.33])}
    C, h = np.logspace(18, 26, 5), 1e-4
    opt = numerical_optimum(post(TWO_TERM, p), C)
    up = numerical_optimum(post(TWO_TERM, p), C * np.exp(h)).N_opt
    down = numerical_optimum(post(TWO_TERM, p), C * np.exp(-h)).N_opt
    np.testing.assert_allclose(opt.a, np.log(up / down) / (2 * h), rtol=1e-5)
    assert np.ptp(opt.a, axis=1).min() > 0.01  # the slope really changes with C
    alloc = compute_optimal(post(TWO_TERM, p), C)
    secant = np.log(alloc.N_opt[:, -1] / alloc.N_opt[:, 0]) / np.log(C[-1] / C[0])
    np.testing.assert_allclose(alloc.exponents()["a"], secant)


def test_no_interior_optimum_returns_flagged_edge():
    p = chinchilla_draws(500)  # same shapes as above: no new compilation
    flat_n = dict(p, alpha=np.zeros(500))  # N does not help: smallest model, all compute on data
    alloc = compute_optimal(post("chinchilla", flat_n), BUDGETS)
    assert alloc.at_edge.all()
    np.testing.assert_allclose(alloc.N_opt, 1.0)
    np.testing.assert_allclose(alloc.a, 0.0)
    flat_d = dict(p, beta=np.where(np.arange(500) % 2 == 0, 0.0, p["beta"]))
    alloc = compute_optimal(post("chinchilla", flat_d), BUDGETS)
    assert alloc.at_edge[::2].all() and not alloc.at_edge[1::2].any()
    np.testing.assert_allclose(alloc.N_opt[::2], np.broadcast_to(BUDGETS / 6.0, (250, BUDGETS.size)))
    np.testing.assert_allclose(alloc.a[::2], 1.0)
    assert np.all(np.isfinite(alloc.loss)) and np.all(np.isfinite(alloc.N_opt))
    assert alloc.to_dict()["budgets"][0]["frac_at_edge"] == 0.5


def test_one_variable_law_and_bad_inputs_raise():
    with pytest.raises(FitError, match="needs a law in N and D"):
        compute_optimal(post("power", {"E": [1.0], "A": [2.0], "alpha": [0.3]}), 1e20)
    with pytest.raises(FitError, match="missing beta"):
        compute_optimal(post("chinchilla", {k: v for k, v in chinchilla_draws(3).items() if k != "beta"}), 1e20)
    for bad in (-1e20, 0.0, np.nan, 3.0):
        with pytest.raises(FitError, match="compute budgets"):
            compute_optimal(post("chinchilla", chinchilla_draws(3)), [1e20, bad])
    with pytest.raises(FitError, match="NaN"):
        compute_optimal(post("chinchilla", dict(chinchilla_draws(3), A=[1.0, np.nan, 2.0])), 1e20)
    with pytest.raises(FitError, match="differ in length"):
        compute_optimal(post("chinchilla", dict(chinchilla_draws(3), A=[1.0, 2.0])), 1e20)


def test_summary_and_to_dict():
    p = chinchilla_draws(400)
    alloc = compute_optimal(post("chinchilla", p, {"sigma": np.full(400, 0.01)}),
                            [1e21, 5.88e23])
    table = alloc.summary(0.9)
    assert len(table) == 2 * 7 and set(table["quantity"]) >= {"N_opt", "D_opt", "tokens_per_param",
                                                              "loss", "new_run_loss"}
    assert np.all((table["lo"] <= table["median"]) & (table["median"] <= table["hi"]))
    rows = table.set_index(["compute", "quantity"])
    for c in (1e21, 5.88e23):  # a new run adds noise to the law: its band is the wider
        law, run = rows.loc[(c, "loss")], rows.loc[(c, "new_run_loss")]
        assert run["hi"] - run["lo"] > law["hi"] - law["lo"]
    out = json.loads(json.dumps(alloc.to_dict(0.9)))
    entry = out["budgets"][1]
    assert entry["compute"] == 5.88e23
    tpp = alloc.D_opt[:, 1] / alloc.N_opt[:, 1]
    assert entry["tokens_per_param"]["median"] == pytest.approx(np.median(tpp), rel=1e-12)
    assert entry["N_opt"]["lo"] == pytest.approx(np.quantile(alloc.N_opt[:, 1], 0.05), rel=1e-12)
    assert 15 < entry["tokens_per_param"]["median"] < 40  # Epoch's refit: ~20-26 at 5.88e23
    assert out["exponents"]["a"]["median"] == pytest.approx(
        np.median(p["beta"] / (p["alpha"] + p["beta"])), rel=1e-12)  # Hoffmann: a = b/(a+b)


def test_isoflop_profile_minimum_at_optimum():
    p = chinchilla_draws(40)
    C = 1e22
    prof = isoflop_profile(post("chinchilla", p), C, n_grid=801)
    step = np.log(prof.N[1] / prof.N[0])
    assert prof.loss.shape == (40, 801)
    np.testing.assert_allclose(6.0 * prof.N * prof.D, C, rtol=1e-12)
    best = prof.N[np.argmin(prof.loss, axis=1)]
    assert np.all(np.abs(np.log(best / prof.N_opt)) <= step)
    # default grid spans two decades around the median optimum
    assert np.log10(prof.N[-1] / prof.N[0]) == pytest.approx(2.0)
    assert np.log10(np.sqrt(prof.N[0] * prof.N[-1])) == pytest.approx(np.log10(np.median(prof.N_opt)))
    s = prof.summary(0.8)
    assert len(s) == 801 and np.all(s["lo"] <= s["hi"])
    np.testing.assert_allclose(s["median"], np.median(prof.loss, axis=0))
    np.testing.assert_allclose(s["lo"], np.quantile(prof.loss, 0.1, axis=0))
    with pytest.raises(FitError, match="between 1 and C/k"):
        isoflop_profile(post("chinchilla", p), C, N=[1e9, C])


@pytest.mark.parametrize("law, draws", [("chinchilla", chinchilla_draws), ("kaplan", kaplan_draws)])
def test_data_sufficiency_matches_brentq(law, draws):
    p = {k: v[:3] for k, v in draws().items()}
    sigma = np.array([0.01, 0.02, 0.05])
    sizes = np.array([1e8, 1e10, 1e12])
    # a fit with repeats (sigma_fit present): the threshold is its seed noise, e^sigma - 1
    tokens = data_sufficiency(post(law, p, {'sigma': sigma, 'sigma_fit': 0.03}), sizes)
    assert tokens.shape == (3, 3)
    for s in range(3):
        q = {k: v[s] for k, v in p.items()}
        for j, n in enumerate(sizes):
            if law == "chinchilla":
                def gap(log_d):  # log L(N, D) - log L(N, inf)
                    inf = q["E"] + q["A"] * n ** -q["alpha"]
                    return np.log1p(q["B"] * np.exp(-q["beta"] * log_d) / inf) - sigma[s]
            else:
                def gap(log_d):
                    rate = (q["N_c"] / n) ** (q["alpha_N"] / q["alpha_D"])
                    return q["alpha_D"] * np.log1p(q["D_c"] * np.exp(-log_d) / rate) - sigma[s]
            root = brentq(gap, 0.0, 200.0, xtol=1e-14, rtol=1e-14)
            assert np.log(tokens[s, j]) == pytest.approx(root, abs=1e-9)
    # bigger models need more data; an explicit threshold means the same as sigma = log1p(threshold)
    assert np.all(np.diff(tokens, axis=1) > 0)
    np.testing.assert_allclose(data_sufficiency(post(law, p), sizes, threshold=np.expm1(sigma)), tokens, rtol=1e-12)
    # without repeats sigma holds the misfit too: Kaplan's 2% is the default, whatever sigma is
    np.testing.assert_allclose(data_sufficiency(post(law, p, {'sigma': sigma}), sizes),
                               data_sufficiency(post(law, p), sizes, threshold=0.02), rtol=1e-12)


def test_data_sufficiency_kaplan_rule_of_thumb():
    # Kaplan et al. 2020 eq. 4.4: at a 2% gap, D ~ 5e3 N^0.74; with their fitted L(N, D)
    # (alpha_N 0.076, alpha_D 0.103, N_c 6.4e13, D_c 1.8e13) the closed form gives ~ that
    p = {"N_c": np.array([6.4e13]), "alpha_N": np.array([0.076]), "D_c": np.array([1.8e13]),
         "alpha_D": np.array([0.103])}
    sizes = np.array([1e8, 1e10])
    tokens = data_sufficiency(post("kaplan", p, {"sigma": 0.3}), sizes)[0]
    np.testing.assert_allclose(tokens, 5e3 * sizes**0.74, rtol=0.1)


def test_data_sufficiency_errors():
    with pytest.raises(FitError, match="needs a law in N and D"):
        data_sufficiency(post("power", {"E": [1.0], "A": [2.0], "alpha": [0.3]}, {"sigma": 0.02}), 1e9)
    with pytest.raises(FitError, match="must be positive"):
        data_sufficiency(post("chinchilla", chinchilla_draws(3)), 1e9, threshold=-0.1)
    with pytest.raises(FitError, match="positive"):
        data_sufficiency(post("chinchilla", chinchilla_draws(3), {"sigma": 0.02}), [1e9, -1.0])


def _brute_capped(p, C, lo, hi, k=6.0):
    """scipy's minimum of the Chinchilla loss (natural units) over lo <= N <= hi at C."""
    f = lambda u: p["E"] + p["A"] * np.exp(-p["alpha"] * u) + p["B"] * (C / (k * np.exp(u))) ** -p["beta"]  # noqa: E731
    res = minimize_scalar(f, bounds=(np.log(lo), np.log(hi)), method="bounded",
                          options={"xatol": 1e-11})
    return np.exp(res.x), f(res.x)


def test_capped_optimum_matches_scipy_within_the_caps():
    draws = chinchilla_draws(n=50)
    C = np.array([1e21, 1e24, 1e26])
    free = compute_optimal(post("chinchilla", draws), C, warn=False)
    for cap_n, cap_d in ((3e10, 1e15), (None, 5e11)):
        capped = compute_optimal(post("chinchilla", draws), C[:2] if cap_n is None else C,
                                 warn=False, max_params=cap_n, max_tokens=cap_d)
        assert np.all(capped.N_opt <= (cap_n or np.inf) * (1 + 1e-12))
        assert np.all(capped.D_opt <= cap_d * (1 + 1e-12))
        np.testing.assert_allclose(6 * capped.N_opt * capped.D_opt,
                                   capped.compute[None, :] + 0 * capped.N_opt, rtol=1e-12)
        for s in (0, 17, 49):
            p = {k: v[s] for k, v in draws.items()}
            for j, c in enumerate(capped.compute):
                n, loss = _brute_capped(p, c, max(1.0, c / (6 * cap_d)), min(cap_n or c, c / 6))
                assert capped.N_opt[s, j] == pytest.approx(n, rel=1e-4)
                # as low as scipy's bounded search finds, or lower (its tolerance is looser)
                assert loss * (1 - 1e-7) <= capped.loss[s, j] <= loss * (1 + 1e-12)
                assert capped.cap_cost[s, j] == pytest.approx(loss - free.loss[s, j], abs=1e-7)
        assert np.all(capped.cap_cost >= -1e-12)
        # 1e21 FLOPs: N* ~ 4e9 and D* ~ 4e10 are under both caps -> the caps cost nothing there
        assert np.all(capped.cap_cost[:, 0] < 1e-12) and np.all(capped.cap_cost[:, 1] > 0)
        out = capped.to_dict()
        assert out["caps"] == {"max_params": cap_n, "max_tokens": cap_d}
        assert out["budgets"][0]["frac_at_cap"] == 0.0 and out["budgets"][1]["frac_at_cap"] == 1.0
        assert "cap_cost" in set(capped.summary()["quantity"])
        # N* stops growing with C at the parameter cap (a = 0); at the token cap N = C/(k D_max)
        assert np.all(capped.a[:, 1] == (0.0 if cap_n else 1.0))
    assert free.caps is None and free.cap_cost is None


def test_caps_no_split_can_meet_are_a_clear_error():
    with pytest.raises(FitError, match="no split of 1e\\+26 FLOPs meets the caps"):
        compute_optimal(post("chinchilla", chinchilla_draws(n=20)), [1e20, 1e26], warn=False,
                        max_params=1e10, max_tokens=1e12)
    with pytest.raises(FitError, match="max_params must be a positive"):
        compute_optimal(post("chinchilla", chinchilla_draws(n=20)), 1e20, max_params=-1.0)


def test_data_constrained_allocation_matches_scipy_and_one_more_epoch():
    from bayescale.allocation import one_more_epoch

    rng = np.random.default_rng(4)
    draws = {"E": 1.87 * np.exp(0.01 * rng.standard_normal(20)),
             "A": 520.8 * np.exp(0.1 * rng.standard_normal(20)),
             "B": 1487.7 * np.exp(0.1 * rng.standard_normal(20)),
             "alpha": 0.35 + 0.01 * rng.standard_normal(20),
             "beta": 0.35 + 0.01 * rng.standard_normal(20),
             "R_N": 5.3 * np.exp(0.2 * rng.standard_normal(20)),
             "R_D": 15.4 * np.exp(0.2 * rng.standard_normal(20))}
    U, C = 1e10, np.array([1e21, 1e23])
    alloc = compute_optimal(post("data_constrained", draws), C, warn=False, unique_tokens=U)
    assert alloc.to_dict()["unique_tokens"] == U and "epochs" in set(alloc.summary()["quantity"])

    def law(p, n, d):  # Muennighoff's eq. 5-6 in NumPy
        G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
        ud = min(U, d)
        dp = ud + ud * p["R_D"] * (1 - np.exp(-(d / ud - 1) / p["R_D"]))
        un = min(n, G * (G * ud) ** (p["beta"] / p["alpha"]))
        np_ = un + un * p["R_N"] * (1 - np.exp(-(n / un - 1) / p["R_N"]))
        return p["E"] + p["A"] / np_ ** p["alpha"] + p["B"] / dp ** p["beta"]

    for s in (0, 7, 19):
        p = {k: v[s] for k, v in draws.items()}
        for j, c in enumerate(C):
            res = minimize_scalar(lambda u: law(p, np.exp(u), c / (6 * np.exp(u))),
                                  bounds=(np.log(1e6), np.log(c / 6 / 1e6)), method="bounded",
                                  options={"xatol": 1e-10})
            assert alloc.loss[s, j] <= res.fun * (1 + 1e-9)
            assert alloc.N_opt[s, j] == pytest.approx(np.exp(res.x), rel=1e-3)
            # epochs: scipy's optimal tokens over the unique tokens
            assert alloc.epochs[s, j] == pytest.approx(c / (6 * np.exp(res.x)) / U, rel=1e-3)
    # one more epoch against the same compute in parameters, at 4 epochs of U
    got = one_more_epoch(post("data_constrained", draws), 2e9, 4 * U, U)
    epoch = np.array([law({k: v[s] for k, v in draws.items()}, 2e9, 5 * U) for s in range(20)])
    params = np.array([law({k: v[s] for k, v in draws.items()}, 2e9 * 5 / 4, 4 * U)
                       for s in range(20)])
    assert got["probability"] == pytest.approx(np.mean(params > epoch))
    assert got["gain"]["median"] == pytest.approx(np.median(params - epoch), rel=1e-9)
    assert got["params"]["N"] == pytest.approx(2.5e9) and got["epoch"]["D"] == 5 * U
    with pytest.raises(FitError, match="needs the unique tokens"):
        compute_optimal(post("data_constrained", draws), 1e21, warn=False)
    with pytest.raises(FitError, match="no unique-token input"):
        compute_optimal(post("chinchilla", chinchilla_draws(n=5)), 1e21, unique_tokens=1e10)


def test_form_error_is_measured_at_the_budget_when_k_is_overridden():
    """One draw, no noise, a form error of +0.1 per decade of compute beyond 6e21 FLOPs: at a
    budget C counted as 8ND (flops_per_param_token=8), a new run's loss is the law times
    e^(0.1 log10(C / 6e21)). It was measured at 6ND, 0.75 C: 1.25% off at this slope."""
    from bayescale.laws import get_law
    from bayescale.posterior import Domain, Posterior

    one = {"E": 1.82, "A": 482.0, "B": 2085.0, "alpha": 0.348, "beta": 0.366}
    d = Posterior(law=get_law("chinchilla"), params={k: [v] for k, v in one.items()}, sigma=0.0,
                  domain=Domain({"N": (1e8, 1e10), "D": (1e9, 1e11), "C": (6e17, 6e21)}),
                  form_slopes=[[0.1]], form_scatter=[0.0], form_directions=("C",))
    budgets = np.array([1e23, 1e24])
    alloc = compute_optimal(d, budgets, flops_per_param_token=8.0, warn=False)
    expected = alloc.loss * np.exp(0.1 * np.log10(budgets / 6e21))
    assert np.allclose(alloc.new_run_loss, expected, rtol=1e-9)
    assert np.allclose(8.0 * alloc.N_opt * alloc.D_opt, budgets, rtol=1e-9)
