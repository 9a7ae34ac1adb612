r"""Pieces the decision code shares (internal): optima per draw, search intervals, checks.

A fit reaches :mod:`bayescale.decisions`, :mod:`bayescale.voi` and the inference-aware split as a
:class:`bayescale.Posterior` of S draws. A new run at (N, D) has loss
:math:`\exp(\log L_s(N, D) + \varepsilon_s)` with :math:`\varepsilon_s` from
:meth:`~bayescale.Posterior.noise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import elementwise

from bayescale.allocation import _isoflop_minimum
from bayescale.errors import FitError
from bayescale.laws import Law, chinchilla_form, chinchilla_optimum
from bayescale.posterior import Posterior
from bayescale.summaries import positive, summary_dict

__all__ = [
    "LOG_INF",
    "require_nd",
    "log_n_bounds",
    "capped_log_n_bounds",
    "optimal_log_n",
    "decreasing_root",
    "level",
    "positive",
    "Common",
    "common_noise",
    "interval",
    "check_reachable",
    "unlimited_reach",
]

LOG_INF = math.log(1e60)
"""log of the N or D that stands in for infinity (the irreducible loss of a law)."""

TOKENS_PER_PARAM = (1e-2, 1e6)
"""Default range of D/N searched for a split of a budget."""


def require_nd(law: Law) -> None:
    if law.inputs != ("N", "D"):
        raise FitError(
            f"law {law.name!r} has inputs {law.inputs}; splitting compute between parameters and "
            "tokens needs a law of N and D (chinchilla, chinchilla_tied or kaplan)"
        )


def log_n_bounds(log_c: float, bounds) -> tuple[float, float]:
    """Search interval of log N at ``log(C/k)``: given (N_min, N_max) or D/N in TOKENS_PER_PARAM."""
    if bounds is None:
        r_lo, r_hi = TOKENS_PER_PARAM
        return 0.5 * (log_c - math.log(r_hi)), 0.5 * (log_c - math.log(r_lo))
    lo, hi = (float(b) for b in bounds)
    if not 0 < lo < hi < math.inf:
        raise FitError(f"bounds must be (N_min, N_max) with 0 < N_min < N_max; got {bounds!r}")
    return math.log(lo), math.log(hi)


def capped_log_n_bounds(log_c: float, bounds, max_params=None, max_tokens=None,
                        k: float = 6.0) -> tuple[float, float]:
    """:func:`log_n_bounds` narrowed by a cap on parameters (N <= max_params) and on tokens
    (D <= max_tokens, i.e. N >= C / (k max_tokens)); FitError when no split of the budget meets
    both caps. Without ``bounds`` the caps win over the default tokens-per-parameter window
    (a cap far below the compute-optimal N asks for more tokens per parameter than 1e6)."""
    lo, hi = log_n_bounds(log_c, bounds)
    cap_hi = math.log(positive(max_params, "max_params")) if max_params is not None else math.inf
    cap_lo = (log_c - math.log(positive(max_tokens, "max_tokens")) if max_tokens is not None
              else -math.inf)
    if bounds is None:  # the window moves to the caps, keeping 2 decades of N to search
        lo, hi = min(lo, cap_hi - 2 * math.log(10)), max(hi, cap_lo + 2 * math.log(10))
    lo, hi = max(lo, cap_lo, 0.0), min(hi, cap_hi, log_c)
    if lo > hi:
        c = math.exp(log_c) * k
        raise FitError(
            f"no split of {c:.4g} FLOPs meets the caps (at most {max_params or math.inf:.4g} "
            f"parameters and {max_tokens or math.inf:.4g} tokens): lower the budget or raise a "
            "cap")
    return lo, hi


def optimal_log_n(d: Posterior, log_c, lo: float, hi: float):
    """Each draw's compute-optimal log N at ``log_c = log(C/k)`` and its law log loss, (S,) each.

    Chinchilla uses the closed form (unbounded); other laws the bisection of
    :func:`bayescale.allocation.numerical_optimum` on [lo, hi] (draws whose optimum is at the edge
    keep the edge).
    """
    p = chinchilla_form(d.law, d.params)
    if p is not None:
        n, _ = chinchilla_optimum(
            np.exp(log_c), A=p["A"], B=p["B"], alpha=p["alpha"], beta=p["beta"],
            flops_per_param_token=1.0,
        )
        log_n = np.log(n)
        return log_n, d.log_law(log_n, log_c - log_n)
    log_n, log_loss, *_ = _isoflop_minimum(d.law, d.params, log_c, lo, hi)
    return log_n, log_loss


def decreasing_root(f, lo, hi, args=()):
    """Root of a decreasing elementwise ``f`` on [lo, hi] (Chandrupatla).

    Gives ``lo`` where f(lo) <= 0 and NaN where f(hi) > 0 (no root in the interval).
    """
    f_lo, f_hi = f(np.asarray(lo, dtype=float), *args), f(np.asarray(hi, dtype=float), *args)
    res = elementwise.find_root(f, (lo, hi), args=args, tolerances={"xatol": 1e-9})
    return np.where(f_lo <= 0, lo, np.where(f_hi > 0, np.nan, res.x))


# --- small checks shared by decisions, the inference-aware split and voi -------------------------


def level(q, what: str) -> float:
    """``q`` as a float strictly inside (0, 1), or a FitError naming ``what``."""
    if isinstance(q, bool) or not isinstance(q, (int, float, np.floating)) or not 0 < q < 1:
        raise FitError(f"{what} must be a number strictly between 0 and 1 (e.g. 0.9); got {q!r}")
    return float(q)


@dataclass(frozen=True, eq=False)
class Common:
    """Common random numbers of a decision: one noise draw ``eps`` and one standard normal
    ``eta`` (the form error's run-to-run part) per posterior draw, reused at every candidate."""

    post: Posterior
    eps: np.ndarray
    eta: np.ndarray

    def log_loss(self, log_n, log_d) -> np.ndarray:
        """A new run's log loss at (log N, log D) per draw (broadcast against the draws on the
        last axis): the law, the noise and the law's form error beyond the data."""
        d = self.post
        out = d.log_law(log_n, log_d) + self.eps
        if d.form_slopes is not None:
            out = out + d.form_offset({"N": np.exp(log_n), "D": np.exp(log_d)}, self.eta)
        return out


def common_noise(d: Posterior, seed: int, include_noise: bool) -> Common:
    """Common random numbers fixed by ``seed``; ``include_noise=False`` leaves out the run's
    noise and the form error's run-to-run part (its slopes stay: they are the law's error)."""
    if not include_noise:
        return Common(d, np.zeros(d.size), np.zeros(d.size))
    rng = np.random.default_rng(seed)
    eps = d.noise(rng)
    return Common(d, eps, rng.standard_normal(d.size))


def interval(x, lev: float) -> dict[str, float]:
    """Median and central ``lev`` interval of draws (NaN draws ignored), as plain floats."""
    x = np.ravel(np.asarray(x, dtype=float))
    return summary_dict(x[~np.isnan(x)], level(lev, "level"))


def unlimited_reach(d: Posterior, eps, log_t: float) -> tuple[float, np.ndarray]:
    """The share of new runs (noise ``eps``, no form error) that reach ``log_t`` as every
    input of the law grows without limit, and each draw's irreducible log loss."""
    floor = d.log_law(*(LOG_INF,) * len(d.law.inputs)) + np.zeros(d.size)
    return float(np.mean(floor + eps <= log_t)), floor


def check_reachable(d: Posterior, eps, log_t: float, p: float) -> None:
    """FitError when the target lies below the irreducible (N, D -> inf) predictive loss."""
    best, floor = unlimited_reach(d, eps, log_t)
    if best < p:
        share, median = np.mean(floor >= log_t), math.exp(np.median(floor))
        raise FitError(
            f"target loss {math.exp(log_t):.4g} nats is unreachable with probability {p:g}: with "
            f"unlimited compute a new run reaches it with probability {best:.2f} only; it lies "
            f"below the irreducible loss of {share:.0%} of posterior draws (median irreducible "
            f"loss {median:.4g} nats), and run-to-run noise costs the rest. Choose a higher "
            "target or a lower probability"
        )
