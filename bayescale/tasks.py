r"""From loss to downstream accuracy: the two-step task model, with uncertainty.

Budgets are decided on what a model will be able to do. The standard method (Bhagia et al. 2024,
the OLMo model ladder; Gadre et al. 2024) chains two fits:

1. **task loss from (N, D)**: any law of bayescale fitted to the task loss (bits per byte of the
   correct answer) of each run's *final* checkpoint, with its noise and its form error beyond the
   data (:func:`bayescale.fit`);
2. **accuracy from task loss**: a link fitted to the checkpoints of the second half of each run
   (intermediate checkpoints are not annealed, but the task loss they reach maps to accuracy as
   a finished run's does), each run's checkpoints sharing a Gaussian run effect:

   * ``"sigmoid"`` (Bhagia et al.): :math:`\mathrm{acc}(L) = b + (c - b)\,/\,(1 + e^{k (L - L_0)})`
     with floor :math:`b` (chance), ceiling :math:`c \le 1`, :math:`k > 0`;
   * ``"exponential"`` (Gadre et al.): error :math:`1 - \mathrm{acc} = \varepsilon - \kappa
     e^{-\gamma L}`, i.e. :math:`\mathrm{acc}(L) = b + \kappa e^{-\gamma (L - \bar L)}` with
     :math:`b = 1 - \varepsilon` the accuracy far from the data's loss.

   :math:`\mathrm{acc}_{ij} = \mathrm{acc}(L_{ij}) + \delta_i + \epsilon_{ij}`,
   :math:`\delta_i \sim N(0, \tau^2)` (run), :math:`\epsilon \sim N(0, \sigma^2)` (checkpoint).

A prediction at a target (N, D) pairs the draws of the two posteriors: step 1's new-run task loss
(parameters, noise and form error), through step 2's link of the same draw, plus a new run's
:math:`\delta + \epsilon`. So the band carries both steps' uncertainty and the noise of a single
run. ``steps=1`` is the single-step baseline: the link applied to compute,
:math:`\mathrm{acc}(-\log_{10} C)`, fitted to the final checkpoints.

A task whose accuracy does not follow the two steps is **flagged**, not predicted with false
confidence (:attr:`TaskFit.flags`; Lourie et al. 2025 find only 39% of 46 tasks scale
predictably):

* ``flat``: the fitted accuracy moves less than :data:`FLAT_RATIO` times its run-to-run noise
  across the training checkpoints (near chance, not yet emerging);
* ``not monotone``: accuracy does not fall as task loss falls (Spearman rank correlation of the
  checkpoints above :data:`MONOTONE_RHO`);
* ``backtest``: refitted without the largest model size, the 90% band holds so few of that
  size's final checkpoints that a calibrated band would do so with probability below 5%.
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.data import ScalingData, _find_alias, _missing_column, _rows
from bayescale.errors import DataError, FitError
from bayescale.summaries import check_level, interval

__all__ = ["TaskData", "TaskFit", "TaskPrediction", "TaskCompute", "fit_task", "fit_tasks",
           "load_task_fit", "LINKS", "CHANCE"]

#: Links from task loss to accuracy (see the module docstring).
LINKS = ("sigmoid", "exponential")
#: A task is flat when its fitted accuracy moves less than this many run-to-run noise scales
#: across the training checkpoints (5% to 95% quantile of their task loss).
FLAT_RATIO = 3.0
#: A task is not monotone when accuracy and task loss of its checkpoints have a Spearman rank
#: correlation above this (a task that scales has one near -1).
MONOTONE_RHO = -0.5
#: Chance accuracy of the bundled OLMo ladder's tasks (1 / number of choices), the prior
#: centre of the link's floor.
CHANCE = {"arc_challenge": 0.25, "arc_easy": 0.25, "boolq": 0.5, "csqa": 0.2, "hellaswag": 0.25,
          "mmlu": 0.25, "openbookqa": 0.25, "piqa": 0.5, "socialiqa": 1 / 3, "winogrande": 0.5}


def chance_of(task: str) -> float | None:
    """Chance accuracy of a known task name (``"arc_easy_test"`` -> 0.25), else None."""
    for name, value in CHANCE.items():
        if task == name or task.startswith(name + "_"):
            return value
    return None


# ------------------------------------------------------------------------------------ data
@dataclass(frozen=True, eq=False)
class TaskData:
    """Checkpoints of training runs with a task's loss and accuracy.

    Attributes
    ----------
    N, D : numpy.ndarray
        Parameters of the run and tokens seen at the checkpoint, per row.
    loss : numpy.ndarray
        Task loss per row (bits per byte of the correct answer, or nats; lower is better).
    accuracy : numpy.ndarray
        Task accuracy per row, in [0, 1].
    run : numpy.ndarray
        Run label per row; a run has one N.
    final : numpy.ndarray
        True on each run's last checkpoint (the largest D of the run when not given).
    task, name, citation : str
    chance : float or None
        Chance accuracy (1 / choices): the prior centre of the link's floor; None for a
        wide prior.
    seed : numpy.ndarray or None
        Seed label per row (reruns of one configuration), kept for step 1.
    """

    N: np.ndarray
    D: np.ndarray
    loss: np.ndarray
    accuracy: np.ndarray
    run: np.ndarray
    final: np.ndarray | None = None
    task: str = ""
    name: str = ""
    citation: str = field(default="", repr=False)
    chance: float | None = None
    seed: np.ndarray | None = None
    columns: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        col = {k: self.columns.get(k, k) for k in ("N", "D", "loss", "accuracy", "run")}
        arrays = {}
        for name in ("N", "D", "loss", "accuracy"):
            try:
                arr = np.asarray(getattr(self, name), dtype=float).reshape(-1)
            except (TypeError, ValueError):
                raise DataError(f"column {col[name]!r} must hold numbers") from None
            arrays[name] = arr
        n = len(arrays["loss"])
        if n == 0:
            raise DataError("the task table has no rows: give the checkpoints of some runs")
        for name, arr in arrays.items():
            if len(arr) != n:
                raise DataError(f"column {col[name]!r} has {len(arr)} values, expected {n}")
            bad = ~np.isfinite(arr)
            if bad.any():
                raise DataError(f"column {col[name]!r} has missing or infinite values at "
                                f"{_rows(bad)}: drop those checkpoints (--dropna)")
        for name in ("N", "D", "loss"):
            if (arrays[name] <= 0).any():
                raise DataError(f"column {col[name]!r} must be positive; it is not at "
                                f"{_rows(arrays[name] <= 0)}")
        acc = arrays["accuracy"]
        if ((acc < 0) | (acc > 1)).any():
            hint = (" (it looks like percent: divide by 100)" if acc.max() <= 100 and
                    acc.max() > 1 else "")
            raise DataError(f"column {col['accuracy']!r} must be an accuracy in [0, 1]{hint}; "
                            f"it is not at {_rows((acc < 0) | (acc > 1))}")
        run = np.asarray(self.run).astype(str).reshape(-1)
        if len(run) != n:
            raise DataError(f"column {col['run']!r} has {len(run)} values, expected {n}")
        per_run = pd.DataFrame({"run": run, "N": arrays["N"]}).groupby("run")["N"].nunique()
        if (per_run > 1).any():
            raise DataError(f"run {per_run[per_run > 1].index[0]!r} (column {col['run']!r}) has "
                            "more than one parameter count N: a run is one model; check the "
                            "run and N columns")
        if self.final is None:
            frame = pd.DataFrame({"run": run, "D": arrays["D"], "i": np.arange(n)})
            last = frame.sort_values(["run", "D", "i"]).groupby("run")["i"].last().to_numpy()
            final = np.zeros(n, dtype=bool)
            final[last] = True
        else:
            final = np.asarray(self.final).astype(bool).reshape(-1)
            if len(final) != n:
                raise DataError(f"the final flags have {len(final)} values, expected {n}")
            count = pd.Series(final).groupby(run).sum()
            if (count != 1).any():
                raise DataError(f"run {count[count != 1].index[0]!r} has {int(count.max())} rows "
                                "marked final: mark exactly one checkpoint per run (its last)")
        if self.chance is not None and not 0 <= float(self.chance) < 1:
            raise DataError(f"chance must be an accuracy in [0, 1), got {self.chance!r}")
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)
        object.__setattr__(self, "run", run)
        object.__setattr__(self, "final", final)
        if self.seed is not None:
            object.__setattr__(self, "seed", np.asarray(self.seed).astype(str).reshape(-1))

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, loss_col: str, accuracy_col: str,
                   n_col: str | None = None, d_col: str | None = None,
                   run_col: str | None = None, final_col: str | None = None,
                   seed_col: str | None = None, task: str = "", name: str = "",
                   citation: str = "", chance: float | None = None) -> TaskData:
        """Build from a table of checkpoints (one row per run and checkpoint).

        ``n_col``, ``d_col``, ``run_col`` are found among the usual names when not given
        (:data:`bayescale.COLUMN_ALIASES`); ``final_col`` marks each run's last checkpoint
        (default: the row with the largest D of each run). ``chance`` defaults to the known
        chance accuracy of the task's name (:data:`CHANCE`).
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        columns = [str(c) for c in df.columns]
        chosen = {}
        for key, given in (("N", n_col), ("D", d_col), ("run", run_col), ("loss", loss_col),
                           ("accuracy", accuracy_col), ("final", final_col), ("seed", seed_col)):
            if given is not None:
                if given not in columns:
                    if key in ("accuracy", "final"):
                        raise DataError(f"missing column {given!r} for the task's {key}; the "
                                        f"table has {columns}")
                    raise DataError(_missing_column(given, key, columns))
                chosen[key] = given
            elif key in ("N", "D", "run"):
                found = _find_alias(key, columns)
                if found is None:
                    if key == "run":
                        raise DataError(f"no run column found among {columns}: a task model "
                                        "reads training curves; name the column that labels "
                                        "each run with --run-col / run_col=")
                    raise DataError(_missing_column(key, key, columns))
                chosen[key] = found
        task = task or chosen["accuracy"]
        return cls(N=df[chosen["N"]].to_numpy(), D=df[chosen["D"]].to_numpy(),
                   loss=df[chosen["loss"]].to_numpy(), accuracy=df[chosen["accuracy"]].to_numpy(),
                   run=df[chosen["run"]].to_numpy(),
                   final=None if "final" not in chosen else df[chosen["final"]].to_numpy(),
                   seed=None if "seed" not in chosen else df[chosen["seed"]].to_numpy(),
                   task=task, name=name or task, citation=citation,
                   chance=chance if chance is not None else chance_of(task),
                   columns=dict(chosen))

    @property
    def n_rows(self) -> int:
        return len(self.loss)

    @property
    def n_runs(self) -> int:
        return int(self.final.sum())

    def subset(self, rows) -> TaskData:
        """The rows ``rows`` (indices or a mask); each kept run must keep its final row."""
        rows = np.asarray(rows)
        pick = (lambda v: None if v is None else np.asarray(v)[rows])
        return TaskData(N=self.N[rows], D=self.D[rows], loss=self.loss[rows],
                        accuracy=self.accuracy[rows], run=self.run[rows], final=self.final[rows],
                        task=self.task, name=self.name, citation=self.citation,
                        chance=self.chance, seed=pick(self.seed), columns=dict(self.columns))

    def finals(self) -> ScalingData:
        """Step 1's data: each run's final checkpoint, task loss as the loss."""
        f = self.final
        return ScalingData(loss=self.loss[f], N=self.N[f], D=self.D[f],
                           seed=self.run[f] if self.seed is None else self.seed[f],
                           name=f"{self.name} (task loss)", citation=self.citation)

    def link_rows(self, rows: str = "second_half") -> np.ndarray:
        """Mask of step 2's rows: ``"second_half"`` (checkpoints at half or more of their run's
        final tokens, as Bhagia et al.), ``"all"`` or ``"final"``."""
        if rows == "all":
            return np.ones(self.n_rows, dtype=bool)
        if rows == "final":
            return self.final.copy()
        if rows == "second_half":
            final_d = pd.Series(self.D[self.final], index=self.run[self.final])
            return self.D >= 0.5 * final_d.loc[self.run].to_numpy()
        raise FitError(f"step-2 rows must be 'second_half', 'all' or 'final', got {rows!r}")

    def to_dict(self) -> dict[str, Any]:
        out = {k: getattr(self, k).tolist() for k in ("N", "D", "loss", "accuracy", "run",
                                                       "final")}
        out["seed"] = None if self.seed is None else self.seed.tolist()
        return {**out, "task": self.task, "name": self.name, "citation": self.citation,
                "chance": self.chance, "columns": self.columns}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskData:
        return cls(**{k: (np.asarray(v) if isinstance(v, list) else v) for k, v in d.items()})


# ------------------------------------------------------------------------------- the link
def link_mean(u, params: Mapping[str, Any], link: str, xp=np):
    """The link's accuracy at task loss (or ``-log10 C``) ``u``; ``params`` broadcast
    against ``u`` (draws on a leading axis: pass ``params[k][:, None]``)."""
    if link == "sigmoid":
        z = params["k"] * (params["u0"] - u)
        with np.errstate(over="ignore"):  # exp(-z) = inf far below the midpoint: s = 0 exactly
            s = 1.0 / (1.0 + xp.exp(-z))
        return params["floor"] + (params["ceiling"] - params["floor"]) * s
    if link == "exponential":
        return params["floor"] + params["kappa"] * xp.exp(-params["gamma"] * (u - params["u_ref"]))
    raise FitError(f"unknown link {link!r}; choose one of {', '.join(LINKS)}")


def _check_link(link: str) -> str:
    if link not in LINKS:
        raise FitError(f"unknown link {link!r}; choose one of {', '.join(LINKS)}")
    return link


@dataclass(frozen=True, eq=False)
class LinkModel:
    """The NumPyro model of step 2: accuracy around the link of task loss, per-run effects
    integrated out (:func:`bayescale.models.config_log_likelihood`). Priors (arguments):
    floor ``TruncatedNormal(chance, 0.05)`` on [0, 1] (a wide one, sd 0.5, without a known
    chance), ceiling uniform between the floor and 1, ``k`` and ``gamma`` log-normal around
    ``1 / sd(u)``, ``u0`` normal around the data's mean with 3 times their range, ``kappa``
    log-normal around 0.1, noise scales half-normal (0.03)."""

    link: str
    n_runs: int
    noise: str = "per_run"

    @property
    def key(self) -> tuple:
        return ("task_link/3", self.link, self.n_runs, self.noise)

    def __call__(self, u, acc=None, run=None, prior=None, mask=None):
        import numpyro
        import numpyro.distributions as dist

        from bayescale._jax import jnp
        from bayescale.models import OBS_SITE, observe_repeats

        floor = numpyro.sample("floor", dist.TruncatedNormal(prior["floor_loc"],
                                                             prior["floor_scale"], low=0.0,
                                                             high=1.0))
        if self.link == "sigmoid":
            headroom = numpyro.sample("headroom", dist.Uniform(0.0, 1.0))
            k = numpyro.sample("k", dist.LogNormal(prior["rate_loc"], 1.0))
            u0 = numpyro.sample("u0", dist.Normal(prior["u_mean"], prior["u0_scale"]))
            ceiling = numpyro.deterministic("ceiling", floor + (1.0 - floor) * headroom)
            mu = floor + (ceiling - floor) / (1.0 + jnp.exp(k * (u - u0)))
        else:
            kappa = numpyro.sample("kappa", dist.LogNormal(jnp.log(0.1), 1.5))
            gamma = numpyro.sample("gamma", dist.LogNormal(prior["rate_loc"], 1.0))
            mu = floor + kappa * jnp.exp(-gamma * (u - prior["u_mean"]))
        sigma = numpyro.sample("sigma", dist.HalfNormal(0.03))
        # ``mask``: False for padding rows (they take run n_runs - 1, which no real row uses)
        if self.noise == "run_effect":
            tau = numpyro.sample("tau", dist.HalfNormal(0.03))
            observe_repeats(mu, sigma, tau, acc, run, self.n_runs, mask)
        elif self.noise == "per_run" and acc is not None:
            # Each run's checkpoints count as one observation: weights 1 / (its checkpoints).
            import jax

            real = jnp.ones_like(u) if mask is None else mask.astype(u.dtype)
            count = jax.ops.segment_sum(real, run, num_segments=self.n_runs)
            weight = real / jnp.maximum(jnp.take(count, run), 1.0)
            numpyro.factor(OBS_SITE, jnp.sum(weight * dist.Normal(mu, sigma).log_prob(acc)))
        else:
            with numpyro.plate("rows", u.shape[-1]), numpyro.handlers.mask(
                    mask=True if mask is None else mask):
                numpyro.sample(OBS_SITE, dist.Normal(mu, sigma), obs=acc)


def _link_prior(u: np.ndarray, chance: float | None) -> dict[str, np.ndarray]:
    sd = float(np.std(u)) or 1.0
    return {"floor_loc": np.asarray(0.5 if chance is None else float(chance)),
            "floor_scale": np.asarray(0.5 if chance is None else 0.05),
            "rate_loc": np.asarray(math.log(1.0 / sd)),
            "u_mean": np.asarray(float(np.mean(u))),
            "u0_scale": np.asarray(3.0 * max(float(np.ptp(u)), 1e-6))}


def _diagnostics(chained: Mapping[str, np.ndarray], divergences: int) -> dict[str, np.ndarray]:
    """Step 2's R-hat, bulk ESS and divergences (as ``_``-named one-element arrays)."""
    from bayescale._compat import import_arviz
    from bayescale.inference import ESS_MIN, RHAT_MAX

    az = import_arviz()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rhat = max(float(az.rhat(v)) for v in chained.values()) if len(
            next(iter(chained.values()))) > 1 else float("nan")
        ess = min(float(az.ess(v, method="bulk")) for v in chained.values())
    ok = (not rhat > RHAT_MAX) and ess >= ESS_MIN and divergences == 0
    return {"_max_rhat": np.asarray([rhat]), "_min_ess_bulk": np.asarray([ess]),
            "_divergences": np.asarray([divergences]), "_converged": np.asarray([ok])}


def _simulation_args(a):
    return (a[0], None, *a[2:])


def _fit_links(parts: Mapping[str, tuple[np.ndarray, np.ndarray, np.ndarray, float | None]], *,
               link: str, noise: str, chains: int, warmup: int, draws: int, seed: int,
               progress: bool, like: Mapping[str, tuple] | None = None
               ) -> dict[str, dict[str, np.ndarray]]:
    """Step 2 for each named ``(u, acc, run index, chance)``: posterior draws by site, flat
    (chains * draws,). Every part runs in one program (:func:`bayescale._nuts.run_nuts` with
    a batch axis), padded to the most rows and one run more than the most runs of ``parts``
    and of ``like`` (parts of which ``parts`` are subsets: a backtest's refits then run the
    full fit's program); padding rows are masked out and take that last run."""
    from bayescale._nuts import run_nuts
    from bayescale.inference import sampler_spec
    from bayescale.models import OBS_SITE

    # A sigmoid whose ceiling the data do not reach has a curved ridge (ceiling, k, u0): at
    # target_accept 0.95 it left up to 24 divergent transitions, and with 1000 draws per chain
    # R-hat reached 1.018; 0.995 and twice the draws gave none and R-hat <= 1.006. Step 2 is
    # cheap (seconds per task); predictions thin its draws evenly to step 1's number.
    spec = sampler_spec(chains=chains, warmup=warmup, draws=2 * draws, target_accept=0.995,
                        dense_mass=True)
    every = [*parts.values(), *(like or {}).values()]
    rows = max(len(p[0]) for p in every)
    n_runs = max(int(np.max(p[2])) + 1 for p in every) + 1
    names = list(parts)
    model = LinkModel(link, n_runs, noise)
    args = []
    for name in names:
        u, acc, run, chance = parts[name]
        u, acc = np.asarray(u, float), np.asarray(acc, float)
        extra = rows - len(u)
        args.append((np.r_[u, np.repeat(u[-1:], extra)], np.r_[acc, np.repeat(acc[-1:], extra)],
                     np.r_[np.asarray(run, int), np.full(extra, n_runs - 1)],
                     _link_prior(u, chance),
                     np.r_[np.ones(len(u), bool), np.zeros(extra, bool)]))
    import jax

    batched = jax.tree_util.tree_map(lambda *v: np.stack(v), *args) if len(args) > 1 else None
    result = run_nuts(model, args[0], spec, seed=int(seed), obs_site=OBS_SITE,
                      predictive_args=_simulation_args, model_key=model.key,
                      batched_args=batched, n_elements=len(args), progress=progress,
                      description=f"task link ({link}), {len(names)} task"
                      f"{'s' if len(names) > 1 else ''} x {rows} checkpoints", rows=rows)
    out = {}
    for g, name in enumerate(names):
        rows_g = slice(g * spec.chains, (g + 1) * spec.chains)
        chained = {k: np.asarray(v[rows_g]) for k, v in result.posterior.items()
                   if np.ndim(v) == 2}
        draws_g = {k: v.reshape(-1) for k, v in chained.items()}
        stats = {k: np.asarray(v[rows_g]) for k, v in result.stats.items()}
        draws_g.update(_diagnostics(chained, int(np.sum(stats.get("diverging", 0)))))
        if link == "exponential":
            draws_g["u_ref"] = np.full(draws_g["floor"].shape, float(np.mean(parts[name][0])))
        out[name] = draws_g
    return out


# ------------------------------------------------------------------------------- results
@dataclass(frozen=True)
class TaskPrediction:
    """Predicted accuracy at P targets (N, D), both steps' uncertainty chained.

    Attributes
    ----------
    task : str
    N, D : numpy.ndarray
        (P,) targets.
    accuracy_draws : numpy.ndarray
        (S, P) accuracy of a new run: step 1's new-run task loss, step 2's link and run noise.
    mean_draws : numpy.ndarray
        (S, P) the link at step 1's law (no noise, no form error); its median is the
        table's ``law_accuracy`` (not a new run's expected accuracy: ``accuracy`` is that run's
        median, noise and the form error included).
    task_loss : Prediction or None
        Step 1's prediction of the task loss (None for the single-step model).
    level : float
    flags : tuple of str
        Why the task is not predictable (empty: it passed every check).
    """

    task: str
    N: np.ndarray
    D: np.ndarray
    accuracy_draws: np.ndarray
    mean_draws: np.ndarray
    task_loss: Any
    level: float = 0.9
    flags: tuple[str, ...] = ()

    @property
    def predictable(self) -> bool:
        return not self.flags

    def prob_at_least(self, target: float) -> np.ndarray:
        """(P,) posterior probability that a new run's accuracy is at least ``target``."""
        return np.mean(self.accuracy_draws >= float(target), axis=0)

    def table(self, level: float | None = None) -> pd.DataFrame:
        level = check_level(self.level if level is None else level)
        med, lo, hi = interval(self.accuracy_draws, level)
        if self.task_loss is None:  # the single-step model predicts no task loss
            lmed = llo = lhi = np.full(len(self.N), np.nan)
        else:
            lmed, llo, lhi = interval(self.task_loss.new_run_draws, level)
        return pd.DataFrame({"N": self.N, "D": self.D, "task_loss": lmed,
                             "task_loss_lo": llo, "task_loss_hi": lhi, "accuracy": med,
                             "accuracy_lo": lo, "accuracy_hi": hi,
                             "law_accuracy": np.median(self.mean_draws, axis=0)})

    def to_dict(self, level: float | None = None) -> dict[str, Any]:
        level = check_level(self.level if level is None else level)
        return {"task": self.task, "level": level, "predictable": self.predictable,
                "flags": list(self.flags),
                "predictions": self.table(level).to_dict(orient="records")}


@dataclass(frozen=True)
class TaskCompute:
    """The least compute whose run reaches ``target`` accuracy with probability ``prob``."""

    task: str
    target: float
    prob: float
    compute: float
    N: float
    D: float
    achieved: float
    reached: bool
    flags: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


class TaskFit:
    """Both steps of a task model (:func:`fit_task`).

    Attributes
    ----------
    data : TaskData
    step1 : ScalingFit or None
        Task loss from (N, D) (None for the single-step model).
    link : str
    link_draws : dict
        Step 2's posterior draws by site, (S,).
    steps : int
        2 (task loss, then accuracy) or 1 (accuracy from compute).
    rows : str
        Step 2's rows (``"second_half"``, ``"all"``, ``"final"``).
    flags : tuple of str
        Why the task is not predictable (see the module docstring); empty when it is.
    checks : dict
        What the checks measured (movement over noise, rank correlation, backtest).
    """

    def __init__(self, data: TaskData, step1, link: str, link_draws: dict, *, steps: int = 2,
                 rows: str = "second_half", flags: Sequence[str] = (),
                 checks: Mapping[str, Any] | None = None, seed: int = 0):
        self.data, self.step1, self.link = data, step1, link
        self.link_draws = link_draws
        self.steps, self.rows, self.seed = steps, rows, seed
        self.flags = tuple(flags)
        self.checks = dict(checks or {})

    @property
    def task(self) -> str:
        return self.data.task

    @property
    def predictable(self) -> bool:
        return not self.flags

    def _params(self, size: int | None = None) -> dict[str, np.ndarray]:
        """Step 2's draws by site; with ``size``, that many evenly spaced over all of them
        (every chain represented: draws are stored chain after chain)."""
        out = {k: v for k, v in self.link_draws.items() if not k.startswith("_")}
        if size is None:
            return out
        n = len(out["sigma"])
        idx = np.arange(n) if size >= n else np.floor(np.arange(size) * n / size).astype(int)
        return {k: v[idx] for k, v in out.items()}

    def link_at(self, u) -> np.ndarray:
        """(S, P) step 2's expected accuracy at task losses ``u`` (P,)."""
        p = self._params()
        u = np.atleast_1d(np.asarray(u, dtype=float))
        return np.clip(link_mean(u[None, :], {k: v[:, None] for k, v in p.items()}, self.link),
                       0.0, 1.0)

    @property
    def diagnostics(self) -> dict[str, Any]:
        """Both steps' sampler diagnostics: ``step1`` (:attr:`ScalingFit.diagnostics`),
        ``step2`` (max R-hat, min bulk ESS, divergences), and ``converged`` for both."""
        d = self.link_draws
        step2 = ({"max_rhat": float(d["_max_rhat"][0]), "min_ess_bulk": float(d["_min_ess_bulk"][0]),
                  "divergences": int(d["_divergences"][0]), "converged": bool(d["_converged"][0])}
                 if "_converged" in d else None)
        step1 = getattr(self.step1, "diagnostics", None)
        ok = all(x is None or x["converged"] for x in (step1, step2))
        return {"step1": step1, "step2": step2, "converged": ok}

    @property
    def run_noise(self) -> np.ndarray:
        """(S,) sd of a new run's accuracy around the link: run effect and checkpoint noise."""
        tau = self.link_draws.get("tau", 0.0)
        return np.sqrt(self.link_draws["sigma"] ** 2 + np.asarray(tau) ** 2)

    def _u(self, N, D) -> tuple[np.ndarray, np.ndarray, Any]:
        """Step 2's input at targets: new-run and law draws, (S, P) each, and step 1's
        prediction."""
        from bayescale.predict import predict

        if self.steps == 1:
            k = 6.0
            u = -np.log10(k * np.asarray(N, float) * np.asarray(D, float))[None, :]
            return u, u, None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # beyond-data warnings: the CLI prints its own
            pred = predict(self.step1, N=N, D=D, seed=self.seed)
        return pred.new_run_draws, pred.law_draws, pred

    def predict(self, N, D, *, level: float = 0.9, seed: int | None = None) -> TaskPrediction:
        """Accuracy of a new run at targets (N, D) (paired elementwise), both steps chained."""
        N, D = np.broadcast_arrays(np.atleast_1d(np.asarray(N, float)),
                                   np.atleast_1d(np.asarray(D, float)))
        if not (np.all(np.isfinite(N) & (N > 0)) and np.all(np.isfinite(D) & (D > 0))):
            raise FitError("N and D must be positive numbers of parameters and tokens")
        level = check_level(level)
        u_new, u_law, pred = self._u(N, D)
        size = len(self.link_draws["sigma"])
        if u_new.shape[0] > 1:  # pair with step 1's draws: as many of step 2's, evenly spaced
            size = min(size, u_new.shape[0])
        params = self._params(size)
        p = {k: v[:, None] for k, v in params.items()}
        u_new = np.broadcast_to(u_new[:size] if u_new.shape[0] > 1 else u_new, (size, len(N)))
        u_law = np.broadcast_to(u_law[:size] if u_law.shape[0] > 1 else u_law, (size, len(N)))
        rng = np.random.default_rng(self.seed if seed is None else seed)
        tau = params.get("tau", 0.0)
        noise = rng.standard_normal((size, len(N))) * np.sqrt(params["sigma"] ** 2
                                                               + np.asarray(tau) ** 2)[:, None]
        mean = np.clip(link_mean(u_law, p, self.link), 0.0, 1.0)
        acc = np.clip(link_mean(u_new, p, self.link) + noise, 0.0, 1.0)
        return TaskPrediction(self.task, N, D, acc, mean, pred, level, self.flags)

    def prob_at_least(self, target: float, *, N, D) -> np.ndarray:
        """(P,) P(a new run at (N, D) reaches at least ``target`` accuracy)."""
        return self.predict(N, D).prob_at_least(_accuracy(target))

    def compute_for_accuracy(self, target: float, *, prob: float = 0.9,
                             tokens_per_param: float | None = None,
                             max_factor: float = 1e6) -> TaskCompute:
        """The least compute C whose new run reaches ``target`` accuracy with probability at
        least ``prob``: along the split with ``tokens_per_param`` (D/N) when given, else at
        the posterior-median compute-optimal split of step 1's law (the least task loss,
        hence the best accuracy, for the budget; the single-step model, which has no step 1,
        uses 20 tokens per parameter). Searched on a grid from the smallest
        training compute to ``max_factor`` times the largest, then refined; ``reached`` is
        False (and ``achieved`` the best probability) when no budget there gets there."""
        from bayescale.allocation import compute_optimal

        target = _accuracy(target)
        prob = check_level(prob)
        c = 6.0 * self.data.N[self.data.final] * self.data.D[self.data.final]

        def split(C):
            C = np.asarray(C, float)
            if tokens_per_param is not None:
                n = np.sqrt(C / (6.0 * float(tokens_per_param)))
                return n, C / (6.0 * n)
            if self.steps == 1:
                n = np.sqrt(C / 120.0)
                return n, C / (6.0 * n)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                alloc = compute_optimal(self.step1, C, warn=False)
            n = np.median(alloc.N_opt, axis=0)
            return n, C / (6.0 * n)

        def probs(C):
            n, d = split(C)
            return self.predict(n, d).prob_at_least(target), n, d

        grid = np.logspace(np.log10(c.min()), np.log10(c.max() * float(max_factor)), 49)
        p, n, d = probs(grid)
        hit = np.flatnonzero(p >= prob)
        if len(hit) == 0:
            i = int(np.argmax(p))
            return TaskCompute(self.task, target, prob, float(grid[i]), float(n[i]), float(d[i]),
                               float(p[i]), False, self.flags)
        i = int(hit[0])
        if i > 0:
            fine = np.logspace(np.log10(grid[i - 1]), np.log10(grid[i]), 33)
            pf, nf, df = probs(fine)
            j = int(np.flatnonzero(pf >= prob)[0]) if (pf >= prob).any() else len(fine) - 1
            return TaskCompute(self.task, target, prob, float(fine[j]), float(nf[j]),
                               float(df[j]), float(pf[j]), True, self.flags)
        return TaskCompute(self.task, target, prob, float(grid[0]), float(n[0]), float(d[0]),
                           float(p[0]), True, self.flags)

    def summary(self, level: float = 0.9) -> pd.DataFrame:
        """Step 2's parameters (median and central interval)."""
        level = check_level(level)
        rows = []
        for name, v in self._params().items():
            if name == "u_ref":
                continue
            med, lo, hi = interval(v, level)
            rows.append({"parameter": name, "median": float(med), "lo": float(lo),
                         "hi": float(hi)})
        return pd.DataFrame(rows).set_index("parameter")

    def to_dict(self) -> dict[str, Any]:
        return {"task": self.task, "steps": self.steps, "link": self.link, "rows": self.rows,
                "runs": self.data.n_runs, "checkpoints": int(self.data.link_rows(self.rows).sum()),
                "predictable": self.predictable, "flags": list(self.flags),
                "checks": self.checks, "converged": self.diagnostics["converged"],
                "link_parameters": self.summary().reset_index().to_dict(orient="records"),
                "law": None if self.step1 is None else self.step1.law.name}

    # ------------------------------------------------------------------ persistence
    def save(self, path: str | os.PathLike) -> Path:
        """Write both steps to one netCDF file (atomically); :func:`load_task_fit` reads it."""
        import xarray as xr

        from bayescale.io import atomic_write_bytes, output_path

        path = Path(path)
        output_path(path, what="task fit file")
        meta = {"format": "bayescale-task/1", "link": self.link, "steps": self.steps,
                "rows": self.rows, "seed": self.seed, "flags": list(self.flags),
                "checks": self.checks, "data": self.data.to_dict(),
                "diagnostics": {k: np.asarray(v).tolist() for k, v in self.link_draws.items()
                                if k.startswith("_")}}
        link = xr.Dataset({k: ("draw", np.asarray(v)) for k, v in self.link_draws.items()
                           if not k.startswith("_")})
        link.attrs["bayescale_task"] = json.dumps(meta)
        groups = {"task_link": link}
        if self.step1 is not None:
            idata = self.step1.idata.copy()
            idata.posterior.attrs["bayescale"] = json.dumps(self.step1._meta())
            groups.update({g: idata[g] for g in idata.groups()})
        from xarray import DataTree

        atomic_write_bytes(path, DataTree.from_dict(groups).to_netcdf(engine="h5netcdf"))
        return path


def is_task_fit(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a file written by :meth:`TaskFit.save`."""
    import xarray as xr

    try:
        with xr.open_dataset(path, group="task_link", engine="h5netcdf") as link:
            return "bayescale_task" in link.attrs
    except Exception:  # noqa: BLE001 - anything else is not a task fit
        return False


def _is_loss_fit(path: Path) -> bool:
    """True when ``path`` reads as a fit of the loss (``bayescale fit --out``)."""
    from bayescale.inference import load_fit

    try:
        load_fit(path)
    except Exception:  # noqa: BLE001 - anything else: not one
        return False
    return True


def load_task_fit(path: str | os.PathLike) -> TaskFit:
    """Read a task fit written by :meth:`TaskFit.save` (``bayescale task fit --out``)."""
    import xarray as xr

    path = Path(path)
    if not path.exists():
        raise FitError(f"task fit file not found: {path}; make one with `bayescale task fit ... "
                       f"--out {path.name}`")
    try:
        link = xr.open_dataset(path, group="task_link", engine="h5netcdf").load()
        meta = json.loads(link.attrs["bayescale_task"])
    except Exception:  # noqa: BLE001 - one message for every way it is not a task fit
        raise FitError(f"{path} is not a bayescale task fit file"
                       + (" but a fit of the loss: `bayescale predict`, `allocate` and `decide` "
                          "read it" if _is_loss_fit(path) else " (or it is damaged)")
                       + "; make a task fit with `bayescale task fit ... --out FIT.nc`") from None
    step1 = None
    if meta["steps"] == 2:
        from bayescale.inference import ScalingFit

        step1 = ScalingFit.load(path)
        if "task_link" in step1.idata.groups():
            del step1.idata["task_link"]
    draws = {k: np.asarray(link[k].values) for k in link.data_vars}
    draws.update({k: np.asarray(v) for k, v in meta.get("diagnostics", {}).items()})
    return TaskFit(TaskData.from_dict(meta["data"]), step1, meta["link"], draws,
                   steps=meta["steps"], rows=meta["rows"], flags=meta["flags"],
                   checks=meta["checks"], seed=meta["seed"])


def _accuracy(target) -> float:
    try:
        t = float(target)
    except (TypeError, ValueError):
        raise FitError(f"a target accuracy is a number in (0, 1), got {target!r}") from None
    if not 0.0 < t < 1.0:
        hint = " (percent? give 0.6, not 60)" if 1 < t <= 100 else ""
        raise FitError(f"a target accuracy must lie in (0, 1){hint}; got {target!r}")
    return t


# ------------------------------------------------------------------------------- fitting
def _inputs(data: TaskData, rows: str, steps: int):
    mask = data.link_rows(rows if steps == 2 else "final")
    u = data.loss[mask] if steps == 2 else -np.log10(6.0 * data.N[mask] * data.D[mask])
    run = np.unique(data.run[mask], return_inverse=True)[1].reshape(-1)
    return u, data.accuracy[mask], run, mask


def _checks(fit: TaskFit, u: np.ndarray, acc: np.ndarray) -> tuple[list[str], dict[str, Any]]:
    """The flat and monotone checks (the backtest is added by :func:`fit_tasks`)."""
    from scipy.stats import spearmanr

    flags, checks = [], {}
    lo, hi = np.quantile(u, [0.05, 0.95])
    move = np.abs(fit.link_at([lo])[:, 0] - fit.link_at([hi])[:, 0])
    noise = fit.run_noise
    ratio = float(np.median(move) / np.median(noise))
    checks["movement_over_noise"] = ratio
    if ratio < FLAT_RATIO:
        flags.append(f"flat: the fitted link moves {100 * np.median(move):.1f} points across "
                     f"the training checkpoints' task losses, under {FLAT_RATIO:g}x a run's "
                     f"noise around it ({100 * np.median(noise):.1f} points): the accuracy is "
                     "near chance, not yet emerging, or not a function of task loss")
    rho = float(spearmanr(u, acc).statistic) if np.ptp(acc) > 0 else 0.0
    checks["spearman"] = rho
    if rho > MONOTONE_RHO:
        what = "task loss" if fit.steps == 2 else "compute"
        flags.append(f"not monotone: accuracy does not rise steadily as {what} improves "
                     f"(Spearman rank correlation {rho:+.2f} over the checkpoints)")
    return flags, checks


def fit_task(data: TaskData, **options) -> TaskFit:
    """Fit the two-step task model to one task's training curves (see the module docstring).

    Parameters
    ----------
    data : TaskData
        Checkpoints with task loss and accuracy (:meth:`TaskData.from_frame`,
        :func:`bayescale.datasets.load_task`).
    law : str, default "chinchilla"
        Step 1's law of task loss in N and D.
    link : {"sigmoid", "exponential"}
        Step 2's link.
    steps : {2, 1}
        2: task loss, then accuracy; 1: accuracy from compute (the single-step baseline,
        final checkpoints).
    rows : {"second_half", "all", "final"}
        Step 2's checkpoints.
    check : bool, default True
        Run the checks that flag unpredictable tasks, the backtest included (it refits both
        steps without the largest model size: about twice the time).
    chains, warmup, draws, seed, progress
        NUTS settings of both steps (:func:`bayescale.fit`); step 2 samples twice the draws
        with ``target_accept=0.995`` (its sigmoid mixes more slowly).
    **options
        Anything else goes to step 1's :func:`bayescale.fit` (``noise``, ``priors``,
        ``target_accept``...). Step 1 models per-run Student-t noise (``repeats=False``)
        unless told otherwise: a ladder reruns few configurations, too few for the
        repeated-run model's configuration scale.

    Returns
    -------
    TaskFit
    """
    return fit_tasks({data.task or "task": data}, **options)[data.task or "task"]


def fit_tasks(tasks: Mapping[str, TaskData] | Sequence[TaskData], *, law: str = "chinchilla",
              link: str = "sigmoid", steps: int = 2, rows: str = "second_half",
              check: bool = True, chains: int = 4, warmup: int = 1000, draws: int = 1000,
              seed: int = 0, progress: bool = True, **fit_options) -> dict[str, TaskFit]:
    """:func:`fit_task` for many tasks at once: step 1 of every task in one
    :func:`bayescale.fit_many` program, step 2 of same-shaped tasks in one NUTS program.
    Returns a dict of :class:`TaskFit` by task name."""

    if not isinstance(tasks, Mapping):
        tasks = {t.task or str(i): t for i, t in enumerate(tasks)}
    if not tasks:
        raise FitError("no tasks to fit")
    for name, t in tasks.items():
        if not isinstance(t, TaskData):
            raise FitError(f"task {name!r}: expected TaskData (TaskData.from_frame or "
                           f"datasets.load_task), got {type(t).__name__}")
    _check_link(link)
    if steps not in (1, 2):
        raise FitError(f"steps must be 2 (task loss, then accuracy) or 1 (accuracy from "
                       f"compute), got {steps!r}")
    opts = dict(chains=chains, warmup=warmup, draws=draws, seed=seed)
    fits = _fit_both(tasks, law=law, link=link, steps=steps, rows=rows, progress=progress,
                     fit_options=fit_options, **opts)
    for name, f in fits.items():
        u, acc, _, _ = _inputs(tasks[name], rows, steps)
        flags, checks = _checks(f, u, acc)
        f.flags, f.checks = tuple(flags), checks
        step2 = f.diagnostics["step2"]
        if step2 is not None and not step2["converged"]:
            from bayescale.inference import ConvergenceWarning

            warnings.warn(f"task {name!r}: step 2's sampler did not converge (max R-hat "
                          f"{step2['max_rhat']:.3f}, min bulk ESS {step2['min_ess_bulk']:.0f}, "
                          f"{step2['divergences']} divergent transitions): more --warmup and "
                          "--draws, or another link", ConvergenceWarning, stacklevel=2)
    if check:
        _backtest(tasks, fits, law=law, link=link, steps=steps, rows=rows,
                  fit_options=fit_options, **opts)
    return fits


def _fit_both(tasks, *, law, link, steps, rows, progress, fit_options, chains, warmup, draws,
              seed, link_noise="per_run", like=None) -> dict[str, TaskFit]:
    """Both steps of every task; ``like``: the tasks of which ``tasks`` are parts (a
    backtest's), whose padding the refits take so they run the full fits' programs."""
    from bayescale.many import fit_many

    step1 = {name: None for name in tasks}
    # Per-run Student-t noise by default: a ladder reruns few configurations (three in the
    # OLMo ladder's 190M-760M runs), and with so few the repeated-run model's configuration
    # scale has a funnel that NUTS diverges in.
    fit_options = {"repeats": False, **fit_options}
    if steps == 2:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="repeats='auto'")
            step1 = dict(fit_many({n: t.finals() for n, t in tasks.items()}, law=law,
                                  chains=chains, warmup=warmup, draws=draws, seed=seed,
                                  progress=progress, pad_like=like and {
                                      n: t.finals() for n, t in like.items()},
                                  **fit_options))
    parts = {name: (*_inputs(t, rows, steps)[:3], t.chance) for name, t in tasks.items()}
    like_parts = like and {name: (*_inputs(t, rows, steps)[:3], t.chance)
                           for name, t in like.items()}
    links = _fit_links(parts, link=link, noise=link_noise if steps == 2 else "independent",
                       chains=chains, warmup=warmup, draws=draws, seed=seed,
                       progress=progress, like=like_parts)
    return {name: TaskFit(t, step1[name], link, links[name], steps=steps, rows=rows, seed=seed)
            for name, t in tasks.items()}


def _backtest(tasks, fits, *, law, link, steps, rows, fit_options, **opts) -> None:
    """Refit without each task's largest model size; flag a task whose 90% band holds too few
    of that size's final checkpoints (binomial tail below 5% for a calibrated band)."""
    from scipy.stats import binom

    held, train = {}, {}
    for name, t in tasks.items():
        sizes = np.unique(t.N)
        if len(sizes) < 3:
            fits[name].checks["backtest"] = None  # too few sizes to hold one out
            continue
        keep = t.N < sizes[-1]
        train[name], held[name] = t.subset(keep), t.subset(~keep)
    if not train:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        refits = _fit_both(train, law=law, link=link, steps=steps, rows=rows, progress=False,
                           fit_options=fit_options, like=tasks, **opts)
    for name, refit in refits.items():
        h = held[name]
        f = h.final
        pred = refit.predict(h.N[f], h.D[f], level=0.9)
        _, lo, hi = interval(pred.accuracy_draws, 0.9)
        actual = h.accuracy[f]
        inside = int(np.sum((actual >= lo) & (actual <= hi)))
        n = int(f.sum())
        error = float(np.median(np.abs(np.median(pred.accuracy_draws, axis=0) - actual)))
        tail = float(binom.cdf(inside, n, 0.9))
        fits[name].checks["backtest"] = {"size": float(h.N[0]), "runs": n, "inside_90": inside,
                                         "median_abs_error": error, "p_value": tail}
        if tail < 0.05:
            fits[name].flags = fits[name].flags + (
                f"backtest: fitted without the largest model size ({h.N[0]:.3g} parameters), "
                f"the 90% band held {inside} of its {n} final checkpoints (a calibrated band "
                f"does so this rarely with probability {tail:.3f}); median error "
                f"{100 * error:.1f} points",)
