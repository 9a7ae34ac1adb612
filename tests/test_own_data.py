"""A user's own table: exports' column names, Parquet and JSON lines, crashed runs and copies."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.cli import main
from conftest import simulate_chinchilla

N, D, LOSS, _ = simulate_chinchilla(n_side=4, seed=8)


def run(args, capsys):
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("names", [
    {"N": "model_params", "D": "tokens_seen", "loss": "eval/loss"},   # W&B
    {"N": "num_params", "D": "num_tokens", "loss": "val/loss"},
    {"N": "Params", "D": "Tokens", "loss": "Loss"},                   # spreadsheet capitals
    {"N": "n-params", "D": "train tokens", "loss": "Validation Loss"},
    {"N": "N", "C": "FLOPs", "loss": "eval/loss"},                    # D from C
])
def test_export_column_names_are_found(names, tmp_path, capsys):
    values = {"N": N, "D": D, "C": 6 * N * D, "loss": LOSS}
    frame = pd.DataFrame({col: values[key] for key, col in names.items()})
    frame["_step"] = np.arange(len(frame))  # W&B's own bookkeeping column, ignored
    data = bs.ScalingData.from_frame(frame)
    np.testing.assert_allclose(data.loss, LOSS)
    np.testing.assert_allclose(data.D, D, rtol=1e-12)
    assert data.columns == names
    path = tmp_path / "export.csv"
    frame.to_csv(path, index=False)
    # the CLI says which columns it used, and that D was computed when it was
    code, out, err = run(["backtest", path, "--method", "ols", "--law", "power_pure",
                          "--x-col", names["N"], "--loss-col", names["loss"], "--drop", "1"],
                         capsys)
    assert code == 0, err
    assert f"x <- {names['N']!r}" in err and f"loss <- {names['loss']!r}" in err
    assert data.columns.get("D") or "D = C / (6 N)" in _columns(data)


def _columns(data):
    from bayescale.cli import _columns_text

    return _columns_text(data)


def test_missing_loss_hint_names_the_loss_like_column():
    frame = pd.DataFrame({"flops": 6 * N * D, "N": N, "eval/score": LOSS})
    with pytest.raises(bs.DataError, match="did you mean 'eval/score'") as err:
        bs.ScalingData.from_frame(frame, loss_col="score")
    assert "flops" not in str(err.value).split("did you mean")[1]
    frame = pd.DataFrame({"flops": 6 * N * D, "N": N, "eval/loss_avg": LOSS})
    with pytest.raises(bs.DataError, match="did you mean 'eval/loss_avg'"):
        bs.ScalingData.from_frame(frame)


@pytest.mark.parametrize("suffix", [".parquet", ".jsonl", ".json"])
def test_parquet_and_json_lines(suffix, tmp_path):
    frame = pd.DataFrame({"params": N, "tokens": D, "loss": LOSS})
    path = tmp_path / f"runs{suffix}"
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
        frame.to_parquet(path)
    elif suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_json(path, orient="records")  # one list of records
    data = bs.ScalingData.from_file(path)
    np.testing.assert_allclose(data.N, N)
    np.testing.assert_allclose(data.loss, LOSS)
    assert data.name == "runs"


def test_dropna_and_drop_duplicates(tmp_path, capsys):
    frame = pd.DataFrame({"N": N, "D": D, "loss": LOSS})
    frame.loc[3, "loss"] = np.nan  # a crashed run
    frame = pd.concat([frame, frame.iloc[[0, 5]]], ignore_index=True)  # two exact copies
    with pytest.raises(bs.DataError, match="missing, NaN"):
        bs.ScalingData.from_frame(frame)
    with pytest.warns(UserWarning) as caught:
        data = bs.ScalingData.from_frame(frame, dropna=True, drop_duplicates=True)
    said = " ".join(str(w.message) for w in caught)
    assert "dropped 1 of 18 rows with a missing value" in said
    assert "dropped 2 rows identical" in said
    assert data.n_points == 15
    expected = np.delete(LOSS, 3)
    np.testing.assert_allclose(np.sort(data.loss), np.sort(expected))
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    code, out, err = run(["backtest", path, "--dropna", "--drop-duplicates", "--method", "ols",
                          "--law", "power_pure", "--x-col", "N", "--drop", "1", "--json"], capsys)
    assert code == 0, err
    assert "15 runs from" in err and "dropped 2 rows" in err


def test_flops_column_off_6nd_gets_a_note_and_errors_name_the_users_columns():
    frame = pd.DataFrame({"params": N, "tokens": D, "flops": 8 * N * D, "loss": LOSS})
    with pytest.warns(UserWarning, match=r"'flops' is 1.33x 6 N D on median .* "
                                         r"--flops-per-param-token 8"):
        bs.ScalingData.from_frame(frame)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bs.ScalingData.from_frame(frame.assign(flops=6 * N * D * 1.05))  # within 10%: quiet
    with pytest.raises(bs.DataError, match="columns 'flops', 'params', 'tokens' disagree"):
        bs.ScalingData.from_frame(frame.assign(flops=30 * N * D))
