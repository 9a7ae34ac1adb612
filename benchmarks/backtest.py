"""How long a backtest takes against one fit: ``bayescale backtest`` vs ``bayescale fit``.

    python benchmarks/backtest.py [--quick] [--out DIR] [--repeats R]

Writes ``backtest.md`` to ``benchmarks/results/``. Both commands run as a user runs them, as
separate processes on the bundled Chinchilla data with default settings (4 chains x 1000 + 1000;
the backtest refits the data below the top 1, 2 and 3 compute levels, all three in one
``fit_many`` program, and predicts the runs above). A private cache folder is filled by one run
of each first, so the timed runs are warm (no tracing or XLA compilation); each is timed
``--repeats`` times and the medians are compared (``--quick``: tiny chains, one timed run,
and the caller's cache instead of an empty one). Wall time of the whole process, so Python's
and JAX's start-up count for both. Target: the backtest at most 4x one warm fit.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import _common as C


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv, extra=[
        (("--repeats",), dict(type=int, default=3, help="timed runs of each command"))])
    t0 = time.perf_counter()
    exe = [sys.executable, "-m", "bayescale.cli"]
    small = ["--chains", "2", "--warmup", "100", "--draws", "100"] if args.quick else []
    repeats = 1 if args.quick else args.repeats
    with tempfile.TemporaryDirectory() as tmp:
        # --quick (a smoke test) reuses the caller's cache instead of compiling from empty.
        env = {**os.environ, "MPLBACKEND": "Agg"}
        if not args.quick:
            env["BAYESCALE_CACHE_DIR"] = os.path.join(tmp, "cache")
        fit = exe + ["fit", "--dataset", "chinchilla", "--no-progress", *small,
                     "--out", os.path.join(tmp, "fit.nc")]
        backtest = exe + ["backtest", "--dataset", "chinchilla", "--no-progress", *small]
        cold = {"fit": C.timed(fit, env), "backtest": C.timed(backtest, env)}
        warm = {"fit": [], "backtest": []}
        for _ in range(repeats):  # interleaved, so a busy spell hits both alike
            warm["fit"].append(C.timed(fit, env))
            warm["backtest"].append(C.timed(backtest, env))
    med = {k: statistics.median(v) for k, v in warm.items()}
    ratio = med["backtest"] / med["fit"]
    rows = [{"command": f"bayescale {k} --dataset chinchilla", "cold s": cold[k],
             "warm s (median)": med[k], "warm runs": ", ".join(f"{s:.1f}" for s in warm[k])}
            for k in ("fit", "backtest")]
    verdict = (f"backtest / fit, warm: {ratio:.2f}x (target at most 4x) "
               f"{'ok' if ratio <= 4 else '**ABOVE 4x**'}")
    text = C.header("Backtest against one fit, bundled Chinchilla" + (
        " (QUICK smoke run)" if args.quick else ""), seconds=time.perf_counter() - t0,
        notes=["Each command is a separate process (start-up included); cold: the first run, "
               "with an empty cache; warm: the median of the timed runs after it.",
               "Settings: " + ("2 chains x 100 + 100 (quick)" if args.quick
                               else "the defaults, 4 chains x 1000 + 1000")])
    text += "\n" + C.markdown_table(rows, ["command", "cold s", "warm s (median)",
                                           "warm runs"]) + "\n" + verdict + "\n"
    C.write_table(args.out, "backtest.md", text)


if __name__ == "__main__":
    main()
