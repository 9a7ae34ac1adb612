"""The CLI: JSON shape, saved fits, and one-line errors with exit status 2."""

import argparse
import json
import subprocess
import sys

import pandas as pd
import pytest

from bayescale.cli import main
from conftest import SAMPLER_ARGS, simulate_chinchilla


def run(args, capsys):
    try:
        code = main(args)
    except SystemExit as exc:  # argparse errors leave from inside the parser
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def runs_csv(tmp_path_factory):
    N, D, loss, _ = simulate_chinchilla(n_side=5, seed=11)
    path = tmp_path_factory.mktemp("cli") / "runs.csv"
    pd.DataFrame({"params": N, "tokens": D, "final": loss}).to_csv(path, index=False)
    return path


def test_fit_json_and_summary(runs_csv, tmp_path, capsys):
    out_nc = tmp_path / "fit.nc"
    code, out, err = run([ "fit", str(runs_csv), "--n-col", "params", "--d-col", "tokens",
                          "--loss-col", "final", "--json", *SAMPLER_ARGS, "--out", str(out_nc), "--no-progress"], capsys)
    assert code == 0, err
    obj = json.loads(out)  # exactly one JSON object on stdout
    assert obj["law"] == "chinchilla" and obj["n_points"] == 25 and obj["level"] == 0.95
    assert set(obj["params"]) == {"E", "A", "B", "alpha", "beta", "sigma"}
    for v in obj["params"].values():
        assert v["lo"] <= v["median"] <= v["hi"]
    assert set(obj["diagnostics"]) == {"max_rhat", "min_ess_bulk", "divergences", "converged"}
    code, out2, _ = run(["summary", str(out_nc), "--json"], capsys)
    assert code == 0 and json.loads(out2) == obj
    code, text, _ = run(["summary", str(out_nc), "--level", "0.5"], capsys)
    assert "50% lo" in text and "alpha" in text


@pytest.mark.parametrize("args,needle", [
    (["fit", "missing.csv"], "file not found"),
    (["fit"], "either a CSV file or --dataset"),
    (["fit", "--dataset", "nope"], "unknown dataset"),
    (["fit", "RUNS", "--n-col", "N_params"], "missing column 'N_params'"),
    (["fit", "RUNS", "--law", "power", "--loss-col", "final", "--n-col", "params", "--d-col",
      "tokens"], "needs input 'x'"),
    (["summary", "RUNS"], "not a bayescale fit"),
    (["summary", "nofit.nc"], "fit file not found"),
    (["fit", "--dataset", "chinchilla", "--level", "95"], "--level must be between 0 and 1"),
    (["fit", "--dataset", "chinchilla", "--law", "gpt"], "invalid choice"),
    # least squares: the sampler's options and --out were accepted and silently ignored
    (["fit", "--dataset", "chinchilla", "--method", "curve_fit", "--out", "x.nc"],
     "--out saves a Bayesian fit"),
    (["fit", "--dataset", "chinchilla", "--method", "huber", "--chains", "8",
      "--no-form-error"], "--chains, --no-form-error set the Bayesian fit"),
    (["fit", "--dataset", "chinchilla", "--bogus"], "unrecognized arguments: --bogus (see"),
    # a selector of another data set (or of any, with a file) was silently ignored
    (["fit", "--dataset", "chinchilla", "--config", "Cosine decay"],
     "--config selects rows of the bundled porian2024 data; it does nothing for --dataset"),
    (["fit", "RUNS", "--all-rows"], "--all-rows selects rows of the bundled chinchilla or"),
    (["compare", "a.nc", "./a.nc"], "./a.nc is given twice"),
    (["fit", "--dataset", "revisiting"], "the data have x, so a law of x such as --law power"),
])
def test_errors_exit_2_one_line(args, needle, runs_csv, capsys):
    args = [str(runs_csv) if a == "RUNS" else a for a in args]
    code, out, err = run(args, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in err, err
    assert lines[0].startswith("bayescale: error:")


def test_console_script_help_is_fast_and_exit_code(tmp_path):
    # a real subprocess: no traceback, exit status 2 for a bad file
    bad = tmp_path / "bad.csv"
    bad.write_text("N,D,loss\n1e8,2e9,abc\n2e8,4e9,3.0\n")
    proc = subprocess.run([sys.executable, "-m", "bayescale.cli", "fit", str(bad)],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "non-numeric" in proc.stderr and "Traceback" not in proc.stderr
    proc = subprocess.run([sys.executable, "-c", "import sys, bayescale.cli; "
                           "bayescale.cli.build_parser(); print('jax' in sys.modules)"],
                          capture_output=True, text=True)
    assert proc.stdout.strip() == "False"  # the CLI imports no JAX until it needs it


def test_output_piped_into_head_is_not_an_error():
    # `bayescale datasets | head -1` printed 'error: BrokenPipeError' and exited 2
    proc = subprocess.run(f"{sys.executable} -m bayescale.cli datasets | head -1", shell=True,
                          capture_output=True, text=True, executable="/bin/bash")
    assert proc.stdout.startswith("chinchilla") and len(proc.stdout.splitlines()) == 1
    assert proc.stderr == "", proc.stderr


def test_least_squares_without_bootstrap_says_it_has_no_interval(capsys):
    code, out, err = run(["fit", "--dataset", "chinchilla", "--method", "curve_fit"], capsys)
    assert code == 0, err
    row = next(ln.split() for ln in out.splitlines() if ln.startswith("alpha"))
    assert row[1] == row[2] == row[3]  # median, lo and hi: one number
    assert "point estimates only (lo = hi = median): --bootstrap B" in out


def test_datasets_json(capsys):
    code, out, _ = run(["datasets", "--json"], capsys)
    rows = {r["name"]: r for r in json.loads(out)["datasets"]}
    assert code == 0 and rows["chinchilla"]["rows"] == 240 and "Hoffmann" in rows["chinchilla"][
        "citation"]


@pytest.mark.parametrize("where", ["before", "after"])
def test_platform_option(where):
    """``--platform`` picks JAX's backend before JAX starts (a new process each time): cpu runs;
    gpu runs where JAX sees a GPU (before the fix, jax 0.11 on an H100 refused it, asking for
    ROCm too) and elsewhere is one clear error, exit 2, no traceback."""
    env = {k: v for k, v in __import__("os").environ.items() if k != "JAX_PLATFORMS"}

    def call(platform):
        cmd = (["--platform", platform, "datasets", "--json"] if where == "before"
               else ["datasets", "--json", "--platform", platform])
        return subprocess.run([sys.executable, "-m", "bayescale.cli", *cmd], capture_output=True,
                              text=True, env=env)

    ok = call("cpu")
    assert ok.returncode == 0 and json.loads(ok.stdout)["datasets"]
    auto = subprocess.run([sys.executable, "-c", "import jax; print(jax.default_backend())"],
                          capture_output=True, text=True, env=env).stdout.strip()
    gpu = call("gpu")
    if auto == "gpu":  # pragma: no cover - GPU hosts: the flag must run there
        assert gpu.returncode == 0 and json.loads(gpu.stdout)["datasets"], gpu.stderr
        return
    assert gpu.returncode == 2 and "Traceback" not in gpu.stderr
    lines = gpu.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("bayescale: error: --platform gpu")
    assert "--platform cpu" in lines[0] and "JAX sees no GPU" in lines[0]


@pytest.fixture(scope="module")
def grouped_csv(tmp_path_factory):
    # Two groups of 16 runs with irreducible losses 1.7 and 2.1 (names with a space and a
    # slash, which become file names); other parameters equal.
    frames = []
    for label, E, seed in (("c4 / small", 1.7, 21), ("pile", 2.1, 22)):
        N, D, loss, _ = simulate_chinchilla(
            dict(E=E, A=480.0, B=2100.0, alpha=0.35, beta=0.37), n_side=4, seed=seed)
        frames.append(pd.DataFrame({"N": N, "D": D, "loss": loss, "corpus": label}))
    path = tmp_path_factory.mktemp("cli_groups") / "runs.csv"
    pd.concat(frames).to_csv(path, index=False)
    return path


def test_fit_by_group_json_and_files(grouped_csv, tmp_path, capsys):
    out_dir = tmp_path / "fits"
    small = [*SAMPLER_ARGS, "--no-progress"]
    code, out, err = run(["fit", str(grouped_csv), "--group-col", "corpus", "--by-group",
                          "--json", "--out", str(out_dir), *small], capsys)
    assert code == 0, err
    obj = json.loads(out)
    assert set(obj["groups"]) == {"c4 / small", "pile"} and obj["hierarchical"] is False
    assert "seconds" not in obj  # no wall-clock time: the same run prints the same bytes
    E = {g: v["params"]["E"] for g, v in obj["groups"].items()}
    # each group's own irreducible loss, not the pooled one
    assert E["c4 / small"]["hi"] < E["pile"]["lo"]
    assert 1.5 < E["c4 / small"]["median"] < 1.9 and 1.9 < E["pile"]["median"] < 2.3
    for g in obj["groups"].values():
        assert g["n_points"] == 16
    # one saved fit per group, named after the label, that reloads to the same JSON, and the
    # index that lets `summary` read the whole folder back
    assert sorted(p.name for p in out_dir.iterdir()) == ["c4_small.nc", "groups.json", "pile.nc"]
    code, again, _ = run(["summary", str(out_dir / "pile.nc"), "--json"], capsys)
    assert code == 0 and json.loads(again) == obj["groups"]["pile"]
    code, whole, _ = run(["summary", str(out_dir), "--json"], capsys)
    assert code == 0 and json.loads(whole) == obj
    code, _, err = run(["summary", str(tmp_path)], capsys)  # a folder with no index
    assert code == 2 and "no groups.json in it" in err and len(err.strip().splitlines()) == 1


def test_fit_by_group_retries(grouped_csv, capsys):
    """--retries 1 refits the unconverged groups with twice the warm-up and draws, and says so."""
    # fewer draws than SAMPLER_ARGS on purpose: the groups must fail to converge
    small = ["--chains", "2", "--warmup", "100", "--draws", "100", "--no-progress", "--json"]
    code, out, err = run(["fit", str(grouped_csv), "--group-col", "corpus", "--by-group",
                          "--retries", "1", *small], capsys)
    assert code == 0, err
    # 2 chains x 100 draws cannot reach bulk ESS 400 in every parameter: both groups refitted
    assert ("refitted 2 of 2 groups that had not converged (c4 / small, pile), with up to 200 "
            "draws per chain") in err
    assert set(json.loads(out)["groups"]) == {"c4 / small", "pile"}


def test_fit_hierarchical_text(grouped_csv, capsys):
    code, out, err = run(["fit", str(grouped_csv), "--group-col", "corpus", "--hierarchical",
                          *SAMPLER_ARGS, "--no-progress"], capsys)
    assert code == 0, err
    assert "2 groups fitted in one program (exponents shared)" in out
    assert "group c4 / small" in out and "group pile" in out
    # the overview: one row of posterior medians per group, before the detailed blocks
    lines = out.splitlines()
    head = lines.index("posterior medians")
    assert lines[head + 1].split() == ["runs", "E", "A", "B", "alpha", "beta", "converged"]
    rows = lines[head + 2:head + 4]
    assert rows[0].startswith("c4 / small") and rows[1].startswith("pile")
    assert rows[0].split()[-7] == "16" and rows[0].split()[-1] in ("yes", "NO")
    # shared exponents: both groups report the same alpha row
    alpha_rows = [ln for ln in out.splitlines() if ln.startswith("alpha")]
    assert len(alpha_rows) == 2 and alpha_rows[0] == alpha_rows[1]


class _Stop(Exception):
    pass


def _fit_arguments(monkeypatch, capsys, *args):
    """The keyword arguments `bayescale fit ARGS` passes to bayescale.fit (which is stopped
    there: what the model makes of them is tested in test_models and test_fit, and a sampled
    CLI fit in test_fit_json_and_summary)."""
    seen = {}

    def stop(data, law, **kwargs):
        seen.update(kwargs, law=law, n_points=data.n_points)
        raise _Stop

    monkeypatch.setattr("bayescale.inference.fit", stop)
    code, _, err = run(["fit", *args, "--no-progress"], capsys)
    assert code == 2 and "_Stop" in err  # stopped where the sampler would start
    return seen


@pytest.mark.parametrize("option,repeats", [("auto", "auto"), ("yes", True), ("no", False)])
def test_fit_repeats_option(option, repeats, monkeypatch, capsys):
    seen = _fit_arguments(monkeypatch, capsys, "--dataset", "datablations", "--repeats", option)
    assert seen["repeats"] is repeats or seen["repeats"] == repeats
    assert seen["n_points"] == 41 and seen["law"] == "chinchilla"


def test_fit_nu_option_learns_or_fixes_the_student_t_tails(runs_csv, monkeypatch, capsys):
    cols = [str(runs_csv), "--n-col", "params", "--d-col", "tokens", "--loss-col", "final"]
    learned = _fit_arguments(monkeypatch, capsys, *cols, "--nu", "learned")["priors"]["nu"]
    assert (float(learned.concentration), float(learned.rate)) == (2.0, 0.1)  # Gamma(2, 0.1)
    assert _fit_arguments(monkeypatch, capsys, *cols, "--nu", "2")["priors"] == {"nu": 2.0}
    assert _fit_arguments(monkeypatch, capsys, *cols)["priors"] is None


@pytest.mark.parametrize("args,message", [
    (["--nu", "0"], "expected a number above 0 or 'learned', got '0'"),
    (["--nu", "abc"], "expected a number above 0 or 'learned', got 'abc'"),
    (["--nu", "2", "--noise", "normal"], "drop it, or drop --noise normal"),
    (["--nu", "2", "--method", "huber"], "--method huber has none: drop --nu"),
    (["--nu", "2"], "pass repeats=False (--repeats no) to keep per-run"),
])
def test_fit_nu_option_errors(args, message, capsys):
    # datablations repeats configurations: the repeated-run model has no nu to set
    code, out, err = run(["fit", "--dataset", "datablations", *args, "--no-progress"], capsys)
    assert code == 2 and out == ""
    assert message in err and len(err.strip().splitlines()) <= 2 and "Traceback" not in err


def test_fit_revisiting_curve(capsys):
    from bayescale.datasets import load_dataset

    code, out, err = run(["fit", "--dataset", "revisiting", "--domain", "NMT", "--split", "train",
                          "--law", "power", "--method", "curve_fit", "--json"], capsys)
    assert code == 0, err
    nmt = load_dataset("revisiting", domain="NMT", split="train")
    assert json.loads(out)["n_points"] == nmt.n_points != load_dataset("revisiting").n_points


def test_fit_isoflop_approach2_on_porian(capsys):
    from bayescale.baselines import isoflop_approach
    from bayescale.datasets import load_dataset

    code, out, err = run(["fit", "--dataset", "porian2024", "--config", "Cosine decay",
                          "--method", "approach2", "--bootstrap", "50", "--json"], capsys)
    assert code == 0, err
    got = json.loads(out)
    data = load_dataset("porian2024", config="Cosine decay")
    direct = isoflop_approach("approach2", N=data.N, C=data.C, loss=data.loss)
    assert got["exponents"]["a"]["point"] == pytest.approx(direct.a, rel=1e-12)
    assert got["n_bootstrap"] == 50 and len(got["budgets"]) == len(direct.budgets)
    code, out, err = run(["fit", "--dataset", "porian2024", "--config", "Cosine decay",
                          "--method", "approach1"], capsys)
    assert code == 0 and "approach1 (Hoffmann et al. 2022; lowest-loss run" in out
    # Chinchilla's runs are not an IsoFLOP grid: one line that says why
    code, out, err = run(["fit", "--dataset", "chinchilla", "--method", "approach2"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and "not one IsoFLOP budget" in err


def test_fit_by_group_on_a_bundled_dataset_without_groups(capsys):
    code, out, err = run(["fit", "--dataset", "chinchilla", "--by-group"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "--dataset chinchilla has none" in err and "--config all" in err


@pytest.mark.parametrize("extra,needle", [
    (["--by-group"], "needs group labels: name their column with --group-col"),
    (["--by-group", "--group-col", "corpus", "--method", "huber"], "fit with NUTS"),
    (["--by-group", "--group-col", "corpus", "--out", "FILE"], "is a file"),
    (["--retries", "1"], "--retries refits the groups of --by-group"),
    (["--by-group", "--group-col", "corpus", "--retries", "-1"], "-1 must be a whole number >= 0"),
    (["--by-group", "--group-col", "corpus", "--no-more-chains"],
     "--no-more-chains is for one fit"),
])
def test_fit_by_group_errors(extra, needle, grouped_csv, tmp_path, capsys):
    existing = tmp_path / "fit.nc"
    existing.write_text("x")
    extra = [str(existing) if a == "FILE" else a for a in extra]
    code, out, err = run(["fit", str(grouped_csv), *extra], capsys)
    assert code == 2 and needle in err and len(err.strip().splitlines()) == 1


def test_backtest_text_json_and_plot(runs_csv, tmp_path, capsys):
    # a least-squares backtest: no sampling; the Bayesian one is the same command
    cols = ["--n-col", "params", "--d-col", "tokens", "--loss-col", "final"]
    png = tmp_path / "bt.png"
    code, out, err = run(["backtest", str(runs_csv), *cols, "--method", "curve_fit",
                          "--bootstrap", "20", "--drop", "1", "2", "--plot", str(png)], capsys)
    assert code == 0, err
    assert "pooled" in out and "cov90" in out and "by extrapolation ratio" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "bt.svg"
    code, out, _ = run(["backtest", str(runs_csv), *cols, "--method", "curve_fit",
                        "--bootstrap", "20", "--drop", "1", "--json", "--plot", str(svg)],
                       capsys)
    assert b"<svg" in svg.read_bytes()[:500]
    obj = json.loads(out)
    assert code == 0 and obj["by"] == "C" and len(obj["splits"]) == 1
    assert obj["summary"]["pooled"]["n_test"] == obj["splits"][0]["n_test"]
    code, _, err = run(["backtest", str(runs_csv), *cols, "--drop", "9"], capsys)
    assert code == 2 and "levels" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["backtest", str(runs_csv), *cols, "--plot", str(tmp_path / "a.gif")],
                       capsys)
    assert code == 2 and ".png, .pdf or .svg" in err


def test_bayesian_backtest_and_predict_beyond(runs_csv, tmp_path, capsys):
    cols = ["--n-col", "params", "--d-col", "tokens", "--loss-col", "final"]
    quick = [*SAMPLER_ARGS, "--no-progress"]
    code, out, err = run(["backtest", str(runs_csv), *cols, *quick, "--drop", "1", "--json"],
                         capsys)
    assert code == 0, err
    split = json.loads(out)["splits"][0]
    assert split["n_train"] + split["n_test"] == 25
    fit_nc = tmp_path / "f.nc"
    assert run(["fit", str(runs_csv), *cols, *quick, "--out", str(fit_nc)], capsys)[0] == 0
    code, out, _ = run(["predict", str(fit_nc), "--N", "1e12", "--D", "2e13", "--json"], capsys)
    pt = json.loads(out)["points"][0]
    assert set(pt) >= {"law", "noise_only", "new_run", "beyond"}
    assert pt["beyond"]["decades"] > 1  # far past the runs: the form error widens the band
    assert pt["new_run"]["hi"] - pt["new_run"]["lo"] > pt["noise_only"]["hi"] - pt[
        "noise_only"]["lo"]
    code, text, _ = run(["predict", str(fit_nc), "--N", "1e12", "--D", "2e13"], capsys)
    assert "form exact" in text and "3.9 decades outside the training data" in text
    assert "against the largest trained: C 8e+03x, N 200x, D 40x" in text


def test_help_texts_defaults_groups_and_examples(capsys):
    from bayescale.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, command in sub.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
    with pytest.raises(SystemExit):
        main(["fit", "--help"])
    text = capsys.readouterr().out
    for needle in ("sampler:", "model:", "output:", "data:", "examples:",
                   "--chains CHAINS", "(default: 4)", "--seed SEED", "(default: 0)",
                   "(default: student_t)", "the same seed, the same output"):
        assert needle in text, needle


def test_fit_text_says_when_chains_were_added(capsys):
    from bayescale.cli import _report_fit

    out = {"law": "power", "n_points": 119, "level": 0.95,
           "params": {"E": {"median": 0.92, "lo": 0.919, "hi": 0.921}},
           "diagnostics": {"max_rhat": 1.005, "min_ess_bulk": 767.0, "divergences": 0,
                           "converged": True}}
    _report_fit(out, False)
    assert "added" not in capsys.readouterr().out
    _report_fit(dict(out, added_chains=4), False)
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert line.endswith("-> converged (4 chains added for the ESS: --no-more-chains to keep "
                         "--chains)")


def test_columns_note_counts_rows_of_checkpoints(tmp_path):
    # a table of checkpoints (a run column) has rows, not runs: the note said "6 runs"
    from bayescale import cli

    path = tmp_path / "curves.csv"
    pd.DataFrame({"num_params": [1e8] * 3 + [2e8] * 3, "tokens_seen": [1e9, 2e9, 4e9] * 2,
                  "eval/loss": [3.5, 3.3, 3.2, 3.4, 3.2, 3.1],
                  "run": ["a"] * 3 + ["b"] * 3}).to_csv(path, index=False)
    cli._NOTES.clear()
    data = cli._load_data(cli.build_parser().parse_args(["fit", str(path)]))
    assert data.has_checkpoints
    assert any(f"6 rows from {path}" in note for note in cli._NOTES), cli._NOTES
