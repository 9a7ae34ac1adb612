r"""Pictures of a fitted scaling law, drawn with matplotlib on log axes in natural units.

Every function takes a :class:`~bayescale.inference.ScalingFit` (plus what it needs), draws on the
``ax`` it is given or on a new figure, and returns the Axes (the ArviZ diagnostics return the
Figure). Bands are central credible intervals at ``level`` (0.9 by default); two kinds are drawn:

* **law** (dark band): :math:`L_s(N, D)` over posterior draws s, the uncertainty about the law;
* **new run** (light band): the loss a new training run would reach, the law times the
  Student-t (or normal) noise on log loss; it always contains the law band.

Units: parameters N, training tokens D, training compute C in FLOPs (:math:`C = kND`), loss in nats.
For a law in N and D drawn against compute, the curve is the loss at each draw's compute-optimal
split of C (:meth:`ScalingFit.predict` with ``C=``); against N or D, the same frontier is drawn at
its posterior-median N*(C) or D*(C).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale._plotting import (
    CHINCHILLA_RULE,
    LABELS,
    LAW_COLOR,
    PRETTY,
    RUN_COLOR,
    band,
    human,
    input_values,
    interval_rows,
    law_curve,
    loss_axis,
    narrow_log_ticks,
    new_ax,
    objective_curves,
    plugin_ratio,
    require_nd,
    resolve_against,
    scatter_runs,
    sci,
    source,
    tokens_axis,
    x_grid,
    zoom_inset,
)
from bayescale.errors import FitError
from bayescale.summaries import check_level, interval

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from bayescale.inference import ScalingFit

__all__ = [
    "plot_fit",
    "plot_frontier",
    "plot_isoflop",
    "plot_tokens_per_param",
    "plot_decision",
    "plot_bayes_vs_lsq",
    "plot_diagnostics",
    "plot_groups",
    "plot_residuals",
    "plot_ppc",
    "plot_task",
]


# ------------------------------------------------------------------------------------ plots
def plot_fit(fit: ScalingFit, *, against: str | None = None, extrapolate_to: float | None = None,
             level: float = 0.9, new_run: bool = True, zoom: bool = True,
             n_grid: int = 120, ax: Axes | None = None) -> Axes:
    """The runs with the posterior law and its credible bands, extrapolated to a budget.

    Parameters
    ----------
    fit : ScalingFit or Posterior
        The fitted law (a Posterior draws no runs; its training domain sets the range).
    against : {"C", "N", "D", "x"}, optional
        Horizontal axis: compute (FLOPs, default for laws in N and D), parameters, tokens, or
        ``x`` (the only choice, and the default, for one-variable laws). Laws in N and D are drawn
        along the compute-optimal frontier; the runs are coloured by N (against C) or by tokens
        per parameter (against N or D).
    extrapolate_to : float, optional
        Extend the curve to this value of ``against`` and mark it with the interval there.
    level : float, default 0.9
        Mass of the central credible bands.
    new_run : bool, default True
        Also draw the (wider, grey, dashed-edged) band of a new training run.
    zoom : bool, default True
        With ``extrapolate_to``, magnify 0.8 decades of the curve up to it in an inset, placed
        where nothing else is drawn (left out when there is no such room).
    n_grid : int, default 120
        Points along the curve.
    ax : matplotlib.axes.Axes, optional
        Where to draw; a new figure by default.

    Returns
    -------
    matplotlib.axes.Axes
    """
    level = check_level(level)
    post, data = source(fit)
    against = resolve_against(post.law, against)
    ax = new_ax(ax)
    grid, j = x_grid(input_values(post, data, against), extrapolate_to, n_grid)
    xs, pred = law_curve(post, against, grid)
    pct = f"{100 * level:g}%"

    def draw(target, legend):
        if new_run:
            band(target, xs, pred.new_run_draws, level, color=RUN_COLOR, alpha=0.18, line=False,
                 edge="--", label=f"new run, {pct}" if legend else None)
        out = band(target, xs, pred.law_draws, level, color=LAW_COLOR, alpha=0.45, edge="-",
                   label=f"law, {pct}" if legend else None)
        m, l_lo, l_hi = (v[j] for v in out)
        if extrapolate_to is not None:
            target.axvline(xs[j], color="0.3", ls=":", lw=1)
            target.errorbar(xs[j], m, yerr=[[m - l_lo], [l_hi - m]], fmt="D", color="C3", ms=5,
                            capsize=3, zorder=4, label=(f"at {sci(extrapolate_to)}: {m:.3f} "
                                                        f"[{l_lo:.3f}, {l_hi:.3f}]")
                            if legend else None)

    draw(ax, True)
    ax.plot([], [], color=LAW_COLOR, lw=1.8, label="posterior median"
            + (" (compute-optimal)" if post.law.inputs == ("N", "D") else ""))
    if data is not None:
        scatter_runs(ax, data, post.law, against)
    ax.set_xscale("log")
    ax.set_xlabel(LABELS[against])
    loss_axis(ax)
    ax.legend(fontsize="small", loc="upper right")
    if extrapolate_to is not None and zoom:
        zoom_inset(ax, xs, j, pred, level, draw, new_run)
    return ax


def plot_frontier(fit: ScalingFit, C_range: Sequence[float] | None = None, *, level: float = 0.9,
                  n_grid: int = 60, ax: Axes | None = None) -> Axes:
    """Compute-optimal parameters N*(C) and tokens D*(C) with credible bands.

    Parameters
    ----------
    fit : ScalingFit
        A fit of a law in N and D.
    C_range : (C_min, C_max) or array of budgets in FLOPs, optional
        Default: from the smallest budget of the data to 1000 times the largest.
    level : float, default 0.9
        Mass of the bands; the legend gives the exponents of :math:`N^*\\propto C^a`,
        :math:`D^*\\propto C^b` with their intervals.
    n_grid : int, default 60
        Budgets between the ends of a two-element ``C_range``.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        The data's budgets are shaded and marked by ticks along the bottom.
    """
    from bayescale.allocation import compute_optimal

    level = check_level(level)
    post, data = source(fit)
    require_nd(post, "plot_frontier")
    budgets = input_values(post, data, "C")
    if C_range is None:
        C_range = (budgets.min(), 1e3 * budgets.max())
    grid = np.sort(np.asarray(C_range, dtype=float))
    if grid.size == 2:
        grid = np.geomspace(grid[0], grid[1], n_grid)
    alloc = compute_optimal(post, grid, warn=False)
    ax = new_ax(ax)
    expo = alloc.exponents()
    for what, draws, color, e in (("N", alloc.N_opt, "C0", "a"), ("D", alloc.D_opt, "C1", "b")):
        m, lo, hi = interval(expo[e], level)
        band(ax, grid, draws, level, color=color, alpha=0.3,
              label=f"{what}* ∝ $C^{{{e}}}$, {e} = {m:.3f} [{lo:.3f}, {hi:.3f}]")
    ax.axvspan(budgets.min(), budgets.max(), color="0.92", zorder=0,
               label="budgets of the runs")
    if data is not None:
        ax.plot(data.C, np.full(data.C.shape, 0.015), "|", color="0.35", ms=7,
                transform=ax.get_xaxis_transform())
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel(LABELS["C"])
    ax.set_ylabel("compute-optimal parameters N* / tokens D*")
    ax.legend(fontsize="small", loc="upper left", title=f"median, {100 * level:g}% band")
    return ax


def plot_isoflop(fit: ScalingFit, budgets: Sequence[float], *, level: float = 0.9, n_grid: int = 60,
                 show_runs: bool = True, ax: Axes | None = None) -> Axes:
    """IsoFLOP profiles: loss against N at fixed budgets, with each optimum's posterior.

    Parameters
    ----------
    fit : ScalingFit
        A fit of a law in N and D.
    budgets : sequence of float
        Budgets C in FLOPs, one curve each (:meth:`ScalingFit.isoflop_profile`).
    level : float, default 0.9
        Mass of the bands of the loss and of the interval bar of N* (the marker is the median N*).
    show_runs : bool, default True
        Overlay the runs whose budget lies within 12% of a curve's budget.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    import matplotlib.pyplot as plt

    from bayescale.allocation import isoflop_profile

    level = check_level(level)
    post, data = source(fit)
    require_nd(post, "plot_isoflop")
    budgets = np.sort(np.atleast_1d(np.asarray(budgets, dtype=float)))
    ax = new_ax(ax)
    colors = plt.get_cmap("viridis")(np.linspace(0.05, 0.85, budgets.size))
    for c, color in zip(budgets, colors):
        prof = isoflop_profile(post, c, n_grid=n_grid)
        med, _, _ = band(ax, prof.N, prof.loss, level, color=color, alpha=0.35, label=sci(c))
        n_med, n_lo, n_hi = interval(prof.N_opt, level)
        y = np.interp(np.log(n_med), np.log(prof.N), med)
        ax.errorbar(n_med, y, xerr=[[n_med - n_lo], [n_hi - n_med]], fmt="o", color=color,
                    mec="k", ms=6, capsize=3, zorder=4)
        if show_runs and data is not None:
            near = np.abs(np.log(data.C / c)) < np.log(1.12)
            ax.scatter(data.N[near], data.loss[near], color=color, marker="x", s=22,
                       zorder=3)
    ax.errorbar([], [], xerr=[], fmt="o", color="0.5", mec="k", capsize=3,
                label=f"median N*, {100 * level:g}% interval")
    ax.set_xscale("log")
    ax.set_xlabel(LABELS["N"] + f"   (D = C / ({post.flops_per_param_token:g} N))")
    loss_axis(ax)
    ax.legend(fontsize="small", loc="upper right", title=f"budget (FLOPs), {100 * level:g}% band",
              title_fontsize="small")
    return ax


def plot_tokens_per_param(fit: ScalingFit, C: float, *,
                          plugin: float | Mapping[str, float] | None = None, level: float = 0.9,
                          bins: int = 40, ax: Axes | None = None) -> Axes:
    """Posterior of the compute-optimal tokens per parameter D*/N* at one budget.

    Parameters
    ----------
    fit : ScalingFit
        A fit of a law in N and D.
    C : float
        The budget in FLOPs.
    plugin : float or mapping, optional
        The plug-in value to mark: a ratio, or point parameters (e.g. a least-squares fit's
        ``params``) whose optimum gives it. Default: the optimum of the posterior-median parameters.
    level : float, default 0.9
        Mass of the shaded central interval.
    bins : int, default 40
        Histogram bins, evenly spaced in log10(D*/N*); the height is density per decade.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        Also marks the 20 tokens per parameter rule of thumb of Hoffmann et al. (2022).
    """
    from bayescale.allocation import compute_optimal

    level = check_level(level)
    post, _ = source(fit)
    require_nd(post, "plot_tokens_per_param")
    ratio = compute_optimal(post, C, warn=False).tokens_per_param[:, 0]
    plug = plugin_ratio(post, C, plugin)
    ax = new_ax(ax)
    dens, edges = np.histogram(np.log10(ratio), bins=bins, density=True)
    ax.stairs(dens, 10**edges, fill=True, color="C0", alpha=0.35, label="posterior")
    ax.stairs(dens, 10**edges, color="C0", lw=1.2)
    med, lo, hi = interval(ratio, level)
    ax.axvspan(lo, hi, color="C0", alpha=0.08,
               label=f"median {med:.3g}, {100 * level:g}% [{lo:.3g}, {hi:.3g}]")
    ax.axvline(med, color="C0", lw=1.5)
    ax.axvline(plug, color="C3", ls="--", lw=1.5, label=f"plug-in: {plug:.3g}")
    ax.axvline(CHINCHILLA_RULE, color="0.3", ls=":", lw=1.5, label="20 tokens/parameter rule")
    ax.set_xscale("log")
    span = [ratio.min(), ratio.max(), plug, CHINCHILLA_RULE]
    ax.set_xlim(min(span) / 1.3, max(span) * 1.3)
    narrow_log_ticks(ax.xaxis, lambda v: f"{v:g}", decades=2.5)
    ax.set_xlabel("compute-optimal tokens per parameter D*/N*")
    ax.set_ylabel("posterior density per decade")
    ax.set_title(f"C = {sci(C)} FLOPs", fontsize="medium")
    ax.legend(fontsize="small")
    return ax


def plot_decision(fit: ScalingFit, C: float, *,
                  objectives: Sequence[str] = ("expected", "quantile:0.9", "cvar:0.9"),
                  span: float = 0.7, n_grid: int = 81, seed: int = 0,
                  ax: Axes | None = None) -> Axes:
    """Risk-aware split of one budget: each objective of the new-run loss against N, minimised.

    Parameters
    ----------
    fit : ScalingFit
        A fit of a law in N and D.
    C : float
        The budget in FLOPs; a model of N parameters trains on D = C/(kN) tokens (top axis).
    objectives : sequence of str
        Specs read by :func:`bayescale.decisions.parse_objective` (``"expected"``,
        ``"quantile:Q"``, ``"cvar:Q"``, ``"mean_std:LAMBDA"``).
    span : float, default 0.7
        Decades of N drawn on each side of the choices.
    n_grid : int, default 81
        Model sizes along the curve.
    seed : int, default 0
        Seed of the common random numbers shared with
        :func:`bayescale.decisions.choose_allocation`, so each curve's minimum is its choice.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        One curve per objective with its choice marked, and the plug-in N (optimum of the
        posterior-median law) as a dotted line. The loss axis is linear: the curves differ by
        hundredths of a nat.
    """
    post, _ = source(fit)
    require_nd(post, "plot_decision")
    n, curves, decisions = objective_curves(post, C, objectives, span=span, n_grid=n_grid,
                                            seed=seed)
    ax = new_ax(ax)
    for i, (values, dec) in enumerate(zip(curves, decisions)):
        color = f"C{i}"
        ax.plot(n, values, color=color, lw=1.8, label=f"{dec.objective}: N = {human(dec.choice.N)}")
        ax.plot(dec.choice.N, dec.choice.objective_value, "o", color=color, mec="k", ms=7,
                zorder=3)
    ax.axvline(decisions[0].plugin.N, color="0.3", ls=":", lw=1.5,
               label=f"plug-in N = {human(decisions[0].plugin.N)}")
    ax.set_xscale("log")
    ax.set_xlabel(LABELS["N"])
    narrow_log_ticks(ax.xaxis)
    tokens_axis(ax, C, post.flops_per_param_token)
    ax.set_ylabel("objective of a new run's loss (nats)")
    ax.set_title(f"C = {sci(C)} FLOPs", fontsize="medium")
    ax.legend(fontsize="small", loc="upper center")
    return ax


def plot_bayes_vs_lsq(fit: ScalingFit, lsq_fits: Mapping[str, Any], *, against: str | None = None,
                      extrapolate_to: float | None = None, level: float = 0.9,
                      n_grid: int = 100, ax: Axes | Sequence[Axes] | None = None
                      ) -> Axes | tuple[Axes, Axes]:
    """The posterior's extrapolation next to least-squares ones, each with its interval.

    Parameters
    ----------
    fit : ScalingFit
        The Bayesian fit; its law band is drawn with its median.
    lsq_fits : mapping of str to LSQFit
        Label -> :class:`bayescale.baselines.LSQFit` of a law with the same inputs. Each point
        estimate is a dashed line; a fit with bootstrap draws also gets its band at ``level``.
    against : {"C", "N", "D", "x"}, optional
        As in :func:`plot_fit` (laws in N and D follow each fit's own compute-optimal frontier).
    extrapolate_to : float, optional
        End of the curves, marked; default 100 times the largest value of the runs.
    level : float, default 0.9
    n_grid : int, default 100
    ax : Axes or pair of Axes, optional
        None: a new figure with two panels, the curves and the intervals at ``extrapolate_to``
        side by side. One Axes: the curves only, the intervals written in the legend.

    Returns
    -------
    matplotlib.axes.Axes or tuple of two Axes
        What was drawn on: (curves, intervals), or the one Axes given.
    """
    from bayescale.posterior import Posterior

    level = check_level(level)
    post, data = source(fit)
    against = resolve_against(post.law, against)
    values = input_values(post, data, against)
    target = 100 * float(np.max(values)) if extrapolate_to is None else extrapolate_to
    grid, j = x_grid(values, target, n_grid)
    pct = f"{100 * level:g}%"
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(1, 2, figsize=(10, 4.4), width_ratios=[1.9, 1], layout="constrained")
    axes = tuple(np.ravel(ax))
    ax, rows = axes[0], []

    def label(name, draws):
        if len(axes) > 1:
            return name
        m, lo_, hi_ = interval(draws[:, j], level)
        return f"{name}: {m:.3f}" + (f" [{lo_:.3f}, {hi_:.3f}]" if draws.shape[0] > 1 else "")

    xs, pred = law_curve(post, against, grid)
    band(ax, xs, pred.law_draws, level, color="C0", alpha=0.4, edge="-",
         label=label(f"Bayes, {pct}", pred.law_draws))
    rows.append(("Bayes (posterior)", "C0", *interval(pred.law_draws[:, j], level)))
    for i, (name, lsq) in enumerate(lsq_fits.items()):
        boot, color = lsq.posterior, f"C{i + 1}"
        if boot.law.inputs != post.law.inputs:
            raise FitError(f"least-squares fit {name!r} has law {boot.law.name!r} with inputs "
                           f"{boot.law.inputs}; the posterior's law takes {post.law.inputs}")
        point = Posterior.from_draws(boot.law, lsq.params,
                                     flops_per_param_token=post.flops_per_param_token)
        xp, pp = law_curve(point, against, grid)
        m = lo_ = hi_ = pp.law_draws[0, j]
        if lsq.draws is not None:
            xb, pb = law_curve(boot, against, grid)
            band(ax, xb, pb.law_draws, level, color=color, alpha=0.15, line=False, edge=":",
                 label=label(f"{name}, bootstrap {pct}", pb.law_draws))
            _, lo_, hi_ = interval(pb.law_draws[:, j], level)
        ax.plot(xp, pp.law_draws[0], color=color, ls="--", lw=1.8,
                label=label(f"{name}, point", pp.law_draws))
        rows.append((name, color, m, lo_, hi_))
    if data is not None:
        ax.scatter(values, data.loss, s=8, color="0.45", zorder=3, label="runs")
    ax.axvline(xs[j], color="0.3", ls=":", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel(LABELS[against])
    loss_axis(ax)
    ax.legend(fontsize="small", loc="upper right",
              title=None if len(axes) > 1 else f"loss at {sci(target)}")
    if len(axes) == 1:
        return ax
    interval_rows(axes[1], rows[::-1], f"loss at {sci(target)} (nats)")
    axes[1].set_title(f"marker: posterior median or point estimate\nbar: {pct} posterior or "
                      "bootstrap interval", fontsize="small")
    return axes[0], axes[1]


def plot_diagnostics(fit: ScalingFit, kind: str = "trace", *,
                     var_names: Sequence[str] | None = None, **kwargs: Any) -> Figure:
    """Sampler diagnostics through ArviZ for the law's natural-unit parameters and the noise.

    Parameters
    ----------
    fit : ScalingFit
    kind : {"trace", "pair", "rank"}
        ``az.plot_trace`` (density and trace per chain), ``az.plot_pair`` (scatter with divergent
        transitions marked) or ``az.plot_rank`` (rank histograms per chain: flat when mixed).
    var_names : sequence of str, optional
        Default: the law's parameters (E, A, B, alpha, beta, ...) and the noise (sigma, nu).
    **kwargs
        Passed on to the ArviZ function.

    Returns
    -------
    matplotlib.figure.Figure
    """
    from bayescale._compat import import_arviz

    az = import_arviz()

    if not hasattr(fit, "idata"):
        raise FitError("plot_diagnostics needs a ScalingFit (the sampler's chains); a "
                       f"{type(fit).__name__} has none")
    names = list(var_names or fit.param_names)
    labeller = az.labels.MapLabeller(var_name_map={n: PRETTY.get(n, n) for n in names})
    common = dict(var_names=names, labeller=labeller)
    if kind == "trace":
        axes = az.plot_trace(fit.idata, compact=False, **common, **kwargs)
    elif kind == "pair":
        kwargs.setdefault("scatter_kwargs", {"alpha": 0.25, "s": 3, "rasterized": True})
        kwargs.setdefault("figsize", (1.8 * len(names), 1.8 * len(names)))
        kwargs.setdefault("textsize", 9)
        axes = az.plot_pair(fit.idata, divergences=True, **common, **kwargs)
    elif kind == "rank":
        axes = az.plot_rank(fit.idata, **common, **kwargs)
    else:
        raise FitError(f"kind must be 'trace', 'pair' or 'rank'; got {kind!r}")
    fig = np.ravel(axes)[0].figure
    if kind == "trace":
        fig.set_size_inches(10, 1.7 * len(names))
        fig.set_layout_engine("constrained")
    return fig


def _group_draws(fit: ScalingFit, quantity: str, C: float | None) -> np.ndarray:
    """Draws of ``quantity`` for one fit: a parameter, ``"a"`` or ``"tokens_per_param"``."""
    if quantity in ("a", "tokens_per_param"):
        require_nd(fit, "plot_groups")
        if quantity == "a":  # N* ~ C^a; constant in C for the Chinchilla law
            return fit.compute_optimal(1e21 if C is None else C, warn=False).exponents()["a"]
        if C is None:
            raise FitError("plot_groups(quantity='tokens_per_param') needs the budget C (FLOPs)")
        return fit.compute_optimal(C, warn=False).tokens_per_param[:, 0]
    if quantity not in fit.param_names:
        raise FitError(f"no quantity {quantity!r} in these fits: give one of "
                       f"{', '.join(fit.param_names)}, 'a' or 'tokens_per_param'")
    return fit.draws(quantity)


def plot_groups(fits: Mapping[str, ScalingFit], quantity: str = "a", *, C: float | None = None,
                level: float = 0.95, reference: Mapping[str, Any] | None = None,
                reference_label: str = "reference", ax: Axes | None = None) -> Axes:
    r"""One quantity across many fits (:func:`bayescale.fit_many`'s groups): a forest plot.

    Parameters
    ----------
    fits : mapping of name to ScalingFit
        A :class:`~bayescale.many.FitGroup` or any dict of fits; one row each, in order.
    quantity : str, default "a"
        A parameter (``"alpha"``, ``"E"``, ...), ``"a"`` (the compute-optimal exponent,
        :math:`N^* \propto C^a`, local at ``C`` for laws where it varies) or
        ``"tokens_per_param"`` (D*/N* at the budget ``C``).
    C : float, optional
        Budget in FLOPs for ``"a"`` (default :math:`10^{21}`) and ``"tokens_per_param"``.
    level : float, default 0.95
        Mass of each central interval.
    reference : mapping of name to a value or (value, lo, hi), optional
        Values to set beside the posteriors, e.g. published estimates with their intervals;
        drawn as open squares just below each row.
    reference_label : str
        Legend entry of the reference values.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes
        A group whose sampler did not converge is drawn in grey and labelled so.
    """
    level = check_level(level)
    names = list(fits)
    if not names:
        raise FitError("plot_groups needs at least one fit")
    reference = dict(reference or {})
    unknown = [k for k in reference if k not in fits]
    if unknown:
        raise FitError(f"reference names {unknown} are not among the fits ({', '.join(names)})")
    ax = new_ax(ax, figsize=(6.4, 1.5 + 0.32 * len(names)))
    labels = []
    for row, name in enumerate(names):
        fit = fits[name]
        med, lo, hi = interval(_group_draws(fit, quantity, C), level)
        ok = bool(fit.diagnostics["converged"])
        color = LAW_COLOR if ok else "0.6"
        ax.plot([lo, hi], [row, row], color=color, lw=2.2, solid_capstyle="butt")
        ax.plot([med], [row], "o", color=color, ms=5)
        labels.append(name if ok else f"{name} (not converged)")
        if name in reference:
            value = reference[name]
            v, r_lo, r_hi = (value, value, value) if np.ndim(value) == 0 else value
            ax.errorbar([v], [row + 0.3], xerr=[[v - r_lo], [r_hi - v]], fmt="s", ms=4,
                        mfc="white", color="C3", lw=1.2, capsize=2,
                        label=reference_label if name == next(iter(reference)) else None)
    ax.plot([], [], color=LAW_COLOR, lw=2.2, marker="o", ms=5,
            label=f"posterior median, {100 * level:g}% interval")  # legend entry only
    ax.set_yticks(range(len(names)), labels, fontsize="small")
    ax.set_ylim(len(names) - 0.4, -1.6)  # a free row on top for the legend
    ax.set_xlabel({"a": "compute-optimal exponent a (N* ~ C^a)",
                   "tokens_per_param": "compute-optimal tokens per parameter D*/N*"}.get(
                       quantity, PRETTY.get(quantity, quantity)))
    if quantity == "tokens_per_param":
        ax.set_xscale("log")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize="small", loc="upper center", ncols=2, frameon=False)
    return ax


def _run_log_law(fit) -> tuple[np.ndarray, np.ndarray]:
    """Each run's observed log loss (n,) and the law's log loss there per draw (S, n)."""
    post, data = source(fit, at_runs=True)
    if data is None:
        raise FitError("residual and posterior-predictive plots need the runs: pass a fit")
    logs = [np.log(np.asarray(getattr(data, i), dtype=float))[:, None] for i in post.law.inputs]
    return np.log(data.loss), post.log_law(*logs).T


def plot_residuals(fit: ScalingFit, *, against: Sequence[str] | None = None, level: float = 0.9,
                   axes=None):
    r"""Each run's residual on log loss, :math:`\log L_i - \log L(N_i, D_i)` at the posterior
    median of the law, against each input (N, D and C; or x), with the band a new run's noise
    spans at ``level`` around 0. A trend across one input is the law's misfit there; the form
    error beyond the data grows from it.

    Returns the Axes, one per input.
    """
    import matplotlib.pyplot as plt

    level = check_level(level)
    post, data = source(fit, at_runs=True)
    y, law = _run_log_law(fit)
    resid = y - np.median(law, axis=0)
    names = list(against or (("N", "D", "C") if post.law.inputs == ("N", "D") else
                             ("N", "D", "C", "epochs") if "U" in post.law.inputs else ("x",)))
    for name in names:
        if getattr(data, name, None) is None:
            raise FitError(f"these runs have no {name!r} to draw residuals against")
    if axes is None:
        _, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.6), sharey=True,
                               squeeze=False)
        axes = axes[0]
    rng = np.random.default_rng(0)
    lo, hi = np.quantile(post.noise(rng, shape=(20,)), [(1 - level) / 2, (1 + level) / 2])
    for ax, name in zip(axes, names):
        x = np.asarray(getattr(data, name), dtype=float)
        ax.axhspan(lo, hi, color=RUN_COLOR, alpha=0.18, lw=0,
                   label=f"{100 * level:g}% of a new run's noise")
        ax.axhline(0.0, color=LAW_COLOR, lw=1.2)
        ax.scatter(x, resid, s=14, color="0.25", zorder=3, label="runs")
        ax.set_xscale("log")
        ax.set_xlabel(LABELS.get(name, name))
    axes[0].set_ylabel("residual: log loss - log law (median)")
    axes[0].legend(loc="best", fontsize=8, frameon=False)
    return axes


def plot_ppc(fit: ScalingFit, *, level: float = 0.9, ax: Axes | None = None) -> Axes:
    """Posterior predictive check: each run's loss against the central ``level`` interval of
    the loss a run at its inputs would have (the law times the noise), runs in order of compute
    (or x). About ``level`` of the runs should fall inside; the share is in the title.
    """
    level = check_level(level)
    post, data = source(fit, at_runs=True)
    y, law = _run_log_law(fit)
    rng = np.random.default_rng(0)
    draws = np.exp(law + post.noise(rng, shape=(law.shape[1],)))
    order = np.argsort(data.C if data.C is not None else data.x, kind="stable")
    med, lo, hi = interval(draws[:, order], level)
    inside = (data.loss[order] >= lo) & (data.loss[order] <= hi)
    ax = new_ax(ax)
    idx = np.arange(len(order))
    ax.vlines(idx, lo, hi, color=RUN_COLOR, lw=2.2, alpha=0.55,
              label=f"{100 * level:g}% posterior predictive")
    ax.scatter(idx[inside], data.loss[order][inside], s=10, color="0.2", zorder=3, label="run")
    ax.scatter(idx[~inside], data.loss[order][~inside], s=16, color="tab:red", zorder=3,
               label="run outside its interval")
    loss_axis(ax)
    ax.set_xlabel("runs, in order of " + ("compute C" if data.C is not None else "x"))
    ax.set_title(f"{inside.mean():.0%} of {len(order)} runs inside their {100 * level:g}% "
                 "interval", fontsize=10)
    ax.legend(loc="best", fontsize=8, frameon=False)
    return ax


def plot_task(fit, *, N: Sequence[float] | None = None, D: Sequence[float] | None = None,
              actual: Sequence[float] | None = None, level: float = 0.9) -> Figure:
    """A task model (:func:`bayescale.tasks.fit_task`) in two panels.

    Left, step 2: accuracy against task loss, every checkpoint step 2 was fitted to (coloured
    by model size; final checkpoints ringed), the link's median with its band and the band of a
    new run. Right, the chained prediction against compute: the training runs' final
    accuracies and, at targets ``N``, ``D`` (pairs), the new-run band, with the ``actual``
    accuracies when known. A flagged task says so in the title.
    """
    import matplotlib.pyplot as plt

    level = check_level(level)
    data = fit.data
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.4), layout="constrained")
    rows = data.link_rows(fit.rows if fit.steps == 2 else "final")
    u_all = data.loss if fit.steps == 2 else -np.log10(6 * data.N * data.D)
    sizes = np.unique(data.N)
    cmap = plt.get_cmap("viridis")
    for i, n in enumerate(sizes):
        pick = rows & (data.N == n)
        color = cmap(i / max(len(sizes) - 1, 1))
        left.scatter(u_all[pick], data.accuracy[pick], s=6, color=color, alpha=0.5,
                     label=human(n))
        fin = pick & data.final
        left.scatter(u_all[fin], data.accuracy[fin], s=36, facecolor="none", edgecolor=color)
    lo_u, hi_u = np.min(u_all[rows]), np.max(u_all[rows])
    span = hi_u - lo_u
    grid = np.linspace(lo_u - 0.6 * span, hi_u + 0.1 * span, 120)
    mean = fit.link_at(grid)
    rng = np.random.default_rng(0)
    run = np.clip(mean + rng.standard_normal(mean.shape) * fit.run_noise[:, None], 0, 1)
    band(left, grid, run, level, color=RUN_COLOR, alpha=0.18, label=f"new run {level:.0%}",
         line=False)
    band(left, grid, mean, level, color=LAW_COLOR, alpha=0.35, label=f"link {level:.0%}")
    if data.chance is not None:
        left.axhline(data.chance, color="0.5", lw=0.8, ls=":", label="chance")
    left.set_xlabel("task loss (bits per byte)" if fit.steps == 2 else "-log10 compute")
    left.set_ylabel(f"accuracy ({data.task})")
    left.set_title(f"step 2: accuracy from {'task loss' if fit.steps == 2 else 'compute'} "
                   f"({fit.link})")
    left.legend(fontsize=7, ncol=2)
    f = data.final
    right.scatter(6 * data.N[f] * data.D[f], data.accuracy[f], color=RUN_COLOR, s=18,
                  label="training runs (final)")
    if N is not None and D is not None:
        pred = fit.predict(N, D, level=level)
        med, lo, hi = interval(pred.accuracy_draws, level)
        C = 6 * np.asarray(pred.N) * np.asarray(pred.D)
        right.errorbar(C, med, yerr=[med - lo, hi - med], fmt="o", color=LAW_COLOR, ms=4,
                       capsize=3, label=f"prediction, new run {level:.0%}")
        if actual is not None:
            right.scatter(C, actual, marker="x", color="black", s=30, zorder=5, label="actual")
    right.set_xscale("log")
    right.set_xlabel("training compute C = 6ND (FLOPs)")
    right.set_ylabel("accuracy")
    title = "chained prediction (both steps' uncertainty)"
    if fit.flags:
        title = "NOT PREDICTABLE: " + "; ".join(fl.split(":")[0] for fl in fit.flags)
        right.set_title(title, color="tab:red")
    else:
        right.set_title(title)
    right.legend(fontsize=7)
    return fig
