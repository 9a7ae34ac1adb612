"""The ``bayescale`` command line: the same functions the notebooks call.

Errors a user can cause print one line on stderr and exit with status 2, never a traceback
(set ``BAYESCALE_DEBUG=1`` to see one). With ``--json``, stdout holds exactly one JSON object.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

__all__ = ["main", "build_parser"]


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2
        raise SystemExit(_fail(f"{self.prog}: {message} (see --help)"))


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
def _add_data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("file", nargs="?", help="CSV of training runs (one row per run)")
    p.add_argument("--dataset", help="a bundled dataset instead of a file (see `bayescale datasets`)")
    p.add_argument("--all-rows", action="store_true",
                   help="chinchilla: keep the 5 outliers Epoch AI dropped; datablations: keep "
                        "multi-epoch runs")
    p.add_argument("--config", default="Optimizer tuning (no decay)",
                   help="porian2024 configuration label")
    p.add_argument("--corpus", default="rw", help="porian2024 corpus: rw or owt2")
    for flag, what in (("--n-col", "parameters N"), ("--d-col", "training tokens D"),
                       ("--c-col", "training FLOPs C"), ("--loss-col", "final loss"),
                       ("--x-col", "input x of a one-variable law"),
                       ("--group-col", "group label"), ("--seed-col", "seed label")):
        p.add_argument(flag, help=f"column holding {what}")
    p.add_argument("--flops-per-param-token", type=float, default=6.0,
                   help="k in C = k N D (default 6)")


def _load_data(args: argparse.Namespace):
    from bayescale.data import ScalingData
    from bayescale.datasets import load_dataset
    from bayescale.errors import DataError

    if (args.file is None) == (args.dataset is None):
        raise DataError("give either a CSV file or --dataset NAME (see `bayescale datasets`)")
    if args.dataset is not None:
        return load_dataset(args.dataset, all=args.all_rows, config=args.config,
                            corpus=args.corpus)
    cols = {k: getattr(args, k) for k in ("n_col", "d_col", "c_col", "loss_col", "x_col",
                                           "group_col", "seed_col")}
    return ScalingData.from_csv(args.file, flops_per_param_token=args.flops_per_param_token,
                                **cols)


# ------------------------------------------------------------------------------------ commands
def _cmd_fit(args: argparse.Namespace) -> int:
    from bayescale.inference import fit

    data = _load_data(args)
    if args.method != "bayes":
        return _fit_lsq(args, data)
    result = fit(data, args.law, noise=args.noise, chains=args.chains, warmup=args.warmup,
                 draws=args.draws, seed=args.seed, progress=not args.no_progress)
    if args.out:
        result.save(args.out)
        print(f"bayescale: saved fit to {args.out}", file=sys.stderr)
    _report_fit(result.to_dict(args.level), args.json, formula=result.law.formula,
                seconds=result.seconds)
    return 0


def _fit_lsq(args: argparse.Namespace, data) -> int:
    from bayescale.baselines import fit_lsq_data

    result = fit_lsq_data(args.method, args.law, data, bootstrap=args.bootstrap, seed=args.seed)
    _report_fit(result.to_dict(args.level), args.json, seconds=result.seconds)
    return 0


def _report_fit(out: dict[str, Any], as_json: bool, *, formula: str = "",
                seconds: float | None = None) -> None:
    if as_json:
        _print_json(out)
        return
    head = f"law {out['law']}" + (f": {formula}" if formula else "")
    print(f"{head}\n{out['n_points']} runs" + (f", sampled in {seconds:.1f} s" if seconds else ""))
    print(_interval_table(out["params"], out["level"]))
    if "diagnostics" in out:
        print(_diagnostics_line(out["diagnostics"]))


def _cmd_summary(args: argparse.Namespace) -> int:
    from bayescale.inference import load_fit

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


# ------------------------------------------------------------------------------------ parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="bayescale", description="Bayesian inference of neural scaling laws.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", parser_class=_Parser)

    p = sub.add_parser("fit", help="fit a scaling law to training runs",
                       description="Fit a scaling law with NUTS and print its posterior.")
    _add_data_args(p)
    p.add_argument("--law", default="chinchilla",
                   choices=["chinchilla", "kaplan", "power", "power_pure"])
    p.add_argument("--noise", default="student_t", choices=["student_t", "normal"])
    p.add_argument("--method", default="bayes", choices=["bayes", "huber", "curve_fit", "ols"],
                   help="bayes (NUTS) or a least-squares baseline")
    p.add_argument("--bootstrap", type=int, default=0,
                   help="least squares: bootstrap resamples for intervals (0: point estimate)")
    p.add_argument("--out", help="save the fit to this netCDF file")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--warmup", type=int, default=1000)
    p.add_argument("--draws", type=int, default=1000)
    p.add_argument("--level", type=float, default=0.95, help="credible interval level")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_cmd_fit)

    p = sub.add_parser("summary", help="print the posterior of a saved fit")
    p.add_argument("fit", help="FIT.nc written by `bayescale fit --out`")
    p.add_argument("--json", action="store_true")
    p.add_argument("--level", type=float, default=0.95)
    p.set_defaults(func=_cmd_summary)

    p = sub.add_parser("datasets", help="list the bundled datasets with citations")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=_cmd_datasets)
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
    if getattr(args, "level", None) is not None and not 0 < args.level < 1:
        return _fail(f"--level must be between 0 and 1 (e.g. 0.95), got {args.level}")
    warnings.showwarning = _showwarning
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        return _fail("interrupted; no output file was written")
    except Exception as err:  # noqa: BLE001 - one line for users, traceback on request
        if os.environ.get("BAYESCALE_DEBUG"):
            raise
        from bayescale.errors import BayescaleError

        if isinstance(err, BayescaleError):
            return _fail(str(err))
        return _fail(f"{type(err).__name__}: {err} (set BAYESCALE_DEBUG=1 for a traceback)")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
