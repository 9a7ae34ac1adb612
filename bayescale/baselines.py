r"""Least-squares baselines: how scaling laws were fitted before a posterior.

Every fit reports point estimates in the natural units of the Bayesian fit, named as in
``bayescale.laws.LAWS[law].params``: loss in nats, N in parameters, D in tokens, x in the caller's
unit. All fitters work on log loss (residuals are relative errors) with log amplitudes
:math:`E = e^e, A = e^a, B = e^b`.

- :func:`ols_loglog`: ``power_pure`` :math:`L = A x^{-\alpha}`, linear regression of log L on log x.
- :func:`curve_fit_power`, :func:`curve_fit_chinchilla`: ``power`` and ``chinchilla`` by
  ``scipy.optimize.curve_fit``, squared log-loss residuals.
- :func:`huber_approach3`: ``chinchilla`` by Hoffmann et al.'s Approach 3 as Epoch AI replicated
  it: summed Huber loss of log-loss residuals, L-BFGS-B from a grid of 4500 starts.
- :func:`isoflop_approach`: Hoffmann et al.'s Approaches 1 (lowest-loss envelope) and 2 (IsoFLOP
  parabolas), the compute-optimal N*(C) without a law, as most published allocations were made.
- :func:`bootstrap` refits on resampled rows; :class:`LSQFit` hands its draws out as posterior
  draws are handed out, so comparisons treat both alike. :func:`fit_lsq` dispatches by name.

NumPy and SciPy only: importing this module does no JAX work.
"""

from __future__ import annotations

import functools
import itertools
import math
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit, minimize

from bayescale.errors import DataError, FitError

__all__ = [
    "LSQFit",
    "EPOCH_GRID",
    "ols_loglog",
    "curve_fit_power",
    "curve_fit_chinchilla",
    "huber_objective",
    "huber_approach3",
    "bootstrap",
    "fit_lsq",
    "fit_lsq_data",
    "log_loss_of",
    "residual_sigma",
    "IsoflopFit",
    "isoflop_approach",
    "isoflop_budgets",
]

# Equal to bayescale.laws.LAWS[law].params (a test checks it); copied so no JAX is imported.
_PARAMS = {
    "power_pure": ("A", "alpha"),
    "power": ("E", "A", "alpha"),
    "chinchilla": ("E", "A", "B", "alpha", "beta"),
}

_LOGGED = ("E", "A", "B")  # fitted as their natural logs e, a, b

#: Epoch AI's L-BFGS-B starts for Approach 3, axes of a 5 x 6 x 6 x 5 x 5 = 4500-point grid in the
#: log-space parameters of :func:`huber_objective`.
EPOCH_GRID: dict[str, tuple[float, ...]] = {
    "e": (-1.0, -0.5, 0.0, 0.5, 1.0),
    "a": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "b": (0.0, 5.0, 10.0, 15.0, 20.0, 25.0),
    "alpha": (0.0, 0.5, 1.0, 1.5, 2.0),
    "beta": (0.0, 0.5, 1.0, 1.5, 2.0),
}

# SciPy's default ftol is absolute for objectives below 1, and the Huber sum is ~1e-3 here: a
# run from a nearby start stops after a step or two. Bootstrap refits so stopped were ~100x too
# narrow on Epoch's data.
_TIGHT = {"ftol": 1e-15, "gtol": 1e-10, "maxiter": 15000}


@dataclass(frozen=True)
class LSQFit:
    """A least-squares fit: point estimates and, optionally, bootstrap draws.

    Attributes
    ----------
    method: ``"ols"``, ``"curve_fit"`` or ``"huber"``.
    law: ``"power_pure"``, ``"power"`` or ``"chinchilla"``.
    params: point estimates in natural units (E in nats; A, B in nats times input^exponent).
    draws: bootstrap refits, one 1-d array per parameter, or ``None`` without a bootstrap.
    n_points: rows fitted.
    seconds: wall time of the fit, bootstrap included.
    resid_sigma: residual scale of the point fit on log loss, :math:`\sqrt{\sum r^2/(n - p)}`
        (nats): the Gaussian noise of a new run in :attr:`posterior`.
    ranges: (smallest, largest) value of each input of the rows fitted (N, D and C = k N D, or
        x): the training domain.
    flops_per_param_token: k in C = k N D.
    """

    method: str
    law: str
    params: dict[str, float]
    draws: dict[str, np.ndarray] | None
    n_points: int
    seconds: float
    resid_sigma: float = math.nan
    ranges: dict[str, tuple[float, float]] | None = None
    flops_per_param_token: float = 6.0

    def __post_init__(self):
        if self.law not in _PARAMS or tuple(self.params) != _PARAMS[self.law]:
            got, want = tuple(self.params), _PARAMS.get(self.law)
            raise FitError(f"law {self.law!r} has parameters {want}, not {got}")
        if self.draws is not None:
            shapes = {k: np.shape(self.draws.get(k)) for k in self.params}
            if set(self.draws) != set(self.params) or len(set(shapes.values())) != 1 or any(
                len(s) != 1 for s in shapes.values()
            ):
                raise FitError(f"draws must be 1-d arrays of one length per parameter: {shapes}")

    def interval(self, name: str, level: float = 0.95) -> tuple[float, float]:
        """Central percentile interval of ``name`` over the draws; (point, point) without any."""
        if name not in self.params:
            raise FitError(f"no parameter {name!r}; law {self.law!r} has {tuple(self.params)}")
        if not 0.0 < level < 1.0:
            raise FitError(f"level must lie strictly between 0 and 1, got {level}")
        if self.draws is None:
            return self.params[name], self.params[name]
        lo, hi = np.percentile(self.draws[name], [50.0 * (1 - level), 50.0 * (1 + level)])
        return float(lo), float(hi)

    def to_dict(self, level: float = 0.95) -> dict:
        """The JSON of ``bayescale fit --method ... --json``: the Bayesian fit's shape.

        ``median`` is the bootstrap median (the point estimate without a bootstrap, when
        ``lo == hi == median``); ``estimate`` is always the point estimate.
        """
        params = {}
        for name, value in self.params.items():
            lo, hi = self.interval(name, level)
            med = value if self.draws is None else float(np.median(self.draws[name]))
            params[name] = {"median": float(med), "lo": lo, "hi": hi, "estimate": float(value)}
        n_boot = 0 if self.draws is None else len(next(iter(self.draws.values())))
        return {"law": self.law, "n_points": self.n_points, "level": level, "method": self.method,
                "params": params, "bootstrap": n_boot}  # no wall time: the JSON is reproducible

    def params_draws(self) -> dict[str, np.ndarray]:
        """Draws per parameter: the bootstrap refits, or the point estimate as a length-1 array."""
        if self.draws is not None:
            return {k: np.asarray(v, dtype=float) for k, v in self.draws.items()}
        return {k: np.array([v], dtype=float) for k, v in self.params.items()}

    @property
    def posterior(self):
        """The fit as a :class:`bayescale.Posterior`, so that predictions and decisions treat
        it as they treat a Bayesian fit: the bootstrap draws (or the point estimate as one
        draw), Gaussian noise of scale :attr:`resid_sigma` (0 where unknown) and the training
        domain."""
        from bayescale.posterior import Domain, Posterior

        sigma = self.resid_sigma if math.isfinite(self.resid_sigma) else 0.0
        return Posterior.from_draws(
            self.law, self.params_draws(), {"sigma": sigma, "nu": None},
            flops_per_param_token=self.flops_per_param_token,
            domain=None if self.ranges is None else Domain(self.ranges))


def _columns(**arrays) -> list[np.ndarray]:
    """1-d, equal-length, finite, positive float arrays, or a DataError naming argument and row."""
    out = [np.asarray(v, dtype=float) for v in arrays.values()]
    for name, arr in zip(arrays, out):
        if arr.ndim != 1:
            raise DataError(f"{name} must be a 1-d array, got shape {arr.shape}")
        bad = np.flatnonzero(~(np.isfinite(arr) & (arr > 0)))
        if bad.size:
            raise DataError(
                f"{name}[{bad[0]}] = {arr[bad[0]]!r}: values must be finite and > 0 "
                f"({bad.size} rows are not); drop or fix those rows before fitting"
            )
    if len({a.size for a in out}) > 1:
        raise DataError(f"arrays differ in length: {dict(zip(arrays, (a.size for a in out)))}")
    return out


@contextmanager
def _one_blas_thread() -> Iterator[None]:
    """BLAS on one thread: OpenBLAS threads made L-BFGS-B's tiny BLAS calls 2-10x slower here."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1, user_api="blas"):
        yield


def _lse_terms(c: np.ndarray, k: np.ndarray, X: np.ndarray):
    r""":math:`\log\sum_j \exp(c_j - k_j X_{ji})` for each column i, and the softmax weights."""
    T = c[:, None] - k[:, None] * X
    top = T.max(axis=0)
    W = np.exp(T - top)
    s = W.sum(axis=0)
    return top + np.log(s), W / s


def _natural(law: str, logp: Sequence[float]) -> dict[str, float]:
    """Natural-unit parameters from log-space ones in law order (e, a, b, alpha, beta)."""
    return {n: float(np.exp(v) if n in _LOGGED else v) for n, v in zip(_PARAMS[law], logp)}


#: Log of the smallest amplitude a start takes: an optimum whose E (or A, B) ran off to 0
#: (exp underflowed) restarts from e^-690, not from log 0 = -inf, which no refit can leave.
_LOG_FLOOR = math.log(1e-300)


def _logspace(law: str, params: Mapping[str, float]) -> np.ndarray:
    return np.array([max(np.log(params[n]), _LOG_FLOOR) if n in _LOGGED and params[n] > 0
                     else (_LOG_FLOOR if n in _LOGGED else params[n]) for n in _PARAMS[law]])


def _check_rows(law: str, n: int) -> None:
    if n <= len(_PARAMS[law]):
        raise FitError(f"law {law!r} has {len(_PARAMS[law])} parameters; {n} rows cannot fit it")


def ols_loglog(x, loss, *, start: Mapping[str, float] | None = None) -> LSQFit:
    r"""Pure power law :math:`L = A x^{-\alpha}` by ordinary least squares in log-log space.

    The slope of :math:`\log L` on :math:`\log x` is :math:`-\alpha` and the intercept
    :math:`\log A`: exactly ``numpy.polyfit(log x, log L, 1)``. ``start`` is ignored (closed form),
    accepted so that every fitter is bootstrapped alike.
    """
    t0 = time.perf_counter()
    x, loss = _columns(x=x, loss=loss)
    _check_rows("power_pure", x.size)
    slope, intercept = np.polyfit(np.log(x), np.log(loss), 1)
    params = {"A": float(np.exp(intercept)), "alpha": float(-slope)}
    return LSQFit("ols", "power_pure", params, None, x.size, time.perf_counter() - t0)


def _curve_fit(law: str, inputs: list[np.ndarray], loss: np.ndarray, start) -> dict[str, float]:
    r"""Least squares on log loss with amplitudes at the data's centre; natural units out.

    Parameters (e, a_c, [b_c,] alpha, [beta]) with :math:`a_c = a - \alpha\,\overline{\log N}`,
    nearly uncorrelated with the exponents. Without ``start``, four starts: E at 50% or 90% of the
    smallest loss, the rest of the mean loss split evenly among the power terms, exponents 0.3 or
    0.6; the lowest sum of squares is kept.
    """
    logs = [np.log(v) for v in inputs]
    ref = np.array([lg.mean() for lg in logs])
    X = np.stack([np.zeros_like(logs[0])] + [lg - r for lg, r in zip(logs, ref)])
    log_L, m, t = np.log(loss), len(inputs) + 1, len(inputs)

    def f(X, *p):
        return _lse_terms(np.asarray(p[:m]), np.array((0.0,) + p[m:]), X)[0]

    def jac(X, *p):
        _, W = _lse_terms(np.asarray(p[:m]), np.array((0.0,) + p[m:]), X)
        return np.column_stack([*W, *(-W[1:] * X[1:])])

    if start is not None:
        starts = [_logspace(law, start)]
        starts[0][1:m] -= starts[0][m:] * ref
    else:
        E0 = np.array([0.5, 0.5, 0.9, 0.9]) * loss.min()
        amp = np.log((loss.mean() - E0) / t)
        expo = (0.3, 0.6, 0.3, 0.6)
        starts = [np.array([np.log(e)] + [a] * t + [k] * t) for e, a, k in zip(E0, amp, expo)]
    lower = np.array([log_L.min() - 20.0] + [-np.inf] * t + [0.0] * t)
    upper = np.array([log_L.max()] + [np.inf] * t + [5.0] * t)
    best, best_ssr = None, np.inf
    with _one_blas_thread(), warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)
        for p0 in starts:
            p0 = np.clip(p0, lower + 1e-9, upper - 1e-9)
            try:
                p, _ = curve_fit(f, X, log_L, p0=p0, jac=jac, bounds=(lower, upper))
            except (RuntimeError, ValueError):
                continue
            ssr = float(np.sum((f(X, *p) - log_L) ** 2))
            if ssr < best_ssr:
                best, best_ssr = p, ssr
    if best is None:
        raise FitError(f"curve_fit of {law!r} did not converge from any of {len(starts)} starts")
    best[1:m] += best[m:] * ref  # a = a_c + alpha * mean(log N), likewise b
    return _natural(law, best)


def curve_fit_power(x, loss, *, start: Mapping[str, float] | None = None) -> LSQFit:
    r"""Saturating power law :math:`L = E + A x^{-\alpha}` by ``scipy.optimize.curve_fit``.

    Minimises :math:`\sum_i [\log L_i - \log(E + A x_i^{-\alpha})]^2` (loss in nats) in
    :math:`(\log E,\ \log A - \alpha\,\overline{\log x},\ \alpha)` with the analytic Jacobian and
    bounds :math:`e^{-20}\min L \le E \le \max L`, :math:`0 \le \alpha \le 5`. Four starts, best
    kept; with ``start`` (natural units, e.g. the full-data fit in a bootstrap) only that one.
    """
    t0 = time.perf_counter()
    x, loss = _columns(x=x, loss=loss)
    _check_rows("power", x.size)
    params = _curve_fit("power", [x], loss, start)
    return LSQFit("curve_fit", "power", params, None, x.size, time.perf_counter() - t0)


def curve_fit_chinchilla(N, D, loss, *, start: Mapping[str, float] | None = None) -> LSQFit:
    r"""Chinchilla law :math:`L = E + A N^{-\alpha} + B D^{-\beta}` by ``scipy.optimize.curve_fit``.

    N in parameters, D in tokens, loss in nats. Minimises squared log-loss residuals with
    :math:`\log\hat L = \mathrm{logsumexp}(e,\ a_c - \alpha(\log N - \overline{\log N}),\
    b_c - \beta(\log D - \overline{\log D}))`; Jacobian, bounds, starts and ``start`` as in
    :func:`curve_fit_power`, both exponents in [0, 5].
    """
    t0 = time.perf_counter()
    N, D, loss = _columns(N=N, D=D, loss=loss)
    _check_rows("chinchilla", N.size)
    params = _curve_fit("chinchilla", [N, D], loss, start)
    return LSQFit("curve_fit", "chinchilla", params, None, N.size, time.perf_counter() - t0)


def _huber_fg(p: np.ndarray, X: np.ndarray, log_L: np.ndarray, delta: float):
    pred, W = _lse_terms(p[:3], np.array([0.0, p[3], p[4]]), X)
    r = pred - log_L
    psi = np.clip(r, -delta, delta)  # Huber'(r)
    G = W * psi
    grad = np.concatenate((G.sum(axis=1), -(G[1:] * X[1:]).sum(axis=1)))
    return float(psi @ (r - 0.5 * psi)), grad


def huber_objective(params, log_N, log_D, log_L, delta: float = 1e-3) -> tuple[float, np.ndarray]:
    r"""Approach-3 objective and its gradient in ``params = (e, a, b, alpha, beta)``.

    .. math::
        f = \sum_i H_\delta\big(\mathrm{logsumexp}(e,\ a - \alpha \log N_i,\ b - \beta \log D_i)
            - \log L_i\big),\qquad
        H_\delta(r) = \begin{cases} r^2/2 & |r| \le \delta \\ \delta(|r| - \delta/2) & |r| > \delta
        \end{cases}

    computed as :math:`\psi(r - \psi/2)` with :math:`\psi = H_\delta'(r) = \mathrm{clip}(r, -\delta,
    \delta)`; the gradient is :math:`\sum_i \psi_i\, \partial\log\hat L_i / \partial\theta`, whose
    terms are the softmax weights of the three log terms (times :math:`-\log N_i`,
    :math:`-\log D_i` for the exponents). Natural logs of parameters, tokens and nats.

    Returns
    -------
    ``(value, gradient)``, gradient of shape (5,): what ``minimize(..., jac=True)`` expects.
    """
    X = np.stack([np.zeros(np.shape(log_N)), np.asarray(log_N, float), np.asarray(log_D, float)])
    return _huber_fg(np.asarray(params, dtype=float), X, np.asarray(log_L, dtype=float), delta)


def huber_approach3(
    N,
    D,
    loss,
    *,
    delta: float = 1e-3,
    grid: Mapping[str, Sequence[float]] | None = None,
    start: Mapping[str, float] | None = None,
) -> LSQFit:
    r"""Chinchilla law by Hoffmann et al.'s Approach 3 as Epoch AI (2024) replicated it.

    Runs ``scipy.optimize.minimize(method="L-BFGS-B")`` on :func:`huber_objective` (Huber loss with
    ``delta`` on log-loss residuals, summed over rows; analytic gradient; SciPy's default
    tolerances) from every point of the grid, keeps the lowest objective, and polishes it with
    ``ftol=1e-15, gtol=1e-10`` (it does not move on Epoch's data). N in parameters, D in tokens,
    loss in nats. On Epoch's 240 rows the full grid takes ~11 s of one core.

    Parameters
    ----------
    grid: start values per log-space axis (``e, a, b, alpha, beta``); axes left out keep
        :data:`EPOCH_GRID`'s values. The starts are the product of the axes.
    start: natural-unit parameters to run from instead of the grid, with the tight tolerances
        (how :func:`bootstrap` refits, from the full-data optimum).
    """
    t0 = time.perf_counter()
    N, D, loss = _columns(N=N, D=D, loss=loss)
    _check_rows("chinchilla", N.size)
    args = (np.stack([np.zeros(N.size), np.log(N), np.log(D)]), np.log(loss), delta)
    if start is not None:
        starts, options = [_logspace("chinchilla", start)], _TIGHT
    else:
        unknown = set(grid or {}) - set(EPOCH_GRID)
        if unknown:
            raise FitError(f"unknown grid axes {sorted(unknown)}; the axes are {list(EPOCH_GRID)}")
        axes = {**EPOCH_GRID, **(grid or {})}
        starts, options = [np.array(p, float) for p in itertools.product(*axes.values())], {}
    best = None
    with _one_blas_thread():
        for p0 in starts:
            res = minimize(_huber_fg, p0, args=args, jac=True, method="L-BFGS-B", options=options)
            if np.isfinite(res.fun) and (best is None or res.fun < best.fun):
                best = res
        if best is None:
            raise FitError("L-BFGS-B found no finite Huber objective from any start")
        if start is None:
            tight = minimize(_huber_fg, best.x, args, "L-BFGS-B", jac=True, options=_TIGHT)
            best = tight if tight.fun <= best.fun else best
    params = _natural("chinchilla", best.x)
    return LSQFit("huber", "chinchilla", params, None, N.size, time.perf_counter() - t0)


def bootstrap(
    fitter: Callable[..., LSQFit],
    *arrays,
    n: int = 1000,
    seed: int = 0,
    start: Mapping[str, float] | None = None,
) -> dict[str, np.ndarray]:
    """Refit ``fitter`` on ``n`` resamples of the rows, drawn with replacement.

    Parameters
    ----------
    fitter: a fitter of this module, called as ``fitter(*resampled, start=start)``.
    arrays: its arrays (``N, D, loss`` or ``x, loss``), all resampled by the same row indices.
    seed: seed of the ``numpy.random.Generator`` that draws every resample up front.
    start: natural-unit parameters each refit starts from; ``None`` fits the full data first and
        starts from that optimum (for Approach 3: the grid once, then one L-BFGS-B run per
        resample, as Epoch AI did).

    Returns
    -------
    One array of draws per parameter, natural units. Resamples whose refit fails are dropped
    with a warning (arrays shorter than ``n``); more than half failing raises FitError.
    """
    arrays = _columns(**{f"arrays[{i}]": a for i, a in enumerate(arrays)})
    if n < 1:
        raise FitError(f"a bootstrap needs n >= 1 resamples, got {n}")
    if start is None:
        start = fitter(*arrays).params
    rows = arrays[0].size
    fits = []
    with _one_blas_thread():
        for idx in np.random.default_rng(seed).integers(0, rows, size=(n, rows)):
            try:
                fits.append(fitter(*(a[idx] for a in arrays), start=start).params)
            except FitError:
                pass
    if 2 * len(fits) < n:
        raise FitError(f"{n - len(fits)} of {n} bootstrap refits failed; the fit is not stable")
    if len(fits) < n:
        warnings.warn(f"{n - len(fits)} of {n} bootstrap refits failed; dropped", stacklevel=2)
    return {k: np.array([f[k] for f in fits]) for k in start}


_bootstrap = bootstrap  # fit_lsq's argument of the same name shadows it

_FITTERS: dict[tuple[str, str], Callable[..., LSQFit]] = {
    ("ols", "power_pure"): ols_loglog,
    ("curve_fit", "power"): curve_fit_power,
    ("curve_fit", "chinchilla"): curve_fit_chinchilla,
    ("huber", "chinchilla"): huber_approach3,
}


def fit_lsq(
    method: str,
    law: str,
    *,
    N=None,
    D=None,
    x=None,
    loss,
    bootstrap: int = 0,
    seed: int = 0,
    flops_per_param_token: float = 6.0,
    grid: Mapping[str, Sequence[float]] | None = None,
) -> LSQFit:
    """Fit ``law`` by ``method``; with ``bootstrap > 0`` attach that many bootstrap draws.

    Parameters
    ----------
    method: ``"ols"`` (law ``power_pure``), ``"curve_fit"`` (``power`` or ``chinchilla``) or
        ``"huber"`` (``chinchilla``, Hoffmann Approach 3 on Epoch AI's grid).
    law: name in ``bayescale.laws.LAWS``.
    N, D: parameters and tokens per run, for ``chinchilla``; x: the input of one-variable laws.
    loss: final loss per run, nats.
    bootstrap: number of resamples, refitted from the full-data optimum; 0 for none.
    seed: seed of the resampling.
    flops_per_param_token: k in C = k N D (the training domain's compute).
    grid: ``"huber"`` only: the start values of :func:`huber_approach3` (default Epoch AI's).
    """
    t0 = time.perf_counter()
    if (method, law) not in _FITTERS:
        laws = [lw for m, lw in _FITTERS if m == method]
        if not laws:
            raise FitError(f"unknown method {method!r}; choose one of ols, curve_fit, huber")
        raise FitError(f"method {method!r} fits law {' or '.join(map(repr, laws))}, not {law!r}")
    if law == "chinchilla":
        if N is None or D is None or x is not None:
            raise FitError(f"law {law!r} takes N and D (not x)")
        arrays = (N, D, loss)
    else:
        if x is None or N is not None or D is not None:
            raise FitError(f"law {law!r} takes x (not N or D)")
        arrays = (x, loss)
    fitter = _FITTERS[method, law]
    if grid is not None:
        if method != "huber":
            raise FitError(f"grid= is the start grid of method 'huber', not {method!r}")
        fitter = functools.partial(fitter, grid=grid)
    point = fitter(*arrays)
    draws = None
    if bootstrap:
        draws = _bootstrap(fitter, *arrays, n=bootstrap, seed=seed, start=point.params)
    *inputs, loss = _columns(**{f"arrays[{i}]": a for i, a in enumerate(arrays)})
    resid = np.log(loss) - log_loss_of(law, point.params, *inputs)
    ranges = {name: (float(v.min()), float(v.max())) for name, v in zip(
        ("N", "D") if law == "chinchilla" else ("x",), inputs)}
    if law == "chinchilla":
        c = flops_per_param_token * inputs[0] * inputs[1]
        ranges["C"] = (float(c.min()), float(c.max()))
    return LSQFit(method, law, point.params, draws, point.n_points, time.perf_counter() - t0,
                  resid_sigma=residual_sigma(resid, len(point.params)), ranges=ranges,
                  flops_per_param_token=float(flops_per_param_token))


def log_loss_of(law: str, params: Mapping[str, float], *inputs) -> np.ndarray:
    """Natural log of ``law``'s loss at ``inputs`` (N, D or x) in NumPy (no JAX)."""
    logs = [np.log(np.asarray(v, dtype=float)) for v in inputs]
    if law == "power_pure":
        return np.log(params["A"]) - params["alpha"] * logs[0]
    p = _logspace(law, params)
    m = len(logs) + 1
    X = np.stack([np.zeros_like(logs[0]), *logs])
    return _lse_terms(p[:m], np.array((0.0, *p[m:])), X)[0]


def residual_sigma(resid, n_params: int) -> float:
    """Residual scale :math:`\sqrt{\sum r^2 / (n - p)}` of a least-squares fit (nats)."""
    resid = np.asarray(resid, dtype=float)
    return float(np.sqrt(np.sum(resid**2) / max(resid.size - n_params, 1)))


def fit_lsq_data(method: str, law: str, data, *, bootstrap: int = 0, seed: int = 0) -> LSQFit:
    """:func:`fit_lsq` on a :class:`bayescale.ScalingData` (its N and D, or x, and loss)."""
    if law in ("power", "power_pure"):
        if data.x is None:
            raise FitError(f"law {law!r} needs an x column (--x-col); these data have N and D")
        return fit_lsq(method, law, x=data.x, loss=data.loss, bootstrap=bootstrap, seed=seed)
    if data.N is None:
        raise FitError(f"law {law!r} needs N and D (or C); these data have only x")
    return fit_lsq(method, law, N=data.N, D=data.D, loss=data.loss, bootstrap=bootstrap, seed=seed,
                   flops_per_param_token=data.flops_per_param_token)


# --- IsoFLOP approaches (Hoffmann et al. 2022, Approaches 1 and 2) -------------------------------

#: Budgets: sorted log10 C values more than this many decades apart start a new budget.
BUDGET_GAP = 0.1
#: Approach 2 fits its parabola to the lowest-loss run of a budget and this many neighbours in
#: log N on each side (fewer at the edge of the grid).
PARABOLA_HALF_WIDTH = 2


def isoflop_budgets(C, gap: float = BUDGET_GAP) -> np.ndarray:
    """Budget label (0 = smallest) of each run: runs whose log10 C lie within ``gap`` decades
    of their neighbour share a budget (an IsoFLOP grid's budgets differ by factors of 2 or more,
    0.3 decades)."""
    logs = np.log10(np.asarray(C, dtype=float))
    order = np.argsort(logs, kind="stable")
    label = np.empty(logs.size, dtype=int)
    label[order] = np.concatenate([[0], np.cumsum(np.diff(logs[order]) > gap)])
    return label


@dataclass(frozen=True, eq=False)
class IsoflopFit:
    r"""Compute-optimal allocation by an IsoFLOP approach: :math:`N^*(C) = N_0 C^a`,
    :math:`D^*(C) = C/(k N^*(C))`, so :math:`b = 1 - a`.

    Attributes
    ----------
    method: ``"approach1"`` (each budget's lowest-loss run) or ``"approach2"`` (the vertex of a
        parabola in log N fitted to each budget's IsoFLOP profile).
    budgets: pandas.DataFrame, one row per budget used: ``compute`` (geometric mean C of its
        runs), ``N_opt``, ``D_opt``, ``loss_opt`` (nats), ``n_runs``.
    a, log_n0: slope and intercept of the OLS line :math:`\log N^* = \log N_0 + a \log C`.
    draws: bootstrap draws of ``a`` and ``log_n0`` (runs resampled within each budget), or None.
    skipped: budgets left out and why (too few runs, no interior minimum).
    """

    method: str
    budgets: Any
    a: float
    log_n0: float
    draws: Mapping[str, np.ndarray] | None
    skipped: tuple[str, ...]
    flops_per_param_token: float = 6.0
    seconds: float = 0.0

    @property
    def b(self) -> float:
        return 1.0 - self.a

    def optimal(self, C, level: float = 0.95) -> dict[str, Any]:
        """N* and D* at budget(s) C: point values and, with bootstrap draws, central intervals."""
        c = np.atleast_1d(np.asarray(C, dtype=float))
        if not np.all(np.isfinite(c) & (c > 0)):
            raise FitError(f"compute budgets must be positive FLOPs; got {C!r}")
        log_n = self.log_n0 + self.a * np.log(c)
        out = {"compute": c, "N_opt": np.exp(log_n), "D_opt": c / (
            self.flops_per_param_token * np.exp(log_n))}
        if self.draws is not None:
            q = (1 - level) / 2
            ln = self.draws["log_n0"][:, None] + self.draws["a"][:, None] * np.log(c)[None, :]
            lo, hi = np.quantile(ln, [q, 1 - q], axis=0)
            out.update(N_lo=np.exp(lo), N_hi=np.exp(hi),
                       D_lo=c / (self.flops_per_param_token * np.exp(hi)),
                       D_hi=c / (self.flops_per_param_token * np.exp(lo)))
        return out

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-ready: the exponents (with bootstrap intervals), each budget's optimum."""
        def interval(name, value):
            if self.draws is None:
                return {"median": value}
            x = self.draws["a"] if name == "a" else 1.0 - self.draws["a"]
            q = (1 - level) / 2
            lo, med, hi = np.quantile(x, [q, 0.5, 1 - q])
            return {"point": value, "median": float(med), "lo": float(lo), "hi": float(hi)}

        return {"method": self.method, "level": level, "n_points": int(self.budgets["n_runs"].sum()),
                "flops_per_param_token": self.flops_per_param_token,
                "exponents": {"a": interval("a", self.a), "b": interval("b", self.b)},
                "log_n0": self.log_n0, "n_bootstrap": 0 if self.draws is None else int(
                    self.draws["a"].size),
                "budgets": self.budgets.to_dict(orient="records"), "skipped": list(self.skipped)}


def _vertex(log_n: np.ndarray, log_loss: np.ndarray, half: int) -> tuple[float, float] | str:
    """Approach 2 at one budget: (log N*, log loss there) of the parabola through the lowest run
    and ``half`` neighbours on each side, or why there is none. Runs of the same size (repeats,
    or a bootstrap's copies) count once, at their mean log loss."""
    x, inverse = np.unique(log_n, return_inverse=True)
    if x.size < 3:
        return "fewer than 3 model sizes"
    y = np.bincount(inverse, weights=log_loss) / np.bincount(inverse)
    i = int(np.argmin(y))
    lo, hi = max(0, i - half), min(x.size, i + half + 1)
    while hi - lo < 3:  # at the grid's edge: take more runs from the other side
        lo, hi = (lo - 1, hi) if lo > 0 else (lo, hi + 1)
    centre = float(np.mean(x[lo:hi]))  # centred for a well-conditioned fit
    c2, c1, c0 = np.polyfit(x[lo:hi] - centre, y[lo:hi], 2)
    if not c2 > 0:
        return "the IsoFLOP profile is not convex"
    u = -c1 / (2 * c2)
    if not x[0] <= u + centre <= x[-1]:
        return "the minimum lies outside its model sizes"
    return float(u + centre), float(c0 + c1 * u + c2 * u * u)


def _isoflop_points(method, N, C, loss, label, half):
    rows, skipped = [], []
    for j in np.unique(label):
        m = label == j
        c = float(np.exp(np.mean(np.log(C[m]))))
        spread = float(np.ptp(np.log10(C[m])))
        if spread > 3 * BUDGET_GAP:
            skipped.append(f"C = {c:.3g}: its {int(m.sum())} runs' compute spans {spread:.2g} "
                           "decades, not one IsoFLOP budget")
            continue
        if method == "approach1":
            i = int(np.argmin(np.where(m, loss, np.inf)))
            u, ll, c = math.log(N[i]), math.log(loss[i]), float(C[i])
        else:
            got = _vertex(np.log(N[m]), np.log(loss[m]), half)
            if isinstance(got, str):
                skipped.append(f"C = {c:.3g}: {got}")
                continue
            u, ll = got
        rows.append((c, u, ll, int(m.sum())))
    return rows, skipped


def _line(rows) -> tuple[float, float]:
    x = np.log([r[0] for r in rows])
    y = np.array([r[1] for r in rows])
    a, b0 = np.polyfit(x, y, 1)
    return float(a), float(b0)


def isoflop_approach(method: str, *, N, C=None, D=None, loss, bootstrap: int = 0, seed: int = 0,
                     flops_per_param_token: float = 6.0, gap: float = BUDGET_GAP,
                     half_width: int = PARABOLA_HALF_WIDTH) -> IsoflopFit:
    r"""Hoffmann et al.'s Approach 1 or 2: compute-optimal N*(C) from IsoFLOP runs, no law.

    Runs are grouped into budgets (:func:`isoflop_budgets`). **Approach 1** takes each budget's
    lowest-loss run (the envelope; from final losses, not training curves as Hoffmann did).
    **Approach 2** fits a parabola to log loss against log N through each budget's lowest run and
    ``half_width`` neighbours on each side, and takes its vertex (budgets with fewer than 3 sizes,
    a concave profile or a vertex outside their sizes are skipped and listed). Both then fit
    :math:`\log N^* = \log N_0 + a \log C` by least squares; :math:`D^* = C/(kN^*)`, so
    :math:`b = 1 - a`. ``bootstrap`` resamples the runs within each budget and refits, for
    intervals.

    Approach 2 is biased when a budget's grid is off-centre around its minimum or alpha != beta:
    the parabola is only the second-order approximation of the profile (Czech et al. 2026);
    ``benchmarks/porian.py`` compares it with the posterior.
    """
    t0 = time.perf_counter()
    if method not in ("approach1", "approach2"):
        raise FitError(f"unknown IsoFLOP method {method!r}; choose approach1 or approach2")
    N = np.asarray(N, dtype=float)
    if C is None:
        if D is None:
            raise FitError("an IsoFLOP approach needs each run's compute C (or its tokens D)")
        C = flops_per_param_token * N * np.asarray(D, dtype=float)
    C, loss = np.asarray(C, dtype=float), np.asarray(loss, dtype=float)
    if not (N.shape == C.shape == loss.shape and N.ndim == 1):
        raise FitError("N, C and loss must be 1-d arrays of one value per run")
    label = isoflop_budgets(C, gap)
    rows, skipped = _isoflop_points(method, N, C, loss, label, half_width)
    if len(rows) < 2:
        raise DataError(
            f"{method} needs at least 2 compute budgets with an IsoFLOP minimum; these runs give "
            f"{len(rows)} ({'; '.join(skipped) or 'the runs form one budget'}). Runs share a "
            f"budget when their compute lies within {gap} decades")
    a, log_n0 = _line(rows)
    draws = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        groups = [np.flatnonzero(label == j) for j in np.unique(label)]
        out = []
        for _ in range(bootstrap):
            idx = np.concatenate([rng.choice(g, g.size) for g in groups])
            r, _ = _isoflop_points(method, N[idx], C[idx], loss[idx], label[idx], half_width)
            if len(r) >= 2:
                out.append(_line(r))
        if 2 * len(out) < bootstrap:
            raise FitError(f"{bootstrap - len(out)} of {bootstrap} bootstrap refits found fewer "
                           "than 2 budgets with a minimum; the fit is not stable")
        draws = {"a": np.array([o[0] for o in out]), "log_n0": np.array([o[1] for o in out])}
    import pandas as pd

    k = float(flops_per_param_token)
    budgets = pd.DataFrame([(c, math.exp(u), c / (k * math.exp(u)), math.exp(ll), n)
                            for c, u, ll, n in rows],
                           columns=["compute", "N_opt", "D_opt", "loss_opt", "n_runs"])
    return IsoflopFit(method, budgets, a, log_n0, draws, tuple(skipped), k,
                      time.perf_counter() - t0)
