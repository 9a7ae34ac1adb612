"""NUTS on JAX: :func:`fit` turns a table of runs into a :class:`ScalingFit`."""

from __future__ import annotations

import functools
import json
import os
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale._jax import jax, jnp
from bayescale.data import ScalingData
from bayescale.errors import DataError, FitError
from bayescale.laws import Law, get_law
from bayescale.models import OBS_SITE, config_log_likelihood, scaling_model
from bayescale.priors import priors_from_json, priors_to_json, resolve_priors
from bayescale.summaries import interval

__all__ = ["fit", "ScalingFit", "load_fit", "as_data", "ConvergenceWarning", "quick_mode"]

#: Thresholds of a trustworthy fit (Vehtari et al. 2021).
RHAT_MAX = 1.01
ESS_MIN = 400


#: Recently used MCMC objects, keyed by everything their compiled sampler depends on.
_MCMC_CACHE: dict[tuple, Any] = {}


class ConvergenceWarning(UserWarning):
    """The sampler's diagnostics say the posterior may not be trusted."""


def quick_mode() -> bool:
    """True when ``BAYESCALE_QUICK=1``: notebooks and CI then sample little (see :func:`fit`)."""
    return os.environ.get("BAYESCALE_QUICK", "") not in ("", "0")


def as_data(data: ScalingData | pd.DataFrame | str | os.PathLike) -> ScalingData:
    """Accept a :class:`ScalingData`, a DataFrame or a CSV path."""
    if isinstance(data, ScalingData):
        return data
    if isinstance(data, pd.DataFrame):
        return ScalingData.from_frame(data)
    if isinstance(data, (str, os.PathLike)):
        return ScalingData.from_csv(data)
    raise DataError(f"cannot use {type(data).__name__} as data: give a ScalingData, a DataFrame "
                    "or a CSV path")


def fit(data: ScalingData | pd.DataFrame | str | os.PathLike, law: str | Law = "chinchilla", *,
        noise: str = "student_t", priors: Mapping[str, Any] | None = None,
        repeats: bool | str = "auto", chains: int = 4, warmup: int = 1000, draws: int = 1000,
        seed: int = 0, progress: bool = True, target_accept: float = 0.9,
        dense_mass: bool = True) -> ScalingFit:
    """Fit a scaling law to training runs with NUTS.

    Parameters
    ----------
    data: runs as :class:`ScalingData`, a DataFrame or a CSV path.
    law: ``"chinchilla"`` (default), ``"kaplan"``, ``"power"`` or ``"power_pure"``.
    noise: ``"student_t"`` (robust, default) or ``"normal"``, on log loss.
    priors: overrides of the default priors by site name (:mod:`bayescale.priors`).
    repeats: learn the seed-to-seed noise from repeated configurations: ``"auto"`` does so when
        some inputs appear more than once.
    chains, warmup, draws: NUTS chains (vectorized on one device, parallel across several
        devices), warm-up and kept draws per chain. ``BAYESCALE_QUICK=1`` caps them at 2 chains of
        300 + 300 for notebooks and CI.
    seed: PRNG seed; the same data, options and seed give identical draws on one machine.
    progress: show a progress bar on stderr.
    target_accept, dense_mass: NUTS settings (dense mass matrix by default: amplitudes and
        exponents stay correlated a little even at the reference scale).

    Returns
    -------
    ScalingFit: posterior in an ``arviz.InferenceData`` with the law, priors, data and versions.
    """
    import arviz as az
    from numpyro.infer import MCMC, NUTS, init_to_median

    data = as_data(data)
    law = get_law(law)
    if noise not in ("student_t", "normal"):
        raise FitError(f"noise must be 'student_t' or 'normal', got {noise!r}")
    if not 0 < target_accept < 1:
        raise FitError(f"target_accept must be between 0 and 1 (e.g. 0.95), got {target_accept}")
    for name, value, low in (("chains", chains, 1), ("warmup", warmup, 1), ("draws", draws, 1)):
        if not isinstance(value, (int, np.integer)) or value < low:
            raise FitError(f"{name} must be a positive integer, got {value!r}")
    if quick_mode():
        chains, warmup, draws = min(chains, 2), min(warmup, 300), min(draws, 300)
    data.check_for(law.inputs, law.n_params, law.name)
    model, log_inputs, y, priors, repeats = _build_model(data, law, noise=noise, priors=priors,
                                                        repeats=repeats)
    chain_method = "parallel" if jax.local_device_count() >= chains > 1 else "vectorized"
    # Fits with the same law, noise, data shape, fixed priors and sampler options share one MCMC
    # object, whose compiled sampler takes the data and prior parameters as arguments: repeated
    # fits in one process (benchmarks, coverage studies, notebooks) skip tracing and compiling.
    key = (law.name, noise, bool(repeats), getattr(model, "n_config", 0), data.n_points,
           tuple(sorted(model.fixed.items())),
           tuple((k, type(v).__name__) for k, v in sorted(model.extra_args[0].items())),
           chains, warmup, draws, float(target_accept), dense_mass, progress, chain_method)
    mcmc = _MCMC_CACHE.pop(key, None)
    if mcmc is None:
        kernel = NUTS(model, dense_mass=dense_mass, target_accept_prob=target_accept,
                      init_strategy=init_to_median(num_samples=15))
        mcmc = MCMC(kernel, num_warmup=warmup, num_samples=draws, num_chains=chains,
                    chain_method=chain_method, progress_bar=progress, jit_model_args=True)
    _MCMC_CACHE[key] = mcmc
    while len(_MCMC_CACHE) > 8:
        _MCMC_CACHE.pop(next(iter(_MCMC_CACHE)))
    start = time.perf_counter()
    mcmc.run(jax.random.PRNGKey(seed), log_inputs, y, *model.extra_args)
    seconds = time.perf_counter() - start
    idata = _to_idata(az, mcmc, model, log_inputs, y, seed, data, law)
    result = ScalingFit(
        idata=idata, law=law, data=data, priors=priors, noise=noise, repeats=bool(repeats),
        seed=seed, options=dict(chains=chains, warmup=warmup, draws=draws,
                                target_accept=target_accept, dense_mass=dense_mass),
        seconds=seconds, versions=_versions())
    result._warn_if_unconverged()
    return result


def _build_model(data: ScalingData, law: Law, *, noise: str, priors: Mapping[str, Any] | None,
                repeats: bool | str):
    """The NumPyro model :func:`fit` samples, shared with :func:`bayescale.checks.prior_predictive`.

    Returns ``(model, log_inputs, y, priors, repeats)``: ``model(log_inputs, y=None)`` with the
    priors resolved, the log inputs and log losses of the runs, and whether repeats are modelled.
    """
    if repeats == "auto":
        repeats = data.has_repeats(law.inputs)
    repeats = bool(repeats)
    priors = resolve_priors(law, data.loss, priors, repeats=repeats, noise=noise)
    log_inputs = {i: jnp.log(jnp.asarray(v)) for i, v in data.inputs(law.inputs).items()}
    y = jnp.log(jnp.asarray(data.loss))
    config = data.configurations(law.inputs) if repeats else None
    n_config = 0 if config is None else int(config.max()) + 1
    # Data-dependent prior parameters and the reference point travel as traced arguments (numpyro
    # distributions are pytrees), so fits of same-shaped data share one compiled program and
    # JAX's persistent compilation cache serves every fit after the first.
    fixed = {k: v for k, v in priors.items() if isinstance(v, float)}
    extra = ({k: v for k, v in priors.items() if k not in fixed},
             {k: jnp.asarray(v) for k, v in data.log_reference(law.inputs).items()},
             None if config is None else jnp.asarray(config))

    def model(log_inputs, y=None, dynamic=extra[0], log_ref=extra[1], config=extra[2]):
        scaling_model(log_inputs, y, law=law, priors={**dynamic, **fixed}, log_ref=log_ref,
                      config=config, n_config=n_config)

    model.extra_args = extra
    model.fixed = fixed
    model.n_config = n_config
    return model, log_inputs, y, priors, repeats


def _to_idata(az, mcmc, model, log_inputs, y, seed, data, law):
    from numpyro.infer import Predictive

    samples = mcmc.get_samples()
    pred = Predictive(model, posterior_samples=samples, return_sites=[OBS_SITE])
    pp = pred(jax.random.PRNGKey(seed + 1), log_inputs, None, *model.extra_args)[OBS_SITE]
    chains = mcmc.num_chains
    pp = np.asarray(pp).reshape(chains, -1, pp.shape[-1])
    constant = {k: np.asarray(v) for k, v in data.inputs(law.inputs).items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        idata = az.from_numpyro(
            mcmc,
            posterior_predictive={OBS_SITE: pp},
            constant_data=constant,
            coords={"run": np.arange(data.n_points)},
            dims={OBS_SITE: ["run"], **{k: ["run"] for k in constant}},
        )
    if getattr(model, "n_config", 0):
        # Repeated runs: the likelihood is one term per configuration (effects integrated out).
        config, n_config = model.extra_args[2], model.n_config
        params = {p: samples[p] for p in law.params}
        params = {k: v[:, None] for k, v in params.items()}
        mu = law.log_loss(params, log_inputs)
        ll = jax.vmap(lambda m, s, t: config_log_likelihood(y, m, config, n_config, sigma=s,
                                                            sigma_fit=t))(
            mu, samples["sigma"], samples["sigma_fit"])
        ll = np.asarray(ll).reshape(chains, -1, n_config)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            for group in ("log_likelihood", "observed_data"):
                if group in idata.groups():
                    delattr(idata, group)
            idata.add_groups(
                log_likelihood=az.convert_to_dataset({OBS_SITE: ll}, dims={OBS_SITE: ["config"]},
                                                     coords={"config": np.arange(n_config)}),
                observed_data=az.convert_to_dataset({OBS_SITE: np.asarray(y)[None, None]},
                                                    dims={OBS_SITE: ["run"]},
                                                    coords={"run": np.arange(data.n_points)})
                .squeeze(["chain", "draw"], drop=True))
    return idata


def _versions() -> dict[str, str]:
    import arviz
    import numpyro

    from bayescale import __version__

    return {"bayescale": __version__, "jax": jax.__version__, "numpyro": numpyro.__version__,
            "arviz": arviz.__version__, "numpy": np.__version__}


class ScalingFit:
    """A fitted scaling law: the posterior and everything needed to reproduce it.

    Attributes
    ----------
    idata: ``arviz.InferenceData`` with groups posterior (sampled sites and natural-unit law
        parameters), log_likelihood, sample_stats, observed_data, posterior_predictive (log loss of
        a new run at each observed configuration) and constant_data (the inputs).
    law, data, priors, noise, repeats, seed, options, versions, seconds: how it was made.
    """

    def __init__(self, *, idata, law: Law, data: ScalingData, priors: Mapping[str, Any],
                 noise: str, repeats: bool, seed: int, options: Mapping[str, Any],
                 seconds: float, versions: Mapping[str, str]):
        self.idata = idata
        self.law = law
        self.data = data
        self.priors = dict(priors)
        self.noise = noise
        self.repeats = repeats
        self.seed = seed
        self.options = dict(options)
        self.seconds = seconds
        self.versions = dict(versions)

    # ---------------------------------------------------------------- draws
    @property
    def noise_params(self) -> tuple[str, ...]:
        names = ["sigma"] + (["sigma_fit"] if self.repeats else [])
        if "nu" in self.idata.posterior:
            names.append("nu")
        return tuple(names)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names reported by :meth:`summary`: law parameters (natural units) and noise."""
        return self.law.params + self.noise_params

    def draws(self, name: str) -> np.ndarray:
        """All draws of one quantity, chains concatenated, shape (chains * draws,)."""
        post = self.idata.posterior
        if name not in post:
            raise FitError(f"no quantity {name!r} in this fit; have {', '.join(self.param_names)}")
        return np.asarray(post[name].values).reshape(-1)

    def params_draws(self) -> dict[str, np.ndarray]:
        """Law parameters in natural units, one array of draws each."""
        return {p: self.draws(p) for p in self.law.params}

    def noise_draws(self) -> dict[str, Any]:
        """Noise of a new run on log loss: ``{"sigma": draws, "nu": draws, float or None}``.

        With repeated runs, a new run at an unseen configuration deviates from the law by the
        configuration effect and the seed noise; their sum is summarised by a scale
        ``sqrt(sigma**2 + sigma_fit**2)`` with the configuration effect's tails.
        """
        sigma = self.draws("sigma")
        if self.repeats:
            sigma = np.sqrt(sigma**2 + self.draws("sigma_fit") ** 2)
        if "nu" in self.idata.posterior:
            nu = self.draws("nu")
        else:
            nu = self.priors.get("nu")
        return {"sigma": sigma, "nu": nu}

    # ---------------------------------------------------------------- diagnostics
    @functools.cached_property
    def diagnostics(self) -> dict[str, Any]:
        """max R-hat, min bulk ESS over the reported parameters, divergences, converged.

        Computed once per fit: the posterior does not change after sampling.
        """
        import arviz as az

        names = list(self.law.sampled) + list(self.noise_params)
        names = [n for n in dict.fromkeys(names) if n in self.idata.posterior]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ess = az.ess(self.idata, var_names=names, method="bulk")
            min_ess = float(min(float(ess[n].min()) for n in names))
            n_chains = self.idata.posterior.sizes["chain"]
            if n_chains > 1:
                rhat = az.rhat(self.idata, var_names=names)
                max_rhat = float(max(float(rhat[n].max()) for n in names))
            else:
                max_rhat = float("nan")
        divergences = int(np.asarray(self.idata.sample_stats["diverging"]).sum())
        converged = bool(
            (n_chains == 1 or max_rhat <= RHAT_MAX) and min_ess >= ESS_MIN and divergences == 0
        )
        return {"max_rhat": max_rhat, "min_ess_bulk": min_ess, "divergences": divergences,
                "converged": converged}

    def _warn_if_unconverged(self) -> None:
        d = self.diagnostics
        if d["converged"]:
            return
        problems = []
        if d["max_rhat"] > RHAT_MAX:
            problems.append(f"max R-hat {d['max_rhat']:.3f} > {RHAT_MAX}")
        if d["min_ess_bulk"] < ESS_MIN:
            problems.append(f"min bulk ESS {d['min_ess_bulk']:.0f} < {ESS_MIN}")
        if d["divergences"]:
            problems.append(f"{d['divergences']} divergent transitions")
        warnings.warn(
            "the sampler did not converge (" + "; ".join(problems) + "): do not trust this "
            "posterior yet. Try more warm-up and draws (--warmup 2000 --draws 2000), a higher "
            "target_accept, stronger priors on the exponents, or look for outlying runs; a law "
            "the data cannot identify (too few runs, too narrow a range) also shows up this way",
            ConvergenceWarning, stacklevel=3)

    # ---------------------------------------------------------------- summaries
    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """Median, mean, sd and central interval at ``level`` of each parameter (natural units)."""
        rows = {}
        for name in self.param_names:
            d = self.draws(name)
            med, lo, hi = interval(d, level)
            rows[name] = {"median": float(med), "mean": float(d.mean()),
                          "sd": float(d.std(ddof=1)), "lo": float(lo), "hi": float(hi)}
        out = pd.DataFrame.from_dict(rows, orient="index")
        out.index.name = "param"
        out.attrs["level"] = level
        return out

    def to_dict(self, level: float = 0.95) -> dict[str, Any]:
        """The JSON of ``bayescale fit --json``: law, n_points, level, params, diagnostics."""
        table = self.summary(level)
        params = {n: {"median": float(r["median"]), "lo": float(r["lo"]), "hi": float(r["hi"])}
                  for n, r in table.iterrows()}
        return {"law": self.law.name, "n_points": self.data.n_points, "level": level,
                "params": params, "diagnostics": dict(self.diagnostics)}

    def __repr__(self) -> str:
        d = self.diagnostics
        table = self.summary().to_string(float_format=lambda v: f"{v:.4g}")
        return (f"ScalingFit(law={self.law.name!r}, n_points={self.data.n_points}, "
                f"noise={self.noise!r})\n{self.law.formula}\n{table}\n"
                f"max R-hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
                f"divergences {d['divergences']}, converged {d['converged']}")

    # ---------------------------------------------------------------- questions
    def predict(self, *, N=None, D=None, x=None, C=None, level: float = 0.95, seed: int = 0):
        """Loss at new points: the law's mean and a new training run, with intervals.

        ``N`` and ``D`` (parameters, tokens) pair elementwise; ``x`` for one-variable laws;
        ``C`` alone (FLOPs) predicts at each draw's compute-optimal split. Returns a
        :class:`bayescale.predict.Prediction` (``.table()``, ``.law_draws``, ``.new_run_draws``).
        """
        from bayescale.predict import predict

        return predict(self.law, self.params_draws(), self.noise_draws(), N=N, D=D, x=x, C=C,
                       level=level, seed=seed,
                       flops_per_param_token=self.data.flops_per_param_token)

    def compute_optimal(self, C, *, flops_per_param_token: float | None = None):
        """Posterior of N*, D*, D*/N* and the loss at budget(s) ``C`` (FLOPs) under C = k N D."""
        from bayescale.allocation import compute_optimal

        k = self.data.flops_per_param_token if flops_per_param_token is None else (
            flops_per_param_token)
        return compute_optimal(self.law, self.params_draws(), C, flops_per_param_token=k)

    def isoflop_profile(self, C, *, N=None, n_grid: int = 60):
        """Posterior of the loss along C = k N D as a function of N (an IsoFLOP curve)."""
        from bayescale.allocation import isoflop_profile

        return isoflop_profile(self.law, self.params_draws(), C, N=N, n_grid=n_grid,
                               flops_per_param_token=self.data.flops_per_param_token)

    def data_sufficiency(self, N, *, threshold=None):
        """Tokens at which the extra loss from finite data falls to the seed noise (Kaplan)."""
        from bayescale.allocation import data_sufficiency

        return data_sufficiency(self.law, self.params_draws(), self.draws("sigma"), N,
                                threshold=threshold)

    def decide(self, C, *, objective: str = "expected", seed: int = 0, bounds=None):
        """Risk-aware split of budget ``C`` (FLOPs): see :func:`bayescale.decisions.choose_allocation`."""
        from bayescale.decisions import choose_allocation

        return choose_allocation(self.law, self.params_draws(), self.noise_draws(), C,
                                 objective=objective, seed=seed, bounds=bounds,
                                 flops_per_param_token=self.data.flops_per_param_token)

    def compute_for_target(self, target: float, *, probability: float = 0.9, seed: int = 0):
        """Least compute whose chosen split reaches ``target`` loss with ``probability``."""
        from bayescale.decisions import compute_for_target

        return compute_for_target(self.law, self.params_draws(), self.noise_draws(), target,
                                  probability=probability, seed=seed,
                                  flops_per_param_token=self.data.flops_per_param_token)

    def prob_below_target(self, target: float, *, N=None, D=None, C=None, seed: int = 0):
        """P(a new run's loss <= ``target``) at (N, D), or at budget C's expected-loss split."""
        from bayescale.decisions import prob_below_target

        return prob_below_target(self.law, self.params_draws(), self.noise_draws(), target,
                                 N=N, D=D, C=C, seed=seed,
                                 flops_per_param_token=self.data.flops_per_param_token)

    def inference_aware(self, target: float, *, inference_tokens: float,
                        probability: float = 0.5, seed: int = 0):
        """Minimise training + inference FLOPs subject to reaching ``target`` loss."""
        from bayescale.decisions import inference_aware

        return inference_aware(self.law, self.params_draws(), self.noise_draws(), target,
                               inference_tokens=inference_tokens, probability=probability,
                               seed=seed, flops_per_param_token=self.data.flops_per_param_token)

    def value_of_experiment(self, candidates, **kwargs):
        """Rank pilot runs by expected reduction of a decision's posterior variance per FLOP."""
        from bayescale.voi import value_of_experiment

        return value_of_experiment(self.law, self.params_draws(), self.noise_draws(), candidates,
                                   flops_per_param_token=self.data.flops_per_param_token,
                                   **kwargs)

    # ---------------------------------------------------------------- persistence
    def _meta(self) -> dict[str, Any]:
        data = {k: getattr(self.data, k).tolist() for k in ("loss", "N", "D", "C", "x", "group",
                                                            "seed")
                if getattr(self.data, k) is not None}
        return {"format": "bayescale-fit/1", "law": self.law.name, "noise": self.noise,
                "repeats": self.repeats, "seed": self.seed, "options": self.options,
                "seconds": self.seconds, "versions": self.versions,
                "priors": priors_to_json(self.priors), "data": data,
                "data_name": self.data.name, "data_citation": self.data.citation,
                "flops_per_param_token": self.data.flops_per_param_token}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit to netCDF (atomically: a temporary file renamed into place)."""
        from bayescale.io import atomic_path

        path = Path(path)
        idata = self.idata.copy()
        idata.posterior.attrs["bayescale"] = json.dumps(self._meta())
        with atomic_path(path) as tmp:
            idata.to_netcdf(str(tmp))
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScalingFit:
        """Read a fit written by :meth:`save`; raises :class:`FitError` for anything else."""
        import arviz as az

        path = Path(path)
        if not path.exists():
            raise FitError(f"fit file not found: {path}; make one with `bayescale fit ... --out "
                           f"{path.name}`")
        try:
            idata = az.from_netcdf(str(path))
            idata.load() if hasattr(idata, "load") else None
            meta = json.loads(idata.posterior.attrs["bayescale"])
        except Exception as err:  # noqa: BLE001 - any failure means "not a bayescale fit"
            raise FitError(f"{path} is not a bayescale fit file ({type(err).__name__}); make one "
                           "with `bayescale fit ... --out FIT.nc`") from None
        data = ScalingData(**meta["data"], name=meta["data_name"], citation=meta["data_citation"],
                           flops_per_param_token=meta["flops_per_param_token"])
        del idata.posterior.attrs["bayescale"]
        return cls(idata=idata, law=get_law(meta["law"]), data=data,
                   priors=priors_from_json(meta["priors"]), noise=meta["noise"],
                   repeats=meta["repeats"], seed=meta["seed"], options=meta["options"],
                   seconds=meta["seconds"], versions=meta["versions"])


def load_fit(path: str | os.PathLike) -> ScalingFit:
    """Read a fit saved with :meth:`ScalingFit.save` or ``bayescale fit --out``."""
    return ScalingFit.load(path)
