"""Validated training-run tables: :class:`ScalingData`.

A table of finished runs becomes arrays of parameters N, training tokens D, training compute C
(FLOPs), final loss (nats) and optional group / seed labels. Every problem a user can cause is
raised as :class:`bayescale.DataError` naming the column, the rows (1-based, header not counted)
and the fix.

Two levels of checks:

* every :class:`ScalingData` (however built): numbers only, finite, positive, one value per run,
  and C within 2x of k N D when all three are given;
* tables (:meth:`ScalingData.from_frame`, :meth:`~ScalingData.from_csv`, hence the CLI and the
  bundled datasets) also get the checks for how real tables go wrong: duplicate column names,
  rows identical in every column, sizes that look like millions or billions (largest N or D below
  1000), and a "loss" column that looks like accuracy (every value in [0, 1] and rising with
  compute, Spearman rank correlation above 0.5); losses above 15 (perplexities or a scaled
  loss, not nats) are warned about. :meth:`~ScalingData.from_arrays` skips these
  heuristics, so toy data in arbitrary units can still be built by hand.
"""

from __future__ import annotations

import csv
import difflib
import errno
import io
import os
import re
import unicodedata
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bayescale.errors import DataError

__all__ = ["ScalingData", "COLUMN_ALIASES", "normalize"]

#: Below this largest value, N or D look like they are given in millions or billions.
MIN_PLAUSIBLE_SIZE = 1000.0
#: Above this loss (nats; log of a 3.3M-token vocabulary) values look like perplexities.
MAX_PLAUSIBLE_NATS = 15.0
#: Above this rank correlation with compute (or x), losses all in [0, 1] look like accuracy.
ACCURACY_RHO = 0.5

#: Column names recognised when a column is not named explicitly, in order of preference.
#: Matching ignores case and treats ``/``, ``-``, ``.`` and spaces as ``_`` (:func:`normalize`),
#: so W&B and other exports (``eval/loss``, ``Params``, ``tokens_seen``) are found as well.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "N": ("N", "N_params", "params", "n_params", "num_params", "model_params", "parameters",
          "n_parameters", "num_parameters", "param_count", "nparams", "model_size"),
    "D": ("D", "D_tokens", "tokens", "n_tokens", "num_tokens", "tokens_seen", "train_tokens",
          "training_tokens", "tokens_trained", "total_tokens", "data"),
    "C": ("C", "C_flops", "flops", "compute", "train_flops", "training_flops", "total_flops",
          "flops_total"),
    "x": ("x",),
    "U": ("U", "U_unique_tokens", "unique_tokens", "n_unique_tokens", "num_unique_tokens",
          "unique", "unique_data"),
    "loss": ("loss", "final_loss", "eval_loss", "val_loss", "validation_loss", "loss_val",
             "valid_loss", "test_loss", "eval_loss_final", "train_loss"),
    "group": ("group",),
    "seed": ("seed",),
    "run": ("run", "run_id", "run_name", "wandb_run", "experiment", "run_label"),
}


def normalize(name: str) -> str:
    """A column name as aliases are matched: lower case, ``/ - .`` and spaces as ``_``."""
    return re.sub(r"[\s/.\-]+", "_", str(name).strip()).strip("_").lower()


def _find_alias(key: str, columns: list[str]) -> str | None:
    """The table's column for ``key``: an exact alias first, then one equal up to case and
    separators, in the order of :data:`COLUMN_ALIASES`."""
    for alias in COLUMN_ALIASES[key]:
        if alias in columns:
            return alias
    normalized = {}
    for c in columns:
        normalized.setdefault(normalize(c), c)
    for alias in COLUMN_ALIASES[key]:
        if normalize(alias) in normalized:
            return normalized[normalize(alias)]
    return None


def _rows(mask: np.ndarray, limit: int = 5) -> str:
    idx = np.flatnonzero(mask) + 1
    shown = ", ".join(str(i) for i in idx[:limit])
    more = f" and {len(idx) - limit} more" if len(idx) > limit else ""
    return f"row{'s' if len(idx) > 1 else ''} {shown}{more}"


@dataclass(frozen=True, eq=False)
class ScalingData:
    """Arrays of finished training runs, validated.

    Attributes
    ----------
    loss: final loss of each run (nats), shape (n,).
    N: parameters per run, or None.
    D: training tokens per run, or None (derived as ``C / (k N)`` when only C is given).
    C: training compute in FLOPs, or None (derived as ``k N D`` when N and D are given).
    x: the single input of a one-variable law (e.g. examples seen), or None.
    U: unique training tokens per run (D / U epochs), or None; the ``data_constrained`` law reads
        them.
    group: optional labels (dataset, optimizer, task), kept with the data.
    seed: optional seed labels of repeated runs.
    run: optional run labels: rows with one label are checkpoints of one training run (a
        training curve: D is the tokens seen so far). :func:`bayescale.fit` fits each run's last
        checkpoint (largest D) by default, or every checkpoint with a per-run effect
        (``checkpoints="all"``); see :meth:`final_checkpoints`.
    flops_per_param_token: k in C = k N D (6 by default).
    name, citation: where the data came from.
    columns: the table's column behind each input (``{"N": "num_params", ...}``), when built
        from a table; error messages name those columns.
    """

    loss: np.ndarray
    N: np.ndarray | None = None
    D: np.ndarray | None = None
    C: np.ndarray | None = None
    x: np.ndarray | None = None
    group: np.ndarray | None = None
    seed: np.ndarray | None = None
    U: np.ndarray | None = None
    run: np.ndarray | None = None
    flops_per_param_token: float = 6.0
    name: str = ""
    citation: str = field(default="", repr=False)
    columns: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self):
        k = self.flops_per_param_token
        if not (np.isfinite(k) and k > 0):
            raise DataError(f"flops_per_param_token (--flops-per-param-token) must be a positive "
                            f"number of FLOPs per parameter per token (6 for dense transformers), "
                            f"got {k!r}")
        col = {k: self.columns.get(k, k)
               for k in ("N", "D", "C", "x", "U", "loss", "group", "seed", "run")}
        loss = _numeric(col["loss"], self.loss)
        n = len(loss)
        if n == 0:
            raise DataError("the table has no rows: give at least a few finished training runs")
        arrays = {"loss": loss}
        for name in ("N", "D", "C", "x", "U"):
            value = getattr(self, name)
            if value is not None:
                arr = _numeric(col[name], value)
                if len(arr) != n:
                    raise DataError(
                        f"column {col[name]!r} has {len(arr)} values but {col['loss']!r} has "
                        f"{n}: give one value per run"
                    )
                arrays[name] = arr
        if "x" not in arrays and "N" not in arrays:
            raise DataError(
                "no input column: give parameters N with tokens D or compute C (two-variable "
                "laws), or x (one-variable laws)"
            )
        if "N" in arrays and "D" not in arrays and "C" not in arrays:
            raise DataError(
                "parameters N are given but neither tokens D nor compute C: add a D or C column"
            )
        if "C" in arrays and "N" in arrays:
            if "D" not in arrays:
                arrays["D"] = arrays["C"] / (k * arrays["N"])
            else:
                ratio = arrays["C"] / (k * arrays["N"] * arrays["D"])
                bad = (ratio > 2) | (ratio < 0.5)
                if bad.any():
                    raise DataError(
                        f"columns {col['C']!r}, {col['N']!r}, {col['D']!r} disagree: compute "
                        f"differs from {k:g} N D by more than 2x at {_rows(bad)}; fix those rows, "
                        "drop the compute column, or set flops_per_param_token "
                        "(--flops-per-param-token on the command line)"
                    )
        if "N" in arrays and "C" not in arrays:
            arrays["C"] = k * arrays["N"] * arrays["D"]
        if "U" in arrays:
            if "D" not in arrays:
                raise DataError(f"unique tokens ({col['U']!r}) are given without tokens trained: "
                                "add a D (or C) column")
            over = arrays["U"] > arrays["D"] * (1 + 1e-9)
            if over.any():
                raise DataError(f"column {col['U']!r} (unique tokens U) exceeds the tokens "
                                f"trained {col['D']!r} at {_rows(over)}: a run cannot see more "
                                "unique tokens than it trains on; fix those rows or the columns")
        for name, arr in arrays.items():
            object.__setattr__(self, name, arr)
        for name in ("group", "seed", "run"):
            value = getattr(self, name)
            if value is not None:
                value = np.asarray(value).astype(str)
                if len(value) != n:
                    raise DataError(f"column {col[name]!r} has {len(value)} values, expected {n}")
                object.__setattr__(self, name, value)

    # ---------------------------------------------------------------- constructors
    @classmethod
    def from_arrays(cls, *, loss, N=None, D=None, C=None, x=None, group=None, seed=None,
                    U=None, run=None, flops_per_param_token: float = 6.0,
                    name: str = "") -> ScalingData:
        """Build from arrays (any sequence of numbers); see the class attributes for units."""
        return cls(loss=loss, N=N, D=D, C=C, x=x, group=group, seed=seed, U=U, run=run,
                   flops_per_param_token=flops_per_param_token, name=name)

    @classmethod
    def from_frame(cls, df: pd.DataFrame, *, n_col: str | None = None, d_col: str | None = None,
                   c_col: str | None = None, loss_col: str | None = None,
                   x_col: str | None = None, group_col: str | None = None,
                   seed_col: str | None = None, u_col: str | None = None,
                   run_col: str | None = None, flops_per_param_token: float = 6.0,
                   name: str = "", citation: str = "", dropna: bool = False,
                   drop_duplicates: bool = False) -> ScalingData:
        """Build from a DataFrame.

        Columns named explicitly must exist; those left as None are found among
        :data:`COLUMN_ALIASES` (``N``/``N_params``, ``D``/``D_tokens``, ``C``/``C_flops``,
        ``loss``/``val_loss``, unique tokens ``U``/``unique_tokens``, ``run``/``run_id``...). The
        loss column is required, and either N with D or C, or x.
        A table whose rows look like checkpoints of training runs (tokens evenly spaced at
        most model sizes) without a run column is warned about: give one
        (``run_col``, ``--run-col``) so that a fit uses each run's final checkpoint.
        Besides the checks of every ScalingData, a table may not repeat a column name or a row
        (identical in every column), give N or D in millions or billions (largest below 1000), or
        hold an accuracy in its loss column (see the module docstring).

        ``dropna=True`` drops the rows with a missing value in a column used (crashed runs);
        ``drop_duplicates=True`` drops rows identical in every column to an earlier one (copies).
        Both warn with the number of rows dropped. :attr:`columns` records which column gave
        each input.
        """
        if not isinstance(df, pd.DataFrame):
            raise DataError(f"expected a pandas DataFrame, got {type(df).__name__}")
        if df.shape[1] == 0 or len(df) == 0:
            raise DataError(
                "the table is empty (no rows under the header): give at least a few finished "
                "training runs"
            )
        columns = [str(c) for c in df.columns]
        repeated = sorted({c for c in columns if columns.count(c) > 1})
        if repeated:
            raise DataError(f"column {repeated[0]!r} appears more than once in the header: rename "
                            "or drop the copies so that each column has one name")
        chosen = {}
        for key, given in (("N", n_col), ("D", d_col), ("C", c_col), ("loss", loss_col),
                           ("x", x_col), ("group", group_col), ("seed", seed_col), ("U", u_col),
                           ("run", run_col)):
            if given is not None:
                if given not in columns:
                    raise DataError(_missing_column(given, key, columns))
                chosen[key] = given
            else:
                found = _find_alias(key, [c for c in columns if c not in chosen.values()])
                if found is not None:
                    chosen[key] = found
        if "loss" not in chosen:
            raise DataError(_missing_column("loss", "loss", columns))
        if "x" not in chosen and "N" not in chosen:
            hint = _guess(["N", "N_params", "x"], columns)
            raise DataError(
                f"no input column found among {columns}: name the parameters column with "
                f"--n-col / n_col (and tokens with --d-col or compute with --c-col), or a "
                f"one-variable input with --x-col / x_col{hint}"
            )
        if "x" in chosen and "N" in chosen and x_col is None:
            chosen.pop("x")
        if dropna:
            used = list(dict.fromkeys(chosen.values()))
            gone = df[used].isna().any(axis=1).to_numpy()
            if gone.all():
                raise DataError(f"every row has a missing value in {used}: nothing is left after "
                                "--dropna; check the column names")
            if gone.any():
                warnings.warn(f"dropped {int(gone.sum())} of {len(df)} rows with a missing value "
                              f"in {used} ({_rows(gone)}; --dropna)", UserWarning, stacklevel=2)
                df = df.loc[~gone].reset_index(drop=True)
        if drop_duplicates:
            copies = df.duplicated(keep="first").to_numpy()
            if copies.any():
                warnings.warn(f"dropped {int(copies.sum())} rows identical in every column to an "
                              f"earlier one ({_rows(copies)}; --drop-duplicates)", UserWarning,
                              stacklevel=2)
                df = df.loc[~copies].reset_index(drop=True)
        values = {k: df[c].to_numpy() for k, c in chosen.items()
                  if k not in ("group", "seed", "run")}
        for key, col in chosen.items():
            if key in values:
                values[key] = _numeric(col, values[key])
        _check_duplicate_rows(df)
        _check_units(values, chosen, flops_per_param_token)
        data = cls(**values, group=_opt(df, chosen.get("group")), seed=_opt(df, chosen.get("seed")),
                   run=_opt(df, chosen.get("run")), flops_per_param_token=flops_per_param_token, name=name, citation=citation,
                   columns=dict(chosen))
        _check_flops(values, chosen, flops_per_param_token)
        _check_not_accuracy(data, chosen["loss"])
        _check_nats(data, chosen["loss"])
        if "run" not in chosen:
            _check_checkpoints(data, chosen)
        return data

    @classmethod
    def from_file(cls, path: str | Path, **columns: Any) -> ScalingData:
        """Read a table of runs (:func:`read_table`: CSV, or by its suffix Parquet ``.parquet``,
        ``.pq``, needing pyarrow: ``pip install 'bayescale[parquet]'``, or JSON lines
        ``.jsonl``, ``.ndjson``, ``.json``: one object per run); then :meth:`from_frame`
        (same keyword options)."""
        path = Path(path)
        columns.setdefault("name", path.stem)
        return cls.from_frame(read_table(path), **columns)

    @classmethod
    def from_csv(cls, path: str | Path, **columns: Any) -> ScalingData:
        """Read a CSV file and build with :meth:`from_frame` (same keyword options)."""
        path = Path(path)
        columns.setdefault("name", path.stem)
        return cls.from_frame(_read_csv(path), **columns)

    # ---------------------------------------------------------------- views
    def __len__(self) -> int:
        return len(self.loss)

    @property
    def n_points(self) -> int:
        return len(self.loss)

    @property
    def epochs(self) -> np.ndarray | None:
        """Passes over the unique tokens, D / U (None without U)."""
        return None if self.U is None else self.D / self.U

    def inputs(self, law_inputs: tuple[str, ...]) -> dict[str, np.ndarray]:
        """The input arrays a law needs, e.g. ``{"N": ..., "D": ...}``."""
        return {i: getattr(self, i) for i in law_inputs}

    def log_reference(self, law_inputs: tuple[str, ...]) -> dict[str, float]:
        """Mean log of each input: the reference point of the models' parameterisation."""
        return {i: float(np.mean(np.log(getattr(self, i)))) for i in law_inputs}

    @property
    def has_checkpoints(self) -> bool:
        """True when some run (:attr:`run`) has more than one row: a training curve."""
        return self.run is not None and len(np.unique(self.run)) < self.n_points

    def final_checkpoints(self) -> ScalingData:
        """Each run's last checkpoint (largest D, or x; the later row on a tie): the runs as
        finished training runs. Only a run's last checkpoint has finished its learning-rate
        schedule; an intermediate one is not a run trained to its D (its loss is higher)."""
        if not self.has_checkpoints:
            return self
        size = self.D if self.D is not None else self.x
        order = np.lexsort((np.arange(self.n_points), size, self.run))
        last = np.r_[self.run[order][1:] != self.run[order][:-1], True]
        return self.subset(np.sort(order[last]))

    def subset(self, rows) -> ScalingData:
        """The data of ``rows`` (indices or a boolean mask), columns and labels kept."""
        rows = np.asarray(rows)
        pick = (lambda v: None if v is None else np.asarray(v)[rows])
        return ScalingData(loss=self.loss[rows], N=pick(self.N), D=pick(self.D), C=pick(self.C),
                           x=pick(self.x), group=pick(self.group), seed=pick(self.seed),
                           U=pick(self.U), run=pick(self.run),
                           flops_per_param_token=self.flops_per_param_token, name=self.name,
                           citation=self.citation, columns=dict(self.columns))

    def configurations(self, law_inputs: tuple[str, ...]) -> np.ndarray:
        """Index (0..n_config-1) of each row's distinct input configuration (repeats share one).

        For checkpoints of training runs (:attr:`has_checkpoints`) the index is the run's: its
        checkpoints share the run's effect in the repeated-run model."""
        if self.has_checkpoints:
            return np.unique(self.run, return_inverse=True)[1].reshape(-1)
        keys = np.stack([getattr(self, i) for i in law_inputs], axis=1)
        _, index = np.unique(keys, axis=0, return_inverse=True)
        return index.reshape(-1)

    def has_repeats(self, law_inputs: tuple[str, ...]) -> bool:
        """True when some configuration was run more than once (e.g. with several seeds)."""
        return len(np.unique(self.configurations(law_inputs))) < self.n_points

    def check_for(self, law_inputs: tuple[str, ...], n_params: int, law_name: str) -> None:
        """Raise :class:`DataError` unless these data can identify a law with these inputs."""
        if self.n_points > 1 and np.ptp(np.log(self.loss)) < 1e-12:
            raise DataError(f"the loss is {self.loss[0]:g} in every run (column "
                            f"{self.columns.get('loss', 'loss')!r}): a constant has no scaling "
                            "to fit; "
                            "check that the loss column is the final loss of each run "
                            "(--loss-col)")
        for i in law_inputs:
            if getattr(self, i) is None:
                need = {"N": "tokens D or compute C, and parameters N",
                        "D": "tokens D or compute C, and parameters N",
                        "U": "the unique tokens of each run (--u-col / u_col)"}.get(i, "an x column")
                other = (": the data have x, so a law of x such as --law power"
                         if self.x is not None and i != "x" else "")
                raise DataError(f"law {law_name!r} needs input {i!r} but the data have none: "
                                f"give {need} (or choose a law in the inputs you have{other})")
        need = n_params + 1
        if self.n_points < need:
            raise DataError(
                f"law {law_name!r} has {n_params} parameters plus noise, so it needs at least "
                f"{need} runs; the data have {self.n_points}: add runs or choose a simpler law"
            )
        if len(law_inputs) >= 2:
            for i in law_inputs[:2]:
                if len(np.unique(getattr(self, i))) < 2:
                    raise DataError(
                        f"column {self.columns.get(i, i)!r}"
                        f"{'' if self.columns.get(i, i) == i else f' ({i})'} has a single "
                        f"distinct value, so law {law_name!r} cannot "
                        f"separate the effect of N from that of D: add runs with other {i} values, "
                        "or fit a one-variable law (--law power with --x-col)"
                    )
        elif len(np.unique(getattr(self, law_inputs[0]))) < 2:
            col = self.columns.get(law_inputs[0], law_inputs[0])
            raise DataError(f"column {col!r} has a single distinct value: a law in it needs runs "
                            "at several sizes")

    def to_frame(self) -> pd.DataFrame:
        """The data as a DataFrame with canonical column names."""
        cols = {k: getattr(self, k)
                for k in ("N", "D", "C", "x", "U", "loss", "group", "seed", "run")}
        return pd.DataFrame({k: v for k, v in cols.items() if v is not None})


def read_table(path: str | Path) -> pd.DataFrame:
    """A table of runs as read from a file, before any column is chosen: CSV (read once, so a
    FIFO or ``<(cat runs.csv)`` works; whole-line ``#`` comments; the delimiter found from the
    header), or by its suffix Parquet (``.parquet``, ``.pq``; needs pyarrow) or JSON lines
    (``.jsonl``, ``.ndjson``, ``.json``). Every fault is one :class:`DataError` line."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".parquet", ".pq", ".jsonl", ".ndjson", ".json"):
        return _read_csv(path)
    _readable(path)
    if suffix in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise DataError(f"reading {path} needs pyarrow: pip install 'bayescale[parquet]' "
                            "(or save the table as CSV)") from None
        try:
            df = pd.read_parquet(path)
        except Exception as err:  # noqa: BLE001 - whatever pyarrow says, one line
            raise DataError(f"{path} could not be read as Parquet ({type(err).__name__}: "
                            f"{' '.join(str(err).split())[:200]})") from None
        return df
    raw = path.read_bytes()
    records = raw.lstrip().startswith(b"[")  # a .json file holding one list of records
    try:
        df = pd.read_json(io.BytesIO(raw), lines=not records)
    except ValueError as err:
        raise DataError(f"{path} could not be read as JSON lines (one object per run and "
                        f"line): {' '.join(str(err).split())[:200]}") from None
    return df


def _read_csv(path: Path) -> pd.DataFrame:
    _readable(path)
    try:  # read once: a FIFO or `<(cat runs.csv)` can only be read once
        raw = path.read_bytes()
    except OSError as err:
        raise DataError(f"cannot read {path} ({err.strerror}); check its permissions") from None
    if b"\0" in raw[:4096]:
        raise DataError(f"{path} is a binary file, not CSV text: export the table as "
                        "comma-separated text with a header line")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:  # e.g. Excel's cp1252; numbers are ASCII either way
        text = raw.decode("latin-1")
    # Whole lines that start with '#' are comments (a '#' inside a cell is kept).
    text = "".join(line for line in text.splitlines(keepends=True)
                   if not line.lstrip().startswith("#"))
    header = next((line for line in text.splitlines() if line.strip()), "")
    sep = max([",", ";", "\t", "|"], key=header.count) if header.strip() else ","
    names = [n.strip() for n in next(csv.reader([header], delimiter=sep), [])]
    long_rows = (f"{path}: {{}} more cells than the header has names ({len(names)}): remove "
                 "the extra cells or name every column")
    try:
        df = pd.read_csv(io.StringIO(text), sep=sep)
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty: it needs a header line and one row per run") from None
    except pd.errors.ParserError as err:
        rows = _long_rows(text, sep, len(names))
        if rows:
            raise DataError(long_rows.format(rows)) from None
        why = " ".join(str(err).split())  # one line, whatever pandas wrote
        raise DataError(f"{path} could not be read as CSV ({why}); save it as comma-separated "
                        "UTF-8 text with a header line") from None
    if not isinstance(df.index, pd.RangeIndex):  # pandas took surplus cells as an index
        raise DataError(long_rows.format(_long_rows(text, sep, len(names))))
    repeated = sorted({n for n in names if n and names.count(n) > 1})
    if repeated:
        raise DataError(f"column {repeated[0]!r} appears more than once in the header of "
                        f"{path}: rename or drop the copies so that each column has one name")
    if len(df) == 0:
        raise DataError(f"{path} has a header but no rows: add one row per finished run")
    if df.shape[1] == 1:
        raise DataError(f"{path} has a single column {df.columns[0]!r}{_delimiter_hint(header)}"
                        ": separate the columns with commas (or ; tab |) and give N with D or "
                        "C, and loss")
    return df


def _readable(path: Path) -> None:
    """One clear message for a path that is not a file to read."""
    try:
        os.stat(path)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DataError(f"{path} is a symlink loop: point the link at the table") from None
        raise DataError(f"file not found: {path}; check the path") from None
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a table of runs")


def _numeric(name: str, values: Any) -> np.ndarray:
    raw = np.asarray(values)
    if raw.ndim != 1:
        raw = raw.reshape(-1)
    try:
        arr = raw.astype(float)
    except (TypeError, ValueError):
        coerced = pd.to_numeric(pd.Series(raw), errors="coerce").to_numpy()
        bad = np.isnan(coerced) & ~pd.isna(pd.Series(raw)).to_numpy()
        first = raw[np.flatnonzero(bad)[0]] if bad.any() else "?"
        raise DataError(
            f"column {name!r} has non-numeric values at {_rows(bad)} (e.g. {first!r}): "
            f"{_number_hint(first)}"
        ) from None
    bad = ~np.isfinite(arr)
    if bad.any():
        raise DataError(f"column {name!r} has missing, NaN or infinite values at {_rows(bad)}: "
                        "drop those runs (--dropna on the command line, dropna=True in "
                        "ScalingData.from_csv) or fill them in")
    bad = arr <= 0
    if bad.any():
        raise DataError(f"column {name!r} has zero or negative values at {_rows(bad)}: sizes, "
                        "compute and loss must be positive")
    return arr


#: Characters that look like parts of a number and are not (copied from documents).
_LOOKALIKES = {"\u2212": "-", "\u2013": "-", "\u2014": "-", "\u2010": "-", "\u2011": "-",
               "\u00d7": "x", "\u2009": " ", "\u00a0": " ", "\u202f": " ", "\uff0e": ".",
               "\u066b": "."}


def _number_hint(cell: Any) -> str:
    text = str(cell).strip()
    if re.fullmatch(r"\d{1,3}(,\d{3})+", text):
        return f"write plain numbers without thousands separators ({text.replace(',', '')})"
    if re.fullmatch(r"[-+]?\d+,\d+", text):
        return f"use a decimal point, not a comma ({text.replace(',', '.')})"
    if len(re.findall(r"\d[\d.eE+-]*", text)) > 1 and re.search(r"[,;\t|]", text):
        return ("each cell holds one number; this one holds several, so the rows seem to use "
                "another delimiter than the header: use the same one in every line")
    odd = next((c for c in text if c in _LOOKALIKES), None)
    if odd is not None:
        return (f"it holds {unicodedata.name(odd, repr(odd))} (U+{ord(odd):04X}), which looks "
                f"like {_LOOKALIKES[odd]!r} but is not: write plain ASCII numbers (a spreadsheet "
                "or a PDF may have put it there)")
    unit = re.fullmatch(r"([-+]?[\d.]+)\s*([kKmMbBtT])", text)
    if unit:
        power = {"k": 3, "m": 6, "b": 9, "t": 12}[unit.group(2).lower()]
        return f"write plain numbers without units ({unit.group(1)}e{power}, not {text})"
    return "write plain numbers such as 7e10, without units or thousands separators"


def _long_rows(text: str, sep: str, n_names: int) -> str:
    """'row 3 has' / 'rows 3, 9 have' for rows with more cells than the header, else ''."""
    rows = [r for r in csv.reader(io.StringIO(text, newline=""), delimiter=sep) if r][1:]
    long = np.array([len(r) > n_names for r in rows], dtype=bool)
    if not long.any():
        return ""
    return f"{_rows(long)} {'have' if long.sum() > 1 else 'has'}"


def _delimiter_hint(header: str) -> str:
    for char, what in ((";", "semicolons"), ("\t", "tabs"), (" ", "spaces")):
        if char in header.strip():
            return f" (the header seems to be separated by {what})"
    return ""


def _check_duplicate_rows(df: pd.DataFrame) -> None:
    """Rows identical in every column are copies, not repeated runs."""
    dup = df.duplicated(keep="first").to_numpy()
    if not dup.any():
        return
    first: dict[tuple, int] = {}
    pairs = []
    for i, row in enumerate(df.itertuples(index=False, name=None)):
        key = tuple("nan" if pd.isna(v) else v for v in row)
        if key in first:
            pairs.append(f"row {i + 1} repeats row {first[key] + 1}")
        else:
            first[key] = i
    more = f" and {len(pairs) - 3} more" if len(pairs) > 3 else ""
    raise DataError(
        f"duplicate rows: {', '.join(pairs[:3])}{more} (identical in every column): drop the "
        "copies; repeated runs of one configuration must differ in a seed column (--seed-col) or "
        "in their loss"
    )


def _check_units(values: dict[str, np.ndarray], chosen: dict[str, str], k: float) -> None:
    """Largest N or D below 1000: the table is in millions or billions, not raw counts."""
    if "N" in values and values["N"].max() < MIN_PLAUSIBLE_SIZE:
        raise DataError(
            f"column {chosen['N']!r} (parameters N) is at most {values['N'].max():g} in every "
            "row: N looks like it is in millions or billions; give raw parameter counts "
            "(7e9, not 7)"
        )
    if "D" in values and values["D"].max() < MIN_PLAUSIBLE_SIZE:
        raise DataError(
            f"column {chosen['D']!r} (tokens D) is at most {values['D'].max():g} in every row: D "
            "looks like it is in millions or billions; give raw token counts (1.4e12, not 1400)"
        )
    if "N" in values and "C" in values and "D" not in values:
        tokens = values["C"] / (k * values["N"])
        if tokens.max() < MIN_PLAUSIBLE_SIZE:
            raise DataError(
                f"column {chosen['C']!r} (compute C) gives at most {tokens.max():.3g} tokens per "
                f"run (D = C / ({k:g} N)) in every row: C looks like it is not in FLOPs "
                "(PF-days or units of 1e18?); give raw FLOPs"
            )


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Rank correlation (Pearson correlation of average ranks); NaN when either is constant."""
    ra, rb = pd.Series(a).rank().to_numpy(), pd.Series(b).rank().to_numpy()
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def _check_not_accuracy(data: ScalingData, loss_col: str) -> None:
    """Every value in [0, 1] and rising with compute (or x): an accuracy, not a loss."""
    if data.n_points < 3 or data.loss.max() > 1:
        return
    against, what = (data.C, "compute C = k N D") if data.C is not None else (data.x, "x")
    rho = _spearman(data.loss, against)
    if rho > ACCURACY_RHO:
        raise DataError(
            f"column {loss_col!r} is between 0 and 1 in every row and rises with {what} (Spearman "
            f"rank correlation {rho:.2f}): this looks like accuracy; give a loss (lower is better)"
        )


#: A compute column further than this from k N D (median ratio) gets a note.
FLOPS_TOLERANCE = 0.1


def _check_flops(values: dict[str, np.ndarray], chosen: dict[str, str], k: float) -> None:
    """A compute column off k N D as a whole (attention FLOPs counted, another k): a note."""
    if not all(key in values for key in ("N", "D", "C")):
        return
    ratio = float(np.median(values["C"] / (k * values["N"] * values["D"])))
    if abs(ratio - 1) > FLOPS_TOLERANCE:
        warnings.warn(
            f"column {chosen['C']!r} is {ratio:.3g}x {k:g} N D on median (attention FLOPs "
            f"counted, or another k?): the fit uses N and D, and budgets mean C = {k:g} N D; "
            f"pass --flops-per-param-token {k * ratio:.3g} (flops_per_param_token=) if budgets "
            "should be in this column's FLOPs", UserWarning, stacklevel=3)


def _check_nats(data: ScalingData, loss_col: str) -> None:
    """Losses above :data:`MAX_PLAUSIBLE_NATS`: perplexities or a scaled loss, not nats."""
    high = data.loss > MAX_PLAUSIBLE_NATS
    if not high.any():
        return
    every = "in every row" if high.all() else f"at {_rows(high)}"
    warnings.warn(
        f"column {loss_col!r} is above {MAX_PLAUSIBLE_NATS:g} {every} (up to "
        f"{data.loss.max():.4g}), more than any cross-entropy in nats reaches (log of a "
        "vocabulary of 3 million tokens): if these are perplexities give their log, if the loss "
        "was scaled divide the scale out; the priors and the noise assume nats, and the exponents "
        "fitted to such values are not the loss's",
        UserWarning, stacklevel=4)


def _on_a_step_grid(values: np.ndarray) -> bool:
    """Distinct values at least half of whose gaps (two or more) are one gap (within 0.5%), or
    eight or more gaps of at most a quarter as many sizes: checkpoints logged every so many
    steps (of one run, or of several runs of one model size). A sweep of token counts (10x,
    20x, 40x, 100x parameters; a geometric grid) has gaps that differ."""
    v = np.unique(values)
    if len(v) < 3:
        return False
    gaps = np.diff(v)
    same = np.abs(gaps[:, None] - gaps[None, :]) <= 0.005 * gaps[None, :]
    modal = same.sum(axis=0).max()
    sizes = len(np.unique(np.round(np.log(gaps) / 0.005)))
    return bool((modal >= 2 and modal >= 0.5 * len(gaps))
                or (len(gaps) >= 8 and sizes <= 0.25 * len(gaps)))


def _check_checkpoints(data: ScalingData, chosen: dict[str, str]) -> None:
    """Warn when rows look like checkpoints of training runs and no run column says which."""
    why = None
    if data.N is not None and data.D is not None:
        sizes = [data.D[data.N == n] for n in np.unique(data.N)]
        sizes = [d for d in sizes if len(np.unique(d)) >= 3]
        spaced = sum(_on_a_step_grid(d) for d in sizes)
        if sizes and spaced >= max(1, len(sizes) / 2):
            why = (f"at {spaced} of {len(sizes)} model sizes with 3 or more token counts "
                   f"the tokens ({chosen.get('D', 'D')!r}) are evenly spaced, as checkpoints "
                   "logged every so many steps are")
    if why is None:
        return
    warnings.warn(
        f"the rows look like checkpoints of training runs ({why}), and there is no run column: "
        "each row is fitted as a finished run, but an intermediate checkpoint has not finished "
        "its learning-rate schedule and checkpoints of one run are not independent (this moves "
        "the exponents). Name the run column with --run-col / run_col= so that fits use each "
        "run's final checkpoint (or every checkpoint with a per-run effect: --checkpoints all)",
        UserWarning, stacklevel=3)


def _opt(df: pd.DataFrame, col: str | None):
    return None if col is None else df[col].to_numpy()


def _guess(candidates: list[str], columns: list[str]) -> str:
    for c in candidates:
        close = difflib.get_close_matches(c, columns, n=1, cutoff=0.6)
        if close:
            return f" (did you mean {close[0]!r}?)"
    return ""


def _missing_column(given: str, key: str, columns: list[str]) -> str:
    close = [c for c in columns if normalize(given) in normalize(c).split("_")]
    close = close or difflib.get_close_matches(given, columns, n=1, cutoff=0.5)
    if not close:
        close = difflib.get_close_matches(given.lower(), [c.lower() for c in columns], n=1, cutoff=0.5)
        close = [c for c in columns if c.lower() in close]
    hint = f"did you mean {close[0]!r}? " if close else ""
    flag = {"N": "--n-col", "D": "--d-col", "C": "--c-col", "loss": "--loss-col", "x": "--x-col",
            "group": "--group-col", "seed": "--seed-col", "U": "--u-col",
            "run": "--run-col"}[key]
    return (f"missing column {given!r} for {key}; the table has {columns}. {hint}"
            f"Name it with {flag} (or {flag.lstrip('-').replace('-', '_')}=...)")
