"""Property tests (hypothesis) of the laws and the closed-form optimum.

For any reasonable parameters and N, D anywhere in 1e3..1e15: the laws are finite, decrease in N
and in D, and their log-space evaluation agrees with a direct NumPy evaluation of the formula;
the closed-form Chinchilla optimum equals the numerical one and spends exactly the budget.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from bayescale.allocation import numerical_optimum
from bayescale.laws import LAWS, chinchilla_exponents, chinchilla_optimum

# derandomize: the same examples on every run and machine, so CI cannot go red by chance
SETTINGS = settings(max_examples=60, deadline=None, derandomize=True)

from conftest import post  # noqa: E402

pytestmark = pytest.mark.usefixtures("x64_module")


def log10_uniform(lo, hi):
    return st.floats(np.log10(lo), np.log10(hi)).map(lambda v: 10.0**v)


sizes = log10_uniform(1e3, 1e15)
factor = st.floats(1.01, 1e3)  # how much larger the second run is
chinchilla_params = st.fixed_dictionaries({
    "E": st.floats(0.05, 5.0), "A": log10_uniform(1.0, 1e5), "B": log10_uniform(1.0, 1e5),
    "alpha": st.floats(0.05, 1.0), "beta": st.floats(0.05, 1.0),
})
kaplan_params = st.fixed_dictionaries({
    "N_c": log10_uniform(1e10, 1e16), "D_c": log10_uniform(1e10, 1e16),
    "alpha_N": st.floats(0.02, 0.5), "alpha_D": st.floats(0.02, 0.5),
})
power_params = st.fixed_dictionaries({
    "E": st.floats(0.05, 5.0), "A": log10_uniform(1.0, 1e5), "alpha": st.floats(0.05, 1.0),
})


def direct(name, p, N=None, D=None, x=None):
    """The formulas of the laws written out in NumPy float64, no log space (overflow gives
    inf, as NumPy floats do; Python floats would raise)."""
    p = {k: np.float64(v) for k, v in p.items()}
    if name == "chinchilla":
        return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]
    if name == "kaplan":
        return ((p["N_c"] / N) ** (p["alpha_N"] / p["alpha_D"]) + p["D_c"] / D) ** p["alpha_D"]
    if name == "power":
        return p["E"] + p["A"] * x ** -p["alpha"]
    return p["A"] * x ** -p["alpha"]


def loss(name, p, **inputs):
    return float(np.asarray(LAWS[name].loss(p, **inputs)))


@SETTINGS
@given(p=chinchilla_params, N=sizes, D=sizes, f=factor)
def test_chinchilla_finite_decreasing_and_matches_numpy(p, N, D, f):
    L = loss("chinchilla", p, N=N, D=D)
    assert np.isfinite(L) and L > p["E"]
    assert loss("chinchilla", p, N=N * f, D=D) <= L
    assert loss("chinchilla", p, N=N, D=D * f) <= L
    np.testing.assert_allclose(L, direct("chinchilla", p, N=N, D=D), rtol=1e-12)


@SETTINGS
@given(p=kaplan_params, N=sizes, D=sizes, f=factor)
def test_kaplan_finite_decreasing_and_matches_numpy(p, N, D, f):
    L = loss("kaplan", p, N=N, D=D)
    assert np.isfinite(L) and L > 0
    assert loss("kaplan", p, N=N * f, D=D) <= L
    assert loss("kaplan", p, N=N, D=D * f) <= L
    with np.errstate(over="ignore"):
        expected = direct("kaplan", p, N=N, D=D)
    if np.isfinite(expected):  # (N_c/N)**(alpha_N/alpha_D) may overflow; the log law does not
        np.testing.assert_allclose(L, expected, rtol=1e-11)


@SETTINGS
@given(p=power_params, x=sizes, f=factor)
def test_power_laws_finite_decreasing_and_match_numpy(p, x, f):
    for name in ("power", "power_pure"):
        q = {k: p[k] for k in LAWS[name].params}
        L = loss(name, q, x=x)
        assert np.isfinite(L) and L > 0
        assert loss(name, q, x=x * f) <= L
        np.testing.assert_allclose(L, direct(name, q, x=x), rtol=1e-12)


@SETTINGS
@given(p=chinchilla_params, D=sizes)
def test_log_space_stays_finite_where_direct_evaluation_overflows(p, D):
    # N = exp(-800): N**-alpha overflows float64 for alpha > 0.89, the log-space law does not;
    # there the A-term dominates, so log L = log A + 800 alpha to rounding
    log_l = float(np.asarray(LAWS["chinchilla"].log_loss(p, {"N": -800.0, "D": np.log(D)})))
    assert np.isfinite(log_l)
    assert log_l == pytest.approx(np.log(p["A"]) + 800 * p["alpha"], rel=1e-12)


@SETTINGS
@given(p=chinchilla_params, C=log10_uniform(1e15, 1e27), k=st.sampled_from([6.0, 8.0]))
def test_closed_form_optimum_equals_numerical_and_spends_the_budget(p, C, k):
    N, D = chinchilla_optimum(C, A=p["A"], B=p["B"], alpha=p["alpha"], beta=p["beta"],
                              flops_per_param_token=k)
    assume(1e1 < N < C / k / 1e1)  # an interior optimum (else the numerical one sits at an edge)
    np.testing.assert_allclose(k * N * D, C, rtol=1e-12)
    num = numerical_optimum(post("chinchilla", {q: np.array([v]) for q, v in p.items()}, k=k), C)
    assert not num.at_edge[0, 0]
    np.testing.assert_allclose(num.N_opt[0, 0], N, rtol=1e-6)
    np.testing.assert_allclose(num.D_opt[0, 0], D, rtol=1e-6)
    a, b = chinchilla_exponents(alpha=p["alpha"], beta=p["beta"])
    np.testing.assert_allclose(num.a[0, 0], a, rtol=1e-6, atol=1e-9)
    assert a + b == pytest.approx(1.0)
    # the optimum is a minimum along the isoFLOP curve: nearby splits of C lose
    for s in (0.9, 1.1):
        other = direct("chinchilla", p, N=N * s, D=D / s)
        assert other >= direct("chinchilla", p, N=N, D=D) * (1 - 1e-12)
