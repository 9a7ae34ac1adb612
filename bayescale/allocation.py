r"""Compute-optimal allocation: how to split a budget of C FLOPs between parameters and tokens.

Under :math:`C = k N D` (k = 6 FLOPs per parameter per token by default) a two-variable law gives
the loss along the budget's isoFLOP curve, :math:`\ell(u) = \log L(e^u, C/(k e^u))` with
:math:`u = \log N`. Its minimiser :math:`N^*` is computed for every posterior draw, so the spread of
:math:`N^*`, :math:`D^* = C/(k N^*)`, :math:`D^*/N^*` and :math:`L(N^*, D^*)` is the answer.

* Chinchilla: Hoffmann et al. (2022) eq. 4 in closed form, exponents
  :math:`a = \beta/(\alpha+\beta)` and :math:`b = \alpha/(\alpha+\beta)` in
  :math:`N^* \propto C^a`, :math:`D^* \propto C^b`.
* Any other law in N and D (Kaplan's joint form included): bisection on :math:`\ell'(u)`
  (from ``jax.grad``) inside :math:`1 \le N \le C/k`, jitted and vectorised over draws and budgets;
  the local exponent :math:`a = \mathrm{d}\log N^*/\mathrm{d}\log C = -\ell_{uc}/\ell_{uu}` by
  implicit differentiation of :math:`\ell'(u^*; c) = 0`, with :math:`c = \log(C/k)`.

Draws whose isoFLOP curve has no interior minimum (an exponent near 0) get the bracket edge
(N = 1 or D = 1), a local exponent of 0 or 1, and ``at_edge = True``.

The data-sufficiency criterion and isoFLOP profiles sit here too: both are cuts through the same
posterior at fixed N or fixed C.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from bayescale._jax import jax, jnp, scoped
from bayescale.errors import FitError
from bayescale.laws import Law, chinchilla_form, chinchilla_optimum, get_law
from bayescale.posterior import Posterior, as_posterior
from bayescale.summaries import check_level, interval, positive, summary_dict

__all__ = [
    "Allocation",
    "IsoflopProfile",
    "NumericalOptimum",
    "compute_optimal",
    "data_sufficiency",
    "isoflop_profile",
    "numerical_optimum",
    "one_more_epoch",
    "with_unique_tokens",
]

_QUANTITIES = ("N_opt", "D_opt", "tokens_per_param", "loss", "new_run_loss", "a", "b")


def _two_variable(law: str | Law, what: str) -> Law:
    law = get_law(law)
    if law.inputs != ("N", "D"):
        raise FitError(
            f"{what} needs a law in N and D (chinchilla, chinchilla_tied or kaplan); law {law.name!r} has one "
            f"input {law.inputs[0]!r}: refit with law='chinchilla', 'chinchilla_tied' or 'kaplan'"
        )
    return law


def _unpack(posterior: Any, what: str, k: float | None,
            unique_tokens: float | None = None) -> tuple[Posterior, Law, float]:
    """The posterior (at ``unique_tokens`` for the data-constrained law), its law (checked to be
    in N and D) and k (default the posterior's)."""
    post = with_unique_tokens(as_posterior(posterior), unique_tokens)
    return post, _two_variable(post.law, what), (
        post.flops_per_param_token if k is None else float(k))


def with_unique_tokens(post: Posterior, unique_tokens: float | None) -> Posterior:
    """``post`` at a data budget of ``unique_tokens`` (law ``data_constrained``); unchanged for
    other laws without one; FitError when one is given to a law without U or missing."""
    if unique_tokens is not None:
        return post.at_unique_tokens(unique_tokens)
    if "U" in post.law.inputs:
        raise FitError(f"law {post.law.name!r} needs the unique tokens of the plan: pass "
                       "unique_tokens=U (CLI --unique-tokens U)")
    return post


def _budgets(C: Any, k: float) -> np.ndarray:
    budgets = np.atleast_1d(np.asarray(C, dtype=float))
    if budgets.ndim != 1 or budgets.size == 0:
        raise FitError(f"compute budgets must be a number or a 1-d list of FLOPs; got {C!r}")
    if not (np.isfinite(k) and k > 0):
        raise FitError(f"flops_per_param_token must be a positive number; got {k!r}")
    if not np.all(np.isfinite(budgets) & (budgets > k)):
        raise FitError(
            f"compute budgets must be finite and larger than {k:g} FLOPs (one parameter trained on "
            f"one token); got {budgets.tolist()}"
        )
    return budgets


class NumericalOptimum(NamedTuple):
    """Result of :func:`numerical_optimum`; every field has shape (S, n_budgets)."""

    N_opt: np.ndarray  #: parameters
    D_opt: np.ndarray  #: tokens, ``C / (k N_opt)``
    log_loss: np.ndarray  #: natural log of the law's loss (nats) at the optimum
    a: np.ndarray  #: local exponent d log N* / d log C
    at_edge: np.ndarray  #: True where no interior minimum exists in 1 <= N <= C/k


_SOLVERS: dict[Any, Any] = {}


def _solver(law: Law):
    """Jitted bisection for ``law``, compiled once per law (and per input shape)."""
    key = (law.name, law.inputs, law.params, law.fn)
    if key in _SOLVERS:
        return _SOLVERS[key]

    def ell(p, u, c):
        return law.log_loss(p, {"N": u, "D": c - u})

    def slope(p, u, c):  # d ell / du, elementwise (ell is elementwise in u)
        return jax.grad(lambda v: jnp.sum(ell(p, v, c)))(u)

    def solve(p, c, lo0, hi0):
        shape = jnp.broadcast_shapes(c.shape, lo0.shape, hi0.shape, *(v.shape for v in p.values()))
        c, lo0, hi0 = (jnp.broadcast_to(x, shape) for x in (c, lo0, hi0))

        def step(_, bracket):
            lo, hi = bracket
            mid = 0.5 * (lo + hi)
            rising = slope(p, mid, c) > 0
            return jnp.where(rising, lo, mid), jnp.where(rising, mid, hi)

        # 64 halvings shrink a bracket of width < 1500 below float64 spacing at |u| ~ 1.
        lo, hi = jax.lax.fori_loop(0, 64, step, (lo0, hi0))
        at_lo = slope(p, lo0, c) >= 0
        at_hi = ~at_lo & (slope(p, hi0, c) <= 0)
        u = jnp.where(at_lo, lo0, jnp.where(at_hi, hi0, 0.5 * (lo + hi)))
        curv = jax.grad(lambda v: jnp.sum(slope(p, v, c)))(u)
        cross = jax.grad(lambda cc: jnp.sum(slope(p, u, cc)))(c)
        return u, ell(p, u, c), -cross / curv, at_lo, at_hi

    _SOLVERS[key] = jax.jit(solve)
    return _SOLVERS[key]


@scoped
def _isoflop_minimum(law: Law, params: Mapping[str, Any], log_c: Any, lo: Any, hi: Any):
    r"""Each draw's minimiser :math:`u^* = \log N^*` of :math:`\ell(u)` in [lo, hi] (the one
    numerical optimiser of an isoFLOP curve, shared with :mod:`bayescale.decisions` and
    :mod:`bayescale.voi`).

    ``params`` (natural units), ``log_c`` (:math:`\log(C/k)`), ``lo`` and ``hi`` (log N) broadcast
    together. 64 bisection steps on the sign of :math:`\ell'(u)`; a draw whose slope keeps one sign
    on [lo, hi] gets the edge it descends to. Returns NumPy arrays ``(log_n, log_loss, a, at_lo,
    at_hi)``: log N*, the law's log loss there, :math:`-\ell_{uc}/\ell_{uu}` (the local exponent,
    meaningful at interior optima only) and the edge flags.
    """
    p = {name: jnp.asarray(params[name], dtype=float) for name in law.params}
    args = (jnp.asarray(x, dtype=float) for x in (log_c, lo, hi))
    return tuple(np.asarray(x) for x in _solver(law)(p, *args))


def numerical_optimum(
    posterior: Any, C: Any, *, flops_per_param_token: float | None = None
) -> NumericalOptimum:
    r"""Compute-optimal split of any law in N and D, found numerically per draw and budget.

    Minimises :math:`\ell(u) = \log L(N = e^u, D = C/(k e^u))` over :math:`0 \le u \le \log(C/k)`
    (between 1 parameter and 1 token) by 64 bisection steps on the sign of :math:`\ell'(u)`,
    computed with ``jax.grad``; the law must be unimodal along the isoFLOP curve (Chinchilla and
    Kaplan are). The result is accurate to float64 rounding (relative error ~1e-14 in N*).

    Parameters
    ----------
    posterior : Posterior or fit
        Draws of a law whose inputs are ``("N", "D")``.
    C : float or array_like
        Compute budget(s) in FLOPs, shape (B,).
    flops_per_param_token : float, optional
        k in :math:`C = k N D` (FLOPs per parameter per training token); default the
        posterior's.

    Returns
    -------
    NumericalOptimum
        ``N_opt`` (parameters), ``D_opt`` (tokens), ``log_loss`` (log nats), ``a`` (local exponent
        :math:`\mathrm{d}\log N^*/\mathrm{d}\log C` by implicit differentiation) and ``at_edge``,
        each of shape (S, B).
    """
    post, law, k = _unpack(posterior, "compute-optimal allocation", flops_per_param_token)
    budgets = _budgets(C, k)
    p = {name: v[:, None] for name, v in post.params.items()}
    c = np.log(budgets / k)[None, :]
    u, log_loss, a, at_lo, at_hi = _isoflop_minimum(law, p, c, 0.0, c)
    a = np.where(at_lo, 0.0, np.where(at_hi, 1.0, a))
    n_opt = np.exp(u)
    return NumericalOptimum(n_opt, budgets / (k * n_opt), log_loss, a, at_lo | at_hi)


@dataclass(frozen=True)
class Allocation:
    """Posterior of the compute-optimal split at one or more budgets.

    Attributes
    ----------
    law : str
        Name of the law.
    compute : numpy.ndarray
        Budgets C in FLOPs, shape (B,).
    N_opt, D_opt : numpy.ndarray
        Optimal parameters and tokens per draw and budget, shape (S, B); ``k N_opt D_opt = C``.
    loss : numpy.ndarray
        The law's loss (nats) at the optimum, shape (S, B).
    a, b : numpy.ndarray
        Local exponents of :math:`N^* \\propto C^a`, :math:`D^* \\propto C^b` (a + b = 1), (S, B).
    at_edge : numpy.ndarray
        True where a draw has no interior optimum in 1 <= N <= C/k, (S, B).
    flops_per_param_token : float
        k in C = k N D.
    new_run_loss : numpy.ndarray or None
        The loss (nats) of one new training run at each draw's optimum, shape (S, B): the law
        times the run's noise and the law's form error beyond the data (see
        :mod:`bayescale.predict`), from a generator seeded with 0.
    beyond : mapping
        How far each budget is from the training data (as :attr:`Prediction.beyond
        <bayescale.predict.Prediction.beyond>`): ``C``, ``N``, ``D`` over the largest trained
        (at the median optimum) and ``decades`` outside the data; empty without a domain.
    caps : mapping or None
        ``{"max_params", "max_tokens"}`` when the split was capped (see :func:`compute_optimal`).
    unique_tokens : float or None
        The data budget U of a data-constrained allocation; :attr:`epochs` is then D*/U.
    uncapped_loss : numpy.ndarray or None
        With caps, the law's loss at each draw's uncapped optimum, (S, B); :attr:`cap_cost` is
        ``loss - uncapped_loss``.
    """

    law: str
    compute: np.ndarray
    N_opt: np.ndarray
    D_opt: np.ndarray
    loss: np.ndarray
    a: np.ndarray
    b: np.ndarray
    at_edge: np.ndarray
    flops_per_param_token: float = 6.0
    new_run_loss: np.ndarray | None = None
    beyond: Mapping[str, np.ndarray] = field(default_factory=dict)
    caps: Mapping[str, Any] | None = None
    uncapped_loss: np.ndarray | None = None
    unique_tokens: float | None = None

    @property
    def epochs(self) -> np.ndarray | None:
        """With a data budget U, epochs D*/U per draw and budget, (S, B)."""
        return None if self.unique_tokens is None else self.D_opt / self.unique_tokens

    @property
    def cap_cost(self) -> np.ndarray | None:
        """With caps, the law's loss the caps cost at each draw and budget (nats, >= 0), (S, B)."""
        return None if self.uncapped_loss is None else self.loss - self.uncapped_loss

    def _quantities(self) -> tuple[str, ...]:
        return (_QUANTITIES + (("cap_cost",) if self.caps else ())
                + (("epochs",) if self.unique_tokens is not None else ()))

    def __post_init__(self):
        shape = (np.shape(self.N_opt)[0], np.size(self.compute))
        if self.new_run_loss is None:
            object.__setattr__(self, "new_run_loss", self.loss)
        for name in ("N_opt", "D_opt", "loss", "a", "b", "at_edge", "new_run_loss"):
            if np.shape(getattr(self, name)) != shape:
                raise FitError(f"Allocation.{name} must have shape {shape} (draws, budgets)")

    @property
    def tokens_per_param(self) -> np.ndarray:
        """D*/N*, tokens per parameter, shape (S, B)."""
        return self.D_opt / self.N_opt

    def exponents(self) -> dict[str, np.ndarray]:
        """Per-draw exponents (S,): local at a single budget, else the log-log slope of N*(C)
        between the smallest and largest budget (exact for Chinchilla, where a is constant)."""
        lo, hi = int(np.argmin(self.compute)), int(np.argmax(self.compute))
        if self.compute[hi] == self.compute[lo]:
            a = self.a[:, lo]
        else:
            a = np.log(self.N_opt[:, hi] / self.N_opt[:, lo]) / np.log(
                self.compute[hi] / self.compute[lo]
            )
        return {"a": a, "b": 1.0 - a}

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """One row per budget and quantity (N_opt, D_opt, tokens_per_param, loss (the law's),
        new_run_loss, a, b), columns
        ``compute, quantity, median, mean, lo, hi, level`` (central interval at ``level``)."""
        level = check_level(level)
        rows = []
        for j, c in enumerate(self.compute):
            for q in self._quantities():
                x = getattr(self, q)[:, j]
                med, lo, hi = interval(x, level)
                rows.append((c, q, float(med), float(np.mean(x)), float(lo), float(hi), level))
        columns = ["compute", "quantity", "median", "mean", "lo", "hi", "level"]
        return pd.DataFrame(rows, columns=columns)

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-ready summary with plain floats: ``{"law", "level", "flops_per_param_token",
        "budgets": [{"compute", "N_opt", "D_opt", "tokens_per_param", "loss", "a", "b",
        "frac_at_edge", "beyond"}], "exponents": {"a", "b"}}``, each quantity a
        ``{"median", "lo", "hi"}`` (``beyond``: :attr:`beyond` at the budget, when known)."""
        level = check_level(level)
        budgets = []
        for j, c in enumerate(self.compute):
            entry: dict[str, Any] = {"compute": float(c)}
            entry.update({q: summary_dict(getattr(self, q)[:, j], level)
                          for q in self._quantities()})
            entry["frac_at_edge"] = float(np.mean(self.at_edge[:, j]))
            if self.caps:
                entry["frac_at_cap"] = float(np.mean(self.cap_cost[:, j] > 0))
            if self.beyond:
                entry["beyond"] = {k: float(v[j]) for k, v in self.beyond.items()}
            budgets.append(entry)
        expo = {name: summary_dict(v, level) for name, v in self.exponents().items()}
        out = {
            "law": self.law,
            "level": level,
            "flops_per_param_token": float(self.flops_per_param_token),
            "budgets": budgets,
            "exponents": expo,
        }
        if self.caps:
            out["caps"] = {k: (None if v is None else float(v)) for k, v in self.caps.items()}
        if self.unique_tokens is not None:
            out["unique_tokens"] = float(self.unique_tokens)
        return out


def compute_optimal(
    posterior: Any, C: Any, *, flops_per_param_token: float | None = None, warn: bool = True,
    max_params: float | None = None, max_tokens: float | None = None,
    unique_tokens: float | None = None,
) -> Allocation:
    r"""Posterior of the compute-optimal N*, D*, D*/N*, loss and exponents at budget(s) C.

    Chinchilla uses Hoffmann et al. eq. 4 per draw,
    :math:`N^* = G (C/k)^{\beta/(\alpha+\beta)}` with
    :math:`G = (\alpha A/(\beta B))^{1/(\alpha+\beta)}`; draws where that lands outside
    :math:`1 \le N^* \le C/k` (an exponent near 0) fall back to :func:`numerical_optimum`, which
    returns the bracket edge. Every other law in N and D is solved numerically.

    Parameters
    ----------
    posterior : Posterior or fit
        Draws of ``"chinchilla"``, ``"kaplan"`` or any :class:`~bayescale.laws.Law` in N and D.
    C : float or array_like
        Compute budget(s) in FLOPs, shape (B,).
    flops_per_param_token : float, optional
        k in :math:`C = k N D`; default the posterior's.
    warn : bool
        Warn (:class:`~bayescale.ExtrapolationWarning`) for a budget more than
        :data:`~bayescale.extrapolation.FAR` decades outside the training data, above or below.
    max_params, max_tokens : float, optional
        Caps: the best split with :math:`N \le` ``max_params`` and :math:`D \le` ``max_tokens``
        (the largest model that fits or serves, the unique data there is). The law is unimodal
        along the isoFLOP curve, so each draw's capped optimum is its optimum clipped to
        :math:`C/(k\,\text{max\_tokens}) \le N \le \text{max\_params}`; the local exponent
        a is 0 at the parameter cap and 1 at the token cap, and :attr:`Allocation.cap_cost` is
        the loss the caps cost against the uncapped optimum.
    unique_tokens : float, optional
        The data budget U of a ``data_constrained`` fit (required there): the split of C given
        that only U tokens are unique, with :attr:`Allocation.epochs` = D*/U.

    Returns
    -------
    Allocation
        Arrays of shape (S, B); ``D_opt = C / (k N_opt)`` exactly up to rounding; ``beyond``
        says how far each budget is from the data.

    Raises
    ------
    FitError
        For a one-variable law, budgets that are not > k FLOPs, or a budget that no split
        within the caps can spend.
    """
    post, law, k = _unpack(posterior, "compute-optimal allocation", flops_per_param_token,
                           unique_tokens)
    budgets = _budgets(C, k)
    columns = {name: v[:, None] for name, v in post.params.items()}  # draws against budgets
    ch = chinchilla_form(law, post.params)
    if ch is not None:
        p = {name: v[:, None] for name, v in ch.items()}
        with np.errstate(all="ignore"):
            n_opt, _ = chinchilla_optimum(
                budgets[None, :], A=p["A"], B=p["B"], alpha=p["alpha"], beta=p["beta"],
                flops_per_param_token=k,
            )
            a = np.broadcast_to(p["beta"] / (p["alpha"] + p["beta"]), n_opt.shape).copy()
        interior = np.isfinite(n_opt) & (n_opt >= 1.0) & (n_opt <= budgets / k) & np.isfinite(a)
        edge = ~interior
        if edge.any():
            num = numerical_optimum(post, budgets, flops_per_param_token=k)
            n_opt, a = np.where(interior, n_opt, num.N_opt), np.where(interior, a, num.a)
            edge = np.where(interior, False, num.at_edge)
        log_n, log_d = np.log(n_opt), np.log(budgets / (k * n_opt))
        loss = np.exp(post.log_law(log_n, log_d, params=columns))
    else:
        num = numerical_optimum(post, budgets, flops_per_param_token=k)
        n_opt, a, edge, loss = num.N_opt, num.a, num.at_edge, np.exp(num.log_loss)
        kink = ~np.isfinite(a)
        if kink.any():  # an optimum on a kink of the law (the data-constrained min): no
            # curvature there, so the local exponent by a central difference of log N* in log C
            h = 1e-3
            up, down = (numerical_optimum(post, budgets * math.exp(s), flops_per_param_token=k)
                        for s in (h, -h))
            a = np.where(kink, (np.log(up.N_opt) - np.log(down.N_opt)) / (2 * h), a)
    caps = uncapped_loss = None
    if max_params is not None or max_tokens is not None:
        caps = {"max_params": max_params, "max_tokens": max_tokens}
        hi = np.full(budgets.shape, np.inf if max_params is None else positive(max_params,
                                                                               "max_params"))
        lo = budgets / (k * (np.inf if max_tokens is None else positive(max_tokens,
                                                                        "max_tokens")))
        if np.any(lo > hi):
            c = budgets[np.argmax(lo > hi)]
            raise FitError(f"no split of {c:.4g} FLOPs meets the caps: at most "
                           f"{max_params:.4g} parameters and {max_tokens:.4g} tokens spend "
                           f"{k * max_params * max_tokens:.4g} FLOPs; lower the budget or raise "
                           "a cap")
        n_cap = np.clip(n_opt, lo, hi)
        a = np.where(n_opt > hi, 0.0, np.where(n_opt < lo, 1.0, a))
        uncapped_loss, n_opt = loss, n_cap
        loss = np.exp(post.log_law(np.log(n_opt), np.log(budgets / (k * n_opt)),
                                   params=columns))
    d_opt = budgets / (k * n_opt)
    rng = np.random.default_rng(0)
    new_run = loss * np.exp(post.noise(rng, shape=(budgets.size,)))
    if post.form_slopes is not None:
        eta = rng.standard_normal(n_opt.shape)
        # C is the budget itself: with flops_per_param_token overridden it is not k_post N D
        at = {"N": n_opt.T, "D": d_opt.T, "C": np.broadcast_to(budgets[:, None], n_opt.T.shape)}
        new_run = new_run * np.exp(post.form_offset(at, eta.T).T)
    from bayescale.extrapolation import beyond_data

    beyond = beyond_data(post, {"C": budgets, "N": np.median(n_opt, axis=0),
                                "D": np.median(d_opt, axis=0)}, warn=warn, stacklevel=2)
    return Allocation(
        law=law.name, compute=budgets, N_opt=n_opt, D_opt=d_opt, loss=loss,
        new_run_loss=new_run,
        a=a, b=1.0 - a, at_edge=np.asarray(edge, dtype=bool), flops_per_param_token=k,
        beyond=beyond, caps=caps, uncapped_loss=uncapped_loss,
        unique_tokens=None if unique_tokens is None else float(unique_tokens),
    )


def one_more_epoch(posterior: Any, N: float, D: float, unique_tokens: float, *,
                   level: float = 0.95) -> dict[str, Any]:
    r"""Is one more epoch over the U unique tokens worth more than the same compute in
    parameters? At a plan of N parameters on D tokens, compare training on D + U tokens (one
    more epoch, :math:`k N U` more FLOPs) with training :math:`N (D + U)/D` parameters on D
    tokens (the same compute), under the data-constrained law's posterior.

    Returns ``{"probability"``: the share of draws whose law loss is lower with the epoch,
    ``"gain"``: the loss of the bigger model minus that of the extra epoch (nats; > 0: the epoch
    wins) with its ``level`` interval, ``"epoch"`` and ``"params"``: the two plans' N and D``}``.
    """
    post = as_posterior(posterior)
    if "U" not in post.law.inputs:
        raise FitError(f"law {post.law.name!r} has no unique tokens; fit law='data_constrained'")
    n, d, u = (positive(v, name) for v, name in ((N, "N"), (D, "D"),
                                                  (unique_tokens, "unique_tokens")))
    log_u = math.log(u)
    epoch = post.log_law(math.log(n), math.log(d + u), log_u)
    params = post.log_law(math.log(n * (d + u) / d), math.log(d), log_u)
    gain = np.exp(params) - np.exp(epoch)
    q = (1 - check_level(level)) / 2
    lo, med, hi = np.quantile(gain, [q, 0.5, 1 - q])
    return {"probability": float(np.mean(gain > 0)),
            "gain": {"median": float(med), "lo": float(lo), "hi": float(hi)},
            "epoch": {"N": n, "D": d + u}, "params": {"N": n * (d + u) / d, "D": d},
            "epochs_now": d / u}


@dataclass(frozen=True)
class IsoflopProfile:
    """Posterior of the loss along one isoFLOP curve :math:`C = k N D`.

    Attributes
    ----------
    law : str
        Name of the law.
    compute : float
        The budget C in FLOPs.
    N, D : numpy.ndarray
        Grid of parameters and matching tokens ``C / (k N)``, shape (G,).
    loss : numpy.ndarray
        The law's loss (nats) per draw and grid point, shape (S, G).
    N_opt : numpy.ndarray
        Each draw's optimum on the continuous curve, shape (S,).
    """

    law: str
    compute: float
    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    N_opt: np.ndarray

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """One row per grid point: ``N, D, median, mean, lo, hi, level`` of the loss (nats)."""
        level = check_level(level)
        med, lo, hi = interval(self.loss, level)
        return pd.DataFrame(
            {"N": self.N, "D": self.D, "median": med, "mean": self.loss.mean(axis=0),
             "lo": lo, "hi": hi, "level": level}
        )


def isoflop_profile(
    posterior: Any,
    C: float,
    *,
    N: Any = None,
    n_grid: int = 60,
    flops_per_param_token: float | None = None,
) -> IsoflopProfile:
    r"""Loss along the isoFLOP curve of budget C as a function of model size N, per draw.

    Parameters
    ----------
    posterior : Posterior or fit
        Draws of a law in N and D.
    C : float
        One compute budget in FLOPs.
    N : array_like, optional
        Model sizes (parameters) in :math:`1 \le N \le C/k`. Default: ``n_grid`` sizes evenly spaced
        in log N over two orders of magnitude centred on the posterior median of :math:`N^*`
        (clipped to the bracket).
    n_grid : int, default 60
        Number of grid points when ``N`` is not given.
    flops_per_param_token : float, optional
        k in :math:`C = k N D`; default the posterior's.

    Returns
    -------
    IsoflopProfile
        Grid ``N`` and ``D = C/(kN)`` (G,), loss draws (S, G) in nats, and each draw's ``N_opt``.
    """
    post, law, k = _unpack(posterior, "an isoFLOP profile", flops_per_param_token)
    budget = _budgets(C, k)
    if budget.size != 1:
        raise FitError(f"isoflop_profile takes one compute budget; got {budget.size}")
    alloc = compute_optimal(post, budget, flops_per_param_token=k, warn=False)
    n_max = budget[0] / k
    if N is None:
        if int(n_grid) < 2:
            raise FitError(f"n_grid must be at least 2; got {n_grid!r}")
        centre = np.log10(np.median(alloc.N_opt[:, 0]))
        lo, hi = max(centre - 1.0, 0.0), min(centre + 1.0, np.log10(n_max))
        grid = np.logspace(lo, hi, int(n_grid))
    else:
        grid = np.atleast_1d(np.asarray(N, dtype=float))
        if grid.ndim != 1 or not np.all(np.isfinite(grid) & (grid >= 1.0) & (grid <= n_max)):
            raise FitError(
                f"N must be a 1-d list of model sizes between 1 and C/k = {n_max:.3g} parameters"
            )
    tokens = budget[0] / (k * grid)
    loss = post.law_draws({"N": grid, "D": tokens})
    return IsoflopProfile(law.name, float(budget[0]), grid, tokens, loss, alloc.N_opt[:, 0])


#: Kaplan et al. (2020)'s seed-to-seed variation of the loss, the default data-sufficiency gap.
KAPLAN_SEED_VARIATION = 0.02


def data_sufficiency(posterior: Any, N: Any, *, threshold: Any = None) -> np.ndarray:
    r"""Tokens D at which the loss a model of size N loses to finite data falls to a threshold.

    Kaplan et al. (2020) train until :math:`L(N, D)/L(N, \infty) - 1` is below the seed-to-seed
    variation of the loss, which they put at 2% (their eq. 4.4, :math:`D \gtrsim 5 \times 10^3
    N^{0.74}`): the default threshold is :data:`KAPLAN_SEED_VARIATION`, 0.02. A fit that learned
    the seed noise from repeated runs (``sigma_fit`` present: ``sigma`` is then the seed-to-seed
    noise alone) uses it instead, :math:`t = e^{\sigma} - 1` per draw. (The noise of a fit without
    repeats is not the seed noise: it also holds the law's misfit, and as the threshold it asks for
    far more tokens.) The gap falls monotonically in D, and:

    * Chinchilla, :math:`L(N, \infty) = E + A N^{-\alpha}`:
      :math:`D = \left(B / (t (E + A N^{-\alpha}))\right)^{1/\beta}`.
    * Kaplan, :math:`L(N, \infty) = (N_c/N)^{\alpha_N}`:
      :math:`D = D_c (N/N_c)^{\alpha_N/\alpha_D} / ((1+t)^{1/\alpha_D} - 1)`.

    Parameters
    ----------
    posterior : Posterior or fit
        Draws of ``"chinchilla"`` or ``"kaplan"``.
    N : float or array_like
        Model size(s) in parameters, shape (M,).
    threshold : float or array_like, optional
        The gap :math:`L(N, D)/L(N, \infty) - 1` to reach (> 0), scalar or (S,); default 0.02,
        or the seed noise of a fit with repeated runs.

    Returns
    -------
    numpy.ndarray
        Tokens D, shape (S, M).
    """
    post, law, _ = _unpack(posterior, "the data-sufficiency criterion", None)
    ch = chinchilla_form(law, post.params)
    if ch is None and law.name != "kaplan":
        raise FitError(f"data_sufficiency has closed forms for chinchilla, chinchilla_tied and "
                       f"kaplan, not {law.name!r}")
    p = {name: v[:, None] for name, v in (ch or post.params).items()}
    sizes = np.atleast_1d(np.asarray(N, dtype=float))
    if sizes.ndim != 1 or not np.all(np.isfinite(sizes) & (sizes > 0)):
        raise FitError(f"N must be positive model sizes (parameters); got {N!r}")
    if threshold is None and post.sigma_fit is not None:
        t = np.expm1(np.atleast_1d(post.sigma))  # seed noise learned from the repeats
    elif threshold is None:
        t = np.array([KAPLAN_SEED_VARIATION])
    else:
        t = np.atleast_1d(np.asarray(threshold, dtype=float))
    if t.ndim != 1 or not np.all(np.isfinite(t) & (t > 0)):
        raise FitError(f"threshold (or the noise sigma) must be positive and finite; got "
                       f"{t.tolist()}")
    t = t[:, None]
    n = sizes[None, :]
    if ch is not None:
        log_inf = np.log(p["E"] + p["A"] * n ** -p["alpha"])  # log L(N, inf)
        log_d = (np.log(p["B"]) - np.log(t) - log_inf) / p["beta"]
    else:
        log_d = (
            np.log(p["D_c"])
            + p["alpha_N"] / p["alpha_D"] * (np.log(n) - np.log(p["N_c"]))
            - np.log(np.expm1(np.log1p(t) / p["alpha_D"]))
        )
    return np.exp(log_d)
