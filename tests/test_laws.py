"""Laws against direct NumPy evaluation, extreme sizes, and the Chinchilla closed form."""

import numpy as np
import pytest
from scipy.optimize import minimize_scalar

from bayescale.laws import LAWS, chinchilla_exponents, chinchilla_optimum, get_law
from bayescale.errors import FitError

pytestmark = pytest.mark.usefixtures("x64_module")

RNG = np.random.default_rng(0)
P_CH = dict(E=1.69, A=406.4, B=410.7, alpha=0.34, beta=0.28)
P_KA = dict(N_c=8.8e13, D_c=5.4e13, alpha_N=0.076, alpha_D=0.095)


def direct(law, p, N=None, D=None, x=None):
    if law == "chinchilla":
        return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    if law == "kaplan":
        return ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]
    if law == "power":
        return p["E"] + p["A"] * x ** -p["alpha"]
    return p["A"] * x ** -p["alpha"]


@pytest.mark.parametrize("name,params", [("chinchilla", P_CH), ("kaplan", P_KA)])
def test_two_variable_laws_match_numpy(name, params):
    N = 10 ** RNG.uniform(3, 15, 200)
    D = 10 ** RNG.uniform(3, 15, 200)
    got = np.asarray(LAWS[name].loss(params, N=N, D=D))
    np.testing.assert_allclose(got, direct(name, params, N=N, D=D), rtol=1e-12)


@pytest.mark.parametrize("name,params", [("power", dict(E=1.2, A=30.0, alpha=0.3)),
                                         ("power_pure", dict(A=30.0, alpha=0.08))])
def test_one_variable_laws_match_numpy(name, params):
    x = 10 ** RNG.uniform(0, 15, 200)
    got = np.asarray(LAWS[name].loss(params, x=x))
    np.testing.assert_allclose(got, direct(name, params, x=x), rtol=1e-12)


def test_extreme_sizes_stay_finite_and_exact():
    # From 1 to 1e300 parameters and tokens, in log space: no overflow, no NaN, and the
    # limits are the closed forms (E alone; E + A for N = 1 with infinite data).
    law = LAWS["chinchilla"]
    log_n = np.array([0.0, np.log(1e3), np.log(1e15), np.log(1e300), 5000.0])
    out = np.exp(np.asarray(law.log_loss(P_CH, {"N": log_n, "D": log_n[::-1]})))
    assert np.all(np.isfinite(out))
    assert out[2] == pytest.approx(direct("chinchilla", P_CH, N=1e15, D=1e15), rel=1e-12)
    # N = 1 (log 0) with D = e^5000: E + A exactly
    assert out[0] == pytest.approx(P_CH["E"] + P_CH["A"], rel=1e-12)
    both_huge = np.exp(float(law.log_loss(P_CH, {"N": 5000.0, "D": 5000.0})))
    assert both_huge == pytest.approx(P_CH["E"], rel=1e-12)
    tiny = np.exp(np.asarray(LAWS["kaplan"].log_loss(P_KA, {"N": np.log(1e3), "D": 5000.0})))
    assert np.isfinite(tiny) and tiny == pytest.approx((P_KA["N_c"] / 1e3) ** P_KA["alpha_N"])


def test_closed_form_optimum_matches_numerical_minimum():
    for C in (1e19, 5.88e23, 1e26):
        n_opt, d_opt = chinchilla_optimum(C, **{k: P_CH[k] for k in ("A", "B", "alpha", "beta")})
        assert 6 * n_opt * d_opt == pytest.approx(C, rel=1e-12)
        f = lambda u: direct("chinchilla", P_CH, N=np.exp(u), D=C / (6 * np.exp(u)))  # noqa: E731
        res = minimize_scalar(f, bounds=(np.log(1e6), np.log(1e15)), method="bounded",
                              options={"xatol": 1e-10})
        assert np.exp(res.x) == pytest.approx(n_opt, rel=1e-4)
    a, b = chinchilla_exponents(alpha=0.34, beta=0.28)
    assert a == pytest.approx(0.28 / 0.62) and a + b == pytest.approx(1.0)


def test_reference_parameterisation_round_trip():
    law = LAWS["chinchilla"]
    log_ref = {"N": np.log(1e9), "D": np.log(2e10)}
    s = dict(E=1.8, A_ref=0.4, B_ref=0.3, alpha=0.35, beta=0.37)
    p = law.from_sampled(s, log_ref)
    # the N-term at the reference N is A_ref, the D-term at the reference D is B_ref
    assert float(p["A"]) * 1e9 ** -0.35 == pytest.approx(0.4, rel=1e-12)
    assert float(p["B"]) * 2e10 ** -0.37 == pytest.approx(0.3, rel=1e-12)
    k = LAWS["kaplan"].from_sampled(dict(L_N_ref=2.0, L_D_ref=1.5, alpha_N=0.07, alpha_D=0.09),
                                    log_ref)
    assert (float(k["N_c"]) / 1e9) ** 0.07 == pytest.approx(2.0, rel=1e-12)


def test_unknown_law():
    with pytest.raises(FitError, match="unknown law"):
        get_law("chinchila")


P_BROKEN = dict(E=1.5, A=60.0, alpha=0.25, delta=0.2, x_b=1e8, f=0.7)


def test_new_laws_match_numpy():
    x = 10 ** RNG.uniform(0, 15, 200)
    N, D = 10 ** RNG.uniform(3, 15, 200), 10 ** RNG.uniform(3, 15, 200)
    tied = dict(E=1.7, A=400.0, B=1500.0, alpha=0.33)
    got = np.asarray(LAWS["chinchilla_tied"].loss(tied, N=N, D=D))
    np.testing.assert_allclose(got, 1.7 + 400 / N ** 0.33 + 1500 / D ** 0.33, rtol=1e-12)
    p = P_BROKEN
    want = p["E"] + p["A"] * x ** -p["alpha"] * (1 + (x / p["x_b"]) ** (1 / p["f"])) ** (
        -p["delta"] * p["f"])
    np.testing.assert_allclose(np.asarray(LAWS["broken_power"].loss(p, x=x)), want, rtol=1e-12)
    x_small = x[x < 1e9]  # -0.1 ln x + 4 stays positive there
    np.testing.assert_allclose(np.asarray(LAWS["log"].loss(dict(a=-0.1, b=4.0), x=x_small)),
                               4.0 - 0.1 * np.log(x_small), rtol=1e-12)
    # past the root of the line the loss is 1e-300, not NaN
    assert float(LAWS["log"].loss(dict(a=-0.1, b=4.0), x=1e30)) == pytest.approx(1e-300)


def test_broken_power_is_a_power_law_far_from_its_break():
    # local exponent -d log(L - E) / d log x: alpha well below the break, alpha + delta above
    law, p = LAWS["broken_power"], P_BROKEN

    def local(x):
        h = 1e-4
        g = [np.log(float(law.loss(p, x=x * np.exp(s))) - p["E"]) for s in (-h, h)]
        return -(g[1] - g[0]) / (2 * h)

    assert local(1e2) == pytest.approx(p["alpha"], abs=1e-6)
    assert local(1e14) == pytest.approx(p["alpha"] + p["delta"], abs=1e-6)
    assert p["alpha"] < local(p["x_b"]) < p["alpha"] + p["delta"]


def test_new_laws_reference_parameterisation():
    log_ref = {"x": np.log(1e7)}
    b = LAWS["broken_power"].from_sampled(
        dict(E=1.5, A_ref=0.8, alpha=0.25, delta=0.2, log_break_ref=2.0, f=0.7), log_ref)
    assert float(b["A"]) * 1e7 ** -0.25 == pytest.approx(0.8, rel=1e-12)
    assert float(b["x_b"]) == pytest.approx(1e7 * np.exp(2.0), rel=1e-12)
    line = LAWS["log"].from_sampled(dict(L_ref=3.0, a=-0.1), log_ref)
    assert float(LAWS["log"].loss(line, x=1e7)) == pytest.approx(3.0, rel=1e-12)
    t = LAWS["chinchilla_tied"].from_sampled(dict(E=1.7, A_ref=0.4, B_ref=0.3, alpha=0.3),
                                             {"N": np.log(1e9), "D": np.log(2e10)})
    assert float(t["B"]) * 2e10 ** -0.3 == pytest.approx(0.3, rel=1e-12)


def test_tied_optimum_matches_scipy():
    # chinchilla_tied uses the closed form with beta = alpha: N* = (A/B)^(1/(2 alpha)) sqrt(C/6)
    from bayescale import Posterior

    p = dict(E=1.7, A=400.0, B=1500.0, alpha=0.33)
    post = Posterior.from_draws("chinchilla_tied", {k: np.array([v]) for k, v in p.items()})
    for C in (1e20, 1e24):
        from bayescale.allocation import compute_optimal
        got = compute_optimal(post, C, warn=False).N_opt[0, 0]
        f = lambda u: p["A"] * np.exp(-p["alpha"] * u) + p["B"] * (C / 6 / np.exp(u)) ** -p["alpha"]  # noqa: E731
        res = minimize_scalar(f, bounds=(np.log(1e3), np.log(1e16)), method="bounded",
                              options={"xatol": 1e-10})
        assert got == pytest.approx(np.exp(res.x), rel=1e-4)
        assert got == pytest.approx((400 / 1500) ** (1 / 0.66) * np.sqrt(C / 6), rel=1e-9)


def test_cli_offers_every_law():
    from bayescale import cli

    assert sorted(cli.LAWS) == sorted(LAWS)  # the CLI's copy (no JAX at parse time) is the registry


P_DC = dict(E=1.869, A=520.8, B=1487.7, alpha=0.3527, beta=0.3527, R_N=5.31, R_D=15.39)


def muennighoff(p, N, D, U):
    """Muennighoff et al. 2023 eq. 5-6 written out in NumPy (natural units)."""
    UD = np.minimum(U, D)
    RD = D / UD - 1
    Dp = UD + UD * p["R_D"] * (1 - np.exp(-RD / p["R_D"]))
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    UN = np.minimum(N, G * (G * UD) ** (p["beta"] / p["alpha"]))  # Chinchilla's N* at D* = U
    RN = N / UN - 1
    Np = UN + UN * p["R_N"] * (1 - np.exp(-RN / p["R_N"]))
    return p["E"] + p["A"] / Np ** p["alpha"] + p["B"] / Dp ** p["beta"]


def test_data_constrained_matches_muennighoff_and_is_chinchilla_at_one_epoch():
    from bayescale.laws import fixed_input

    N = 10 ** RNG.uniform(7, 11, 300)
    U = 10 ** RNG.uniform(8, 12, 300)
    D = U * 10 ** RNG.uniform(0, 3, 300)  # 1 to 1000 epochs
    law = LAWS["data_constrained"]
    np.testing.assert_allclose(np.asarray(law.loss(P_DC, N=N, D=D, U=U)),
                               muennighoff(P_DC, N, D, U), rtol=1e-12)
    # one epoch of a model no larger than N*(U): the Chinchilla law itself
    ch = {k: P_DC[k] for k in ("E", "A", "B", "alpha", "beta")}
    small = N < 1e8
    np.testing.assert_allclose(np.asarray(law.loss(P_DC, N=N[small], D=U[small] * 1e3,
                                                   U=U[small] * 1e3)),
                               np.asarray(LAWS["chinchilla"].loss(ch, N=N[small],
                                                                  D=U[small] * 1e3)), rtol=1e-12)
    # repeating the data more never raises the law's loss (its worth only saturates)
    more = np.asarray(law.loss(P_DC, N=N, D=D * 2, U=U))
    assert np.all(more <= np.asarray(law.loss(P_DC, N=N, D=D, U=U)) + 1e-15)
    at = fixed_input(law, "U", 3e10)
    assert at.inputs == ("N", "D") and at is fixed_input(law, "U", 3e10)  # cached
    np.testing.assert_allclose(np.asarray(at.loss(P_DC, N=N, D=D)),
                               muennighoff(P_DC, N, D, 3e10), rtol=1e-12)
