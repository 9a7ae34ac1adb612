r"""Risk objectives over loss draws: small validated factories returning closures.

Public through :mod:`bayescale.decisions`. Each objective maps loss draws (nats; draws on the last
axis, so a grid of candidates is scored at once) to the value a decision minimises, and carries its
spec (``objective.spec == "cvar:0.9"``) so results can say what they optimised.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from bayescale._draws import level
from bayescale.errors import FitError

__all__ = ["Objective", "expected", "quantile", "cvar", "mean_std", "parse_objective", "spec_of"]

Objective = Callable[[np.ndarray], "np.ndarray | float"]
"""Maps loss draws (nats, draws on the last axis) to the value to minimise (nats)."""


def _named(fn, spec: str):
    fn.spec = fn.__name__ = fn.__qualname__ = spec
    return fn


def expected() -> Objective:
    r"""Expected loss :math:`\mathbb{E}[L]`: the mean of the draws (nats)."""
    return _named(lambda losses: np.mean(np.asarray(losses, dtype=float), axis=-1), "expected")


def quantile(q: float) -> Objective:
    r"""The q-quantile of the loss: the loss beaten with probability q (NumPy's linear rule).

    Parameters
    ----------
    q: level in (0, 1); 0.9 gives the loss you stay under with 90% probability.
    """
    q = level(q, "quantile level q")
    return _named(
        lambda losses: np.quantile(np.asarray(losses, dtype=float), q, axis=-1), f"quantile:{q:g}"
    )


def cvar(q: float) -> Objective:
    r"""Conditional value at risk: the mean of the worst (highest-loss) fraction 1 - q of draws.

    With n draws sorted :math:`L_{(1)} \le \dots \le L_{(n)}` and :math:`m = (1 - q) n`,

    .. math:: \mathrm{CVaR}_q = \frac{1}{m}\Big(\sum_{i > n - \lfloor m \rfloor} L_{(i)}
              + (m - \lfloor m \rfloor)\, L_{(n - \lfloor m \rfloor)}\Big),

    the mean of the top m draws when m is whole, and continuous in the draws otherwise.

    Parameters
    ----------
    q: level in (0, 1); 0.9 averages the worst 10% of outcomes.
    """
    q = level(q, "CVaR level q")

    def objective(losses):
        x = np.sort(np.asarray(losses, dtype=float), axis=-1)
        n = x.shape[-1]
        m = (1.0 - q) * n
        m = round(m) if abs(m - round(m)) < 1e-9 else m
        whole = math.floor(m)
        w = np.zeros(n)
        w[n - whole :] = 1.0
        if m > whole:
            w[n - whole - 1] = m - whole
        return x @ w / m

    return _named(objective, f"cvar:{q:g}")


def mean_std(lam: float) -> Objective:
    r"""Mean plus lambda standard deviations: :math:`\mathbb{E}[L] + \lambda\,\mathrm{sd}(L)`.

    Parameters
    ----------
    lam: risk aversion, finite and >= 0 (0 is :func:`expected`).
    """
    is_number = isinstance(lam, (int, float, np.floating)) and not isinstance(lam, bool)
    if not is_number or not 0 <= lam < math.inf:
        raise FitError(f"mean_std needs a finite lambda >= 0 (e.g. 1.0); got {lam!r}")
    lam = float(lam)

    def objective(losses):
        x = np.asarray(losses, dtype=float)
        return np.mean(x, axis=-1) + lam * np.std(x, axis=-1)

    return _named(objective, f"mean_std:{lam:g}")


_FACTORIES = {
    "expected": (expected, 0),
    "quantile": (quantile, 1),
    "cvar": (cvar, 1),
    "mean_std": (mean_std, 1),
}


def parse_objective(spec: str | Objective) -> Objective:
    """An objective from its spec: ``expected``, ``quantile:0.9``, ``cvar:0.9`` or ``mean_std:1``.

    A callable is returned as it is (it must map loss draws on the last axis to values).
    """
    if callable(spec):
        return spec
    if not isinstance(spec, str):
        raise FitError(f"objective must be a string such as 'cvar:0.9'; got {spec!r}")
    name, _, arg = spec.strip().lower().partition(":")
    if name not in _FACTORIES:
        raise FitError(
            f"unknown objective {spec!r}; use expected, quantile:Q, cvar:Q (0 < Q < 1) "
            "or mean_std:LAMBDA"
        )
    factory, n_args = _FACTORIES[name]
    if n_args == 0:
        if arg:
            raise FitError(f"objective 'expected' takes no argument; got {spec!r}")
        return factory()
    try:
        value = float(arg)
    except ValueError:
        raise FitError(
            f"objective {spec!r} needs a number after the colon, e.g. '{name}:0.9'"
        ) from None
    return factory(value)


def spec_of(obj: Objective) -> str:
    """The spec an objective was made from (its name for other callables)."""
    return getattr(obj, "spec", getattr(obj, "__name__", "custom"))
