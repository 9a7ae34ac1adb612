r"""Prior checks: what the priors predict before the data, and how much a posterior leans on them.

* :func:`prior_predictive` draws parameters (natural units) and the log loss of a new run at each
  observed configuration from the priors alone, with the same NumPyro model :func:`bayescale.fit`
  samples. Its summary says what fraction of the prior-predictive losses fall within 0.5x-2x of the
  observed ones: near 0, the priors rule the data out; near 1, they barely constrain anything.
* :func:`prior_sensitivity` refits with every prior widened (scale x2 by default) with the same
  options and seed, and reports how far each posterior median moved, as a fraction of the original
  central interval: :math:`|m_{wide} - m| / (hi - lo)`. Quantities that moved more than 10% of
  their interval width lean on the prior, not the data.

Widening (:func:`widen_prior`): location-scale families keep their centre and multiply the scale
(``Normal``, ``StudentT``, ``Cauchy``, ``Laplace``; ``LogNormal`` in log space, so its median
stays); scale-only families on :math:`[0, \infty)` (``HalfNormal``, ``HalfCauchy``,
``Exponential``, ``Gamma``) have no centre to keep, so widening multiplies every quantile,
the median included. Anything else (``Uniform``, whose support a widened prior could leave;
``Beta``; a number such as the fixed Student-t ``nu = 2``) is kept and listed as unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayescale._jax import jax, scoped
from bayescale.data import ScalingData
from bayescale.errors import FitError
from bayescale.inference import ScalingFit, as_data, check_noise
from bayescale.inference import fit as _fit
from bayescale.laws import Law, get_law
from bayescale.models import OBS_SITE, build_model
from bayescale.summaries import check_level, interval

__all__ = ["PriorPredictive", "PriorSensitivity", "prior_predictive", "prior_sensitivity",
           "widen_prior"]

#: Tokens per parameter are reported at this multiple of the data's largest compute budget.
BUDGET_MULTIPLE = 100.0


# ------------------------------------------------------------------------------ prior predictive
@dataclass(frozen=True, eq=False)
class PriorPredictive:
    """Draws from the priors of a fit that has not been run yet.

    Attributes
    ----------
    idata : arviz.InferenceData
        Groups ``prior`` (sampled sites and natural-unit law parameters, one chain of ``n``
        draws), ``prior_predictive`` (``log_loss`` of a new run per observed run, log nats) and
        ``observed_data`` (the observed log losses).
    law : Law
        The law whose priors were drawn.
    data : ScalingData
        The runs at which the losses were predicted.
    priors : dict
        The resolved priors by site name.
    """

    idata: Any
    law: Law
    data: ScalingData
    priors: dict[str, Any] = field(repr=False)

    def draws(self, name: str) -> np.ndarray:
        """Prior draws of one quantity (``E``, ``A_ref``, ``sigma``...), shape (n,)."""
        prior = self.idata.prior
        if name not in prior:
            raise FitError(f"no quantity {name!r} in these prior draws; have "
                           f"{', '.join(map(str, prior.data_vars))}")
        return np.asarray(prior[name].values).reshape(-1)

    def params_draws(self) -> dict[str, np.ndarray]:
        """Law parameters in natural units (``A``, ``B``, ``E``, ``alpha``...), one array each."""
        return {p: self.draws(p) for p in self.law.params}

    @property
    def log_loss(self) -> np.ndarray:
        """Prior-predictive log loss (nats) of a new run at each observed run, shape (n, runs)."""
        pp = np.asarray(self.idata.prior_predictive[OBS_SITE].values)
        return pp.reshape(-1, pp.shape[-1])

    def frac_within(self, factor: float = 2.0, *, per_run: bool = False):
        """Fraction of prior-predictive losses within ``1/factor``-``factor`` x the observed loss.

        Over all draws and runs (a float), or one fraction per run with ``per_run=True``.
        """
        if not (np.isfinite(factor) and factor > 1):
            raise FitError(f"factor must be a number above 1 (e.g. 2), got {factor!r}")
        inside = np.abs(self.log_loss - np.log(self.data.loss)) <= np.log(factor)
        return inside.mean(axis=0) if per_run else float(inside.mean())

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Prior median and central interval of each law parameter (natural units) and noise."""
        level = check_level(level)
        names = list(self.law.params) + [s for s in ("sigma", "sigma_fit", "nu")
                                         if s in self.idata.prior]
        rows = {}
        for name in names:
            med, lo, hi = interval(self.draws(name), level)
            rows[name] = {"median": float(med), "lo": float(lo), "hi": float(hi)}
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "param"
        return out

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """JSON-ready: law, draws, fraction within 2x (overall, lowest run), prior intervals."""
        per_run = self.frac_within(per_run=True)
        params = {n: {k: float(v) for k, v in r.items()} for n, r in self.summary(level).iterrows()}
        return {"law": self.law.name, "n_draws": int(self.log_loss.shape[0]), "level": level,
                "frac_within_2x": self.frac_within(), "min_run_frac_within_2x": float(
                    per_run.min()), "params": params}

    def __repr__(self) -> str:
        frac, worst = self.frac_within(), self.frac_within(per_run=True).min()
        return (f"PriorPredictive(law={self.law.name!r}, draws={self.log_loss.shape[0]}, "
                f"runs={self.data.n_points})\n{100 * frac:.1f}% of prior-predictive losses lie "
                f"within 0.5x-2x of the observed ones (worst run {100 * worst:.1f}%)\n"
                f"{self.summary().to_string(float_format=lambda v: f'{v:.4g}')}")


@scoped
def prior_predictive(data: ScalingData | pd.DataFrame | str | os.PathLike,
                     law: str | Law = "chinchilla", *, noise: str = "student_t",
                     priors: Mapping[str, Any] | None = None, repeats: bool | str = "auto",
                     n: int = 500, seed: int = 0) -> PriorPredictive:
    """Draw parameters and the loss of new runs from the priors of :func:`bayescale.fit`.

    Parameters
    ----------
    data : ScalingData, DataFrame or CSV path
        The runs; their inputs are where losses are predicted, and the default priors are centred
        on their losses (see :mod:`bayescale.priors`).
    law, noise, priors, repeats
        As in :func:`bayescale.fit`; the model is the very one ``fit`` samples.
    n : int, default 500
        Number of prior draws.
    seed : int, default 0
        PRNG seed; the same seed gives the same draws.

    Returns
    -------
    PriorPredictive
        ``.params_draws()`` (natural units), ``.log_loss`` (n, runs) in log nats,
        ``.frac_within()`` (the share of predicted losses within 0.5x-2x of the observed ones).
    """
    from bayescale._compat import import_arviz

    az = import_arviz()
    from numpyro.infer import Predictive

    data = as_data(data)
    law = get_law(law)
    check_noise(noise)
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise FitError(f"n must be a positive integer (number of prior draws), got {n!r}")
    data.check_for(law.inputs, law.n_params, law.name)
    built = build_model(data, law, noise=noise, priors=priors, repeats=repeats)
    out = Predictive(built.model, num_samples=int(n))(jax.random.PRNGKey(seed),
                                                      *built.args(y=None))
    keep = [s for s in (*law.sampled, *law.params, "sigma", "sigma_fit", "nu") if s in out]
    prior = {s: np.asarray(out[s])[None] for s in dict.fromkeys(keep)}
    idata = az.from_dict(
        prior=prior,
        prior_predictive={OBS_SITE: np.asarray(out[OBS_SITE])[None]},
        observed_data={OBS_SITE: np.asarray(built.y)},
        coords={"run": np.arange(data.n_points)},
        dims={OBS_SITE: ["run"]},
    )
    return PriorPredictive(idata=idata, law=law, data=data, priors=dict(built.priors))


# ------------------------------------------------------------------------------ sensitivity
def widen_prior(prior: Any, factor: float = 2.0):
    """``prior`` with its scale multiplied by ``factor``, or None where it has none to widen.

    See the module docstring for what each family keeps (the centre of location-scale families,
    nothing for scale-only ones) and which are left alone.
    """
    import numpyro.distributions as dist

    if not (np.isfinite(factor) and factor > 0):
        raise FitError(f"widen must be a positive number (e.g. 2), got {factor!r}")
    if isinstance(prior, dist.LogNormal):
        return dist.LogNormal(prior.loc, prior.scale * factor)
    if isinstance(prior, (dist.Normal, dist.Cauchy, dist.Laplace)):
        return type(prior)(prior.loc, prior.scale * factor)
    if isinstance(prior, dist.StudentT):
        return dist.StudentT(prior.df, prior.loc, prior.scale * factor)
    if isinstance(prior, (dist.HalfNormal, dist.HalfCauchy)):
        return type(prior)(prior.scale * factor)
    if isinstance(prior, dist.Exponential):
        return dist.Exponential(prior.rate / factor)
    if isinstance(prior, dist.Gamma):
        return dist.Gamma(prior.concentration, prior.rate / factor)
    return None


@dataclass(frozen=True, eq=False)
class PriorSensitivity:
    """How far each posterior quantity moved when the priors were widened.

    Attributes
    ----------
    table : pandas.DataFrame
        One row per quantity: ``median``, ``lo``, ``hi`` (original fit), ``median_wide``,
        ``lo_wide``, ``hi_wide`` (refit), ``scale`` ("log" for positive quantities, where the
        comparison is made, else "linear"), ``shift`` (signed move of the median as a fraction of
        the original interval width), ``width_ratio`` (refit interval width / original) and
        ``flagged`` (``|shift| > threshold``).
    refit : ScalingFit
        The fit with widened priors.
    widen, threshold, level : float
        Scale factor, flagging threshold and interval level.
    unchanged : tuple of str
        Prior sites that were not widened (see :func:`widen_prior`).
    budget : float or None
        Compute (FLOPs) at which ``tokens_per_param`` was compared: 100x the largest in the data.
    """

    table: pd.DataFrame
    refit: ScalingFit = field(repr=False)
    widen: float
    threshold: float
    level: float
    unchanged: tuple[str, ...]
    budget: float | None

    @property
    def flagged(self) -> list[str]:
        """Quantities whose median moved by more than ``threshold`` of their interval width."""
        return [str(q) for q in self.table.index[self.table["flagged"]]]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: widen, threshold, level, budget, unchanged priors, flagged, per quantity."""
        rows = {str(q): {k: (bool(v) if k == "flagged" else v if k == "scale" else float(v))
                         for k, v in r.items()} for q, r in self.table.iterrows()}
        return {"widen": self.widen, "threshold": self.threshold, "level": self.level,
                "budget": self.budget, "unchanged": list(self.unchanged),
                "flagged": self.flagged, "quantities": rows}

    def __repr__(self) -> str:
        cols = ["median", "median_wide", "shift", "width_ratio", "flagged"]
        table = self.table[cols].to_string(float_format=lambda v: f"{v:.4g}")
        moved = ", ".join(self.flagged) or "none"
        kept = f"; not widened: {', '.join(self.unchanged)}" if self.unchanged else ""
        return (f"PriorSensitivity(priors widened {self.widen:g}x{kept})\n{table}\n"
                f"moved by more than {100 * self.threshold:g}% of their {100 * self.level:g}% "
                f"interval: {moved}")


def _quantity(fit: ScalingFit, name: str, budget: float | None) -> np.ndarray:
    if name == "tokens_per_param":
        if budget is None:
            raise FitError(f"tokens_per_param needs a law in N and D; law {fit.law.name!r} has "
                           f"input {fit.law.inputs[0]!r}")
        return fit.compute_optimal(budget, warn=False).tokens_per_param[:, 0]
    return fit.draws(name)


def prior_sensitivity(fit: ScalingFit, *, widen: float = 2.0,
                      quantities: Sequence[str] | None = None, level: float = 0.95,
                      threshold: float = 0.1) -> PriorSensitivity:
    r"""Refit with every prior widened and report which posterior quantities moved.

    Parameters
    ----------
    fit : ScalingFit
        The original fit; its data, law, noise, repeats, sampler options and seed are reused.
    widen : float, default 2.0
        Factor on each prior's scale (:func:`widen_prior`).
    quantities : sequence of str, optional
        What to compare: any parameter of the fit, or ``"tokens_per_param"`` (D*/N* at 100x the
        largest compute budget in the data). Default: the law's parameters, plus
        ``tokens_per_param`` for laws in N and D.
    level : float, default 0.95
        Level of the central intervals whose width is the yardstick.
    threshold : float, default 0.1
        Flag a quantity when its median moved by more than this fraction of the original width.

    Returns
    -------
    PriorSensitivity
        The comparison table, the flagged quantities and the refit. Positive quantities are
        compared in log space (medians and interval ends are quantiles, so this only changes the
        yardstick, not which draws sit where): :math:`\text{shift} = (\log m_{wide} - \log m) /
        (\log hi - \log lo)`. The shift carries Monte Carlo error of roughly
        :math:`0.45/\sqrt{\mathrm{ESS}}`, well below 0.1 for a converged fit.
    """
    if not isinstance(fit, ScalingFit):
        raise FitError(f"prior_sensitivity needs a ScalingFit, got {type(fit).__name__}")
    level = check_level(level)
    if not (np.isfinite(threshold) and threshold > 0):
        raise FitError(f"threshold must be a positive fraction (e.g. 0.1), got {threshold!r}")
    priors, unchanged = {}, []
    for site, prior in fit.priors.items():
        wide = widen_prior(prior, widen)
        priors[site] = prior if wide is None else wide
        if wide is None:
            unchanged.append(site)
    two_variable = fit.law.inputs == ("N", "D")
    budget = BUDGET_MULTIPLE * float(np.max(fit.data.C)) if two_variable else None
    if quantities is None:
        quantities = list(fit.law.params) + (["tokens_per_param"] if two_variable else [])
    quantities = list(quantities)
    original = {q: _quantity(fit, q, budget) for q in quantities}  # fail before refitting
    opts = {k: fit.options[k] for k in ("chains", "warmup", "draws", "target_accept",
                                        "dense_mass", "more_chains") if k in fit.options}
    refit = _fit(fit.data, fit.law, noise=fit.noise, priors=priors, repeats=fit.repeats,
                 seed=fit.seed, progress=False, **opts)
    rows = {}
    for q in quantities:
        a, b = original[q], _quantity(refit, q, budget)
        log = bool(np.all(a > 0) and np.all(b > 0))
        ta, tb = (np.log(a), np.log(b)) if log else (a, b)
        med, lo, hi = (float(v) for v in interval(ta, level))
        med_w, lo_w, hi_w = (float(v) for v in interval(tb, level))
        width = hi - lo
        if width > 0:
            shift = (med_w - med) / width
        else:  # a point mass: any move at all is infinitely many widths
            shift = 0.0 if med_w == med else float(np.copysign(np.inf, med_w - med))
        back = np.exp if log else (lambda v: v)
        rows[q] = {"median": back(med), "lo": back(lo), "hi": back(hi),
                   "median_wide": back(med_w), "lo_wide": back(lo_w), "hi_wide": back(hi_w),
                   "scale": "log" if log else "linear", "shift": shift,
                   "width_ratio": (hi_w - lo_w) / width if width > 0 else float("nan"),
                   "flagged": bool(abs(shift) > threshold)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "quantity"
    return PriorSensitivity(table=table, refit=refit, widen=float(widen),
                            threshold=float(threshold), level=level, unchanged=tuple(unchanged),
                            budget=budget)
