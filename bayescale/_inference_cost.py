r"""Inference-aware allocation: the cheapest model to train *and serve* that reaches a target loss.

Public through :func:`bayescale.decisions.inference_aware`. A model of N parameters trained on D
tokens and then run on T inference tokens costs

.. math:: F(N, D) = k\,N D + k_{inf}\,N\,T \quad\text{FLOPs}\qquad (k = 6,\ k_{inf} = 2),

and the search is over N with D the least number of tokens reaching the target at that N. More
inference tokens make N dearer, so the optimum moves to smaller models trained on more tokens
(the Llama-style choice), which is what this module quantifies.
"""

from __future__ import annotations

import functools
import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import elementwise

from bayescale._draws import (
    LOG_INF,
    check_reachable,
    common_noise,
    decreasing_root,
    interval,
    level,
    positive,
    require_nd,
)
from bayescale.errors import FitError
from bayescale.extrapolation import beyond_data
from bayescale.posterior import as_posterior

__all__ = ["InferenceDecision", "inference_aware"]


@dataclass(frozen=True, eq=False)
class InferenceDecision:
    """Model size and tokens reaching a target loss at least training plus inference FLOPs.

    Attributes
    ----------
    N, D: the decision under the posterior predictive: parameters, training tokens.
    N_draws, D_draws: each posterior draw's own optimum (law loss = target, no noise and no
        form error: the law's own answer, which with a form error can lie outside the
        decision's); NaN for draws whose irreducible loss is above the target.
    form_error: whether the decision's predictive included the law's form error beyond the data.
    """

    target_loss: float
    probability: float
    inference_tokens: float
    flops_per_param_token: float
    inference_flops_per_param_token: float
    N: float
    D: float
    N_draws: np.ndarray = field(repr=False)
    D_draws: np.ndarray = field(repr=False)
    form_error: bool = False

    @property
    def training_flops(self) -> float:
        return self.flops_per_param_token * self.N * self.D

    @property
    def inference_flops(self) -> float:
        return self.inference_flops_per_param_token * self.N * self.inference_tokens

    @property
    def fraction_reachable(self) -> float:
        """Share of posterior draws whose law can reach the target at all."""
        return float(np.mean(np.isfinite(self.N_draws)))

    def to_dict(self, level: float = 0.95) -> dict:
        """Plain floats; the per-draw optima as median and central interval."""
        return {
            "target_loss": self.target_loss,
            "probability": self.probability,
            "inference_tokens": self.inference_tokens,
            "N": self.N,
            "D": self.D,
            "training_flops": self.training_flops,
            "inference_flops": self.inference_flops,
            "total_flops": self.training_flops + self.inference_flops,
            "N_draws": interval(self.N_draws, level),
            "D_draws": interval(self.D_draws, level),
            "fraction_reachable": self.fraction_reachable,
            "form_error": self.form_error,
        }


def _minimise_offset(f, grid, args=()):
    """Minimise elementwise ``f(u, *args)`` over offsets u: best of ``grid`` (first axis) refined by
    Chandrupatla between its neighbours."""
    vals = f(grid.reshape(grid.shape + (1,) * np.ndim(args[0] if args else 0)), *args)
    i = np.nanargmin(vals, axis=0)
    n = grid.shape[0]
    if np.any(i == n - 1):
        warnings.warn(
            "the inference-aware optimum lies at the largest model searched (N_min * e^span); "
            "pass a larger span=",
            stacklevel=3,
        )
    j = np.clip(i, 1, n - 2)
    res = elementwise.find_minimum(f, (grid[j - 1], grid[j], grid[j + 1]), args=args)
    interior = (i > 0) & (i < n - 1) & np.isfinite(res.x)
    return np.where(interior, res.x, grid[i])


def inference_aware(
    posterior,
    target: float,
    *,
    inference_tokens: float,
    probability: float = 0.5,
    inference_flops_per_param_token: float = 2.0,
    include_noise: bool = True,
    form_error: bool = True,
    seed: int = 0,
    span: float = 14.0,
    n_grid: int = 141,
) -> InferenceDecision:
    r"""Least training plus inference FLOPs :math:`kND + k_{inf} N T` reaching a target loss.

    Two answers, both minimising over log N with D the least tokens reaching the target at that N:

    * the decision (``N``, ``D``): reach means :math:`P(L^{new}(N, D) \le \text{target}) \ge p`
      under the posterior predictive (noise draws fixed by ``seed``);
    * its posterior (``N_draws``, ``D_draws``): each draw's own optimum, where its law loss
      equals the target.

    N is searched from the least N that can reach the target with unlimited data, N_min, up to
    :math:`N_{min} e^{span}`: a grid of ``n_grid`` points, then Chandrupatla minimisation; D at
    each N is a root found by Chandrupatla's method on log D.

    Parameters
    ----------
    posterior: the draws (see :mod:`bayescale.decisions`) of a law of N and D; k is its
        ``flops_per_param_token``.
    target: target loss (nats).
    inference_tokens: expected tokens processed at inference over the model's life (T >= 0).
    probability: p, the required probability of reaching the target.
    inference_flops_per_param_token: k_inf (FLOPs per parameter per token at inference).

    form_error: the decision's predictive includes the law's form error beyond the data
    (:mod:`bayescale.extrapolation`), as :func:`compute_for_target`'s does, when the posterior
    has one (the default). The error grows with the decades beyond the data, so a run's
    p-quantile of loss no longer falls for ever with D: D is then the least number of tokens
    whose p-quantile reaches the target, found on a grid of 0.2 decades from a tenth of the
    data's smallest D to 10^6 times its largest (then by Chandrupatla's method between grid
    points), and N on a grid from ``N_min e^-3`` to ``N_min e^span``, refined twice (N_min: the
    least N whose law reaches the target with unlimited data; the data's largest N when the law
    alone cannot, and the form error can). False: the law and the noise only (N and D then run
    through unlimited data). The per-draw optima are the law's own in both cases. An answer
    more than 1000x beyond the data warns (:class:`~bayescale.ExtrapolationWarning`).

    Raises
    ------
    FitError: the target lies below the irreducible loss (without the form error) or is reached
        by no model and data searched (with it); see :func:`compute_for_target`.
    """
    d = as_posterior(posterior)
    require_nd(d.law)
    log_t = math.log(positive(target, "target loss"))
    p = level(probability, "probability")
    k = d.flops_per_param_token
    k_inf = positive(inference_flops_per_param_token, "inference_flops_per_param_token")
    try:
        T = float(inference_tokens)
    except (TypeError, ValueError):
        T = math.nan
    if not 0 <= T < math.inf:
        raise FitError(f"inference_tokens must be a finite number >= 0; got {inference_tokens!r}")
    log_inf_cost = math.log(k_inf) + math.log(T) if T > 0 else -math.inf
    common = common_noise(d, seed, include_noise)
    eps = common.eps
    with_form = bool(form_error) and d.form_slopes is not None
    if not with_form:  # with the form error the search decides: it can carry a run lower
        check_reachable(d, eps, log_t, p)
    grid = np.linspace(1e-3, span, n_grid)

    def log_total(log_n, log_d):
        return np.logaddexp(math.log(k) + log_n + log_d, log_inf_cost + log_n)

    # The decision: "reached" is the inverted-CDF p-quantile of the predictive log loss being at
    # most log target; that order statistic is continuous in N and D, so roots are well defined.
    # ``form``: a new run's loss with the law's form error beyond the data (Common.log_loss).
    def gap(log_n, log_d, form=False):
        log_n, log_d = (np.asarray(v, dtype=float)[..., None] for v in (log_n, log_d))
        x = common.log_loss(log_n, log_d) if form else d.log_law(log_n, log_d) + eps
        return np.quantile(x, p, axis=-1, method="inverted_cdf") - log_t

    n_min = decreasing_root(lambda u: gap(u, LOG_INF), 0.0, LOG_INF)
    if with_form:
        if not np.isfinite(n_min):  # the law alone misses it: search from the largest model
            n_min = math.log(d.domain.ranges["N"][1])
        log_n, log_d = _decision_with_form_error(functools.partial(gap, form=True), d, p, log_t,
                                                 float(n_min), log_total, span)
    else:
        def d_req(log_n):
            return decreasing_root(lambda v, u: gap(u, v), 0.0, LOG_INF, args=(log_n,))

        def cost(u):
            return log_total(n_min + u, d_req(n_min + u))

        log_n = float(n_min + _minimise_offset(cost, grid))
        log_d = float(d_req(np.asarray(log_n)))

    # The posterior: every draw's own optimum, law loss = target.
    names = d.law.params

    def gap_s(log_n, log_d, *vals):
        return d.log_law(log_n, log_d, params=dict(zip(names, vals))) - log_t

    pv = tuple(d.params[name] for name in names)
    n_min_s = decreasing_root(lambda u, *v: gap_s(u, LOG_INF, *v), 0.0, LOG_INF, args=pv)
    ok = np.isfinite(n_min_s)
    pv_ok = tuple(v[ok] for v in pv)

    def d_req_s(log_n, *v):
        return decreasing_root(lambda w, u, *v_: gap_s(u, w, *v_), 0.0, LOG_INF, args=(log_n, *v))

    def cost_s(u, base, *v):
        return log_total(base + u, d_req_s(base + u, *v))

    beyond_data(d, {"N": [math.exp(log_n)], "D": [math.exp(log_d)]}, stacklevel=2)
    n_draws = np.full(d.size, np.nan)
    d_draws = np.full(d.size, np.nan)
    if ok.any():
        ln = n_min_s[ok] + _minimise_offset(cost_s, grid, args=(n_min_s[ok], *pv_ok))
        n_draws[ok], d_draws[ok] = np.exp(ln), np.exp(d_req_s(ln, *pv_ok))
    return InferenceDecision(
        target_loss=float(target),
        probability=p,
        inference_tokens=T,
        flops_per_param_token=k,
        inference_flops_per_param_token=k_inf,
        N=math.exp(log_n),
        D=math.exp(log_d),
        N_draws=n_draws,
        D_draws=d_draws,
        form_error=with_form,
    )


#: The form-error search's grid of log D: 0.2 decades, from a tenth of the data's smallest D to
#: 10^6 times its largest; values held at once while it is scanned; the points of its grids of
#: log N (the first, then each refinement).
_D_STEP, _D_BELOW, _D_ABOVE = 0.2 * math.log(10), math.log(10), 6 * math.log(10)
_BLOCK = 2**22
_N_FIRST, _N_REFINE = 69, 21


def _decision_with_form_error(gap, post, p, log_t, n_min, log_total, span):
    """(log N, log D) of least total cost whose new run, form error included, reaches
    ``log_t`` with probability ``p``: ``gap(log N, log D)`` is that run's p-quantile of log loss
    minus ``log_t``, broadcast. At each N, D is the first crossing of the p-quantile of
    log loss on a grid of log D, refined by Chandrupatla's method between the grid points; N is
    the best of a grid from ``n_min - 3`` over ``span + 3``, refined twice between the best
    point's neighbours (to 1/100 of the first grid's step)."""
    lo_d, hi_d = post.domain.ranges["D"]
    grid_d = np.arange(math.log(lo_d) - _D_BELOW, math.log(hi_d) + _D_ABOVE, _D_STEP)

    def d_req(log_n):
        """The least log D reaching the target at each of ``log_n`` (inf where none does)."""
        first = np.full(log_n.shape, -1)
        rows = max(1, _BLOCK // (grid_d.size * post.size))
        for a in range(0, log_n.size, rows):
            ok = gap(log_n[a:a + rows, None], grid_d[None, :]) <= 0
            first[a:a + rows] = np.where(ok.any(axis=1), ok.argmax(axis=1), -1)
        out = np.where(first >= 0, grid_d[np.maximum(first, 0)], np.inf)
        inner = first > 0
        if inner.any():
            i = first[inner]
            res = elementwise.find_root(lambda v, u: gap(u, v), (grid_d[i - 1], grid_d[i]),
                                        args=(log_n[inner],), tolerances={"xatol": 1e-9})
            out[inner] = res.x
        return out

    def costs(grid):
        v = d_req(grid)
        return np.where(np.isfinite(v), log_total(grid, np.where(np.isfinite(v), v, 0.0)),
                        np.inf)

    grid = np.linspace(n_min - 3.0, n_min + span, _N_FIRST)
    c = costs(grid)
    if not np.isfinite(c).any():
        raise FitError(
            f"target loss {math.exp(log_t):.4g} nats is not reached with probability {p:g} by "
            f"any model of {math.exp(grid[0]):.3g} to {math.exp(grid[-1]):.3g} parameters "
            f"(span={span:g}) trained on {math.exp(grid_d[0]):.3g} to {math.exp(grid_d[-1]):.3g}"
            " tokens once the law's form error beyond the data is included (it grows with the "
            "distance from the data); choose a higher target or a lower probability, or pass "
            "form_error=False to take the law's form as exact")
    i = int(np.argmin(c))
    if i in (0, grid.size - 1):
        edge = "smallest" if i == 0 else "largest"
        warnings.warn(f"the inference-aware optimum lies at the {edge} model searched (N_min "
                      "e^-3 to N_min e^span): the answer is that edge; pass a larger span= if "
                      "it is the largest", stacklevel=3)
    for _ in range(2):
        grid = np.linspace(grid[max(i - 1, 0)], grid[min(i + 1, grid.size - 1)], _N_REFINE)
        c = costs(grid)
        i = int(np.argmin(c))
    log_n = float(grid[i])
    log_d = float(d_req(np.array([log_n]))[0])
    if log_d <= grid_d[0]:
        warnings.warn(f"the target is reached at the fewest tokens searched "
                      f"({math.exp(log_d):.3g}, a tenth of the data's smallest D): the "
                      "answer's D is that bound", stacklevel=3)
    return log_n, log_d
