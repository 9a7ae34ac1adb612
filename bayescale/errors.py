"""Exceptions a user can cause, each with a message that names the problem and the fix."""

from __future__ import annotations

__all__ = ["BayescaleError", "DataError", "FitError", "ConvergenceError", "SetupError",
           "OutputError"]


class BayescaleError(Exception):
    """Base class of every error bayescale raises on purpose.

    The CLI prints ``str(error)`` as one line on stderr and exits with status 2.
    """


class DataError(BayescaleError, ValueError):
    """The table of training runs cannot be used as given (column, row and fix in the message)."""


class FitError(BayescaleError, ValueError):
    """A fit cannot be run or loaded with the options given."""


class ConvergenceError(BayescaleError):
    """A decision was asked of a fit whose sampler did not converge."""


class SetupError(BayescaleError):
    """An environment variable that sets up JAX (``XLA_FLAGS``, ``BAYESCALE_CPU_DEVICES``) has a
    value JAX cannot use."""


class OutputError(BayescaleError):
    """An output path cannot be written: an input file, a folder, a full disk, no permission."""
