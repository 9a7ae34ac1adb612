"""NUTS on JAX: :func:`fit` turns a table of runs into a :class:`ScalingFit`."""

from __future__ import annotations

import errno
import functools
import json
import math
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale._jax import jax, scoped
from bayescale._nuts import POINTWISE_CAP, NutsSpec, concatenate, run_nuts
from bayescale.data import ScalingData
from bayescale.errors import DataError, FitError
from bayescale.laws import Law, get_law
from bayescale.models import (CONFIG_FACTOR, OBS_SITE, BuiltModel, build_model, repeats_note,
                              simulation_args)
from bayescale.posterior import Domain, Posterior
from bayescale.priors import priors_from_json, priors_to_json
from bayescale.summaries import interval

__all__ = ["fit", "ScalingFit", "load_fit", "as_data", "ConvergenceWarning", "quick_mode",
           "sampler_spec", "check_noise"]

#: Thresholds of a trustworthy fit (Vehtari et al. 2021).
RHAT_MAX = 1.01
ESS_MIN = 400
#: A fit short only of effective draws (bulk ESS < ESS_MIN, no divergences, R-hat at most this:
#: chains that agree but move slowly) samples more chains (:func:`more_chain_rounds`); a chain
#: stuck apart shows a larger R-hat among 4, which more chains would dilute, not cure...
RHAT_MORE_CHAINS = 1.02
#: ... up to this many times the chains asked for, in all.
MAX_CHAIN_FACTOR = 4


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


@scoped
def fit(data: ScalingData | pd.DataFrame | str | os.PathLike, law: str | Law = "chinchilla", *,
        noise: str = "student_t", priors: Mapping[str, Any] | None = None,
        repeats: bool | str = "auto", chains: int = 4, warmup: int = 1000, draws: int = 1000,
        seed: int = 0, progress: bool = True, target_accept: float = 0.95,
        dense_mass: bool = True, form_error: bool = True,
        checkpoints: str = "final", more_chains: bool = True) -> ScalingFit:
    """Fit a scaling law to training runs with NUTS.

    Parameters
    ----------
    data: runs as :class:`ScalingData`, a DataFrame or a CSV path.
    law: ``"chinchilla"`` (default), ``"kaplan"``, ``"power"`` or ``"power_pure"``.
    noise: ``"student_t"`` (robust, default) or ``"normal"``, on log loss.
    priors: overrides of the default priors by site name (:mod:`bayescale.priors`).
    repeats: learn the seed-to-seed noise from repeated configurations: ``"auto"`` does so when
        some inputs appear more than once.
    chains, warmup, draws: NUTS chains (batched on one device, split across several: see
        :mod:`bayescale._nuts`), warm-up and kept draws per chain. ``BAYESCALE_QUICK=1`` caps
        them at 2 chains of 300 + 300 for notebooks and CI.
    seed: PRNG seed; the same data, options, seed and device count give identical draws on one
        machine, with or without the progress bar.
    progress: show a progress bar on stderr.
    target_accept, dense_mass: NUTS settings. NUTS runs on the posterior whitened at its mode
        (a Laplace approximation), where it is close to a standard normal; the dense mass
        matrix adapted on top corrects what the approximation misses.
    form_error: also learn how wrong the law's form is likely to be beyond the data (the
        default): the law is refitted below the top 1 and 2 levels of compute (or x) of the
        data with the Laplace approximation, and its errors on the runs above, with what the
        bundled studies say, give the form error that predictions beyond the data carry
        (:mod:`bayescale.extrapolation`). False takes the law's form as exact.
    checkpoints: for training curves (data with run labels, several rows per run):
        ``"final"`` (default) fits each run's last checkpoint, the only one that finished its
        learning-rate schedule; ``"all"`` fits every checkpoint, each run's checkpoints sharing
        a Gaussian run effect (the repeated-run model with one configuration per run: the
        within-run noise and the run effect are learned separately). Data without run labels
        are fitted as they are.
    more_chains: when the fit's only shortfall is too few effective draws (bulk ESS below 400
        with no divergent transitions and R-hat at most 1.02: chains that agree but move
        slowly, as on a long learning curve's power law under Student-t noise), sample
        ``chains`` more chains, up to 3 times (4x the chains in all, as many rounds as the ESS
        asks), with the programs already compiled and new random streams (chains 4-7 of
        ``seed``, ...), and keep them all; ``options["added_chains"]`` says how many. Not past
        20,000 runs, where a chain costs minutes, nor under ``BAYESCALE_QUICK=1``. False: the
        chains asked for, and a warning.

    Returns
    -------
    ScalingFit: posterior in an ``arviz.InferenceData`` with the law, priors, data and versions.
    """
    data = select_checkpoints(as_data(data), checkpoints)
    law = get_law(law)
    check_noise(noise)
    spec = sampler_spec(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                        dense_mass=dense_mass)
    data.check_for(law.inputs, law.n_params, law.name)
    if repeats == "auto" and (note := repeats_note({"fit": data}, law, noise)) is not None:
        warnings.warn(note, UserWarning, stacklevel=3)  # fit's caller, beneath scoped
    if (note := repetition_note(data, law)) is not None:
        warnings.warn(note, UserWarning, stacklevel=3)  # fit's caller, beneath scoped
    from bayescale.many import _element, _Part, _sizes, padded

    built = build_model(data, law, noise=noise, priors=priors, repeats=repeats)
    model, stacked, length = padded({"fit": built}, ["fit"])  # nearby sizes share programs
    if (note := large_table_note(data.n_points, spec, length)) is not None:
        warnings.warn(note, UserWarning, stacklevel=3)  # fit's caller, beneath scoped
    run = functools.partial(run_nuts, model, _element(stacked, 0), spec, seed=int(seed),
                            obs_site=OBS_SITE, predictive_args=simulation_args,
                            model_key=model.key, progress=progress,
                            description=f"{law.name}, {data.n_points} runs", rows=length)
    result = run()
    sizes = _sizes(built, data)
    out = ScalingFit.from_sampler(_Part(result, slice(None), sizes), built, data, spec, seed,
                                  warn=False)  # said below, once the chains are all in
    more_chains = more_chains and not quick_mode()  # BAYESCALE_QUICK caps the sampling
    rounds = (more_chain_rounds(out.diagnostics, data.n_points, chains=spec.chains,
                                draws=spec.draws, rows=length) if more_chains else 0)
    if rounds:
        if progress:
            d = out.diagnostics
            print(f"bayescale: bulk ESS {d['min_ess_bulk']:.0f} < {ESS_MIN} with {spec.chains} "
                  f"chains (no divergences, R-hat {d['max_rhat']:.3f}): sampling "
                  f"{rounds * spec.chains} more (more_chains=False or --no-more-chains: not)",
                  file=sys.stderr, flush=True)
        more = [run(first_chain=r * spec.chains) for r in range(1, rounds + 1)]
        result = concatenate([result, *more])
        out = ScalingFit.from_sampler(_Part(result, slice(None), sizes), built, data, spec,
                                      seed, warn=False)
        out.options["added_chains"] = rounds * spec.chains
    out.options["more_chains"] = bool(more_chains)
    out._warn_if_unconverged(stacklevel=4)  # the caller of fit (beneath bayescale._jax.scoped)
    if form_error:
        out.evidence = own_evidence({"fit": data}, law, noise=noise, priors=priors,
                                    repeats=built.repeats, seed=int(seed),
                                    draws=spec.draws)["fit"]
    return out


#: A fit of more runs than this says what its size costs.
LARGE_TABLE = 20_000


def more_chain_rounds(diagnostics: Mapping[str, Any], runs: int, *, chains: int, draws: int,
                      rows: int) -> int:
    """How many more rounds of its ``chains`` chains a fit samples (:func:`fit`'s
    ``more_chains``): 0 unless its only shortfall is bulk ESS (< :data:`ESS_MIN`, at least 1;
    no divergences; R-hat at most :data:`RHAT_MORE_CHAINS`, or one chain) on at most
    :data:`LARGE_TABLE` runs; else the rounds that bring the ESS to :data:`ESS_MIN` if it grows
    with the chains, at most ``MAX_CHAIN_FACTOR - 1``, and no more than keep every draw's
    pointwise outputs (``draws`` x ``rows`` per chain) within
    :data:`bayescale._nuts.POINTWISE_CAP` values."""
    d = diagnostics
    rhat, ess = float(d["max_rhat"]), float(d["min_ess_bulk"])
    rhat_ok = rhat <= RHAT_MORE_CHAINS or (chains == 1 and math.isnan(rhat))
    if d["converged"] or d["divergences"] or runs > LARGE_TABLE or not rhat_ok or not ess >= 1:
        return 0
    memory = POINTWISE_CAP // max(1, draws * rows) // chains - 1
    return max(0, min(MAX_CHAIN_FACTOR - 1, memory, math.ceil(ESS_MIN / ess) - 1))


def repetition_note(data: ScalingData, law: Law) -> str | None:
    """Why a law of repeated data (input U) fitted on runs that repeat none says little about
    repetition, or None when some run repeats its data."""
    if "U" not in law.inputs or data.U is None or np.max(data.D / data.U) > 1.0 + 1e-9:
        return None
    return (f"law {law.name!r}: no run repeats its data (every run sees each unique token at "
            "most once), so what repeating data costs (the law's R_D and R_N) and its form "
            "error along epochs come from their priors alone, and answers that repeat data "
            "(unique_tokens=) rest on them; fit runs of several epochs too (the bundled "
            "datablations: load_dataset('datablations', all=True), --all-rows)")


def large_table_note(n: int, spec: NutsSpec, rows: int, groups: int = 1) -> str | None:
    """What a table of ``n`` runs (padded to ``rows``) costs a fit, or None below
    :data:`LARGE_TABLE` runs: every gradient of the posterior passes over every run, and the
    pointwise outputs keep every k-th draw (:func:`bayescale._nuts.pointwise_every`)."""
    from bayescale._nuts import pointwise_every

    if n <= LARGE_TABLE:
        return None
    every = pointwise_every(groups * spec.chains, spec.draws, rows)
    kept = ("" if every == 1 else
            f"; to bound memory the pointwise log likelihood and posterior predictive keep "
            f"one draw in {every} ({-(-spec.draws // every)} of {spec.draws} per chain), which "
            "compare and the predictive plots use")
    return (f"{n} runs: each of the sampler's thousands of gradient evaluations passes over "
            f"every run, so this fit takes minutes to tens of minutes on a CPU (an accelerator "
            f"is much faster){kept}. For training curves, fit each run's final checkpoint; "
            "fewer chains or draws (chains=2, draws=500) cut the time in proportion")


def own_evidence(groups: Mapping[str, ScalingData], law: Law, *, noise: str,
                 priors: Mapping[str, Any] | None, repeats: bool, seed: int, draws: int,
                 like: Mapping[str, ScalingData] | None = None):
    """The form-error evidence of each data set (:func:`bayescale.extrapolation.evidence_of`):
    refits with the fit's law, noise, prior overrides and repeated-run model, with as many
    draws as each of the fit's chains when these are more than
    :data:`~bayescale.extrapolation.LAPLACE_DRAWS` (the refits then share its programs);
    ``like``: larger data sets whose padding to use (see :func:`bayescale.fit_many`)."""
    from bayescale.extrapolation import LAPLACE_DRAWS, evidence_of

    return evidence_of(groups, law, noise=noise, priors=priors, repeats=repeats, seed=seed,
                       draws=max(LAPLACE_DRAWS, draws), like=like)


#: What :func:`fit` does with several checkpoints per run (see its ``checkpoints``).
CHECKPOINTS = ("final", "all")


def select_checkpoints(data: ScalingData, checkpoints: str) -> ScalingData:
    """``data`` as :func:`fit` fits it: each run's final checkpoint (``"final"``) or all of them
    (``"all"``); data without checkpoints as they are."""
    if checkpoints not in CHECKPOINTS:
        raise FitError(f"checkpoints must be 'final' (each run's last checkpoint) or 'all' "
                       f"(every checkpoint, with a per-run effect), got {checkpoints!r}")
    return data.final_checkpoints() if checkpoints == "final" else data


def check_noise(noise: str) -> str:
    """``noise`` once it is ``"student_t"`` or ``"normal"``."""
    if noise not in ("student_t", "normal"):
        raise FitError(f"noise must be 'student_t' or 'normal', got {noise!r}")
    return noise


def sampler_spec(*, chains: int, warmup: int, draws: int, target_accept: float,
                 dense_mass: bool) -> NutsSpec:
    """The checked sampler settings; ``BAYESCALE_QUICK=1`` caps them at 2 chains of 300 + 300."""
    if not 0 < target_accept < 1:
        raise FitError(f"target_accept must be between 0 and 1 (e.g. 0.95), got {target_accept}")
    for name, value in (("chains", chains), ("warmup", warmup), ("draws", draws)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise FitError(f"{name} must be a positive integer, got {value!r}")
    if quick_mode():
        chains, warmup, draws = min(chains, 2), min(warmup, 300), min(draws, 300)
    return NutsSpec(chains=int(chains), warmup=int(warmup), draws=int(draws),
                    target_accept=float(target_accept), dense_mass=bool(dense_mass))


def _to_idata(arrays: Mapping[str, Mapping[str, np.ndarray]], data: ScalingData, law: Law):
    """An ``arviz.InferenceData`` from the sampler's arrays (built when first asked for)."""
    from bayescale._compat import import_arviz

    az = import_arviz()

    post = arrays["posterior"]
    keep = [s for s in (*law.sampled, *law.params, "sigma", "sigma_fit", "nu") if s in post]
    posterior = {s: post[s] for s in dict.fromkeys(keep)}
    y = np.log(np.asarray(data.loss, dtype=float))
    constant = {k: np.asarray(v) for k, v in data.inputs(law.inputs).items()}
    stats = dict(arrays["stats"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if CONFIG_FACTOR in arrays["log_likelihood"]:
            # Repeated runs: the likelihood is one term per configuration (effects integrated out).
            ll = {OBS_SITE: arrays["log_likelihood"][CONFIG_FACTOR]}
            n_config = ll[OBS_SITE].shape[-1]
            ll_dims, ll_coords = {OBS_SITE: ["config"]}, {"config": np.arange(n_config)}
        else:
            ll = {OBS_SITE: arrays["log_likelihood"][OBS_SITE]}
            ll_dims, ll_coords = {OBS_SITE: ["run"]}, {}
        idata = az.from_dict(
            posterior=posterior,
            sample_stats=stats,
            posterior_predictive={OBS_SITE: arrays["predictive"][OBS_SITE]},
            observed_data={OBS_SITE: y},
            constant_data=constant,
            coords={"run": np.arange(data.n_points), **ll_coords},
            dims={OBS_SITE: ["run"], **{k: ["run"] for k in constant}},
        )
        idata.add_groups(log_likelihood=az.convert_to_dataset(ll, dims=ll_dims,
                                                              coords=ll_coords or {
                                                                  "run": np.arange(
                                                                      data.n_points)}))
    draws = next(iter(posterior.values())).shape[1]
    kept = arrays["predictive"][OBS_SITE].shape[1]
    if kept < draws:  # a large table's pointwise outputs: every k-th draw, labelled as such
        every = -(-draws // kept)
        for group in ("posterior_predictive", "log_likelihood"):
            idata[group] = idata[group].assign_coords(draw=np.arange(0, draws, every))
    return idata


def _versions() -> dict[str, str]:
    from bayescale._compat import import_arviz

    arviz = import_arviz()
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
                 seconds: float, versions: Mapping[str, str],
                 arrays: Mapping[str, Mapping[str, np.ndarray]] | None = None):
        if (idata is None) == (arrays is None):
            raise FitError("a ScalingFit needs either its InferenceData or the sampler's arrays")
        self._idata = idata
        self._arrays = None if arrays is None else {g: dict(v) for g, v in arrays.items()}
        self.law = law
        self.data = data
        self.priors = dict(priors)
        self.noise = noise
        self.repeats = repeats
        self.seed = seed
        self.options = dict(options)
        self.seconds = seconds
        self.versions = dict(versions)
        #: The refits of the form error (:class:`bayescale.extrapolation.Evidence`), or None
        #: when the law's form is taken as exact.
        self.evidence = None

    @classmethod
    def from_sampler(cls, result, built: BuiltModel, data: ScalingData, spec: NutsSpec,
                     seed: int, *, rows=None, group: str | None = None,
                     warn: bool = True) -> ScalingFit:
        """A fit from :func:`bayescale._nuts.run_nuts`'s arrays (``rows``: this data set's
        chains); warns when the sampler did not converge (naming ``group``, one of several),
        unless ``warn`` is False."""
        rows = slice(None) if rows is None else rows
        fit = cls(idata=None, law=built.model.law, data=data, priors=built.priors,
                  noise=built.model.noise, repeats=built.repeats, seed=seed,
                  options=dict(chains=spec.chains, warmup=spec.warmup, draws=spec.draws,
                               target_accept=spec.target_accept, dense_mass=spec.dense_mass),
                  seconds=result.seconds, versions=_versions(),
                  arrays={group: {k: v[rows] for k, v in getattr(result, group).items()}
                          for group in ("posterior", "log_likelihood", "predictive", "stats")})
        if warn:
            fit._warn_if_unconverged(group)
        return fit

    # ---------------------------------------------------------------- draws
    @property
    def idata(self):
        """The posterior as ``arviz.InferenceData`` (built from the sampler's arrays when first
        asked for: summaries and decisions read the arrays directly)."""
        if self._idata is None:
            self._idata = _to_idata(self._arrays, self.data, self.law)
        return self._idata

    def _chain_draws(self, name: str) -> np.ndarray | None:
        """Draws of ``name`` shaped (chain, draw), or None if the posterior has no such name."""
        if self._idata is None and self._arrays is not None:
            value = self._arrays["posterior"].get(name)
            return None if value is None else np.asarray(value)
        post = self.idata.posterior
        return np.asarray(post[name].values) if name in post else None

    @property
    def noise_params(self) -> tuple[str, ...]:
        names = ["sigma"] + (["sigma_fit"] if self.repeats else [])
        if self._chain_draws("nu") is not None:
            names.append("nu")
        return tuple(names)

    @property
    def param_names(self) -> tuple[str, ...]:
        """Names reported by :meth:`summary`: law parameters (natural units) and noise."""
        return self.law.params + self.noise_params

    def draws(self, name: str) -> np.ndarray:
        """All draws of one quantity, chains concatenated, shape (chains * draws,)."""
        value = self._chain_draws(name)
        if value is None:
            raise FitError(f"no quantity {name!r} in this fit; have {', '.join(self.param_names)}")
        return value.reshape(-1)

    def params_draws(self) -> dict[str, np.ndarray]:
        """Law parameters in natural units, one array of draws each."""
        return {p: self.draws(p) for p in self.law.params}

    @functools.cached_property
    def posterior(self) -> Posterior:
        """The draws as a :class:`bayescale.Posterior` (what predictions and decisions read):
        the law's parameters, the noise (``sigma``; ``sigma_fit`` with repeated runs; ``nu``
        drawn, or the fixed prior value, or Gaussian), k, the (chain, draw) shape, the
        training domain and the law's form error beyond it (:mod:`bayescale.extrapolation`;
        none when fitted with ``form_error=False``). Built once."""
        from bayescale.extrapolation import with_form_error

        nu = self._chain_draws("nu")
        chains, draws = self._chain_draws("sigma").shape
        post = Posterior(
            law=self.law, params=self.params_draws(), sigma=self.draws("sigma"),
            nu=nu.reshape(-1) if nu is not None else self.priors.get("nu"),
            sigma_fit=self.draws("sigma_fit") if self.repeats else None,
            flops_per_param_token=self.data.flops_per_param_token, shape=(chains, draws),
            domain=Domain.from_data(self.data))
        return with_form_error(post, self.evidence, seed=self.seed)

    # ---------------------------------------------------------------- diagnostics
    @functools.cached_property
    def diagnostics(self) -> dict[str, Any]:
        """max R-hat, min bulk ESS over the reported parameters, divergences, converged.

        Computed once per fit: the posterior does not change after sampling.
        """
        from bayescale._compat import import_arviz

        az = import_arviz()

        names = list(self.law.sampled) + list(self.noise_params)
        arrays = {n: self._chain_draws(n) for n in dict.fromkeys(names)}
        arrays = {n: v for n, v in arrays.items() if v is not None}
        n_chains = next(iter(arrays.values())).shape[0]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            min_ess = min(float(az.ess(v, method="bulk")) for v in arrays.values())
            max_rhat = (max(float(az.rhat(v)) for v in arrays.values()) if n_chains > 1
                        else float("nan"))
        if self._idata is None and self._arrays is not None:
            diverging = self._arrays["stats"]["diverging"]
        else:
            diverging = self.idata.sample_stats["diverging"]
        divergences = int(np.asarray(diverging).sum())
        converged = bool(
            (n_chains == 1 or max_rhat <= RHAT_MAX) and min_ess >= ESS_MIN and divergences == 0
        )
        return {"max_rhat": max_rhat, "min_ess_bulk": min_ess, "divergences": divergences,
                "converged": converged}

    def _warn_if_unconverged(self, group: str | None = None, stacklevel: int = 3) -> None:
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
            "the sampler did not converge" + (f" for group {group!r}" if group else "") + " ("
            + "; ".join(problems) + "): do not trust this "
            "posterior yet. Try more warm-up and draws (--warmup 2000 --draws 2000), a higher "
            "target_accept, stronger priors on the exponents, or look for outlying runs; a law "
            "the data cannot identify (too few runs, too narrow a range) also shows up this way",
            ConvergenceWarning, stacklevel=stacklevel)

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
        out = {"law": self.law.name, "n_points": self.data.n_points, "level": level,
               "params": params, "diagnostics": dict(self.diagnostics)}
        if self.options.get("added_chains"):  # fit's more_chains: said only when it acted
            out["added_chains"] = int(self.options["added_chains"])
        return out

    def __repr__(self) -> str:
        d = self.diagnostics
        table = self.summary().to_string(float_format=lambda v: f"{v:.4g}")
        return (f"ScalingFit(law={self.law.name!r}, n_points={self.data.n_points}, "
                f"noise={self.noise!r})\n{self.law.formula}\n{table}\n"
                f"max R-hat {d['max_rhat']:.3f}, min bulk ESS {d['min_ess_bulk']:.0f}, "
                f"divergences {d['divergences']}, converged {d['converged']}")

    # ---------------------------------------------------------------- questions
    def predict(self, *, N=None, D=None, x=None, C=None, U=None, level: float = 0.95,
                seed: int = 0):
        """Loss at new points: the law's mean and a new training run, with intervals.

        ``N`` and ``D`` (parameters, tokens) pair elementwise, with ``U`` (unique tokens) for the
        data-constrained law; ``x`` for one-variable laws; ``C`` alone (FLOPs; with ``U`` for
        the data-constrained law) predicts at each draw's compute-optimal split. Returns a
        :class:`bayescale.predict.Prediction` (``.table()``, ``.law_draws``, ``.new_run_draws``).
        """
        from bayescale.predict import predict

        return predict(self.posterior, N=N, D=D, x=x, C=C, U=U, level=level, seed=seed)

    def compute_optimal(self, C, *, flops_per_param_token: float | None = None,
                        warn: bool = True, max_params=None, max_tokens=None,
                        unique_tokens=None):
        """Posterior of N*, D*, D*/N* and the loss at budget(s) ``C`` (FLOPs) under C = k N D,
        optionally within caps on N and D (and what they cost); warns for a budget more than
        1000x outside the data (``warn=False``: quietly)."""
        from bayescale.allocation import compute_optimal

        return compute_optimal(self.posterior, C, flops_per_param_token=flops_per_param_token,
                               warn=warn, max_params=max_params, max_tokens=max_tokens,
                               unique_tokens=unique_tokens)

    def isoflop_profile(self, C, *, N=None, n_grid: int = 60):
        """Posterior of the loss along C = k N D as a function of N (an IsoFLOP curve)."""
        from bayescale.allocation import isoflop_profile

        return isoflop_profile(self.posterior, C, N=N, n_grid=n_grid)

    def data_sufficiency(self, N, *, threshold=None):
        """Tokens at which the extra loss from finite data falls to the seed noise (Kaplan)."""
        from bayescale.allocation import data_sufficiency

        return data_sufficiency(self.posterior, N, threshold=threshold)

    def decide(self, C, *, objective: str = "expected", seed: int = 0, bounds=None,
               max_params=None, max_tokens=None, unique_tokens=None):
        """Risk-aware split of budget ``C`` (FLOPs), optionally capped: see
        :func:`bayescale.decisions.choose_allocation`."""
        from bayescale.decisions import choose_allocation

        return choose_allocation(self.posterior, C, objective=objective, seed=seed, bounds=bounds,
                                 max_params=max_params, max_tokens=max_tokens,
                                 unique_tokens=unique_tokens)

    def compute_for_target(self, target: float, *, probability: float = 0.9, seed: int = 0,
                           max_params=None, max_tokens=None, unique_tokens=None):
        """Least compute whose chosen split (within the caps, if any) reaches ``target`` loss
        with ``probability``."""
        from bayescale.decisions import compute_for_target

        return compute_for_target(self.posterior, target, probability=probability, seed=seed,
                                  max_params=max_params, max_tokens=max_tokens,
                                  unique_tokens=unique_tokens)

    def prob_below_target(self, target: float, *, N=None, D=None, C=None, seed: int = 0):
        """P(a new run's loss <= ``target``) at (N, D), or at budget C's expected-loss split."""
        from bayescale.decisions import prob_below_target

        return prob_below_target(self.posterior, target, N=N, D=D, C=C, seed=seed)

    def inference_aware(self, target: float, *, inference_tokens: float,
                        probability: float = 0.5, seed: int = 0, form_error: bool = True):
        """Minimise training + inference FLOPs subject to reaching ``target`` loss (the law's
        form error beyond the data included, as in :meth:`compute_for_target`, unless
        ``form_error=False``)."""
        from bayescale.decisions import inference_aware

        return inference_aware(self.posterior, target, inference_tokens=inference_tokens,
                               probability=probability, seed=seed, form_error=form_error)

    def value_of_experiment(self, candidates, **kwargs):
        """Rank pilot runs by expected reduction of a decision's posterior variance per FLOP."""
        from bayescale.voi import value_of_experiment

        return value_of_experiment(self.posterior, candidates, **kwargs)

    # ---------------------------------------------------------------- persistence
    def _meta(self) -> dict[str, Any]:
        data = {k: getattr(self.data, k).tolist() for k in ("loss", "N", "D", "C", "x", "group",
                                                            "seed", "U", "run")
                if getattr(self.data, k) is not None}
        return {"format": "bayescale-fit/1", "law": self.law.name, "noise": self.noise,
                "repeats": self.repeats, "seed": self.seed, "options": self.options,
                "seconds": self.seconds, "versions": self.versions,
                "priors": priors_to_json(self.priors), "data": data,
                "data_name": self.data.name, "data_citation": self.data.citation,
                "flops_per_param_token": self.data.flops_per_param_token,
                "form_error": None if self.evidence is None else self.evidence.to_dict()}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fit to netCDF (atomically: a temporary file renamed into place)."""
        from bayescale.io import atomic_write_bytes, output_path

        path = Path(path)
        output_path(path, what="fit file")
        idata = self.idata.copy()
        idata.posterior.attrs["bayescale"] = json.dumps(self._meta())
        # Built in memory, then written by Python: a full disk is then an OSError, not HDF5
        # failing inside its own writes (tracebacks, then a segfault).
        from xarray import DataTree

        tree = DataTree.from_dict({group: idata[group] for group in idata.groups()})
        image = tree.to_netcdf(engine="h5netcdf")
        atomic_write_bytes(path, image)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike) -> ScalingFit:
        """Read a fit written by :meth:`save`; raises :class:`FitError` for anything else."""
        from bayescale._compat import import_arviz

        az = import_arviz()

        path = Path(path)
        if not path.exists():
            raise FitError(f"fit file not found: {path}; make one with `bayescale fit ... --out "
                           f"{path.name}`")
        try:
            with open(path, "rb") as f:
                head = f.read(8)
        except OSError as err:
            raise FitError(f"cannot read fit file {path} ({err.strerror})") from None
        hdf5 = head == b"\x89HDF\r\n\x1a\n"
        try:
            idata = az.from_netcdf(str(path))
            idata.load() if hasattr(idata, "load") else None
            stamp = idata.posterior.attrs.get("bayescale") if "posterior" in idata else None
        except Exception as err:  # noqa: BLE001 - unreadable: damaged, or not netCDF at all
            if hasattr(err, "errno") and err.errno == errno.EISDIR:
                raise FitError(f"{path} is a folder, not a fit file") from None
            if hdf5:
                raise FitError(f"fit file {path} is damaged (truncated or corrupted: "
                               f"{type(err).__name__}); refit and save it again") from None
            raise FitError(f"{path} is not a bayescale fit file (not netCDF); make one with "
                           "`bayescale fit ... --out FIT.nc`") from None
        if stamp is None:
            raise FitError(f"{path} is a netCDF file without bayescale's fit metadata, not a "
                           "bayescale fit file; make one with `bayescale fit ... --out FIT.nc`")
        try:
            meta = json.loads(stamp)
        except ValueError:
            raise FitError(f"fit file {path} is damaged (its metadata is not valid JSON); refit "
                           "and save it again") from None
        data = ScalingData(**meta["data"], name=meta["data_name"], citation=meta["data_citation"],
                           flops_per_param_token=meta["flops_per_param_token"])
        del idata.posterior.attrs["bayescale"]
        out = cls(idata=idata, law=get_law(meta["law"]), data=data,
                   priors=priors_from_json(meta["priors"]), noise=meta["noise"],
                   repeats=meta["repeats"], seed=meta["seed"], options=meta["options"],
                   seconds=meta["seconds"], versions=meta["versions"])
        if meta.get("form_error") is not None:
            from bayescale.extrapolation import Evidence

            out.evidence = Evidence.from_dict(meta["form_error"])
        return out


def load_fit(path: str | os.PathLike) -> ScalingFit:
    """Read a fit saved with :meth:`ScalingFit.save` or ``bayescale fit --out``."""
    return ScalingFit.load(path)
