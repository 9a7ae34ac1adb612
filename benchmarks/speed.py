"""Speed: seconds to a posterior on the bundled Chinchilla data (240 runs), and many fits at once.

    python benchmarks/speed.py [--quick] [--out DIR] [--part all|fits|references]
                               [--runs FILE] [--no-sequential]

Writes ``speed.md`` to ``benchmarks/results/``. Every method runs in its own Python process, one
after the other in this one run, so cold and warm are real and the ratios compare like with like:

(a) ``bayescale.fit``, cold: a new process with an empty cache folder (``BAYESCALE_CACHE_DIR`` set
    to a new directory): it traces NumPyro's kernel and XLA compiles;
(b) ``bayescale.fit``, warm: a new process with the folder (a) filled: exported programs and
    XLA executables are loaded, nothing is traced or compiled;
(c) the reference: a plain NumPyro model of the same law written the obvious way (E, A, B, alpha,
    beta and the noise sampled directly, L = E + A/N^alpha + B/D^beta with normal noise on the
    loss, NUTS with NumPyro's defaults: diagonal mass matrix, vectorized chains);
(d) the Huber grid fit (Hoffmann/Epoch Approach 3, 4500 starts) and a 1000-resample bootstrap of
    it; curve_fit with its own 1000-resample bootstrap is shown too;
(e) ``bayescale.fit_many`` on 16 data sets (resamples, with replacement, of the 240 runs), warm
    (its programs exported and compiled by an earlier process of this run), against (b);
(f) a newcomer's first run: the command-line ``bayescale fit --dataset chinchilla --out FILE``
    at its defaults (form-error refits included) in a new process with an empty cache folder,
    the same command again (warm), and a data set of a new size (200 of the 240 runs, drawn
    at random, from a CSV file) with the cache of the first two: whole processes, as a user
    waits for them; the median of three rounds, each with a new empty cache.

A study too long for one sitting (on a GPU the reference alone runs minutes) can be run in two
parts on the same machine: ``--part fits`` runs (a), (b) and (e), ``--part references`` runs (c)
and (d), and ``--runs FILE`` adds the runs a part recorded earlier (every run writes its raw
timings to ``speed_runs.json`` beside ``speed.md``); the table's notes say which rows came from
which part. ``--no-sequential`` skips the 16 one-after-another fits that (e)'s note compares with.

Bayesian fits are 4 chains of 1000 warm-up + 1000 draws, without the form-error refits
(``form_error=False``): this study times the sampler against the reference, which has none;
``benchmarks/backtest.py`` times the default fit, refits included. "fit_s" is the time from calling the fit
to having 90% intervals, in a process whose libraries are already imported; "process_s" is the
whole process (interpreter start, imports, data, fit, intervals). Bulk ESS per second divides
each parameter's bulk ESS by fit_s.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C

WORKERS = ("bayes", "many", "reference", "huber", "curve_fit")
PARAMS = ("E", "A", "B", "alpha", "beta", "sigma")
N_GROUPS = 16


def _settings(quick: bool) -> dict:
    return dict(chains=2, warmup=100, draws=100) if quick else dict(chains=4, warmup=1000,
                                                                     draws=1000)


def _ess_rhat(chains: dict) -> tuple[dict, float]:
    """Bulk ESS of each parameter and the largest R-hat, from arrays shaped (chain, draw)."""
    import arviz as az
    import numpy as np

    ess = {p: float(az.ess(np.asarray(v), method="bulk")) for p, v in chains.items()}
    rhat = max(float(az.rhat(np.asarray(v))) for v in chains.values())
    return ess, rhat


def worker(kind: str, quick: bool, sequential: bool = True) -> None:
    """Run one method in this process and print its timings as one JSON line."""
    t_start = time.perf_counter()
    import warnings

    import numpy as np

    from bayescale.datasets import load_dataset

    data = load_dataset("chinchilla")
    settings = _settings(quick)
    extra: dict = {}
    if kind in ("bayes", "many"):
        import arviz  # noqa: F401  (imported before the clock starts, as scipy is for Huber)

        import bayescale
        from bayescale._jax import jax

        warnings.simplefilter("ignore", bayescale.ConvergenceWarning)
        extra["devices"] = f"{jax.device_count()} x {jax.devices()[0].device_kind}"
        if kind == "bayes":
            t0 = time.perf_counter()
            fit = bayescale.fit(data, "chinchilla", seed=0, progress=False, form_error=False,
                                **settings)
            table = fit.summary(0.9)
            intervals = {p: (float(table.loc[p, "lo"]), float(table.loc[p, "hi"]))
                         for p in PARAMS}
            done = time.perf_counter()
            chains = {p: fit.idata.posterior[p].values for p in PARAMS}
            extra["steps"] = float(np.mean(fit._arrays["stats"]["n_steps"]))
        else:
            rng = np.random.default_rng(0)
            picks = [rng.integers(0, data.n_points, data.n_points) for _ in range(N_GROUPS)]
            groups = {f"resample{g}": bayescale.ScalingData.from_arrays(
                N=data.N[i], D=data.D[i], loss=data.loss[i]) for g, i in enumerate(picks)}
            t0 = time.perf_counter()
            # resamples repeat runs, but not with new seeds: no repeated-run model
            fits = bayescale.fit_many(groups, "chinchilla", seed=0, progress=False,
                                      repeats=False, form_error=False, **settings)
            table = fits.summary(0.9)
            intervals = {p: (float(table.loc[("resample0", p), "lo"]),
                             float(table.loc[("resample0", p), "hi"])) for p in PARAMS}
            done = time.perf_counter()
            chains = {p: fits["resample0"].idata.posterior[p].values for p in PARAMS}
            extra["groups"] = N_GROUPS
            extra["steps"] = float(np.mean([f._arrays["stats"]["n_steps"]
                                            for f in fits.values()]))
            if sequential:  # the same 16 data sets one after another (programs loaded)
                t_one = time.perf_counter()
                for d in groups.values():
                    bayescale.fit(d, "chinchilla", seed=0, progress=False, repeats=False,
                                  form_error=False, more_chains=False, **settings)
                extra["sequential_s"] = time.perf_counter() - t_one
            extra["min_ess_all_groups"] = min(f.diagnostics["min_ess_bulk"]
                                              for f in fits.values())
            extra["max_rhat_all_groups"] = max(f.diagnostics["max_rhat"] for f in fits.values())
        ess, rhat = _ess_rhat(chains)
        extra.update(ess=ess, rhat=rhat)
    elif kind == "reference":
        import arviz  # noqa: F401  (imported before the clock starts, as for bayescale)
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from numpyro.infer import MCMC, NUTS

        jax.config.update("jax_enable_x64", True)
        N, D, L = (jnp.asarray(v) for v in (data.N, data.D, data.loss))

        def model(N, D, L=None):
            E = numpyro.sample("E", dist.HalfNormal(3.0))
            A = numpyro.sample("A", dist.LogNormal(jnp.log(400.0), 2.0))
            B = numpyro.sample("B", dist.LogNormal(jnp.log(400.0), 2.0))
            alpha = numpyro.sample("alpha", dist.Uniform(0.0, 1.0))
            beta = numpyro.sample("beta", dist.Uniform(0.0, 1.0))
            sigma = numpyro.sample("sigma", dist.HalfNormal(0.1))
            numpyro.sample("L", dist.Normal(E + A / N**alpha + B / D**beta, sigma), obs=L)

        t0 = time.perf_counter()
        mcmc = MCMC(NUTS(model), num_warmup=settings["warmup"], num_samples=settings["draws"],
                    num_chains=settings["chains"], chain_method="vectorized", progress_bar=False)
        mcmc.run(jax.random.PRNGKey(0), N, D, L, extra_fields=("num_steps",))
        samples = mcmc.get_samples(group_by_chain=True)
        intervals = {p: tuple(float(v) for v in np.quantile(np.asarray(samples[p]), [0.05, 0.95]))
                     for p in PARAMS}
        done = time.perf_counter()
        ess, rhat = _ess_rhat({p: np.asarray(samples[p]) for p in PARAMS})
        steps = float(np.mean(np.asarray(mcmc.get_extra_fields()["num_steps"])))
        extra.update(ess=ess, rhat=rhat, steps=steps, devices=f"{jax.device_count()} x "
                     f"{jax.devices()[0].device_kind}")
    else:
        from bayescale import baselines as bl

        fitter = bl.huber_approach3 if kind == "huber" else bl.curve_fit_chinchilla
        arrays = (data.N, data.D, data.loss)
        t0 = time.perf_counter()
        if quick and kind == "huber":
            point = fitter(*arrays, grid={k: v[::2] for k, v in bl.EPOCH_GRID.items()})
        else:
            point = fitter(*arrays)
        draws = bl.bootstrap(fitter, *arrays, n=20 if quick else 1000, seed=0,
                             start=point.params)
        intervals = {p: tuple(float(v) for v in np.quantile(d, [0.05, 0.95]))
                     for p, d in draws.items()}
        done = time.perf_counter()
        extra["resamples"] = int(next(iter(draws.values())).size)
    print(json.dumps({"fit_s": done - t0, "import_s": t0 - t_start, "intervals": intervals,
                      **extra}))


def run_worker(kind: str, quick: bool, cache: str, *, sequential: bool = True,
               name: str | None = None) -> dict:
    env = {**os.environ, "BAYESCALE_CACHE_DIR": cache, "MPLBACKEND": "Agg"}
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", kind]
    if quick:
        cmd.append("--quick")
    if not sequential:
        cmd.append("--no-sequential")
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"worker {kind} failed:\n{proc.stderr[-3000:]}")
    run = {**json.loads(proc.stdout.strip().splitlines()[-1]), "process_s": wall}
    if name:  # one line per finished process: a long study shows where it is
        print(f"  {name}: fit {run['fit_s']:.2f} s, process {wall:.2f} s", flush=True)
    return run


#: Runs in (f)'s data set of a new size.
NEW_SIZE = 200
#: Rounds of (f) (one with --quick); the table gives their medians.
FIRST_REPEATS = 3


def run_cli(args: list[str], cache: str, quick: bool, out: Path) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one ``bayescale fit`` process (the installed module, as a
    user runs it)."""
    env = {**os.environ, "BAYESCALE_CACHE_DIR": cache, "MPLBACKEND": "Agg"}
    small = ["--chains", "2", "--warmup", "100", "--draws", "100"] if quick else []
    cmd = [sys.executable, "-m", "bayescale.cli", "fit", *args, "--out", str(out), "--no-progress",
           *small]
    return C.timed_cpu(cmd, env)


def first_runs(quick: bool) -> dict:
    """(f): the command line's cold, warm and new-size processes, in seconds: the median of
    :data:`FIRST_REPEATS` rounds, each with a new empty cache (a single cold process varies by
    seconds on a shared machine); ``"each"`` keeps every round's, ``"cpu"`` the median CPU
    seconds."""
    import numpy as np

    from bayescale.datasets import load_dataset

    data = load_dataset("chinchilla")
    rows = np.sort(np.random.default_rng(0).choice(data.n_points, NEW_SIZE, replace=False))
    names = ("cold", "warm", "new_size")
    wall, cpu = {n: [] for n in names}, {n: [] for n in names}
    for round_ in range(1 if quick else FIRST_REPEATS):
        with tempfile.TemporaryDirectory(prefix="bayescale-first-") as tmp:
            cache, csv = str(Path(tmp, "cache")), Path(tmp, "runs.csv")
            data.to_frame().iloc[rows].to_csv(csv, index=False)
            for name, args in (("cold", ["--dataset", "chinchilla"]),
                               ("warm", ["--dataset", "chinchilla"]), ("new_size", [str(csv)])):
                w, c = run_cli(args, cache, quick, Path(tmp, f"{name}.nc"))
                wall[name].append(w)
                cpu[name].append(c)
                print(f"  first run {round_ + 1}, {name}: {w:.2f} s ({c:.1f} CPU s)", flush=True)
    return {**{n: float(np.median(wall[n])) for n in names}, "each": wall,
            "cpu": {n: float(np.median(cpu[n])) for n in names}}


def _cpu_note(first: dict) -> str:
    """Each round's times, and how busy the cores were for the cold run's extra time."""
    cpu = first.get("cpu")
    if not cpu:
        return ""
    cores = os.cpu_count() or 1
    each = first.get("each", {})
    rounds = len(each.get("cold", [])) or 1
    extra_wall, extra_cpu = first["cold"] - first["warm"], cpu["cold"] - cpu["warm"]
    listed = "; ".join(f"{n} " + ", ".join(f"{v:.1f}" for v in each[n]) for n in each)
    return (f" Medians of {rounds} rounds, each with a new empty cache ({listed} s). CPU time "
            f"(user + system, every thread; medians): cold {cpu['cold']:.1f} s, warm "
            f"{cpu['warm']:.1f} s: the cold run's {extra_wall:.1f} s more took "
            f"{extra_cpu:.1f} CPU seconds more (tracing, compiling and XLA's threads waiting "
            f"on each other), {extra_cpu / max(extra_wall, 1e-9) / cores:.0%} of the "
            f"{cores} cores' time.")


def _versions() -> dict:
    from importlib import metadata

    out = {}
    for name in ("jax", "jaxlib", "numpyro", "numpy", "scipy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    return out


def _load_runs(path: Path, quick: bool) -> dict:
    """Runs recorded by an earlier part (``speed_runs.json``), checked to be of the same size."""
    try:
        saved = json.loads(Path(path).read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(f"--runs {path}: cannot read it ({err}); give the speed_runs.json "
                         "that the other part wrote") from None
    if saved.get("settings") != _settings(quick):
        raise SystemExit(f"--runs {path}: its runs used {saved.get('settings')}, this run "
                         f"{_settings(quick)}; run both parts with or both without --quick")
    return saved


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv, extra=[
        (("--worker",), dict(choices=WORKERS, help="internal: run one method and print JSON")),
        (("--part",), dict(choices=("all", "fits", "references"), default="all",
                           help="fits: (a), (b), (e); references: (c), (d); default all")),
        (("--runs",), dict(type=Path, default=None,
                           help="speed_runs.json of an earlier part, to combine with this one")),
        (("--no-sequential",), dict(action="store_true",
                                    help="skip the 16 one-after-another fits beside (e)")),
    ])
    if args.worker:
        worker(args.worker, args.quick, sequential=not args.no_sequential)
        return
    t0 = time.perf_counter()
    if args.runs and args.part == "all":
        raise SystemExit("--runs adds an earlier part's runs to this one: use it with --part "
                         "fits or --part references")
    earlier = _load_runs(args.runs, args.quick) if args.runs else None
    runs, programs = {}, []
    seq = not args.no_sequential
    if args.part in ("all", "fits"):
        with tempfile.TemporaryDirectory(prefix="bayescale-cache-") as cache:
            runs["cold"] = run_worker("bayes", args.quick, cache, name="cold")
            programs = sorted(p.name.split("-")[0] for p in Path(cache, "programs").glob("*"))
            runs["warm"] = run_worker("bayes", args.quick, cache, name="warm")
            # exports and compiles fit_many's programs
            run_worker("many", args.quick, cache, sequential=False, name="many (compiling)")
            runs["many"] = run_worker("many", args.quick, cache, sequential=seq, name="many")
        runs["first"] = first_runs(args.quick)
    if args.part in ("all", "references"):
        runs["reference"] = run_worker("reference", args.quick, "off", name="reference")
        runs["huber"] = run_worker("huber", args.quick, "off", name="huber")
        runs["curve_fit"] = run_worker("curve_fit", args.quick, "off", name="curve_fit")
    seconds = time.perf_counter() - t0
    here = {"date": C.now(),
            "part": args.part, "seconds": seconds, "machine": platform.platform(),
            "settings": _settings(args.quick), "programs": programs, "runs": runs,
            "versions": _versions()}
    C.write_text(args.out / "speed_runs.json", json.dumps(here, indent=1))
    parts_note = []
    if earlier:
        mine = set(runs)
        runs = {**{k: v for k, v in earlier["runs"].items() if k not in mine}, **runs}
        programs = programs or earlier.get("programs", [])
        parts_note.append(
            f"Two parts: {', '.join(sorted(mine))} measured in this run; "
            f"{', '.join(sorted(set(earlier['runs']) - mine))} read from `--runs` "
            f"({earlier['part']} part, {earlier['date']}, {earlier['seconds']:.0f} s, machine "
            f"{earlier['machine']}).")

    n = _settings(args.quick)
    size = f"{n['chains']} x {n['warmup']}+{n['draws']}"
    labels = {
        "cold": f"(a) bayescale.fit, cold (empty cache; {size} NUTS)",
        "warm": "(b) bayescale.fit, warm (cache filled by (a))",
        "reference": f"(c) plain NumPyro reference ({size}, diagonal mass)",
        "huber": "(d) Huber grid (4500 starts) + 1000-resample bootstrap",
        "curve_fit": "curve_fit + 1000-resample bootstrap",
        "many": f"(e) bayescale.fit_many, {N_GROUPS} data sets, warm",
    }
    ref = runs["reference"]["fit_s"] if "reference" in runs else float("nan")
    rows = []
    for key, label in labels.items():
        if key not in runs or key == "first":
            continue
        r = runs[key]
        row = {"method": label, "fit_s": r["fit_s"], "process_s": r["process_s"],
               "x faster than (c)": ref / r["fit_s"]}
        ess = r.get("ess")
        for p in PARAMS:
            row[f"ESS/s {p}"] = ess[p] / r["fit_s"] if ess else float("nan")
        row["min bulk ESS"] = min(ess.values()) if ess else float("nan")
        row["max R-hat"] = r.get("rhat", float("nan"))
        row["leapfrog steps per draw"] = r.get("steps", float("nan"))
        rows.append(row)

    checks = []
    if {"warm", "cold", "many"} <= set(runs):
        warm, cold, many = runs["warm"], runs["cold"], runs["many"]
        if "reference" in runs:
            checks += [("warm fit vs reference (c)", ref / warm["fit_s"], ">= 20"),
                       ("cold fit vs reference (c)", ref / cold["fit_s"], ">= 5"),
                       ("warm fit vs Huber + bootstrap (d)",
                        runs["huber"]["fit_s"] / warm["fit_s"], ">= 5")]
        checks += [
            (f"fit_many ({N_GROUPS} groups) / warm fit", many["fit_s"] / warm["fit_s"], "<= 3"),
            ("min bulk ESS, warm fit (every parameter)", min(warm["ess"].values()), ">= 1000"),
            ("max R-hat, warm fit", warm["rhat"], "<= 1.01"),
            (f"min bulk ESS over all {N_GROUPS} fit_many groups", many["min_ess_all_groups"],
             ">= 1000"),
            (f"max R-hat over all {N_GROUPS} fit_many groups", many["max_rhat_all_groups"],
             "<= 1.01"),
        ]
    if "first" in runs:
        first = runs["first"]
        checks += [
            ("first `bayescale fit --dataset chinchilla`, cold / warm process (f)",
             first["cold"] / first["warm"], "<= 2.5"),
            (f"a data set of a new size ({NEW_SIZE} runs) / warm process (f)",
             first["new_size"] / first["warm"], "<= 1.5"),
        ]
    target_rows = []
    for name, value, target in checks:
        op, bound = target.split()
        ok = value >= float(bound) if op == ">=" else value <= float(bound)
        target_rows.append({"target": name, "measured": value, "required": target,
                            "met": "yes" if ok else "NO"})

    cpu = platform.processor() or platform.machine()
    bayes = runs.get("warm", {}).get("devices", "")
    notes = [
        "Each method in a fresh Python process, one after another in this one run. fit_s: "
        "from calling the fit to 90% intervals, libraries already imported; process_s: the "
        "whole process. ESS/s: bulk ESS over fit_s. leapfrog steps per draw: mean over "
        "the kept draws of every chain (all 16 data sets for fit_many).",
        *parts_note,
        f"Devices seen by JAX in the bayescale workers: {bayes or 'not run'} (on a CPU-only "
        "host bayescale asks XLA for one CPU device per core); the reference ran on "
        f"{runs.get('reference', {}).get('devices', 'not run')}. CPU: {cpu}. Versions: "
        + ", ".join(f"{k} {v}" for k, v in here["versions"].items()) + ".",
    ]
    if programs:
        notes.append(f"Programs in the cache after the cold run: {', '.join(programs)} "
                     "(exported with jax.export) plus XLA's executables.")
    if "many" in runs:
        many = runs["many"]
        seq_s = many.get("sequential_s")
        notes.append(
            f"fit_many: {N_GROUPS} resamples (with replacement) of the 240 runs, every one a "
            "full 4-chain fit, in one program (on a CPU each device runs its data sets one "
            "after another, each one's chains in lockstep; a GPU runs them all at once); ESS "
            "and R-hat columns are those of the first data set, the targets below cover all of "
            "them. " + (f"In the same process, the 16 data sets fitted one after another with "
                        f"fit (the same model, repeats=False; its programs loaded by (b)) took "
                        f"{seq_s:.1f} s against fit_many's {many['fit_s']:.1f} s."
                        if seq_s is not None else
                        "The 16 one-after-another fits were skipped (--no-sequential)."))
    if "first" in runs:
        first = runs["first"]
        notes.append(
            f"(f) first runs of the command line at its defaults (4 x 1000+1000 NUTS and the "
            f"form-error refits{'; --quick: 2 x 100+100' if args.quick else ''}), whole "
            f"processes: cold {first['cold']:.1f} s (empty cache: traces and compiles the "
            f"sampler's 3 programs; the refits share them), warm {first['warm']:.1f} s, "
            f"{NEW_SIZE} of the 240 runs {first['new_size']:.1f} s (padded to the 256 rows "
            "of the 240, so the cached programs serve)." + _cpu_note(first))
    notes.append("GPU: none seen by JAX in this run, so these are CPU figures; the same command "
                 "on a host where JAX sees a GPU measures it there (the device line names it)."
                 if not bayes or "cpu" in bayes.lower() else
                 "Accelerator run: the device line names it.")
    text = C.header(
        "Speed: seconds to a posterior on the bundled Chinchilla data (240 runs)"
        + (" (QUICK smoke run)" if args.quick else ""),
        seconds=seconds + (earlier["seconds"] if earlier else 0.0), notes=notes)
    text += "\n" + C.markdown_table(rows, ["method", "fit_s", "process_s", "x faster than (c)",
                                            *[f"ESS/s {p}" for p in PARAMS], "min bulk ESS",
                                            "max R-hat", "leapfrog steps per draw"])
    if target_rows:
        text += "\n## Targets (issues 8 and 19)\n\n" + C.markdown_table(
            target_rows, ["target", "measured", "required", "met"])
    C.write_table(args.out, "speed.md", text)


if __name__ == "__main__":
    main()
