r"""Risk-aware budget decisions from posterior draws of a scaling law.

A fit enters as a :class:`bayescale.Posterior` of S draws (or a fit, which is converted). A new
training run at N parameters and D tokens has the posterior predictive loss (nats)

.. math::
    L^{new}_s(N, D) = \exp\big(\log L_s(N, D) + \varepsilon_s + \delta_s(N, D)\big),\qquad
    \varepsilon_s \sim t_{\nu_s}(0, \sigma_s),\quad s = 1..S,

(:meth:`bayescale.Posterior.noise`) with :math:`\delta_s` the law's form error beyond the data
(:meth:`bayescale.Posterior.form_offset`; 0 inside it), and a budget of C FLOPs fixes
:math:`D = C / (k N)` (k, the posterior's FLOPs per parameter per token, 6 by default). The noise
and the form error's run-to-run part are drawn once per posterior draw from ``seed`` and reused
for every candidate N (common random numbers), so each objective is a smooth function of N.
Regret and the 1% criterion compare the law's own losses.

Objectives (:func:`expected`, :func:`quantile`, :func:`cvar`, :func:`mean_std`) are small factories
returning closures over loss draws; :func:`parse_objective` reads the CLI's ``"cvar:0.9"``.
Decisions: :func:`choose_allocation` (a split of a budget, next to the plug-in split),
:func:`prob_below_target`, :func:`compute_for_target`, :func:`inference_aware` (the least training
plus inference FLOPs reaching a target). The value of a pilot run is in :mod:`bayescale.voi`.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
from scipy import optimize

from bayescale._draws import (
    LOG_INF,
    capped_log_n_bounds,
    check_reachable,
    common_noise,
    interval,
    level,
    log_n_bounds,
    optimal_log_n,
    positive,
    require_nd,
    unlimited_reach,
)
from bayescale._inference_cost import InferenceDecision, inference_aware
from bayescale._objectives import (
    Objective,
    cvar,
    expected,
    mean_std,
    parse_objective,
    quantile,
    spec_of,
)
from bayescale.allocation import with_unique_tokens
from bayescale.errors import FitError
from bayescale.extrapolation import beyond_data
from bayescale.posterior import Posterior, as_posterior

__all__ = [
    "Objective",
    "expected",
    "quantile",
    "cvar",
    "mean_std",
    "parse_objective",
    "Choice",
    "Decision",
    "choose_allocation",
    "prob_below_target",
    "TargetCompute",
    "compute_for_target",
    "InferenceDecision",
    "inference_aware",
]

# --- choosing a split ----------------------------------------------------------------------------


def _objective_of_log_n(common, obj: Objective, log_c: float):
    def value(log_n):
        log_n = np.asarray(log_n, dtype=float)[..., None]
        return np.asarray(obj(np.exp(common.log_loss(log_n, log_c - log_n))), dtype=float)

    return value


def _choose_log_n(common, obj, log_c, lo, hi, *, plugin: float, n_grid: int = 121) -> float:
    """log N minimising the objective: a grid on [lo, hi], bounded Brent next to its best point,
    and the best of those and the plug-in log N when that lies in [lo, hi]."""
    value = _objective_of_log_n(common, obj, log_c)
    grid = np.linspace(lo, hi, n_grid)
    i = int(np.nanargmin(value(grid)))
    a, b = grid[max(i - 1, 0)], grid[min(i + 1, n_grid - 1)]
    res = optimize.minimize_scalar(
        lambda u: float(value(u)), bounds=(a, b), method="bounded", options={"xatol": 1e-8}
    )
    cands = np.array([grid[i], res.x, *([plugin] if lo <= plugin <= hi else [])])
    return float(cands[int(np.nanargmin(value(cands)))])


def _plugin_log_n(d: Posterior, log_c: float, lo: float, hi: float) -> float:
    return float(optimal_log_n(d.median(), log_c, lo, hi)[0][0])


@dataclass(frozen=True, eq=False)
class Choice:
    r"""One split of a budget and how it fares under the posterior.

    Attributes
    ----------
    N, D: parameters and training tokens, ``k N D = C``.
    objective_value: the objective of the predictive loss at this split (nats).
    p_within_1pct: share of draws whose law loss here is within 1% of that draw's best at C.
    regret: :math:`\mathbb{E}_s[L_s(N, D) - \min_{N'} L_s(N', C/(kN'))]` (nats, law loss).
    loss_draws: predictive loss draws at this split (nats), one per posterior draw.
    """

    N: float
    D: float
    objective_value: float
    p_within_1pct: float
    regret: float
    loss_draws: np.ndarray = field(repr=False)

    def __post_init__(self):
        if not (self.N > 0 and self.D > 0):
            raise FitError(f"a split needs N > 0 and D > 0; got N={self.N}, D={self.D}")


def _assess(d, common, obj, log_c, log_n, best_log) -> Choice:
    log_l = d.log_law(log_n, log_c - log_n)
    losses = np.exp(common.log_loss(log_n, log_c - log_n))
    return Choice(
        N=float(np.exp(log_n)),
        D=float(np.exp(log_c - log_n)),
        objective_value=float(obj(losses)),
        p_within_1pct=float(np.mean(log_l - best_log <= math.log(1.01))),
        regret=float(np.mean(np.maximum(np.exp(log_l) - np.exp(best_log), 0.0))),
        loss_draws=losses,
    )


@dataclass(frozen=True, eq=False)
class Decision:
    """The chosen split of a budget of C FLOPs, next to the plug-in split.

    ``regret_of_plugin`` is the expected law-loss gap (nats) of the plug-in split to each draw's own
    optimum at C; ``choice.regret`` is the same for the chosen split.
    """

    compute: float
    objective: str
    flops_per_param_token: float
    choice: Choice
    plugin: Choice
    #: ``{"max_params", "max_tokens"}`` when the split was capped, else None.
    caps: dict | None = None
    #: The choice without the caps (same objective and noise draws), when capped.
    uncapped: Choice | None = None
    #: How far the chosen split is from the training data (as :attr:`Prediction.beyond
    #: <bayescale.predict.Prediction.beyond>`): C, N, D over the largest trained, and
    #: ``decades`` outside the data; empty for draws without a training domain.
    beyond: dict = field(default_factory=dict)

    @property
    def regret_of_plugin(self) -> float:
        return self.plugin.regret

    @property
    def cap_cost(self) -> float | None:
        """What the caps cost: the capped choice's objective minus the uncapped one's (nats)."""
        if self.uncapped is None:
            return None
        return self.choice.objective_value - self.uncapped.objective_value

    def cap_cost_draws(self) -> np.ndarray | None:
        """Per draw, the capped choice's loss minus the uncapped choice's (nats, same noise)."""
        if self.uncapped is None:
            return None
        return self.choice.loss_draws - self.uncapped.loss_draws

    def to_dict(self, level: float = 0.95) -> dict:
        """Plain floats, shaped as ``bayescale decide --compute C --json`` prints them."""
        c, p = self.choice, self.plugin
        return {
            "compute": float(self.compute),
            "objective": self.objective,
            "choice": {
                "N": c.N, "D": c.D, "objective_value": c.objective_value,
                "loss": interval(c.loss_draws, level), "p_within_1pct": c.p_within_1pct,
            },
            "plugin": {
                "N": p.N, "D": p.D, "objective_value": p.objective_value,
                "p_within_1pct": p.p_within_1pct,
            },
            "regret_of_plugin": self.regret_of_plugin,
            **({} if self.uncapped is None else {
                "caps": {k: (None if v is None else float(v)) for k, v in self.caps.items()},
                "uncapped": {"N": self.uncapped.N, "D": self.uncapped.D,
                             "objective_value": self.uncapped.objective_value},
                "cap_cost": {"objective": self.cap_cost,
                             **interval(self.cap_cost_draws(), level)}}),
            **({"beyond": {k: float(np.ravel(v)[0]) for k, v in self.beyond.items()}}
               if self.beyond else {}),
        }


def choose_allocation(
    posterior,
    C: float,
    *,
    objective: str | Objective = "expected",
    include_noise: bool = True,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
    max_params: float | None = None,
    max_tokens: float | None = None,
    unique_tokens: float | None = None,
) -> Decision:
    r"""Split a budget of C FLOPs into N parameters and :math:`D = C/(kN)` tokens under risk.

    Minimises ``objective`` of the posterior predictive loss draws
    :math:`\{L^{new}_s(N, C/(kN))\}_s` over log N: a 121-point grid on the search interval, then
    bounded Brent between the grid neighbours of its best point. The plug-in split (optimum of the
    law at the posterior-median parameters: closed form for Chinchilla, numerical otherwise) is
    also a candidate when it lies within ``bounds``, so the choice is then never worse than it
    under the objective.

    Parameters
    ----------
    posterior: the draws (see the module docstring) of a law of N and D; k in :math:`C = kND` is
        its ``flops_per_param_token``.
    C: training compute (FLOPs).
    objective: an :data:`Objective` or its spec (``"expected"``, ``"quantile:0.9"``, ...).
    include_noise: add a new run's noise to the law: its run-to-run noise and the part of the
        law's form error beyond the data that differs from run to run. False scores the loss a
        new run is expected to have: the law with its form error's slopes (each draw's shift of
        the law beyond the data, which is the law's error, not a run's), without the noise.
    seed: seed of the common random numbers.
    bounds: (N_min, N_max) searched; default D/N from 1e-2 to 1e6 tokens per parameter.
    max_params, max_tokens: caps on the split (the largest model that fits, the unique data
        there is): the search keeps N <= max_params and D <= max_tokens, and the decision also
        holds the uncapped choice and :attr:`Decision.cap_cost`, what the caps cost.
    unique_tokens: the data budget U of a ``data_constrained`` posterior (required there).

    Returns
    -------
    :class:`Decision`; per-draw regret and the 1% criterion use the law loss without noise.

    Examples
    --------
    One draw of Epoch's Chinchilla refit and no noise give Hoffmann's closed form:

    >>> from bayescale import Posterior
    >>> draws = {"E": [1.82], "A": [482.0], "B": [2085.0], "alpha": [0.348], "beta": [0.366]}
    >>> dec = choose_allocation(Posterior.from_draws("chinchilla", draws), 5.88e23)
    >>> f"N = {dec.choice.N:.3g}, {dec.choice.D / dec.choice.N:.1f} tokens per parameter"
    'N = 7.31e+10, 18.3 tokens per parameter'
    """
    d = with_unique_tokens(as_posterior(posterior), unique_tokens)
    require_nd(d.law)
    obj = parse_objective(objective)
    k = d.flops_per_param_token
    log_c = math.log(positive(C, "compute C")) - math.log(k)
    capped = max_params is not None or max_tokens is not None
    lo, hi = capped_log_n_bounds(log_c, bounds, max_params, max_tokens, k)
    free = log_n_bounds(log_c, bounds)
    common = common_noise(d, seed, include_noise)
    plug = _plugin_log_n(d, log_c, lo, hi)
    if capped:  # the plug-in split within the caps (unimodal: the clipped optimum)
        plug = float(np.clip(plug, lo, hi))
    log_n = _choose_log_n(common, obj, log_c, lo, hi, plugin=plug)
    at_cap = (max_params is not None and hi - log_n < 1e-6 and hi < free[1]) or (
        max_tokens is not None and log_n - lo < 1e-6 and lo > free[0])
    if log_n != plug and not at_cap and min(log_n - lo, hi - log_n) < 1e-6:
        warnings.warn(
            f"the chosen N = {math.exp(log_n):.3g} lies at the edge of the search interval; "
            "pass wider bounds=(N_min, N_max)",
            stacklevel=2,
        )
    log_best, best = optimal_log_n(d, log_c, lo, hi)
    uncapped = None
    if capped:  # regret against each draw's best split within the caps
        log_best = np.clip(log_best, lo, hi)
        best = d.log_law(log_best, log_c - log_best)
        plug_free = _plugin_log_n(d, log_c, *free)
        log_free = _choose_log_n(common, obj, log_c, *free, plugin=plug_free)
        uncapped = _assess(d, common, obj, log_c, log_free, optimal_log_n(d, log_c, *free)[1])
    # how far the split is from the data; warns past FAR decades, as allocate and predict do
    beyond = beyond_data(d, {"N": [math.exp(log_n)], "D": [math.exp(log_c - log_n)]},
                         stacklevel=2)
    return Decision(
        compute=float(C),
        objective=spec_of(obj),
        flops_per_param_token=k,
        choice=_assess(d, common, obj, log_c, log_n, best),
        plugin=_assess(d, common, obj, log_c, plug, best),
        caps={"max_params": max_params, "max_tokens": max_tokens} if capped else None,
        uncapped=uncapped,
        beyond=beyond,
    )


# --- targets -------------------------------------------------------------------------------------


def prob_below_target(
    posterior,
    target: float,
    *,
    N: float | None = None,
    D: float | None = None,
    C: float | None = None,
    objective: str | Objective = "expected",
    include_noise: bool = True,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> float:
    r""":math:`P(L^{new} \le \text{target})` over the draws, at (N, D) or at the split chosen for C.

    Give either both ``N`` and ``D``, or ``C`` (then the split is :func:`choose_allocation`'s under
    ``objective``, with the same ``seed`` and noise draws). ``target`` is a loss in nats.
    ``include_noise=False`` leaves out the noise but keeps the form error's slopes beyond the
    data (see :func:`choose_allocation`).
    """
    d = as_posterior(posterior)
    require_nd(d.law)
    log_t = math.log(positive(target, "target loss"))
    if C is not None:
        if N is not None or D is not None:
            raise FitError("give either C (a budget) or N and D (a run), not both")
        dec = choose_allocation(d, C, objective=objective, include_noise=include_noise,
                                seed=seed, bounds=bounds)
        N, D = dec.choice.N, dec.choice.D
    elif N is None or D is None:
        raise FitError("prob_below_target needs both N and D, or a budget C")
    common = common_noise(d, seed, include_noise)
    log_l = common.log_loss(math.log(positive(N, "N")), math.log(positive(D, "D")))
    return float(np.mean(log_l <= log_t))


@dataclass(frozen=True)
class TargetCompute:
    """The least compute C (FLOPs) whose split, N parameters and D tokens, chosen under
    ``objective``, reaches ``target_loss`` (nats) with ``probability``."""

    target_loss: float
    probability: float
    compute: float
    N: float
    D: float
    objective: str = "expected"

    def to_dict(self) -> dict:
        """Plain floats, shaped as ``bayescale decide --target-loss L --json`` prints them
        (a one-variable law's answer has no N and D)."""
        keys = ("target_loss", "probability", "compute", "N", "D")
        return {k: float(getattr(self, k)) for k in keys if not (
            k in ("N", "D") and math.isnan(getattr(self, k)))}


def _first_reached(reached, a: float, b: float) -> tuple[float, float] | None:
    """The quarter decade of log C in (``a``, ``b``) where the split first reaches the target,
    as the bisection's bracket (missed, reached), or None: ``a`` and ``b`` miss it. For a
    posterior with a form error, which grows with the distance from the data, the probability
    of reaching a target can rise with C and then fall: reached at some budget, not at the
    largest searched."""
    grid = np.append(np.arange(a, b, 0.25 * math.log(10.0)), b)
    for lo, hi in zip(grid, grid[1:-1]):
        if reached(hi):
            return float(lo), float(hi)
    return None


def _least_reaching(reached, a: float, b: float, rtol: float, *, already: str,
                    missed) -> float:
    """The least log C (or log x) in [``a``, ``b``] at which ``reached`` holds, to a relative
    tolerance ``rtol``, by bisection; a FitError with ``already`` when ``a`` reaches the target,
    and with ``missed()`` when no quarter decade up to ``b`` does (see :func:`_first_reached`)."""
    if reached(a):
        raise FitError(already)
    if not reached(b):
        bracket = _first_reached(reached, a, b)
        if bracket is None:
            raise FitError(missed())
        a, b = bracket
    while b - a > math.log1p(rtol):
        m = 0.5 * (a + b)
        a, b = (a, m) if reached(m) else (m, b)
    return b


def _form_error_miss(a: float, b: float, things: str, unit: str, fix: str) -> str:
    """Why a posterior with a form error reached a target at none of the ``things`` from e^a to
    e^b (in ``unit``)."""
    return (f"at any of the {things} searched ({math.exp(a):.3g} to {math.exp(b):.3g}{unit}, "
            "every quarter decade) once the law's form error beyond the data is included: it "
            f"grows with the distance from the data, so the largest {things} can fare worse "
            f"than smaller ones. Lower the probability, {fix}")


def _law_floor(d, common, log_t: float) -> str:
    """What the law alone, without its form error, says of a target: the share of new runs
    that reach it with unlimited compute (for a form-error search that found no budget)."""
    best, floor = unlimited_reach(d, common.eps, log_t)
    return (f" (without the form error, a new run reaches it with unlimited compute with "
            f"probability {best:.2f}: the median irreducible loss is "
            f"{math.exp(np.median(floor)):.4g} nats)")


def _x_for_target(d, target, p, include_noise, seed, x_range, rtol) -> TargetCompute:
    """:func:`compute_for_target` for a one-variable law: the least x with
    P(new run's loss <= target) >= p, by bisection on log x (the law falls with x)."""
    log_t = math.log(positive(target, "target loss"))
    common = common_noise(d, seed, include_noise)

    def reached(log_x):
        out = d.log_law(log_x) + common.eps
        if d.form_slopes is not None:
            out = out + d.form_offset({"x": np.exp(log_x)}, common.eta)
        return np.mean(out <= log_t) >= p

    a, b = (math.log(positive(c, "compute_range")) for c in x_range)

    def missed():
        if d.form_slopes is not None:
            return (f"target loss {target:g} nats is not reached with probability {p:g} "
                    + _form_error_miss(a, b, "values of x", "",
                                       "widen compute_range or raise the target")
                    + _law_floor(d, common, log_t))
        floor = math.exp(np.median(d.log_law(LOG_INF)))
        return (f"target loss {target:g} nats is not reached with probability {p:g} up to "
                f"x = {x_range[1]:.3g} (median loss of the law as x grows without limit: "
                f"{floor:.4g}); raise compute_range, the target or lower the probability")

    b = _least_reaching(reached, a, b, rtol, missed=missed,
                        already=f"target loss {target:g} is already reached at x = "
                                f"{x_range[0]:.3g}; lower compute_range")
    beyond_data(d, {"x": [math.exp(b)]}, stacklevel=3)  # warns past FAR decades
    return TargetCompute(float(target), p, math.exp(b), math.nan, math.nan,
                         objective=f"quantile({p:g})")


def compute_for_target(
    posterior,
    target: float,
    *,
    probability: float = 0.9,
    objective: str | Objective | None = None,
    include_noise: bool = True,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
    compute_range: tuple[float, float] = (1e6, 1e45),
    rtol: float = 1e-4,
    max_params: float | None = None,
    max_tokens: float | None = None,
    unique_tokens: float | None = None,
) -> TargetCompute:
    r"""Smallest budget C whose chosen split reaches a target loss with probability p.

    Bisection on log C over ``compute_range`` for the least C with
    :math:`P(L^{new} \le \text{target}) \ge p` at :func:`choose_allocation`'s split under
    ``objective`` (same noise draws), to a relative tolerance ``rtol`` on C. The default objective,
    ``quantile(p)``, picks at each C the split with the lowest p-quantile of loss, i.e. (nearly) the
    split most likely to reach the target, so C is the least budget of any split. The search
    assumes that probability grows with C, which holds when every draw's loss falls with N and D.
    A form error beyond the data grows with the distance from it, so the probability can rise
    with C and then fall: when the largest budget searched misses the target, the first quarter
    decade of budgets that reaches it bounds the bisection instead.

    Parameters
    ----------
    posterior: the draws (see the module docstring) of a law of N and D.
    target: target loss (nats).
    probability: p, the required probability that a new run reaches the target.
    objective: how the split is chosen at each C; default ``quantile(probability)``.
    compute_range: (C_min, C_max) searched (FLOPs).
    rtol: relative tolerance on C.
    max_params, max_tokens: caps on the split at every C (see :func:`choose_allocation`); with
        both, no budget above ``k max_params max_tokens`` can be spent, and the search stops there.

    A law of one variable fitted on x = C (``power_pure`` on compute is Kaplan et al. 2020's
    :math:`L(C) = (C/C_0)^{-\alpha_C}`; ``power``, ``broken_power``, ``log`` likewise) has no split
    to choose: the answer is the least x whose new run reaches the target with probability p,
    with N and D NaN; ``compute_range`` is then the range of x searched.

    Returns
    -------
    :class:`TargetCompute` with C (FLOPs), N and D of the chosen split and the objective's spec.

    An answer more than :data:`~bayescale.extrapolation.FAR` decades (1000x) beyond the data
    warns (:class:`~bayescale.ExtrapolationWarning`), as a prediction there does.

    Raises
    ------
    FitError: without a form error, the target is below the irreducible loss (reachable by no
        budget with probability p); with one, which can carry a run below the law's own floor,
        the target is not reached at any quarter decade of ``compute_range``; or it is not
        reached within ``compute_range``.
    """
    d = with_unique_tokens(as_posterior(posterior), unique_tokens)
    if d.law.inputs == ("x",):
        return _x_for_target(d, target, level(probability, "probability"), include_noise, seed,
                             compute_range, rtol)
    require_nd(d.law)
    p = level(probability, "probability")
    obj = quantile(p) if objective is None else parse_objective(objective)
    k = d.flops_per_param_token
    log_t = math.log(positive(target, "target loss"))
    common = common_noise(d, seed, include_noise)
    if d.form_slopes is None:  # with a form error the search decides: it can carry a run lower
        check_reachable(d, common.eps, log_t, p)

    def split(log_C):
        log_c = log_C - math.log(k)
        lo, hi = capped_log_n_bounds(log_c, bounds, max_params, max_tokens, k)
        plug = _plugin_log_n(d, log_c, lo, hi)
        log_n = _choose_log_n(common, obj, log_c, lo, hi, plugin=plug)
        return log_n, log_c - log_n

    def reached(log_C):
        return np.mean(common.log_loss(*split(log_C)) <= log_t) >= p

    a, b = (math.log(positive(c, "compute_range")) for c in compute_range)
    caps_end = (max_params is not None and max_tokens is not None
                and math.log(k * max_params * max_tokens) - 1e-9 < b)
    if caps_end:  # no budget above what the caps can spend
        b = math.log(k * max_params * max_tokens) - 1e-9

    def missed():
        fix = "raise the caps" if caps_end else "widen compute_range"
        within = (f"within the caps ({max_params:.4g} parameters x {max_tokens:.4g} tokens "
                  f"spend at most {k * max_params * max_tokens:.4g} FLOPs); raise the caps"
                  if caps_end else f"within {compute_range[1]:.3g} FLOPs; raise compute_range")
        if d.form_slopes is not None:
            within = _form_error_miss(a, b, "budgets", " FLOPs", fix)
        return (f"target loss {target:g} nats is not reached with probability {p:g} {within} "
                "or the target" + ("" if d.form_slopes is None else _law_floor(d, common, log_t)))

    b = _least_reaching(reached, a, b, rtol, missed=missed,
                        already=f"target loss {target:g} is already reached at "
                                f"{compute_range[0]:.3g} FLOPs; lower compute_range")
    log_n, log_d = split(b)
    beyond_data(d, {"N": [math.exp(log_n)], "D": [math.exp(log_d)]})  # warns past FAR decades
    return TargetCompute(
        float(target), p, math.exp(b), math.exp(log_n), math.exp(log_d), objective=spec_of(obj)
    )
