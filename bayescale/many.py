r"""Many fits at once: K data sets in one compiled program (:func:`fit_many`).

Independent fits (the default) pad the data sets to a common length (padding rows are masked
out of the likelihood), stack their data-scaled priors, and run every chain of every data set
as one batch: one compilation, one sampler loop, split across all devices JAX sees. Each data
set's posterior is exactly the one :func:`bayescale.fit` targets.

``hierarchical=True`` fits one joint model instead: the groups share the law's exponents
(``alpha`` and ``beta`` of the Chinchilla law, ``alpha`` of a power law, ``alpha_N`` and
``alpha_D`` of Kaplan's) and each has its own amplitudes, irreducible loss and noise scale.
This is the model for configurations that differ in data or architecture but are expected to
scale alike: the exponents are estimated from every group, and each group's intervals tighten.
"""

from __future__ import annotations

import json
import os
import re
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import dataclasses

from bayescale._jax import scoped
from bayescale._nuts import NutsSpec, run_laplace, run_nuts
from bayescale.data import ScalingData
from bayescale.errors import DataError, FitError
from bayescale.inference import (ConvergenceWarning, ScalingFit, as_data, check_noise,
                                 large_table_note, load_fit, sampler_spec)
from bayescale.laws import Law, get_law
from bayescale.models import (CONFIG_FACTOR, OBS_SITE, HierarchicalModel, build_model,
                              check_repeats, repeats_note, shared_exponents, simulation_args)
from bayescale.posterior import Domain, Posterior

__all__ = ["fit_many", "FitGroup", "load_fits", "shared_exponents"]

#: The index :meth:`FitGroup.save` writes beside the fits: group names, files, how they were fit.
INDEX = "groups.json"


class FitGroup(dict):
    """The fits of :func:`fit_many`, by group name (a ``dict`` of :class:`ScalingFit`).

    Attributes
    ----------
    seconds: wall time of the whole call. hierarchical: whether the groups shared exponents.
    """

    seconds: float = float("nan")
    hierarchical: bool = False

    def summary(self, level: float = 0.95) -> pd.DataFrame:
        """One row per group and parameter: median, mean, sd and the central interval."""
        frames = [f.summary(level).assign(group=name) for name, f in self.items()]
        out = pd.concat(frames).reset_index().set_index(["group", "param"])
        out.attrs["level"] = level
        return out

    def diagnostics(self) -> pd.DataFrame:
        """max R-hat, min bulk ESS, divergences and converged, one row per group."""
        return pd.DataFrame.from_dict({n: f.diagnostics for n, f in self.items()},
                                      orient="index")

    def save(self, folder: str | os.PathLike) -> dict[str, Path]:
        """Write each group's fit to ``folder/LABEL.nc`` and an index, ``folder/groups.json``,
        that :func:`load_fits` reads back (names, files, hierarchical, seconds).

        A label's characters other than letters, digits, ``.``, ``_`` and ``-`` become ``_``
        (``"rw/Cosine decay"`` -> ``rw_Cosine_decay.nc``); labels that would share a file name
        (ignoring case) get trailing underscores. Each file is written atomically, the index
        last. Returns the path of each group's fit.
        """
        from bayescale.io import atomic_write_text

        folder = Path(folder)
        if folder.exists() and not folder.is_dir():
            raise FitError(f"{folder} is a file; saving groups needs a folder (one FIT.nc per "
                           "group)")
        files, used = {}, set()
        for name in self:
            stem = re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_.") or "group"
            while stem.lower() in used:
                stem += "_"
            used.add(stem.lower())
            files[name] = f"{stem}.nc"
        paths = {name: self[name].save(folder / file) for name, file in files.items()}
        index = {"groups": files, "hierarchical": self.hierarchical, "seconds": self.seconds}
        atomic_write_text(folder / INDEX, json.dumps(index, indent=1))
        return paths


def load_fits(folder: str | os.PathLike) -> FitGroup:
    """Read the fits :meth:`FitGroup.save` (or ``bayescale fit --by-group --out``) wrote."""
    folder = Path(folder)
    if not (folder / INDEX).is_file():
        what = "no such folder" if not folder.exists() else f"no {INDEX} in it"
        raise FitError(f"{folder}: {what}; save groups with FitGroup.save(folder) or "
                       f"`bayescale fit ... --by-group --out {folder}`")
    try:
        index = json.loads((folder / INDEX).read_text())
        files = dict(index["groups"])
    except (ValueError, KeyError, TypeError):
        raise FitError(f"{folder / INDEX} is not an index written by FitGroup.save") from None
    out = FitGroup({name: load_fit(folder / file) for name, file in files.items()})
    out.hierarchical = bool(index.get("hierarchical", False))
    out.seconds = float(index.get("seconds", float("nan")))
    return out


def _groups(datasets: Any, by: str | None) -> dict[str, ScalingData]:
    """Named data sets from a mapping, a sequence, or one table split by a column."""
    if isinstance(datasets, Mapping):
        out = {str(k): as_data(v) for k, v in datasets.items()}
    elif by is not None or isinstance(datasets, (pd.DataFrame, ScalingData, str)):
        if isinstance(datasets, (str,)) or hasattr(datasets, "__fspath__"):
            datasets = ScalingData.from_csv(datasets)
        if isinstance(datasets, ScalingData):
            if by not in (None, "group"):
                raise DataError(f"a ScalingData splits by its 'group' labels, not {by!r}; pass a "
                                "DataFrame to split by another column")
            if datasets.group is None:
                raise DataError("these runs have no group labels: give group_col= when loading "
                                "them, or pass a dict of data sets")
            frame, by = datasets.to_frame(), "group"
        else:
            frame = datasets
            if by is None:
                raise DataError("say which column splits the runs into groups: by='config'")
            if by not in frame.columns:
                raise DataError(f"no column {by!r} to split by; the columns are "
                                f"{', '.join(map(str, frame.columns))}")
        out = {}
        for name, part in frame.groupby(by, sort=True):
            try:
                out[str(name)] = ScalingData.from_frame(part.drop(columns=[by]).reset_index(
                    drop=True))
            except DataError as err:
                raise DataError(f"group {name!r}: {err}") from None
    elif isinstance(datasets, Sequence):
        out = {}
        for i, item in enumerate(datasets):
            data = as_data(item)
            name = data.name or str(i)
            out[name if name not in out else f"{name}_{i}"] = data
    else:
        raise DataError(f"cannot fit groups from {type(datasets).__name__}: give a dict of data "
                        "sets, a list of them, or one table and by='column'")
    if not out:
        raise DataError("no groups to fit: the input is empty")
    return out


@scoped
def fit_many(datasets: Any, law: str | Law = "chinchilla", *, by: str | None = None,
             hierarchical: bool = False, noise: str = "student_t",
             priors: Mapping[str, Any] | None = None, repeats: bool | str = "auto",
             chains: int = 4, warmup: int = 1000,
             draws: int = 1000, seed: int = 0, progress: bool = True,
             target_accept: float = 0.95, dense_mass: bool = True,
             retries: int = 0, form_error: bool = True,
             checkpoints: str = "final",
             pad_like: Mapping[str, ScalingData] | None = None) -> FitGroup:
    """Fit one law to many data sets in one compiled program.

    Parameters
    ----------
    datasets: a dict ``name -> data`` (:class:`ScalingData`, DataFrame or CSV path), a list of
        data sets, or one table (DataFrame, ScalingData with group labels, CSV path) split by
        the column ``by``.
    law, noise, priors, chains, warmup, draws, target_accept, dense_mass: as in
        :func:`bayescale.fit`, for every group (default priors are scaled to each group's data;
        ``priors`` overrides apply to all).
    hierarchical: share the exponents across groups (see the module docstring); otherwise
        the groups are independent fits run side by side.
    repeats: learn the seed-to-seed noise from repeated configurations (see
        :func:`bayescale.fit`). ``"auto"`` gives each group the model ``fit(group)`` would: when
        some groups repeat a configuration and others do not, the two kinds are fitted in two
        programs (chain streams numbered within each). A hierarchical fit is one model, so
        there ``"auto"`` models repeats in all groups when any group repeats a configuration,
        and each group's posterior is the one ``fit(group, repeats=True)`` targets.
    seed: chain ``c`` of group ``g`` uses stream ``g * chains + c``.
    progress: show one progress bar for all groups.
    retries: fit the groups that did not converge again, together, with twice the warm-up and
        draws, up to ``retries`` times (a hierarchical fit is refitted whole). Each refit
        replaces the group's fit, whose ``options`` record the warm-up and draws it used
        and how many times it was refitted (``options["refits"]``); a
        :class:`ConvergenceWarning` is raised only for the groups still unconverged at the
        end. More draws cure slow mixing (low ESS, high R-hat), not divergent transitions:
        for those raise ``target_accept``.
    form_error: learn each group's form error beyond its data as :func:`bayescale.fit` does
        (every group's refits in one more program; for a hierarchical fit the refits are of
        each group alone).
    checkpoints: ``"final"`` or ``"all"`` checkpoints of training curves, as in
        :func:`bayescale.fit`.
    pad_like: data sets (in any form ``datasets`` takes) of which ``datasets`` are parts (a
        backtest's refits: the full data sets) whose padded number of runs to use, so that the refits run the full fit's
        compiled programs instead of compiling their own (same law, options and number of
        groups).

    Returns
    -------
    FitGroup: a dict of :class:`ScalingFit` by group name, with ``summary()`` and
    ``diagnostics()`` across groups.
    """
    start = time.perf_counter()
    law = get_law(law)
    from bayescale.inference import select_checkpoints

    groups = {name: select_checkpoints(d, checkpoints)
              for name, d in _groups(datasets, by).items()}
    if pad_like is not None:  # read like the data sets themselves
        pad_like = {name: select_checkpoints(d, checkpoints)
                    for name, d in _groups(pad_like, by).items()}
    check_noise(noise)
    spec = sampler_spec(chains=chains, warmup=warmup, draws=draws, target_accept=target_accept,
                        dense_mass=dense_mass)
    if isinstance(retries, bool) or not isinstance(retries, (int, np.integer)) or retries < 0:
        raise FitError(f"retries must be a whole number >= 0 (refits of unconverged groups), "
                       f"got {retries!r}")
    for name, data in groups.items():
        try:
            data.check_for(law.inputs, law.n_params, law.name)
        except DataError as err:
            raise DataError(f"group {name!r}: {err}") from None
    if check_repeats(repeats) == "auto" and not hierarchical:
        flags = {name: d.has_repeats(law.inputs) for name, d in groups.items()}
        if len(set(flags.values())) > 1:  # mixed: each group gets the model fit gives it
            return _fit_by_model(groups, flags, law, pad_like=pad_like, start=start,
                                 noise=noise, priors=priors, chains=chains, warmup=warmup,
                                 draws=draws, seed=seed, progress=progress,
                                 target_accept=target_accept, dense_mass=dense_mass,
                                 retries=retries, form_error=form_error,
                                 checkpoints=checkpoints)
    if check_repeats(repeats) == "auto":
        repeats = any(d.has_repeats(law.inputs) for d in groups.values())
        if (note := repeats_note(groups, law, noise)) is not None:
            warnings.warn(note, UserWarning, stacklevel=2)
    options = dict(law=law, hierarchical=bool(hierarchical), noise=noise, priors=priors,
                   repeats=bool(repeats), seed=int(seed), progress=progress)
    least = _padding_of(pad_like, law, noise=noise, priors=priors, repeats=bool(repeats))
    with warnings.catch_warnings():
        if retries:  # warn once, at the end, for the groups still unconverged
            warnings.simplefilter("ignore", ConvergenceWarning)
        out = _fit_groups(groups, spec=spec, least=least, **options)
        for attempt in range(1, int(retries) + 1):
            redo = [n for n, f in out.items() if not f.diagnostics["converged"]]
            if not redo:
                break
            spec = dataclasses.replace(spec, warmup=2 * spec.warmup, draws=2 * spec.draws)
            again = _fit_groups(groups if hierarchical else {n: groups[n] for n in redo},
                                spec=spec, least=least, **options)
            for f in again.values():
                f.options["refits"] = attempt
            out.update(again)
    if retries:
        for name, f in out.items():
            f._warn_if_unconverged(name)
    if form_error:
        from bayescale.inference import own_evidence

        evidence = own_evidence(groups, law, noise=noise, priors=priors, repeats=bool(repeats),
                                seed=int(seed), draws=spec.draws, like=pad_like)
        for name, f in out.items():
            f.evidence = evidence[name]
    out.seconds = time.perf_counter() - start
    out.hierarchical = bool(hierarchical)
    for f in out.values():
        f.seconds = out.seconds
    return out


def _padding_of(like, law, *, noise, priors, repeats) -> tuple[int, int]:
    """The runs and configurations of the largest of the data sets ``like`` (their models'),
    for :func:`padded`'s ``at_least``; (0, 0) without them."""
    if not like:
        return (0, 0)
    full = [build_model(d, law, noise=noise, priors=priors, repeats=repeats)
            for d in like.values()]
    return max(b.y.size for b in full), max(b.model.n_config for b in full)


def _fit_by_model(groups, flags, law, *, pad_like, start, **options) -> FitGroup:
    """``fit_many`` of groups some of which repeat a configuration and some not: the groups
    without repeats in one program with per-run noise, the others in one with the
    repeated-run model, so that each group gets the model ``fit(group)`` would (one model for
    all would give every group the repeated-run model, whose misfit is Gaussian: the
    Student-t noise's robustness gone for groups that never repeat a run). In the order
    given; chain streams are numbered within each program."""
    out = FitGroup()
    parts = {}
    if (note := repeats_note({n: d for n, d in groups.items() if flags[n]}, law,
                             options["noise"])) is not None:  # before sampling, as fit_many's
        warnings.warn(note, UserWarning, stacklevel=4)
    for repeats in (False, True):
        names = [n for n in groups if flags[n] == repeats]
        like = None if pad_like is None else {n: pad_like[n] for n in names if n in pad_like}
        parts.update(fit_many({n: groups[n] for n in names}, law, repeats=repeats,
                              pad_like=like or None, **options))
    out.update({n: parts[n] for n in groups})
    out.seconds = time.perf_counter() - start
    out.hierarchical = False
    return out


def _fit_groups(groups, *, law, hierarchical, noise, priors, repeats, spec, seed,
                progress, least=(0, 0)) -> FitGroup:
    """One sampler run over ``groups`` (options already checked): :func:`fit_many`'s work."""
    built = {name: build_model(d, law, noise=noise, priors=priors, repeats=repeats)
             for name, d in groups.items()}
    first = next(iter(built.values())).model
    for name, b in built.items():
        if (b.model.fixed, b.model.families) != (first.fixed, first.families):
            raise FitError(f"group {name!r} has priors of other families than the first group; "
                           "give every group the same prior families")
    names = list(groups)
    first, stacked, length = padded(built, names, at_least=least)
    most = max(d.n_points for d in groups.values())
    if (note := large_table_note(most, spec, length, len(names))) is not None:
        warnings.warn(note, UserWarning, stacklevel=3)
    out = FitGroup()
    if hierarchical:
        model = HierarchicalModel(first, shared_exponents(law), len(names))
        result = run_nuts(model, stacked, spec, seed=seed, obs_site=OBS_SITE,
                          predictive_args=simulation_args, model_key=model.key,
                          progress=progress,
                          description=f"{law.name} x{len(names)} groups of up to {most} runs, "
                                      "shared", rows=length * len(names))
        for g, name in enumerate(names):
            part = _group_of_joint(result, model, g, _sizes(built[name], groups[name]))
            out[name] = ScalingFit.from_sampler(part, built[name], groups[name], spec, seed,
                                                group=name)
            out[name].options["hierarchical"] = list(model.shared)
    else:
        result = run_nuts(first, _element(stacked, 0), spec, seed=seed, obs_site=OBS_SITE,
                          predictive_args=simulation_args, model_key=first.key,
                          batched_args=stacked, n_elements=len(names), progress=progress,
                          description=f"{law.name} x{len(names)} groups of up to {most} "
                                      "runs", rows=length)
        for g, name in enumerate(names):
            rows = slice(g * spec.chains, (g + 1) * spec.chains)
            part = _Part(result, rows, _sizes(built[name], groups[name]))
            out[name] = ScalingFit.from_sampler(part, built[name], groups[name], spec, seed,
                                                group=name)
    return out


def laplace_many(groups: Mapping[str, ScalingData], law: Law, *, noise: str = "student_t",
                 priors: Mapping[str, Any] | None = None, repeats: bool = False,
                 chains: int = 2, draws: int = 500, seed: int = 0,
                 like: Mapping[str, ScalingData] | None = None) -> dict[str, Posterior]:
    """The Laplace approximation of each data set's posterior (the mode and the inverse
    Hessian there; :func:`bayescale._nuts.run_laplace`), all in one program: ``chains`` modes
    searched per data set and ``draws`` draws around each. The refits of
    :mod:`bayescale.extrapolation` use it; options as in :func:`fit_many` (checked there).
    ``like``: data sets (of which ``groups`` are parts) whose fit's padding to use."""
    built = {name: build_model(d, law, noise=noise, priors=priors, repeats=repeats)
             for name, d in groups.items()}
    names = list(groups)
    least = _padding_of(like, law, noise=noise, priors=priors, repeats=repeats)
    first, stacked, length = padded(built, names, at_least=least)
    spec = NutsSpec(chains=chains, warmup=1, draws=draws)
    result = run_laplace(first, _element(stacked, 0), spec, seed=seed, obs_site=OBS_SITE,
                         predictive_args=simulation_args, model_key=first.key,
                         batched_args=stacked, n_elements=len(names), rows=length)
    out = {}
    for g, name in enumerate(names):
        rows = slice(g * chains, (g + 1) * chains)
        post = _finite_draws({k: np.asarray(v[rows]).reshape(-1)
                              for k, v in result.posterior.items()}, seed + g)
        out[name] = Posterior(law=law, params={p: post[p] for p in law.params},
                              sigma=post["sigma"], nu=post.get("nu", built[name].priors.get("nu")),
                              sigma_fit=post.get("sigma_fit"),
                              flops_per_param_token=groups[name].flops_per_param_token,
                              shape=(chains, draws), domain=Domain.from_data(groups[name]))
    return out


def _finite_draws(post: dict[str, np.ndarray], seed: int) -> dict[str, np.ndarray]:
    """Laplace draws with every value finite: a direction the data leave flat has a wide
    scale, and a draw far along it can overflow an amplitude (A = inf). Such draws are
    replaced by finite ones picked at random (``seed``), so the shape stays."""
    ok = np.logical_and.reduce([np.isfinite(v) for v in post.values() if v.dtype.kind == "f"])
    if ok.all() or not ok.any():
        return post
    rng = np.random.default_rng(seed)
    fill = rng.choice(np.flatnonzero(ok), size=int((~ok).sum()))
    out = {}
    for k, v in post.items():
        v = v.copy()
        v[~ok] = v[fill]
        out[k] = v
    return out


def _sizes(built, data):
    """Length of each log-likelihood site of one group: its runs, or its configurations."""
    return {OBS_SITE: data.n_points, CONFIG_FACTOR: built.model.n_config}


def padded_size(n: int) -> int:
    """The length ``n`` rows are padded to: the smallest of 8, 12, 16, 24, 32, 48, 64, ...
    (powers of two and 1.5 times them) that holds them. Data sets of nearby sizes then share
    compiled programs, at most 1.5 times the rows' work (the law is cheap per row)."""
    size = 8
    while size < n:
        size = size * 3 // 2 if size & (size - 1) == 0 else size * 4 // 3
    return size


def padded(built, names, at_least: tuple[int, int] = (0, 0)):
    """The model every data set of ``built`` (name -> :class:`~bayescale.models.BuiltModel`)
    is sampled with and their stacked arguments, padded to :func:`padded_size` rows.

    Returns ``(model, stacked, length)``. With repeated runs the model holds
    :func:`padded_size` of one configuration more than any data set has: the padding rows take
    the last, which no real row uses, and configurations without a real row add nothing.
    ``at_least``: rows and configurations to pad to at least (those of a larger data set).
    """
    first = built[names[0]].model
    length = padded_size(max(at_least[0], *(built[n].y.size for n in names)))
    if first.n_config:
        first = dataclasses.replace(first, n_config=padded_size(
            max(at_least[1], *(built[n].model.n_config for n in names)) + 1))
    return first, _stack(built, names, length, first.n_config), length


def _stack(built, names, length, n_config=0):
    """Every group's model arguments padded to ``length`` runs and stacked on a leading axis.

    With repeated runs (``n_config`` > 0) the padding rows take configuration ``n_config - 1``,
    which no group's real rows use (it is one more than the most any group has).
    """
    def pad(v):
        v = np.asarray(v, dtype=float)
        return np.concatenate([v, np.repeat(v[-1:], length - v.size)])

    parts = [built[n] for n in names]
    log_inputs = {i: np.stack([pad(b.log_inputs[i]) for b in parts]) for i in parts[0].log_inputs}
    y = np.stack([pad(b.y) for b in parts])
    prior_params = {site: {p: np.stack([b.prior_params[site][p] for b in parts]) for p in ps}
                    for site, ps in parts[0].prior_params.items()}
    log_ref = {k: np.stack([b.log_ref[k] for b in parts]) for k in parts[0].log_ref}
    mask = np.stack([np.arange(length) < b.y.size for b in parts])
    config = None
    if n_config:
        config = np.stack([np.concatenate([b.config, np.full(length - b.config.size,
                                                             n_config - 1)])
                           for b in parts])
    return (log_inputs, y, prior_params, log_ref, config, mask)


def _element(stacked, g):
    import jax

    return jax.tree_util.tree_map(lambda v: np.asarray(v)[g], stacked)


class _Part:
    """One group's rows of a batched sampler result, padding (runs, configurations) dropped;
    ``sizes``: the group's length of each log-likelihood site (:func:`_sizes`)."""

    def __init__(self, result, rows, sizes):
        self.seconds = result.seconds
        self.posterior = {k: v[rows] for k, v in result.posterior.items()}
        self.log_likelihood = {k: v[rows][..., :sizes[k]]
                               for k, v in result.log_likelihood.items()}
        self.predictive = {k: v[rows][..., :sizes[k]] for k, v in result.predictive.items()}
        self.stats = {k: v[rows] for k, v in result.stats.items()}


def _group_of_joint(result, model, g, sizes):
    """Group ``g``'s view of a hierarchical posterior: shared sites whole, the rest sliced."""
    part = _Part(result, slice(None), sizes)
    part.posterior = {k: (v if k in model.shared else v[..., g])
                      for k, v in result.posterior.items()}
    part.log_likelihood = {k: v[..., g, :sizes[k]] for k, v in result.log_likelihood.items()}
    part.predictive = {k: v[..., g, :sizes[k]] for k, v in result.predictive.items()}
    return part
