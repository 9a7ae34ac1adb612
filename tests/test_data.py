"""Every validation error names the column, the rows and the fix."""

from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bayescale import DataError, ScalingData
from bayescale.datasets import dataset_readme, list_datasets, load_dataset, load_frame


def frame(**over):
    df = pd.DataFrame({"N": [1e8, 2e8, 4e8, 8e8, 1.6e9, 3.2e9, 6.4e9],
                       "D": [2e9, 4e9, 8e9, 1.6e10, 3.2e10, 6.4e10, 1.28e11],
                       "loss": [3.2, 3.0, 2.8, 2.65, 2.5, 2.4, 2.3]})
    for k, v in over.items():
        df[k] = v
    return df


@pytest.mark.parametrize("df,kwargs,match", [
    (frame().drop(columns="loss"), {}, "missing column 'loss'"),
    (frame(), {"n_col": "params"}, r"missing column 'params'.*--n-col"),
    (frame().rename(columns={"loss": "Loss"}), {"loss_col": "los"}, "did you mean 'Loss'"),
    (frame(loss=[3.2, np.nan, 2.8, 2.65, 2.5, 2.4, 2.3]), {}, r"'loss'.*NaN.*row 2"),
    (frame(N=[1e8, 2e8, -4e8, 8e8, 0.0, 3.2e9, 6.4e9]), {}, r"'N'.*zero or negative.*rows 3, 5"),
    (frame(D=["2e9", "4e9", "lots", "1.6e10", "3.2e10", "6.4e10", "1.28e11"]), {},
     r"'D'.*non-numeric.*row 3.*'lots'"),
    (frame(loss=[3.2, 3.0, np.inf, 2.65, 2.5, 2.4, 2.3]), {}, "infinite"),
    (frame().drop(columns=["N", "D"]), {}, "no input column"),
    (frame().drop(columns="D"), {}, "neither tokens D nor compute C"),
    (frame(C=6 * frame().N * frame().D * 3), {}, r"disagree.*more than 2x"),
    (frame().iloc[:0], {}, "empty"),
])
def test_frame_errors(df, kwargs, match):
    with pytest.raises(DataError, match=match):
        ScalingData.from_frame(df, **kwargs)


def test_compute_only_derives_tokens():
    df = frame()
    df["C"] = 6 * df.N * df.D
    data = ScalingData.from_frame(df.drop(columns="D"))
    np.testing.assert_allclose(data.D, df.D, rtol=1e-12)
    data8 = ScalingData.from_frame(df.drop(columns="D"), flops_per_param_token=8.0)
    np.testing.assert_allclose(data8.D, df.D * 6 / 8, rtol=1e-12)


def test_column_mapping_and_aliases():
    df = frame().rename(columns={"N": "n_p", "D": "D_tokens", "loss": "val_loss"})
    data = ScalingData.from_frame(df, n_col="n_p")
    np.testing.assert_array_equal(data.N, frame().N)
    np.testing.assert_allclose(data.C, 6 * frame().N * frame().D)


@pytest.mark.parametrize("n,law_inputs,n_params,match", [
    (4, ("N", "D"), 5, r"at least 6 runs.*have 4"),
])
def test_too_few_points(n, law_inputs, n_params, match):
    data = ScalingData.from_frame(frame().iloc[:n])
    with pytest.raises(DataError, match=match):
        data.check_for(law_inputs, n_params, "chinchilla")


def test_single_distinct_size_rejected_for_two_variable_law():
    data = ScalingData.from_frame(frame(N=[1e9] * 7))
    with pytest.raises(DataError, match="'N' has a single distinct value"):
        data.check_for(("N", "D"), 5, "chinchilla")


def test_law_needs_missing_input():
    data = ScalingData.from_arrays(x=[1, 2, 3, 4, 5, 6], loss=[3, 2.5, 2.2, 2.1, 2.0, 1.95])
    with pytest.raises(DataError, match="needs input 'N'"):
        data.check_for(("N", "D"), 5, "chinchilla")


def test_csv_errors(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        ScalingData.from_csv(tmp_path / "nope.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        ScalingData.from_csv(tmp_path / "empty.csv")
    (tmp_path / "header.csv").write_text("N,D,loss\n")
    with pytest.raises(DataError, match="header but no rows"):
        ScalingData.from_csv(tmp_path / "header.csv")
    (tmp_path / "space.csv").write_text("N D loss\n1e8 2e9 3.2\n2e8 4e9 3.0\n")
    with pytest.raises(DataError, match="single column"):
        ScalingData.from_csv(tmp_path / "space.csv")
    frame().to_csv(tmp_path / "semi.csv", sep=";", index=False)
    assert ScalingData.from_csv(tmp_path / "semi.csv").n_points == 7  # delimiter sniffed


def test_repeats_and_configurations():
    data = ScalingData.from_arrays(N=[1, 1, 2, 2, 3], D=[5, 5, 5, 6, 7], loss=[3, 3.1, 2, 2, 1])
    assert data.has_repeats(("N", "D"))
    cfg = data.configurations(("N", "D"))
    assert cfg[0] == cfg[1] and len(set(cfg)) == 4


def test_porian_configurations_as_groups():
    # config="all", corpus="all": Porian et al.'s 15 configurations (10 on RefinedWeb, 5 on
    # OpenWebText2), each group exactly the rows that loading it alone gives
    from bayescale.datasets import load_frame

    every = load_dataset("porian2024", config="all", corpus="all")
    frame = load_frame("porian2024")
    assert len(every) == len(frame)
    labels = sorted(set(every.group))
    assert len(labels) == 15 and "owt2/Cosine decay" in labels
    for label in labels:
        corpus, config = label.split("/", 1)
        alone = load_dataset("porian2024", config=config, corpus=corpus)
        rows = every.group == label
        np.testing.assert_array_equal(every.N[rows], alone.N)
        np.testing.assert_array_equal(every.loss[rows], alone.loss)
    rw = load_dataset("porian2024", config="all")  # one corpus: labelled by configuration
    assert len(set(rw.group)) == 10 and "Cosine decay" in set(rw.group)
    assert load_dataset("porian2024").group is None


def test_bundled_datasets():
    table = list_datasets().set_index("name")
    assert table.loc["chinchilla", "rows"] == 240 and table.loc["chinchilla", "rows_in_file"] == 245
    assert len(load_dataset("chinchilla", all=True)) == 245
    assert "arXiv:2203.15556" in table.loc["chinchilla", "citation"]
    assert "Epoch" in dataset_readme("chinchilla")
    ch = load_dataset("chinchilla")
    # Epoch drops the 5 highest-loss runs: everything kept is below the lowest dropped loss
    full = load_dataset("chinchilla", all=True)
    assert ch.loss.max() < np.sort(full.loss)[-5]
    p = load_dataset("porian2024", config="Cosine decay", corpus="owt2")
    assert len(p) == 88
    with pytest.raises(DataError, match="unknown config"):
        load_dataset("porian2024", config="nope")
    db = load_dataset("datablations", all=True)
    assert len(db) == 296 and db.has_repeats(("N", "D")) and db.seed is not None
    rv = load_dataset("revisiting", domain="LM", model="1.68e+07", split="train")
    assert rv.x is not None and rv.N is None
    with pytest.raises(DataError, match="unknown dataset"):
        load_dataset("chinchila")


# Parameter counts of the OLMo ladder sizes, as printed in the source README (src/scaling/utils.py)
OLMO_N = {"190M": 190354176, "370M": 371262464, "760M": 758220288, "1B": 1279395840,
          "3B": 3169537280}
OLMO_ROUNDING = 5.0001e-6  # float_format "%.6g": half a unit in the 6th significant digit
OLMO_RUNS = Path(__file__).resolve().parents[2] / "shared" / "data" / "olmo_ladder2024" / "runs"


def test_olmo_ladder_final_checkpoints():
    data = load_dataset("olmo_ladder")
    frame = load_frame("olmo_ladder")
    final = frame[frame["final"] == 1]
    assert data.n_points == 30 and len(final) == 30 and data.group is None
    multiples = ("0.5", "1", "2", "5", "10")
    assert set(final["run"]) == ({f"{s}-{m}xC" for s in OLMO_N for m in multiples}
                                 | {f"{s}-1xC-rerun" for s in OLMO_N})
    assert set(data.N) == set(OLMO_N.values())
    assert {s: int(n) for s, n in zip(final["size"], final["N_params"])} == OLMO_N
    np.testing.assert_array_equal(data.loss, final["loss_c4_en"])
    # each run's last row is its final one, and D only grows within a run
    for _, run in frame.groupby("run"):
        assert run["final"].tolist() == [0] * (len(run) - 1) + [1]
        assert (np.diff(run["D_tokens"]) > 0).all()
    # 1xC = 20 tokens per parameter (Chinchilla), the multiples scale it
    tpp = final["D_tokens"] / final["N_params"]
    np.testing.assert_allclose(tpp, 20 * final["chinchilla_multiple"], rtol=3e-3)
    # at each training length the loss falls with model size, and at each size with tokens
    originals = final[final["rerun"] == 0]
    for _, rows in originals.groupby("chinchilla_multiple"):
        assert (np.diff(rows.sort_values("N_params")["loss_c4_en"]) < 0).all()
    for _, rows in originals.groupby("N_params"):
        assert (np.diff(rows.sort_values("D_tokens")["loss_c4_en"]) < 0).all()


def test_olmo_ladder_reruns_are_repeats():
    data = load_dataset("olmo_ladder")
    final = load_frame("olmo_ladder").query("final == 1")
    rerun = final["run"].str.endswith("-rerun").to_numpy()
    assert rerun.sum() == 5
    np.testing.assert_array_equal(data.seed, np.where(rerun, "1", "0"))
    # a rerun ends at exactly the tokens of its original: 25 configurations, 5 run twice
    assert data.has_repeats(("N", "D"))
    assert len(np.unique(data.configurations(("N", "D")))) == 25
    for n in OLMO_N.values():
        pair = (data.N == n) & np.isclose(data.D / data.N, 20, rtol=3e-3)
        assert sorted(data.seed[pair]) == ["0", "1"] and data.D[pair][0] == data.D[pair][1]
        assert 0 < abs(np.diff(data.loss[pair])[0]) < 0.01  # run-to-run noise, not a copy


def test_olmo_ladder_checkpoints_and_metrics():
    frame = load_frame("olmo_ladder")
    every = load_dataset("olmo_ladder", checkpoints=True)
    assert every.n_points == len(frame) == 3569 and len(set(every.N)) == 5
    assert not frame.isna().any().any()
    losses = [c for c in frame if c.startswith("loss_")]
    bpbs = [c for c in frame if c.startswith("bpb_")]
    accs = [c for c in frame if c.startswith("acc_")]
    assert len(losses) == 11 and len(bpbs) == len(accs) == 20 and "acc_boolq_val" in accs
    assert frame[accs].to_numpy().min() >= 0 and frame[accs].to_numpy().max() <= 1
    # an un-annealed checkpoint of the 10xC run is worse than the 1xC run at the same tokens
    for size in OLMO_N:
        short = frame.query("run == @size + '-1xC' and final == 1").iloc[0]
        long = frame[frame["run"] == f"{size}-10xC"]
        near = long.iloc[np.argmin(np.abs(np.log(long["D_tokens"] / short["D_tokens"])))]
        assert near["loss_c4_en"] > short["loss_c4_en"] + 0.01
    task = load_dataset("olmo_ladder", metric="bpb_hellaswag_val")
    np.testing.assert_array_equal(task.loss, frame.loc[frame["final"] == 1, "bpb_hellaswag_val"])
    assert load_dataset("olmo_ladder", metric="loss_pile", checkpoints=True).n_points == 3569
    with pytest.raises(DataError, match="accuracy.*not a loss"):
        load_dataset("olmo_ladder", metric="acc_hellaswag_val")
    with pytest.raises(DataError, match="unknown metric 'c4'.*loss_c4_en.*bpb_winogrande_val") as e:
        load_dataset("olmo_ladder", metric="c4")
    assert "\n" not in str(e.value) and "acc_" not in str(e.value)
    with pytest.raises(DataError, match="unknown metric 'final'"):
        load_dataset("olmo_ladder", metric="final")
    table = list_datasets().set_index("name")
    assert tuple(table.loc["olmo_ladder", ["rows", "rows_in_file"]]) == (30, 3569)
    assert "arXiv:2412.04403" in table.loc["olmo_ladder", "citation"]
    assert "Apache-2.0" in dataset_readme("olmo_ladder")
    licence = resources.files("bayescale.datasets").joinpath("olmo_ladder_LICENSE.txt").read_text()
    assert "Apache License" in licence and "Version 2.0" in licence


@pytest.mark.skipif(not OLMO_RUNS.is_dir(), reason=f"source data not at {OLMO_RUNS}")
def test_olmo_ladder_matches_source():
    frame = load_frame("olmo_ladder")
    files = sorted(OLMO_RUNS.glob("*.csv"))
    assert len(files) == 30 and set(frame["run"]) == {f.stem for f in files}
    src = pd.read_csv(OLMO_RUNS / "3B-10xC.csv")
    top = load_dataset("olmo_ladder")
    at = (top.N == OLMO_N["3B"]) & (top.D == src["throughput/total_tokens"].iloc[-1])
    assert at.sum() == 1
    assert top.loss[at][0] == pytest.approx(src["eval/c4_en-validation/CrossEntropyLoss"].iloc[-1],
                                            rel=OLMO_ROUNDING)
    rows = 0
    for path in files:
        src = pd.read_csv(path)
        mine = frame[frame["run"] == path.stem]
        rows += len(src)
        np.testing.assert_array_equal(mine["step"], src["_step"])
        np.testing.assert_array_equal(mine["D_tokens"], src["throughput/total_tokens"])
        np.testing.assert_allclose(mine["learning_rate"], src["optim/learning_rate_group0"],
                                   rtol=OLMO_ROUNDING)
        for col, source in (("loss_c4_en", "c4_en-validation/CrossEntropyLoss"),
                            ("loss_dolma_common_crawl",
                             "dolma_common-crawl-validation/CrossEntropyLoss"),
                            ("bpb_mmlu_stem_test", "downstream_bpb/mmlu_stem_test_rc_5shot_bpb"),
                            ("acc_hellaswag_val", "downstream/hellaswag_val_rc_5shot_len_norm"),
                            ("acc_boolq_val", "downstream/boolq_val_rc_5shot_acc")):
            np.testing.assert_allclose(mine[col], src["eval/" + source], rtol=OLMO_ROUNDING,
                                       err_msg=col)
    assert rows == len(frame)


def test_unique_tokens_column_found_and_checked():
    import pandas as pd

    df = pd.DataFrame({"params": [1e8, 2e8, 4e8], "tokens": [4e9, 8e9, 8e9],
                       "unique_tokens": [4e9, 2e9, 8e9], "loss": [3.0, 2.9, 2.8]})
    data = ScalingData.from_frame(df)
    np.testing.assert_array_equal(data.U, [4e9, 2e9, 8e9])
    assert data.columns["U"] == "unique_tokens" and "U" in data.to_frame()
    df.loc[1, "unique_tokens"] = 9e9  # more unique tokens than tokens trained
    with pytest.raises(DataError, match=r"'unique_tokens' \(unique tokens U\) exceeds the tokens "
                                        r"trained 'tokens' at row 2"):
        ScalingData.from_frame(df)
    with pytest.raises(DataError, match="needs input 'U'.*--u-col"):
        ScalingData.from_frame(df.drop(columns="unique_tokens")).check_for(
            ("N", "D", "U"), 7, "data_constrained")
