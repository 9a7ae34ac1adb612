"""Every validation error names the column, the rows and the fix."""

import numpy as np
import pandas as pd
import pytest

from bayescale import DataError, ScalingData
from bayescale.datasets import dataset_readme, list_datasets, load_dataset


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
