"""Rank laws fitted to the same runs by their expected out-of-sample fit (PSIS-LOO)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayescale.errors import FitError

__all__ = ["compare", "PARETO_K_MAX"]

#: Pareto k above which PSIS-LOO's estimate for a run is unreliable (Vehtari et al. 2017).
PARETO_K_MAX = 0.7


def compare(fits: Sequence, *, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Rank fits of the same data by PSIS-LOO (``arviz.compare``), best first.

    Every model scores the log loss of each run, so the expected log pointwise predictive
    densities (``elpd_loo``) are on one scale. Columns are ArviZ's (rank, elpd_loo, p_loo,
    elpd_diff, weight, se, dse, warning, scale) plus ``max_pareto_k`` and ``n_bad_k`` (runs with
    k > 0.7). ``warning`` is True where LOO is unreliable; a :class:`UserWarning` says so too.
    With repeated runs the log likelihood is one term per configuration, each configuration's
    effect integrated out, so such fits compare only with fits of the same configurations.

    Raises
    ------
    FitError: fewer than two fits, or fits of different data.
    """
    from bayescale._compat import import_arviz

    az = import_arviz()

    fits = list(fits)
    if len(fits) < 2:
        raise FitError("compare needs at least two fits of the same data")
    ref = fits[0].data
    for f in fits[1:]:
        if f.data.n_points != ref.n_points or not np.array_equal(f.data.loss, ref.loss):
            raise FitError("compare needs fits of the same runs: these fits were made on "
                           "different data (different losses or numbers of runs)")
    kinds = {bool(f.repeats) for f in fits}
    if len(kinds) > 1:
        which = ", ".join(f"{f.law.name}: {'per configuration' if f.repeats else 'per run'}"
                          for f in fits)
        raise FitError("compare needs fits that score the runs the same way, and some of these "
                       "model repeated runs (one likelihood term per configuration) while others "
                       f"do not (one per run): {which}; refit them all with the same repeats= "
                       "(--repeats yes or no)")
    if names is None:
        names = [f.law.name if [g.law.name for g in fits].count(f.law.name) == 1
                 else f"{f.law.name}/{f.noise}/{i}" for i, f in enumerate(fits)]
    if len(set(names)) != len(names):
        raise FitError(f"names must be distinct, got {list(names)}")
    ks = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for name, f in zip(names, fits):
            ks[name] = np.asarray(az.loo(f.idata, pointwise=True).pareto_k)
        table = az.compare({n: f.idata for n, f in zip(names, fits)}, ic="loo")
    table["max_pareto_k"] = [float(ks[n].max()) for n in table.index]
    table["n_bad_k"] = [int((ks[n] > PARETO_K_MAX).sum()) for n in table.index]
    bad = [n for n in table.index if table.loc[n, "n_bad_k"] > 0]
    if bad:
        warnings.warn(
            f"PSIS-LOO is unreliable for {', '.join(bad)}: some runs have Pareto k > "
            f"{PARETO_K_MAX} (highly influential points); treat the ranking with care or refit "
            "without those runs", UserWarning, stacklevel=2)
    table.index.name = "model"
    return table
