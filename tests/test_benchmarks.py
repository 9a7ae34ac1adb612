"""Smoke tests of the benchmark scripts: each runs with ``--quick`` into a temporary folder
(``slow``: they run in CI, and ``pytest -m "not slow"`` skips them).

The quick versions sample very little, so the numbers mean nothing; what is checked is what must
hold whatever they are: the tables agree with the raw records they summarise, and the
relations that follow from the methods' construction hold.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


def run(script: str, out: Path, *extra: str, ok: bool = True) -> str:
    env = {**os.environ, "MPLBACKEND": "Agg", "JAX_PLATFORMS": "cpu"}
    env.pop("BAYESCALE_QUICK", None)  # --quick sizes the run; the library's quick mode would
    # also turn off what a script measures (fit's added chains)
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick", "--out", str(out),
                           *extra], capture_output=True, text=True, env=env, timeout=2400,
                          check=False)
    if not ok:
        assert proc.returncode != 0
        return proc.stderr
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


def table(text: str, first_column: str) -> list[dict[str, str]]:
    """Rows of the first markdown table whose header starts with ``first_column``."""
    lines = text.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith(f"| {first_column} |"))
    names = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            break
        rows.append(dict(zip(names, (c.strip() for c in ln.strip("|").split("|")))))
    return rows


def variant_labels() -> list[str]:
    """The labels of ``_common.form_error_variants`` (the trade-off's priors), in order."""
    sys.path.insert(0, str(BENCH))
    try:
        import _common
    finally:
        sys.path.remove(str(BENCH))
    return [label for label, _ in _common.form_error_variants()]


def test_timed_cpu_counts_the_child_process_cpu_not_its_wall_time():
    sys.path.insert(0, str(BENCH))
    try:
        import _common as C
    finally:
        sys.path.remove(str(BENCH))
    env = dict(os.environ)
    busy = "import time\nwhile time.process_time() < 0.6: pass"
    wall, cpu = C.timed_cpu([sys.executable, "-c", busy], env)
    assert cpu >= 0.6 and wall >= 0.6  # the child burned 0.6 CPU seconds of its own
    wall, cpu = C.timed_cpu([sys.executable, "-c", "import time; time.sleep(0.8)"], env)
    assert wall >= 0.8 and cpu < 0.6  # asleep: wall-clock time, next to no CPU
    with pytest.raises(RuntimeError, match="boom"):
        C.timed_cpu([sys.executable, "-c", "raise SystemExit('boom')"], env)


@pytest.mark.slow
def test_extrapolation_quick(tmp_path):
    run("extrapolation.py", tmp_path)
    text = (tmp_path / "extrapolation.md").read_text()
    assert "Command: `python" in text and "--quick" in text and "## Targets" in text
    pooled = {r["method"]: r for r in table(text.split("## Pooled over every split")[1],
                                            "method")}
    splits = table(text.split("## Per split")[1], "split")
    assert set(pooled) == {"default", "zero-mean", "law only", "conformal", "stacked", "huber",
                           "curve_fit", "ols"}
    # Pooled rows are the per-split rows put together: held-out runs add up, and the pooled
    # 90% coverage is the runs-weighted mean of the splits' (to the tables' rounding).
    for method, row in pooled.items():
        mine = [r for r in splits if r["method"] == method]
        n = np.array([int(r["n_test"]) for r in mine])
        assert int(row["n_test"]) == n.sum()
        cov = np.array([float(r["cov90"]) for r in mine])
        assert float(row["cov90"]) == pytest.approx((n * cov).sum() / n.sum(), abs=2e-3)
        covs = [float(row[f"cov{level}"]) for level in (50, 80, 90, 95)]
        assert covs == sorted(covs)  # nested central bands of the same draws
    # The form error beyond the data widens every split's band over the law-only one (same
    # fit, same noise draws, one more error term), and zero-mean keeps the default's spread.
    by = {(r["split"], r["method"]): r for r in splits}
    for name in {r["split"] for r in splits}:
        assert float(by[name, "default"]["width90"]) > float(by[name, "law only"]["width90"])
        assert by[name, "zero-mean"]["width90"] == by[name, "default"]["width90"]
    assert (tmp_path / "extrapolation.png").stat().st_size > 0
    bar = {r["method"]: r for r in table(text.split("error target, for scale")[1], "method")}
    assert set(bar) == {"default", "zero-mean", "law only", "stacked", "huber", "curve_fit",
                        "ols"}
    # Stacking weights: each split's laws (3 for the Chinchilla law, 2 for the power law) get
    # weights that make a distribution.
    weights = table(text.split("## Stacking weights")[1], "split")
    assert {w["split"] for w in weights} == {r["split"] for r in splits}
    for w in weights:
        shares = [float(v) for k, v in w.items() if k != "split" and v]
        assert len(shares) in (2, 3) and sum(shares) == pytest.approx(1.0, abs=2e-3)


@pytest.mark.slow
def test_noise_quick(tmp_path):
    run("noise.py", tmp_path)
    text = (tmp_path / "noise.md").read_text()
    models = ["nu = 4", "nu = 2"]
    assert list(table(text, "target")[0]) == ["target", *models]
    pooled = {r["noise"]: r for r in table(text, "noise")}
    splits = table(text, "split")
    assert list(pooled) == models and len(splits) == 2  # the quick run's two splits
    n = np.array([float(r["n_test"]) for r in splits])
    for m in models:  # the pooled row summarises the per-split rows it is made of
        cov = np.array([float(r[f"cov90 {m}"]) for r in splits])
        assert float(pooled[m]["cov90"]) == pytest.approx(np.sum(n * cov) / n.sum(), abs=2e-3)
        assert float(pooled[m]["min split cov90"]) == pytest.approx(cov[n > 1].min(), abs=1e-3)
        assert float(pooled[m]["n_test"]) == n.sum()


@pytest.mark.slow
def test_prior_surface_quick(tmp_path):
    run("prior_surface.py", tmp_path)
    text = (tmp_path / "prior_surface.md").read_text()
    rows = table(text, "changed")
    assert [r["value"] for r in rows if r["changed"] == "c"] == ["2", "4", "8", "16", "32", "64"]
    assert [r["changed"] for r in rows if r["shipped"] == "yes"] == ["c"]  # c = 16, as shipped
    families = [k for k in rows[0] if k not in ("changed", "value", "shipped",
                                                 "average over families")]
    assert len(families) == 2  # the quick run's Chinchilla split and learning curve
    for r in rows:  # each family weighted equally
        mean = np.mean([float(r[f]) for f in families])
        assert float(r["average over families"]) == pytest.approx(mean, abs=2e-3)
    # The trade-off table scores the same list calibration.py measures; its shipped row is the
    # first table's shipped row (same prior, same splits).
    trade = table(text.split("## Narrower priors")[1], "prior")
    assert [r["prior"] for r in trade] == variant_labels()
    shipped = next(r for r in rows if r["shipped"] == "yes")
    assert trade[0]["average over families"] == shipped["average over families"]
    for r in trade:
        assert 0 <= float(r["worst split, 90%"]) <= float(r["90% coverage"]) <= 1


def test_error_bar_for_scale_holds_each_method_to_the_other_least_squares_methods():
    sys.path.insert(0, str(BENCH))
    try:
        from extrapolation import error_bar_for_scale
    finally:
        sys.path.remove(str(BENCH))
    mae = {"default": [1.0, 2.0, 3.1, 9.0], "huber": [1.0, 1.0, 3.5, None],
           "curve_fit": [2.0, 1.04, 2.9, 1.0], "conformal": [1.0, 2.0, 3.0, 9.0]}
    rows = {m: [{"split": f"s{i}", "mae": v} for i, v in enumerate(vals) if v is not None]
            for m, vals in mae.items()}
    bar, splits = error_bar_for_scale(rows)
    assert splits == ["s0", "s1", "s2"]  # s3 has one least-squares method only
    got = {r["method"]: (r["splits"], r[list(r)[2]]) for r in bar}
    # default against min(huber, curve_fit): 1 <= 1.05, 2 > 1.05, 3.1 > 3.045
    # huber against curve_fit alone: 1 <= 2.1, 1 <= 1.092, 3.5 > 3.045
    # curve_fit against huber alone: 2 > 1.05, 1.04 <= 1.05, 2.9 <= 3.675
    assert got == {"default": (3, 1), "huber": (3, 2), "curve_fit": (3, 2)}


def test_calibration_nu_option_checks_its_value_and_builds_the_prior():
    import argparse

    sys.path.insert(0, str(BENCH))
    try:
        from calibration import nu_arg, nu_prior
    finally:
        sys.path.remove(str(BENCH))
    for bad in ("0", "-2", "abc", "nan"):
        with pytest.raises(argparse.ArgumentTypeError, match="above 0 or 'learned'"):
            nu_arg(bad)
    assert nu_arg("2") == "2" and nu_arg("learned") == "learned"
    assert nu_prior(None) is None and nu_prior("2") == 2.0
    learned = nu_prior("learned")
    # Juarez and Steel's Gamma(2, 0.1): mean 20, variance 200
    assert float(learned.mean) == pytest.approx(20.0)
    assert float(learned.variance) == pytest.approx(200.0)


@pytest.mark.slow
def test_calibration_quick(tmp_path):
    run("calibration.py", tmp_path)
    text = (tmp_path / "calibration.md").read_text()
    rows = table(text, "method")
    quantities = ["E", "A", "B", "alpha", "beta", "N_opt", "D/N_opt", "loss_new_run",
                  "loss_law"]
    assert set(quantities) <= set(rows[0])
    assert {r["method"] for r in rows} == {"bayes", "bayes law-only", "huber", "curve_fit"}
    raw = pd.read_csv(tmp_path / "calibration_raw.csv")
    # Every record's hit is its interval holding its truth, recomputed here...
    assert (raw["hit"] == ((raw["lo"] <= raw["truth"]) & (raw["truth"] <= raw["hi"]))).all()
    # ... and every cell of the table is the share of hits of its records, with its binomial
    # standard error.
    for r in rows:
        g = raw[raw["method"] == r["method"]]
        if r["noise"] != "all":
            g = g[g["noise"] == r["noise"]]
        for q in quantities:
            hits = g.loc[g["quantity"] == q, "hit"].to_numpy()
            p, se = (float(v) for v in re.fullmatch(r"([\d.]+) ± ([\d.]+)", r[q]).groups())
            assert p == pytest.approx(hits.mean(), abs=0.006)
            assert se == pytest.approx(np.sqrt(hits.mean() * (1 - hits.mean()) / hits.size),
                                       abs=0.006)
    # The default's new-run band at 100x adds the form error to the law-only band of the same
    # fit: wider on every data set.
    far = raw[(raw["quantity"] == "loss_new_run") & (raw["point"] == 3)]
    width = far.assign(w=far["hi"] - far["lo"]).pivot(index="dataset", columns="method",
                                                      values="w")
    assert (width["bayes"] > width["bayes law-only"]).all()
    assert (tmp_path / "calibration.png").exists()
    # The trade-off: the shipped prior's row redraws the default's bands exactly, and no form
    # error to speak of (c = 1, no scatter) is narrower at 100x than the shipped one.
    assert "redraws the default's bands: identical" in text
    trade = {r["prior"]: r for r in table(text.split("## Narrower form-error")[1], "prior")}
    assert list(trade) == variant_labels()
    col = "width at 100x / form exact, median"
    assert float(trade["c 1, scatter 0"][col]) < float(trade["c 16, scatter 1 (shipped)"][col])


@pytest.mark.slow
def test_speed_quick(tmp_path):
    run("speed.py", tmp_path)
    text = (tmp_path / "speed.md").read_text()
    rows = table(text, "method")
    assert [r["method"][:3] for r in rows] == ["(a)", "(b)", "(c)", "(d)", "cur", "(e)"]
    for r in rows:
        fit_s, process_s = float(r["fit_s"]), float(r["process_s"])
        assert 0.0 < fit_s < process_s
    ref = next(r for r in rows if r["method"].startswith("(c)"))
    assert float(ref["x faster than (c)"]) == pytest.approx(1.0)
    for r in rows:  # the ratio column is the reference's time over the row's, as labelled
        assert float(r["x faster than (c)"]) == pytest.approx(
            float(ref["fit_s"]) / float(r["fit_s"]), rel=0.01)
    bayes = [r for r in rows if r["method"][:3] in ("(a)", "(b)", "(c)", "(e)")]
    for r in bayes:
        assert float(r["min bulk ESS"]) > 0 and float(r["max R-hat"]) >= 0.99
        # a NUTS trajectory has 1 to 2^10 - 1 leapfrog steps (max tree depth 10)
        assert 1.0 <= float(r["leapfrog steps per draw"]) <= 1023.0
    targets = table(text, "target")
    assert len(targets) == 10 and all(t["met"] in ("yes", "NO") for t in targets)
    # The warm run loaded what the cold run exported: three programs were cached.
    assert "Programs in the cache after the cold run: chunk, init, post" in text
    # (f)'s ratios are the recorded processes' times over the warm one's
    import json

    first = json.loads((tmp_path / "speed_runs.json").read_text())["runs"]["first"]
    measured = {t["target"].split(",")[0]: float(t["measured"]) for t in targets}
    assert measured["first `bayescale fit --dataset chinchilla`"] == pytest.approx(
        first["cold"] / first["warm"], rel=0.01)
    assert measured["a data set of a new size (200 runs) / warm process (f)"] == pytest.approx(
        first["new_size"] / first["warm"], rel=0.01)
    # the cold process traced and compiled what the warm one loaded: more CPU time
    cpu = first["cpu"]
    assert cpu["cold"] > cpu["warm"] > 0.0
    assert f"cold {cpu['cold']:.1f} s, warm {cpu['warm']:.1f} s" in text
    assert first["each"]["cold"] == [first["cold"]]  # --quick: one round, its median itself


@pytest.mark.slow
def test_speed_parts(tmp_path):
    """A study run in two parts: the references part reads the fits part's runs from --runs and
    computes the targets from both (here from made-up fit timings, so every ratio is known)."""
    import json

    ess = {p: 1500.0 for p in ("E", "A", "B", "alpha", "beta", "sigma")}
    fake = {"date": "2026-01-01 00:00 UTC", "part": "fits", "seconds": 50.0, "machine": "m",
            "settings": {"chains": 2, "warmup": 100, "draws": 100}, "programs": ["chunk"],
            "runs": {"cold": {"fit_s": 8.0, "process_s": 9.0, "ess": ess, "rhat": 1.001},
                     "warm": {"fit_s": 2.0, "process_s": 3.0, "ess": ess, "rhat": 1.002,
                              "devices": "1 x Fake GPU"},
                     "many": {"fit_s": 5.0, "process_s": 6.0, "ess": ess, "rhat": 1.0,
                              "min_ess_all_groups": 900.0, "max_rhat_all_groups": 1.005}}}
    runs = tmp_path / "fits.json"
    runs.write_text(json.dumps(fake))
    run("speed.py", tmp_path, "--part", "references", "--runs", str(runs))
    text = (tmp_path / "speed.md").read_text()
    assert "read from `--runs` (fits part, 2026-01-01 00:00 UTC" in text
    assert "1 x Fake GPU" in text
    rows = {r["method"][:3]: r for r in table(text, "method")}
    assert set(rows) == {"(a)", "(b)", "(c)", "(d)", "cur", "(e)"}
    ref = float(rows["(c)"]["fit_s"])
    assert float(rows["(b)"]["x faster than (c)"]) == pytest.approx(ref / 2.0, rel=0.01)
    targets = {t["target"]: t for t in table(text, "target")}
    assert float(targets["fit_many (16 groups) / warm fit"]["measured"]) == pytest.approx(2.5)
    assert targets["fit_many (16 groups) / warm fit"]["met"] == "yes"
    assert targets["min bulk ESS over all 16 fit_many groups"]["met"] == "NO"
    assert float(targets["cold fit vs reference (c)"]["measured"]) == pytest.approx(ref / 8.0,
                                                                                   rel=0.01)
    # the raw runs of this part were written beside the table, without the borrowed ones
    mine = json.loads((tmp_path / "speed_runs.json").read_text())
    assert mine["part"] == "references" and set(mine["runs"]) == {"reference", "huber",
                                                                   "curve_fit"}
    # parts of different sizes are refused with one message
    fake["settings"] = {"chains": 4, "warmup": 1000, "draws": 1000}
    runs.write_text(json.dumps(fake))
    err = run("speed.py", tmp_path / "x", "--part", "references", "--runs", str(runs), ok=False)
    assert "run both parts with or both without --quick" in err and "Traceback" not in err
    err = run("speed.py", tmp_path / "x", "--part", "references", "--runs",
              str(tmp_path / "missing.json"), ok=False)
    assert "cannot read it" in err and "Traceback" not in err
    err = run("speed.py", tmp_path / "x", "--runs", str(runs), ok=False)
    assert "use it with --part fits or --part references" in err and "Traceback" not in err


@pytest.mark.slow
def test_sampler_quick(tmp_path):
    run("sampler.py", tmp_path)
    rows = table((tmp_path / "sampler.md").read_text(), "data set")
    assert [float(r["target_accept"]) for r in rows] == [0.9, 0.95]
    for r in rows:
        fits, total = re.fullmatch(r"(\d+) of (\d+)", r["fits with divergences"]).groups()
        assert int(fits) <= int(total) == 1
        assert (int(r["divergences"]) > 0) == (int(fits) > 0)
        assert 1.0 <= float(r["leapfrog steps per draw"]) <= 1023.0
        assert float(r["min bulk ESS"]) > 0 and float(r["median fit_s"]) > 0
        # one seed: a fit that added no chains has the same ESS in both columns; one that did
        # had no divergences, and its ESS over all its chains is another number
        added = re.fullmatch(r"(\d+) of 1", r["fits that added chains"]).group(1)
        same = float(r["min bulk ESS, chains added"]) == float(r["min bulk ESS"])
        assert same if added == "0" else (not same and int(fits) == 0), r


@pytest.mark.slow
def test_porian_quick(tmp_path):
    import pandas as pd

    run("porian.py", tmp_path)
    text = (tmp_path / "porian.md").read_text()
    rows = table(text, "configuration")
    assert [r["configuration"] for r in rows] == ["owt2/Correcting warmup",
                                                  "owt2/Counting last layer FLOPs"]
    fits = pd.read_csv(BENCH.parent / "bayescale" / "datasets" / "porian2024_fits.csv")
    number = r"(-?[0-9.]+) \[(-?[0-9.]+), (-?[0-9.]+)\]"
    for r in rows:
        corpus, config = r["configuration"].split("/", 1)
        pub = fits[(fits.dataset == corpus) & (fits.config_label == config)].iloc[0]
        # the published column is Porian et al.'s table, to the digits shown
        assert r["published a [95%]"] == (f"{pub.a_Nopt_exponent_bs_median_weighted:.3f} "
                                          f"[{pub.a_CI95_lo:.3f}, {pub.a_CI95_hi:.3f}]")
        med, lo, hi = map(float, re.fullmatch(number, r["bayes a [95%]"]).groups())
        assert 0.0 < lo <= med <= hi < 1.0
        shown = float(f"{pub.a_Nopt_exponent_bs_median_weighted:.3f}")
        if min(abs(shown - lo), abs(shown - hi)) > 0.002:  # not decided by the rounding
            assert r["holds published"] == ("yes" if lo <= shown <= hi else "no")
        assert 0.0 < float(r["huber a"]) < 1.0 and 0.0 < float(r["separate fit a"]) < 1.0
        assert int(r["runs"]) == 132 and r["decay"] == pub.decay == "kaplan"
    agree = table(text, "method")
    assert {r["method"] for r in agree} == {"bayes (posterior median)",
                                            "huber (Approach 3 point fit)",
                                            "approach2 (IsoFLOP parabolas, bootstrap)"}
    for r in agree:
        assert -1.0 <= float(r["Spearman with published"]) <= 1.0
        assert float(r["mean abs difference"]) >= 0.0
    for r in rows:  # Approach 2 is the paper's own method: close to its published a
        corpus, config = r["configuration"].split("/", 1)
        pub = fits[(fits.dataset == corpus) & (fits.config_label == config)].iloc[0]
        point = float(re.fullmatch(number, r["approach2 a [95%]"]).group(1))
        assert point == pytest.approx(pub.a_Nopt_exponent_bs_median_weighted, abs=0.035)
    # the simulated study: a parabola over a fixed grid's whole profile is biased upward
    # (the truth is beta / (alpha + beta) = 0.28 / 0.62)
    text_bias = text[text.index("## Approach 2's bias"):]
    bias = {r["method"]: r for r in table(text_bias, "method")}
    whole = bias["approach2, parabola over all of a budget's runs"]
    assert float(whole["bias"]) > 0.05
    # the posterior of the law the profiles come from is not biased that way
    assert abs(float(bias["bayes (posterior median of a)"]["bias"])) < float(whole["bias"]) / 2
    times = {r["how"]: float(r["wall s"]) for r in table(text, "how")}
    many, separate = times["fit_many, 2 groups in one program"], times[
        "fit, 2 calls one after another"]
    assert times["ratio (separate / fit_many)"] == pytest.approx(separate / many, rel=2e-3)
    assert (tmp_path / "porian.png").stat().st_size > 0


@pytest.mark.slow
def test_backtest_timing_quick(tmp_path):
    run("backtest.py", tmp_path)
    text = (tmp_path / "backtest.md").read_text()
    rows = {r["command"].split()[1]: r for r in table(text, "command")}
    assert set(rows) == {"fit", "backtest"}
    ratio = float(re.search(r"backtest / fit, warm: ([\d.]+)x", text).group(1))
    # the verdict is the ratio of the table's own medians, as labelled
    assert ratio == pytest.approx(float(rows["backtest"]["warm s (median)"])
                                  / float(rows["fit"]["warm s (median)"]), abs=0.01)


@pytest.mark.slow
def test_large_table_quick(tmp_path):
    run("large_table.py", tmp_path)
    rows = table((tmp_path / "large_table.md").read_text(), "runs")
    assert [int(r["runs"]) for r in rows] == [200, 2000]
    for r in rows:
        assert float(r["peak memory GiB"]) > 0 and int(r["pointwise: one draw in"]) == 1
    # 2000 runs with 1% noise pin alpha (0.35) even at 1 chain of 20 + 20: padded rows
    # counted as data, or a wrong mask, would move it
    assert abs(float(rows[1]["alpha median (truth 0.35)"]) - 0.35) < 0.03
    # where the time goes: the Chinchilla posterior has 6 latent sites (E, A_ref, B_ref,
    # alpha, beta, sigma), so a mode search is 4 starts x 61 steps x (1 + 2 x 6) gradients;
    # NUTS spends 1 to 2^10 - 1 leapfrog steps per transition, 2000 transitions
    text = (tmp_path / "large_table.md").read_text()
    costs = table(text.split("## Where the time goes")[1], "runs")
    assert [int(r["runs"]) for r in costs] == [200, 2000]
    for r in costs:
        assert int(float(r["mode search: gradients per chain"])) == 4 * 61 * 13
        assert 2000 <= float(r["NUTS (1000+1000): gradients per chain"]) <= 2000 * 1023
        assert float(r["mode search s per chain"]) == pytest.approx(
            float(r["one gradient ms"]) / 1e3 * 4 * 61 * 13, rel=2e-3)


@pytest.mark.slow
def test_tasks_quick(tmp_path):
    run("tasks.py", tmp_path)
    text = (tmp_path / "tasks.md").read_text()
    rows = table(text, "task")
    assert [r["task"] for r in rows] == ["arc_challenge_test", "arc_challenge_val"]
    methods = {r["method"]: r for r in table(text, "method")}
    # the pooled coverage is the per-task counts put together (12 targets each)
    inside = sum(int(r["two-step in 90%"].split("/")[0]) for r in rows)
    assert float(methods["two-step (default)"]["90% coverage, all pairs"]) == pytest.approx(
        inside / (12 * len(rows)), abs=1e-3)
    good = sum(float(r["two-step err"]) <= 2 for r in rows)
    assert methods["two-step (default)"]["tasks with median error <= 2 points"].startswith(
        f"{good} of")
    assert (tmp_path / "tasks.png").stat().st_size > 0
