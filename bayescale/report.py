"""A fit as one self-contained HTML page: tables and plots, images embedded as base64 PNG.

``bayescale report FIT.nc --out report.html --compute 1e24`` calls :func:`write_report`; the page
needs no other file and no network, so it can be mailed or attached to an issue as it is.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from bayescale._plotting import human, input_values, source
from bayescale.errors import FitError
from bayescale.summaries import check_level, interval

__all__ = ["write_report", "render_report", "render_task_report", "default_budgets",
           "sci_html"]

_CSS = """
body { font-family: system-ui, sans-serif; max-width: 980px; margin: 2em auto; color: #222;
       line-height: 1.45; padding: 0 1em; }
h1 { font-size: 1.6em; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; margin: .6em 0; font-size: .92em; }
th, td { padding: .25em .8em; text-align: right; border-bottom: 1px solid #eee; }
th:first-child, td:first-child { text-align: left; }
code { background: #f4f4f4; padding: 0 .25em; }
.ok { color: #17612a; font-weight: 600; } .bad { color: #a31515; font-weight: 600; }
.warn { background: #fdecea; border-left: 4px solid #a31515; padding: .6em 1em; }
figure { margin: 1em 0; } figure img { max-width: 100%; }
figcaption { color: #555; font-size: .9em; }
.muted { color: #666; font-size: .9em; }
"""


def default_budgets(fit) -> tuple[float, ...]:
    """The first power of ten above the runs' largest budget, and 10 and 100 times it (FLOPs):
    1-10x, 10-100x and 100-1000x the largest, within the 3 decades past which a prediction
    warns (:data:`bayescale.extrapolation.FAR`); for a one-variable law the same of x."""
    post, data = source(fit)
    largest = float(np.max(input_values(post, data, "C" if post.law.inputs == ("N", "D")
                                        else "x")))
    base = 10.0 ** (math.floor(math.log10(largest)) + 1)  # above it, even when it is one
    return tuple(base * 10.0**i for i in range(3))


def _fmt(v: float) -> str:
    """4 significant digits; from 1e5 on as a power of ten (HTML)."""
    if v is None or not math.isfinite(v):
        return "-"
    return sci_html(v) if abs(v) >= 1e5 else f"{v:.4g}"


def _table(rows: Sequence[Sequence[str]], header: Sequence[str]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(fig_or_ax, caption: str) -> str:
    import matplotlib.pyplot as plt

    if isinstance(fig_or_ax, tuple):
        fig_or_ax = fig_or_ax[0]
    fig = getattr(fig_or_ax, "figure", fig_or_ax)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    data = base64.b64encode(buf.getvalue()).decode("ascii")
    return (f'<figure><img alt="{html.escape(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _ci(draws, level: float) -> str:
    m, lo, hi = interval(np.ravel(draws), level)
    return f"{_fmt(float(m))} <span class=muted>[{_fmt(float(lo))}, {_fmt(float(hi))}]</span>"


def _domain_section(post) -> str:
    """Without the runs: the ranges of the training domain the posterior carries."""
    if post.domain is None:
        return "<h2>Data</h2><p>The runs behind this posterior are not given.</p>"
    rows = [[html.escape(name), _fmt(lo), _fmt(hi)] for name, (lo, hi) in
            post.domain.ranges.items()]
    return ("<h2>Data</h2><p>Training domain of the runs behind this posterior.</p>"
            + _table(rows, ["input", "min", "max"]))


def _draws_section(post, level: float) -> str:
    """Without a sampler: the posterior's draws of each parameter and of the noise."""
    pct = f"{100 * level:g}%"
    names = [*post.params, "sigma"] + (["sigma_fit"] if post.sigma_fit is not None else [])
    rows = [[f"<code>{html.escape(n)}</code>", _ci(post.draws(n), level)] for n in names]
    return (f"<h2>Posterior</h2><p>Law <code>{html.escape(post.law.formula)}</code>, "
            f"{post.size} draws.</p>" + _table(rows, ["parameter", f"median [{pct}]"]))


def _data_section(fit) -> str:
    d = fit.data
    rows = [[html.escape(name), _fmt(float(v.min())), _fmt(float(v.max()))]
            for name, v in (("loss (nats)", d.loss), ("parameters N", d.N),
                            ("training tokens D", d.D), ("compute C (FLOPs)", d.C), ("x", d.x))
            if v is not None]
    cite = f"<p class=muted>Source: {html.escape(d.citation)}</p>" if d.citation else ""
    name = html.escape(d.name or "runs")
    return (f"<h2>Data</h2><p><b>{name}</b>: {d.n_points} training runs.</p>"
            + _table(rows, ["quantity", "min", "max"]) + cite)


def _posterior_section(fit, level: float) -> str:
    pct = f"{100 * level:g}%"
    table = fit.summary(level)
    rows = [[f"<code>{html.escape(str(n))}</code>", *(_fmt(float(r[c])) for c in
             ("median", "mean", "sd", "lo", "hi"))] for n, r in table.iterrows()]
    o = fit.options
    return (f"<h2>Posterior</h2><p>Law <code>{html.escape(fit.law.formula)}</code>, "
            f"{html.escape(fit.noise)} noise on log loss"
            + (", seed-to-seed noise learnt from repeated runs" if fit.repeats else "")
            + f". NUTS: {o.get('chains')} chains of {o.get('warmup')} warm-up + {o.get('draws')} "
            f"draws"
            + (f" and {o['added_chains']} more sampled for the effective sample size"
               if o.get("added_chains") else "")
            + f", seed {fit.seed}, {fit.seconds:.1f} s.</p>"
            + _table(rows, ["parameter", "median", "mean", "sd", f"{pct} lo", f"{pct} hi"]))


def _checks_section(fit, level: float) -> str:
    from bayescale import plots

    pct = f"{100 * level:g}%"
    return ("<h2>Checks of the fit</h2>"
            + _figure(plots.plot_residuals(fit, level=level)[0],
                      f"Residuals on log loss (run minus the posterior-median law) against each "
                      f"input, with {pct} of a new run's noise around 0: a trend is the law's "
                      "misfit.")
            + _figure(plots.plot_ppc(fit, level=level),
                      f"Posterior predictive check: each run against the {pct} interval of a "
                      f"run at its inputs; about {pct} should fall inside."))


def _diagnostics_section(fit) -> str:
    from bayescale.plots import plot_diagnostics

    d = fit.diagnostics
    verdict = ("<span class=ok>converged</span>" if d["converged"] else
               "<span class=bad>NOT converged: do not trust this posterior yet</span>")
    rows = [["max R-hat (≤ 1.01)", _fmt(d["max_rhat"])],
            ["min bulk ESS (≥ 400)", _fmt(d["min_ess_bulk"])],
            ["divergent transitions (0)", str(d["divergences"])]]
    return ("<h2>Diagnostics</h2>" + _table(rows, ["check", "value"]) + f"<p>{verdict}</p>"
            + _figure(plot_diagnostics(fit, "trace"), "Posterior densities and traces per chain.")
            + _figure(plot_diagnostics(fit, "rank"),
                      "Rank histograms per chain: flat when the chains mix."))


def _allocation_section(fit, budgets, level: float) -> str:
    from bayescale import plots
    from bayescale.allocation import compute_optimal
    from bayescale.predict import predict

    post, data = source(fit)
    alloc = compute_optimal(post, budgets, warn=False)
    pred = predict(post, C=budgets, level=level)
    rows = [[sci_html(c), _ci(alloc.N_opt[:, j], level), _ci(alloc.D_opt[:, j], level),
             _ci(alloc.tokens_per_param[:, j], level), _ci(pred.law_draws[:, j], level),
             _ci(pred.new_run_draws[:, j], level)] for j, c in enumerate(alloc.compute)]
    pct = f"{100 * level:g}%"
    top = float(np.max(budgets))
    runs_c = input_values(post, data, "C")
    lo_c = float(np.min(runs_c))
    inside = np.geomspace(10 * lo_c, float(np.max(runs_c)), 3)
    iso = sorted({*(float(f"{c:.2g}") for c in inside), *budgets})
    return ("<h2>Compute-optimal allocation</h2>"
            f"<p>Median and {pct} interval of each quantity at each budget; the loss of the law "
            "at each draw's optimal split, and of one new training run there.</p>"
            + _table(rows, ["C (FLOPs)", "parameters N*", "tokens D*", "D*/N*", "law loss (nats)",
                            "new-run loss (nats)"])
            + _figure(plots.plot_frontier(fit, (lo_c, top), level=level),
                      "Compute-optimal parameters and tokens against compute; the grey span "
                      "is the range of the runs' budgets.")
            + _figure(plots.plot_isoflop(fit, iso, level=level),
                      "IsoFLOP profiles with each budget's optimal model size (median and "
                      "interval); crosses are runs within 12% of a budget.")
            + _figure(plots.plot_tokens_per_param(fit, top, level=level),
                      f"Posterior of the compute-optimal tokens per parameter at {human(top)} "
                      "FLOPs, the plug-in value and the 20 tokens/parameter rule."))


def sci_html(v: float) -> str:
    """``5.76e23`` as 5.76&times;10<sup>23</sup> (3 significant digits)."""
    exp = math.floor(math.log10(abs(v)))
    mant = float(f"{v / 10**exp:.3g}")
    if abs(mant) >= 10:
        mant, exp = mant / 10, exp + 1
    return (f"{mant:g}&times;" if abs(mant - 1) > 1e-9 else "") + f"10<sup>{exp}</sup>"


def _prediction_section(fit, points, level: float) -> str:
    from bayescale.plots import plot_diagnostics
    from bayescale.predict import predict

    pred = predict(fit, x=points, level=level)
    rows = [[_fmt(x), _ci(pred.law_draws[:, j], level), _ci(pred.new_run_draws[:, j], level)]
            for j, x in enumerate(points)]
    pairs = (_figure(plot_diagnostics(fit, "pair"), "Pairwise posterior draws.")
             if hasattr(fit, "idata") else "")
    return ("<h2>Predictions</h2>"
            + _table(rows, ["x", "law loss (nats)", "new-run loss (nats)"]) + pairs)


def render_report(fit, *, budgets: Sequence[float] | None = None, level: float = 0.95) -> str:
    """The HTML text of :func:`write_report`."""
    from bayescale import __version__, plots

    level = check_level(level)
    post, data = source(fit)
    sampled = hasattr(fit, "diagnostics")  # a ScalingFit: runs, sampler and versions to show
    budgets = np.sort(np.atleast_1d(np.asarray(
        default_budgets(fit) if budgets is None or len(budgets) == 0 else budgets, dtype=float)))
    if budgets.ndim != 1 or not np.all(np.isfinite(budgets) & (budgets > 0)):
        what = "budgets (FLOPs)" if post.law.inputs == ("N", "D") else "values of x"
        raise FitError(f"report {what} must be positive numbers; got {budgets.tolist()}")
    two = post.law.inputs == ("N", "D")
    title = f"{post.law.name} scaling law" + (f" on {data.name}" if data and data.name else "")
    warn = "" if not sampled or fit.diagnostics["converged"] else (
        "<p class=warn>The sampler did not converge (see Diagnostics): refit with more warm-up "
        "and draws before using these numbers.</p>")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        extrap = _figure(plots.plot_fit(fit, extrapolate_to=float(budgets[-1]), level=level),
                         f"Runs, posterior median law and {100 * level:g}% bands (law: dark; a "
                         "new run: grey, dashed edges), extrapolated to the largest budget.")
        said = (f"<p class=muted>Every interval and band is a central {100 * level:g}% "
                f"credible interval (from the {50 * (1 - level):g}% to the "
                f"{100 - 50 * (1 - level):g}% quantile of the posterior), as in bayescale's "
                "command-line output at the same level.</p>")
        body = [f"<h1>{html.escape(title)}</h1>", warn, said,
                _data_section(fit) if sampled else _domain_section(post),
                _posterior_section(fit, level) if sampled else _draws_section(post, level),
                "<h2>Extrapolation</h2>", extrap,
                (_allocation_section(fit, budgets, level) if two
                 else _prediction_section(fit, budgets, level)),
                _checks_section(fit, level) if sampled else "",
                _diagnostics_section(fit) if sampled else ""]
    made = ""
    if sampled:
        versions = ", ".join(f"{k} {v}" for k, v in fit.versions.items())
        made = f"; fit made with {html.escape(versions)}"
    body.append(f"<p class=muted>Written by bayescale {html.escape(__version__)}{made}.</p>")
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def render_group_report(fits, *, budgets: Sequence[float] | None = None,
                        level: float = 0.95) -> str:
    """One HTML page for the fits of :func:`bayescale.fit_many` (or ``bayescale fit --by-group
    --out FOLDER``): a table of contents, then each group's report as its own section."""
    if len(fits) == 0:
        raise FitError("there are no fits to report on")
    parts, toc = [], []
    for i, (name, fit) in enumerate(fits.items()):
        page = render_report(fit, budgets=budgets, level=level)
        body = page.split("<body>\n", 1)[1].rsplit("\n</body>", 1)[0]
        body = body.replace("<h2>", "<h3>").replace("</h2>", "</h3>").replace(
            "<h1>", "<h2>", 1).replace("</h1>", "</h2>", 1)
        toc.append(f'<li><a href="#group-{i}">{html.escape(str(name))}</a></li>')
        parts.append(f'<section id="group-{i}">{body}</section>')
    head = page.split("<body>\n", 1)[0].replace(
        page.split("<title>", 1)[1].split("</title>", 1)[0], f"{len(fits)} fits")
    shared = " with shared exponents" if getattr(fits, "hierarchical", False) else ""
    return (head + "<body>\n" + f"<h1>{len(fits)} fits{shared}</h1><ul>{''.join(toc)}</ul>\n"
            + "\n".join(parts) + "\n</body></html>\n")


def render_task_report(fit, *, level: float = 0.9) -> str:
    """One HTML page for a task model (:func:`bayescale.tasks.fit_task`): the flags, the data,
    step 2's posterior and checks, the step-2 and chained-prediction plot (at 10x and 100x the
    largest training compute, 20 tokens per parameter), then step 1's report."""
    from bayescale import __version__, plots

    level = check_level(level)
    data = fit.data
    title = f"Task model: {data.task}" + (f" ({data.name})" if data.name != data.task else "")
    flags = "".join(f"<li>{html.escape(f)}</li>" for f in fit.flags)
    warn = (f"<div class=warn><b>Not predictable</b>: this task's accuracy does not follow the "
            f"two steps; do not trust its bands.<ul>{flags}</ul></div>" if fit.flags else
            "<p class=ok>The predictability checks passed (movement over noise, monotone, "
            "backtest of the largest size).</p>")
    f = data.final
    c_max = float(np.max(6 * data.N[f] * data.D[f]))
    C = np.array([10 * c_max, 100 * c_max])
    N = np.sqrt(C / 120.0)
    pred = fit.predict(N, 20 * N, level=level)
    rows = [[human(n), human(d), f"{r.accuracy:.3f}",
             f"[{r.accuracy_lo:.3f}, {r.accuracy_hi:.3f}]", f"{r.task_loss:.4g}"]
            for n, d, r in zip(N, 20 * N, pred.table().itertuples())]
    params = [[html.escape(name), f"{r['median']:.4g}", f"[{r['lo']:.4g}, {r['hi']:.4g}]"]
              for name, r in fit.summary(level).iterrows()]
    checks = [[html.escape(k), html.escape(json_value(v))] for k, v in fit.checks.items()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        figure = _figure(plots.plot_task(fit, N=N, D=20 * N, level=level),
                         f"Left: step 2, accuracy against task loss with the link's and a new "
                         f"run's {100 * level:g}% bands, the checkpoints fitted coloured by "
                         "model size (final ones ringed). Right: the chained prediction at 10x "
                         "and 100x the largest training compute.")
        step1 = ""
        if fit.step1 is not None:
            page = render_report(fit.step1, level=level)
            body = page.split("<body>\n", 1)[1].rsplit("\n</body>", 1)[0]
            body = body.rsplit("<p class=muted>Written by", 1)[0]
            step1 = ("<h2>Step 1: task loss from N and D</h2>" + body.replace(
                "<h2>", "<h3>").replace("</h2>", "</h3>").replace("<h1>", "<h3>", 1).replace(
                "</h1>", "</h3>", 1))
    how = ("step 1: task loss from (N, D) on each run's final checkpoint; step 2: accuracy from "
           f"task loss ({fit.link}) on the {fit.rows.replace('_', ' ')} of each run's "
           "checkpoints" if fit.steps == 2 else f"accuracy from compute ({fit.link})")
    body = [f"<h1>{html.escape(title)}</h1>", warn,
            f"<p>{html.escape(how)}; {data.n_runs} runs, {int(data.link_rows(fit.rows).sum())} "
            f"checkpoints in step 2. Intervals are central {100 * level:g}% credible intervals."
            "</p>",
            f"<p class=muted>{html.escape(data.citation)}</p>" if data.citation else "",
            "<h2>Predictions</h2>", figure,
            _table(rows, ["N", "D", "accuracy (median)", f"{100 * level:g}% band of a new run",
                          "task loss"]),
            "<h2>Step 2: the link</h2>", _table(params, ["parameter", "median", "interval"]),
            "<h2>Checks</h2>", _table(checks, ["check", "value"]), step1,
            f"<p class=muted>Written by bayescale {html.escape(__version__)}.</p>"]
    return ("<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def json_value(v) -> str:
    """A check's value as text: numbers to 4 digits, a backtest's record as key=value pairs."""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}={json_value(x)}" for k, x in v.items())
    return str(v)


def write_report(fit, path: str | os.PathLike, *, budgets: Sequence[float] | None = None,
                 level: float = 0.95) -> Path:
    """Write a fit's report as one self-contained HTML file.

    Parameters
    ----------
    fit : ScalingFit or Posterior
        The fit to report on (a Posterior gets no data, sampler or diagnostics sections).
    path : str or PathLike
        Where to write the HTML (atomically: a temporary file renamed into place).
    budgets : sequence of float, optional
        Compute budgets in FLOPs for the allocation table and the extrapolation (for a
        one-variable law: values of x to predict at). Default :func:`default_budgets`.
    level : float, default 0.95
        Mass of every central credible interval in the tables and plots (the CLI's default).

    Returns
    -------
    pathlib.Path
        ``path``. The page holds the data summary and citation, the posterior table, the
        extrapolation, the allocation at each budget with the frontier, IsoFLOP and
        tokens-per-parameter plots, and the sampler diagnostics with trace and rank plots, every
        image embedded as a base64 PNG.
    """
    from bayescale.io import atomic_write_text

    return atomic_write_text(path, render_report(fit, budgets=budgets, level=level))
