r"""Value of the next experiment: which cheap pilot run narrows a decision most per FLOP.

Preposterior analysis by importance reweighting. For a candidate pilot run at inputs x (N and D,
or x) and a decision quantity :math:`q(\theta)` (log N* at a budget, or the law's loss at a point),
the expected posterior variance after observing the pilot's log loss y is

.. math::
    \mathbb{E}_{y}\big[\mathrm{Var}(q \mid \text{data}, y)\big],\qquad
    y \sim p(y \mid \text{data}) = \int p(y \mid \theta)\, p(\theta \mid \text{data})\, d\theta.

With S posterior draws :math:`\theta_s`, each simulated outcome :math:`y_j = \log L_{s_j}(x) +
\varepsilon_j` (draw :math:`s_j` at random, noise from that draw's Student-t) reweights the draws by
its likelihood, :math:`w_{js} \propto p(y_j \mid \theta_s)`, which turns them into draws of the
posterior given the pilot as well (self-normalised importance sampling; no refit). The variance of
q under those weights, averaged over the simulated outcomes, estimates the expected posterior
variance; the reduction from today's variance, per FLOP of the pilot, ranks the candidates.

Beyond the training data the law's form error is part of both: each draw's outcome and the
loss at ``at`` carry that draw's form-error slopes (:mod:`bayescale.extrapolation`), so a pilot
beyond the data also tells how wrong the law's form is there; the pilot's outcome also carries
the part of the form error that differs from run to run (as a new run's band does), which the
reweighting's likelihood adds to the noise. ``var_now`` is the draws' unbiased variance, as the
reweighted variance is, so a pilot that tells nothing reduces nothing.

The approximation is good while the weights stay spread over many draws: the effective sample size
:math:`1/\sum_s w_{js}^2` is reported for each candidate. When a pilot would be so informative that
it is small, the weighted variance of a few draws is noisy and too small (the reduction is
overstated); refit with the pilot added or use more draws. Against the exact conjugate update of
Bayesian linear regression (``power_pure``, Gaussian noise and prior) it agrees to within a few
percent with 4000 draws (``tests/test_decisions.py``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence

import numpy as np
import pandas as pd
from scipy.special import softmax

from bayescale._draws import log_n_bounds, optimal_log_n, positive, require_nd
from bayescale.errors import FitError
from bayescale.posterior import as_posterior

__all__ = ["value_of_experiment"]


def _candidates(candidates, inputs: tuple[str, ...], k: float) -> pd.DataFrame:
    """Candidate pilot runs as a table with one column per law input and a ``cost`` (FLOPs)."""
    if isinstance(candidates, pd.DataFrame):
        table = candidates.copy()
    elif isinstance(candidates, Mapping):
        table = pd.DataFrame(dict(candidates))
    else:
        rows = list(candidates)
        if rows and not isinstance(rows[0], Mapping):
            width = len(rows[0])
            if width not in (len(inputs), len(inputs) + 1):
                raise FitError(
                    f"each candidate must be {inputs} or {inputs + ('cost',)}; got {rows[0]!r}"
                )
            rows = [dict(zip((*inputs, "cost"), r)) for r in rows]
        table = pd.DataFrame(rows)
    if table.empty:
        raise FitError("value_of_experiment needs at least one candidate run")
    missing = [c for c in inputs if c not in table.columns]
    if missing:
        raise FitError(
            f"candidate runs lack columns {missing}; give {inputs} (and optionally 'cost')"
        )
    if "cost" not in table.columns:
        if inputs != ("N", "D"):
            raise FitError("candidates of a one-input law need a 'cost' column (FLOPs of each run)")
        table["cost"] = k * table["N"] * table["D"]
    for col in (*inputs, "cost"):
        values = pd.to_numeric(table[col], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~(np.isfinite(values) & (values > 0)))
        if bad.size:
            raise FitError(f"candidate row {table.index[bad[0]]}: {col} must be a positive number")
        table[col] = values
    return table


#: Fewest effective draws behind any simulated outcome for a candidate to be estimated.
ESS_FLOOR = 10.0


def value_of_experiment(
    posterior,
    candidates: pd.DataFrame | Sequence | Mapping,
    *,
    quantity: str | Callable[[Mapping[str, np.ndarray]], np.ndarray] = "log_N_opt",
    C: float | None = None,
    at: Mapping[str, float] | None = None,
    n_sim: int = 256,
    seed: int = 0,
    bounds: tuple[float, float] | None = None,
) -> pd.DataFrame:
    r"""Rank candidate pilot runs by the expected reduction in posterior variance of a quantity.

    See the module docstring for the method (importance reweighting of the existing draws by each
    simulated pilot outcome: an approximation whose effective sample size is reported).

    Parameters
    ----------
    posterior: the draws (see :mod:`bayescale.decisions`); their noise must be > 0.
    candidates: pilot runs: a DataFrame or mapping with a column per law input (``N``, ``D`` or
        ``x``) and optionally ``cost`` (FLOPs; default k N D), or a list of tuples/dicts of those.
    quantity: ``"log_N_opt"`` (each draw's compute-optimal log N at budget ``C``), ``"log_loss"`` or
        ``"loss"`` (the law at inputs ``at``, nats), or a function of the draws' params -> (S,).
    C: budget (FLOPs) for ``"log_N_opt"``.
    at: inputs in natural units for ``"log_loss"``/``"loss"``, e.g. ``{"N": 7e10, "D": 1.4e12}``.
    n_sim: simulated outcomes per candidate (the same draws and noise for every candidate).
    bounds: N search interval for ``"log_N_opt"`` of laws without a closed form.

    Returns
    -------
    DataFrame, best first: the candidate's inputs and ``cost``; ``var_now`` and ``var_after``
    (expected posterior variance after the pilot); ``reduction`` = var_now - var_after,
    ``reduction_fraction``, ``reduction_per_cost`` (per FLOP); ``ess_mean`` and ``ess_min`` of the
    importance weights over the simulated outcomes; ``reliable`` (``ess_min`` >= :data:`ESS_FLOOR`;
    where it is not, the variance columns are NaN, the candidate ranks last and a warning names
    it); ``rank`` (1 = most reduction per FLOP).
    """
    d = as_posterior(posterior)
    if np.any(d.new_run_sigma <= 0):
        raise FitError("value_of_experiment needs observation noise: the posterior's noise "
                       "sigma must be > 0")
    k = d.flops_per_param_token
    q = _quantity(d, quantity, C=C, at=at, k=k, bounds=bounds)
    table = _candidates(candidates, d.law.inputs, k)
    n_sim = int(n_sim)
    if n_sim < 1:
        raise FitError(f"n_sim must be >= 1; got {n_sim}")

    # ddof=1: the unbiased variance, as var_after's reliability-weights correction is (with
    # equal weights the two are the same number, so a pilot that tells nothing reduces nothing)
    var_now = float(np.var(q, ddof=1)) if q.size > 1 else 0.0
    q = q - q.mean()  # centred, so the weighted variance below loses no digits
    rows = []
    for _, run in table.iterrows():
        where = {i: float(run[i]) for i in d.law.inputs}
        mu = d.log_law(*(math.log(v) for v in where.values())) + d.form_offset(where) + np.zeros(
            d.size)
        scatter = _scatter(d, where)
        rng = np.random.default_rng(seed)  # common random numbers across candidates
        idx = rng.integers(d.size, size=n_sim)
        y = mu[idx] + d.noise(rng, idx)
        if scatter is not None:  # the form error's run-to-run part, as a new run has it
            y = y + scatter[idx] * rng.standard_normal(n_sim)
        w = softmax(d.log_lik(y[:, None] - mu[None, :], scatter), axis=1)
        mean = w @ q
        sum_w2 = np.sum(w**2, axis=1)
        ess = 1.0 / sum_w2
        # A weighted variance is biased low by (1 - sum w^2), as a sample variance by (n-1)/n:
        # the reliability-weights correction removes it (where ESS >= the floor it is finite)
        var_after = np.maximum(w @ q**2 - mean**2, 0.0) / np.maximum(1.0 - sum_w2, 1e-12)
        rows.append((float(np.mean(var_after)), float(np.mean(ess)), float(np.min(ess))))
    out = table.copy()
    out["var_now"] = var_now
    out["var_after"] = [r[0] for r in rows]
    out["reduction"] = var_now - out["var_after"]
    out["reduction_fraction"] = out["reduction"] / var_now if var_now > 0 else 0.0
    out["reduction_per_cost"] = out["reduction"] / out["cost"]
    out["ess_mean"] = [r[1] for r in rows]
    out["ess_min"] = [r[2] for r in rows]
    # A simulated outcome whose weights rest on a handful of draws has a posterior variance
    # near zero whatever the truth: the candidate would look better than it is. Such candidates
    # are not estimated (NaN, ranked last) rather than ranked on a wrong number.
    out["reliable"] = out["ess_min"] >= ESS_FLOOR
    for col in ("var_after", "reduction", "reduction_fraction", "reduction_per_cost"):
        out.loc[~out["reliable"], col] = np.nan
    out = out.sort_values("reduction_per_cost", ascending=False, kind="stable", na_position="last")
    out["rank"] = np.arange(1, len(out) + 1)
    if not out["reliable"].all():
        bad = out.loc[~out["reliable"]]
        where = "; ".join(", ".join(f"{i}={bad.iloc[j][i]:.3g}" for i in d.law.inputs)
                          for j in range(min(len(bad), 3)))
        warnings.warn(
            f"{len(bad)} of {len(out)} candidate pilot runs ({where}{', ...' if len(bad) > 3 else ''})"
            f" are not estimated: for some simulated outcomes the importance weights rest on "
            f"{bad['ess_min'].min():.1f} effective draws of {d.size} (at least {ESS_FLOOR:g} "
            "needed); their value is NaN. Fit with more draws, or choose candidates nearer "
            "the runs you have",
            UserWarning, stacklevel=2,
        )
    return out


def _scatter(d, where: Mapping[str, float]) -> np.ndarray | None:
    """Per draw, the sd of the form error's run-to-run part at a pilot's inputs (its scatter
    times the decades beyond the data); None inside the data or without a form error."""
    if d.form_slopes is None:
        return None
    sd = d.form_scatter * float(np.asarray(d.distances(where)["max"]))
    return sd if np.any(sd > 0) else None


def _quantity(d, quantity, *, C, at, k, bounds) -> np.ndarray:
    """The decision quantity, one value per draw (S,)."""
    if callable(quantity):
        q = np.asarray(quantity(d.params), dtype=float)
    elif quantity == "log_N_opt":
        require_nd(d.law)
        if C is None:
            raise FitError("quantity 'log_N_opt' needs the budget C (FLOPs)")
        log_c = math.log(positive(C, "compute C")) - math.log(k)
        q = optimal_log_n(d, log_c, *log_n_bounds(log_c, bounds))[0]
    elif quantity in ("log_loss", "loss"):
        if at is None or any(i not in at for i in d.law.inputs):
            raise FitError(
                f"quantity {quantity!r} needs at= with inputs {d.law.inputs} (natural units)"
            )
        where = {i: positive(at[i], i) for i in d.law.inputs}
        q = d.log_law(*(math.log(v) for v in where.values())) + d.form_offset(where) + np.zeros(
            d.size)
        q = np.exp(q) if quantity == "loss" else q
    else:
        raise FitError(
            f"unknown quantity {quantity!r}; use 'log_N_opt', 'log_loss', 'loss' or a function"
        )
    if q.shape != (d.size,) or not np.all(np.isfinite(q)):
        raise FitError(f"the decision quantity must be finite with one value per draw ({d.size},)")
    return q
