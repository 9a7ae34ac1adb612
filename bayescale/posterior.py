r"""The posterior of a scaling law as everything after the fit reads it: :class:`Posterior`.

A :class:`Posterior` holds S draws: the law's parameters in natural units, the noise of a run on
log loss and the training domain of the data. :meth:`bayescale.ScalingFit.posterior` builds one
from the sampler's draws, :meth:`bayescale.baselines.LSQFit.posterior` from bootstrap refits, and
:meth:`Posterior.from_draws` from any draws; :func:`Posterior.mixture` pools posteriors of
different laws into one. :func:`bayescale.predict.predict`, the allocation, decision and
value-of-experiment functions, the plots and the report all take one (or anything with a
``posterior`` attribute: a fit).

Noise of a new run
------------------
A new training run at inputs x has log loss :math:`\log L_s(x) + \varepsilon_s` for draw s, with

.. math::
    \varepsilon_s \sim t_{\nu_s}\big(0, \sqrt{\sigma_s^2 + \sigma_{fit,s}^2}\big)

(:math:`\nu_s = \infty`: Gaussian). ``sigma`` is the seed-to-seed noise; ``sigma_fit``, present
when repeated runs were modelled, the scale of a configuration's own deviation from the law,
which a run at a configuration not yet seen also carries. :meth:`Posterior.noise` is the one
sampler of :math:`\varepsilon`.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bayescale._jax import jax, scoped
from bayescale.errors import FitError
from bayescale.laws import Law, fixed_input, get_law, mixture_law

__all__ = ["Posterior", "Domain", "as_posterior"]

#: A new run's log-loss noise is clipped to +-this many nats (a factor e^100 on the loss). Only a
#: Student-t with nu near or below 1 draws that far (nu = 2 at a noise scale of 0.04, the
#: largest of the bundled fits: about one draw in six million); unclipped, exp() of such a draw
#: overflows to inf and the densities computed from the loss draws become nan.
NOISE_CAP = 100.0


@dataclass(frozen=True)
class Domain:
    """Where the training runs lie: the (smallest, largest) value of each input.

    Attributes
    ----------
    ranges : mapping
        Input name -> ``(lo, hi)``: ``N`` (parameters), ``D`` (tokens), ``C`` (FLOPs) for laws
        in N and D; ``x`` for one-variable laws.
    """

    ranges: Mapping[str, tuple[float, float]]

    def __post_init__(self):
        clean = {}
        for name, pair in self.ranges.items():
            lo, hi = (float(v) for v in pair)
            if not (0 < lo <= hi < math.inf):
                raise FitError(f"domain of {name!r} must be 0 < lo <= hi; got {pair!r}")
            clean[str(name)] = (lo, hi)
        object.__setattr__(self, "ranges", clean)

    @classmethod
    def from_data(cls, data) -> Domain:
        """The ranges of a :class:`~bayescale.ScalingData`'s N, D, C, x, U and epochs D/U (those
        it has)."""
        return cls({k: (float(np.min(v)), float(np.max(v)))
                    for k in ("N", "D", "C", "x", "U", "epochs")
                    if (v := getattr(data, k)) is not None})

    @classmethod
    def from_arrays(cls, **arrays) -> Domain:
        """The ranges of the arrays given, e.g. ``Domain.from_arrays(N=N, D=D, C=6 * N * D)``."""
        return cls({k: (float(np.min(v)), float(np.max(v))) for k, v in arrays.items()
                    if v is not None})

    def distance(self, **inputs) -> np.ndarray:
        """Decades beyond the domain: for each point, the largest over the inputs given of
        :math:`\max(0, \log_{10}(v/hi), \log_{10}(lo/v))` (0 inside). Inputs the domain lacks
        are ignored; arrays broadcast."""
        return self._decades(inputs, below=True)

    def above(self, **inputs) -> np.ndarray:
        r"""Decades above the domain: the largest over the inputs given of
        :math:`\max(0, \log_{10}(v/hi))` (0 inside and below it)."""
        return self._decades(inputs, below=False)

    def _decades(self, inputs, *, below: bool) -> np.ndarray:
        out = 0.0
        for name, v in inputs.items():
            if name not in self.ranges or v is None:
                continue
            lo, hi = self.ranges[name]
            logv = np.log10(np.asarray(v, dtype=float))
            out = np.maximum(out, logv - np.log10(hi))
            if below:
                out = np.maximum(out, np.log10(lo) - logv)
        return np.maximum(out, 0.0)

    def union(self, other: Domain) -> Domain:
        """The smallest domain holding both (inputs of either)."""
        out = dict(self.ranges)
        for k, (lo, hi) in other.ranges.items():
            a, b = out.get(k, (lo, hi))
            out[k] = (min(a, lo), max(b, hi))
        return Domain(out)


def _draws_array(name: str, value, size: int | None) -> np.ndarray:
    arr = np.asarray(value, dtype=float)
    if arr.ndim > 1:
        raise FitError(f"{name} must be a number or a 1-d array of draws; got shape {arr.shape}")
    arr = np.atleast_1d(arr)
    if size is not None and arr.size not in (1, size):
        raise FitError(f"{name} must be a number or {size} draws (one per posterior draw); got "
                       f"{arr.size}")
    return np.array(np.broadcast_to(arr, (size or arr.size,)))


@dataclass(frozen=True, eq=False)
class Posterior:
    """S posterior draws of a scaling law, its noise and where its data lie.

    Attributes
    ----------
    law : Law
        The law (a name is looked up with :func:`bayescale.get_law`).
    params : mapping
        Parameter name -> (S,) draws in natural units (E in nats, N in parameters, ...).
    sigma : numpy.ndarray
        (S,) scale of the seed-to-seed noise on log loss (nats); a number is broadcast.
    nu : numpy.ndarray
        (S,) Student-t degrees of freedom of the noise; ``inf`` (or None) for Gaussian noise.
    sigma_fit : numpy.ndarray or None
        (S,) scale of a configuration's deviation from the law when repeated runs were
        modelled; None otherwise.
    flops_per_param_token : float
        k in C = k N D (6 for dense transformers).
    shape : (int, int)
        (chains, draws per chain) with chains * draws = S; default (1, S).
    domain : Domain or None
        Ranges of the training data (None when unknown).
    form_slopes : numpy.ndarray or None
        (S, K) draws of the law's form error per decade beyond the domain along each of
        ``form_directions`` (log loss; :mod:`bayescale.extrapolation`); None: the law's form is
        taken as exact.
    form_scatter : numpy.ndarray or None
        (S,) per-decade scale of the form error's part that differs from run to run.
    form_directions : tuple of str
        The inputs the slopes follow: ``("N", "D", "C")`` or ``("x",)``.

    Every field is checked once, here: parameters of the law all present, finite, one length S;
    sigma finite and >= 0; nu > 0; form error (S, K) with a domain to measure distance from.
    """

    law: Law
    params: Mapping[str, np.ndarray]
    sigma: np.ndarray
    nu: np.ndarray | None = None
    sigma_fit: np.ndarray | None = None
    flops_per_param_token: float = 6.0
    shape: tuple[int, int] | None = None
    domain: Domain | None = field(default=None, repr=False)
    form_slopes: np.ndarray | None = field(default=None, repr=False)
    form_scatter: np.ndarray | None = field(default=None, repr=False)
    form_directions: tuple[str, ...] = ()

    def __post_init__(self):
        law = get_law(self.law)
        missing = [p for p in law.params if p not in self.params]
        if missing:
            raise FitError(f"draws of law {law.name!r} are missing {', '.join(missing)}; give "
                           f"all of {', '.join(law.params)}")
        arrays = {p: np.atleast_1d(np.asarray(self.params[p], dtype=float)) for p in law.params}
        shapes = {p: a.shape for p, a in arrays.items()}
        if any(a.ndim != 1 for a in arrays.values()) or next(iter(shapes.values())) == (0,):
            raise FitError(f"parameter draws must be 1-d arrays of S >= 1 draws; got shapes "
                           f"{shapes}")
        if len(set(shapes.values())) != 1:
            raise FitError(f"parameter draws differ in length: {shapes}; pass S draws of each")
        nonfinite = [p for p, a in arrays.items() if not np.all(np.isfinite(a))]
        if nonfinite:
            raise FitError(f"draws of {', '.join(nonfinite)} contain NaN or infinity; drop "
                           "those draws first")
        size = next(iter(arrays.values())).size
        sigma = _draws_array("sigma", self.sigma, size)
        if not np.all(np.isfinite(sigma) & (sigma >= 0)):
            raise FitError("noise sigma must be finite and >= 0 (nats of log loss)")
        nu = _draws_array("nu", np.inf if self.nu is None else self.nu, size)
        if np.any(np.isnan(nu) | (nu <= 0)):
            raise FitError("noise nu must be > 0 (Student-t degrees of freedom), or None/inf "
                           "for Gaussian noise")
        sigma_fit = None
        if self.sigma_fit is not None:
            sigma_fit = _draws_array("sigma_fit", self.sigma_fit, size)
            if not np.all(np.isfinite(sigma_fit) & (sigma_fit >= 0)):
                raise FitError("sigma_fit must be finite and >= 0 (nats of log loss)")
        k = self.flops_per_param_token
        if not (isinstance(k, (int, float, np.number)) and math.isfinite(k) and k > 0):
            raise FitError(f"flops_per_param_token must be a positive number; got {k!r}")
        shape = (1, size) if self.shape is None else tuple(int(v) for v in self.shape)
        if len(shape) != 2 or shape[0] * shape[1] != size:
            raise FitError(f"shape must be (chains, draws) with chains * draws = {size}; got "
                           f"{self.shape!r}")
        if self.domain is not None and not isinstance(self.domain, Domain):
            raise FitError(f"domain must be a bayescale Domain; got {type(self.domain).__name__}")
        slopes, scatter, dirs = None, None, tuple(self.form_directions)
        if self.form_slopes is not None:
            slopes = np.asarray(self.form_slopes, dtype=float)
            if slopes.shape != (size, len(dirs)) or not dirs:
                raise FitError(f"form_slopes must be (draws, directions) = ({size}, "
                               f"{len(dirs)}); got {slopes.shape}")
            scatter = _draws_array("form_scatter", 0.0 if self.form_scatter is None
                                   else self.form_scatter, size)
            if not (np.all(np.isfinite(slopes)) and np.all(np.isfinite(scatter) & (scatter >= 0))):
                raise FitError("the form error's draws must be finite (scatter >= 0)")
            allowed = (("N", "D", "C", "U", "epochs") if law.inputs[:2] == ("N", "D")
                       else law.inputs)
            if self.domain is None or any(d not in allowed or d not in self.domain.ranges
                                          for d in dirs):
                raise FitError(f"a form error needs a domain with its directions {dirs}; law "
                               f"{law.name!r} allows {allowed}")
        object.__setattr__(self, "form_slopes", slopes)
        object.__setattr__(self, "form_scatter", scatter)
        object.__setattr__(self, "form_directions", dirs)
        for name, value in (("law", law), ("params", arrays), ("sigma", sigma), ("nu", nu),
                            ("sigma_fit", sigma_fit), ("flops_per_param_token", float(k)),
                            ("shape", shape)):
            object.__setattr__(self, name, value)

    # ---------------------------------------------------------------- construction
    @classmethod
    def from_draws(cls, law: str | Law, params: Mapping[str, Any],
                   noise: Mapping[str, Any] | None = None, *,
                   flops_per_param_token: float = 6.0, domain: Domain | None = None,
                   shape: tuple[int, int] | None = None) -> Posterior:
        """A posterior from loose draws: ``params`` (name -> S draws) and ``noise``
        (``{"sigma": ..., "nu": ..., "sigma_fit": ...}``, each a number or S draws; ``nu``
        None for Gaussian noise; ``noise=None`` for none at all)."""
        noise = {"sigma": 0.0} if noise is None else noise
        if not isinstance(noise, Mapping) or "sigma" not in noise:
            raise FitError("noise must be a mapping with 'sigma' (scale of the noise on log "
                           "loss) and optionally 'nu' (Student-t degrees of freedom; None for "
                           "Gaussian) and 'sigma_fit'")
        unknown = set(noise) - {"sigma", "nu", "sigma_fit"}
        if unknown:
            raise FitError(f"unknown noise entries {sorted(unknown)}; give sigma, nu, sigma_fit")
        return cls(law=get_law(law), params=params, sigma=noise.get("sigma", 0.0),
                   nu=noise.get("nu"), sigma_fit=noise.get("sigma_fit"),
                   flops_per_param_token=flops_per_param_token, domain=domain, shape=shape)

    @classmethod
    def mixture(cls, posteriors: Sequence[Posterior], weights: Sequence[float] | None = None, *,
                size: int | None = None, seed: int = 0) -> Posterior:
        r"""A weighted mixture of posteriors, possibly of different laws, as one Posterior.

        Component i contributes :math:`\mathrm{round}(w_i S)` draws (largest remainders, so they
        add up to S; drawn without replacement where it has that many), labelled by the
        parameter ``component``; its law's parameters are named ``"i:name"``
        (:func:`bayescale.laws.mixture_law`). Every question then has the mixture's answer:
        a prediction's draws are the components' draws in those proportions. The laws must
        share their inputs and the posteriors their FLOPs per parameter-token; the domain is
        the union of theirs.

        Parameters
        ----------
        posteriors : sequence of Posterior (or fits)
        weights : sequence of float, optional
            Non-negative, not all zero; normalised. Default equal.
        size : int, optional
            S, the number of draws; default the largest component's.
        seed : int
            Seed of the choice of each component's draws.
        """
        parts = [as_posterior(p) for p in posteriors]
        if not parts:
            raise FitError("a mixture needs at least one posterior")
        w = np.ones(len(parts)) if weights is None else np.asarray(weights, dtype=float)
        if w.shape != (len(parts),) or not np.all(np.isfinite(w) & (w >= 0)) or w.sum() <= 0:
            raise FitError(f"weights must be {len(parts)} non-negative numbers, not all zero; "
                           f"got {weights!r}")
        ks = {p.flops_per_param_token for p in parts}
        if len(ks) > 1:
            raise FitError(f"the posteriors use different FLOPs per parameter-token {sorted(ks)}")
        size = max(p.size for p in parts) if size is None else int(size)
        if size < 1:
            raise FitError(f"size must be >= 1; got {size}")
        w = w / w.sum()
        counts = np.floor(w * size).astype(int)
        order = np.argsort(-(w * size - counts), kind="stable")
        counts[order[:size - counts.sum()]] += 1
        law = mixture_law([p.law for p in parts])
        rng = np.random.default_rng(seed)
        picks = [rng.choice(p.size, n, replace=n > p.size) for p, n in zip(parts, counts)]
        component = np.concatenate([np.full(n, float(i)) for i, n in enumerate(counts)])
        params = {"component": component}
        for i, part in enumerate(parts):
            for name, draws in part.params.items():
                # Other components' rows hold this component's first draw: a valid value the
                # mixture law evaluates and discards (no NaN that a gradient could carry).
                params[f"{i}:{name}"] = np.concatenate(
                    [draws[pick] if j == i else np.full(n, draws[0])
                     for j, (pick, n) in enumerate(zip(picks, counts))])

        def pooled(get, fill):
            return np.concatenate([get(p)[pick] if get(p) is not None else np.full(n, fill)
                                   for p, pick, n in zip(parts, picks, counts)])

        with_fit = any(p.sigma_fit is not None for p in parts)
        domains = [p.domain for p in parts if p.domain is not None]
        domain = functools.reduce(Domain.union, domains) if domains else None
        form = {}
        dirs = {p.form_directions for p in parts}
        if all(p.form_slopes is not None for p in parts) and len(dirs) == 1:
            # each draw keeps its component's form error, measured from its own data
            form = dict(form_slopes=np.concatenate([p.form_slopes[pick] for p, pick in
                                                    zip(parts, picks)]),
                        form_scatter=pooled(lambda p: p.form_scatter, 0.0),
                        form_directions=dirs.pop())
        return cls(law=law, params=params, sigma=pooled(lambda p: p.sigma, 0.0),
                   nu=pooled(lambda p: p.nu, np.inf),
                   sigma_fit=pooled(lambda p: p.sigma_fit, 0.0) if with_fit else None,
                   flops_per_param_token=ks.pop(), domain=domain, **form)

    # ---------------------------------------------------------------- views
    @property
    def size(self) -> int:
        """S, the number of draws."""
        return self.sigma.shape[0]

    @property
    def new_run_sigma(self) -> np.ndarray:
        """(S,) scale of a new run's noise: :math:`\\sqrt{\\sigma^2 + \\sigma_{fit}^2}`."""
        if self.sigma_fit is None:
            return self.sigma
        return np.sqrt(self.sigma**2 + self.sigma_fit**2)

    def draws(self, name: str) -> np.ndarray:
        """(S,) draws of a parameter or of ``sigma``, ``nu``, ``sigma_fit``."""
        if name in self.params:
            return self.params[name]
        if name in ("sigma", "nu") or (name == "sigma_fit" and self.sigma_fit is not None):
            return getattr(self, name)
        raise FitError(f"no quantity {name!r} in this posterior; have "
                       f"{', '.join([*self.params, 'sigma', 'nu'])}")

    def at_unique_tokens(self, U: float) -> Posterior:
        """The data-constrained law's posterior with U unique tokens held fixed: a posterior of
        a law in N and D (:func:`bayescale.laws.fixed_input`), for allocations and decisions
        with a data budget."""
        if "U" not in self.law.inputs:
            raise FitError(f"law {self.law.name!r} has no unique-token input U; fit "
                           "law='data_constrained' to use unique_tokens")
        return dataclasses.replace(self, law=fixed_input(self.law, "U", U))

    def without_form_error(self) -> Posterior:
        """The same draws with the law's form taken as exact (no form error)."""
        return dataclasses.replace(self, form_slopes=None, form_scatter=None, form_directions=())

    def median(self) -> Posterior:
        """One draw: the posterior median of every parameter and of the noise (the plug-in; no
        form error)."""
        keep = lambda v: None if v is None else np.median(v, keepdims=True)  # noqa: E731
        return Posterior(law=self.law, params={k: keep(v) for k, v in self.params.items()},
                         sigma=keep(self.sigma), nu=keep(self.nu), sigma_fit=keep(self.sigma_fit),
                         flops_per_param_token=self.flops_per_param_token, domain=self.domain)

    # ---------------------------------------------------------------- the law and its noise
    def log_law(self, *log_inputs, params: Mapping[str, Any] | None = None) -> np.ndarray:
        """Natural log of the law's loss, as a NumPy array.

        ``log_inputs`` are the logs of the law's inputs in order (log N, log D; or log x).
        They broadcast against the (S,) draws on the last axis: ``log_law(log_N[:, None],
        log_D[:, None])`` is (P, S). ``params`` replaces the draws (e.g. reshaped to (S, 1) to
        put the draws first).
        """
        if len(log_inputs) != len(self.law.inputs):
            raise FitError(f"law {self.law.name!r} takes inputs {self.law.inputs}; got "
                           f"{len(log_inputs)}")
        p = self.params if params is None else params
        return _log_law(self.law, log_inputs, [p[k] for k in self.law.params])

    def law_draws(self, inputs: Mapping[str, Any]) -> np.ndarray:
        """The law's loss (nats) per draw at P points ``inputs`` (name -> (P,) natural units),
        shape (S, P)."""
        logs = [np.log(np.asarray(inputs[i], dtype=float))[None, :] for i in self.law.inputs]
        col = {k: v[:, None] for k, v in self.params.items()}
        return np.exp(self.log_law(*logs, params=col))

    def noise(self, rng: np.random.Generator, idx=None, shape: tuple[int, ...] = ()) -> np.ndarray:
        """The log-loss noise of new runs: one draw per posterior draw in ``idx`` (all by
        default) and per element of ``shape``; returns an array of shape ``idx.shape + shape``.

        Normals first, then Student-t draws for the draws with finite ``nu``, from ``rng``;
        clipped to +-:data:`NOISE_CAP`.
        """
        scale, nu = self.new_run_sigma, self.nu
        if idx is not None:
            idx = np.asarray(idx)
            scale, nu = scale[idx], nu[idx]
        full = scale.shape + tuple(shape)
        column = (slice(None),) + (None,) * len(shape)
        z = rng.standard_normal(full)
        heavy = np.isfinite(nu)
        if heavy.all():
            z = rng.standard_t(nu[column], size=full)
        elif heavy.any():
            z[heavy] = rng.standard_t(nu[heavy][column], size=(int(heavy.sum()), *shape))
        return np.clip(scale[column] * z, -NOISE_CAP, NOISE_CAP)

    def distances(self, inputs: Mapping[str, Any], *, above: bool = False
                  ) -> dict[str, np.ndarray]:
        """Decades beyond the training domain along each input of ``inputs`` (natural units;
        ``C`` is added as k N D when N and D are given), and ``"max"``, the largest of them;
        ``above``: only above the domain's largest values (below its smallest, 0)."""
        if self.domain is None:
            raise FitError("this posterior has no training domain to measure distance from")
        values = {k: np.asarray(v, dtype=float) for k, v in {**dict(self.law.fixed), **inputs}.items()}
        if "N" in values and "D" in values and "C" not in values:
            values["C"] = self.flops_per_param_token * values["N"] * values["D"]
        if "D" in values and "U" in values and "epochs" not in values:
            values["epochs"] = values["D"] / values["U"]
        measure = self.domain.above if above else self.domain.distance
        out = {k: measure(**{k: v}) for k, v in values.items() if k in self.domain.ranges}
        out["max"] = functools.reduce(np.maximum, out.values(), 0.0)
        return out

    def form_offset(self, inputs: Mapping[str, Any], eta=None) -> np.ndarray | float:
        r"""The law's form error on log loss at ``inputs``, per draw:
        :math:`\sum_k b_{sk} r_k(x) + \tau_s r(x) \eta` with :math:`b` the slopes,
        :math:`r_k` the decades beyond the domain along input k, :math:`r` the largest, and
        :math:`\tau` the scatter. Inputs broadcast against the draws on the last axis;
        ``eta`` (standard normals, broadcasting the same way) draws the part that differs
        from run to run, None leaves it out. 0 without a form error.

        The slopes act above the data only (:math:`r_k` counts decades above the domain's
        largest value): they are learned from refits that predict upward, and say nothing of
        the law's error below the smallest runs, where only the run-to-run part's spread
        grows with the distance (:math:`r` counts decades outside the domain either way)."""
        if self.form_slopes is None:
            return 0.0
        up = self.distances(inputs, above=True)
        out = sum(up[k] * self.form_slopes[:, i] for i, k in enumerate(self.form_directions))
        if eta is not None:
            out = out + self.form_scatter * self.distances(inputs)["max"] * eta
        return out

    def log_lik(self, resid, extra_sd=None) -> np.ndarray:
        """Log density (nats of log loss) of residuals ``y - log L`` under a new run's noise,
        broadcast against the draws on the last axis. ``extra_sd`` (per draw): a normal error
        added to the noise, taken as a Student-t of the draw's nu whose scale adds the two in
        quadrature (exact for normal noise, close for Student-t noise, whose tails it keeps)."""
        from scipy import stats

        scale = self.new_run_sigma if extra_sd is None else np.hypot(self.new_run_sigma,
                                                                      extra_sd)
        return stats.t.logpdf(resid, df=self.nu, scale=scale)


def as_posterior(obj) -> Posterior:
    """``obj`` if it is a :class:`Posterior`, else its ``posterior`` (a fit, a least-squares
    fit); a FitError for anything else."""
    if isinstance(obj, Posterior):
        return obj
    post = getattr(obj, "posterior", None)
    if isinstance(post, Posterior):
        return post
    raise FitError(f"expected a Posterior or a fit (ScalingFit, LSQFit); got "
                   f"{type(obj).__name__}. Build draws into one with Posterior.from_draws("
                   "law, params, noise)")


@scoped
def _log_law(law: Law, log_inputs, values) -> np.ndarray:
    """``law``'s log loss as a NumPy array, all arguments broadcast together.

    The callers' solvers shrink their arrays as elements converge; evaluating the law eagerly on
    each new shape would make JAX compile anew every time. So the law is jitted once and arrays
    are flattened and padded to a power-of-two length, which leaves a handful of shapes to
    compile.
    """
    arrays = np.broadcast_arrays(*(np.asarray(a, dtype=float) for a in (*log_inputs, *values)))
    shape, m = arrays[0].shape, arrays[0].size
    size = max(64, 1 << (m - 1).bit_length())
    flat = [np.pad(a.reshape(-1), (0, size - m), mode="edge") for a in arrays]
    out = _jitted(law.fn, len(log_inputs), law.params)(*flat)
    return np.asarray(out)[:m].reshape(shape)


@functools.lru_cache(maxsize=64)
def _jitted(fn, n_inputs: int, names: tuple[str, ...]):
    return jax.jit(lambda *a: fn(*a[:n_inputs], **dict(zip(names, a[n_inputs:]))))
