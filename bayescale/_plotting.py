"""Shared pieces of :mod:`bayescale.plots` (internal): labels, bands, curves along a law."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from bayescale.errors import FitError
from bayescale.summaries import interval

__all__ = ["LABELS", "PRETTY", "LAW_COLOR", "RUN_COLOR", "CHINCHILLA_RULE", "new_ax", "sci",
           "source", "input_values",
           "loss_axis", "resolve_against", "budgets_along", "law_curve", "band", "scatter_runs",
           "x_grid", "require_nd", "human", "narrow_log_ticks", "plugin_ratio",
           "zoom_inset", "interval_rows", "objective_curves", "tokens_axis"]

#: Axis labels with units.
LABELS = {"N": "parameters N", "D": "training tokens D", "C": "training compute C (FLOPs)",
          "x": "x", "loss": "loss (nats)", "U": "unique tokens U",
          "epochs": "epochs D/U"}
#: Names of posterior quantities as the diagnostics plots show them.
PRETTY = {"E": "E (nats)", "alpha": "α", "beta": "β", "sigma": "σ (log loss)",
          "sigma_fit": "σ_fit (log loss)", "nu": "ν", "N_c": "N_c (parameters)",
          "D_c": "D_c (tokens)", "alpha_N": "α_N", "alpha_D": "α_D"}
LAW_COLOR, RUN_COLOR = "C0", "0.45"
CHINCHILLA_RULE = 20.0  #: tokens per parameter, the rule of thumb read off Hoffmann et al. (2022)


def new_ax(ax, figsize=(6.4, 4.4)):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=figsize, layout="constrained")
    return ax


def sci(value: float) -> str:
    """``1e21`` as :math:`10^{21}` and ``5.76e23`` as :math:`5.76\\times10^{23}` (mathtext)."""
    exp = math.floor(math.log10(value))
    mant = value / 10**exp
    if abs(mant - 1) < 1e-9:
        return f"$10^{{{exp}}}$"
    return f"${mant:.3g}\\times10^{{{exp}}}$"


def human(value: float) -> str:
    """A count as people write it: 7.1e10 -> ``71B``, 5e8 -> ``500M``, 1.4e12 -> ``1.4T``, and
    compact powers of ten from 1e15 on (FLOPs): 5.76e23 -> ``5.76e23``."""
    if value >= 1e15:
        exp = math.floor(math.log10(value) + 1e-9)
        return f"{value / 10**exp:.3g}e{exp}"
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:.3g}{suffix}"
    return f"{value:.3g}"


def narrow_log_ticks(axis, fmt=human, *, decades: float = 1.7) -> None:
    """On a log axis spanning fewer than ``decades``, label 1, 2 and 5 times powers of ten."""
    from matplotlib import ticker

    lo, hi = sorted(axis.get_view_interval())
    if lo <= 0 or math.log10(hi / lo) >= decades:
        return
    labels = ticker.FuncFormatter(lambda v, _: fmt(v))
    axis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(labels)
    axis.set_minor_locator(ticker.LogLocator(subs=np.arange(2, 10)))
    axis.set_minor_formatter(ticker.NullFormatter())


def loss_axis(ax, label: str = LABELS["loss"], *, log: bool = True) -> None:
    """Log loss axis with plain-number ticks; a narrow range gets evenly spaced ticks."""
    from matplotlib import ticker

    ax.set_ylabel(label)
    if not log:
        return
    ax.set_yscale("log")
    lo, hi = ax.get_ylim()
    plain = ticker.FuncFormatter(lambda v, _: f"{v:g}")
    if hi / lo < 8:
        ticks = ticker.MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]).tick_values(lo, hi)
        ax.yaxis.set_major_locator(ticker.FixedLocator(ticks[(ticks >= lo) & (ticks <= hi)]))
        ax.yaxis.set_minor_locator(ticker.NullLocator())
    ax.yaxis.set_major_formatter(plain)
    ax.set_ylim(lo, hi)


def source(fit, *, at_runs: bool = False):
    """``(posterior, data)`` of what a plot was given: a fit (its runs are drawn too) or a
    :class:`~bayescale.Posterior` (``data`` None).

    The data-constrained law has a third input, the unique tokens U: curves, frontiers and
    IsoFLOP profiles draw it at the largest U of the runs (a law in N and D,
    :meth:`~bayescale.Posterior.at_unique_tokens`); ``at_runs=True`` keeps the full law, for
    plots that evaluate it at each run's own inputs (residuals, posterior predictive)."""
    from bayescale.posterior import as_posterior

    post, data = as_posterior(fit), getattr(fit, "data", None)
    if "U" in post.law.inputs and not at_runs:
        u = getattr(data, "U", None)
        if u is None and post.domain is not None and "U" in post.domain.ranges:
            u = post.domain.ranges["U"]
        if u is None:
            raise FitError("this data-constrained posterior has no unique tokens to draw its law "
                           "at: use post.at_unique_tokens(U)")
        post = post.at_unique_tokens(float(np.max(u)))
    return post, data


def input_values(post, data, name: str) -> np.ndarray:
    """The runs' values of input ``name`` or, without runs, the ends of the posterior's
    training domain."""
    if data is not None:
        return np.asarray(getattr(data, name))
    if post.domain is None or name not in post.domain.ranges:
        raise FitError(f"this posterior has no training domain for {name!r}: plot a fit, or "
                       "build the Posterior with domain=Domain.from_data(data)")
    return np.asarray(post.domain.ranges[name], dtype=float)


def require_nd(fit, what: str) -> None:
    """FitError unless ``fit`` is of a law in N and D (what splitting compute needs)."""
    if fit.law.inputs != ("N", "D"):
        raise FitError(f"{what} needs a law in N and D (chinchilla, chinchilla_tied or kaplan); this fit's law "
                       f"{fit.law.name!r} has the single input x: draw it with plot_fit")


def resolve_against(law, against: str | None) -> str:
    if against is None:
        return "C" if law.inputs == ("N", "D") else "x"
    allowed = ("C", "N", "D") if law.inputs == ("N", "D") else ("x",)
    if against not in allowed:
        raise FitError(f"law {law.name!r} can be drawn against {' or '.join(allowed)}; "
                       f"got against={against!r}")
    return against


def budgets_along(post, against: str, grid):
    """Budgets whose posterior-median N* (or D*) equals ``grid`` (log-interpolated)."""
    from bayescale.allocation import compute_optimal

    coarse = np.geomspace(post.flops_per_param_token * 1e2, 1e45, 160)
    alloc = compute_optimal(post, coarse, warn=False)
    med = np.median(getattr(alloc, f"{against}_opt"), axis=0)
    order = np.argsort(med)
    return np.exp(np.interp(np.log(grid), np.log(med[order]), np.log(coarse[order])))


def law_curve(post, against: str, grid):
    """x values (G,) and a Prediction of the posterior at the values ``grid`` of ``against``."""
    from bayescale.predict import predict

    if post.law.inputs == ("x",):
        return grid, predict(post, x=grid)
    budgets = grid if against == "C" else budgets_along(post, against, grid)
    pred = predict(post, C=budgets)
    return (budgets if against == "C" else pred.inputs[against]), pred


def band(ax, x, draws, level, *, color, alpha, label, line=True, edge=None, **kw):
    """Fill the central ``level`` interval of ``draws`` (S, G) over ``x``; draw the median line
    and, with ``edge`` (a line style), the interval's ends. Returns (median, lo, hi)."""
    med, lo, hi = interval(draws, level)
    ax.fill_between(x, lo, hi, color=color, alpha=alpha, lw=0, label=label, **kw)
    if edge:
        for y in (lo, hi):
            ax.plot(x, y, color=color, ls=edge, lw=0.8)
    if line:
        ax.plot(x, med, color=color, lw=1.8)
    return med, lo, hi


def scatter_runs(ax, data, law, against: str, *, colorbar: bool = True):
    """The runs, coloured by N (against C) or tokens per parameter (against N or D)."""
    from matplotlib.colors import LogNorm

    x = getattr(data, against)
    if law.inputs != ("N", "D"):
        return ax.scatter(x, data.loss, s=14, color="0.25", zorder=3, label="runs")
    if against == "C":
        c, clabel = data.N, LABELS["N"]
    else:
        c, clabel = data.D / data.N, "tokens per parameter D/N"
    sc = ax.scatter(x, data.loss, c=c, s=14, cmap="viridis", norm=LogNorm(), zorder=3,
                    edgecolors="none", label="runs")
    if colorbar:
        ax.figure.colorbar(sc, ax=ax, label=clabel, pad=0.01)
    return sc


def x_grid(values, target: float | None, n: int) -> tuple[np.ndarray, int]:
    """``n`` log-spaced points over the runs' ``values`` and ``target``, with ``target`` itself
    among them; returns the grid and the index of ``target`` (of the last point without one)."""
    lo, hi = float(np.min(values)), float(np.max(values))
    if target is None:
        return np.geomspace(lo, hi, n), n - 1
    if not (np.isfinite(target) and target > 0):
        raise FitError(f"extrapolate_to must be a positive number; got {target!r}")
    grid = np.union1d(np.geomspace(min(lo, target), max(hi, target), n), [target])
    return grid, int(np.searchsorted(grid, target))


def plugin_ratio(post, C: float, plugin) -> float:
    """D*/N* at C of point parameters (default: the posterior medians), or ``plugin`` itself."""
    from bayescale.allocation import compute_optimal
    from bayescale.posterior import Posterior

    if plugin is None:
        plugin = {p: np.median(v) for p, v in post.params.items()}
    if isinstance(plugin, Mapping):
        point = Posterior.from_draws(post.law, {p: float(plugin[p]) for p in post.law.params},
                                     flops_per_param_token=post.flops_per_param_token)
        return float(compute_optimal(point, C, warn=False).tokens_per_param[0, 0])
    return float(plugin)


def _free_spot(ax, size=(0.32, 0.28), margin=(0.07, 0.05)):
    """Lower-left corner (axes fraction) of a free rectangle of ``size`` inside ``ax``: one that
    holds no point of any line, band or scatter and misses the legend; None if none is free.
    ``margin`` keeps room for the inset's tick labels on its right and top."""
    to_axes = ax.transAxes.inverted()
    shown = [(line.get_transform(), line.get_xydata()) for line in ax.lines]
    for c in ax.collections:
        shown.append((c.get_offset_transform(), c.get_offsets()))
        shown += [(c.get_transform(), p.vertices) for p in c.get_paths()]
    xy = np.concatenate([np.empty((0, 2))] + [
        to_axes.transform(t.transform(np.asarray(v, dtype=float).reshape(-1, 2)))
        for t, v in shown if np.size(v)])
    xy = xy[np.all(np.isfinite(xy), axis=1)]
    legend = ax.get_legend()
    box = None
    if legend is not None:
        box = legend.get_window_extent(ax.figure.canvas.get_renderer()).transformed(to_axes)
    w, h = size[0] + margin[0], size[1] + margin[1]
    spots = [(x0, y0) for y0 in np.arange(0.04, 0.67, 0.04) for x0 in np.arange(0.03, 0.62, 0.04)]
    for x0, y0 in spots:
        inside = ((xy[:, 0] > x0) & (xy[:, 0] < x0 + w) & (xy[:, 1] > y0) & (xy[:, 1] < y0 + h))
        hits_legend = box is not None and not (box.x1 < x0 or box.x0 > x0 + w or box.y1 < y0
                                               or box.y0 > y0 + h)
        if not inside.any() and not hits_legend:
            return x0, y0
    return None


def zoom_inset(ax, xs, j, pred, level, draw, new_run):
    """An inset magnifying 0.8 decades of the curve up to ``xs[j]``, where ``ax`` has room for
    one (nothing drawn there, legend included); returns it, or None when there is no room."""
    spot = _free_spot(ax)
    if spot is None:
        return None
    inset = ax.inset_axes([*spot, 0.32, 0.28])
    draw(inset, False)
    keep = (xs >= xs[j] / 10**0.8) & (xs <= xs[j] * 10**0.12)
    draws = (pred.law_draws, pred.new_run_draws)[:1 + new_run]
    ends = [interval(d[:, keep], level) for d in draws]
    lo, hi = min(e[1].min() for e in ends), max(e[2].max() for e in ends)
    pad = 0.08 * (hi - lo)
    inset.set(xscale="log", xlim=(xs[keep][0], xs[j] * 10**0.12), ylim=(lo - pad, hi + pad))
    inset.tick_params(labelsize="x-small", which="both")
    narrow_log_ticks(inset.xaxis)
    inset.yaxis.tick_right()
    inset.xaxis.tick_top()
    inset.set_title("zoom", fontsize="x-small", loc="left", pad=2, y=0.82, x=0.03)
    return inset


def objective_curves(post, C: float, objectives, *, span: float, n_grid: int, seed: int):
    """Model sizes N (G,), each objective along the isoFLOP curve of C at them, and the
    :class:`~bayescale.decisions.Decision` of each, all from the same common random numbers."""
    from bayescale._draws import common_noise
    from bayescale.decisions import choose_allocation, parse_objective

    decisions = [choose_allocation(post, C, objective=o, seed=seed) for o in objectives]
    common = common_noise(post, seed, True)
    chosen = np.log10([d.choice.N for d in decisions] + [decisions[0].plugin.N])
    log_n = np.log(10.0) * np.linspace(chosen.min() - span, chosen.max() + span, n_grid)
    log_c = math.log(C / post.flops_per_param_token)
    losses = np.exp(common.log_loss(log_n[:, None], log_c - log_n[:, None]))
    return np.exp(log_n), [parse_objective(o)(losses) for o in objectives], decisions


def tokens_axis(ax, C: float, k: float) -> None:
    """A top axis of training tokens D = C/(kN) over an axis of parameters N."""

    def flip(v):
        with np.errstate(divide="ignore"):
            return C / (k * np.asarray(v, dtype=float))

    top = ax.secondary_xaxis("top", functions=(flip, flip))
    top.set_xlabel(LABELS["D"])
    narrow_log_ticks(top.xaxis)


def interval_rows(ax, rows, xlabel):
    """One row per method: the median (marker) and the interval (bar), labelled on the left."""
    for y, (name, color, m, lo, hi) in enumerate(rows):
        ax.errorbar(m, y, xerr=[[m - lo], [hi - m]], fmt="o", color=color, mec="k", capsize=4,
                    lw=2)
        ax.annotate(f"{m:.3f}" + (f"\n[{lo:.3f}, {hi:.3f}]" if hi > lo else ""), (m, y),
                    xytext=(0, 7), textcoords="offset points", ha="center", fontsize="x-small")
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize="small")
    ax.set_ylim(-0.6, len(rows) - 0.2)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
