"""Leave-future-out backtests: levels, cutoffs, the held-out rows and their scores. The fits are
least-squares ones (no sampling); the Bayesian path runs in test_cli and the benchmark."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bayescale import ScalingData
from bayescale.backtesting import backtest, compute_levels, default_cutoffs
from bayescale.errors import DataError, FitError
from bayescale.predict import predict
from conftest import simulate_chinchilla


def test_bs_backtest_is_the_function_after_its_module_is_imported():
    # Importing a submodule sets it as an attribute of the package: a module named like the
    # function (bayescale/backtest.py) made `bs.backtest` the module, "not callable".
    import bayescale as bs
    import bayescale.backtesting  # noqa: F401

    assert bs.backtest is backtest and callable(bs.backtest)


def test_levels_of_a_grid_and_of_spread_values():
    budgets = np.repeat(2.0 ** np.arange(10) * 1e18, 4)  # an IsoFLOP grid: one level each
    assert list(np.bincount(compute_levels(budgets))) == [4] * 10
    assert default_cutoffs(budgets, (1, 3)) == [2.0**8 * 1e18, 2.0**6 * 1e18]
    # a stray run at the top joins the level below it
    with_stray = np.append(budgets, 2.0**11 * 1e18)
    assert compute_levels(with_stray)[-1] == compute_levels(with_stray)[-2]
    # values spread evenly (no grid): 8 bins of equal width in log10
    spread = np.geomspace(1e18, 1e22, 80)
    assert list(np.bincount(compute_levels(spread))) == [10] * 8
    with pytest.raises(DataError, match="levels"):
        default_cutoffs(budgets, (10,))


def test_held_out_rows_and_scores():
    N, D, loss, _ = simulate_chinchilla(n_side=6, seed=4)
    data = ScalingData.from_arrays(N=N, D=D, loss=loss)
    bt = backtest(data, "chinchilla", method="curve_fit", drop=(1, 2), bootstrap=30, seed=1)
    C = 6 * N * D
    cuts = default_cutoffs(C, (1, 2))
    assert list(bt.splits["cutoff"]) == cuts
    for cut, split in zip(cuts, bt.splits.itertuples()):
        held = C > cut
        assert split.n_train == (~held).sum() and split.n_test == held.sum()
        rows = bt.points[bt.points["cutoff"] == cut]
        np.testing.assert_allclose(np.sort(rows["loss"]), np.sort(loss[held]))
        np.testing.assert_allclose(rows["ratio"], 6 * rows["N"] * rows["D"] / C[~held].max())
        # the predicted median is the refit's new-run median at those runs
        pred = predict(bt.fits[cut], N=rows["N"].to_numpy(), D=rows["D"].to_numpy(), seed=1)
        np.testing.assert_allclose(rows["pred"], np.median(np.log(pred.new_run_draws), axis=0))
        np.testing.assert_allclose(rows["error"], np.log(rows["loss"]) - rows["pred"])
    table = bt.summary()
    y = np.log(bt.points["loss"])
    inside = (y >= bt.points["lo90"]) & (y <= bt.points["hi90"])
    assert table.loc["pooled", "cov90"] == pytest.approx(inside.mean())
    assert table.loc["pooled", "rmse"] == pytest.approx(np.sqrt(np.mean(bt.points["error"] ** 2)))
    # nested bands: coverage cannot fall as the level rises
    for _, row in table.iterrows():
        covs = [row[f"cov{q}"] for q in (50, 80, 90, 95)]
        assert covs == sorted(covs)
    assert sum(table.loc[c, "n_test"] for c in table.index if c != "pooled") == len(bt.points)
    out = json.loads(json.dumps(bt.to_dict()))
    assert out["method"] == "curve_fit" and set(out["summary"]) == set(table.index)


def test_bad_backtests_are_refused():
    N, D, loss, _ = simulate_chinchilla(n_side=4, seed=4)
    data = ScalingData.from_arrays(N=N, D=D, loss=loss)
    with pytest.raises(FitError, match="along C or N or D"):
        backtest(data, "chinchilla", by="x", method="curve_fit")
    with pytest.raises(DataError, match="nothing is held out"):
        backtest(data, "chinchilla", cutoffs=[1e30], method="curve_fit")
    with pytest.raises(DataError, match="cannot be fitted"):
        backtest(data, "chinchilla", cutoffs=[float((6 * N * D).min())], method="curve_fit")
    with pytest.raises(FitError, match="sampler options"):
        backtest(data, "chinchilla", method="curve_fit", chains=2)


@pytest.mark.slow
def test_data_constrained_backtest_cuts_along_epochs():
    # the data-constrained law's default axis is repetition: the refits hold out the most
    # repeated runs, and every held-out run has more epochs than the cutoff
    import numpy as np

    import bayescale as bs
    from bayescale.backtesting import subset

    d = bs.load_dataset("datablations", all=True)
    d = subset(d, d.D / d.U <= 100)
    bt = bs.backtest(d, "data_constrained", drop=[2], chains=2, warmup=100, draws=100,
                     progress=False)
    assert bt.by == "epochs"
    (cut,) = np.unique(bt.points["cutoff"])
    held = bt.points
    assert len(held) == int(np.sum(d.D / d.U > cut))
    assert np.all(held["ratio"] > 1)
