"""Calibration on simulated data with a known truth: do 90% intervals hold 90% of the time?

    python benchmarks/calibration.py [--quick] [--out DIR] [--datasets K] [--jobs J] [--nu NU]

Writes ``calibration.md``, ``calibration.png`` and the per-interval records
``calibration_raw.csv`` to ``benchmarks/results/``.

Design
------
Each simulated data set is a Chinchilla-shaped grid: 7 model sizes N in [5e7, 1e10] parameters
times 6 token counts D in [1e9, 3e11] (42 runs, C up to 1.8e22 FLOPs, like Chinchilla's range).
The truth is drawn around Epoch AI's fit (E 1.82, A 478, B 2144, alpha 0.347, beta 0.367): E
times exp(0.03 z), A and B times exp(0.2 z), alpha and beta plus 0.02 z, z standard normal. The
observed log loss is the law's plus noise of scale 0.008 (about 0.02 nats at these losses):
Gaussian on even-numbered data sets, Student-t with 3 degrees of freedom (heavy tails) on odd.

For each data set and method we check whether the central 90% interval contains the truth for
E, A, B, alpha, beta; the compute-optimal N* and D*/N* at 100x the largest training budget
(1.8e24 FLOPs); the loss of 4 held-out runs, 3 at 6-33x the largest budget and the truth's
compute-optimal run at 100x (a new run, with the same noise, against the new-run interval), and
the law's mean loss there (against the law interval).

The law is exactly right here, so the law's form error (on by default: the fit's own
leave-future-out refits and the cross-study prior) has nothing to find: the default must stay
calibrated and not be much wider than the band that takes the form as exact (``bayes law-only``,
the same fit). The width of the new-run 90% band at 100x is compared, data set by data set.

Methods: the Bayesian fit with default priors and Student-t noise (2 chains of 500 + 500), and
bootstrap least squares with 200 resamples: Hoffmann/Epoch Approach 3 (Huber; L-BFGS-B from
every other value of Epoch's grid, 243 starts, checked against the full 4500-start grid on the
first data sets) and ``curve_fit``. Least-squares new runs add Gaussian noise with the point
fit's residual scale to each bootstrap draw.
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pandas as pd

import _common as C
from bayescale import baselines as bl
from bayescale.laws import chinchilla_optimum

TRUTH = {"E": 1.82, "A": 478.0, "B": 2144.0, "alpha": 0.347, "beta": 0.367}
N_GRID = np.geomspace(5e7, 1e10, 7)
D_GRID = np.geomspace(1e9, 3e11, 6)
SIGMA = 0.008
C_TARGET = 100 * 6 * N_GRID.max() * D_GRID.max()
#: Held-out runs: three at 6-33x the largest budget; the fourth, at 100x, is replaced in each
#: data set by its truth's compute-optimal run at C_TARGET (see :func:`simulate`).
HELDOUT_N = np.array([3e10, 2e10, 7e10, 1.0])
HELDOUT_D = np.array([6e11, 2e12, 1.4e12, 1.0])
LEVEL = 0.9
#: Every other value of each axis of Epoch AI's grid: 3^5 = 243 starts.
SUB_GRID = {k: v[::2] for k, v in bl.EPOCH_GRID.items()}
PARAMS = tuple(TRUTH)
QUANTITIES = PARAMS + ("N_opt", "D/N_opt", "loss_new_run", "loss_law")
METHODS = ("bayes", "bayes law-only", "huber", "curve_fit")


def simulate(i: int) -> dict:
    """Data set ``i``: its truth, noise kind, training runs and held-out runs."""
    rng = np.random.default_rng(20240 + i)
    z = rng.standard_normal(5)
    truth = {"E": TRUTH["E"] * np.exp(0.03 * z[0]), "A": TRUTH["A"] * np.exp(0.2 * z[1]),
             "B": TRUTH["B"] * np.exp(0.2 * z[2]), "alpha": TRUTH["alpha"] + 0.02 * z[3],
             "beta": TRUTH["beta"] + 0.02 * z[4]}
    noise = "normal" if i % 2 == 0 else "t3"
    N, D = (a.ravel() for a in np.meshgrid(N_GRID, D_GRID))

    def runs(N, D):
        mean = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
        eps = rng.standard_normal(N.size) if noise == "normal" else rng.standard_t(3, N.size)
        return mean, mean * np.exp(SIGMA * eps)

    _, loss = runs(N, D)
    n_opt, d_opt = chinchilla_optimum(C_TARGET, **{k: truth[k] for k in ("A", "B", "alpha",
                                                                         "beta")})
    held_n = np.append(HELDOUT_N[:3], float(n_opt))
    held_d = np.append(HELDOUT_D[:3], float(d_opt))
    mean_h, loss_h = runs(held_n, held_d)
    targets = {**truth, "N_opt": float(n_opt), "D/N_opt": float(d_opt / n_opt),
               "loss_new_run": loss_h, "loss_law": mean_h}
    return {"i": i, "noise": noise, "N": N, "D": D, "loss": loss, "targets": targets,
            "held_N": held_n, "held_D": held_d}


def _records(sim, method, draws, law_draws, new_run_draws, seconds, note=""):
    """One record per interval: quantity, truth, lo, hi, hit."""
    out = []
    lo_q, hi_q = (1 - LEVEL) / 2, (1 + LEVEL) / 2
    values = {**{k: draws[k] for k in PARAMS}}
    n_opt, d_opt = chinchilla_optimum(C_TARGET, **{k: draws[k] for k in ("A", "B", "alpha",
                                                                         "beta")})
    values["N_opt"], values["D/N_opt"] = n_opt, d_opt / n_opt
    for q, v in values.items():
        lo, hi = np.quantile(v, [lo_q, hi_q])
        out.append((q, 0, sim["targets"][q], lo, hi))
    for q, v in (("loss_new_run", new_run_draws), ("loss_law", law_draws)):
        lo, hi = np.quantile(v, [lo_q, hi_q], axis=0)
        out += [(q, j, sim["targets"][q][j], lo[j], hi[j]) for j in range(v.shape[1])]
    return [{"dataset": sim["i"], "noise": sim["noise"], "method": method, "quantity": q,
             "point": j, "truth": float(t), "lo": float(lo), "hi": float(hi),
             "hit": bool(lo <= t <= hi), "seconds": seconds, "note": note}
            for q, j, t, lo, hi in out]


def run_bayes(sim, settings):
    import bayescale
    from bayescale.extrapolation import with_form_error
    from bayescale.predict import predict

    data = bayescale.ScalingData.from_arrays(N=sim["N"], D=sim["D"], loss=sim["loss"])
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bayescale.ConvergenceWarning)
        # the chains asked for (2 x 500 + 500): fit's more_chains would add chains to the data
        # sets whose ESS falls short, which changes their draws, not what is calibrated
        fit = bayescale.fit(data, "chinchilla", seed=sim["i"], progress=False,
                            more_chains=False, **settings)
    pred = fit.predict(N=sim["held_N"], D=sim["held_D"], seed=sim["i"])
    seconds = time.perf_counter() - t0
    d = fit.diagnostics
    note = f"rhat={d['max_rhat']:.4f};ess={d['min_ess_bulk']:.0f};div={d['divergences']}"
    out = (_records(sim, "bayes", fit.params_draws(), pred.law_draws, pred.new_run_draws,
                    seconds, note)
           + _records(sim, "bayes law-only", fit.params_draws(), pred.law_draws,
                      pred.noise_only_draws, seconds, note))
    # the same fit and refits under each form-error prior of the trade-off (new runs only)
    bare = fit.posterior.without_form_error()
    for label, prior in C.form_error_variants():
        p = predict(with_form_error(bare, fit.evidence, prior, seed=fit.seed),
                    N=sim["held_N"], D=sim["held_D"], seed=sim["i"])
        out += [r for r in _records(sim, f"prior: {label}", fit.params_draws(), p.law_draws,
                                    p.new_run_draws, seconds, note)
                if r["quantity"] == "loss_new_run"]
    return out


def run_lsq(sim, method, n_boot):
    from bayescale.posterior import Posterior
    from bayescale.predict import predict

    fitter = (functools.partial(bl.huber_approach3, grid=SUB_GRID) if method == "huber"
              else bl.curve_fit_chinchilla)
    arrays = (sim["N"], sim["D"], sim["loss"])
    t0 = time.perf_counter()
    point = fitter(*arrays)
    draws = bl.bootstrap(fitter, *arrays, n=n_boot, seed=sim["i"], start=point.params)
    one = {k: np.array([v]) for k, v in point.params.items()}
    fitted = predict(Posterior.from_draws("chinchilla", one), N=sim["N"], D=sim["D"]).law_draws[0]
    sigma = C.residual_sigma(np.log(sim["loss"]), np.log(fitted), 5)
    pred = predict(Posterior.from_draws("chinchilla", draws, {"sigma": sigma}),
                   N=sim["held_N"], D=sim["held_D"], seed=sim["i"])
    seconds = time.perf_counter() - t0
    return _records(sim, method, draws, pred.law_draws, pred.new_run_draws, seconds,
                    f"sigma={sigma:.5f}")


def nu_prior(nu):
    """The Bayesian fit's ``nu`` for ``--nu``: None (bayescale's default), a number, or
    ``"learned"``: a parameter with the Gamma(2, 0.1) prior of Juarez and Steel (2010)."""
    if nu is None:
        return None
    if nu == "learned":
        from bayescale.priors import learned_nu

        return learned_nu()
    return float(nu)


def nu_arg(text):
    """``--nu``'s value: ``"learned"`` or a number above 0 (checked here, not in a worker)."""
    import argparse

    if text == "learned":
        return text
    try:
        if float(text) > 0:
            return text
    except ValueError:
        pass
    raise argparse.ArgumentTypeError(f"expected a number above 0 or 'learned', got {text!r}")


def one_dataset(i, quick, nu=None):
    """Every method on data set ``i``; records of all intervals."""
    sim = simulate(i)
    settings = (dict(chains=1, warmup=150, draws=150) if quick
                else dict(chains=2, warmup=500, draws=500))
    if nu is not None:
        settings["priors"] = {"nu": nu_prior(nu)}
    n_boot = 20 if quick else 200
    recs = run_bayes(sim, settings)
    recs += run_lsq(sim, "huber", n_boot)
    recs += run_lsq(sim, "curve_fit", n_boot)
    return recs


def grid_check(n):
    """Huber on the 243-start sub-grid vs Epoch's full 4500-start grid on data sets 0..n-1."""
    diffs = []
    for i in range(n):
        sim = simulate(i)
        sub = bl.huber_approach3(sim["N"], sim["D"], sim["loss"], grid=SUB_GRID).params
        full = bl.huber_approach3(sim["N"], sim["D"], sim["loss"]).params
        diffs.append(max(abs(sub[k] / full[k] - 1) for k in full))
    return diffs


def tables(df, n_sets):
    cols = ["method", "noise", "sets"] + list(QUANTITIES)
    rows = []
    for method in METHODS:
        for noise in ("all", "normal", "t3"):
            g = df[df["method"] == method]
            if noise != "all":
                g = g[g["noise"] == noise]
            row = {"method": method, "noise": noise, "sets": g["dataset"].nunique()}
            for q in QUANTITIES:
                row[q] = C.coverage_cell(g.loc[g["quantity"] == q, "hit"].to_numpy())
            rows.append(row)
    cov = C.markdown_table(rows, cols)

    width_rows = []
    for method in METHODS:
        g = df[df["method"] == method]
        row = {"method": method}
        for q in QUANTITIES:
            h = g[g["quantity"] == q]
            row[q] = float(np.median((h["hi"] - h["lo"]) / np.abs(h["truth"])))
        row["median seconds per fit"] = float(g.groupby("dataset")["seconds"].first().median())
        width_rows.append(row)
    width = C.markdown_table(width_rows, ["method"] + list(QUANTITIES)
                             + ["median seconds per fit"])

    new_run = df[df["quantity"] == "loss_new_run"]
    far = new_run[new_run["point"] == 3].pivot(index="dataset", columns="method",
                                               values="hi") - new_run[
        new_run["point"] == 3].pivot(index="dataset", columns="method", values="lo")
    ratio = far["bayes"] / far["bayes law-only"]
    p90 = new_run[new_run["method"] == "bayes"]["hit"].mean()
    ratio_line = (f"new-run 90% coverage of the default (4 held-out runs per data set, up to "
                  f"100x): {p90:.3f} {'ok' if 0.85 <= p90 <= 0.95 else '**OUTSIDE [0.85, 0.95]**'}"
                  f" (law-only: {new_run[new_run['method'] == 'bayes law-only']['hit'].mean():.3f})"
                  f"; width of the default's 90% band at 100x over the law-only band's, "
                  f"median over data sets {ratio.median():.3f} (90% of data sets below "
                  f"{ratio.quantile(0.9):.3f}; target at most 1.3) "
                  f"{'ok' if ratio.median() <= 1.3 else '**ABOVE 1.3**'}")
    verdict = [ratio_line]
    trade = []
    for label, _ in C.form_error_variants():
        method = f"prior: {label}"
        g = new_run[new_run["method"] == method]
        if g.empty:
            continue
        r = far[method] / far["bayes law-only"]  # width at 100x, data set by data set
        trade.append({"prior": label, "new-run 90% coverage": g["hit"].mean(),
                      "at 100x": g.loc[g["point"] == 3, "hit"].mean(),
                      "width at 100x / form exact, median": r.median(),
                      "90% of data sets below": r.quantile(0.9)})
    shipped = new_run[new_run["method"] == "prior: c 16, scatter 1 (shipped)"]
    if not shipped.empty:
        same = np.array_equal(shipped.sort_values(["dataset", "point"])[["lo", "hi"]].to_numpy(),
                              new_run[new_run["method"] == "bayes"].sort_values(
                                  ["dataset", "point"])[["lo", "hi"]].to_numpy())
        verdict.append("the trade-off's shipped row redraws the default's bands: "
                       + ("identical" if same else "**DIFFERENT**"))
    bayes = df[df["method"] == "bayes"]
    for q in QUANTITIES:
        p = bayes.loc[bayes["quantity"] == q, "hit"].mean()
        ok = 0.80 <= p <= 0.97
        verdict.append(f"{q} {p:.2f} {'ok' if ok else '**OUTSIDE [0.80, 0.97]**'}")
    notes = bayes.groupby("dataset")["note"].first().str.extract(
        r"rhat=([\d.na]+);ess=(\d+);div=(\d+)").astype(float)
    diag = (f"Bayesian fits: max R-hat > 1.01 on {(notes[0] > 1.01).sum()} of {n_sets}; bulk "
            f"ESS < 400 on {(notes[1] < 400).sum()}; divergent transitions on "
            f"{(notes[2] > 0).sum()} (total {int(notes[2].sum())}).")
    return cov, width, verdict, diag, trade


def plot(df, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4))
    x = np.arange(len(QUANTITIES))
    for k, method in enumerate(METHODS):
        g = df[df["method"] == method]
        p = np.array([g.loc[g["quantity"] == q, "hit"].mean() for q in QUANTITIES])
        n = np.array([(g["quantity"] == q).sum() for q in QUANTITIES])
        se = np.sqrt(p * (1 - p) / n)
        ax.errorbar(x + (k - 1.5) * 0.18, p, yerr=1.96 * se, fmt="o", capsize=3, label=method)
    ax.axhline(LEVEL, color="k", lw=0.8)
    ax.axhspan(0.80, 0.97, color="0.9", zorder=0, label="0.80-0.97 (issue 5)")
    ax.set_xticks(x, QUANTITIES, rotation=20)
    ax.set_ylabel("coverage of the 90% interval (±1.96 SE)")
    ax.set_ylim(0, 1.02)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    C.save_png(fig, path)
    plt.close(fig)


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv, extra=[
        (("--datasets",), dict(type=int, default=None,
                               help="number of simulated data sets (default 100; quick 2)")),
        (("--jobs",), dict(type=int, default=1, help="worker processes (default 1)")),
        (("--nu",), dict(default=None, type=nu_arg, help="the Bayesian fit's Student-t degrees of freedom: "
                                            "a number, or 'learned' (Gamma(2, 0.1)); default: "
                                            "bayescale's")),
    ])
    n_sets = args.datasets or (2 if args.quick else 100)
    t0 = time.perf_counter()
    records = []
    if args.jobs > 1:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(args.jobs, mp_context=ctx) as pool:
            for k, recs in enumerate(pool.map(one_dataset, range(n_sets),
                                              [args.quick] * n_sets, [args.nu] * n_sets)):
                records += recs
                print(f"  data set {k + 1}/{n_sets} done", flush=True)
    else:
        for i in range(n_sets):
            records += one_dataset(i, args.quick, args.nu)
            print(f"  data set {i + 1}/{n_sets} done ({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    n_check = 0 if args.quick else 3
    diffs = grid_check(n_check)
    seconds = time.perf_counter() - t0
    df = pd.DataFrame.from_records(records)
    cov, width, verdict, diag, trade = tables(df, n_sets)

    text = C.header(
        "Calibration of 90% intervals on simulated Chinchilla-shaped data"
        + (" (QUICK smoke run)" if args.quick else ""),
        seconds=seconds,
        notes=[
            f"{n_sets} simulated data sets of 42 runs (7 N in [5e7, 1e10] x 6 D in [1e9, 3e11]); "
            "truth drawn around Epoch AI's fit (E 1.82, A 478, B 2144, alpha 0.347, beta 0.367); "
            "noise scale 0.008 on log loss, Gaussian on even data sets, Student-t(3) on odd.",
            f"N_opt, D/N_opt: compute-optimal split at {C_TARGET:.2g} FLOPs (100x the largest "
            "training budget). loss_new_run: 3 held-out runs at (N, D) = (3e10, 6e11), (2e10, "
            "2e12), (7e10, 1.4e12) with the data set's noise, against the new-run interval; "
            "loss_law: the law's mean there, against the law interval.",
            "Bayes: default priors, " + (
                "Student-t(2) noise" if args.nu is None else
                "Student-t noise with nu learned (Gamma(2, 0.1))" if args.nu == "learned" else
                f"Student-t({float(args.nu):g}) noise (--nu)") + ", " + (
                "1 chain 150+150 (quick)" if args.quick else "2 chains x 500+500") + ". "
            "Least squares: " + ("20" if args.quick else "200") + " bootstrap resamples; "
            "Huber from the 243-start sub-grid (every other value of Epoch's axes): "
            + (f"optimum within max relative {max(diffs):.1e} of the full 4500-start grid's on "
               f"data sets 0..{n_check - 1}" if diffs else "not checked against the full grid")
            + "; new runs add Gaussian noise with the point fit's residual scale.",
            "Cells: coverage ± binomial standard error (held-out losses: 4 runs per data set, "
            "so the error is a little optimistic).",
        ],
    )
    text += "\n## Coverage of the central 90% interval\n\n" + cov
    text += ("\n## Median relative width of the 90% interval ((hi - lo) / |truth|)\n\n" + width)
    text += ("\n## The default against its targets; Bayesian 90% coverage against the band "
             "[0.80, 0.97]\n\n- "
             + "\n- ".join(verdict) + f"\n- {diag}\n")
    if trade:
        text += ("\n## Narrower form-error priors where the law is exactly right\n\n"
                 "The same fits and refits, their new-run bands redrawn under each prior of "
                 "`_common.form_error_variants` (c: the slope's scale, scatter: the run-to-run "
                 "part, both per decade in units of the fit's noise scale): coverage of the 90% "
                 "band on the 4 held-out runs and on the one at 100x, and the band's width at "
                 "100x over the form-exact band's (median over data sets, and the 90th "
                 "percentile). What each one costs on the real splits: prior_surface.md.\n\n"
                 + C.markdown_table(trade, list(trade[0])))
    C.write_table(args.out, "calibration.md", text)
    C.write_text(args.out / "calibration_raw.csv", df.to_csv(index=False))
    plot(df, args.out / "calibration.png")


if __name__ == "__main__":
    os.environ.setdefault("MPLBACKEND", "Agg")
    main()
