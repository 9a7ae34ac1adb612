r"""Scaling laws as pure ``jnp`` functions, computed in log space.

Every law maps log inputs (natural log of parameters N, tokens D, or a single variable x) and
parameters in natural units to the natural log of the loss. Terms that add are combined with
``logaddexp``/``logsumexp``, so N and D anywhere from 1 to 1e30 neither overflow nor lose precision.

Laws
----
``power``       :math:`L(x) = E + A x^{-\alpha}`
``power_pure``  :math:`L(x) = A x^{-\alpha}` (the straight line of log-log OLS)
``chinchilla``  :math:`L(N, D) = E + A N^{-\alpha} + B D^{-\beta}` (Hoffmann et al. 2022)
``kaplan``      :math:`L(N, D) = [(N_c/N)^{\alpha_N/\alpha_D} + D_c/D]^{\alpha_D}` (Kaplan et al. 2020)
``chinchilla_tied``  :math:`L(N, D) = E + A N^{-\alpha} + B D^{-\alpha}`: one exponent for both
                terms (Gadre et al. 2024; Muennighoff et al. 2023), better identified with few runs
``broken_power`` :math:`L(x) = E + A x^{-\alpha} (1 + (x/x_b)^{1/f})^{-\delta f}`: a power law whose
                exponent changes from alpha to alpha + delta around x_b, over about f e-folds
                (one break of Caballero et al. 2022's BNSL)
``log``         :math:`L(x) = a \ln x + b`: the logarithmic baseline (a < 0 for a falling loss)
``data_constrained`` :math:`L(N, D, U) = E + A N'^{-\alpha} + B D'^{-\beta}` with effective data
                :math:`D' = U + U R_D^* (1 - e^{-R_D/R_D^*})`, :math:`R_D = D/U - 1` repeated epochs, and
                effective parameters :math:`N'` likewise from :math:`U_N = \min(N, N^*(U))`
                (Muennighoff et al. 2023, eq. 5-6)

Reference scale
---------------
The NumPyro models sample amplitudes at a reference point inside the data (the mean of log N,
log D or log x), where they are nearly uncorrelated with the exponents. :attr:`Law.from_sampled`
turns them back into natural units, e.g. :math:`A = A_{ref} N_{ref}^{\alpha}`; for the Kaplan law
the sampled amplitudes are the loss at the reference N (or D) with the other input infinite,
:math:`L_{N,ref} = (N_c/N_{ref})^{\alpha_N}`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayescale._jax import jnp
from bayescale.errors import FitError
from bayescale.summaries import positive

__all__ = [
    "Law",
    "LAWS",
    "get_law",
    "power",
    "power_pure",
    "chinchilla",
    "kaplan",
    "chinchilla_tied",
    "broken_power",
    "log_law",
    "data_constrained",
    "chinchilla_optimum",
    "chinchilla_form",
    "chinchilla_exponents",
    "mixture_law",
    "fixed_input",
]


def power(log_x, *, E, A, alpha):
    """log of :math:`E + A x^{-\\alpha}`."""
    return jnp.logaddexp(jnp.log(E), jnp.log(A) - alpha * log_x)


def power_pure(log_x, *, A, alpha):
    """log of :math:`A x^{-\\alpha}`: a straight line in log-log space."""
    return jnp.log(A) - alpha * log_x


def chinchilla(log_N, log_D, *, E, A, B, alpha, beta):
    """log of :math:`E + A/N^{\\alpha} + B/D^{\\beta}` as ``logsumexp(e, a - alpha log N, b - beta log D)``."""
    log_N, log_D = jnp.broadcast_arrays(jnp.asarray(log_N), jnp.asarray(log_D))
    terms = jnp.stack(
        jnp.broadcast_arrays(
            jnp.log(E) + 0.0 * log_N, jnp.log(A) - alpha * log_N, jnp.log(B) - beta * log_D
        )
    )
    return _logsumexp0(terms)


def kaplan(log_N, log_D, *, N_c, D_c, alpha_N, alpha_D):
    """log of :math:`[(N_c/N)^{\\alpha_N/\\alpha_D} + D_c/D]^{\\alpha_D}`."""
    return alpha_D * jnp.logaddexp(
        (alpha_N / alpha_D) * (jnp.log(N_c) - log_N), jnp.log(D_c) - log_D
    )


def chinchilla_tied(log_N, log_D, *, E, A, B, alpha):
    """log of :math:`E + A/N^{\\alpha} + B/D^{\\alpha}` (Chinchilla with beta = alpha)."""
    return chinchilla(log_N, log_D, E=E, A=A, B=B, alpha=alpha, beta=alpha)


def broken_power(log_x, *, E, A, alpha, delta, x_b, f):
    r"""log of :math:`E + A x^{-\alpha} (1 + (x/x_b)^{1/f})^{-\delta f}` (one BNSL break).

    :math:`\log(1 + (x/x_b)^{1/f})` is ``softplus((log x - log x_b) / f)``: exact for x far on
    either side of the break, where the law is a power law with exponent alpha (below) or
    alpha + delta (above).
    """
    bend = f * jnp.logaddexp(0.0, (log_x - jnp.log(x_b)) / f)
    return jnp.logaddexp(jnp.log(E), jnp.log(A) - alpha * log_x - delta * bend)


def log_law(log_x, *, a, b):
    """log of :math:`a \\ln x + b`; where that is not positive (far beyond a falling line) the
    loss is 1e-300 (log -690.8), so a prediction there is visibly off the scale, not NaN."""
    value = a * log_x + b
    return jnp.log(jnp.where(value > 1e-300, value, 1e-300))


def data_constrained(log_N, log_D, log_U, *, E, A, B, alpha, beta, R_N, R_D):
    r"""log of Muennighoff et al. 2023's data-constrained law (their eq. 5-6).

    Unique tokens :math:`U_D = \min(U, D)` repeated :math:`R_D = D/U_D - 1` times beyond the first
    epoch are worth :math:`D' = U_D + U_D R_D^* (1 - e^{-R_D/R_D^*})` tokens; parameters beyond
    :math:`U_N = \min(N, N^*(U_D))`, the Chinchilla compute-optimal size for
    :math:`D^* = U_D` (:math:`N^* = G^{1+\beta/\alpha} D^{*\,\beta/\alpha}`,
    :math:`G = (\alpha A/(\beta B))^{1/(\alpha+\beta)}`), are worth
    :math:`N' = U_N + U_N R_N^* (1 - e^{-R_N/R_N^*})` with :math:`R_N = N/U_N - 1`. Then
    :math:`L = E + A N'^{-\alpha} + B D'^{-\beta}`. ``R_N``, ``R_D`` are :math:`R_N^*, R_D^*`:
    the repetitions after which a repeated token (or an excess parameter) is worth 1/e of a new
    one. One epoch (D <= U) is Chinchilla.
    """
    log_ud = jnp.minimum(log_U, log_D)
    log_dp = log_ud + jnp.log1p(-R_D * jnp.expm1(-jnp.expm1(log_D - log_ud) / R_D))
    log_g = (jnp.log(alpha * A) - jnp.log(beta * B)) / (alpha + beta)
    log_un = jnp.minimum(log_N, log_g + beta / alpha * (log_g + log_ud))
    log_np = log_un + jnp.log1p(-R_N * jnp.expm1(-jnp.expm1(log_N - log_un) / R_N))
    return chinchilla(log_np, log_dp, E=E, A=A, B=B, alpha=alpha, beta=beta)


def _logsumexp0(terms):
    m = jnp.max(terms, axis=0)
    m = jnp.where(jnp.isfinite(m), m, 0.0)
    return m + jnp.log(jnp.sum(jnp.exp(terms - m), axis=0))


def chinchilla_optimum(C, *, A, B, alpha, beta, flops_per_param_token: float = 6.0):
    r"""Compute-optimal N* and D* of the Chinchilla law under :math:`C = k N D` (Hoffmann eq. 4).

    .. math::
        G = \left(\frac{\alpha A}{\beta B}\right)^{1/(\alpha+\beta)},\quad
        N^* = G\,(C/k)^{\beta/(\alpha+\beta)},\quad D^* = G^{-1}(C/k)^{\alpha/(\alpha+\beta)}

    Computed in log space with NumPy float64; arguments broadcast (draws against budgets).

    Returns
    -------
    (N_opt, D_opt): parameters and tokens; ``k * N_opt * D_opt == C`` to rounding.
    """
    A, B, alpha, beta = (np.asarray(v, dtype=float) for v in (A, B, alpha, beta))
    log_c = np.log(np.asarray(C, dtype=float) / flops_per_param_token)
    s = alpha + beta
    log_g = (np.log(alpha * A) - np.log(beta * B)) / s
    log_n = log_g + beta / s * log_c
    log_d = log_c - log_n
    return np.exp(log_n), np.exp(log_d)


def chinchilla_form(law, params):
    """``params`` as Chinchilla's (E, A, B, alpha, beta) when ``law`` is Chinchilla or its tied
    form (beta = alpha), for the closed-form optimum; None for any other law."""
    name = getattr(law, "name", law)
    if name == "chinchilla":
        return {k: params[k] for k in ("E", "A", "B", "alpha", "beta")}
    if name == "chinchilla_tied":
        return {**{k: params[k] for k in ("E", "A", "B", "alpha")}, "beta": params["alpha"]}
    return None


def chinchilla_exponents(*, alpha, beta):
    """Exponents of :math:`N^* \\propto C^a` and :math:`D^* \\propto C^b`: a = beta/(alpha+beta), b = 1 - a."""
    alpha, beta = np.asarray(alpha, dtype=float), np.asarray(beta, dtype=float)
    return beta / (alpha + beta), alpha / (alpha + beta)


@dataclass(frozen=True)
class Law:
    """A scaling law: its inputs, parameters (natural units) and pure log-space function.

    Attributes
    ----------
    name: registry key (``"chinchilla"``, ...).
    inputs: input variables, ``("N", "D")`` or ``("x",)``.
    params: parameter names in natural units, the names every output uses.
    fn: ``fn(*log_inputs, **params) -> log loss``.
    sampled: the names the NumPyro models sample: amplitudes at the reference point
        (e.g. ``A_ref``, the N-term of the loss at the reference N, in nats).
    from_sampled: ``from_sampled(sampled, log_ref) -> natural params``; ``log_ref`` maps each
        input to its reference log value.
    formula: the law as text.
    """

    name: str
    inputs: tuple[str, ...]
    params: tuple[str, ...]
    fn: Callable[..., Any] = field(repr=False)
    sampled: tuple[str, ...]
    from_sampled: Callable[..., dict[str, Any]] = field(repr=False)
    formula: str
    #: Inputs held fixed (natural units) by :func:`fixed_input`, as ``(name, value)`` pairs
    #: (a tuple, so a Law stays hashable), e.g. ``(("U", 1e10),)``.
    fixed: tuple[tuple[str, float], ...] = ()

    @property
    def n_params(self) -> int:
        return len(self.params)

    def log_loss(self, params: Mapping[str, Any], log_inputs: Mapping[str, Any]):
        """Natural log of the loss at ``log_inputs`` (a mapping input -> log value)."""
        kw = {k: params[k] for k in self.params}
        return self.fn(*(log_inputs[i] for i in self.inputs), **kw)

    def loss(self, params: Mapping[str, Any], **inputs):
        """Loss in nats at natural inputs, e.g. ``law.loss(p, N=7e10, D=1.4e12)``."""
        missing = [i for i in self.inputs if i not in inputs]
        if missing:
            raise FitError(f"law {self.name!r} needs inputs {self.inputs}; missing {missing}")
        logs = {i: jnp.log(jnp.asarray(inputs[i], dtype=float)) for i in self.inputs}
        return jnp.exp(self.log_loss(params, logs))


def _amplitudes(**pairs):
    """``from_sampled`` for laws whose amplitudes scale as ``A = A_ref * ref^exponent``."""

    def convert(s, log_ref):
        out = {k: v for k, v in s.items() if not k.endswith("_ref")}
        for name, (inp, expo) in pairs.items():
            out[name] = s[f"{name}_ref"] * jnp.exp(s[expo] * log_ref[inp])
        return out

    return convert


def _broken_from_sampled(s, log_ref):
    # A_ref: the power-law term at the reference x (before the break's factor); the break sits
    # log_break_ref e-folds from the reference x.
    return {"E": s["E"], "A": s["A_ref"] * jnp.exp(s["alpha"] * log_ref["x"]),
            "alpha": s["alpha"], "delta": s["delta"],
            "x_b": jnp.exp(log_ref["x"] + s["log_break_ref"]), "f": s["f"]}


def _log_from_sampled(s, log_ref):
    # L_ref: the loss at the reference x; the line through it with slope a per e-fold.
    return {"a": s["a"], "b": s["L_ref"] - s["a"] * log_ref["x"]}


def _kaplan_from_sampled(s, log_ref):
    # L_N_ref = (N_c / N_ref)^alpha_N is the loss at the reference N with infinite data.
    return {
        "N_c": jnp.exp(jnp.log(s["L_N_ref"]) / s["alpha_N"] + log_ref["N"]),
        "D_c": jnp.exp(jnp.log(s["L_D_ref"]) / s["alpha_D"] + log_ref["D"]),
        "alpha_N": s["alpha_N"],
        "alpha_D": s["alpha_D"],
    }


LAWS: dict[str, Law] = {
    "power": Law(
        "power",
        ("x",),
        ("E", "A", "alpha"),
        power,
        ("E", "A_ref", "alpha"),
        _amplitudes(A=("x", "alpha")),
        "L(x) = E + A x^-alpha",
    ),
    "power_pure": Law(
        "power_pure",
        ("x",),
        ("A", "alpha"),
        power_pure,
        ("A_ref", "alpha"),
        _amplitudes(A=("x", "alpha")),
        "L(x) = A x^-alpha",
    ),
    "chinchilla": Law(
        "chinchilla",
        ("N", "D"),
        ("E", "A", "B", "alpha", "beta"),
        chinchilla,
        ("E", "A_ref", "B_ref", "alpha", "beta"),
        _amplitudes(A=("N", "alpha"), B=("D", "beta")),
        "L(N, D) = E + A / N^alpha + B / D^beta",
    ),
    "kaplan": Law(
        "kaplan",
        ("N", "D"),
        ("N_c", "D_c", "alpha_N", "alpha_D"),
        kaplan,
        ("L_N_ref", "L_D_ref", "alpha_N", "alpha_D"),
        _kaplan_from_sampled,
        "L(N, D) = [(N_c / N)^(alpha_N / alpha_D) + D_c / D]^alpha_D",
    ),
    "chinchilla_tied": Law(
        "chinchilla_tied",
        ("N", "D"),
        ("E", "A", "B", "alpha"),
        chinchilla_tied,
        ("E", "A_ref", "B_ref", "alpha"),
        _amplitudes(A=("N", "alpha"), B=("D", "alpha")),
        "L(N, D) = E + A / N^alpha + B / D^alpha",
    ),
    "broken_power": Law(
        "broken_power",
        ("x",),
        ("E", "A", "alpha", "delta", "x_b", "f"),
        broken_power,
        ("E", "A_ref", "alpha", "delta", "log_break_ref", "f"),
        _broken_from_sampled,
        "L(x) = E + A x^-alpha (1 + (x / x_b)^(1/f))^(-delta f)",
    ),
    "log": Law(
        "log",
        ("x",),
        ("a", "b"),
        log_law,
        ("L_ref", "a"),
        _log_from_sampled,
        "L(x) = a ln x + b",
    ),
    "data_constrained": Law(
        "data_constrained",
        ("N", "D", "U"),
        ("E", "A", "B", "alpha", "beta", "R_N", "R_D"),
        data_constrained,
        ("E", "A_ref", "B_ref", "alpha", "beta", "R_N", "R_D"),
        _amplitudes(A=("N", "alpha"), B=("D", "beta")),
        "L(N, D, U) = E + A / N'^alpha + B / D'^beta, D' = U (1 + R_D (1 - exp(-(D/U - 1) / R_D))), "
        "N' likewise from U_N = min(N, N*(U))",
    ),
}


def mixture_law(laws) -> Law:
    r"""One law that is each of ``laws`` in turn, chosen per draw by its parameter ``component``.

    The parameters are ``component`` (0, 1, ... as floats) and each law's own, named
    ``"i:name"`` for law i; the log loss is law ``component``'s. A posterior of this law holds
    draws of several laws at once (:meth:`bayescale.Posterior.mixture`). The laws must share
    their inputs.
    """
    laws = tuple(get_law(law) for law in laws)
    if not laws or len({law.inputs for law in laws}) != 1:
        raise FitError("a mixture needs laws with the same inputs, e.g. chinchilla and kaplan; "
                       f"got {[(law.name, law.inputs) for law in laws]}")
    names = [(i, p) for i, law in enumerate(laws) for p in law.params]

    def fn(*log_inputs, component, **params):
        out = None
        for i, law in enumerate(laws):
            value = law.fn(*log_inputs, **{p: params[f"{i}:{p}"] for p in law.params})
            out = value if out is None else jnp.where(component == i, value, out)
        return out

    return Law(name="mixture(" + ", ".join(law.name for law in laws) + ")",
               inputs=laws[0].inputs, params=("component", *(f"{i}:{p}" for i, p in names)),
               fn=fn, sampled=(), from_sampled=lambda sampled, log_ref: dict(sampled),
               formula=" | ".join(law.formula for law in laws))


_FIXED: dict[tuple, Law] = {}


def fixed_input(law: str | Law, name: str, value: float) -> Law:
    """``law`` with input ``name`` held at ``value`` (natural units): e.g. the data-constrained
    law at U unique tokens is a law in N and D, which every allocation and decision takes.
    Cached by (law, name, value), so the numerical optimiser compiles once per value."""
    law = get_law(law)
    if name not in law.inputs:
        raise FitError(f"law {law.name!r} has no input {name!r}; its inputs are {law.inputs}")
    value = positive(value, name)
    key = (law.name, law.fn, name, value)
    if key not in _FIXED:
        where, log_v = law.inputs.index(name), math.log(value)

        def fn(*log_inputs, **params):
            args = list(log_inputs)
            args.insert(where, log_v)
            return law.fn(*args, **params)

        _FIXED[key] = Law(f"{law.name}[{name}={value:.4g}]",
                          tuple(i for i in law.inputs if i != name), law.params, fn, law.sampled,
                          law.from_sampled, f"{law.formula}, at {name} = {value:.4g}",
                          fixed=(*law.fixed, (name, value)))
    return _FIXED[key]


def get_law(law: str | Law) -> Law:
    """Look a law up by name: one of :data:`LAWS` (``"chinchilla"``, ``"chinchilla_tied"``,
    ``"kaplan"``, ``"power"``, ``"power_pure"``, ``"broken_power"``, ``"log"``,
    ``"data_constrained"``)."""
    if isinstance(law, Law):
        return law
    try:
        return LAWS[law]
    except KeyError:
        raise FitError(f"unknown law {law!r}; choose one of {', '.join(LAWS)}") from None
