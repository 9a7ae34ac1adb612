r"""NumPyro models: a scaling law plus an explicit noise term on log loss.

One generic function places the sample sites (:func:`scaling_model`); :data:`MODELS` holds a thin
model per law. What :func:`bayescale.fit` and :func:`bayescale.fit_many` actually sample is built
here too: :func:`build_model` turns a data set, a law and the options into a
:class:`BuiltModel` (the :class:`ScalingModel` to sample and its arguments), and
:class:`HierarchicalModel` joins the groups of :func:`bayescale.fit_many` with shared exponents.
Observations are log losses :math:`y_i = \log L_i`:

* no repeated runs: :math:`y_i \sim \mathrm{StudentT}(\nu, \log L(N_i, D_i), \sigma)` (the robust
  default, the Bayesian counterpart of the Huber loss) or :math:`\mathrm{Normal}(\log L, \sigma)`;
* repeated runs of a configuration (same inputs, several seeds): a Gaussian configuration
  effect :math:`\delta_c \sim N(0, \sigma_{fit}^2)` absorbs the law's misfit and
  :math:`y_i \sim N(\log L + \delta_{c(i)}, \sigma^2)`, so :math:`\sigma` is the seed-to-seed
  noise learned from the repeats. The effects are integrated out exactly
  (:func:`config_log_likelihood`); the log likelihood is then one term per configuration.

Law parameters are sampled at the reference point of the data (``A_ref`` ...) and recorded in natural
units as deterministic sites (``A``, ``B``, ``N_c`` ...) with the names every output uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import numpyro
import numpyro.distributions as dist

from bayescale._jax import jnp
from bayescale.errors import FitError
from bayescale.laws import LAWS, Law

__all__ = ["scaling_model", "observe_repeats", "repeats_note", "config_log_likelihood", "MODELS",
           "OBS_SITE", "CONFIG_FACTOR", "ScalingModel", "BuiltModel", "build_model",
           "HierarchicalModel", "simulation_args", "shared_exponents"]

#: Name of the observed site: the natural log of the loss.
OBS_SITE = "log_loss"
#: Name of the factor holding the likelihood of repeated runs (configuration effects integrated out).
CONFIG_FACTOR = "log_loss_by_config"


def scaling_model(log_inputs: Mapping[str, Any], y=None, *, law: Law, priors: Mapping[str, Any],
                  log_ref: Mapping[str, float], config=None, n_config: int = 0, mask=None):
    """Place the sites of ``law`` with its noise term; ``y`` (log losses) None to predict.

    Parameters
    ----------
    log_inputs: natural log of each input of the law, e.g. ``{"N": log N, "D": log D}``.
    y: observed log losses, or None.
    law: the law; priors: a prior per site (see :mod:`bayescale.priors`).
    log_ref: reference point (mean log input) of the amplitude parameterisation.
    config, n_config: configuration index of each row when runs are repeated, else None.
    mask: False for padding rows (data sets padded to a common length by
        :func:`bayescale.fit_many`), which then add nothing to the likelihood; None for none.
        With repeated runs, padding rows need configuration indices of their own.
    """
    sampled = {site: numpyro.sample(site, priors[site]) for site in law.sampled}
    params = law.from_sampled(sampled, log_ref)
    for name in law.params:
        if name not in sampled:
            numpyro.deterministic(name, params[name])
    mu = law.log_loss(params, log_inputs)
    sigma = numpyro.sample("sigma", priors["sigma"])
    nu = degrees_of_freedom(priors.get("nu"))
    if config is None:
        observe(mu, sigma, nu, y, mask)
        return
    sigma_fit = numpyro.sample("sigma_fit", priors["sigma_fit"])
    observe_repeats(mu, sigma, sigma_fit, y, config, n_config, mask)


def degrees_of_freedom(prior):
    """The Student-t noise's degrees of freedom: None for normal noise, a fixed number, or the
    site ``nu`` drawn from ``prior``."""
    if prior is None or isinstance(prior, float):
        return prior
    return numpyro.sample("nu", prior)


def observe(mu, sigma, nu, y=None, mask=None, *, n_groups: int = 0):
    """The observed site: log losses around the law's ``mu`` with normal (``nu`` None) or
    Student-t noise of scale ``sigma``; padding rows (``mask`` False) add nothing.

    ``mu`` is (runs,), or (groups, runs) with ``n_groups`` groups, each with its own scale.
    """
    noise = dist.Normal(mu, sigma) if nu is None else _StudentT(nu, mu, sigma)
    with contextlib.ExitStack() as stack:
        stack.enter_context(numpyro.plate("runs", mu.shape[-1], dim=-1))
        if n_groups:
            stack.enter_context(numpyro.plate("groups_runs", n_groups, dim=-2))
        stack.enter_context(numpyro.handlers.mask(mask=True if mask is None else mask))
        numpyro.sample(OBS_SITE, noise, obs=y)


def observe_repeats(mu, sigma, sigma_fit, y, config, n_config: int, mask=None):
    """Repeated runs: each configuration's Gaussian effect (scale ``sigma_fit``) and the runs'
    noise (scale ``sigma``). Fitting (``y`` given) integrates the effects out, one factor term
    per configuration (:func:`config_log_likelihood`); simulating (``y`` None) draws a new effect
    per configuration, then one run per row.

    ``mu``, ``y``, ``config`` and ``mask`` are (runs,), or (groups, runs) with ``sigma`` and
    ``sigma_fit`` of shape (groups,). Padding rows (``mask`` False) must carry configuration
    indices of their own, with no real row: those configurations' terms are zeroed.
    """
    import jax

    grouped = mu.ndim == 2
    if y is None:
        def plates(name, size):
            stack = contextlib.ExitStack()
            stack.enter_context(numpyro.plate(name, size, dim=-1))
            if grouped:
                stack.enter_context(numpyro.plate(f"groups_{name}", mu.shape[0], dim=-2))
            return stack

        with plates("configs", n_config):
            delta = numpyro.sample("delta_config",
                                   dist.Normal(0.0, sigma_fit[:, None] if grouped else sigma_fit))
        with plates("runs", mu.shape[-1]):
            numpyro.sample(OBS_SITE, dist.Normal(mu + jnp.take_along_axis(delta, config, axis=-1),
                                                 sigma[:, None] if grouped else sigma))
        return
    def terms_of(y_, mu_, config_, sigma_, sigma_fit_):
        return config_log_likelihood(y_, mu_, config_, n_config, sigma=sigma_, sigma_fit=sigma_fit_)

    def real_of(mask_, config_):  # configurations with at least one real row
        return jax.ops.segment_sum(mask_, config_, num_segments=n_config) > 0

    terms = (jax.vmap(terms_of) if grouped else terms_of)(y, mu, config, sigma, sigma_fit)
    if mask is not None:
        real = (jax.vmap(real_of) if grouped else real_of)(mask.astype(mu.dtype), config)
        terms = jnp.where(real, terms, 0.0)
    numpyro.factor(CONFIG_FACTOR, terms)


class _StudentT(dist.StudentT):
    """NumPyro's Student-t, sampled from normals when its degrees of freedom are a fixed whole
    number (the default 2): :math:`t = z / \\sqrt{\\chi^2_\\nu / \\nu}` with the chi-square a
    sum of squared normals, exact and 40x faster on a CPU than JAX's gamma sampler."""

    def __init__(self, df, loc=0.0, scale=1.0, *, validate_args=None):
        super().__init__(df, loc, scale, validate_args=validate_args)
        self._whole_df = (int(df) if isinstance(df, (int, float)) and float(df).is_integer()
                          and 1 <= df <= 30 else None)

    def sample(self, key, sample_shape=()):
        whole = getattr(self, "_whole_df", None)
        if whole is None:
            return super().sample(key, sample_shape)
        import jax

        shape = tuple(sample_shape) + self.batch_shape + self.event_shape
        k_z, k_chi = jax.random.split(key)
        z = jax.random.normal(k_z, shape)
        chi2 = jnp.sum(jax.random.normal(k_chi, shape + (whole,)) ** 2, axis=-1)
        return self.loc + self.scale * z / jnp.sqrt(chi2 / whole)


def config_log_likelihood(y, mu, config, n_config: int, *, sigma, sigma_fit):
    r"""Log likelihood of each configuration's runs with its Gaussian effect integrated out.

    For the :math:`n_c` rows of configuration :math:`c` with
    :math:`y_{ci} = \mu_{ci} + \delta_c + \epsilon_{ci}`, :math:`\delta_c \sim N(0, \tau^2)`,
    :math:`\epsilon \sim N(0, \sigma^2)`, in the residuals :math:`r = y - \mu` (mean
    :math:`\bar r_c`, within sum of squares :math:`S_c`):

    .. math::
        \log p_c = -\tfrac{n_c}{2}\log 2\pi - (n_c - 1)\log\sigma
        - \tfrac12\log(\sigma^2 + n_c\tau^2) - \frac{S_c}{2\sigma^2}
        - \frac{n_c \bar r_c^2}{2(\sigma^2 + n_c\tau^2)}

    Repeated runs share one :math:`\mu_c`; checkpoints of one run (a configuration per run)
    or the runs of a task's accuracy model (:mod:`bayescale.tasks`) differ in :math:`\mu`.
    Returns an array of shape (n_config,).
    """
    import jax

    seg = partial(jax.ops.segment_sum, segment_ids=config, num_segments=n_config)
    n = jnp.maximum(seg(jnp.ones_like(y)), 1.0)  # an index no row uses: a finite 0 term
    r = y - mu
    rbar = seg(r) / n
    ss = seg((r - jnp.take(rbar, config)) ** 2)
    var = sigma**2 + n * sigma_fit**2
    return (-0.5 * n * jnp.log(2 * jnp.pi) - (n - 1) * jnp.log(sigma) - 0.5 * jnp.log(var)
            - ss / (2 * sigma**2) - n * rbar ** 2 / (2 * var))


#: A thin model per law: ``MODELS["chinchilla"](log_inputs, y, priors=..., log_ref=...)``.
MODELS = {name: partial(scaling_model, law=law) for name, law in LAWS.items()}


# ------------------------------------------------------------------------------ what fit samples
@dataclass(frozen=True, eq=False)
class ScalingModel:
    """The NumPyro model of one law, noise and data layout.

    The prior parameters and the data are arguments, so fits of same-shaped data share one
    compiled program; ``key`` names everything else the traced program depends on.

    Attributes
    ----------
    law : Law
    noise : str
        ``"student_t"`` or ``"normal"``.
    fixed : mapping
        Priors fixed to a number (``nu``).
    families : mapping
        Site -> (distribution name, names of its parameters) of every other prior.
    n_config : int
        Configurations of repeated runs (0: no repeats modelled).
    """

    law: Law
    noise: str
    fixed: Mapping[str, float]
    families: Mapping[str, tuple[str, tuple[str, ...]]]
    n_config: int = 0

    @property
    def key(self) -> tuple:
        return ("scaling_model/2", self.law.name, self.noise, self.n_config,
                tuple(sorted(self.fixed.items())), tuple(self.families.items()))

    def priors(self, params: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
        """The prior of every site from its parameters (arrays: a batch of groups)."""
        out = {k: getattr(dist, family)(**params[k]) for k, (family, _) in self.families.items()}
        return {**out, **self.fixed}

    def __call__(self, log_inputs, y=None, prior_params=None, log_ref=None, config=None,
                 mask=None):
        scaling_model(log_inputs, y, law=self.law, priors=self.priors(prior_params),
                      log_ref=log_ref, config=config, n_config=self.n_config, mask=mask)


@dataclass(frozen=True, eq=False)
class BuiltModel:
    """A :class:`ScalingModel` with the arguments that fit it to one data set.

    Attributes
    ----------
    model : ScalingModel
    priors : mapping
        The resolved priors by site (defaults scaled to the data, overrides applied).
    repeats : bool
        Whether repeated runs are modelled.
    log_inputs : mapping
        Natural log of each input of the law per run.
    y : numpy.ndarray
        Log losses of the runs.
    prior_params : mapping
        Site -> parameters of its prior, as arrays (the program's arguments).
    log_ref : mapping
        Reference point (mean log input) of the amplitudes.
    config : numpy.ndarray or None
        Configuration index per run when repeats are modelled.
    """

    model: ScalingModel
    priors: Mapping[str, Any] = field(repr=False)
    repeats: bool
    log_inputs: Mapping[str, np.ndarray] = field(repr=False)
    y: np.ndarray = field(repr=False)
    prior_params: Mapping[str, Mapping[str, np.ndarray]] = field(repr=False)
    log_ref: Mapping[str, np.ndarray] = field(repr=False)
    config: np.ndarray | None = field(default=None, repr=False)

    def args(self, y: Any = "data") -> tuple:
        """The model's arguments ``(log_inputs, y, prior_params, log_ref, config, mask)``;
        ``y=None`` simulates the runs instead of observing them."""
        return (self.log_inputs, self.y if isinstance(y, str) else y, self.prior_params,
                self.log_ref, self.config, None)


def check_repeats(repeats):
    """``repeats`` itself, once it is one of "auto", True or False."""
    if not (repeats == "auto" or isinstance(repeats, (bool, np.bool_))):
        raise FitError(f"repeats must be 'auto', True or False, got {repeats!r}")
    return repeats


#: With fewer repeated configurations than this, ``repeats="auto"`` says what it gives up.
FEW_REPEATED = 3


def repeats_note(groups, law: Law, noise: str) -> str | None:
    """What ``repeats="auto"`` gives up when a few repeated configurations switch the model.

    ``groups`` maps names to data sets: one for :func:`bayescale.fit`, the groups of
    :func:`bayescale.fit_many` (of a hierarchical one, one repeated configuration in any
    group switches them all). The repeated-run model integrates out Gaussian configuration
    effects, so the law's misfit is Gaussian there: the Student-t noise's robustness to an
    outlying run is gone for every run, decided by as little as one configuration run twice.
    None when nothing is worth saying.
    """
    counts = [np.bincount(d.configurations(law.inputs)) for d in groups.values()]
    repeated = sum(int((c > 1).sum()) for c in counts)
    if repeated == 0 or repeated >= FEW_REPEATED:
        return None
    robust = " and drops the Student-t noise's robustness to outlying runs" if (
        noise == "student_t") else ""
    if len(groups) == 1:
        what = (f"{repeated} of {len(counts[0])} configurations were run more than once, so the "
                f"fit learns the seed noise from {repeated} configuration"
                f"{'s' if repeated > 1 else ''} and models")
    else:
        what = (f"{repeated} configuration{'s' if repeated > 1 else ''} of the {len(groups)} "
                "groups were run more than once, so the groups that repeat one (every group of a "
                "hierarchical fit) get the repeated-run model: it models")
    return (f"repeats='auto': {what} the law's misfit as Gaussian configuration effects{robust}; "
            "pass repeats=False (--repeats no) to keep per-run noise, or repeats=True to "
            "silence this")


def build_model(data, law: Law, *, noise: str = "student_t",
                priors: Mapping[str, Any] | None = None, repeats: bool | str = "auto",
                n_config: int | None = None) -> BuiltModel:
    """The model :func:`bayescale.fit` samples for ``data`` (a :class:`~bayescale.ScalingData`).

    ``repeats="auto"`` models repeated runs when some configuration of the law's inputs appears
    more than once. ``n_config`` raises the number of configurations the model holds (for
    :func:`bayescale.fit_many`, whose padding rows take one of their own).
    """
    from bayescale.priors import prior_to_dict, resolve_priors

    if check_repeats(repeats) == "auto":
        repeats = data.has_repeats(law.inputs)
    repeats = bool(repeats)
    priors = resolve_priors(law, data.loss, priors, repeats=repeats, noise=noise)
    config = data.configurations(law.inputs) if repeats else None
    own = 0 if config is None else int(config.max()) + 1
    fixed = {k: v for k, v in priors.items() if isinstance(v, float)}
    described = {k: prior_to_dict(v) for k, v in priors.items() if k not in fixed}
    families = {k: (d["dist"], tuple(sorted(p for p in d if p != "dist")))
                for k, d in sorted(described.items())}
    prior_params = {k: {p: np.asarray(described[k][p], dtype=float) for p in names}
                    for k, (_, names) in families.items()}
    model = ScalingModel(law, noise, fixed, families, own if n_config is None else n_config)
    return BuiltModel(
        model=model, priors=priors, repeats=repeats,
        log_inputs={i: np.log(np.asarray(v, dtype=float))
                    for i, v in data.inputs(law.inputs).items()},
        y=np.log(np.asarray(data.loss, dtype=float)), prior_params=prior_params,
        log_ref={k: np.asarray(v, dtype=float)
                 for k, v in data.log_reference(law.inputs).items()},
        config=None if config is None else np.asarray(config))


def simulation_args(args):
    """The model's arguments with the observations removed: it then simulates them."""
    return (args[0], None, *args[2:])


def shared_exponents(law: Law) -> tuple[str, ...]:
    """The sampled sites a hierarchical :func:`bayescale.fit_many` shares across groups: the
    exponents."""
    return tuple(s for s in law.sampled if s.startswith(("alpha", "beta")))


@dataclass(frozen=True, eq=False)
class HierarchicalModel:
    """Groups share the exponents; amplitudes, irreducible loss and noise are per group.

    Takes the arguments of ``base`` stacked on a leading axis of ``n_groups`` groups.
    """

    base: ScalingModel
    shared: tuple[str, ...]
    n_groups: int

    @property
    def law(self) -> Law:
        return self.base.law

    @property
    def key(self) -> tuple:
        return ("hierarchical/1", self.base.key, tuple(self.shared), self.n_groups)

    def __call__(self, log_inputs, y=None, prior_params=None, log_ref=None, config=None,
                 mask=None):
        law, base = self.law, self.base
        priors = base.priors(prior_params)  # per-group parameters: batch shape (groups,)
        sampled = {}
        # Shared sites (exponents, nu) take the first group's prior.
        first = base.priors({k: {p: v[0] for p, v in ps.items()}
                             for k, ps in prior_params.items()})
        for site in self.shared:
            sampled[site] = numpyro.sample(site, first[site])
        with numpyro.plate("groups", self.n_groups):
            for site in law.sampled:
                if site not in self.shared:
                    sampled[site] = numpyro.sample(site, priors[site])
            sigma = numpyro.sample("sigma", priors["sigma"])
            if config is not None:
                sigma_fit = numpyro.sample("sigma_fit", priors["sigma_fit"])
        column = {k: (v if k in self.shared else v[:, None]) for k, v in sampled.items()}
        ref = {k: v[:, None] for k, v in log_ref.items()}
        params = law.from_sampled(column, ref)
        for name in law.params:
            if name not in sampled:  # amplitudes in natural units, one per group
                numpyro.deterministic(name, jnp.broadcast_to(params[name],
                                                             (self.n_groups, 1))[:, 0])
        mu = law.log_loss(params, log_inputs)
        if config is not None:
            observe_repeats(mu, sigma, sigma_fit, y, config, base.n_config, mask)
            return
        nu = degrees_of_freedom(first.get("nu"))
        observe(mu, sigma[:, None], nu, y, mask, n_groups=self.n_groups)
