"""Extrapolation on real data: fit on the smaller-compute runs, predict the larger ones.

    python benchmarks/extrapolation.py [--quick] [--out DIR]

Writes ``extrapolation.md`` and ``extrapolation.png`` to ``benchmarks/results/``. ``--quick``
runs Chinchilla and one revisiting curve with tiny sampling (a smoke test; numbers mean nothing).

Data sets and splits
--------------------
* Chinchilla (Epoch AI's 240 rows): train on C <= 3e20 FLOPs, test on the rest.
* Porian et al. 2024, "Optimizer tuning (no decay)" on RefinedWeb: train on the IsoFLOP budgets
  below the top two, test on the top two.
* Alabdulmohsin et al. 2022 (revisiting): the 10 one-variable curves (5 LM, 5 NMT), x = examples
  or tokens seen, split by the data set's own ``is_train`` flag.

Methods
-------
Two-variable data: the Bayesian Chinchilla law (default priors and Student-t noise, 4 chains of
1000 + 1000), Hoffmann/Epoch Approach 3 (Huber, 4500-start grid) and ``curve_fit`` of the
Chinchilla law, both with 1000 bootstrap resamples. One-variable curves: the Bayesian ``power``
law (4 chains of 500 + 500), ``curve_fit`` of ``power`` and log-log OLS of ``power_pure``, with
1000 bootstrap resamples.

Metrics (on held-out runs, all on log loss)
-------------------------------------------
RMSE of the point prediction (posterior median of the law; least-squares point fit), coverage of
the central 50/80/90/95% intervals of a new run, mean 90% width, mean log predictive density and
fit time. A least-squares "new run" is a bootstrap draw of the law times Gaussian noise on log
loss with the point fit's residual scale sqrt(sum r^2 / (n - p)); its predictive density is that
Gaussian around each bootstrap draw, averaged over draws as the posterior's is.
"""

from __future__ import annotations

import functools
import time
import warnings

import numpy as np

import _common as C
import bayescale
from bayescale import baselines as bl
from bayescale.datasets import load_frame
from bayescale.laws import get_law
from bayescale.posterior import Posterior
from bayescale.predict import predict

PORIAN_CONFIG = "Optimizer tuning (no decay)"
QUICK_GRID = {"e": (0.0, 1.0), "a": (5.0, 10.0), "b": (5.0, 10.0), "alpha": (0.5,),
              "beta": (0.5,)}

FITTERS = {
    ("ols", "power_pure"): bl.ols_loglog,
    ("curve_fit", "power"): bl.curve_fit_power,
    ("curve_fit", "chinchilla"): bl.curve_fit_chinchilla,
    ("huber", "chinchilla"): bl.huber_approach3,
}


def _inputs(law, d, mask):
    """Keyword inputs of ``law`` for the rows of ``d`` (a dict of arrays) under ``mask``."""
    return {k: d[k][mask] for k in get_law(law).inputs}


def bayes(law, train, test, y_test, settings, seed=0):
    """Fit the Bayesian law on ``train`` (dict with inputs and loss); held-out points and info."""
    data = bayescale.ScalingData.from_arrays(**train)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.ConvergenceWarning)
        fit = bayescale.fit(data, law, seed=seed, progress=False, **settings)
    pred = fit.predict(**test, seed=seed)
    seconds = time.perf_counter() - t0
    post = fit.posterior
    point = np.median(np.log(pred.law_draws), axis=0)
    pts = C.heldout_points(np.log(y_test), point, pred.new_run_draws, pred.law_draws,
                           post.new_run_sigma, post.nu)
    d = fit.diagnostics
    note = f"R-hat {d['max_rhat']:.3f}, ESS {d['min_ess_bulk']:.0f}, {d['divergences']} div"
    return pts, pred, seconds, note


def lsq(method, law, train, test, y_test, *, n_boot, seed=0, grid=None):
    """Least-squares point fit plus bootstrap on ``train``; held-out points and info."""
    fitter = FITTERS[method, law]
    if grid is not None:
        fitter = functools.partial(fitter, grid=grid)
    names = get_law(law).inputs
    arrays = [train[k] for k in names] + [train["loss"]]
    t0 = time.perf_counter()
    point = fitter(*arrays)
    draws = bl.bootstrap(fitter, *arrays, n=n_boot, seed=seed, start=point.params)
    seconds = time.perf_counter() - t0
    one = {k: np.array([v]) for k, v in point.params.items()}
    fitted = predict(Posterior.from_draws(law, one), **{k: train[k] for k in names}).law_draws[0]
    sigma = C.residual_sigma(np.log(train["loss"]), np.log(fitted), len(point.params))
    pred = predict(Posterior.from_draws(law, draws, {"sigma": sigma}), **test, seed=seed)
    point_test = np.log(predict(Posterior.from_draws(law, one), **test).law_draws[0])
    pts = C.heldout_points(np.log(y_test), point_test, pred.new_run_draws, pred.law_draws,
                           sigma, None)
    n = next(iter(draws.values())).size
    return pts, pred, seconds, f"resid. sigma {sigma:.4f}, {n} resamples"


def two_variable(name, d, train_mask, args, rows, preds):
    """All three methods on one (N, D) data set split by ``train_mask``; its D/N ranges."""
    train = {**_inputs("chinchilla", d, train_mask), "loss": d["loss"][train_mask]}
    test = _inputs("chinchilla", d, ~train_mask)
    y = d["loss"][~train_mask]
    settings = (dict(chains=1, warmup=100, draws=100) if args.quick
                else dict(chains=4, warmup=1000, draws=1000))
    n_boot = 20 if args.quick else 1000
    runs = {
        "bayes": lambda: bayes("chinchilla", train, test, y, settings),
        "huber": lambda: lsq("huber", "chinchilla", train, test, y, n_boot=n_boot,
                             grid=QUICK_GRID if args.quick else None),
        "curve_fit": lambda: lsq("curve_fit", "chinchilla", train, test, y, n_boot=n_boot),
    }
    for method, run in runs.items():
        pts, pred, seconds, note = run()
        rows.append({"dataset": name, "method": method, "law": "chinchilla",
                     "n_train": int(train_mask.sum()), **C.aggregate([pts]),
                     "fit_s": seconds, "note": note})
        preds[name, method] = (y, pred)
        print(f"  {name:<12} {method:<10} rmse {rows[-1]['rmse']:.4f} "
              f"cov90 {rows[-1]['cov90']:.2f} {seconds:.1f} s", flush=True)
    ratio = d["D"] / d["N"]
    return (f"{name}: tokens per parameter D/N {ratio[train_mask].min():.2g}-"
            f"{ratio[train_mask].max():.3g} in training, {ratio[~train_mask].min():.2g}-"
            f"{ratio[~train_mask].max():.3g} held out")


def revisiting(args, rows, curve_rows):
    """Bayesian power law vs curve_fit power vs OLS power_pure on each revisiting curve."""
    df = load_frame("revisiting")
    curves = list(df.groupby(["domain", "model"], sort=True))
    if args.quick:
        curves = curves[:1]
    settings = (dict(chains=1, warmup=100, draws=100) if args.quick
                else dict(chains=4, warmup=500, draws=500))
    n_boot = 20 if args.quick else 1000
    methods = {"bayes": "power", "curve_fit": "power", "ols": "power_pure"}
    pooled = {(dom, m): [] for dom in ("LM", "NMT", "all") for m in methods}
    seconds = {k: 0.0 for k in pooled}
    notes = {m: [] for m in methods}
    for (domain, model), g in curves:
        mask = g["is_train"].to_numpy() == 1
        x, loss = g["seen_examples"].to_numpy(float), g["loss"].to_numpy(float)
        train, test, y = {"x": x[mask], "loss": loss[mask]}, {"x": x[~mask]}, loss[~mask]
        entry = {"curve": f"{domain} {model}", "n_train": int(mask.sum()),
                 "n_test": int((~mask).sum())}
        for method, law in methods.items():
            if method == "bayes":
                pts, _, sec, note = bayes(law, train, test, y, settings)
                notes[method].append(note)
            else:
                pts, _, sec, _ = lsq(method, law, train, test, y, n_boot=n_boot)
            for dom in (domain, "all"):
                pooled[dom, method].append(pts)
                seconds[dom, method] += sec
            agg = C.aggregate([pts])
            entry[f"rmse {method}"] = agg["rmse"]
            entry[f"cov90 {method}"] = agg["cov90"]
        curve_rows.append(entry)
        print(f"  revisiting {entry['curve']:<16} " + " ".join(
            f"{m} {entry[f'rmse {m}']:.4f}" for m in methods), flush=True)
    for dom in ("LM", "NMT", "all"):
        n_curves = sum(1 for (d, _), _ in curves if dom in (d, "all"))
        for method, law in methods.items():
            if not pooled[dom, method]:
                continue
            note = f"{n_curves} curves"
            if method == "bayes" and dom == "all":
                bad = sum("0 div" not in n for n in notes[method])
                note += f", {bad} of {len(notes[method])} fits with divergences"
            rows.append({"dataset": f"revisiting {dom}", "method": method, "law": law,
                         "n_train": "", **C.aggregate(pooled[dom, method]),
                         "fit_s": seconds[dom, method], "note": note})


def verdicts(rows):
    """One line per data set: where the Bayesian fit is best, tied, and where it loses."""
    metrics = {  # name -> (key of the row value, True when higher is better)
        "RMSE": (lambda r: r["rmse"], False),
        "MLPD": (lambda r: r["mlpd"], True),
        "calibration (cal_err)": (lambda r: r["cal_err"], False),
        "|cov90 - 0.9|": (lambda r: abs(r["cov90"] - 0.9), False),
        "fit time": (lambda r: r["fit_s"], False),
    }
    lines = []
    for name in dict.fromkeys(r["dataset"] for r in rows):
        group = [r for r in rows if r["dataset"] == name]
        ours = next(r for r in group if r["method"] == "bayes")
        others = [r for r in group if r is not ours]
        wins, ties, losses = [], [], []
        for metric, (value, higher) in metrics.items():
            sign = -1.0 if higher else 1.0
            best = min(others, key=lambda r: sign * value(r))
            gap = sign * (value(ours) - value(best))
            if gap < -1e-12:
                wins.append(metric)
            elif gap <= 1e-12:
                ties.append(f"{metric} (with {best['method']})")
            else:
                losses.append(f"{metric} (best: {best['method']}, "
                              f"{value(best):.4g} vs {value(ours):.4g})")
        text = f"- **{name}**: Bayes best on {', '.join(wins) or 'nothing'}"
        if ties:
            text += f"; tied on {', '.join(ties)}"
        if losses:
            text += f"; **Bayes loses on** {', '.join(losses)}"
        lines.append(text + ".")
    return "\n".join(lines) + "\n"


def plot(preds, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(dict.fromkeys(k[0] for k in preds))
    methods = list(dict.fromkeys(k[1] for k in preds))
    fig, axes = plt.subplots(len(names), len(methods), figsize=(4 * len(methods), 3.8 * len(names)),
                             squeeze=False)
    for i, name in enumerate(names):
        for j, method in enumerate(methods):
            ax = axes[i, j]
            y, pred = preds[name, method]
            med = np.median(pred.new_run_draws, axis=0)
            lo, hi = np.quantile(pred.new_run_draws, [0.05, 0.95], axis=0)
            inside = (y >= lo) & (y <= hi)
            for mask, color, label in ((inside, "tab:blue", "inside 90%"),
                                       (~inside, "tab:red", "outside 90%")):
                ax.errorbar(y[mask], med[mask], yerr=[med[mask] - lo[mask], hi[mask] - med[mask]],
                            fmt="o", ms=3, color=color, alpha=0.7, lw=0.8, label=label)
            span = [min(y.min(), lo.min()), max(y.max(), hi.max())]
            ax.plot(span, span, "k--", lw=0.8)
            ax.set_title(f"{name}: {method} ({inside.mean():.0%} inside)", fontsize=9)
            ax.set_xlabel("held-out loss (nats)")
            ax.set_ylabel("predicted new run: median, 90% interval")
            if i == 0 and j == 0:
                ax.legend(fontsize=7)
    fig.tight_layout()
    C.save_png(fig, path)
    plt.close(fig)


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv)
    t0 = time.perf_counter()
    rows, curve_rows, preds = [], [], {}

    chin = bayescale.load_dataset("chinchilla")
    d = {"N": chin.N, "D": chin.D, "loss": chin.loss}
    ranges = [two_variable("Chinchilla", d, chin.C <= 3e20, args, rows, preds)]

    if not args.quick:
        por = bayescale.load_dataset("porian2024", config=PORIAN_CONFIG, corpus="rw")
        log_budget = np.round(np.log2(por.C))  # budgets double: 1.25e16 .. 2.56e19 FLOPs
        d = {"N": por.N, "D": por.D, "loss": por.loss}
        ranges.append(two_variable("Porian", d, log_budget < np.unique(log_budget)[-2], args,
                                   rows, preds))

    revisiting(args, rows, curve_rows)
    seconds = time.perf_counter() - t0

    cols = ["dataset", "method", "law", "n_train", "n_test", "rmse", "cov50", "cov80", "cov90",
            "cov95", "cal_err", "width90", "mlpd", "fit_s", "note"]
    curve_cols = ["curve", "n_train", "n_test"] + [f"{m} {k}" for m in ("rmse", "cov90")
                                                    for k in ("bayes", "curve_fit", "ols")]
    text = C.header(
        "Extrapolation to held-out larger-compute runs" + (" (QUICK smoke run)" if args.quick
                                                          else ""),
        seconds=seconds,
        notes=[
            "Splits: Chinchilla train C <= 3e20 FLOPs; Porian 'Optimizer tuning (no decay)' (rw) "
            "train below the top two IsoFLOP budgets; revisiting: the data's is_train flag.",
            "; ".join(ranges) + ". Runs with few tokens per parameter sit far above the "
            "Chinchilla law; the residual scales in the note column show how well each law fits.",
            "All metrics on log loss. rmse: point prediction (posterior median of the law; "
            "least-squares point fit). covXX: share of held-out runs inside the central XX% "
            "interval of a new run. cal_err: mean |coverage - nominal| over the four levels. "
            "width90: mean width of the 90% interval of log loss. mlpd: mean log predictive "
            "density of the held-out log losses (higher is better). fit_s: wall seconds of the "
            "fit with its bootstrap (Bayes: sampling incl. JIT tracing, with the persistent "
            "compile cache as found).",
            "Least-squares new runs: bootstrap draws of the law times Gaussian noise with the "
            "point fit's residual scale sqrt(sum r^2/(n-p)) on log loss (also the density used "
            "for their mlpd).",
            "Bayes settings: " + ("1 chain 100+100 (quick)" if args.quick else
                                  "4 chains x 1000+1000 (two-variable), 4 x 500+500 (curves)")
            + "; bootstrap resamples: " + ("20" if args.quick else "1000") + ".",
        ],
    )
    text += "\n## Per method and data set\n\n" + C.markdown_table(rows, cols)
    text += "\n## Who wins\n\n" + verdicts(rows)
    text += ("\n## Revisiting, per curve\n\n" + C.markdown_table(curve_rows, curve_cols))
    C.write_table(args.out, "extrapolation.md", text)
    plot(preds, args.out / "extrapolation.png")


if __name__ == "__main__":
    main()
