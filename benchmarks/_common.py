"""Shared pieces of the benchmark scripts: arguments, table header, metrics, atomic output.

Each script in ``benchmarks/`` is run as ``python benchmarks/<study>.py [--quick] [--out DIR]``;
this module sits beside them, so ``import _common`` finds it. Nothing here samples or fits.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from scipy import stats
from scipy.special import logsumexp

from bayescale.io import atomic_write_text

__all__ = ["RESULTS", "LEVELS", "parse_args", "now", "header", "markdown_table", "write_table",
           "write_text", "save_png", "residual_sigma", "heldout_points", "aggregate",
           "log_pred_density", "coverage_cell", "form_error_variants"]

RESULTS = Path(__file__).resolve().parent / "results"
#: Central interval masses whose coverage the studies report.
LEVELS = (0.5, 0.8, 0.9, 0.95)


def parse_args(description: str, argv: Sequence[str] | None = None,
               extra: Sequence[tuple[tuple, dict]] = ()) -> argparse.Namespace:
    """``--quick`` (tiny smoke version) and ``--out DIR`` (default ``benchmarks/results``)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true",
                        help="tiny smoke version (seconds; the numbers mean nothing)")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help="folder for the table and figure (default benchmarks/results)")
    for args, kwargs in extra:
        parser.add_argument(*args, **kwargs)
    return parser.parse_args(argv)


def _command() -> str:
    script = Path(sys.argv[0])
    try:
        script = script.resolve().relative_to(Path.cwd())
    except ValueError:
        script = Path("benchmarks") / script.name
    return shlex.join(["python", str(script), *sys.argv[1:]])


def timed(cmd: list[str], env: dict) -> float:
    """Seconds of one process running ``cmd``; a failure raises with the end of its stderr."""
    return timed_cpu(cmd, env)[0]


def timed_cpu(cmd: list[str], env: dict) -> tuple[float, float]:
    """Wall-clock and CPU seconds (user + system, all its threads and children) of one process
    running ``cmd``; a failure raises with the end of its stderr."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return seconds, cpu


def now() -> str:
    """The local date and time as the tables' headers print it."""
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def header(title: str, *, seconds: float | None = None, notes: Sequence[str] = ()) -> str:
    """Markdown title plus the command, date, machine and run time that produced the table."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines = [
        f"# {title}",
        "",
        f"- Command: `{_command()}`",
        f"- Date: {now()}",
        f"- Machine: {platform.platform()}, Python {platform.python_version()}, "
        f"{os.cpu_count()} cores (load average at the end {load})",
    ]
    if seconds is not None:
        lines.append(f"- Run time of the whole study: {seconds:.0f} s")
    lines += [f"- {n}" for n in notes]
    return "\n".join(lines) + "\n"


def markdown_table(rows: Sequence[Mapping[str, object]], columns: Sequence[str]) -> str:
    """A GitHub markdown table; floats are printed with 4 significant digits."""

    def fmt(v):
        if isinstance(v, (float, np.floating)):
            return "nan" if not np.isfinite(v) else f"{v:.4g}"
        return str(v)

    out = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    out += ["| " + " | ".join(fmt(r.get(c, "")) for c in columns) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _readable(path: Path) -> None:
    """Give a file written through ``mkstemp`` (mode 0600) the usual mode under the umask."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_text(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` atomically, readable as any new file would be."""
    path = atomic_write_text(path, text)
    _readable(path)
    print(f"wrote {path}")
    return path


def write_table(out: Path, name: str, text: str) -> Path:
    """Print ``text`` and write it to ``out/name`` atomically."""
    print(text)
    return write_text(Path(out) / name, text)


def save_png(fig, path: Path) -> Path:
    """Save a matplotlib figure beside its target under a temporary name, then rename it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=120, bbox_inches="tight")
        _readable(Path(tmp))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    print(f"wrote {path}")
    return path


def residual_sigma(log_loss: np.ndarray, log_pred: np.ndarray, n_params: int) -> float:
    r"""Residual scale of a least-squares point fit on log loss,
    :math:`\hat\sigma = \sqrt{\sum_i r_i^2 / (n - p)}`: the Gaussian noise the baselines add to
    their bootstrap draws to predict a new run."""
    r = np.asarray(log_loss) - np.asarray(log_pred)
    return float(np.sqrt(np.sum(r**2) / max(r.size - n_params, 1)))


def log_pred_density(y: np.ndarray, mu: np.ndarray, sigma, nu) -> np.ndarray:
    r"""Log predictive density of each held-out log loss, averaged over draws.

    :math:`\log \frac1S \sum_s p(y_j \mid \mu_{sj}, \sigma_s, \nu)` with ``p`` Student-t
    (``nu`` finite) or Gaussian (``nu`` None or inf). ``mu`` is (S, P) log loss; ``sigma`` and
    ``nu`` are scalars or (S,) draws. Returns (P,).
    """
    mu = np.asarray(mu, float)
    sigma = np.broadcast_to(np.asarray(sigma, float), (mu.shape[0],))[:, None]
    if nu is None or np.all(np.isinf(np.asarray(nu, float))):
        lp = stats.norm.logpdf(y[None, :], loc=mu, scale=sigma)
    else:
        nu = np.broadcast_to(np.asarray(nu, float), (mu.shape[0],))[:, None]
        lp = stats.t.logpdf(y[None, :], df=nu, loc=mu, scale=sigma)
    return logsumexp(lp, axis=0) - np.log(mu.shape[0])


def heldout_points(y: np.ndarray, point: np.ndarray, new_run: np.ndarray, law: np.ndarray,
                   sigma, nu) -> dict[str, np.ndarray]:
    """Per held-out run: squared error, interval hits, 90% width and log predictive density.

    All on log loss (natural log of the loss in nats).

    Parameters
    ----------
    y: observed held-out log losses, (P,).
    point: the method's point prediction of log loss, (P,).
    new_run: draws of a new run's loss in nats, (S, P) (a law draw times noise).
    law: draws of the law's loss in nats, (S, P).
    sigma, nu: the noise the method assumes on log loss (see :func:`log_pred_density`).

    Returns
    -------
    ``sq_err``, ``hit50`` .. ``hit95`` (inside the central new-run interval), ``width90`` (width
    of the 90% new-run interval of log loss) and ``lpd``, each (P,). :func:`aggregate` pools them.
    """
    y = np.asarray(y, float)
    out = {"sq_err": (np.asarray(point, float) - y) ** 2}
    log_new = np.log(new_run)
    for level in LEVELS:
        lo, hi = np.quantile(log_new, [(1 - level) / 2, (1 + level) / 2], axis=0)
        out[f"hit{round(level * 100)}"] = (y >= lo) & (y <= hi)
        if level == 0.9:
            out["width90"] = hi - lo
    out["lpd"] = log_pred_density(y, np.log(law), sigma, nu)
    return out


def aggregate(points: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
    """Pool :func:`heldout_points` of one or more fits: n_test, rmse, cov50..cov95, cal_err (mean
    absolute gap between coverage and nominal level), width90 and mlpd (means over runs)."""
    pooled = {k: np.concatenate([np.atleast_1d(p[k]) for p in points]) for k in points[0]}
    out = {"n_test": int(pooled["sq_err"].size), "rmse": float(np.sqrt(pooled["sq_err"].mean()))}
    gaps = []
    for level in LEVELS:
        cov = float(pooled[f"hit{round(level * 100)}"].mean())
        out[f"cov{round(level * 100)}"] = cov
        gaps.append(abs(cov - level))
    out["cal_err"] = float(np.mean(gaps))
    out["width90"] = float(pooled["width90"].mean())
    out["mlpd"] = float(pooled["lpd"].mean())
    return out


def coverage_cell(hits: np.ndarray) -> str:
    """``"0.91 ± 0.03"``: share of True and its binomial standard error."""
    hits = np.asarray(hits, bool)
    p = hits.mean()
    return f"{p:.2f} ± {np.sqrt(p * (1 - p) / hits.size):.2f}"


def form_error_variants() -> list[tuple[str, object]]:
    """The form-error priors whose trade-off two studies measure on the same list: the shipped
    :data:`bayescale.extrapolation.PRIOR` and narrower ones (smaller slope scale c, smaller
    run-to-run scatter, and a wider log c sd that lets a study's own refits pick c).
    ``calibration.py`` measures each one's width and coverage where the law is exactly right,
    ``prior_surface.py`` its held-out density and coverage on the real splits. Label, prior."""
    import dataclasses
    import math

    from bayescale.extrapolation import PRIOR

    def variant(c, scatter, sd=PRIOR.log_c_sd):
        return dataclasses.replace(PRIOR, log_c_mean=math.log(c), scatter=scatter, log_c_sd=sd)

    out = [("c 16, scatter 1 (shipped)", PRIOR)]
    out += [(f"c {c:g}, scatter {s:g}", variant(c, s))
            for c, s in ((8, 1), (4, 1), (2, 1), (16, 0.5), (16, 0), (8, 0.5), (4, 0.5),
                         (4, 0), (2, 0.5), (2, 0), (1, 0))]
    out += [("c 4, scatter 0.5, log c sd 1.5", variant(4, 0.5, 1.5)),
            ("c 2, scatter 0, log c sd 1.5", variant(2, 0.0, 1.5))]
    return out
