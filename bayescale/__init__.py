"""bayescale: Bayesian inference of neural scaling laws.

Fit a scaling law to training runs with NUTS, extrapolate with credible intervals, and decide how
to split a compute budget between parameters and tokens with the posterior's uncertainty.

>>> import bayescale as bs
>>> data = bs.load_dataset("chinchilla")   # doctest: +SKIP
>>> fit = bs.fit(data, law="chinchilla")    # doctest: +SKIP

Names are imported lazily so that ``import bayescale`` (and ``bayescale --help``) do no JAX work.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "ScalingData": "bayescale.data",
    "BayescaleError": "bayescale.errors",
    "DataError": "bayescale.errors",
    "FitError": "bayescale.errors",
    "ConvergenceError": "bayescale.errors",
    "SetupError": "bayescale.errors",
    "load_dataset": "bayescale.datasets",
    "list_datasets": "bayescale.datasets",
    "fit": "bayescale.inference",
    "ScalingFit": "bayescale.inference",
    "Posterior": "bayescale.posterior",
    "Domain": "bayescale.posterior",
    "load_fit": "bayescale.inference",
    "fit_many": "bayescale.many",
    "FitGroup": "bayescale.many",
    "load_fits": "bayescale.many",
    "ConvergenceWarning": "bayescale.inference",
    "compare": "bayescale.comparison",
    "lfo_stacking": "bayescale.comparison",
    "backtest": "bayescale.backtesting",
    "Backtest": "bayescale.backtesting",
    "ExtrapolationWarning": "bayescale.predict",
    "LAWS": "bayescale.laws",
    "get_law": "bayescale.laws",
    "prior_predictive": "bayescale.checks",
    "prior_sensitivity": "bayescale.checks",
    "load_task": "bayescale.datasets",
    "TaskData": "bayescale.tasks",
    "TaskFit": "bayescale.tasks",
    "fit_task": "bayescale.tasks",
    "fit_tasks": "bayescale.tasks",
    "load_task_fit": "bayescale.tasks",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'bayescale' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
