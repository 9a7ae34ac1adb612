"""Faults a user can cause: nothing overwritten, nothing half-written, one line and exit 2.

Each case is a real fault (same-file output, a device, a FIFO, a symlink, a full disk, Ctrl-C and
SIGTERM while a file is written, a read-only cache, a damaged fit file), reproduced here; the ones
that need a private mount (a tiny tmpfs, a read-only folder) run where ``unshare`` allows one.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import warnings

import numpy as np
import pandas as pd
import pytest

import bayescale as bs
from bayescale.cli import main
from conftest import Stop, simulate_chinchilla, stop

CLI = [sys.executable, "-m", "bayescale.cli"]


def run(args, capsys):
    try:
        code = main([str(a) for a in args])
    except SystemExit as exc:  # argparse errors leave from inside the parser
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def one_error(code, err, needle):
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("bayescale: error:"), err
    assert needle in lines[0], lines[0]
    assert "Traceback" not in err and ".tmp" not in err


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A CSV of runs and a small saved fit (few draws: these tests are about files)."""
    folder = tmp_path_factory.mktemp("faults")
    N, D, loss, _ = simulate_chinchilla(n_side=4, seed=5)
    csv = folder / "runs.csv"
    pd.DataFrame({"N": N, "D": D, "loss": loss}).to_csv(csv, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        fit = bs.fit(bs.ScalingData.from_csv(csv), "chinchilla", chains=1, warmup=60, draws=60,
                     progress=False, form_error=False)
    nc = fit.save(folder / "fit.nc")
    return {"csv": csv, "nc": nc, "fit": fit, "folder": folder}


def _digest(path):
    return path.read_bytes() if path.is_file() else None


@pytest.mark.parametrize("case", ["fit-same", "fit-dot", "fit-abs", "fit-link", "report-same",
                                  "folder", "under-file", "too-long", "loop", "group-file"])
def test_bad_output_paths_refused_before_any_work(case, files, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(files["folder"])
    csv, nc = files["csv"], files["nc"]
    (tmp_path / "loop_a").symlink_to(tmp_path / "loop_b")
    (tmp_path / "loop_b").symlink_to(tmp_path / "loop_a")
    (tmp_path / "link.csv").symlink_to(csv)
    args, needle = {
        "fit-same": (["fit", "runs.csv", "--out", "runs.csv"], "is the input file"),
        "fit-dot": (["fit", "runs.csv", "--out", "./runs.csv"], "is the input file"),
        "fit-abs": (["fit", "runs.csv", "--out", csv.resolve()], "is the input file"),
        "fit-link": (["fit", tmp_path / "link.csv", "--out", "runs.csv"], "is the input file"),
        "report-same": (["report", "./fit.nc", "--out", nc.resolve()], "is the input file"),
        "folder": (["fit", "runs.csv", "--out", tmp_path], "is a folder"),
        "under-file": (["fit", "runs.csv", "--out", csv / "x.nc"], "is a file, not a folder"),
        "too-long": (["fit", "runs.csv", "--out", tmp_path / ("a" * 300 + ".nc")], "too long"),
        "loop": (["fit", "runs.csv", "--out", tmp_path / "loop_a"], "symlink loop"),
        "group-file": (["fit", "runs.csv", "--by-group", "--out", nc], "must name a folder"),
    }[case]
    before = {p: _digest(p) for p in (csv, nc)}

    def no_work(*args, **kwargs):  # reading an input would be the first work: none must start
        raise RuntimeError("an input was read before the output was checked")

    monkeypatch.setattr(bs.ScalingData, "from_file", no_work)
    monkeypatch.setattr(bs.ScalingFit, "load", no_work)
    code, out, err = run(args, capsys)
    one_error(code, err, needle)
    assert {p: _digest(p) for p in (csv, nc)} == before  # nothing overwritten
    assert not [p for p in files["folder"].iterdir() if p.name.endswith(".tmp")]


def test_read_only_output_folder(files, tmp_path, monkeypatch, capsys):
    # as root every folder is writable; the check itself is what is tested here
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(tmp_path)
                        else real(p, mode))
    code, out, err = run(["report", files["nc"], "--out", tmp_path / "r.html"], capsys)
    one_error(code, err, "cannot write in folder")


def test_special_files_are_written_not_replaced(files, tmp_path, capsys):
    # /dev/null stays the device; a FIFO gets the report through it; a symlink keeps pointing
    # at its target, which gets the new file
    code, out, err = run(["report", files["nc"], "--out", os.devnull], capsys)
    assert code == 0, err
    assert os.path.exists(os.devnull) and not os.path.isfile(os.devnull)
    fifo = tmp_path / "pipe.html"
    os.mkfifo(fifo)
    got = []
    reader = threading.Thread(target=lambda: got.append(fifo.read_bytes()))
    reader.start()
    code, out, err = run(["report", files["nc"], "--out", fifo], capsys)
    reader.join(60)
    assert code == 0, err
    assert got and got[0].startswith(b"<!DOCTYPE html>") and fifo.is_fifo()
    target = tmp_path / "real.nc"
    target.write_text("old")
    link = tmp_path / "link.nc"
    link.symlink_to(target)
    files["fit"].save(link)
    assert link.is_symlink() and os.readlink(link) == str(target)
    assert bs.load_fit(link).param_names == files["fit"].param_names


def test_fit_output_checked_before_sampling_then_written(files, tmp_path, capsys):
    out_nc = tmp_path / "new" / "fit.nc"  # a folder that does not exist yet is made
    code, out, err = run(["fit", files["csv"], "--out", out_nc, "--chains", "1", "--warmup", "40",
                          "--draws", "40", "--no-progress", "--no-form-error", "--json"], capsys)
    assert code == 0, err
    assert bs.load_fit(out_nc).data.n_points == 16
    assert [p.name for p in out_nc.parent.iterdir()] == ["fit.nc"]


def _private_mount(script: str, tmp_path) -> subprocess.CompletedProcess:
    """Run ``script`` (sh) in a user and mount namespace, or skip where that is not allowed."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare here")
    probe = subprocess.run(["unshare", "-rm", "sh", "-c", f"mount -t tmpfs tmpfs {tmp_path}"],
                           capture_output=True)
    if probe.returncode != 0:
        pytest.skip("this machine does not allow a private mount")
    return subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True,
                          timeout=600)


def test_full_disk_one_line_and_the_old_file_kept(files, tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    save = (f"{sys.executable} -c \"import bayescale as bs; "
            f"bs.load_fit('{files['nc']}').save('{disk}/fit.nc')\"")
    report = " ".join([*CLI, "report", str(files["nc"]), "--out", f"{disk}/report.html"])
    proc = _private_mount(textwrap.dedent(f"""
        mount -t tmpfs -o size=64k tmpfs {disk} || exit 99
        echo old > {disk}/report.html
        dd if=/dev/zero of={disk}/fill bs=1k count=1000 2>/dev/null  # fill the disk
        {report}; echo "report rc=$?"
        {save} 2>&1 | tail -1; echo "save done"
        cat {disk}/report.html; ls -a {disk}
        """), tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "report rc=2" in proc.stdout and "Segmentation" not in proc.stdout + proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "the disk is full" in err[0] and "report.html" in err[0], err
    assert "OutputError: the disk is full" in proc.stdout  # the API raises the same, clearly
    listing = proc.stdout.split("save done")[1].split()
    assert listing[0] == "old"  # the old report is as it was
    assert not [n for n in listing if n.endswith(".tmp")] and "fit.nc" not in listing
    assert set(listing) == {"old", ".", "..", "fill", "report.html"}


def test_read_only_cache_folder(files, tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    env = " ".join([f"HOME={ro}", f"XDG_CACHE_HOME={ro}", f"BAYESCALE_CACHE_DIR={ro}",
                    f"MPLCONFIGDIR={tmp_path}"])
    proc = _private_mount(textwrap.dedent(f"""
        mount --bind {ro} {ro} && mount -o remount,bind,ro {ro} || exit 99
        touch {ro}/x 2>/dev/null && echo "writable?"
        env {env} {' '.join(CLI)} summary {files['nc']} --json > /dev/null; echo "rc=$?"
        """), tmp_path)
    assert "writable?" not in proc.stdout
    assert "rc=0" in proc.stdout, proc.stderr  # ArviZ's import no longer dies on it


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_while_writing_leaves_the_old_file(sig, files, tmp_path):
    # the write is made slow at the point where the temporary file is open: the signal lands
    # in the middle of the save
    target = tmp_path / "report.html"
    target.write_text("old")
    script = textwrap.dedent(f"""
        import os, sys, threading
        def slow_sync(fd):  # the write never ends: only acting on the signal ends the run
            sys.stderr.write("writing\\n"); sys.stderr.flush(); threading.Event().wait()
        os.fsync = slow_sync
        from bayescale.cli import main
        sys.exit(main(["report", {str(files['nc'])!r}, "--out", {str(target)!r}]))
        """)
    # Ctrl-C as a terminal delivers it: a shell that started this run in the background (a
    # script, nohup ... &) hands on SIGINT ignored, which the child would inherit
    proc = subprocess.Popen([sys.executable, "-c", script], stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    assert proc.stderr.readline().strip() == "writing"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # mid-write
    proc.send_signal(sig)
    rest = proc.stderr.read()
    proc.wait(600)  # a guard against a hang only: the write itself never finishes
    one_error(proc.returncode, rest, "interrupted; no output file was written")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_fifo_input_read_once(files, tmp_path):
    fifo = tmp_path / "runs.csv"
    os.mkfifo(fifo)
    text = files["csv"].read_bytes()

    def feed():
        with open(fifo, "wb") as f:
            f.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    proc = subprocess.run([sys.executable, "-c", "from bayescale.data import ScalingData; "
                           f"print(ScalingData.from_csv({str(fifo)!r}).n_points)"],
                          capture_output=True, text=True, timeout=600)
    assert proc.stdout.strip() == "16", proc.stderr  # a second open would wait forever


@pytest.mark.parametrize("case", ["truncated", "corrupted", "text", "netcdf"])
def test_damaged_fit_files(case, files, tmp_path, capsys):
    raw = files["nc"].read_bytes()
    bad = tmp_path / "bad.nc"
    if case == "truncated":
        bad.write_bytes(raw[: len(raw) // 3])
    elif case == "corrupted":
        bad.write_bytes(raw[:4000] + b"\xff" * 8000 + raw[12000:])
    elif case == "text":
        bad.write_text("N,D,loss\n")
    else:
        import arviz as az

        az.from_dict(posterior={"E": [[1.0, 2.0]]}).to_netcdf(str(bad))
    needle = {"truncated": "is damaged", "corrupted": "is damaged", "text": "not netCDF",
              "netcdf": "without bayescale's fit metadata"}[case]
    code, out, err = run(["summary", bad], capsys)
    one_error(code, err, needle)


@pytest.mark.parametrize("content,needle", [
    ("# runs of May\nN,D,loss\n{rows}", None),  # a comment line is skipped
    ("N,D,loss\n{rows}1e9,2e10,\u22122.1\n", "MINUS SIGN (U+2212)"),
])
def test_csv_comment_and_lookalike_characters(content, needle, files, tmp_path):
    rows = "".join(files["csv"].read_text().splitlines(keepends=True)[1:])
    path = tmp_path / "runs.csv"
    path.write_text(content.format(rows=rows), encoding="utf-8")
    if needle is None:
        assert bs.ScalingData.from_csv(path).n_points == 16
    else:
        with pytest.raises(bs.DataError, match=re.escape(needle)):
            bs.ScalingData.from_csv(path)


@pytest.mark.parametrize("args,needle", [
    (["predict", "FIT", "--N", "-1e9", "--D", "1e10"], "-1e9 must be a positive finite number"),
    (["predict", "FIT", "--N", "1e9", "--D", "nan"], "nan must be a positive finite number"),
    (["predict", "FIT", "--N", "1e9", "--D", "1e10", "--seed", str(2**70)], "out of range"),
    (["fit", "CSV", "--seed", "1.5"], "invalid seed"),
    (["allocate", "FIT", "--compute", "-1e21"], "must be a positive finite number"),
])
def test_option_values(args, needle, files, capsys):
    args = [files["nc"] if a == "FIT" else files["csv"] if a == "CSV" else a for a in args]
    code, out, err = run(args, capsys)
    one_error(code, err, needle)


@pytest.mark.parametrize("env,needle", [
    ({"JAX_PLATFORMS": "cuda"}, "JAX_PLATFORMS=cuda: JAX could not start it"),
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count"}, "give a whole number of CPU"),
    ({"BAYESCALE_CPU_DEVICES": "abc"}, "BAYESCALE_CPU_DEVICES='abc'"),
])
def test_environment_faults(env, needle, files):
    proc = subprocess.run([*CLI, "predict", str(files["nc"]), "--N", "1e9", "--D", "1e10"],
                          capture_output=True, text=True,
                          env={**os.environ, **env}, timeout=600)
    one_error(proc.returncode, proc.stderr, needle)


# --- silent wrong answers ------------------------------------------------------------------------


@pytest.mark.parametrize("transform,warned", [
    (lambda loss: loss, False), (np.exp, True), (lambda loss: 50 * loss, True)])
def test_losses_implausible_for_nats_are_warned(transform, warned, files):
    frame = pd.read_csv(files["csv"])
    frame["loss"] = transform(frame["loss"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bs.ScalingData.from_frame(frame)
    said = [str(w.message) for w in caught if "above 15" in str(w.message)]
    assert bool(said) == warned, said
    if warned:
        assert "perplexities" in said[0] and f"{frame['loss'].max():.4g}" in said[0]


def test_constant_loss_is_refused_at_once(files, monkeypatch, capsys):
    frame = pd.read_csv(files["csv"]).assign(loss=2.5)
    path = files["folder"] / "constant.csv"
    frame.to_csv(path, index=False)

    def no_sampling(*args, **kwargs):  # not a 100-s fit that ends in an R-hat warning
        raise RuntimeError("the sampler was started")

    monkeypatch.setattr("bayescale.inference.run_nuts", no_sampling)
    code, out, err = run(["fit", path, "--no-progress"], capsys)
    one_error(code, err, "the loss is 2.5 in every run")


def test_unconverged_fit_is_said_by_predict_allocate_decide(files, capsys):
    fit = bs.load_fit(files["nc"])
    assert not fit.diagnostics["converged"]  # 60 draws of one chain: ESS far below 400
    code, out, err = run(["predict", files["nc"], "--N", "1e9", "--D", "2e10", "--json"], capsys)
    assert code == 0 and "did not converge" in err
    assert json.loads(out)["converged"] is False
    for args in (["allocate", files["nc"], "--compute", "1e21"],
                 ["decide", files["nc"], "--compute", "1e21"]):
        code, out, err = run([*args, "--allow-unconverged"], capsys)
        assert code == 0 and "did not converge" in err and "unreliable" in err, err


def test_budgets_far_outside_the_data_are_measured_and_warned(files, capsys):
    fit = files["fit"]
    c_max = fit.data.C.max()
    with pytest.warns(bs.ExtrapolationWarning, match="decades"):
        alloc = fit.compute_optimal([1e300, 1e3, c_max])
    assert alloc.beyond["C"][0] == pytest.approx(1e300 / c_max)
    assert alloc.beyond["decades"][0] == pytest.approx(300 - np.log10(c_max), abs=1e-6)
    assert alloc.beyond["decades"][1] == pytest.approx(np.log10(fit.data.C.min()) - 3, abs=1e-6)
    # at the largest budget trained, only N* or D* can lie outside the runs' sizes
    assert alloc.beyond["C"][2] == pytest.approx(1.0) and alloc.beyond["decades"][2] < 1
    with pytest.warns(bs.ExtrapolationWarning, match="below the smallest runs"):
        fit.compute_optimal(1e3)
    with warnings.catch_warnings():
        warnings.simplefilter("error", bs.ExtrapolationWarning)
        fit.compute_optimal(c_max * 100)  # 2 decades: within the backtests' reach, no warning
    code, out, err = run(["allocate", files["nc"], "--compute", "1e300", "--compute", "1e3",
                          "--allow-unconverged"], capsys)
    assert code == 0 and "decades" in err
    assert "decades outside the training data" in out


def test_compare_of_repeated_and_per_run_fits_is_one_clear_error(files):
    per_run = bs.load_fit(files["nc"])
    repeated = bs.load_fit(files["nc"])
    repeated.repeats = True  # scored per configuration: ArviZ raised a raw ValueError
    with pytest.raises(bs.FitError, match="score the runs the same way"):
        bs.compare([per_run, repeated])


def test_auto_repeats_with_few_repeated_configurations_says_what_it_drops():
    from bayescale.laws import get_law
    from bayescale.models import repeats_note

    N, D, loss, _ = simulate_chinchilla(n_side=4, seed=6)
    law = get_law("chinchilla")
    once = bs.ScalingData.from_arrays(N=np.r_[N, N[0]], D=np.r_[D, D[0]],
                                      loss=np.r_[loss, loss[0] * 1.01])
    note = repeats_note({"fit": once}, law, "student_t")
    assert "1 of 16 configurations" in note and "robustness" in note
    many = bs.ScalingData.from_arrays(N=np.r_[N, N[:3]], D=np.r_[D, D[:3]],
                                      loss=np.r_[loss, loss[:3] * 1.01])
    assert repeats_note({"fit": many}, law, "student_t") is None  # enough repeats to learn seed noise
    plain = bs.ScalingData.from_arrays(N=N, D=D, loss=loss)
    assert repeats_note({"fit": plain}, law, "student_t") is None


@pytest.mark.parametrize("args,needle", [
    (["predict", "FIT", "--N", "1e9"], "as many --N as --D"),
    (["predict", "FIT", "--N", "1e9", "--D", "1e10", "--x", "3"], "give points as"),
    (["decide", "FIT"], "either --compute C"),
    (["fit", "CSV", "--method", "huber", "--bootstrap", "-3"], "-3 must be a whole number"),
    (["fit", "CSV", "--bootstrap", "100"], "--bootstrap resamples least-squares fits"),
    (["fit", "CSV", "--retries", "2"], "--retries refits the groups"),
])
def test_argument_errors_come_before_any_work(args, needle, files):
    # in a fresh process: the error comes before JAX is imported (5-6 s) or a fit is read
    args = [str(files["nc"]) if a == "FIT" else str(files["csv"]) if a == "CSV" else a
            for a in args]
    script = ("import sys, bayescale.cli as c\n"
              "try:\n    rc = c.main(sys.argv[1:])\nexcept SystemExit as e:\n    rc = e.code\n"
              "print(rc, 'jax' in sys.modules, 'arviz' in sys.modules)")
    proc = subprocess.run([sys.executable, "-c", script, *args], capture_output=True, text=True,
                          timeout=600)
    assert proc.stdout.split() == ["2", "False", "False"], proc.stdout + proc.stderr
    one_error(2, proc.stderr, needle)


def test_a_cold_compile_is_announced_once(files, tmp_path, monkeypatch, capsys):
    # an empty program cache, and options no other test uses: nothing to load
    monkeypatch.setattr("bayescale._nuts.CACHE", tmp_path)
    monkeypatch.setattr("bayescale._nuts._EXPORTED", {})
    args = ["fit", files["csv"], "--chains", "1", "--warmup", "61", "--draws", "37",
            "--no-form-error", "--json"]
    code, out, err = run(args, capsys)
    assert code == 0, err
    assert "compiling the sampler for chinchilla, 16 runs (once" in err and str(tmp_path) in err
    code, again, err = run(args, capsys)
    assert code == 0 and "compiling" not in err  # loaded from the cache
    assert json.loads(again) == json.loads(out)  # and the same draws


def test_csv_tables_match_the_json(files, capsys):
    import io

    nc = files["nc"]
    pts = ["--N", "1e9", "--D", "2e10", "--N", "7e10", "--D", "1.4e12"]
    _, out, _ = run(["predict", nc, *pts, "--json"], capsys)
    _, table, _ = run(["predict", nc, *pts, "--csv"], capsys)
    frame = pd.read_csv(io.StringIO(table))
    assert list(frame["kind"]) == ["law", "noise_only", "new_run"] * 2
    for j, point in enumerate(json.loads(out)["points"]):
        rows = frame[frame["N"] == point["N"]].set_index("kind")
        for kind in ("law", "noise_only", "new_run"):
            assert rows.loc[kind, "median"] == pytest.approx(point[kind]["median"], rel=1e-12)
            assert rows.loc[kind, "hi"] == pytest.approx(point[kind]["hi"], rel=1e-12)
    budgets = ["--compute", "1e21", "--compute", "1e22", "--allow-unconverged"]
    _, out, _ = run(["allocate", nc, *budgets, "--json"], capsys)
    _, table, _ = run(["allocate", nc, *budgets, "--csv"], capsys)
    frame = pd.read_csv(io.StringIO(table)).set_index(["compute", "quantity"])
    for b in json.loads(out)["budgets"]:
        assert frame.loc[(b["compute"], "N_opt"), "median"] == pytest.approx(
            b["N_opt"]["median"], rel=1e-12)
    _, out, _ = run(["decide", nc, "--compute", "1e21", "--allow-unconverged", "--json"], capsys)
    _, table, _ = run(["decide", nc, "--compute", "1e21", "--allow-unconverged", "--csv"], capsys)
    frame = pd.read_csv(io.StringIO(table)).set_index("split")
    obj = json.loads(out)
    assert frame.loc["choice", "N"] == pytest.approx(obj["choice"]["N"], rel=1e-12)
    assert frame.loc["plug-in", "regret"] == pytest.approx(obj["regret_of_plugin"], rel=1e-12)
    # how far the split is from the runs: C over the largest trained is the budget over it
    assert obj["beyond"]["C"] == pytest.approx(1e21 / files["fit"].data.C.max(), rel=1e-9)
    assert frame.loc["choice", "decades_beyond_data"] == pytest.approx(obj["beyond"]["decades"])
    # with a cap: the CSV carries every row of the text, the uncapped one and the caps' cost
    cap = ["--max-params", "1e8", "--allow-unconverged"]
    _, out, _ = run(["decide", nc, "--compute", "1e21", *cap, "--json"], capsys)
    _, table, _ = run(["decide", nc, "--compute", "1e21", *cap, "--csv"], capsys)
    frame, obj = pd.read_csv(io.StringIO(table)).set_index("split"), json.loads(out)
    assert frame.loc["uncapped", "N"] == pytest.approx(obj["uncapped"]["N"], rel=1e-12)
    assert frame.loc["choice", "cap_cost"] == pytest.approx(obj["cap_cost"]["objective"])
    _, text, _ = run(["decide", nc, "--compute", "1e21", "--allow-unconverged"], capsys)
    assert "(inside the training data)" in text.splitlines()[0]  # the runs reach 1.5e22
    # a binding cap makes the local exponents 0 and 1: the title says they are not the law's
    _, text, _ = run(["allocate", nc, "--compute", "1e21", *cap], capsys)
    assert "exponents of the capped split (where a cap binds" in text
    _, text, _ = run(["decide", nc, "--compute", "1e24", "--allow-unconverged"], capsys)
    assert "1.8 decades outside the training data" in text.splitlines()[0]


def test_task_predict_on_a_loss_fit_says_what_it_is(files, capsys):
    code, _, err = run(["task", "predict", str(files["nc"]), "--N", "1e9", "--D", "1e10"],
                       capsys)
    assert code == 2 and "is not a bayescale task fit file but a fit of the loss" in err
    assert "damaged" not in err


def test_fit_many_auto_repeats_on_one_repeated_configuration_warns(monkeypatch):
    # the warning comes before sampling: the sampler is replaced by a stop
    N, D, loss, _ = simulate_chinchilla(n_side=4, seed=6)
    once = bs.ScalingData.from_arrays(N=np.r_[N, N[0]], D=np.r_[D, D[0]],
                                      loss=np.r_[loss, loss[0] * 1.01])
    plain = bs.ScalingData.from_arrays(N=N, D=D, loss=loss)

    monkeypatch.setattr("bayescale.many._fit_groups", stop)
    # mixed groups: only "a" gets the repeated-run model (1 of its 16 configurations repeated)
    with pytest.warns(UserWarning, match="1 of 16 configurations were run more than once"):
        with pytest.raises(Stop):
            bs.fit_many({"a": once, "b": plain}, "chinchilla", progress=False)
    # a hierarchical fit is one model: the repeat switches both groups
    with pytest.warns(UserWarning, match="1 configuration of the 2 groups were run more than"):
        with pytest.raises(Stop):
            bs.fit_many({"a": once, "b": plain}, "chinchilla", progress=False,
                        hierarchical=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(Stop):  # no repeats, or repeats named explicitly: nothing to say
            bs.fit_many({"a": plain, "b": plain}, "chinchilla", progress=False)
        with pytest.raises(Stop):
            bs.fit_many({"a": once, "b": plain}, "chinchilla", progress=False, repeats=True)
