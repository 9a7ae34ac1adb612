"""Extrapolation on real data: fit on the smaller runs of each bundled study, predict the larger.

    python benchmarks/extrapolation.py [--quick] [--out DIR] [--learn]

Writes ``extrapolation.md`` and ``extrapolation.png`` to ``benchmarks/results/``. ``--quick``
runs one Chinchilla split and one learning curve with tiny sampling (a smoke test; numbers mean nothing). ``--learn``
also prints the form-error prior learned from every study, the one ``bayescale`` ships
(:data:`bayescale.extrapolation.PRIOR`).

Splits (``_splits.py``): Chinchilla C <= 1e20 and <= 3e20 FLOPs; each of Porian et al.'s 15
configuration/corpus groups without its top two IsoFLOP budgets; datablations' single-epoch
runs, N < 1e9 to the larger models; the OLMo ladder's final C4 losses, 190M-760M to 1B and 3B;
the 10 revisiting learning curves by their ``is_train`` flag.

Methods (new-run bands on log loss)
-----------------------------------
* ``default``: :func:`bayescale.fit` as it comes (4 chains x 1000 + 1000, Student-t noise), with
  the law's form error beyond the data: its own leave-future-out refits and the cross-study
  prior. The prior used on a study is learned from the **other** families only (leave one
  family out), so no study is scored with numbers learned on itself.
* ``zero-mean``: the same spread of form error without its mean (the refits' sign ignored).
* ``law only``: the same fit with the law's form taken as exact (parameters and noise: the
  band bayescale gave before).
* ``conformal``: split-conformal calibration of the law-only band on the fit's own
  leave-future-out refits: the band's half-width is the law-only predictive sd times the
  conformal quantile of the refits' standardised errors (law-only where a fit has no refits).
* ``huber``, ``curve_fit``: Hoffmann/Epoch Approach 3 and ``curve_fit`` of the Chinchilla law;
  for the curves ``curve_fit`` of the power law and log-log ``ols`` of the pure power law; each
  with a 400-resample bootstrap and Gaussian noise of its residual scale.

Metrics on the held-out runs: median absolute error (``mae``) and RMSE of the predicted median
log loss, signed ``bias`` (observed minus predicted), coverage of the central 50/80/90/95%
bands, mean 90% width, mean log predictive density (``mlpd``; not for conformal bands).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import time
import warnings

import numpy as np
from scipy import stats

import _common as C
import bayescale as bs
from _splits import real_splits
from bayescale import baselines as bl
from bayescale.extrapolation import (PRIOR, FormErrorPrior, directions_of, holdout,
                                     holdout_log_density, with_form_error)
from bayescale.predict import predict

LEVELS = (0.5, 0.8, 0.9, 0.95)
#: Hyperparameters searched: log c mean, log c sd, scatter, evidence inflation, offset.
#: c reaches past the 16 learned on 2026-12-02, which sat at the edge of a grid ending there.
GRID = list(itertools.product(np.log([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0]), [0.5, 1.0],
                              [0.0, 1.0, 2.0],
                              [1.0, 3.0, 10.0, 30.0],
                              [0.0, 1.0, 2.0, 4.0, 8.0]))
QUICK_GRID = {"e": (0.0, 1.0), "a": (5.0, 10.0), "b": (5.0, 10.0), "alpha": (0.5,),
              "beta": (0.5,)}
LEAST_SQUARES = ("huber", "curve_fit", "ols")
METHODS = ("default", "zero-mean", "law only", "conformal", "stacked", *LEAST_SQUARES)
#: The laws stacked by leave-future-out density on the splits of each law (the first is the
#: split's own; none for the data-constrained law, whose split keeps the default).
STACKED = {"chinchilla": ("chinchilla", "chinchilla_tied", "kaplan"),
           "power": ("power", "broken_power")}
#: The least-squares baselines of each law (none for the data-constrained law).
LSQ_METHODS = {"chinchilla": ("huber", "curve_fit"), "power": ("curve_fit", "ols")}


# ------------------------------------------------------------------------------ Bayes fits
def fit_settings(quick):
    """The Bayesian fits' settings. A fit that does not converge is refitted with twice the
    warm-up and draws, once, as README tells users to (fit_many's retries): a study is not
    scored on chains that disagree. The smoke run's tiny chains never converge, so it does
    not retry."""
    return (dict(chains=2, warmup=150, draws=150) if quick
            else dict(chains=4, warmup=1000, draws=1000, retries=1))


def bayes_fits(splits, settings, law_of=lambda s: s.law):
    """The default fit of every split's training runs, one ``fit_many`` call per law
    (``law_of(split)``; None skips the split). ``fit_many(repeats="auto")`` gives each split
    the model ``bs.fit(split.train)`` would: the repeated-run model exactly when its own runs
    repeat a configuration (the OLMo split's do; no Chinchilla-law split's other runs do)."""
    fits = {}
    for law in dict.fromkeys(law_of(s) for s in splits if law_of(s) is not None):
        idx = [i for i, s in enumerate(splits) if law_of(s) == law]
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", bs.ConvergenceWarning)
            group = bs.fit_many({str(i): splits[i].train for i in idx}, law, progress=False,
                                **settings)
        print(f"  {len(idx)} {law} fits with their refits in {time.perf_counter() - t0:.0f} s",
              flush=True)
        fits.update({i: group[str(i)] for i in idx})
    return fits


def records_of(splits, fits):
    """What the form-error prior is scored on: each split's (held-out errors of its law-only
    fit, the fit's noise scale, the fit's own refits), its family, and each family's
    form-error direction."""
    records, families, direction = [], [], {}
    for i, s in enumerate(splits):
        f = fits[i]
        outer = holdout(f.posterior.without_form_error(), s.test, 0.0, directions_of(f.law))
        records.append((outer, float(np.median(f.posterior.new_run_sigma)), f.evidence))
        families.append(s.family)
        direction[s.family] = directions_of(f.law)
    return records, families, direction


def family_average(scores, records, families, fams):
    """The families' average per-run joint log density of the held-out errors (each family
    weighted equally, each split by its held-out runs): one value per row of ``scores``."""
    sizes = np.array([len(outer.error) for outer, _, _ in records])
    total = np.zeros(len(scores))
    for fam in fams:
        cols = [j for j, f in enumerate(families) if f == fam]
        total += scores[:, cols].sum(axis=1) / sizes[cols].sum()
    return total / len(fams)


def grid_scores(records):
    """(grid points, splits) joint log density of each split's held-out errors under each
    prior of :data:`GRID`."""
    return np.array([[holdout_log_density(outer, sigma, evidence, FormErrorPrior(*g))
                      for outer, sigma, evidence in records] for g in GRID])


def learn_prior(scores, records, families, *, exclude=None, among=None):
    """The grid point that maximises the families' average per-run joint log density of the
    held-out errors (each family weighted equally, each split by its held-out runs); ``among``
    limits the families learned from. :data:`PRIOR` when no family is left."""
    fams = [f for f in dict.fromkeys(families) if f != exclude and (among is None or f in among)]
    if not fams:
        return PRIOR
    return FormErrorPrior(*GRID[int(np.argmax(family_average(scores, records, families,
                                                             fams)))])


def lofo_priors(records, families, direction):
    """The grid's scores (:func:`grid_scores`) and, for each family, the prior learned with
    it left out, from the families whose form error follows the same direction: studies
    extrapolated in compute (or x) teach nothing about repetition (epochs, the
    data-constrained law), nor the reverse."""
    fams = list(dict.fromkeys(families))
    same = {fam: {g for g in fams if (direction[g] == ("epochs",)) == (
        direction[fam] == ("epochs",))} for fam in fams}
    scores = grid_scores(records)
    return scores, {fam: learn_prior(scores, records, families, exclude=fam, among=same[fam])
                    for fam in fams}


# ------------------------------------------------------------------------------ methods
def bands(log_draws):
    """Median and central bands of (S, P) log-loss draws."""
    out = {"pred": np.median(log_draws, axis=0)}
    for level in LEVELS:
        out[level] = np.quantile(log_draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    return out


def bayes_methods(split, fit, prior, seed=0):
    """default, zero-mean, law only and conformal on one split."""
    inputs = {k: getattr(split.test, k) for k in fit.law.inputs}
    y = np.log(split.test.loss)
    exact = fit.posterior.without_form_error()
    law_only = predict(exact, **inputs, seed=seed)
    post = with_form_error(exact, fit.evidence, prior, seed=seed)
    default = predict(post, **inputs, seed=seed)
    centred = dataclasses.replace(post, form_slopes=post.form_slopes
                                  - post.form_slopes.mean(axis=0))
    zero = predict(centred, **inputs, seed=seed)
    out = {}
    for name, pred in (("default", default), ("zero-mean", zero), ("law only", law_only)):
        out[name] = {**bands(np.log(pred.new_run_draws)),
                     "lpd": pred.log_density(split.test.loss)}
    out["conformal"] = conformal(fit, law_only, y)
    return out


def stacked(split, fits, prior, seed=0):
    """The split's laws (:data:`STACKED`) mixed by their leave-future-out stacking weights
    (:func:`bayescale.lfo_stacking` on each fit's own refits), each with its form error; and
    the weights. The default alone where the laws share no refit."""
    inputs = {k: getattr(split.test, k) for k in fits[0].law.inputs}
    try:
        table = bs.lfo_stacking(fits)
    except bs.FitError:
        table = None
    weights = ([1.0] + [0.0] * (len(fits) - 1) if table is None
               else table["weight"].reindex([f.law.name for f in fits]).to_numpy())
    parts = [with_form_error(f.posterior.without_form_error(), f.evidence, prior, seed=seed)
             for f in fits]
    post = bs.Posterior.mixture(parts, weights=weights, seed=seed)
    pred = predict(post, **inputs, seed=seed)
    return ({**bands(np.log(pred.new_run_draws)), "lpd": pred.log_density(split.test.loss)},
            dict(zip((f.law.name for f in fits), weights)))


def conformal(fit, law_only, y):
    """Split-conformal bands from the fit's own refits (see the module docstring)."""
    log_new = np.log(law_only.noise_only_draws)
    centre, sd = np.median(log_new, axis=0), log_new.std(axis=0)
    scores = np.concatenate([np.abs(h.error) / np.sqrt(np.diag(h.law_cov) + h.noise_var)
                             for h in (fit.evidence.holdouts if fit.evidence else ())] or
                            [np.array([])])
    out = {"pred": centre, "lpd": None}
    for level in LEVELS:
        if scores.size:
            k = min(scores.size, math.ceil((scores.size + 1) * level))
            q = np.sort(scores)[k - 1]
        else:  # no refits: the law-only band
            q = stats.norm.ppf(0.5 + level / 2)
        out[level] = (centre - q * sd, centre + q * sd)
    return out


def lsq_method(split, method, *, n_boot, quick, seed=0):
    """A least-squares baseline with its bootstrap (the fit's Posterior) on one split."""
    law = "chinchilla" if split.law == "chinchilla" else ("power_pure" if method == "ols"
                                                        else "power")
    kw = dict(N=split.train.N, D=split.train.D) if law == "chinchilla" else dict(x=split.train.x)
    if method == "huber" and quick:
        kw["grid"] = QUICK_GRID
    fit = bl.fit_lsq(method, law, **kw, loss=split.train.loss, bootstrap=n_boot, seed=seed,
                     flops_per_param_token=split.train.flops_per_param_token)
    inputs = {k: getattr(split.test, k) for k in bs.get_law(law).inputs}
    pred = predict(fit, **inputs, seed=seed)
    point = bs.Posterior.from_draws(law, fit.params)
    out = bands(np.log(pred.new_run_draws))
    out["pred"] = np.log(predict(point, **inputs).law_draws[0])  # the point fit's prediction
    out["lpd"] = pred.log_density(split.test.loss)
    return out


# ------------------------------------------------------------------------------ scores
def score(y, res):
    err = y - res["pred"]
    out = {"n_test": y.size, "mae": float(np.median(np.abs(err))),
           "rmse": float(np.sqrt(np.mean(err**2))), "bias": float(np.mean(err))}
    for level in LEVELS:
        lo, hi = res[level]
        out[f"cov{round(100 * level)}"] = float(np.mean((y >= lo) & (y <= hi)))
    lo, hi = res[0.9]
    out["width90"] = float(np.mean(hi - lo))
    out["mlpd"] = float(np.mean(res["lpd"])) if res.get("lpd") is not None else math.nan
    return out


def pooled(rows, key=None):
    """Pool per-split rows (weights: held-out runs); mae is the median over all runs."""
    n = np.array([r["n_test"] for r in rows], float)
    out = {"n_test": int(n.sum())}
    for k in ("rmse",):
        out[k] = float(np.sqrt(np.sum(n * np.array([r[k] for r in rows]) ** 2) / n.sum()))
    for k in ("bias", *(f"cov{round(100 * q)}" for q in LEVELS), "width90", "mlpd"):
        out[k] = float(np.sum(n * np.array([r[k] for r in rows])) / n.sum())
    out["mae"] = float(np.median(np.concatenate([r["_abs"] for r in rows])))
    multi = [r["cov90"] for r in rows if r["n_test"] > 1]
    out["min split cov90"] = float(min(multi)) if multi else math.nan
    return out


def plot(rows_by_method, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (cal, per) = plt.subplots(1, 2, figsize=(11, 4.3), layout="constrained")
    levels = np.array(LEVELS)
    for i, (method, rows) in enumerate(rows_by_method.items()):
        p = pooled(rows)
        cal.plot(levels, [p[f"cov{round(100 * q)}"] for q in levels], "o-", color=f"C{i}",
                 lw=2.2 if method == "default" else 1.1, label=method)
    cal.plot([0, 1], [0, 1], color="0.5", lw=1)
    cal.set(xlim=(0.45, 1), ylim=(0, 1.02), xlabel="nominal level of the new-run band",
            ylabel="share of held-out runs inside (pooled)", title="calibration on real splits")
    cal.legend(fontsize="small")
    names = [r["split"] for r in rows_by_method["default"]]
    x = np.arange(len(names))
    for i, method in enumerate(("default", "law only", "curve_fit")):
        cov = {r["split"]: r["cov90"] for r in rows_by_method[method]}
        per.plot(x, [cov.get(n, np.nan) for n in names], "o", ms=4, color=f"C{i}",
                 label=method)
    per.axhline(0.9, color="0.5", lw=1)
    per.axhline(0.75, color="0.5", lw=1, ls=":")
    per.set_xticks(x, names, rotation=90, fontsize=6)
    per.set(ylim=(-0.03, 1.03), ylabel="90% coverage per split")
    per.legend(fontsize="small")
    C.save_png(fig, path)
    plt.close(fig)


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv, extra=[
        (("--learn",), dict(action="store_true",
                            help="print the prior learned from every family"))])
    t0 = time.perf_counter()
    splits = real_splits(quick=args.quick)
    settings = fit_settings(args.quick)
    n_boot = 20 if args.quick else 400
    fits = bayes_fits(splits, settings)
    others = {}  # split index -> fits of the other laws stacked with the split's own
    for k in range(1, max(len(v) for v in STACKED.values())):
        def law_of(s, k=k):
            laws = STACKED.get(s.law, ())
            return laws[k] if k < len(laws) else None
        for i, f in bayes_fits(splits, settings, law_of).items():
            others.setdefault(i, []).append(f)
    records, families, direction = records_of(splits, fits)
    fams = list(dict.fromkeys(families))
    t1 = time.perf_counter()
    scores, lofo = lofo_priors(records, families, direction)
    everywhere = learn_prior(scores, records, families,
                             among={g for g in fams if direction[g] != ("epochs",)})
    print(f"  {len(GRID)} priors scored on {len(records)} splits in "
          f"{time.perf_counter() - t1:.0f} s", flush=True)
    print(f"  prior from every family: {everywhere}", flush=True)
    rows = {m: [] for m in METHODS}
    weights = {}
    for i, s in enumerate(splits):
        y = np.log(s.test.loss)
        results = bayes_methods(s, fits[i], lofo[s.family])
        if i in others:
            results["stacked"], weights[s.name] = stacked(s, [fits[i], *others[i]],
                                                          lofo[s.family])
        else:
            results["stacked"] = results["default"]
        for method in LSQ_METHODS.get(s.law, ()):
            results[method] = lsq_method(s, method, n_boot=n_boot, quick=args.quick)
        for method, res in results.items():
            row = {"split": s.name, "family": s.family, "method": method, **score(y, res),
                   "_abs": np.abs(y - res["pred"])}
            rows[method].append(row)
        d = fits[i].diagnostics
        print(f"  {s.name:<48} default cov90 {rows['default'][-1]['cov90']:.2f} "
              f"law-only {rows['law only'][-1]['cov90']:.2f} "
              f"{'' if d['converged'] else '(not converged)'}", flush=True)
    rows = {m: r for m, r in rows.items() if r}
    seconds = time.perf_counter() - t0
    write(args, splits, fits, rows, everywhere, lofo, seconds, weights, others)
    if args.learn:
        print(f"learned from every family: {everywhere}\nshipped: {PRIOR}")


def targets(rows):
    """The checks of the issue, on the default: pooled coverage, per-split coverage, error."""
    d = rows["default"]
    p = pooled(d)
    lsq = [m for m in LEAST_SQUARES if m in rows]
    out = [("pooled 90% coverage in [0.85, 0.95]", f"{p['cov90']:.3f}",
            0.85 <= p["cov90"] <= 0.95),
           ("pooled 50% coverage in [0.40, 0.60]", f"{p['cov50']:.3f}",
            0.40 <= p["cov50"] <= 0.60)]
    multi = [r for r in d if r["n_test"] > 1]
    low = [r["split"] for r in multi if r["cov90"] < 0.75]
    out.append(("90% coverage >= 0.75 on each split of 2 or more held-out runs",
                f"{len(multi) - len(low)} of {len(multi)}" + (f" (below: {', '.join(low)})"
                                                              if low else ""), not low))
    single = [r for r in d if r["n_test"] == 1]
    if single:
        out.append(("... and on the single-run splits (revisiting NMT): runs inside the 90% band",
                    f"{sum(r['cov90'] for r in single):.0f} of {len(single)}",
                    sum(r["cov90"] for r in single) >= 0.75 * len(single)))
    worse = []
    by_split = {(m, r["split"]): r for m in lsq for r in rows[m]}
    compared = [r for r in d if any((m, r["split"]) in by_split for m in lsq)]
    for r in compared:
        best = min(by_split[m, r["split"]]["mae"] for m in lsq if (m, r["split"]) in by_split)
        if r["mae"] > 1.05 * best:
            worse.append(f"{r['split']} ({r['mae']:.4f} vs {best:.4f})")
    out.append(("median absolute error <= 1.05x the best least-squares method, each split "
                "with one",
                f"{len(compared) - len(worse)} of {len(compared)}" + (f"; worse: {'; '.join(worse)}"
                                                        if worse else ""), not worse))
    if "huber" in rows:
        huber = [r for r in rows["huber"]]
        mine = [r for r in d if r["split"] in {h["split"] for h in huber}]
        a, b = pooled(mine)["mae"], pooled(huber)["mae"]
        out.append(("pooled median absolute error below Huber's (Chinchilla-law splits)",
                    f"{a:.4f} vs {b:.4f}", a < b))
    return out


def error_bar_for_scale(rows):
    """The per-split error target applied to every method, least-squares ones included: on the
    splits where two or more least-squares methods ran, the share on which a method's median
    absolute error is at most 1.05x the best of the least-squares methods other than itself."""
    lsq = [m for m in LEAST_SQUARES if m in rows]
    mae = {(m, r["split"]): r["mae"] for m in rows for r in rows[m]}
    splits = [r["split"] for r in rows["default"]
              if sum((m, r["split"]) in mae for m in lsq) >= 2]
    out = []
    for m in rows:
        if m == "conformal":  # conformal's median is the law-only one
            continue
        held = [sp for sp in splits if (m, sp) in mae]
        ok = sum(mae[m, sp] <= 1.05 * min(mae[o, sp] for o in lsq if o != m and (o, sp) in mae)
                 for sp in held)
        out.append({"method": m, "splits": len(held), "within 1.05x of the best other "
                    "least-squares method": ok})
    return out, splits


def write(args, splits, fits, rows, everywhere, lofo, seconds, weights, others):
    cols = ["method", "n_test", "mae", "rmse", "bias", "cov50", "cov80", "cov90", "cov95",
            "width90", "mlpd", "min split cov90"]
    pooled_rows = [{"method": m, **pooled(r)} for m, r in rows.items()]
    fam_rows = []
    for fam in dict.fromkeys(s.family for s in splits):
        for m, r in rows.items():
            part = [x for x in r if x["family"] == fam]
            if part:
                fam_rows.append({"family": fam, "method": m, **pooled(part)})
    split_cols = ["split", "method", "n_test", "mae", "bias", "cov50", "cov90", "width90",
                  "mlpd"]
    split_rows = [r for s in splits for m in rows for r in rows[m] if r["split"] == s.name]
    unconverged = [s.name for i, s in enumerate(splits) if not fits[i].diagnostics["converged"]]
    unconverged_others = [f"{s.name} ({f.law.name})" for i, s in enumerate(splits)
                          for f in others.get(i, ()) if not f.diagnostics["converged"]]
    refitted = [f"{s.name} ({fits[i].options['refits']}x)" for i, s in enumerate(splits)
                if fits[i].options.get("refits")]
    text = C.header(
        "Extrapolation to held-out larger runs of real studies" + (
            " (QUICK smoke run)" if args.quick else ""), seconds=seconds,
        notes=[
            "Splits: " + "; ".join(f"{s.name} ({s.train.n_points} train, {s.test.n_points} "
                                   "held out)" for s in splits) + ".",
            "All metrics on log loss of the held-out runs; bands are a new run's. mae: median "
            "absolute error of the predicted median; bias: observed minus predicted; covXX: "
            "share inside the central XX% band; width90: mean width of the 90% band; mlpd: mean "
            "log predictive density (higher is better; conformal gives bands only). Pooled rows "
            "weight splits by their held-out runs; `min split cov90` is over splits of 2 or "
            "more held-out runs.",
            "default: the form-error prior learned from the other families only (leave one "
            "family out), among the families whose form error follows the same direction "
            "(compute or x; epochs for the data-constrained law, which has no other family and "
            "so gets the shipped PRIOR): " + "; ".join(f"{fam}: {p.log_c_mean:.2f}/{p.log_c_sd}/{p.scatter}/"
                                        f"{p.evidence_inflation}/{p.offset}" for fam, p in lofo.items())
            + " (log c mean / log c sd / scatter / evidence inflation / offset).",
            f"Learned from every family extrapolated in compute or x (what bayescale ships as "
            f"PRIOR): log c mean "
            f"{everywhere.log_c_mean:.3f} (c = {math.exp(everywhere.log_c_mean):.3g}), log c "
            f"sd {everywhere.log_c_sd}, scatter {everywhere.scatter}, evidence inflation "
            f"{everywhere.evidence_inflation}, offset {everywhere.offset}; shipped: "
            f"{PRIOR.log_c_mean:.3f} / {PRIOR.log_c_sd} / {PRIOR.scatter} / "
            f"{PRIOR.evidence_inflation} / {PRIOR.offset}.",
            "Bayes settings: " + ("2 chains x 150+150 (quick)" if args.quick else
                                  "4 chains x 1000+1000") + "; bootstrap resamples: "
            + ("20" if args.quick else "400") + ". Refitted with twice the warm-up and draws "
            "because the first fit did not converge: " + (", ".join(refitted) or "none")
            + ". Not converged at the end (R-hat > 1.01, ESS < 400 or divergences): "
            + (", ".join(unconverged) or "none") + "; of the other laws stacked: "
            + (", ".join(unconverged_others) or "none") + ".",
            "stacked: the laws " + "; ".join(f"{', '.join(v)} (splits of the {k} law)"
                                             for k, v in STACKED.items())
            + " fitted as the default is, each with its form error, mixed by their stacking "
            "weights on the leave-future-out density of their own refits' held-out runs "
            "(bayescale.lfo_stacking); the data-constrained split keeps the default.",
        ])
    text += "\n## Targets (the default)\n\n" + C.markdown_table(
        [{"target": t, "measured": v, "met": "yes" if ok else "NO"} for t, v, ok in
         targets(rows)], ["target", "measured", "met"])
    bar, bar_splits = error_bar_for_scale(rows)
    if bar_splits:
        text += ("\n## The per-split error target, for scale\n\nThe target above asks the "
                 "default to be within 1.05x of whichever least-squares method did best on each "
                 "split. Here every method is held to the same bar against the least-squares "
                 f"methods other than itself, on the {len(bar_splits)} splits where two or more "
                 "of them ran (a least-squares method that meets it on every split would be the "
                 "one to beat):\n\n" + C.markdown_table(bar, list(bar[0])))
    text += "\n## Pooled over every split\n\n" + C.markdown_table(pooled_rows, cols)
    if weights:
        laws = list(dict.fromkeys(law for w in weights.values() for law in w))
        text += ("\n## Stacking weights\n\nEach split's laws weighted by the leave-future-out "
                 "density of their own refits (blank: not a law of that split):\n\n"
                 + C.markdown_table([{"split": sp, **{law: w.get(law, "") for law in laws}}
                                     for sp, w in weights.items()], ["split", *laws]))
    text += "\n## Per family\n\n" + C.markdown_table(fam_rows, ["family"] + cols)
    text += "\n## Per split\n\n" + C.markdown_table(split_rows, split_cols)
    C.write_table(args.out, "extrapolation.md", text)
    plot(rows, args.out / "extrapolation.png")


if __name__ == "__main__":
    main()
