"""The ``bayescale`` command line: the same functions the notebooks call.

Errors a user can cause print one line on stderr and exit with status 2, never a traceback
(set ``BAYESCALE_DEBUG=1`` to see one). With ``--json``, stdout holds exactly one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "build_parser"]


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Every option's default in its help; the examples of the epilog kept as written."""

    def _get_help_string(self, action):
        default = action.default
        if (default is None or default is False or default == [] or default == argparse.SUPPRESS
                or not action.option_strings):
            return action.help or ""
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", _Formatter)
        super().__init__(*args, **kwargs)
        # '-1e9' is a (negative) number, not an option: argparse's own pattern misses exponents,
        # so `--N -1e9` was "expected one argument" instead of "must be positive".
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")

    def error(self, message: str):  # one line, exit 2
        raise SystemExit(_fail(f"{message} (see `{self.prog} --help`)"))


def _positive(text: str) -> float:
    """A size, a budget or a loss: a finite number > 0 (units, commas and NaN refused here)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number {text!r}: write plain numbers such as "
                                         "7e10") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"{text} must be a positive finite number")
    return value


def _nu(text: str) -> float | str:
    """``--nu``: the Student-t noise's degrees of freedom, a finite number > 0 or ``learned``."""
    if text == "learned":
        return text
    try:
        return _positive(text)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected a number above 0 or 'learned', got {text!r}"
                                         ) from None


def _whole(what: str, low: int, high: int | None = None):
    """An argparse type for a whole number >= ``low`` (and < ``high``)."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"invalid {what} {text!r}: give a whole "
                                             "number") from None
        if high is not None and not low <= value < high:
            raise argparse.ArgumentTypeError(f"{what} {text} is out of range: give a whole "
                                             f"number from {low} to {high - 1}")
        if value < low:
            raise argparse.ArgumentTypeError(f"{text} must be a whole number >= {low}")
        return value

    return parse


_count = _whole("count", 0)  # resamples, retries
_at_least_one = _whole("count", 1)  # chains, warm-up transitions, draws
_seed = _whole("seed", 0, 2**32)  # JAX's and NumPy's generators


def _fail(message: str) -> int:
    print(f"bayescale: error: {message}", file=sys.stderr)
    return 2


def _clean(obj: Any) -> Any:
    """Make ``obj`` strict JSON: NaN/inf become null, numpy scalars plain numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _print_json(obj: Any) -> None:
    print(json.dumps(_clean(obj), allow_nan=False))


def _fmt(v: float) -> str:
    return f"{v:.4g}" if v is not None and math.isfinite(v) else "-"


def _interval_table(rows: dict[str, dict[str, float]], level: float, title: str = "") -> str:
    pct = f"{100 * level:g}%"
    width = max([len(k) for k in rows] + [5])
    lines = [title] if title else []
    lines.append(f"{'':{width}}  {'median':>11}  {pct + ' lo':>11}  {pct + ' hi':>11}")
    for name, r in rows.items():
        lines.append(f"{name:{width}}  {_fmt(r['median']):>11}  {_fmt(r['lo']):>11}  "
                     f"{_fmt(r['hi']):>11}")
    return "\n".join(lines)


def _diagnostics_line(d: dict[str, Any]) -> str:
    status = "converged" if d["converged"] else "NOT CONVERGED"
    return (f"diagnostics: max R-hat {_fmt(d['max_rhat'])}, min bulk ESS "
            f"{_fmt(d['min_ess_bulk'])}, divergences {d['divergences']} -> {status}")


# ------------------------------------------------------------------------------------ data
#: The bundled data sets' selectors: option -> (the data sets it selects in, its default).
_SELECTORS = {"all_rows": (("chinchilla", "datablations"), False),
              "config": (("porian2024",), "Optimizer tuning (no decay)"),
              "corpus": (("porian2024",), "rw"),
              "domain": (("revisiting",), "LM"), "model": (("revisiting",), None),
              "split": (("revisiting",), None)}


def _check_selectors(args: argparse.Namespace) -> None:
    """A DataError for a data-set selector that selects nothing here (it was ignored)."""
    from bayescale.errors import DataError

    for name, (datasets, default) in _SELECTORS.items():
        if getattr(args, name, default) == default or args.dataset in datasets:
            continue
        flag = "--" + name.replace("_", "-")
        where = f"--dataset {args.dataset}" if args.dataset else "a file of your own"
        raise DataError(f"{flag} selects rows of the bundled {' or '.join(datasets)} data; it "
                        f"does nothing for {where}: drop it")


def _add_data_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="table of training runs, one row per run: CSV, "
                                                "Parquet (.parquet) or JSON lines (.jsonl)")
    p = parser.add_argument_group("data", "the runs, and the columns that hold what (common "
                                          "names are found without these)")
    p.add_argument("--dataset", help="a bundled dataset instead of a file (see `bayescale datasets`)")
    p.add_argument("--all-rows", action="store_true",
                   help="chinchilla: keep the 5 outliers Epoch AI dropped; datablations: keep "
                        "multi-epoch runs")
    p.add_argument("--config", default=_SELECTORS["config"][1],
                   help="porian2024 configuration label, or 'all' (groups for --by-group)")
    p.add_argument("--corpus", default=_SELECTORS["corpus"][1],
                   help="porian2024 corpus: rw, owt2, or 'all' (groups for --by-group)")
    p.add_argument("--domain", default=_SELECTORS["domain"][1], help="revisiting curve domain: LM or NMT")
    p.add_argument("--model", default=None,
                   help="revisiting curve model, e.g. 1.68e+07 (default the domain's first)")
    p.add_argument("--split", choices=["train", "test"], default=None,
                   help="revisiting: only the train or the test rows (default both)")
    for flag, what in (("--n-col", "parameters N"), ("--d-col", "training tokens D"),
                       ("--c-col", "training FLOPs C"), ("--loss-col", "final loss"),
                       ("--x-col", "input x of a one-variable law"),
                       ("--group-col", "group label"), ("--seed-col", "seed label"),
                       ("--u-col", "unique training tokens U (law data_constrained)"),
                       ("--run-col", "run label (rows of one run are its checkpoints)")):
        p.add_argument(flag, help=f"column holding {what}")
    p.add_argument("--flops-per-param-token", type=_positive, default=6.0,
                   help="k in C = k N D")
    p.add_argument("--dropna", action="store_true",
                   help="drop rows with a missing value in a column used (crashed runs)")
    p.add_argument("--drop-duplicates", action="store_true",
                   help="drop rows identical in every column to an earlier one (copies)")


def _load_data(args: argparse.Namespace):
    from bayescale.data import ScalingData
    from bayescale.datasets import load_dataset
    from bayescale.errors import DataError

    if (args.file is None) == (args.dataset is None):
        raise DataError("give either a CSV file or --dataset NAME (see `bayescale datasets`)")
    _check_selectors(args)
    if args.dataset is not None:
        return load_dataset(args.dataset, all=args.all_rows, config=args.config,
                            corpus=args.corpus, domain=args.domain, model=args.model,
                            split=args.split)
    cols = {k: getattr(args, k) for k in ("n_col", "d_col", "c_col", "loss_col", "x_col",
                                           "group_col", "seed_col", "u_col", "run_col")}
    data = ScalingData.from_file(args.file, flops_per_param_token=args.flops_per_param_token,
                                 dropna=args.dropna, drop_duplicates=args.drop_duplicates, **cols)
    if any(k != c for k, c in data.columns.items()) or (data.D is not None
                                                         and "D" not in data.columns):
        # found by an alias, or D computed from C: say which column gave what (once the
        # command has succeeded: an error stays one line)
        what = "rows" if data.has_checkpoints else "runs"  # checkpoints: rows, not runs
        _NOTES.append(f"bayescale: {data.n_points} {what} from {args.file}; "
                      f"{_columns_text(data)}")
    return data


#: Lines for stderr once the command has succeeded.
_NOTES: list[str] = []


def _columns_text(data) -> str:
    """'N <- 'num_params', D = C / (6 N), loss <- 'eval/loss'': which column gave each input."""
    parts = []
    for key in ("N", "D", "C", "x", "U", "loss", "group", "seed", "run"):
        if key in data.columns:
            parts.append(f"{key} <- {data.columns[key]!r}")
        elif key == "D" and data.D is not None and "N" in data.columns:
            parts.append(f"D = C / ({data.flops_per_param_token:g} N)")
    return "columns " + ", ".join(parts)


# ------------------------------------------------------------------------------------ commands
def _cmd_fit(args: argparse.Namespace) -> int:
    from bayescale.errors import DataError

    # argument errors before any work (importing JAX, loading, sampling, a Huber grid)
    if args.retries and not (args.by_group or args.hierarchical):
        raise DataError("--retries refits the groups of --by-group that did not converge; for "
                        "one fit, raise --warmup and --draws instead")
    if args.no_more_chains and (args.by_group or args.hierarchical):
        raise DataError("--no-more-chains is for one fit: --by-group fits keep the chains asked "
                        "for (--retries refits the groups that did not converge)")
    if args.bootstrap and args.method == "bayes":
        raise DataError("--bootstrap resamples least-squares fits (--method huber, curve_fit, "
                        "ols, approach1 or approach2); the Bayesian fit's intervals come from "
                        "its posterior")
    if args.nu is not None and args.method != "bayes":
        raise DataError(f"--nu sets the Bayesian fit's Student-t noise; --method {args.method} "
                        "has none: drop --nu")
    if args.nu is not None and args.noise == "normal":
        raise DataError("--nu sets the Student-t noise's tails: drop it, or drop --noise normal")
    if args.method != "bayes":
        _check_lsq_options(args)
    if args.out:  # not an input, a folder we can write, a name that fits
        _output(args, args.out, folder=args.by_group or args.hierarchical)
    data = _load_data(args)
    if args.by_group or args.hierarchical:
        return _fit_groups(args, data)
    if args.method != "bayes":
        return _fit_lsq(args, data)
    from bayescale.inference import fit

    if data.has_checkpoints:
        _checkpoints_note(data, args.checkpoints)
    result = fit(data, args.law, noise=args.noise, repeats=_repeats(args), chains=args.chains,
                 priors=_nu_prior(args), warmup=args.warmup, draws=args.draws, seed=args.seed,
                 progress=not args.no_progress, target_accept=args.target_accept,
                 form_error=not args.no_form_error, checkpoints=args.checkpoints,
                 more_chains=not args.no_more_chains)
    if args.out:
        result.save(args.out)
        print(f"bayescale: saved fit to {args.out}", file=sys.stderr)
    _report_fit(result.to_dict(args.level), args.json, formula=result.law.formula,
                seconds=result.seconds)
    return 0


#: Options of ``fit`` that only the Bayesian fit reads: a least-squares --method refuses them
#: when they differ from their defaults, rather than ignore them.
_BAYES_ONLY = {"chains": "--chains", "warmup": "--warmup", "draws": "--draws",
               "target_accept": "--target-accept", "noise": "--noise",
               "repeats": "--repeats", "no_form_error": "--no-form-error",
               "no_more_chains": "--no-more-chains", "retries": "--retries"}


def _check_lsq_options(args: argparse.Namespace) -> None:
    """A DataError for a sampler option or --out given with a least-squares --method."""
    from bayescale.errors import DataError

    defaults = build_parser().parse_args(["fit", "--dataset", "chinchilla"])
    given = [flag for name, flag in _BAYES_ONLY.items()
             if getattr(args, name) != getattr(defaults, name)]
    if given:
        raise DataError(f"{', '.join(given)} set{'s' if len(given) == 1 else ''} the Bayesian "
                        f"fit; --method {args.method} does not use "
                        f"{'it' if len(given) == 1 else 'them'}: drop "
                        f"{'it' if len(given) == 1 else 'them'} (or drop --method)")
    if args.out:
        raise DataError(f"--out saves a Bayesian fit (netCDF); --method {args.method} prints its "
                        "result: use --json > FILE to keep it")


def _checkpoints_note(data, checkpoints: str) -> None:
    runs = len(set(data.run))
    if checkpoints == "final":
        print(f"bayescale: {data.n_points} rows are checkpoints of {runs} runs: fitting each "
              "run's final checkpoint (--checkpoints all fits every checkpoint with a per-run "
              "effect)", file=sys.stderr)
    else:
        print(f"bayescale: fitting all {data.n_points} checkpoints of {runs} runs, each run's "
              "sharing a run effect", file=sys.stderr)


def _nu_prior(args: argparse.Namespace) -> dict | None:
    """The priors override ``--nu`` asks for (None without it)."""
    if args.nu is None:
        return None
    if args.nu == "learned":
        from bayescale.priors import learned_nu

        return {"nu": learned_nu()}
    return {"nu": args.nu}


def _repeats(args: argparse.Namespace) -> bool | str:
    return {"auto": "auto", "yes": True, "no": False}[args.repeats]


def _fit_groups(args: argparse.Namespace, data) -> int:
    """One fit per group label (``--group-col``) in one program; ``--out`` is then a folder."""
    from pathlib import Path

    from bayescale.errors import DataError
    from bayescale.many import fit_many

    if args.method != "bayes":
        raise DataError(f"--by-group and --hierarchical fit with NUTS; drop --method "
                        f"{args.method}")
    if data.group is None:
        if args.dataset is not None:
            raise DataError(f"--by-group needs group labels, and --dataset {args.dataset} has "
                            "none as loaded: --dataset porian2024 --config all (and/or "
                            "--corpus all) labels its configurations as groups")
        raise DataError("--by-group needs group labels: name their column with --group-col")
    out_dir = Path(args.out) if args.out else None
    fits = fit_many(data, args.law, hierarchical=args.hierarchical, noise=args.noise,
                    repeats=_repeats(args), priors=_nu_prior(args),
                    chains=args.chains, warmup=args.warmup, draws=args.draws, seed=args.seed,
                    progress=not args.no_progress, target_accept=args.target_accept,
                    retries=args.retries, form_error=not args.no_form_error)
    redone = [n for n, f in fits.items() if f.options.get("refits")]
    if redone:
        print(f"bayescale: refitted {len(redone)} of {len(fits)} groups that had not converged "
              f"({', '.join(redone)}), with up to {max(f.options['draws'] for f in fits.values())}"
              " draws per chain", file=sys.stderr)
    if out_dir is not None:
        for name, path in fits.save(out_dir).items():
            print(f"bayescale: saved group {name!r} to {path}", file=sys.stderr)
    _report_groups(fits, args.level, args.json)
    return 0


def _report_groups(fits, level: float, as_json: bool) -> None:
    if as_json:
        _print_json({"groups": {n: f.to_dict(level) for n, f in fits.items()},  # no wall time:
                     "hierarchical": fits.hierarchical})  # the JSON is reproducible
        return
    shared = " (exponents shared)" if fits.hierarchical else ""
    print(f"{len(fits)} groups fitted in one program{shared} in {fits.seconds:.1f} s\n")
    law = next(iter(fits.values())).law
    overview = (fits.summary(level)["median"].unstack("param")
                .loc[list(fits), list(law.params)].rename_axis(index=None, columns=None))
    overview.insert(0, "runs", [f.data.n_points for f in fits.values()])
    overview["converged"] = ["yes" if ok else "NO" for ok in fits.diagnostics()["converged"]]
    print("posterior medians\n" + overview.to_string(float_format=lambda v: f"{v:.4g}"))
    for name, f in fits.items():
        print(f"\ngroup {name}")
        _report_fit(f.to_dict(level), False, formula=f.law.formula)


def _fit_isoflop(args: argparse.Namespace, data) -> int:
    """``--method approach1|approach2``: Hoffmann's IsoFLOP approaches, N*(C) without a law."""
    from bayescale.baselines import isoflop_approach
    from bayescale.errors import DataError

    if data.N is None or data.C is None:
        raise DataError(f"--method {args.method} needs each run's parameters and compute (or "
                        "tokens): --n-col and --c-col (or --d-col)")
    result = isoflop_approach(args.method, N=data.N, C=data.C, loss=data.loss,
                              bootstrap=args.bootstrap, seed=args.seed,
                              flops_per_param_token=data.flops_per_param_token)
    out = result.to_dict(args.level)
    if args.json:
        _print_json(out)
        return 0
    what = {"approach1": "lowest-loss run per budget",
            "approach2": "vertex of a parabola in log N per budget"}[args.method]
    print(f"{args.method} (Hoffmann et al. 2022; {what}): {out['n_points']} runs, "
          f"{len(out['budgets'])} budgets")
    print(f"{'compute':>10}  {'N_opt':>10}  {'D_opt':>10}  {'tokens/N':>9}  {'loss':>7}  runs")
    for b in out["budgets"]:
        print(f"{b['compute']:>10.4g}  {b['N_opt']:>10.4g}  {b['D_opt']:>10.4g}  "
              f"{b['D_opt'] / b['N_opt']:>9.3g}  {b['loss_opt']:>7.4g}  {b['n_runs']}")
    for line in out["skipped"]:
        print(f"skipped {line}")
    rows = {"a (N*~C^a)": out["exponents"]["a"], "b (D*~C^b)": out["exponents"]["b"]}
    if out["n_bootstrap"]:
        print(_interval_table({k: {q: v[q] for q in ("median", "lo", "hi")} for k, v in
                               rows.items()}, args.level,
                              title=f"exponents ({out['n_bootstrap']} bootstrap resamples)"))
    else:
        print(f"exponents: a = {rows['a (N*~C^a)']['median']:.4g}, b = "
              f"{rows['b (D*~C^b)']['median']:.4g} (--bootstrap B for intervals)")
    return 0


def _fit_lsq(args: argparse.Namespace, data) -> int:
    from bayescale.baselines import fit_lsq_data

    if args.method in ("approach1", "approach2"):
        return _fit_isoflop(args, data)

    result = fit_lsq_data(args.method, args.law, data, bootstrap=args.bootstrap, seed=args.seed)
    _report_fit(result.to_dict(args.level), args.json, seconds=result.seconds)
    if not args.json and not args.bootstrap:  # lo = hi = the estimate: say it is no interval
        print(f"point estimates only (lo = hi = median): --bootstrap B for {args.level:.0%} "
              "intervals")
    return 0


def _report_fit(out: dict[str, Any], as_json: bool, *, formula: str = "",
                seconds: float | None = None) -> None:
    if as_json:
        _print_json(out)
        return
    head = f"law {out['law']}" + (f": {formula}" if formula else "")
    print(f"{head}\n{out['n_points']} runs" + (f", fitted in {seconds:.1f} s" if seconds else ""))
    print(_interval_table(out["params"], out["level"]))
    if "diagnostics" in out:
        added = out.get("added_chains")
        print(_diagnostics_line(out["diagnostics"])
              + (f" ({added} chains added for the ESS: --no-more-chains to keep --chains)"
                 if added else ""))


def _cmd_summary(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bayescale.inference import load_fit
    from bayescale.many import load_fits

    if Path(args.fit).is_dir():  # the folder of `fit --by-group --out`
        _report_groups(load_fits(args.fit), args.level, args.json)
        return 0
    result = load_fit(args.fit)
    _report_fit(result.to_dict(args.level), args.json, formula=result.law.formula)
    return 0


def _cmd_datasets(args: argparse.Namespace) -> int:
    from bayescale.datasets import list_datasets

    table = list_datasets()
    if args.json:
        _print_json({"datasets": table.to_dict(orient="records")})
        return 0
    for r in table.itertuples():
        print(f"{r.name} ({r.rows} runs by default, {r.rows_in_file} in file)\n"
              f"  {r.description}\n  cite: {r.citation}\n")
    return 0


def _load_checked(args: argparse.Namespace, what: str):
    """A saved fit, refused for decisions when its sampler did not converge."""
    from bayescale.errors import ConvergenceError
    from bayescale.inference import load_fit

    result = load_fit(args.fit)
    converged = result.diagnostics["converged"]
    if not converged and not getattr(args, "allow_unconverged", True):
        raise ConvergenceError(
            f"{args.fit} did not converge ({_diagnostics_line(result.diagnostics)[13:]}); refit "
            f"with more warm-up and draws, or pass --allow-unconverged to {what} anyway")
    return result, converged


def _cmd_predict(args: argparse.Namespace) -> int:
    from bayescale.errors import FitError

    if len(args.N) != len(args.D):  # before loading anything: argument errors come at once
        raise FitError(f"give as many --N as --D values (pairs); got {len(args.N)} and "
                       f"{len(args.D)}")
    if sum(bool(v) for v in (args.N, args.x, args.compute)) != 1:
        raise FitError("give points as --N/--D pairs, or --x values, or --compute budgets")
    result, converged = _load_checked(args, "predict")
    kw = {}
    if args.N:
        kw.update(N=args.N, D=args.D)
    if args.x:
        kw["x"] = args.x
    if args.compute:
        kw["C"] = args.compute
    if args.unique_tokens is not None:
        kw["U"] = args.unique_tokens if args.compute else [args.unique_tokens] * max(
            len(args.N), 1)
    if not converged:
        _warn_unconverged(args.fit)
    prediction = result.predict(level=args.level, seed=args.seed, **kw)
    if args.csv:  # tidy: one row per point and kind
        prediction.table(args.level).assign(converged=converged).to_csv(sys.stdout, index=False)
        return 0
    out = prediction.to_dict(args.level)
    out["converged"] = converged
    if args.json:
        _print_json(out)
        return 0
    for pt in out["points"]:
        where = ", ".join(f"{k}={pt[k]:.4g}" for k in ("compute", "N", "D", "U", "x") if k in pt)
        print(_interval_table({"law": pt["law"], "new run": pt["new_run"],
                               "  form exact": pt["noise_only"]}, args.level,
                              title=f"loss at {where}{_beyond_text(pt.get('beyond'))}"))
    return 0


def _warn_unconverged(path: str) -> None:
    """One reminder on stderr that the answers come from a fit whose sampler did not converge."""
    print(f"bayescale: warning: {path} did not converge: these numbers come from an unreliable "
          "posterior (refit with more --warmup and --draws)", file=sys.stderr)


def _beyond_text(beyond) -> str:
    """' (45x the largest compute trained on, N 4.3x, D 4.4x)', or '' inside the data."""
    if not beyond or beyond.get("decades", 0.0) <= 0:
        return "" if not beyond else " (inside the training data)"
    parts = [f"{k} {beyond[k]:.3g}x" for k in ("C", "N", "D", "x") if k in beyond]
    return (f" ({beyond['decades']:.2g} decades outside the training data; against the largest "
            "trained: " + ", ".join(parts) + ")")


def _cmd_allocate(args: argparse.Namespace) -> int:
    result, converged = _load_checked(args, "allocate")
    if not converged:
        _warn_unconverged(args.fit)
    k = args.flops_per_param_token
    allocation = result.compute_optimal(args.compute, flops_per_param_token=k,
                                        max_params=args.max_params, max_tokens=args.max_tokens,
                                        unique_tokens=args.unique_tokens)
    if args.csv:  # tidy: one row per budget and quantity
        allocation.summary(args.level).assign(converged=converged).to_csv(sys.stdout, index=False)
        return 0
    out = allocation.to_dict(args.level)
    out["converged"] = converged
    if args.json:
        _print_json(out)
        return 0
    for b in out["budgets"]:
        rows = {q: b[q] for q in ("N_opt", "D_opt", "tokens_per_param", "loss")}
        rows["new-run loss"] = b["new_run_loss"]
        if "cap_cost" in b:
            rows[f"loss the caps cost ({b['frac_at_cap']:.0%} of draws capped)"] = b["cap_cost"]
        if "epochs" in b:
            rows[f"epochs of U = {out['unique_tokens']:.4g}"] = b["epochs"]
        print(_interval_table(rows, args.level, title=f"compute-optimal split at C = "
                                                      f"{b['compute']:.4g} FLOPs"
                                                      f"{_beyond_text(b.get('beyond'))}"))
    capped = args.max_params is not None or args.max_tokens is not None
    print(_interval_table({f"{q} (N*~C^a, D*~C^b)" if q == "a" else q: v
                           for q, v in out["exponents"].items()}, args.level,
                          title="exponents" + (" of the capped split (where a cap binds, N* or "
                                               "D* stops growing: a = 0 or b = 0 there, not the "
                                               "law's)" if capped else "")))
    return 0


def _cmd_decide(args: argparse.Namespace) -> int:
    from bayescale.errors import FitError

    if (args.compute is None) == (args.target_loss is None):
        raise FitError("give either --compute C (choose a split) or --target-loss L (find the "
                       "compute for a target)")
    result, converged = _load_checked(args, "decide")
    if not converged:
        _warn_unconverged(args.fit)
    if args.compute is not None:
        out = result.decide(args.compute, objective=args.objective, seed=args.seed,
                            max_params=args.max_params, max_tokens=args.max_tokens,
                            unique_tokens=args.unique_tokens).to_dict(level=args.level)
        if args.unique_tokens is not None:  # the data wall: one more epoch, or more parameters?
            from bayescale.allocation import one_more_epoch

            c = out["choice"]
            out["one_more_epoch"] = one_more_epoch(result.posterior, c["N"], c["D"],
                                                   args.unique_tokens, level=args.level)
    else:
        out = result.compute_for_target(args.target_loss, probability=args.probability,
                                        seed=args.seed, max_params=args.max_params,
                                        max_tokens=args.max_tokens,
                                        unique_tokens=args.unique_tokens).to_dict()
    out["converged"] = converged
    if args.csv:  # tidy: one row per choice (or the one answer for a target)
        import pandas as pd

        if args.compute is not None:  # every row of the text: the choice, the plug-in (with
            # its expected regret) and, with caps, the uncapped choice and what the caps cost
            rows = [{"split": name, "compute": out["compute"], "objective": out["objective"],
                     **{k: v for k, v in out[key].items() if not isinstance(v, dict)}}
                    for name, key in (("choice", "choice"), ("plug-in", "plugin"),
                                      ("uncapped", "uncapped")) if key in out]
            rows[1]["regret"] = out["regret_of_plugin"]
            if "cap_cost" in out:
                rows[0]["cap_cost"] = out["cap_cost"]["objective"]
            if "one_more_epoch" in out:
                e = out["one_more_epoch"]
                rows[0].update(p_one_more_epoch_beats_params=e["probability"],
                               one_more_epoch_gain=e["gain"]["median"])
            if out.get("beyond"):
                rows[0]["decades_beyond_data"] = out["beyond"]["decades"]
        else:
            rows = [{k: v for k, v in out.items() if not isinstance(v, (dict, list))}]
        pd.DataFrame(rows).assign(converged=converged).to_csv(sys.stdout, index=False)
        return 0
    if args.json:
        _print_json(out)
        return 0
    if args.compute is not None:
        c, p = out["choice"], out["plugin"]
        print(f"budget {out['compute']:.4g} FLOPs{_beyond_text(out.get('beyond'))}, "
              f"objective {out['objective']}")
        print(f"{'':10}  {'N':>10}  {'D':>10}  {'tokens/N':>9}  {'objective':>10}  {'P(<1% off)':>10}")
        for name, r in (("choice", c), ("plug-in", p)):
            print(f"{name:10}  {r['N']:>10.4g}  {r['D']:>10.4g}  {r['D'] / r['N']:>9.3g}  "
                  f"{r['objective_value']:>10.5g}  {r['p_within_1pct']:>10.3f}")
        print(f"expected regret of the plug-in split: {out['regret_of_plugin']:.3g} nats")
        if "one_more_epoch" in out:
            e = out["one_more_epoch"]
            print(f"at {e['epochs_now']:.3g} epochs of U = {args.unique_tokens:.4g}: one more "
                  f"epoch (D = {e['epoch']['D']:.4g}) beats the same compute in parameters "
                  f"(N = {e['params']['N']:.4g}) with probability {e['probability']:.2f}; "
                  f"loss it saves {e['gain']['median']:.3g} nats ({args.level:.0%} interval "
                  f"{e['gain']['lo']:.3g} to {e['gain']['hi']:.3g})")
        if "uncapped" in out:
            u, cost = out["uncapped"], out["cap_cost"]
            print(f"{'uncapped':10}  {u['N']:>10.4g}  {u['D']:>10.4g}  {u['D'] / u['N']:>9.3g}  "
                  f"{u['objective_value']:>10.5g}")
            print(f"the caps cost {cost['objective']:.3g} nats of the objective (per draw "
                  f"{cost['median']:.3g}, {args.level:.0%} interval {cost['lo']:.3g} to "
                  f"{cost['hi']:.3g})")
    else:
        split = (f"C = {out['compute']:.4g} FLOPs, N = {out['N']:.4g}, D = {out['D']:.4g}"
                 if "N" in out else f"x = {out['compute']:.4g} (the law's one input)")
        print(f"to reach loss {out['target_loss']:g} with probability {out['probability']:g}: "
              f"{split}")
    return 0


def _cmd_backtest(args: argparse.Namespace) -> int:
    from bayescale.backtesting import backtest

    data = _load_data(args)
    options = {} if args.method != "bayes" else dict(
        chains=args.chains, warmup=args.warmup, draws=args.draws)
    if args.plot:
        _figure_format(args.plot)
        _output(args, args.plot, what="--plot")
    result = backtest(data, args.law, by=args.by, drop=args.drop, cutoffs=args.cutoff or None,
                      method=args.method, bootstrap=args.bootstrap, seed=args.seed,
                      progress=not args.no_progress, **options)
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from bayescale.io import atomic_path

        axes = result.plot()
        with atomic_path(args.plot) as tmp:
            axes[0].figure.savefig(tmp, format=_figure_format(args.plot), dpi=110,
                                   bbox_inches="tight")
        plt.close(axes[0].figure)
        print(f"bayescale: wrote {args.plot}", file=sys.stderr)
    if args.json:
        _print_json(result.to_dict())
        return 0
    print(f"backtest of {result.law} ({result.method}) along {result.by}: train at or below "
          "each cutoff, predict the runs above; log loss, new-run bands")
    cols = ["n_train", "n_test", "max_ratio", "mae", "bias", "cov50", "cov80", "cov90",
            "cov95", "width90", "mlpd"]
    print(result.summary()[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    print("\nby extrapolation ratio (held-out / largest trained)")
    print(result.by_ratio()[["n_test", "mae", "bias", "cov50", "cov90", "width90"]].to_string(
        float_format=lambda v: f"{v:.4g}"))
    return 0


def _figure_format(path: str) -> str:
    """png, pdf or svg, from the file name's suffix."""
    from pathlib import Path

    from bayescale.errors import OutputError

    suffix = Path(path).suffix.lower().lstrip(".")
    if suffix not in ("png", "pdf", "svg"):
        raise OutputError(f"--plot {path}: give a file name ending in .png, .pdf or .svg")
    return suffix


def _output(args: argparse.Namespace, path: str, *, what: str = "--out",
            folder: bool = False) -> None:
    """One clear message for an output that cannot be written, before any work: an input file
    (the CSV, the fit), a folder, a folder that cannot be written, a name too long."""
    from bayescale.io import output_path

    inputs = [getattr(args, "file", None), getattr(args, "fit", None)]
    output_path(path, inputs=inputs + list(getattr(args, "fits", None) or []), what=what,
                folder=folder)


def _cmd_compare(args: argparse.Namespace) -> int:
    from pathlib import Path

    from bayescale.comparison import compare, lfo_stacking
    from bayescale.errors import FitError
    from bayescale.inference import load_fit
    from bayescale.io import same_file

    same = [p for i, p in enumerate(args.fits)
            if any(same_file(Path(p), Path(q)) for q in args.fits[:i])]
    if same:
        raise FitError(f"{same[0]} is given twice: compare ranks different fits of the same runs "
                       "(e.g. two laws); give each file once")
    fits = [load_fit(p) for p in args.fits]
    table = compare(fits, names=args.fits)
    lfo = lfo_stacking(fits, names=args.fits) if args.lfo else None
    if args.json:
        out = {"models": table.reset_index().to_dict(orient="records")}
        if lfo is not None:
            out["lfo_stacking"] = lfo.reset_index().to_dict(orient="records")
        _print_json(out)
        return 0
    cols = ["rank", "elpd_loo", "p_loo", "elpd_diff", "dse", "weight", "max_pareto_k", "warning"]
    print(table[cols].to_string(float_format=lambda v: f"{v:.4g}"))
    if lfo is not None:
        print("\nleave-future-out stacking (each fit's own refits below its top compute levels, "
              "scored on the runs above)")
        print(lfo.to_string(float_format=lambda v: f"{v:.4g}"))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    from pathlib import Path

    os.environ.setdefault("MPLBACKEND", "Agg")
    from bayescale.inference import load_fit
    from bayescale.io import atomic_write_text
    from bayescale.report import write_report
    from bayescale.tasks import is_task_fit

    _output(args, args.out)
    if Path(args.fit).is_dir():  # the folder of `fit --by-group --out`: one page, every group
        from bayescale.many import load_fits
        from bayescale.report import render_group_report

        page = render_group_report(load_fits(args.fit), budgets=args.compute or None,
                                   level=args.level)
        path = atomic_write_text(args.out, page)
    elif is_task_fit(args.fit):
        from bayescale.report import render_task_report
        from bayescale.tasks import load_task_fit

        path = atomic_write_text(args.out, render_task_report(load_task_fit(args.fit),
                                                              level=args.level))
    else:
        path = write_report(load_fit(args.fit), args.out, budgets=args.compute or None,
                            level=args.level)
    print(f"bayescale: wrote {path}", file=sys.stderr)
    return 0


# ------------------------------------------------------------------------------------ parser
PLATFORMS = ("cpu", "gpu", "tpu")
PLATFORM_HELP = ("where JAX runs: cpu, gpu or tpu (default: JAX's choice, an accelerator when "
                 "it sees one); the same as JAX_PLATFORMS")


def select_platform(platform: str, source: str = "") -> str | None:
    """Point JAX at ``platform`` before it starts; returns an error message, or None.

    For gpu, JAX chooses among the backends it finds (an accelerator before the CPU) and the
    choice is checked: ``JAX_PLATFORMS=gpu`` asks for CUDA and ROCm both, and recent JAX fails
    on a host that has one of them (seen with jax 0.11 on an NVIDIA H100: "Unable to initialize
    backend 'rocm'").
    """
    if platform == "gpu":
        os.environ.pop("JAX_PLATFORMS", None)
    else:
        os.environ["JAX_PLATFORMS"] = platform if platform == "cpu" else f"{platform},cpu"
    source = source or f"--platform {platform}"
    install = ("pip install 'jax[tpu]'" if platform == "tpu" else
               "pip install 'jax[cuda12]' or 'jax[cuda13]'")
    try:
        from bayescale._jax import jax

        backend = jax.default_backend()
    except RuntimeError as err:
        return (f"{source}: JAX could not start it ({str(err).splitlines()[0]}); "
                f"install the matching jax package ({install}) or use "
                "--platform cpu")
    if backend != platform:
        return (f"{source}: JAX sees no {platform.upper()} here (it runs on "
                f"{backend}); install the matching jax package ({install}) or "
                "use --platform cpu")
    return None


def _check_jax_platforms(value: str) -> str | None:
    """An error message when JAX cannot start the backends ``JAX_PLATFORMS`` names, else None.

    JAX reads ``gpu`` as CUDA and ROCm both and fails on a host with one of them (or none) with
    a raw "Unable to initialize backend 'rocm'"; a name with no plugin installed (``cuda``)
    fails with a bare AssertionError.
    """
    if value.lower() == "gpu":
        return select_platform("gpu", source=f"JAX_PLATFORMS={value}")
    try:
        from bayescale._jax import jax

        jax.default_backend()
    except Exception as err:  # noqa: BLE001 - whatever JAX raised, one line with the fix
        why = str(err).splitlines()[0] if str(err) else type(err).__name__
        return (f"JAX_PLATFORMS={value}: JAX could not start it ({why}); unset JAX_PLATFORMS "
                "to let JAX choose, install the matching jax package, or pass --platform cpu")
    return None


LEVEL_HELP = "level of the central credible intervals (0.95: from the 2.5%% to the 97.5%% quantile)"
SEED_HELP = "seed of the random draws (a whole number in [0, 2**32)); the same seed, the same output"
LAWS = ["chinchilla", "chinchilla_tied", "kaplan", "power", "power_pure", "broken_power", "log",
        "data_constrained"]
FIT_EXAMPLES = """examples:
  bayescale fit --dataset chinchilla --out chinchilla.nc
  bayescale fit runs.csv --n-col num_params --d-col tokens_seen --loss-col eval/loss --json
  bayescale fit runs.csv --law power --x-col steps --loss-col val_loss
  bayescale fit --dataset porian2024 --config all --by-group --out fits/
  bayescale fit runs.csv --method huber --bootstrap 1000
  bayescale fit --dataset porian2024 --config "Cosine decay" --method approach2 --bootstrap 400
"""
BACKTEST_EXAMPLES = """examples:
  bayescale backtest --dataset chinchilla --plot backtest.png
  bayescale backtest runs.csv --drop 1 2 --method huber --json
"""


def _add_plan_args(p) -> None:
    """Caps on the split and the data budget of ``allocate`` and ``decide``."""
    p.add_argument("--max-params", type=_positive, default=None,
                   help="cap on parameters N (the largest model that fits or serves)")
    p.add_argument("--max-tokens", type=_positive, default=None,
                   help="cap on training tokens D (the data there is)")
    p.add_argument("--unique-tokens", type=_positive, default=None,
                   help="law data_constrained: the unique tokens U there are (D / U epochs)")


def _add_law_args(g) -> None:
    g.add_argument("--law", default="chinchilla", choices=LAWS,
                   help="chinchilla: E + A/N^alpha + B/D^beta; chinchilla_tied: the same with "
                        "beta = alpha; kaplan: [(N_c/N)^(alpha_N/alpha_D) + D_c/D]^alpha_D; "
                        "power: E + A x^-alpha; power_pure: A x^-alpha; broken_power: E + "
                        "A x^-alpha (1 + (x/x_b)^(1/f))^(-delta f); log: a ln x + b; "
                        "data_constrained: Chinchilla in effective N and D given the unique "
                        "tokens U (--u-col; Muennighoff et al. 2023) (default: %(default)s)")


def _add_sampler_args(g) -> None:
    g.add_argument("--seed", type=_seed, default=0, help=SEED_HELP)
    g.add_argument("--chains", type=_at_least_one, default=4,
                   help="NUTS chains (run side by side, one per CPU device)")
    g.add_argument("--warmup", type=_at_least_one, default=1000,
                   help="warm-up (adaptation) transitions per chain")
    g.add_argument("--draws", type=_at_least_one, default=1000, help="draws kept per chain")


TASK_EXAMPLES = """examples:
  bayescale task fit --dataset olmo_ladder --task hellaswag_val --max-train-params 1e9 \\
      --N 3.2e9 --D 6.3e11 --target-accuracy 0.7 --out hellaswag.nc
  bayescale task predict hellaswag.nc --N 7e9 --D 4e12 --target-accuracy 0.75
  bayescale task fit curves.csv --loss-col bpb_arc --acc-col acc_arc --run-col run
"""


def _add_targets(p) -> None:
    p.add_argument("--N", type=_positive, action="append", default=[],
                   help="target parameters (repeat; pairs with --D)")
    p.add_argument("--D", type=_positive, action="append", default=[],
                   help="target tokens (repeat)")
    p.add_argument("--target-accuracy", type=float, default=None,
                   help="report P(accuracy >= this) at the targets and the least compute that "
                        "reaches it with --probability")
    p.add_argument("--probability", type=float, default=0.9,
                   help="required probability of reaching --target-accuracy")
    p.add_argument("--tokens-per-param", type=_positive, default=None,
                   help="with --target-accuracy: the D/N of the compute search (default: step "
                        "1's compute-optimal split)")
    p.add_argument("--level", type=float, default=0.9, help=LEVEL_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")


def _add_task_parser(sub) -> None:
    p = sub.add_parser("task", help="downstream accuracy: the two-step task model (task loss "
                                    "from N, D; accuracy from task loss)",
                       description="Fit task loss from (N, D) on each run's final checkpoint "
                                   "and accuracy from task loss on its checkpoints, then "
                                   "predict a target's accuracy with both steps' uncertainty.",
                       epilog=TASK_EXAMPLES)
    tsub = p.add_subparsers(dest="task_command", parser_class=_Parser,
                            help="fit: fit a task model; predict: from a saved task fit")
    f = tsub.add_parser("fit", help="fit a task model to training curves",
                        epilog=TASK_EXAMPLES)
    f.add_argument("file", nargs="?", help="table of checkpoints: one row per run and "
                                           "checkpoint (CSV, Parquet or JSON lines)")
    g = f.add_argument_group("data")
    g.add_argument("--dataset", help="a bundled dataset with tasks (olmo_ladder)")
    g.add_argument("--task", help="the task (bundled: see the error for the list; a file: a "
                                  "label, default the accuracy column)")
    g.add_argument("--loss-col", help="column of the task loss (bits per byte or nats)")
    g.add_argument("--acc-col", help="column of the task accuracy (0-1)")
    for flag, what in (("--n-col", "parameters N"), ("--d-col", "tokens seen D"),
                       ("--run-col", "run label"), ("--final-col", "1 on each run's last "
                                                                    "checkpoint")):
        g.add_argument(flag, help=f"column holding {what}")
    g.add_argument("--chance", type=float, default=None,
                   help="chance accuracy (1 / choices): the prior centre of the floor")
    g.add_argument("--max-train-params", type=_positive, default=None,
                   help="fit only the runs with at most this many parameters (a backtest of "
                        "larger ones)")
    g = f.add_argument_group("model")
    _add_law_args(g)
    g.add_argument("--link", default="sigmoid", choices=["sigmoid", "exponential"],
                   help="step 2: sigmoid (Bhagia et al. 2024) or exponential (Gadre et al. 2024)")
    g.add_argument("--steps", type=int, default=2, choices=[1, 2],
                   help="2: task loss then accuracy; 1: accuracy from compute (baseline)")
    g.add_argument("--no-check", action="store_true",
                   help="skip the predictability checks (the backtest refits cost about a fit)")
    g = f.add_argument_group("sampler")
    _add_sampler_args(g)
    g.add_argument("--target-accept", type=float, default=0.95, help="NUTS target acceptance")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    g = f.add_argument_group("output")
    g.add_argument("--out", help="save the task fit to this netCDF file")
    _add_targets(g)
    f.set_defaults(func=_cmd_task_fit)
    q = tsub.add_parser("predict", help="accuracy at targets from a saved task fit",
                        epilog=TASK_EXAMPLES)
    q.add_argument("fit", help="TASK.nc written by `bayescale task fit --out`")
    _add_targets(q)
    q.add_argument("--seed", type=_seed, default=0, help=SEED_HELP)
    q.set_defaults(func=_cmd_task_predict)
    p.set_defaults(func=lambda args: _fail("say `bayescale task fit` or `bayescale task predict` "
                                           "(see --help)"))


def _task_args_check(args) -> None:
    from bayescale.errors import FitError

    if len(args.N) != len(args.D):
        raise FitError(f"give as many --N as --D values (pairs); got {len(args.N)} and "
                       f"{len(args.D)}")
    if args.target_accuracy is not None and not 0 < args.target_accuracy < 1:
        raise FitError(f"--target-accuracy must lie in (0, 1), e.g. 0.7; got "
                       f"{args.target_accuracy}")
    if not 0 < args.probability < 1:
        raise FitError(f"--probability must lie in (0, 1), got {args.probability}")


def _load_task_data(args):
    from bayescale.errors import DataError

    if (args.file is None) == (args.dataset is None):
        raise DataError("give either a table of checkpoints or --dataset olmo_ladder")
    if args.dataset is not None:
        from bayescale.datasets import load_task

        if args.task is None:
            from bayescale.datasets import list_tasks

            raise DataError(f"--task is required with --dataset {args.dataset}; choose one of: "
                            f"{', '.join(list_tasks(args.dataset))}")
        data = load_task(args.dataset, args.task)
    else:
        from bayescale.data import read_table
        from bayescale.tasks import TaskData

        if args.loss_col is None or args.acc_col is None:
            raise DataError("name the task's columns: --loss-col (task loss) and --acc-col "
                            "(accuracy)")
        df = read_table(args.file)  # the reader of `fit`: read once, comments, delimiters
        data = TaskData.from_frame(df, loss_col=args.loss_col, accuracy_col=args.acc_col,
                                   n_col=args.n_col, d_col=args.d_col, run_col=args.run_col,
                                   final_col=args.final_col, task=args.task or "",
                                   chance=args.chance)
    if args.chance is not None and args.dataset is not None:
        import dataclasses

        data = dataclasses.replace(data, chance=args.chance)
    if args.max_train_params is not None:
        keep = data.N <= args.max_train_params
        if keep.sum() == 0:
            raise DataError(f"no run has at most --max-train-params {args.max_train_params:g} "
                            "parameters")
        data = data.subset(keep)
    return data


def _cmd_task_fit(args: argparse.Namespace) -> int:
    _task_args_check(args)
    if args.out:
        _output(args, args.out)
    data = _load_task_data(args)
    from bayescale.tasks import fit_task

    result = fit_task(data, law=args.law, link=args.link, steps=args.steps,
                      check=not args.no_check, chains=args.chains, warmup=args.warmup,
                      draws=args.draws, seed=args.seed, progress=not args.no_progress,
                      target_accept=args.target_accept)
    if args.out:
        result.save(args.out)
        print(f"bayescale: saved task fit to {args.out}", file=sys.stderr)
    return _task_output(result, args)


def _cmd_task_predict(args: argparse.Namespace) -> int:
    _task_args_check(args)
    from bayescale.tasks import load_task_fit

    result = load_task_fit(args.fit)
    if args.seed:
        result.seed = args.seed
    return _task_output(result, args)


def _task_output(result, args) -> int:
    out = result.to_dict()
    if args.N:
        pred = result.predict(args.N, args.D, level=args.level)
        out["predictions"] = pred.to_dict(args.level)["predictions"]
        out["level"] = args.level  # of the predictions' accuracy_lo/hi and task_loss_lo/hi
        if args.target_accuracy is not None:
            probs = pred.prob_at_least(args.target_accuracy)
            for row, p in zip(out["predictions"], probs):
                row["prob_at_least_target"] = float(p)
    if args.target_accuracy is not None:
        out["compute_for_target"] = result.compute_for_accuracy(
            args.target_accuracy, prob=args.probability,
            tokens_per_param=args.tokens_per_param).to_dict()
    if args.json:
        _print_json(out)
        return 0
    how = ("task loss from N, D (" + str(out["law"]) + "), then accuracy from task loss ("
           + result.link + ")") if result.steps == 2 else f"accuracy from compute ({result.link})"
    print(f"task {out['task']}: {how}; {out['runs']} runs, {out['checkpoints']} checkpoints in "
          "step 2")
    if not out["converged"]:
        print("warning: a step's sampler did not converge: refit with more --warmup and "
              "--draws before trusting these numbers")
    if result.flags:
        print("NOT PREDICTABLE: the accuracy of this task does not follow the two steps; do not "
              "trust the bands below:")
        for flag in result.flags:
            print(f"  - {flag}")
    else:
        print("checks passed (movement over noise, monotone, backtest of the largest size)")
    for row in out.get("predictions", []):
        extra = ("" if "prob_at_least_target" not in row else
                 f"; P(acc >= {args.target_accuracy:g}) = {row['prob_at_least_target']:.2f}")
        print(f"N={row['N']:.4g}, D={row['D']:.4g}: accuracy {row['accuracy']:.3f} "
              f"[{row['accuracy_lo']:.3f}, {row['accuracy_hi']:.3f}] ({args.level:.0%} band of a "
              f"new run); task loss {row['task_loss']:.4g} [{row['task_loss_lo']:.4g}, "
              f"{row['task_loss_hi']:.4g}]{extra}")
    if "compute_for_target" in out:
        c = out["compute_for_target"]
        if c["reached"]:
            print(f"compute for accuracy >= {c['target']:g} with probability {c['prob']:g}: "
                  f"C = {c['compute']:.3g} FLOPs (N = {c['N']:.3g}, D = {c['D']:.3g}; "
                  f"P = {c['achieved']:.2f})")
        else:
            print(f"accuracy >= {c['target']:g} is not reached with probability {c['prob']:g} "
                  f"within 1e6x the training compute (best P = {c['achieved']:.2f} at "
                  f"C = {c['compute']:.3g})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayescale", description="Bayesian inference of neural scaling laws.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--platform", choices=PLATFORMS, default=None, help=PLATFORM_HELP)
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("fit", help="fit a scaling law to training runs",
                       description="Fit a scaling law with NUTS and print its posterior.",
                       epilog=FIT_EXAMPLES)
    _add_data_args(p)
    g = p.add_argument_group("model")
    _add_law_args(g)
    g.add_argument("--noise", default="student_t", choices=["student_t", "normal"],
                   help="noise on log loss: student_t (robust to outlying runs, nu 2) or normal")
    g.add_argument("--nu", type=_nu, default=None,
                   help="the Student-t noise's degrees of freedom: a number fixes it (default 2; "
                        "4 or more gives lighter tails), 'learned' samples it under a Gamma(2, 0.1) "
                        "prior")
    g.add_argument("--repeats", default="auto", choices=["auto", "yes", "no"],
                   help="model repeated runs of a configuration (seeds) with a configuration "
                        "effect and seed noise: auto does when some N, D repeat")
    g.add_argument("--no-form-error", action="store_true",
                   help="take the law's form as exact beyond the data (no leave-future-out "
                        "refits; the bands before bayescale 0.2)")
    g.add_argument("--checkpoints", default="final", choices=["final", "all"],
                   help="training curves (--run-col, several rows per run): fit each run's "
                        "final checkpoint, or all checkpoints with a per-run effect")
    g.add_argument("--method", default="bayes",
                   choices=["bayes", "huber", "curve_fit", "ols", "approach1", "approach2"],
                   help="bayes (NUTS), a least-squares baseline, or Hoffmann's IsoFLOP "
                        "approaches 1 and 2 (N*(C) without a law; default: %(default)s)")
    g.add_argument("--bootstrap", type=_count, default=0,
                   help="least squares: bootstrap resamples for intervals (0: point estimate)")
    g = p.add_argument_group("groups")
    g.add_argument("--by-group", action="store_true",
                   help="fit each group of --group-col separately, all in one program")
    g.add_argument("--hierarchical", action="store_true",
                   help="with groups: share the law's exponents across them (implies --by-group)")
    g.add_argument("--retries", type=_count, default=0,
                   help="with --by-group: fit the groups that did not converge again with twice "
                        "the warm-up and draws, up to this many times")
    g = p.add_argument_group("sampler")
    _add_sampler_args(g)
    g.add_argument("--target-accept", type=float, default=0.95,
                   help="NUTS target acceptance; raise to 0.98-0.99 when divergences are "
                        "reported")
    g.add_argument("--no-more-chains", action="store_true",
                   help="keep the chains asked for even when their only shortfall is bulk ESS "
                        "< 400 (by default such a fit samples up to 3x --chains more, with "
                        "the compiled programs)")
    g = p.add_argument_group("output")
    g.add_argument("--out", help="save the fit to this netCDF file (with --by-group: a "
                                  "folder, one FIT.nc per group)")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g.add_argument("--level", type=float, default=0.95,
                   help="level of the central credible intervals printed")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("backtest", help="leave-future-out: refit below the top compute levels, "
                                        "score the predictions of the runs above",
                       description="Refit the law on the runs at or below each cutoff, predict "
                                   "the runs above, and score the new-run bands.",
                       epilog=BACKTEST_EXAMPLES)
    _add_data_args(p)
    g = p.add_argument_group("backtest")
    _add_law_args(g)
    g.add_argument("--by", choices=["C", "N", "D", "x", "U", "epochs"], default=None,
                   help="the axis to cut (default C; x for one-variable laws; epochs D/U for "
                        "data_constrained)")
    g.add_argument("--drop", type=int, nargs="+", default=[1, 2, 3],
                   help="hold out the top K levels of the axis, one split each")
    g.add_argument("--cutoff", type=_positive, action="append", default=[],
                   help="instead of --drop: the largest value trained on (repeat)")
    g.add_argument("--method", default="bayes", choices=["bayes", "huber", "curve_fit", "ols"],
                   help="bayes (NUTS, form error included) or a least-squares baseline")
    g.add_argument("--bootstrap", type=_count, default=200,
                   help="least squares: bootstrap resamples")
    g = p.add_argument_group("sampler")
    _add_sampler_args(g)
    g = p.add_argument_group("output")
    g.add_argument("--plot", help="write the calibration and error plot to this file "
                                  "(.png, .pdf or .svg)")
    g.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    g.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_backtest)

    p = sub.add_parser("summary", help="print the posterior of a saved fit")
    p.add_argument("fit", help="FIT.nc written by `bayescale fit --out`, or the folder of "
                                "`bayescale fit --by-group --out`")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--level", type=float, default=0.95, help=LEVEL_HELP)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("datasets", help="list the bundled datasets with citations")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_cmd_datasets)

    p = sub.add_parser("predict", help="loss of new runs from a saved fit, with intervals")
    p.add_argument("fit", help="FIT.nc written by `bayescale fit --out`")
    p.add_argument("--N", type=_positive, action="append", default=[], help="parameters (repeat)")
    p.add_argument("--D", type=_positive, action="append", default=[], help="tokens (repeat)")
    p.add_argument("--x", type=_positive, action="append", default=[], help="one-variable input")
    p.add_argument("--compute", type=_positive, action="append", default=[],
                   help="FLOPs: predict at the compute-optimal split")
    p.add_argument("--unique-tokens", type=_positive, default=None,
                   help="law data_constrained: the unique tokens U there are (D / U epochs)")
    p.add_argument("--level", type=float, default=0.95, help=LEVEL_HELP)
    p.add_argument("--seed", type=_seed, default=0, help=SEED_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--csv", action="store_true",
                   help="print a tidy CSV table on stdout instead (one row per point or budget "
                        "and quantity)")
    p.set_defaults(func=_cmd_predict)

    p = sub.add_parser("allocate", help="compute-optimal N/D split with its posterior")
    p.add_argument("fit", help="FIT.nc written by `bayescale fit --out`")
    p.add_argument("--compute", type=_positive, action="append", required=True,
                   help="training budget in FLOPs (repeat for several)")
    p.add_argument("--flops-per-param-token", type=_positive, default=None,
                   help="k in C = k N D (default: the fit's, 6)")
    _add_plan_args(p)
    p.add_argument("--level", type=float, default=0.95, help=LEVEL_HELP)
    p.add_argument("--allow-unconverged", action="store_true",
                   help="allocate even when the fit did not converge")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--csv", action="store_true",
                   help="print a tidy CSV table on stdout instead (one row per point or budget "
                        "and quantity)")
    p.set_defaults(func=_cmd_allocate)

    p = sub.add_parser("decide", help="risk-aware budget decisions from a saved fit")
    p.add_argument("fit", help="FIT.nc written by `bayescale fit --out`")
    p.add_argument("--compute", type=_positive, help="budget in FLOPs to split between N and D")
    p.add_argument("--objective", default="expected",
                   help="expected | quantile:Q | cvar:Q | mean_std:LAMBDA")
    p.add_argument("--target-loss", type=_positive, help="find the compute that reaches this loss")
    p.add_argument("--probability", type=float, default=0.9,
                   help="required probability of reaching --target-loss")
    _add_plan_args(p)
    p.add_argument("--level", type=float, default=0.95, help=LEVEL_HELP)
    p.add_argument("--seed", type=_seed, default=0, help=SEED_HELP)
    p.add_argument("--allow-unconverged", action="store_true",
                   help="decide even when the fit did not converge")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--csv", action="store_true",
                   help="print a tidy CSV table on stdout instead (one row per point or budget "
                        "and quantity)")
    p.set_defaults(func=_cmd_decide)

    _add_task_parser(sub)

    p = sub.add_parser("compare", help="rank fits of the same runs by PSIS-LOO")
    p.add_argument("fits", nargs="+", help="two or more FIT.nc files")
    p.add_argument("--lfo", action="store_true",
                   help="also weigh the laws by how their own leave-future-out refits predicted "
                        "the runs beyond (stacking; needs fits made with their form error)")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(func=_cmd_compare)

    p = sub.add_parser("report", help="write a fit's report as one self-contained HTML file")
    p.add_argument("fit", help="FIT.nc written by `bayescale fit --out`, the folder of "
                                "`bayescale fit --by-group --out` (one page, every group), or "
                                "TASK.nc of `bayescale task fit --out`")
    p.add_argument("--out", required=True, help="HTML file to write")
    p.add_argument("--compute", type=_positive, action="append", default=[],
                   help="budget in FLOPs for the allocation table (repeat; default the first "
                        "power of ten above the runs' largest, and 10x and 100x it)")
    p.add_argument("--level", type=float, default=0.95, help=LEVEL_HELP)
    p.set_defaults(func=_cmd_report)
    for command in sub.choices.values():  # also after the command: bayescale fit ... --platform
        command.add_argument("--platform", choices=PLATFORMS, default=argparse.SUPPRESS,
                             help=PLATFORM_HELP)
    return parser


def _showwarning(message, category, filename, lineno, file=None, line=None):
    print(f"bayescale: warning: {message}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayescale`` console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.version:
        from bayescale import __version__

        print(__version__)
        return 0
    if args.command is None:
        parser.print_help()
        return 2
    platform = getattr(args, "platform", None)
    problem = None
    if platform:
        problem = select_platform(platform)
    elif (os.environ.get("JAX_PLATFORMS", "").strip().lower() not in ("", "cpu")
          and args.command != "datasets"):  # JAX starts its CPU backend everywhere
        problem = _check_jax_platforms(os.environ["JAX_PLATFORMS"].strip())
    if problem:
        return _fail(problem)
    if getattr(args, "level", None) is not None and not 0 < args.level < 1:
        return _fail(f"--level must be between 0 and 1 (e.g. 0.95), got {args.level}")
    warnings.showwarning = _showwarning
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    return _interruptible(args)


def _interruptible(args: argparse.Namespace) -> int:
    """Run the command in a worker thread, so that Ctrl-C and SIGTERM act at once.

    Python handles signals in the main thread only, between bytecodes: inside a long call into
    XLA (a compile) or HDF5 a Ctrl-C waited up to 18 s, and one that landed in a callback was
    printed as "Exception ignored" and lost. Here the main thread only waits; on a signal it
    removes the temporary files of unfinished writes, prints one line and exits with status 2
    (finished files are complete: they are renamed into place only once written).
    """
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread() or os.environ.get(
            "BAYESCALE_DEBUG"):
        return _dispatch(args)
    status: list[int] = []
    worker = threading.Thread(target=lambda: status.append(_dispatch(args)),
                              name="bayescale-command", daemon=True)

    def terminate(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        worker.start()
        while worker.is_alive():
            worker.join(0.1)
    except KeyboardInterrupt:
        from bayescale.io import remove_partial_files, written_files

        remove_partial_files()
        done = written_files()
        _fail("interrupted; " + (f"{', '.join(done)} had been written in full, nothing else was"
                                 if done else "no output file was written"))
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(2)  # the worker may be inside XLA: do not wait for it
    finally:
        signal.signal(signal.SIGTERM, previous)
    return status[0] if status else 2


def _dispatch(args: argparse.Namespace) -> int:
    """The command's exit status; errors become one line (a traceback with BAYESCALE_DEBUG)."""
    _NOTES.clear()
    try:
        status = args.func(args)
        for note in _NOTES:
            print(note, file=sys.stderr)
        return status
    except KeyboardInterrupt:
        return _fail("interrupted; no output file was written")
    except BrokenPipeError:  # `bayescale ... | head`: the reader has what it wanted
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # nothing more to flush at exit either
        return 0
    except Exception as err:  # noqa: BLE001 - one line for users, traceback on request
        if os.environ.get("BAYESCALE_DEBUG"):
            raise
        from bayescale.errors import BayescaleError

        if isinstance(err, BayescaleError):
            return _fail(str(err))
        if isinstance(err, RuntimeError) and "initialize backend" in str(err):
            return _fail(f"JAX could not start its backend ({str(err).splitlines()[0]}); check "
                         f"JAX_PLATFORMS={os.environ.get('JAX_PLATFORMS', '')!r} (unset it to let "
                         "JAX choose) or pass --platform cpu")
        return _fail(f"{type(err).__name__}: {err} (set BAYESCALE_DEBUG=1 for a traceback)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
