"""Small summaries of posterior (or bootstrap) draws shared by every module that reports intervals.

Intervals are central (equal-tailed): at ``level`` = 0.95 they run from the 2.5% to the 97.5%
quantile of the draws, so they transform with any monotone map (a loss interval exponentiated from
a log-loss interval is the interval of the loss).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from bayescale.errors import FitError

__all__ = ["check_level", "positive", "interval", "summary_dict"]


def check_level(level: float) -> float:
    """Return ``level`` as a float after checking that it lies strictly between 0 and 1.

    Raises
    ------
    FitError
        If ``level`` is not a number in (0, 1), e.g. 95 instead of 0.95.
    """
    try:
        value = float(level)
    except (TypeError, ValueError):
        raise FitError(f"level must be a number in (0, 1), e.g. 0.95; got {level!r}") from None
    if not 0.0 < value < 1.0:
        raise FitError(f"level must lie strictly in (0, 1), e.g. 0.95 (not 95); got {level!r}")
    return value


def positive(x, what: str) -> float:
    """``x`` as a positive finite float, or a FitError naming ``what``."""
    try:
        x = float(x)
    except (TypeError, ValueError):
        raise FitError(f"{what} must be a positive number; got {x!r}") from None
    if not 0 < x < math.inf:
        raise FitError(f"{what} must be a positive finite number; got {x!r}")
    return x


def interval(
    draws: Any, level: float = 0.95, axis: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Median and central credible interval of ``draws`` along ``axis``.

    The interval holds the central ``level`` of the draws:
    :math:`[q_{(1-\ell)/2},\ q_{(1+\ell)/2}]`, with quantiles interpolated linearly (NumPy's
    default), so for :math:`S` draws the ends move by at most one order statistic.

    Parameters
    ----------
    draws : array_like
        Draws of any quantity (loss in nats, parameters, tokens, ...), draws along ``axis``.
    level : float, default 0.95
        Probability mass inside the interval, in (0, 1).
    axis : int, default 0
        Axis of ``draws`` that indexes the draws.

    Returns
    -------
    (median, lo, hi) : tuple of numpy.ndarray
        Each with ``axis`` removed (0-d arrays for 1-d ``draws``), in the units of ``draws``.

    Examples
    --------
    >>> med, lo, hi = interval(np.arange(101.0), 0.5)
    >>> float(med), float(lo), float(hi)
    (50.0, 25.0, 75.0)
    """
    level = check_level(level)
    q = np.quantile(
        np.asarray(draws, dtype=float), [0.5, (1.0 - level) / 2, (1.0 + level) / 2], axis=axis
    )
    return q[0], q[1], q[2]


def summary_dict(draws: Any, level: float = 0.95) -> dict[str, float]:
    """``{"median", "lo", "hi"}`` of one quantity's draws, as plain Python floats (JSON-ready).

    Parameters
    ----------
    draws : array_like
        1-d draws of one quantity (any other shape is flattened).
    level : float, default 0.95
        Mass of the central interval ``[lo, hi]``.
    """
    med, lo, hi = interval(np.ravel(np.asarray(draws, dtype=float)), level)
    return {"median": float(med), "lo": float(lo), "hi": float(hi)}
