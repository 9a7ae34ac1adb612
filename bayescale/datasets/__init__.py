"""Real, published scaling-law measurements bundled with bayescale, each with its citation.

``load_dataset(name, ...)`` returns a :class:`bayescale.ScalingData`; ``list_datasets()`` a table of
what is here. The README of each source (provenance, licence, caveats, published estimates) ships
beside its CSV and is returned by ``dataset_readme(name)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

import pandas as pd

from bayescale.data import ScalingData
from bayescale.errors import DataError

__all__ = ["load_dataset", "load_task", "list_tasks", "list_datasets", "dataset_readme",
           "load_frame", "DATASETS"]


@dataclass(frozen=True)
class _Dataset:
    name: str
    file: str
    readme: str
    description: str
    citation: str


DATASETS: dict[str, _Dataset] = {
    d.name: d
    for d in (
        _Dataset(
            "chinchilla", "chinchilla.csv", "chinchilla_README.txt",
            "Chinchilla training runs (N, D, C, loss) digitized by Epoch AI from Hoffmann et al. "
            "Figure 4; 240 rows that Epoch fit (all=True keeps the 5 highest-loss outliers)",
            "Hoffmann et al. 2022, Training Compute-Optimal Large Language Models, "
            "arXiv:2203.15556; Besiroglu, Erdil, Barnett, You 2024, Chinchilla Scaling: A "
            "replication attempt, arXiv:2404.10102 (github.com/epoch-research/analyzing-chinchilla)",
        ),
        _Dataset(
            "porian2024", "porian2024.csv", "porian2024_README.txt",
            "IsoFLOP points (N, D, C, loss) of 15 configurations; pick one with config= and "
            "corpus= ('rw' or 'owt2'), or 'all' for groups; default 'Optimizer tuning (no "
            "decay)' on RefinedWeb",
            "Porian, Wortsman, Jitsev, Schmidt, Carmon 2024, Resolving Discrepancies in "
            "Compute-Optimal Scaling of Language Models, arXiv:2406.19146 "
            "(github.com/formll/resolving-scaling-law-discrepancies, MIT)",
        ),
        _Dataset(
            "datablations", "datablations.csv", "datablations_README.txt",
            "Data-constrained C4 runs (N, D, unique tokens U, val loss) with repeated seeds; "
            "single-epoch runs (D <= U) by default, all=True keeps every run",
            "Muennighoff et al. 2023, Scaling Data-Constrained Language Models, NeurIPS 2023, "
            "arXiv:2305.16264 (github.com/huggingface/datablations, Apache-2.0)",
        ),
        _Dataset(
            "revisiting", "revisiting.csv", "revisiting_README.txt",
            "One-variable learning curves (x = examples or tokens seen, loss) of NMT and LM "
            "models with is_train flags; pick a curve with domain= and model=",
            "Alabdulmohsin, Neyshabur, Zhai 2022, Revisiting Neural Scaling Laws in Language and "
            "Vision, NeurIPS 2022, arXiv:2209.06640 (github.com/google-research/google-research, "
            "Apache-2.0)",
        ),
        _Dataset(
            "olmo_ladder", "olmo_ladder.csv", "olmo_ladder_README.txt",
            "OLMo model ladder: 30 runs (5 sizes 190M-3.2B x 0.5-10x Chinchilla tokens, plus a 1xC "
            "rerun of each size), every checkpoint with 11 LM losses and 20 task bpb/accuracies; "
            "final checkpoints by default, metric= picks the loss, checkpoints=True keeps all",
            "Bhagia, Liu, Wettig, et al. 2024, Establishing Task Scaling Laws via "
            "Compute-Efficient Model Ladders, arXiv:2412.04403 (github.com/allenai/OLMo-ladder, "
            "Apache-2.0)",
        ),
    )
}


def _get(name: str) -> _Dataset:
    try:
        return DATASETS[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; bundled: {', '.join(DATASETS)} "
                        "(list them with `bayescale datasets`)") from None


def dataset_readme(name: str) -> str:
    """Provenance, licence, columns and published estimates of a bundled dataset."""
    return resources.files(__name__).joinpath(_get(name).readme).read_text()


def load_frame(name: str) -> pd.DataFrame:
    """The raw bundled CSV of ``name`` as a DataFrame (all rows, original columns)."""
    with resources.files(__name__).joinpath(_get(name).file).open() as f:
        return pd.read_csv(f)


def _pick(df: pd.DataFrame, column: str, value, what: str) -> pd.DataFrame:
    choices = sorted(df[column].astype(str).unique())
    if str(value) not in choices:
        raise DataError(f"unknown {what} {value!r}; choose one of {choices}")
    return df[df[column].astype(str) == str(value)]


def _olmo_ladder(df: pd.DataFrame, metric: str, checkpoints: bool, citation: str) -> ScalingData:
    losses = [c for c in df.columns if c.startswith(("loss_", "bpb_"))]
    if metric.startswith("acc_") and metric in df.columns:
        raise DataError(f"metric {metric!r} is an accuracy (higher is better), not a loss: "
                        "choose a loss_* (nats) or bpb_* (bits per byte) column, e.g. "
                        f"{'bpb_' + metric[4:]!r}")
    if metric not in losses:
        raise DataError(f"unknown metric {metric!r} for olmo_ladder; choose one of: "
                        f"{', '.join(losses)}")
    if not checkpoints:
        df = df[df["final"] == 1]
    df = df.assign(seed=df["rerun"].astype(str))  # "1" marks a rerun of the same configuration
    which = "checkpoints" if checkpoints else "final"
    return ScalingData.from_frame(df, n_col="N_params", d_col="D_tokens", loss_col=metric,
                                  seed_col="seed", name=f"olmo_ladder/{metric}/{which}",
                                  citation=citation)


def load_dataset(name: str, *, all: bool = False, config: str = "Optimizer tuning (no decay)",
                 corpus: str = "rw", domain: str = "LM", model: str | None = None,
                 split: str | None = None, metric: str = "loss_c4_en",
                 checkpoints: bool = False) -> ScalingData:
    """Load a bundled dataset as :class:`ScalingData`.

    Parameters
    ----------
    name: ``"chinchilla"``, ``"porian2024"``, ``"datablations"``, ``"revisiting"`` or
        ``"olmo_ladder"``.
    all: chinchilla: keep the 5 highest-loss runs that Epoch AI dropped (245 rows instead of 240);
        datablations: keep multi-epoch runs too (D > U).
    config, corpus: porian2024 configuration label and corpus (``"rw"`` or ``"owt2"``);
        ``"all"`` keeps every configuration (or corpus), labelled as groups for
        :func:`bayescale.fit_many`: ``config="all", corpus="all"`` gives the 15 configurations.
    domain, model: revisiting curve (``domain`` "LM" or "NMT"; ``model`` e.g. "1.68e+07" or
        "6 Enc, 6 Dec"; default the first model of the domain).
    split: revisiting: ``"train"`` or ``"test"`` rows by the is_train flag, or None for both.
    metric: olmo_ladder evaluation used as the loss: ``"loss_c4_en"`` (C4 validation loss, nats) by
        default, any other ``loss_*`` (nats) or task ``bpb_*`` (bits per byte) column of
        ``load_frame("olmo_ladder")``; ``acc_*`` columns are accuracies and are refused.
    checkpoints: olmo_ladder: every evaluated checkpoint of every run (3569 rows; a run repeats its
        N with growing D, and only its last checkpoint is annealed) instead of the 30 final ones.
        Either way the seed is ``"1"`` for the 1xC reruns and ``"0"`` otherwise, so a rerun and its
        original are repeated runs of one (N, D).
    """
    info = _get(name)
    df = load_frame(name)
    if name == "chinchilla":
        if not all:
            df = df[df["epoch_excluded_outlier"] == 0]
        return ScalingData.from_frame(df, n_col="N_params", d_col="D_tokens", loss_col="loss",
                                      name="chinchilla", citation=info.citation)
    if name == "porian2024":
        picks = (("dataset", corpus, "corpus"), ("config_label", config, "config"))
        for column, value, what in picks:
            if value != "all":
                df = _pick(df, column, value, what)
        labels = [column for column, value, _ in picks if value == "all"]
        if labels:  # one group per corpus and/or configuration, for fit_many
            df = df.assign(group=df[labels].astype(str).agg("/".join, axis=1))
        return ScalingData.from_frame(df, n_col="N_params", d_col="D_tokens", loss_col="loss",
                                      group_col="group" if labels else None,
                                      name=f"porian2024/{corpus}/{config}", citation=info.citation)
    if name == "datablations":
        if not all:
            df = df[df["D_tokens"] <= df["U_unique_tokens"]]
        seed = df["run_name"].str.extract(r"seed(\d+)$")[0].fillna("0").to_numpy()
        data = ScalingData.from_frame(df, n_col="N_params", d_col="D_tokens", loss_col="loss_val",
                                      u_col="U_unique_tokens", name="datablations",
                                      citation=info.citation)
        return ScalingData(loss=data.loss, N=data.N, D=data.D, U=data.U, seed=seed,
                           name=data.name, citation=info.citation)
    if name == "olmo_ladder":
        return _olmo_ladder(df, metric, checkpoints, info.citation)
    # revisiting
    df = _pick(df, "domain", domain, "domain")
    if model is None:
        model = str(df["model"].iloc[0])
    df = _pick(df, "model", model, "model")
    if split is not None:
        if split not in ("train", "test"):
            raise DataError(f"split must be 'train', 'test' or None, got {split!r}")
        df = df[df["is_train"] == (1 if split == "train" else 0)]
    return ScalingData.from_frame(df, x_col="seen_examples", loss_col="loss",
                                  group_col=None, name=f"revisiting/{domain}/{model}",
                                  citation=info.citation)


def list_tasks(name: str = "olmo_ladder") -> list[str]:
    """The downstream tasks of a bundled dataset with task losses and accuracies."""
    if name != "olmo_ladder":
        raise DataError(f"dataset {name!r} has no downstream tasks; olmo_ladder has")
    return [c[4:] for c in load_frame(name).columns if c.startswith("acc_")]


def load_task(name: str = "olmo_ladder", task: str = "hellaswag_val"):
    """A downstream task of a bundled dataset as :class:`bayescale.tasks.TaskData`: every
    checkpoint of every run with the task's loss (``bpb_<task>``, bits per byte of the
    correct answer) and accuracy (``acc_<task>``), the final checkpoints marked, the 1xC
    reruns as seeds of one configuration, and the task's chance accuracy."""
    from bayescale.tasks import TaskData

    tasks = list_tasks(name)
    if task not in tasks:
        raise DataError(f"unknown task {task!r} of {name}; choose one of: {', '.join(tasks)}")
    df = load_frame(name)
    return TaskData.from_frame(df, loss_col=f"bpb_{task}", accuracy_col=f"acc_{task}",
                               n_col="N_params", d_col="D_tokens", run_col="run",
                               final_col="final", seed_col="rerun", task=task,
                               name=f"{name}/{task}", citation=_get(name).citation)


def list_datasets() -> pd.DataFrame:
    """One row per bundled dataset: name, rows loaded by default, description and citation."""
    rows = []
    for d in DATASETS.values():
        rows.append({"name": d.name, "rows": load_dataset(d.name).n_points,
                     "rows_in_file": len(load_frame(d.name)), "description": d.description,
                     "citation": d.citation})
    return pd.DataFrame(rows)


