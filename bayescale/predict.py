r"""Posterior predictions of loss at new model sizes, data sizes or compute budgets.

Two bands, from the same draws:

* ``law``: :math:`L_s(N, D)` for each draw s: uncertainty about the law itself (parameters only).
* ``new_run``: the loss one new training run would reach, :math:`L_s(N, D)\, e^{\varepsilon}` with
  :math:`\varepsilon \sim \mathrm{StudentT}(\nu_s, 0, \sigma_s)` (or
  :math:`\mathcal{N}(0, \sigma_s)`), since the noise is on log loss. It contains the law band.

A budget C alone predicts at each draw's own compute-optimal split (see
:func:`bayescale.allocation.compute_optimal`), so the band includes the uncertainty of the split.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from bayescale.allocation import Allocation, compute_optimal
from bayescale.errors import FitError
from bayescale.posterior import as_posterior
from bayescale.summaries import check_level, interval, summary_dict

__all__ = ["Prediction", "predict"]

_KINDS = ("law", "new_run")


@dataclass(frozen=True)
class Prediction:
    """Predicted loss (nats) at P points, for the law and for a new run.

    Attributes
    ----------
    law : str
        Name of the law.
    inputs : mapping
        Input name -> (P,) values that label the points: ``N`` and ``D`` (parameters, tokens),
        ``x``, or for budgets ``compute`` (FLOPs) with the posterior-median ``N`` and ``D``.
    law_draws : numpy.ndarray
        The law's loss per draw and point, shape (S, P).
    new_run_draws : numpy.ndarray
        Loss of a new training run per draw and point (law times log-loss noise), shape (S, P).
    level : float
        Default mass of the central intervals in :meth:`table` and :meth:`to_dict`.
    seed : int
        Seed of the ``numpy.random.Generator`` that drew the noise.
    allocation : Allocation or None
        The compute-optimal split behind a prediction at budgets, else ``None``.
    noise_scale, nu : numpy.ndarray or None
        (S,) scale and Student-t degrees of freedom of a new run's noise on log loss, each
        draw's (for :meth:`log_density`).
    """

    law: str
    inputs: Mapping[str, np.ndarray]
    law_draws: np.ndarray
    new_run_draws: np.ndarray
    level: float = 0.95
    seed: int = 0
    allocation: Allocation | None = None
    noise_scale: np.ndarray | None = None
    nu: np.ndarray | None = None

    def __post_init__(self):
        check_level(self.level)
        shape = np.shape(self.law_draws)
        if len(shape) != 2 or np.shape(self.new_run_draws) != shape:
            raise FitError("law_draws and new_run_draws must both have shape (draws, points)")
        for name, v in self.inputs.items():
            if np.shape(v) != (shape[1],):
                raise FitError(f"input {name!r} must have one value per point ({shape[1]})")

    def log_density(self, loss) -> np.ndarray:
        r"""Log predictive density of observed losses, one per point, on log loss:
        :math:`\log \frac1S \sum_s t_{\nu_s}(\log y \mid \log L_s, \sigma_s)` (nats of log
        loss; Gaussian where :math:`\nu_s = \infty`)."""
        from scipy import stats
        from scipy.special import logsumexp

        if self.noise_scale is None:
            raise FitError("this prediction carries no noise scale to score a density with")
        y = np.log(np.asarray(loss, dtype=float))
        if y.shape != (self.law_draws.shape[1],):
            raise FitError(f"give one observed loss per point ({self.law_draws.shape[1]})")
        nu = np.inf if self.nu is None else self.nu[:, None]
        lp = stats.t.logpdf(y[None, :], df=nu, loc=np.log(self.law_draws),
                            scale=self.noise_scale[:, None])
        return logsumexp(lp, axis=0) - np.log(self.law_draws.shape[0])

    def table(self, level: float | None = None) -> pd.DataFrame:
        """Tidy table, one row per point and kind (``law``, ``new_run``): the input columns, then
        ``kind, median, mean, lo, hi, level`` of the loss in nats."""
        level = check_level(self.level if level is None else level)
        frames = []
        for kind in _KINDS:
            draws = self.law_draws if kind == "law" else self.new_run_draws
            med, lo, hi = interval(draws, level)
            frame = pd.DataFrame({name: np.asarray(v) for name, v in self.inputs.items()})
            frame["kind"] = kind
            frame["median"], frame["mean"], frame["lo"], frame["hi"] = med, draws.mean(0), lo, hi
            frame["level"] = level
            frames.append(frame.assign(_point=np.arange(len(frame))))
        out = pd.concat(frames, ignore_index=True).sort_values(["_point", "kind"], kind="stable")
        return out.drop(columns="_point").reset_index(drop=True)

    def to_dict(self, level: float | None = None) -> dict[str, Any]:
        """JSON-ready summary with plain floats: ``{"law", "level", "points": [{<inputs>,
        "law": {"median", "lo", "hi"}, "new_run": {...}}]}``."""
        level = check_level(self.level if level is None else level)
        points = []
        for j in range(self.law_draws.shape[1]):
            entry: dict[str, Any] = {name: float(v[j]) for name, v in self.inputs.items()}
            entry["law"] = summary_dict(self.law_draws[:, j], level)
            entry["new_run"] = summary_dict(self.new_run_draws[:, j], level)
            points.append(entry)
        return {"law": self.law, "level": level, "points": points}


def _sizes(name: str, value: Any) -> np.ndarray:
    arr = np.atleast_1d(np.asarray(value, dtype=float))
    if arr.ndim != 1:
        raise FitError(f"{name} must be a number or a 1-d list of numbers; got shape {arr.shape}")
    if not np.all(np.isfinite(arr) & (arr > 0)):
        raise FitError(f"{name} must be positive and finite; got {arr.tolist()}")
    return arr


def predict(
    posterior: Any,
    *,
    N: Any = None,
    D: Any = None,
    x: Any = None,
    C: Any = None,
    level: float = 0.95,
    seed: int = 0,
) -> Prediction:
    r"""Posterior predictive loss (nats) at new points, for the law and for a new training run.

    Give exactly one kind of input: ``N`` and ``D`` (parameters and tokens, paired elementwise after
    broadcasting) for a law in N and D; ``x`` for a one-variable law; or ``C`` (FLOPs) alone, which
    predicts at each draw's compute-optimal split under :math:`C = k N D` (k: the posterior's
    ``flops_per_param_token``).

    Parameters
    ----------
    posterior : Posterior or fit
        The draws (:class:`bayescale.Posterior`; a :class:`~bayescale.ScalingFit` or
        :class:`~bayescale.baselines.LSQFit` is converted).
    N, D, x, C : float or array_like, optional
        Where to predict (see above); all must be positive.
    level : float, default 0.95
        Default interval mass of the returned :class:`Prediction`.
    seed : int, default 0
        Seed of the ``numpy.random.Generator`` that simulates the new-run noise
        (:meth:`bayescale.Posterior.noise`).

    Returns
    -------
    Prediction
        ``law_draws`` and ``new_run_draws`` of shape (S, P).

    Raises
    ------
    FitError
        For inputs that do not match the law (``N`` without ``D``, ``x`` for a two-variable law,
        ``C`` mixed with sizes, ``C`` for a one-variable law) or non-positive sizes.
    """
    post = as_posterior(posterior)
    law = post.law
    level = check_level(level)
    given = [name for name, v in (("N", N), ("D", D), ("x", x), ("C", C)) if v is not None]
    allocation = None
    if C is not None:
        if given != ["C"]:
            raise FitError(f"give C alone (the compute-optimal split) or N and D; got {given}")
        allocation = compute_optimal(post, C)
        law_draws = allocation.loss
        inputs = {
            "compute": allocation.compute,
            "N": np.median(allocation.N_opt, axis=0),
            "D": np.median(allocation.D_opt, axis=0),
        }
    else:
        if law.inputs == ("N", "D") and given != ["N", "D"]:
            raise FitError(f"law {law.name!r} predicts from N and D together, or C; got {given}")
        if law.inputs == ("x",) and given != ["x"]:
            raise FitError(f"law {law.name!r} has one input 'x': predict with x=...; got {given}")
        sizes = [_sizes(name, v) for name, v in (("N", N), ("D", D), ("x", x)) if v is not None]
        try:
            inputs = dict(zip(law.inputs, (np.array(v) for v in np.broadcast_arrays(*sizes))))
        except ValueError:
            raise FitError("N and D pair up elementwise: give equal lengths or a scalar") from None
        law_draws = post.law_draws(inputs)
    law_draws = np.broadcast_to(law_draws, (post.size, law_draws.shape[-1])).copy()
    noise = post.noise(np.random.default_rng(seed), shape=(law_draws.shape[1],))
    new_run = law_draws * np.exp(noise)
    return Prediction(law.name, inputs, law_draws, new_run, level, int(seed), allocation,
                      noise_scale=post.new_run_sigma, nu=post.nu)
