"""Speed: time from a fresh process to 90% intervals on the bundled Chinchilla data (240 runs).

    python benchmarks/speed.py [--quick] [--out DIR] [--repeats R]

Writes ``speed.md`` to ``benchmarks/results/``. Every method runs in its own Python process, one
after the other in one run, so the times are comparable and cold/warm are real:

* Bayes, default: no persistent compilation cache (bayescale's default), so XLA compiles in the
  process; the same process then fits again, reusing the compiled sampler ("second fit");
* Bayes, opt-in cache cold/warm: ``BAYESCALE_CACHE_DIR`` set to a new empty folder, then a second
  process with that folder, which now holds the compiled programs;
* Huber: Hoffmann/Epoch Approach 3 (4500-start grid) plus 1000 bootstrap refits;
* curve_fit: ``scipy.optimize.curve_fit`` of the Chinchilla law plus 1000 bootstrap refits.

The Bayesian fit uses the defaults (4 chains of 1000 + 1000, Student-t noise). "Process" time is
the wall time of the whole process (interpreter start, imports, fit, intervals); "in process"
is the fit and the intervals alone.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

WORKERS = ("bayes", "huber", "curve_fit")


def worker(kind: str, quick: bool) -> None:
    """Run one method in this process and print its timings as one JSON line."""
    t_import = time.perf_counter()
    import numpy as np

    from bayescale.datasets import load_dataset

    data = load_dataset("chinchilla")
    if kind == "bayes":
        import warnings

        import bayescale

        t0 = time.perf_counter()
        settings = (dict(chains=1, warmup=100, draws=100) if quick
                    else dict(chains=4, warmup=1000, draws=1000))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bayescale.ConvergenceWarning)
            fit = bayescale.fit(data, "chinchilla", seed=0, progress=False, **settings)
        table = fit.summary(0.9)
        intervals = {p: (float(table.loc[p, "lo"]), float(table.loc[p, "hi"]))
                     for p in fit.law.params}
        t1 = time.perf_counter()  # a second fit in this process reuses the compiled sampler
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bayescale.ConvergenceWarning)
            again = bayescale.fit(data, "chinchilla", seed=1, progress=False, **settings)
        again.summary(0.9)
        extra = {"sampling_s": fit.seconds, "second_fit_s": time.perf_counter() - t1}
        t0 += time.perf_counter() - t1  # in_process_s stays the first fit's
    else:
        from bayescale import baselines as bl

        t0 = time.perf_counter()
        fitter = bl.huber_approach3 if kind == "huber" else bl.curve_fit_chinchilla
        arrays = (data.N, data.D, data.loss)
        if quick and kind == "huber":
            point = fitter(*arrays, grid={k: v[::2] for k, v in bl.EPOCH_GRID.items()})
        else:
            point = fitter(*arrays)
        draws = bl.bootstrap(fitter, *arrays, n=20 if quick else 1000, seed=0,
                             start=point.params)
        intervals = {p: tuple(float(v) for v in np.quantile(d, [0.05, 0.95]))
                     for p, d in draws.items()}
        extra = {"resamples": int(next(iter(draws.values())).size)}
    done = time.perf_counter()
    print(json.dumps({"in_process_s": done - t0, "import_s": t0 - t_import,
                      "intervals": intervals, **extra}))


def run_worker(kind: str, quick: bool, cache: str) -> dict:
    env = {**os.environ, "BAYESCALE_CACHE_DIR": cache, "MPLBACKEND": "Agg"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind]
    if quick:
        cmd.append("--quick")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    # The Bayesian worker fits a second time after its intervals; that is not time to intervals.
    return {**result, "process_s": wall - result.get("second_fit_s", 0.0)}


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv, extra=[
        (("--repeats",), dict(type=int, default=1,
                              help="runs of each method, interleaved; the table shows the "
                                   "fastest")),
        (("--worker",), dict(choices=WORKERS, help="internal: run one method and print JSON")),
    ])
    if args.worker:
        worker(args.worker, args.quick)
        return
    t0 = time.perf_counter()
    runs = {name: [] for name in ("bayes", "bayes cold", "bayes warm", "huber", "curve_fit")}
    for r in range(args.repeats):
        runs["bayes"].append(run_worker("bayes", args.quick, ""))
        with tempfile.TemporaryDirectory(prefix="bayescale-jax-") as cache:
            runs["bayes cold"].append(run_worker("bayes", args.quick, cache))
            n_files = sum(1 for _ in Path(cache).rglob("*") if _.is_file())
            runs["bayes warm"].append(run_worker("bayes", args.quick, cache))
        runs["huber"].append(run_worker("huber", args.quick, ""))
        runs["curve_fit"].append(run_worker("curve_fit", args.quick, ""))
        print(f"  repeat {r + 1}/{args.repeats}: " + ", ".join(
            f"{k} {v[-1]['process_s']:.1f} s" for k, v in runs.items()), flush=True)
    seconds = time.perf_counter() - t0

    best = {k: min(v, key=lambda x: x["process_s"]) for k, v in runs.items()}
    ref = best["huber"]["process_s"]
    second = min(r["second_fit_s"] for r in runs["bayes"])
    best["bayes again"] = {"process_s": float("nan"), "in_process_s": second}
    labels = {
        "bayes": "Bayes, default: no persistent cache (4 x 1000+1000 NUTS)",
        "bayes cold": "Bayes, opt-in persistent cache, cold",
        "bayes warm": "Bayes, opt-in persistent cache, warm",
        "bayes again": "Bayes, second fit in the same process",
        "huber": "Huber (Approach 3, 4500 starts) + 1000 bootstrap",
        "curve_fit": "curve_fit + 1000 bootstrap",
    }
    if args.quick:
        labels = {k: v.split(" (")[0].split(" +")[0] + " (quick sizes)" for k, v in labels.items()}
    rows = []
    for k in labels:
        b = best[k]
        if k == "bayes again":  # no process of its own: compare in-process times
            ratios = (b["in_process_s"] / best["huber"]["in_process_s"],
                      b["in_process_s"] / best["curve_fit"]["in_process_s"])
        else:
            ratios = (b["process_s"] / ref, b["process_s"] / best["curve_fit"]["process_s"])
        rows.append({"method": labels[k], "process_s": b["process_s"],
                     "in_process_s": b["in_process_s"],
                     "x Huber+bootstrap": ratios[0], "x curve_fit+bootstrap": ratios[1]})
    text = C.header(
        "Time to 90% intervals on the bundled Chinchilla data (240 runs)"
        + (" (QUICK smoke run)" if args.quick else ""),
        seconds=seconds,
        notes=[
            "Each method in a fresh Python process, run one after another in this one run; "
            f"fastest of {args.repeats} interleaved repeat(s). process_s: whole process "
            "(start, imports, fit, intervals; the Bayesian worker's second fit excluded); "
            "in_process_s: fit and intervals only.",
            "Bayes, second fit: the default process fits again (seed 1); its ratios compare "
            "in-process seconds. Opt-in cache cold: BAYESCALE_CACHE_DIR set to a new empty "
            "folder; warm: a second "
            f"process with that folder ({n_files} cached files after the cold run).",
            "The machine is shared: the load average is in the line above; ratios taken in "
            "one run are what to compare, not the absolute seconds.",
        ],
    )
    text += "\n" + C.markdown_table(rows, ["method", "process_s", "in_process_s",
                                            "x Huber+bootstrap", "x curve_fit+bootstrap"])
    C.write_table(args.out, "speed.md", text)


if __name__ == "__main__":
    main()
