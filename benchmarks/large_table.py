"""A large table: time and memory of fits of many simulated runs of the Chinchilla law.

    python benchmarks/large_table.py [--quick] [--out DIR] [--rows N ...] [--chains C]
                                     [--draws D]

Writes ``large_table.md`` to ``benchmarks/results/``. Each size runs in its own process (so
its peak memory is its own), with an empty cache folder: the fit with and without the
form-error refits, at ``--chains`` chains of ``--draws`` warm-up + ``--draws`` draws (default
2 x 100 + 100: the time of a default fit, 4 x 1000 + 1000, grows about in proportion to the
transitions). The runs: N log-uniform in 1e7-1e10, 4-100 tokens per parameter, the Chinchilla
law of Epoch AI's fit with 1% noise. Reported: seconds of each fit (compiling included), the
process's peak resident memory, the stride of the pointwise outputs
(:func:`bayescale._nuts.pointwise_every`), and where a default fit's time goes: the seconds of
one gradient of the posterior at that size and how many gradients the mode search and NUTS
spend per chain.
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
        # the chains asked for: at 100 + 100 draws fit's more_chains would add chains below
        # 20,000 runs, and the table prices one setting of the sampler
        fit = bs.fit(data, chains=chains, warmup=draws, draws=draws, progress=False,
                     form_error=form_error, more_chains=False)
        out[key] = time.perf_counter() - t0
    out["alpha"] = float(np.median(fit.draws("alpha")))
    out["peak_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    out.update(_where_the_time_goes(data, fit))
    print(json.dumps(out))


def _where_the_time_goes(data, fit) -> dict:
    """Seconds of one gradient of the posterior at this size (the unit of every cost), and
    how many of them a default fit spends per chain: the mode search (each start's damped
    Newton steps, each a gradient and a central-difference Hessian of 2 x dim gradients) and
    NUTS (its leapfrog steps per draw, from this fit, times 2000 transitions)."""
    import numpy as np

    from bayescale._jax import jax, jnp, scope
    from bayescale._kernels import Kernels
    from bayescale.inference import sampler_spec
    from bayescale.laws import get_law
    from bayescale.many import _element, padded
    from bayescale.models import OBS_SITE, build_model, simulation_args

    spec = sampler_spec(chains=4, warmup=1000, draws=1000, target_accept=0.95, dense_mass=True)
    built = build_model(data, get_law("chinchilla"))
    model, stacked, _ = padded({"fit": built}, ["fit"])
    args = _element(stacked, 0)
    with scope():
        kernels = Kernels(model, args, spec, OBS_SITE, simulation_args)
        grad = jax.jit(jax.grad(kernels.potential))
        u = jnp.full(kernels.dim, 0.1)
        jax.block_until_ready(grad(u, args))
        times = []
        for _ in range(7):
            t0 = time.perf_counter()
            jax.block_until_ready(grad(u, args))
            times.append(time.perf_counter() - t0)
    steps = float(np.mean(np.asarray(fit.idata.sample_stats["n_steps"])))
    return {"gradient_ms": 1e3 * float(np.median(times)),
            "mode_gradients": spec.starts * (spec.newton_steps + 1) * (1 + 2 * kernels.dim),
            "nuts_gradients": steps * (spec.warmup + spec.draws), "devices": jax.device_count()}


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
    rows, costs = [], []
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
        per_chain = r["gradient_ms"] / 1e3 * (r["mode_gradients"] + r["nuts_gradients"])
        costs.append({"runs": n, "one gradient ms": r["gradient_ms"],
                      "mode search: gradients per chain": r["mode_gradients"],
                      "NUTS (1000+1000): gradients per chain": r["nuts_gradients"],
                      "mode search s per chain": r["gradient_ms"] / 1e3 * r["mode_gradients"],
                      "NUTS s per chain": r["gradient_ms"] / 1e3 * r["nuts_gradients"],
                      "default sampler s (4 chains on the devices)":
                          per_chain * 4 / min(4, r["devices"])})
    notes = [f"{chains} chains x ({draws} warm-up + {draws} draws) per fit, in a new process "
             "per size with an empty cache (compiling included); peak memory is the process's "
             "maximum resident set."]
    text = C.header("Large tables: fits of many simulated runs" +
                    (" (QUICK smoke run)" if args.quick else ""),
                    seconds=time.perf_counter() - t0, notes=notes)
    text += "\n" + C.markdown_table(rows, list(rows[0]))
    text += ("\n## Where the time goes\n\nEvery cost is a number of gradients of the posterior, "
             "each a pass over every run: one gradient's time at this size (median of 7, "
             "compiled), the gradients a default fit (4 chains x 1000 + 1000) spends per chain "
             "in the mode search (4 starts x 61 damped Newton steps, each a gradient and a "
             "central-difference Hessian of 2 x 6 gradients) and in NUTS (the leapfrog steps "
             "per draw of the fit above x 2000 transitions), and their product: the default "
             "sampler's seconds, chains split across the devices (the form-error refits add "
             "one mode search per chain and refit).\n\n")
    text += C.markdown_table(costs, list(costs[0]))
    C.write_table(args.out, "large_table.md", text)


if __name__ == "__main__":
    main()
