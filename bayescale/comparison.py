"""Rank and weigh laws fitted to the same runs: by their expected out-of-sample fit inside the
data (PSIS-LOO, :func:`compare`), and by how well they predicted the runs beyond their own
refits' data (leave-future-out stacking, :func:`lfo_stacking`)."""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd

from bayescale.errors import FitError

__all__ = ["PARETO_K_MAX", "compare", "lfo_stacking", "stacking_weights"]

#: Pareto k above which PSIS-LOO's estimate for a run is unreliable (Vehtari et al. 2017).
PARETO_K_MAX = 0.7


def _same_runs(fits: Sequence, who: str) -> list:
    """``fits`` as a list, checked to be two or more fits of the same runs."""
    fits = list(fits)
    if len(fits) < 2:
        raise FitError(f"{who} needs at least two fits of the same data")
    ref = fits[0].data
    for f in fits[1:]:
        if f.data.n_points != ref.n_points or not np.array_equal(f.data.loss, ref.loss):
            raise FitError(f"{who} needs fits of the same runs: these fits were made on "
                           "different data (different losses or numbers of runs)")
    return fits


def _names(fits: list, names: Sequence[str] | None) -> list[str]:
    """One distinct name per fit: ``names``, or each fit's law (with its noise and position
    where two fits share a law)."""
    if names is None:
        names = [f.law.name if [g.law.name for g in fits].count(f.law.name) == 1
                 else f"{f.law.name}/{f.noise}/{i}" for i, f in enumerate(fits)]
    names = list(names)
    if len(set(names)) != len(names) or len(names) != len(fits):
        raise FitError(f"names must be {len(fits)} distinct names, got {names}")
    return names


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

    fits = _same_runs(fits, "compare")
    kinds = {bool(f.repeats) for f in fits}
    if len(kinds) > 1:
        which = ", ".join(f"{f.law.name}: {'per configuration' if f.repeats else 'per run'}"
                          for f in fits)
        raise FitError("compare needs fits that score the runs the same way, and some of these "
                       "model repeated runs (one likelihood term per configuration) while others "
                       f"do not (one per run): {which}; refit them all with the same repeats= "
                       "(--repeats yes or no)")
    names = _names(fits, names)
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


def stacking_weights(log_density, *, tol: float = 1e-10, max_iter: int = 100_000) -> np.ndarray:
    r"""Stacking weights of K predictive distributions scored on n points (Yao et al. 2018).

    The weights on the simplex that maximise :math:`\sum_i \log \sum_k w_k p_k(y_i)`, with
    ``log_density[k, i]`` :math:`= \log p_k(y_i)`. The objective is concave in w; the
    fixed-point update :math:`w_k \leftarrow w_k \frac1n\sum_i p_k(y_i) / \sum_j w_j p_j(y_i)`
    (EM for a mixture's weights, in log space) climbs it from equal weights to its maximum.
    """
    from scipy.special import logsumexp

    lp = np.asarray(log_density, dtype=float)
    if lp.ndim != 2 or lp.shape[0] < 1 or lp.shape[1] < 1 or not np.all(np.isfinite(lp)):
        raise FitError(f"stacking needs a finite (models, points) array of log densities; got "
                       f"shape {lp.shape}")
    log_w = np.full(lp.shape[0], -np.log(lp.shape[0]))
    for _ in range(max_iter):
        resp = log_w[:, None] + lp
        resp -= logsumexp(resp, axis=0)
        new = logsumexp(resp, axis=1) - np.log(lp.shape[1])
        if np.max(np.abs(np.exp(new) - np.exp(log_w))) < tol:
            log_w = new
            break
        log_w = new
    w = np.exp(log_w)
    return w / w.sum()


def lfo_stacking(fits: Sequence, *, names: Sequence[str] | None = None) -> pd.DataFrame:
    """Weights of laws fitted to the same runs, by stacking their leave-future-out predictions.

    Each fit made with its form error (the default) holds its own leave-future-out refits
    (``fit.evidence``: the law refitted below the top compute levels of the data, Laplace
    approximation) and their errors on the runs above. Every law's refit predicts those runs
    with its law band and noise (the form taken as exact, Gaussian on log loss); the weights
    are the stacking weights (:func:`stacking_weights`) of these predictive densities over
    every held-out run of every cutoff the laws share. Unlike PSIS-LOO's weights they reward
    the law that extrapolated, not the one that interpolated. Use them with
    :meth:`bayescale.Posterior.mixture`::

        table = bs.lfo_stacking([fit_a, fit_b])
        post = bs.Posterior.mixture([fit_a, fit_b], weights=table["weight"])

    Returns
    -------
    pandas.DataFrame: one row per fit (``model``), in the order given (so ``table["weight"]``
    lines up with ``fits``), with ``elpd_lfo`` (the summed log predictive density of the
    held-out runs), ``n_heldout`` and ``weight``.

    Raises
    ------
    FitError: fewer than two fits, fits of different runs, a fit without refits (made with
    ``form_error=False``, or data too small to refit), or no cutoff shared by every fit.
    """
    from scipy import stats

    fits = _same_runs(fits, "lfo_stacking")
    names = _names(fits, names)
    by_cut = []
    for name, f in zip(names, fits):
        holdouts = getattr(f, "evidence", None)
        holdouts = holdouts.holdouts if holdouts is not None else ()
        if not holdouts:
            raise FitError(f"fit {name!r} has no leave-future-out refits: fit it with its form "
                           "error (the default; not form_error=False / --no-form-error) on data "
                           "with at least three levels of compute (or x)")
        by_cut.append({h.cutoff: h for h in holdouts})
    cuts = sorted(set.intersection(*(set(b) for b in by_cut)))
    cuts = [c for c in cuts if len({len(b[c].error) for b in by_cut}) == 1]
    if not cuts:
        raise FitError("the fits share no leave-future-out cutoff (their refits held out "
                       "different runs); fit the laws to the same data")
    lp = np.array([np.concatenate([
        stats.norm.logpdf(b[c].error, 0.0, np.sqrt(np.diag(b[c].law_cov) + b[c].noise_var))
        for c in cuts]) for b in by_cut])
    return pd.DataFrame({"elpd_lfo": lp.sum(axis=1), "n_heldout": lp.shape[1],
                         "weight": stacking_weights(lp)}, index=pd.Index(names, name="model"))
