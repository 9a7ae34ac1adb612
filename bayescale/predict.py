r"""Posterior predictions of loss at new model sizes, data sizes or compute budgets.

Three bands, from the same draws:

* ``law``: :math:`L_s(N, D)` for each draw s: uncertainty about the law's parameters only, its
  form taken as exact.
* ``noise_only``: a new training run with the law's form taken as exact,
  :math:`L_s(N, D)\, e^{\varepsilon}` with :math:`\varepsilon \sim t_{\nu_s}(0, \sigma_s)`
  (the noise is on log loss). It contains the law band.
* ``new_run`` (the default band of every output): that run with the law's form error beyond the
  training domain too, :math:`\times e^{\delta_s(N, D)}` (:mod:`bayescale.extrapolation`).
  Inside the domain it equals ``noise_only``.

A budget C alone predicts at each draw's own compute-optimal split (see
:func:`bayescale.allocation.compute_optimal`), so the band includes the uncertainty of the split.
Every prediction says how far beyond the data it is (:attr:`Prediction.beyond`), and warns
beyond 1000x (:data:`bayescale.extrapolation.FAR` decades).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayescale.allocation import Allocation, compute_optimal
from bayescale.errors import FitError
from bayescale.extrapolation import ExtrapolationWarning, beyond_data
from bayescale.posterior import as_posterior
from bayescale.summaries import check_level, interval, summary_dict

__all__ = ["Prediction", "predict", "ExtrapolationWarning"]

_KINDS = ("law", "noise_only", "new_run")


@dataclass(frozen=True)
class Prediction:
    """Predicted loss (nats) at P points: the law, a run with the law's form exact, a new run.

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
        Loss of a new training run per draw and point: the law times the log-loss noise and the
        law's form error beyond the data, shape (S, P).
    noise_only_draws : numpy.ndarray or None
        The same run with the law's form taken as exact (law times noise), shape (S, P).
    level : float
        Default mass of the central intervals in :meth:`table` and :meth:`to_dict`.
    seed : int
        Seed of the ``numpy.random.Generator`` that drew the noise and the form error's scatter.
    allocation : Allocation or None
        The compute-optimal split behind a prediction at budgets, else ``None``.
    noise_scale, nu : numpy.ndarray or None
        (S,) scale and Student-t degrees of freedom of a new run's noise on log loss, each
        draw's (for :meth:`log_density`).
    beyond : mapping
        How far beyond the training data each point is: for each input (``N``, ``D``, ``C``
        or ``x``) the point's value over the largest trained on (below 1: inside), and
        ``"decades"``, the largest distance outside the domain in decades (0 inside).
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
    noise_only_draws: np.ndarray | None = None
    beyond: Mapping[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        check_level(self.level)
        shape = np.shape(self.law_draws)
        if len(shape) != 2 or np.shape(self.new_run_draws) != shape:
            raise FitError("law_draws and new_run_draws must both have shape (draws, points)")
        if self.noise_only_draws is None:
            object.__setattr__(self, "noise_only_draws", self.new_run_draws)
        elif np.shape(self.noise_only_draws) != shape:
            raise FitError("noise_only_draws must have shape (draws, points)")
        for name, v in self.inputs.items():
            if np.shape(v) != (shape[1],):
                raise FitError(f"input {name!r} must have one value per point ({shape[1]})")

    def draws(self, kind: str = "new_run") -> np.ndarray:
        """The (S, P) draws of one band: ``"law"``, ``"noise_only"`` or ``"new_run"``."""
        if kind not in _KINDS:
            raise FitError(f"kind must be one of {', '.join(_KINDS)}; got {kind!r}")
        return {"law": self.law_draws, "noise_only": self.noise_only_draws,
                "new_run": self.new_run_draws}[kind]

    def log_density(self, loss) -> np.ndarray:
        r"""Log predictive density of observed losses under the ``new_run`` band, one per point,
        on log loss: :math:`\log \frac1S \sum_s t_{\nu_s}(\log y \mid \log L_s + \delta_s,
        \sigma_s)` with :math:`\delta_s` the draw's form error (nats of log loss; Gaussian where
        :math:`\nu_s = \infty`)."""
        from scipy import stats
        from scipy.special import logsumexp

        if self.noise_scale is None:
            raise FitError("this prediction carries no noise scale to score a density with")
        y = np.log(np.asarray(loss, dtype=float))
        if y.shape != (self.law_draws.shape[1],):
            raise FitError(f"give one observed loss per point ({self.law_draws.shape[1]})")
        nu = np.inf if self.nu is None else self.nu[:, None]
        loc = np.log(self.law_draws) + np.log(self.new_run_draws / self.noise_only_draws)
        lp = stats.t.logpdf(y[None, :], df=nu, loc=loc, scale=self.noise_scale[:, None])
        return logsumexp(lp, axis=0) - np.log(self.law_draws.shape[0])

    def table(self, level: float | None = None) -> pd.DataFrame:
        """Tidy table, one row per point and kind (``law``, ``noise_only``, ``new_run``): the
        input columns, then ``kind, median, mean, lo, hi, level`` of the loss in nats, and
        ``decades_beyond``."""
        level = check_level(self.level if level is None else level)
        frames = []
        for kind in _KINDS:
            draws = self.draws(kind)
            med, lo, hi = interval(draws, level)
            frame = pd.DataFrame({name: np.asarray(v) for name, v in self.inputs.items()})
            frame["kind"] = kind
            frame["median"], frame["mean"], frame["lo"], frame["hi"] = med, draws.mean(0), lo, hi
            frame["level"] = level
            if "decades" in self.beyond:
                frame["decades_beyond"] = self.beyond["decades"]
            frames.append(frame.assign(_point=np.arange(len(frame)), _kind=_KINDS.index(kind)))
        out = pd.concat(frames, ignore_index=True).sort_values(["_point", "_kind"],
                                                               kind="stable")
        return out.drop(columns=["_point", "_kind"]).reset_index(drop=True)

    def to_dict(self, level: float | None = None) -> dict[str, Any]:
        """JSON-ready summary with plain floats: ``{"law", "level", "points": [{<inputs>,
        "law": {"median", "lo", "hi"}, "noise_only": {...}, "new_run": {...}, "beyond":
        {<input>: x-fold, "decades"}}]}``."""
        level = check_level(self.level if level is None else level)
        points = []
        for j in range(self.law_draws.shape[1]):
            entry: dict[str, Any] = {name: float(v[j]) for name, v in self.inputs.items()}
            for kind in _KINDS:
                entry[kind] = summary_dict(self.draws(kind)[:, j], level)
            if self.beyond:
                entry["beyond"] = {k: float(v[j]) for k, v in self.beyond.items()}
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
    U: Any = None,
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
    U : float or array_like, optional
        Unique tokens, for the ``data_constrained`` law: with N and D (elementwise), or one
        data budget with C.
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
    given = [name for name, v in (("N", N), ("D", D), ("x", x), ("C", C), ("U", U))
             if v is not None]
    allocation = None
    if C is not None:
        if given not in (["C"], ["C", "U"]):
            raise FitError(f"give C alone (the compute-optimal split) or N and D; got {given}")
        if U is not None and np.size(U) != 1:
            raise FitError("with C, U is one data budget (unique tokens); got several")
        allocation = compute_optimal(post, C, warn=False,
                                     unique_tokens=None if U is None else float(np.ravel(U)[0]))
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
        if law.inputs == ("N", "D", "U") and given != ["N", "D", "U"]:
            raise FitError(f"law {law.name!r} predicts from N, D and unique tokens U together, or "
                           f"C with U (CLI --unique-tokens U); got {given}")
        if "U" in given and "U" not in law.inputs:
            raise FitError(f"law {law.name!r} has no unique-token input; drop U")
        sizes = [_sizes(name, v) for name, v in (("N", N), ("D", D), ("x", x), ("U", U))
                 if v is not None]
        try:
            inputs = dict(zip(law.inputs, (np.array(v) for v in np.broadcast_arrays(*sizes))))
        except ValueError:
            raise FitError("N and D (and U) pair up elementwise: give equal lengths or a scalar"
                           ) from None
        law_draws = post.law_draws(inputs)
    law_draws = np.broadcast_to(law_draws, (post.size, law_draws.shape[-1])).copy()
    rng = np.random.default_rng(seed)
    noise_only = law_draws * np.exp(post.noise(rng, shape=(law_draws.shape[1],)))
    where = ({"N": allocation.N_opt, "D": allocation.D_opt} if allocation is not None else
             {k: np.broadcast_to(v, law_draws.shape) for k, v in inputs.items()
              if k in law.inputs})
    new_run = noise_only
    if post.form_slopes is not None:
        eta = rng.standard_normal(law_draws.shape)
        offset = post.form_offset({k: v.T for k, v in where.items()}, eta.T).T
        new_run = noise_only * np.exp(offset)
    beyond = beyond_data(post, {k: v for k, v in inputs.items() if k in law.inputs},
                         stacklevel=2)
    return Prediction(law.name, inputs, law_draws, new_run, level, int(seed), allocation,
                      noise_scale=post.new_run_sigma, nu=post.nu, noise_only_draws=noise_only,
                      beyond=beyond)
