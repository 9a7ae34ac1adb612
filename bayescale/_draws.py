r"""Posterior draws of a law and its noise, as the decision code uses them (internal).

A fit reaches :mod:`bayescale.decisions` and :mod:`bayescale.voi` as ``S`` draws: ``params`` maps
each parameter of the law to a 1-d array of draws in natural units, ``noise`` holds ``sigma``
(scale of the observation noise on log loss, nats) and ``nu`` (Student-t degrees of freedom;
``None`` or ``inf`` for Gaussian). A new run at (N, D) has loss
:math:`\exp(\log L_s(N, D) + \varepsilon_s)`, :math:`\varepsilon_s \sim t_{\nu_s}(0, \sigma_s)`.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy import stats
from scipy.optimize import elementwise

from bayescale._jax import jax
from bayescale.allocation import _isoflop_minimum
from bayescale.errors import FitError
from bayescale.laws import Law, chinchilla_optimum, get_law
from bayescale.summaries import summary_dict

__all__ = [
    "LOG_INF",
    "Draws",
    "as_draws",
    "require_nd",
    "log_n_bounds",
    "optimal_log_n",
    "decreasing_root",
    "level",
    "positive",
    "common_noise",
    "interval",
    "check_reachable",
]

LOG_INF = math.log(1e60)
"""log of the N or D that stands in for infinity (the irreducible loss of a law)."""

TOKENS_PER_PARAM = (1e-2, 1e6)
"""Default range of D/N searched for a split of a budget."""


@dataclass(frozen=True, eq=False)
class Draws:
    """Validated posterior draws: ``params`` (S,) each, noise ``sigma`` (S,) and ``nu`` (S,)."""

    law: Law
    params: dict[str, np.ndarray]
    sigma: np.ndarray
    nu: np.ndarray

    @property
    def size(self) -> int:
        return self.sigma.shape[0]

    def log_law(self, log_N, log_D=None, *, params: Mapping[str, np.ndarray] | None = None):
        """Natural log of the law's loss; inputs broadcast against the draws on the last axis.

        ``log_N`` is log x for a law of one input.
        """
        p = self.params if params is None else params
        logs = (log_N,) if self.law.inputs == ("x",) else (log_N, log_D)
        return log_law(self.law, logs, [p[k] for k in self.law.params])


    def median(self) -> Draws:
        """One draw: the posterior median of every parameter (the plug-in law)."""
        p = {k: np.median(v, keepdims=True) for k, v in self.params.items()}
        sigma, nu = np.median(self.sigma, keepdims=True), np.median(self.nu, keepdims=True)
        return Draws(self.law, p, sigma, nu)

    def noise(self, rng: np.random.Generator, idx=None) -> np.ndarray:
        """One draw of the log-loss noise per draw index in ``idx`` (all draws by default)."""
        idx = np.arange(self.size) if idx is None else np.asarray(idx)
        nu, sigma = self.nu[idx], self.sigma[idx]
        finite = np.isfinite(nu)
        z = rng.standard_normal(idx.shape)
        if finite.any():
            z = np.where(finite, rng.standard_t(np.where(finite, nu, 1.0)), z)
        return sigma * z

    def log_lik(self, resid) -> np.ndarray:
        """log density of residuals ``y - log L`` (nats), broadcast against the draws."""
        return stats.t.logpdf(resid, df=self.nu, scale=self.sigma)


def log_law(law: Law, log_inputs, values) -> np.ndarray:
    """``law``'s log loss as a NumPy array, all arguments broadcast together.

    The callers' solvers shrink their arrays as elements converge; evaluating the law eagerly on
    each new shape would make JAX compile anew every time. So the law is jitted once and arrays are
    flattened and padded to a power-of-two length, which leaves a handful of shapes to compile.
    """
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (*log_inputs, *values)))
    shape, m = arrays[0].shape, arrays[0].size
    size = max(64, 1 << (m - 1).bit_length())
    flat = [np.pad(a.reshape(-1), (0, size - m), mode="edge") for a in arrays]
    out = _jitted(law.fn, len(log_inputs), law.params)(*flat)
    return np.asarray(out)[:m].reshape(shape)


@functools.cache
def _jitted(fn, n_inputs: int, names: tuple[str, ...]):
    return jax.jit(lambda *a: fn(*a[:n_inputs], **dict(zip(names, a[n_inputs:]))))


def as_draws(law, params: Mapping[str, object], noise: Mapping[str, object] | None) -> Draws:
    """Check the draws of a fit and return them as float arrays of one length S."""
    law = get_law(law)
    missing = [p for p in law.params if p not in params]
    if missing:
        raise FitError(
            f"draws of law {law.name!r} lack parameters {missing}; pass all of {law.params}"
        )
    arrs = {p: np.atleast_1d(np.asarray(params[p], dtype=float)) for p in law.params}
    sizes = {p: a.shape for p, a in arrs.items()}
    if len(set(sizes.values())) != 1 or next(iter(sizes.values())) == (0,) or any(
        a.ndim != 1 for a in arrs.values()
    ):
        raise FitError(
            f"parameter draws must be 1-d arrays of one length S >= 1; got shapes {sizes}"
        )
    for p, a in arrs.items():
        if not np.all(np.isfinite(a)):
            raise FitError(f"draws of {p!r} contain NaN or inf; drop those draws first")
    s = next(iter(arrs.values())).shape[0]
    noise = {} if noise is None else noise
    sigma = np.broadcast_to(np.asarray(noise.get("sigma", 0.0), dtype=float), (s,)).copy()
    nu_in = noise.get("nu")
    nu = np.broadcast_to(np.asarray(np.inf if nu_in is None else nu_in, dtype=float), (s,)).copy()
    if np.any(~np.isfinite(sigma)) or np.any(sigma < 0):
        raise FitError("noise['sigma'] must be finite and >= 0 (nats of log loss)")
    if np.any(np.isnan(nu)) or np.any(nu <= 0):
        raise FitError("noise['nu'] must be > 0 (Student-t dof) or None/inf for Gaussian noise")
    return Draws(law, arrs, sigma, nu)


def require_nd(law: Law) -> None:
    if law.inputs != ("N", "D"):
        raise FitError(
            f"law {law.name!r} has inputs {law.inputs}; splitting compute between parameters and "
            "tokens needs a law of N and D (chinchilla or kaplan)"
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


def optimal_log_n(d: Draws, log_c, lo: float, hi: float):
    """Each draw's compute-optimal log N at ``log_c = log(C/k)`` and its law log loss, (S,) each.

    Chinchilla uses the closed form (unbounded); other laws the bisection of
    :func:`bayescale.allocation.numerical_optimum` on [lo, hi] (draws whose optimum is at the edge
    keep the edge).
    """
    if d.law.name == "chinchilla":
        p = d.params
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


def positive(x, what: str) -> float:
    """``x`` as a positive finite float, or a FitError naming ``what``."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise FitError(f"{what} must be a positive number; got {x!r}") from None
    if not 0 < x < math.inf:
        raise FitError(f"{what} must be a positive finite number; got {x!r}")
    return x


def common_noise(d: Draws, seed: int, include_noise: bool) -> np.ndarray:
    """Common random numbers: one noise draw per posterior draw, fixed by ``seed`` (S,)."""
    return d.noise(np.random.default_rng(seed)) if include_noise else np.zeros(d.size)


def interval(x, lev: float) -> dict[str, float]:
    """Median and central ``lev`` interval of draws (NaN draws ignored), as plain floats."""
    x = np.ravel(np.asarray(x, dtype=float))
    return summary_dict(x[~np.isnan(x)], level(lev, "level"))


def check_reachable(d: Draws, eps, log_t: float, p: float) -> None:
    """FitError when the target lies below the irreducible (N, D -> inf) predictive loss."""
    floor = d.log_law(LOG_INF, LOG_INF) + np.zeros(d.size)
    best = np.mean(floor + eps <= log_t)
    if best < p:
        share, median = np.mean(floor >= log_t), math.exp(np.median(floor))
        raise FitError(
            f"target loss {math.exp(log_t):.4g} nats is unreachable with probability {p:g}: with "
            f"unlimited compute a new run reaches it with probability {best:.2f} only; it lies "
            f"below the irreducible loss of {share:.0%} of posterior draws (median irreducible "
            f"loss {median:.4g} nats), and run-to-run noise costs the rest. Choose a higher "
            "target or a lower probability"
        )
