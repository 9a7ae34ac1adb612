r"""Leave-future-out backtests: would this fit have predicted the runs beyond its data?

:func:`backtest` refits a law on the runs at or below each cutoff of one axis (compute C by
default; N, D or x), predicts the runs above it, and scores the predictions the way they are
used: signed bias and RMSE of log loss, coverage and width of the central 50/80/90/95% bands
of a new run, and the mean log predictive density, per cutoff, pooled, and against the
extrapolation ratio (the held-out run's C over the largest C trained on).

Cutoffs
-------
By default the top 1, 2 and 3 *levels* of the axis are held out (:func:`compute_levels`).
Levels are the clusters of the axis's values on a log scale (a gap of more than 0.1 decade
starts a new one), so an IsoFLOP grid has one level per budget; values that form no grid are cut
into 8 bins of equal width in log10; levels of fewer than 3 runs join the level above them,
so that every held-out level is more than a stray run or two. ``cutoffs=`` gives the largest
training value of each split explicitly instead.

Every Bayesian refit runs in one :func:`bayescale.fit_many` program; least-squares baselines
(``method="huber"``, ``"curve_fit"``, ``"ols"``) are refitted with their bootstrap and scored the
same way, through their :class:`~bayescale.Posterior`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data import ScalingData
from bayescale.errors import DataError, FitError
from bayescale.extrapolation import directions_of
from bayescale.laws import Law, get_law

__all__ = ["backtest", "Backtest", "compute_levels", "default_cutoffs", "subset", "LEVELS",
           "RATIO_BINS"]

#: Central interval masses whose coverage a backtest reports.
LEVELS = (0.5, 0.8, 0.9, 0.95)
#: Edges of the extrapolation-ratio bins of :meth:`Backtest.by_ratio` (held-out / largest
#: trained value of the axis).
RATIO_BINS = (1.0, 3.0, 10.0, 100.0, math.inf)
#: A gap of more than this many decades between sorted values starts a new level.
LEVEL_GAP = 0.1
#: Levels with fewer runs join the level below.
MIN_LEVEL_RUNS = 3
#: Bins of equal width in log10 when the values form no grid (fewer than 5 clusters).
LEVEL_BINS = 8


def compute_levels(values, *, gap: float = LEVEL_GAP, min_runs: int = MIN_LEVEL_RUNS,
                   bins: int = LEVEL_BINS) -> np.ndarray:
    """Level (0 = smallest) of each value.

    Values on a grid (an IsoFLOP suite, a ladder of model sizes) form clusters separated by
    more than ``gap`` decades: one level each. Values spread evenly (training runs of many
    sizes, a learning curve) form few such clusters; when there are fewer than 5, the levels
    are instead ``bins`` bins of equal width in log10 between the smallest and the largest
    value. Either way, levels are formed from the top, each of at least ``min_runs`` values:
    a smaller cluster joins the level above it.
    """
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or values.size == 0 or not np.all(np.isfinite(values) & (values > 0)):
        raise DataError("the backtest axis must hold positive, finite values")
    logs = np.log10(values)
    order = np.argsort(logs, kind="stable")
    cluster = np.empty(values.size, dtype=int)
    cluster[order] = np.concatenate([[0], np.cumsum(np.diff(logs[order]) > gap)])
    levels = _merge_small(cluster, min_runs)
    if levels.max() + 1 < 5 and np.ptp(logs) > 0:  # no grid: bins of equal width in log10
        edges = np.linspace(logs.min(), logs.max(), bins + 1)
        levels = _merge_small(np.clip(np.searchsorted(edges, logs, side="right") - 1, 0,
                                      bins - 1), min_runs)
    return levels


def _merge_small(cluster: np.ndarray, min_runs: int) -> np.ndarray:
    """Consecutive labels 0.. of levels of at least ``min_runs`` values, formed from the top:
    clusters join the level above them until it is that large; a remainder at the bottom joins
    the lowest level."""
    sizes = np.bincount(cluster)
    label = np.empty(sizes.size, dtype=int)
    level, count = 0, 0
    for c in range(sizes.size - 1, -1, -1):
        label[c] = level
        count += sizes[c]
        if count >= min_runs:
            level, count = level + 1, 0
    if count and level:  # a remainder too small for a level of its own
        label[label == level] = level - 1
    order = label.max() - label  # the lowest values get level 0
    return order[cluster]


def default_cutoffs(values, drop: Sequence[int] = (1, 2, 3)) -> list[float]:
    """The largest training value of each split that holds out the top ``drop`` levels."""
    values = np.asarray(values, dtype=float)
    levels = compute_levels(values)
    n = int(levels.max()) + 1
    out = []
    for k in drop:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise FitError(f"drop must hold whole numbers >= 1 (levels to hold out); got {k!r}")
        if k >= n:
            raise DataError(f"cannot hold out the top {k} levels: the runs have {n} levels of "
                            "the backtest axis (see bayescale.backtesting.compute_levels); drop "
                            "fewer, or give cutoffs")
        out.append(float(values[levels == n - 1 - k].max()))
    return out


@dataclass(frozen=True, eq=False)
class Backtest:
    """The scored held-out runs of a leave-future-out backtest.

    Attributes
    ----------
    law, method, by : str
        The law, how it was fitted (``"bayes"`` or a least-squares method) and the axis cut.
    points : pandas.DataFrame
        One row per (cutoff, held-out run): ``cutoff``, the run's inputs, ``loss`` (nats),
        ``ratio`` (its value of the axis over the largest trained), ``pred`` (median predictive
        log loss), ``error`` (log loss minus ``pred``: positive when the law was too optimistic),
        ``lo50``...``hi95`` (central bands of a new run's log loss), ``lpd`` (log predictive
        density of its log loss).
    splits : pandas.DataFrame
        One row per cutoff: ``cutoff``, ``n_train``, ``n_test``, ``train_max`` (the largest
        value of the axis trained on) and ``converged``.
    fits : dict
        Cutoff -> the fit behind it.
    """

    law: str
    method: str
    by: str
    points: pd.DataFrame
    splits: pd.DataFrame
    fits: Mapping[float, Any] = field(repr=False, default_factory=dict)

    def _score(self, rows: pd.DataFrame) -> dict[str, float]:
        out: dict[str, float] = {"n_test": int(len(rows))}
        if not len(rows):
            return out
        err = rows["error"].to_numpy()
        out["rmse"] = float(np.sqrt(np.mean(err**2)))
        out["bias"] = float(np.mean(err))
        out["mae"] = float(np.median(np.abs(err)))
        y = np.log(rows["loss"].to_numpy())
        for level in LEVELS:
            pct = round(100 * level)
            inside = (y >= rows[f"lo{pct}"]) & (y <= rows[f"hi{pct}"])
            out[f"cov{pct}"] = float(np.mean(inside))
        out["width90"] = float(np.mean(rows["hi90"] - rows["lo90"]))
        out["mlpd"] = float(np.mean(rows["lpd"]))
        out["max_ratio"] = float(rows["ratio"].max())
        return out

    def summary(self) -> pd.DataFrame:
        """One row per cutoff and a ``pooled`` row: ``n_train``, ``n_test``, ``max_ratio``,
        ``rmse`` and ``bias`` (mean error) and ``mae`` (median absolute error) of log loss,
        ``cov50``..``cov95`` (share of held-out runs inside each central band of a new run),
        ``width90`` (mean width of the 90% band of log loss) and ``mlpd``."""
        rows = {}
        for split in self.splits.itertuples():
            part = self.points[self.points["cutoff"] == split.cutoff]
            rows[f"{split.cutoff:.4g}"] = {"n_train": int(split.n_train), **self._score(part)}
        rows["pooled"] = {"n_train": math.nan, **self._score(self.points)}
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "cutoff"
        return out

    def by_ratio(self, bins: Sequence[float] = RATIO_BINS) -> pd.DataFrame:
        """The pooled scores of held-out runs grouped by extrapolation ratio (``bins`` edges)."""
        edges = np.asarray(bins, dtype=float)
        rows = {}
        for lo, hi in zip(edges[:-1], edges[1:]):
            part = self.points[(self.points["ratio"] > lo) & (self.points["ratio"] <= hi)]
            if len(part):
                rows[f"{lo:g}-{hi:g}x"] = self._score(part)
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "ratio"
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: law, method, by, the splits, the summary (per cutoff and pooled) and the
        scores by extrapolation ratio."""
        def records(frame):
            return {str(k): {c: (None if isinstance(v, float) and not math.isfinite(v) else v)
                             for c, v in r.items()} for k, r in frame.to_dict("index").items()}

        return {"law": self.law, "method": self.method, "by": self.by,
                "splits": self.splits.to_dict("records"), "summary": records(self.summary()),
                "by_ratio": records(self.by_ratio())}

    def plot(self, axes=None):
        """Calibration curve (coverage against nominal level, per cutoff and pooled) and the
        error of each held-out run against its extrapolation ratio, with its 90% band."""
        import matplotlib.pyplot as plt

        if axes is None:
            _, axes = plt.subplots(1, 2, figsize=(10, 4.2), layout="constrained")
        cal, err = axes
        levels = np.array(LEVELS)
        table = self.summary()
        for i, (name, row) in enumerate(table.iterrows()):
            pooled = name == "pooled"
            cal.plot(levels, [row[f"cov{round(100 * q)}"] for q in levels],
                     "o-" if pooled else ".--", color="k" if pooled else f"C{i}",
                     lw=2 if pooled else 1, label="pooled" if pooled else f"train ≤ {name}")
        cal.plot([0, 1], [0, 1], color="0.6", lw=1)
        cal.set(xlim=(0.4, 1), ylim=(0, 1), xlabel="nominal level of the central band",
                ylabel="share of held-out runs inside", title="calibration")
        cal.legend(fontsize="small")
        for i, split in enumerate(self.splits.itertuples()):
            part = self.points[self.points["cutoff"] == split.cutoff]
            err.errorbar(part["ratio"], part["error"],
                         yerr=[part["pred"] - part["lo90"], part["hi90"] - part["pred"]],
                         fmt="o", ms=3, lw=0.7, alpha=0.7, color=f"C{i}",
                         label=f"train ≤ {split.cutoff:.3g}")
        err.axhline(0, color="0.4", lw=1)
        err.set(xscale="log", xlabel=f"extrapolation ratio ({self.by} / largest trained)",
                ylabel="log loss - predicted (bars: 90% band)", title="error beyond the data")
        err.legend(fontsize="small")
        return axes


def _axis_values(data: ScalingData, by: str) -> np.ndarray:
    values = getattr(data, by, None)
    if values is None:
        raise DataError(f"these runs have no {by!r} to cut along; choose by= among "
                        f"{[k for k in ('C', 'N', 'D', 'x') if getattr(data, k) is not None]}")
    return np.asarray(values, dtype=float)


def subset(data: ScalingData, mask) -> ScalingData:
    """The runs of ``data`` under the boolean ``mask``, with its labels and units."""
    return data.subset(np.asarray(mask, dtype=bool))


def backtest(data, law: str | Law = "chinchilla", *, by: str | None = None,
             drop: Sequence[int] = (1, 2, 3), cutoffs: Sequence[float] | None = None,
             method: str = "bayes", bootstrap: int = 200, seed: int = 0, progress: bool = True,
             **fit_options: Any) -> Backtest:
    """Refit below each cutoff, predict the runs above, and score the predictions.

    Parameters
    ----------
    data : ScalingData, DataFrame or CSV path
    law : str or Law
    by : {"C", "N", "D", "x"}, optional
        The axis to cut: compute for laws in N and D, x for one-variable laws by default.
    drop : sequence of int, default (1, 2, 3)
        Hold out the top levels of the axis (see the module docstring), one split each.
    cutoffs : sequence of float, optional
        Instead of ``drop``: the largest value of the axis each split trains on.
    method : {"bayes", "huber", "curve_fit", "ols"}
        The Bayesian fit (every split in one :func:`bayescale.fit_many` program) or a
        least-squares baseline with ``bootstrap`` resamples.
    bootstrap : int, default 200
        Resamples of a least-squares method.
    seed : int
        Seed of the fits, the bootstrap and the simulated noise of new runs.
    progress : bool
        Progress bar of the Bayesian refits.
    **fit_options
        Passed to :func:`bayescale.fit_many` (``noise``, ``priors``, ``repeats``, ``chains``,
        ``warmup``, ``draws``, ``target_accept``...).

    Returns
    -------
    Backtest
    """
    from bayescale.inference import as_data
    from bayescale.predict import predict

    data = as_data(data)
    law = get_law(law)
    by = by or directions_of(law)[0]  # the axis the fit's own refits cut along
    allowed = (("C", "N", "D", *(("U", "epochs") if "U" in law.inputs else ()))
               if law.inputs[:2] == ("N", "D") else ("x",))
    if by not in allowed:
        raise FitError(f"law {law.name!r} is backtested along {' or '.join(allowed)}, not {by!r}")
    values = _axis_values(data, by)
    if cutoffs is None:
        cuts = default_cutoffs(values, drop)
    else:
        cuts = [float(c) for c in np.atleast_1d(np.asarray(cutoffs, dtype=float))]
        if not cuts or not all(math.isfinite(c) and c > 0 for c in cuts):
            raise FitError(f"cutoffs must be positive numbers (largest {by} trained on); "
                           f"got {cutoffs!r}")
    masks = {c: values <= c for c in cuts}
    for c, mask in masks.items():
        if not (~mask).any():
            raise DataError(f"cutoff {c:.4g}: no run has a larger {by}, so nothing is held out")
        try:
            subset(data, mask).check_for(law.inputs, law.n_params, law.name)
        except DataError as err:
            raise DataError(f"cutoff {c:.4g} ({by}): the {int(mask.sum())} runs at or below it "
                            f"cannot be fitted: {err}") from None
    train = {f"{c:.6g}": subset(data, m) for c, m in masks.items()}
    if method == "bayes":
        from bayescale.many import fit_many

        from bayescale.inference import ConvergenceWarning

        with warnings.catch_warnings():  # one warning below names the unconverged refits
            warnings.simplefilter("ignore", ConvergenceWarning)
            fits = dict(zip(cuts, fit_many(train, law, seed=seed, progress=progress,
                                           **fit_options).values()))
    else:
        if fit_options:
            raise FitError(f"method {method!r} takes no sampler options "
                           f"({', '.join(fit_options)})")
        from bayescale.baselines import fit_lsq_data

        fits = {c: fit_lsq_data(method, law.name, d, bootstrap=bootstrap, seed=seed)
                for c, d in zip(cuts, train.values())}
    frames, splits = [], []
    for c, mask in masks.items():
        held = ~mask
        inputs = {k: getattr(data, k)[held] for k in law.inputs}
        pred = predict(fits[c], **inputs, seed=seed)
        log_new = np.log(pred.new_run_draws)
        y = np.log(data.loss[held])
        frame = pd.DataFrame({"cutoff": c, **inputs, "loss": data.loss[held],
                              "ratio": values[held] / values[mask].max(),
                              "pred": np.median(log_new, axis=0)})
        frame["error"] = y - frame["pred"]
        for level in LEVELS:
            lo, hi = np.quantile(log_new, [(1 - level) / 2, (1 + level) / 2], axis=0)
            frame[f"lo{round(100 * level)}"], frame[f"hi{round(100 * level)}"] = lo, hi
        frame["lpd"] = pred.log_density(data.loss[held])
        frames.append(frame)
        diag = getattr(fits[c], "diagnostics", None)
        splits.append({"cutoff": c, "n_train": int(mask.sum()), "n_test": int(held.sum()),
                       "train_max": float(values[mask].max()),
                       "converged": True if diag is None else bool(diag["converged"])})
    unconverged = [s["cutoff"] for s in splits if not s["converged"]]
    if unconverged:
        warnings.warn(f"the refits below cutoffs {unconverged} did not converge; their scores "
                      "are not to be trusted", stacklevel=2)
    return Backtest(law=law.name, method=method, by=by,
                    points=pd.concat(frames, ignore_index=True), splits=pd.DataFrame(splits),
                    fits=fits)
