r"""Inference-aware allocation: the cheapest model to train *and serve* that reaches a target loss.

Public through :func:`bayescale.decisions.inference_aware`. A model of N parameters trained on D
tokens and then run on T inference tokens costs

.. math:: F(N, D) = k\,N D + k_{inf}\,N\,T \quad\text{FLOPs}\qquad (k = 6,\ k_{inf} = 2),

and the search is over N with D the least number of tokens reaching the target at that N. More
inference tokens make N dearer, so the optimum moves to smaller models trained on more tokens
(the Llama-style choice), which is what this module quantifies.
"""

from __future__ import annotations

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
from bayescale.posterior import as_posterior

__all__ = ["InferenceDecision", "inference_aware"]


@dataclass(frozen=True, eq=False)
class InferenceDecision:
    """Model size and tokens reaching a target loss at least training plus inference FLOPs.

    Attributes
    ----------
    N, D: the decision under the posterior predictive: parameters, training tokens.
    N_draws, D_draws: each posterior draw's own optimum (law loss = target, no noise); NaN for
        draws whose irreducible loss is above the target.
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

    The loss is the law's and the run's noise: the law's form error beyond the data
    (:mod:`bayescale.extrapolation`) is left out, since the search for D runs through unlimited
    data, where an error that grows with the distance from the data means nothing.

    Raises
    ------
    FitError: the target lies below the irreducible loss (see :func:`compute_for_target`).
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
    # The law and the noise only: the search runs through unlimited data, where a form error
    # growing with the distance from the data would mean nothing.
    eps = common_noise(d, seed, include_noise).eps
    check_reachable(d, eps, log_t, p)
    grid = np.linspace(1e-3, span, n_grid)

    def log_total(log_n, log_d):
        return np.logaddexp(math.log(k) + log_n + log_d, log_inf_cost + log_n)

    # The decision: "reached" is the inverted-CDF p-quantile of the predictive log loss being at
    # most log target; that order statistic is continuous in N and D, so roots are well defined.
    def gap(log_n, log_d):
        x = d.log_law(np.asarray(log_n)[..., None], np.asarray(log_d)[..., None]) + eps
        return np.quantile(x, p, axis=-1, method="inverted_cdf") - log_t

    n_min = decreasing_root(lambda u: gap(u, LOG_INF), 0.0, LOG_INF)

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
    )
