"""Each plot is drawn on one small fit, and what it drew is checked against facts of the posterior.

The fit samples little (2 chains of 150 + 150 on 25 simulated runs), so it may not pass the
convergence checks; the plots only need draws.
"""

from __future__ import annotations

import warnings

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.collections import PathCollection, PolyCollection  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale import plots  # noqa: E402
from bayescale.errors import FitError  # noqa: E402
from conftest import SAMPLER, simulate_chinchilla  # noqa: E402

BUDGET = 1e24  # FLOPs, 70 times the largest run of the simulated grid


@pytest.fixture(scope="module")
def small_fit():
    N, D, loss, _ = simulate_chinchilla(n_side=5, seed=3)
    data = bs.ScalingData.from_arrays(N=N, D=D, loss=loss, name="sim")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        return bs.fit(data, "chinchilla", **SAMPLER, seed=1,
                      progress=False)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _bands(ax):
    return [c for c in ax.collections if isinstance(c, PolyCollection)]


def _extent(band):
    """(x, lo, hi) of a fill_between band, from its polygon (forward along lo, back along hi)."""
    v = band.get_paths()[0].vertices
    n = (len(v) - 1) // 2
    x = v[1:n, 0]
    return x, v[1:n, 1], np.interp(x, v[n + 1:-1, 0][::-1], v[n + 1:-1, 1][::-1])


def test_plot_fit_against_compute(small_fit):
    ax = plots.plot_fit(small_fit, extrapolate_to=BUDGET, level=0.9)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert "FLOPs" in ax.get_xlabel() and ax.get_ylabel() == "loss (nats)"
    run_band, law_band = _bands(ax)
    x, lo, hi = _extent(law_band)
    _, run_lo, run_hi = _extent(run_band)
    xs, ys = (np.asarray(a) for a in ax.lines[4].get_data())  # run edges (2), law edges (2), median
    assert np.isclose(xs[-1], BUDGET) and np.isclose(xs[0], small_fit.data.C.min())
    assert np.all((lo <= np.interp(x, xs, ys) + 1e-12) & (np.interp(x, xs, ys) <= hi + 1e-12))
    # A new run adds its noise to the law: over the data, where the noise dominates the law's
    # uncertainty, the new-run band holds the law band; far out, where the law's uncertainty
    # dominates, the two bands' ends differ by Monte-Carlo error only (300 draws), so there the
    # run band need only be wider on average.
    inside = x <= small_fit.data.C.max()
    assert inside.sum() > 10
    assert np.all(run_lo[inside] <= lo[inside]) and np.all(hi[inside] <= run_hi[inside])
    assert np.mean(run_hi - run_lo) > np.mean(hi - lo)
    scatter = [c for c in ax.collections if isinstance(c, PathCollection)][0]
    assert len(scatter.get_offsets()) == small_fit.data.n_points
    assert len(ax.child_axes) == 1  # the zoom on the extrapolation
    marker = ax.containers[0].lines[0]
    assert marker.get_xdata()[0] == BUDGET
    texts = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any(f"{ys[-1]:.3f} [" in t for t in texts)
    # the compute-optimal loss is the lower envelope: no run can beat the law's median by much
    law_at_runs = np.interp(np.log(small_fit.data.C), np.log(xs), ys)
    assert np.mean(small_fit.data.loss < law_at_runs * 0.98) < 0.1


def test_plot_fit_marks_a_target_inside_the_runs(small_fit):
    ax = plots.plot_fit(small_fit, extrapolate_to=1e20, new_run=False)
    xs, _ = ax.lines[2].get_data()
    assert np.isclose(xs[-1], small_fit.data.C.max()) and 1e20 in xs
    assert ax.containers[0].lines[0].get_xdata()[0] == 1e20


def test_plot_fit_against_parameters(small_fit):
    ax = plots.plot_fit(small_fit, against="N", new_run=False, extrapolate_to=1e11, zoom=False)
    assert len(_bands(ax)) == 1 and not ax.child_axes
    xs, _ = ax.lines[2].get_data()
    assert np.all(np.diff(xs) > 0)
    assert np.isclose(xs[0], small_fit.data.N.min(), rtol=0.02)
    assert np.isclose(xs[-1], 1e11, rtol=0.02)
    assert "parameters" in ax.get_xlabel()
    with pytest.raises(FitError, match="against"):
        plots.plot_fit(small_fit, against="x")


def test_plot_frontier(small_fit):
    ax = plots.plot_frontier(small_fit, (1e18, 1e24), n_grid=30)
    assert ax.get_xscale() == ax.get_yscale() == "log"
    assert len(_bands(ax)) == 2
    (c, n_med), (c2, d_med) = (ax.lines[i].get_data() for i in (0, 1))
    # D* = C / (6 N*) draw by draw, so the medians of N* and D* pair up the same way (S even: the
    # two middle draws average, which moves the product by well under 1%)
    np.testing.assert_allclose(6 * np.asarray(n_med) * np.asarray(d_med), c, rtol=1e-2)
    # the legend's exponent a of N* ~ C^a is the median of beta / (alpha + beta) (Hoffmann eq. 4)
    a = small_fit.draws("beta") / (small_fit.draws("alpha") + small_fit.draws("beta"))
    text = ax.get_legend().get_texts()[0].get_text()
    assert float(text.split("a = ")[1].split(" ")[0]) == pytest.approx(np.median(a), abs=6e-4)


def test_plot_isoflop(small_fit):
    budgets = [1e19, 1e20, 1e21]
    ax = plots.plot_isoflop(small_fit, budgets, n_grid=81)
    assert len(_bands(ax)) == 3 and ax.get_xscale() == "log"
    curves = [line for line in ax.lines if len(line.get_xdata()) == 81]
    optima = [c.lines[0].get_xdata() for c in ax.containers if len(c.lines[0].get_xdata())]
    assert len(curves) == 3 and len(optima) == 3
    for curve, n_opt in zip(curves, optima):
        n, loss = (np.asarray(v) for v in curve.get_data())
        step = np.log(n[1] / n[0])
        # the median N* sits at the bottom of the median loss curve
        assert abs(np.log(n_opt[0] / n[np.argmin(loss)])) <= 2 * step + 1e-9  # grid rounding


def test_plot_tokens_per_param(small_fit):
    ax = plots.plot_tokens_per_param(small_fit, BUDGET, bins=30)
    assert ax.get_xscale() == "log" and "D*/N*" in ax.get_xlabel()
    vlines = {round(float(line.get_xdata()[0]), 6) for line in ax.lines
              if len(set(line.get_xdata())) == 1}
    assert 20.0 in vlines
    p = {k: np.median(v) for k, v in small_fit.params_draws().items()}
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n_opt = G * (BUDGET / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))  # Hoffmann eq. 4
    assert any(np.isclose(v, BUDGET / 6 / n_opt**2, rtol=1e-6) for v in vlines)
    stairs = [p for p in ax.patches if hasattr(p, "get_data")][0].get_data()
    values, edges = stairs.values, stairs.edges
    assert np.isclose(np.sum(values * np.diff(np.log10(edges))), 1.0)  # density per decade


def test_plot_decision(small_fit):
    specs = ("expected", "quantile:0.9", "cvar:0.9")
    ax = plots.plot_decision(small_fit, BUDGET, objectives=specs, n_grid=41)
    curves = [line for line in ax.lines if len(line.get_xdata()) == 41]
    marks = [line for line in ax.lines if len(line.get_xdata()) == 1]
    assert len(curves) == 3 and len(marks) == 3 and ax.get_xscale() == "log"
    for curve, mark in zip(curves, marks):
        # each choice minimises its objective: no point on the curve is lower
        assert mark.get_ydata()[0] <= np.min(curve.get_ydata()) + 1e-9
    # risk aversion costs loss: CVaR >= quantile >= mean for a right-skewed loss
    assert curves[2].get_ydata().min() >= curves[1].get_ydata().min() - 1e-9
    assert curves[1].get_ydata().min() >= curves[0].get_ydata().min() - 1e-9
    assert any("plug-in" in t.get_text() for t in ax.get_legend().get_texts())


def test_plot_bayes_vs_lsq(small_fit):
    from bayescale.baselines import fit_lsq

    d = small_fit.data
    lsq = {"curve_fit": fit_lsq("curve_fit", "chinchilla", N=d.N, D=d.D, loss=d.loss,
                                bootstrap=20, seed=0)}
    curves, rows = plots.plot_bayes_vs_lsq(small_fit, lsq, extrapolate_to=BUDGET)
    assert curves.get_xscale() == "log" and len(_bands(curves)) == 2
    assert [t.get_text() for t in rows.get_yticklabels()] == ["curve_fit", "Bayes (posterior)"]
    dashed = [line for line in curves.lines if line.get_linestyle() == "--"][0]
    p = lsq["curve_fit"].params
    G = (p["alpha"] * p["A"] / (p["beta"] * p["B"])) ** (1 / (p["alpha"] + p["beta"]))
    n = G * (BUDGET / 6) ** (p["beta"] / (p["alpha"] + p["beta"]))
    loss = p["E"] + p["A"] / n ** p["alpha"] + p["B"] / (BUDGET / 6 / n) ** p["beta"]
    assert np.isclose(dashed.get_ydata()[-1], loss, rtol=1e-6)
    one = plots.plot_bayes_vs_lsq(small_fit, lsq, ax=plt.subplots()[1])
    assert any("[" in t.get_text() for t in one.get_legend().get_texts())


@pytest.mark.parametrize("kind", ["trace", "rank", "pair"])
def test_plot_diagnostics(small_fit, kind):
    fig = plots.plot_diagnostics(small_fit, kind)
    names = small_fit.param_names
    used = [a for a in fig.axes if a.has_data()]
    expected = {"trace": 2 * len(names), "rank": len(names),
                "pair": len(names) * (len(names) - 1) // 2}[kind]
    assert len(used) == expected
    text = " ".join(a.get_title() + a.get_xlabel() + a.get_ylabel() for a in fig.axes)
    assert "α" in text and "β" in text and "alpha" not in text


@pytest.mark.parametrize("plot", [plots.plot_frontier, plots.plot_isoflop,
                                  plots.plot_tokens_per_param, plots.plot_decision])
def test_allocation_plots_need_a_law_in_n_and_d(plot):
    one_variable = bs.Posterior.from_draws("power", {"E": [1.5], "A": [10.0], "alpha": [0.3]})
    with pytest.raises(FitError, match="law in N and D"):
        plot(one_variable, 1e21)


def test_plot_diagnostics_rejects_unknown_kind(small_fit):
    with pytest.raises(FitError, match="trace"):
        plots.plot_diagnostics(small_fit, "forest")


def test_plot_groups(small_fit):
    # Two "groups" (the same small fit twice) and a reference with an interval for one: every
    # row's segment spans the central interval of the draws, its dot is the median, the
    # reference sits beside its row, and an unconverged group is labelled so.
    from bayescale.summaries import interval

    fits = {"first": small_fit, "second": small_fit}
    ax = plots.plot_groups(fits, "alpha", level=0.9, reference={"second": (0.35, 0.3, 0.4)},
                           reference_label="published")
    med, lo, hi = interval(small_fit.draws("alpha"), 0.9)
    segments = [ln for ln in ax.lines if len(ln.get_xdata()) == 2]
    dots = [ln for ln in ax.lines if len(ln.get_xdata()) == 1 and ln.get_marker() == "o"]
    assert len(segments) == len(dots) == 2
    for row, (seg, dot) in enumerate(zip(segments, dots)):
        np.testing.assert_allclose(seg.get_xdata(), [lo, hi])
        np.testing.assert_allclose(seg.get_ydata(), [row, row])
        np.testing.assert_allclose(dot.get_xdata(), [med])
    ref = [ln for ln in ax.lines if ln.get_marker() == "s"]
    assert len(ref) == 1 and ref[0].get_xdata()[0] == 0.35 and ref[0].get_ydata()[0] == 1.3
    suffix = "" if small_fit.diagnostics["converged"] else " (not converged)"
    assert [t.get_text() for t in ax.get_yticklabels()] == [f"first{suffix}", f"second{suffix}"]
    assert "published" in [t.get_text() for t in ax.get_legend().get_texts()]
    # "a" is beta / (alpha + beta) for the Chinchilla law, at any budget
    ax = plots.plot_groups({"only": small_fit}, "a", level=0.5)
    a = small_fit.draws("beta") / (small_fit.draws("alpha") + small_fit.draws("beta"))
    _, lo, hi = interval(a, 0.5)
    np.testing.assert_allclose(ax.lines[0].get_xdata(), [lo, hi], rtol=1e-6)
    with pytest.raises(FitError, match="needs the budget C"):
        plots.plot_groups(fits, "tokens_per_param")
    with pytest.raises(FitError, match="not among the fits"):
        plots.plot_groups(fits, "alpha", reference={"third": 0.3})
    with pytest.raises(FitError, match="no quantity 'gamma'"):
        plots.plot_groups(fits, "gamma")


def test_plot_residuals_are_the_runs_minus_the_median_law(small_fit):
    axes = plots.plot_residuals(small_fit)
    assert [ax.get_xlabel() for ax in axes] == ["parameters N", "training tokens D",
                                                "training compute C (FLOPs)"]
    p = small_fit.posterior.params
    d = small_fit.data
    law = (p["E"][:, None] + p["A"][:, None] / d.N ** p["alpha"][:, None]
           + p["B"][:, None] / d.D ** p["beta"][:, None])  # numpy, independently of the code
    expected = np.log(d.loss) - np.median(np.log(law), axis=0)
    for ax, x in zip(axes, (d.N, d.D, d.C)):
        pts = ax.collections[-1].get_offsets()
        np.testing.assert_allclose(pts[:, 0], x)
        np.testing.assert_allclose(pts[:, 1], expected, atol=1e-9)
    with pytest.raises(bs.FitError, match="no 'x'"):
        plots.plot_residuals(small_fit, against=["x"])


def test_plot_ppc_share_inside_matches_an_independent_count(small_fit):
    ax = plots.plot_ppc(small_fit, level=0.9)
    post, d = small_fit.posterior, small_fit.data
    rng = np.random.default_rng(0)
    law = np.log(post.law_draws({"N": d.N, "D": d.D}))  # (S, runs)
    draws = np.exp(law + post.noise(rng, shape=(d.n_points,)))
    lo, hi = np.quantile(draws, [0.05, 0.95], axis=0)
    share = np.mean((d.loss >= lo) & (d.loss <= hi))
    assert ax.get_title().startswith(f"{share:.0%} of {d.n_points} runs inside")
    assert 0.6 <= share <= 1.0  # a fit of its own simulated data holds most of its runs


def test_data_constrained_law_is_drawn_at_the_largest_unique_tokens(tmp_path):
    # fixed draws of the data-constrained law with a training domain in N, D, C, U and epochs:
    # the curve is the compute-optimal loss at the domain's largest U, and the report writes
    from bayescale import Domain, Posterior
    from bayescale.predict import predict
    from bayescale.report import write_report

    rng = np.random.default_rng(2)
    draws = {"E": 1.87 + 0.01 * rng.standard_normal(50), "A": np.full(50, 520.8),
             "B": np.full(50, 1487.7), "alpha": np.full(50, 0.35), "beta": np.full(50, 0.35),
             "R_N": np.full(50, 5.3), "R_D": np.full(50, 15.4)}
    dom = Domain({"N": (1e7, 9e9), "D": (1e8, 9e11), "C": (1e16, 1e22), "U": (1e8, 1.8e11),
                  "epochs": (1.0, 9000.0)})
    post = Posterior.from_draws("data_constrained", draws, {"sigma": 0.01}, domain=dom)
    ax = plots.plot_fit(post, level=0.9, new_run=False)
    xs, ys = (np.asarray(a) for a in ax.lines[2].get_data())  # law edges (2), median
    want = np.median(predict(post.at_unique_tokens(1.8e11), C=xs).law_draws, axis=0)
    np.testing.assert_allclose(ys, want, rtol=1e-9)
    path = write_report(post, tmp_path / "dc.html", budgets=[1e23])
    assert path.stat().st_size > 0
