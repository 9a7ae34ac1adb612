"""A large table: time and memory of fits of many simulated runs of the Chinchilla law.

    python benchmarks/large_table.py [--quick] [--out DIR] [--rows N ...] [--chains C]
                                     [--draws D]

Writes ``large_table.md`` to ``benchmarks/results/``. Each size runs in its own process (so
its peak memory is its own), with an empty cache folder: the fit with and without the
form-error refits, at ``--chains`` chains of ``--draws`` warm-up + ``--draws`` draws (default
2 x 100 + 100: the time of a default fit, 4 x 1000 + 1000, grows about in proportion to the
transitions). The runs: N log-uniform in 1e7-1e10, 4-100 tokens per parameter, the Chinchilla
law of Epoch AI's fit with 1% noise. Reported: seconds of each fit (compiling included), the
process's peak resident memory, and the stride of the pointwise outputs
(:func:`bayescale._nuts.pointwise_every`).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import _common as C


def worker(rows: int, chains: int, draws: int) -> None:
    """Fit ``rows`` simulated runs without and with the form error; print one JSON line."""
    import numpy as np

    import bayescale as bs
    from bayescale._nuts import pointwise_every
    from bayescale.many import padded_size

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    N = np.exp(rng.uniform(np.log(1e7), np.log(1e10), rows))
    D = N * np.exp(rng.uniform(np.log(4), np.log(100), rows))
    loss = (1.82 + 482 / N**0.35 + 2085 / D**0.37) * np.exp(0.01 * rng.standard_normal(rows))
    data = bs.ScalingData.from_arrays(N=N, D=D, loss=loss)
    out = {"rows": rows, "every": pointwise_every(chains, draws, padded_size(rows))}
    for key, form_error in (("fit_s", False), ("fit_form_error_s", True)):
        t0 = time.perf_counter()
        fit = bs.fit(data, chains=chains, warmup=draws, draws=draws, progress=False,
                     form_error=form_error)
        out[key] = time.perf_counter() - t0
    out["alpha"] = float(np.median(fit.draws("alpha")))
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    print(json.dumps(out))


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv, extra=[
        (("--worker",), dict(type=int, default=None, help="internal: rows of one worker")),
        (("--rows",), dict(type=int, nargs="+", default=[1_000, 10_000, 100_000])),
        (("--chains",), dict(type=int, default=2)),
        (("--draws",), dict(type=int, default=100)),
    ])
    if args.worker:
        worker(args.worker, args.chains, args.draws)
        return
    sizes = [200, 2_000] if args.quick else args.rows
    chains, draws = (1, 20) if args.quick else (args.chains, args.draws)
    t0 = time.perf_counter()
    rows = []
    for n in sizes:
        with tempfile.TemporaryDirectory(prefix="bayescale-large-") as cache:
            env = {**os.environ, "BAYESCALE_CACHE_DIR": cache, "MPLBACKEND": "Agg"}
            cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(n),
                   "--chains", str(chains), "--draws", str(draws)]
            proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                raise RuntimeError(f"{n} rows failed (exit {proc.returncode}):\n"
                                   f"{proc.stderr[-2000:]}")
            r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(f"  {n} rows: {r['fit_s']:.1f} s, with the form error {r['fit_form_error_s']:.1f} s,"
              f" peak {r['peak_gb']:.1f} GiB", flush=True)
        rows.append({"runs": n, "fit s (form_error=False)": r["fit_s"],
                     "fit s (default, form error)": r["fit_form_error_s"],
                     "peak memory GiB": r["peak_gb"], "pointwise: one draw in": r["every"],
                     "alpha median (truth 0.35)": r["alpha"]})
    notes = [f"{chains} chains x ({draws} warm-up + {draws} draws) per fit, in a new process "
             "per size with an empty cache (compiling included); peak memory is the process's "
             "maximum resident set."]
    text = C.header("Large tables: fits of many simulated runs" +
                    (" (QUICK smoke run)" if args.quick else ""),
                    seconds=time.perf_counter() - t0, notes=notes)
    text += "\n" + C.markdown_table(rows, list(rows[0]))
    C.write_table(args.out, "large_table.md", text)


if __name__ == "__main__":
    main()
