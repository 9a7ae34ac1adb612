"""The noise model's tails, scored on real extrapolations: Student-t degrees of freedom.

    python benchmarks/noise.py [--quick] [--out DIR] [--learned]

Writes ``noise.md`` to ``benchmarks/results/``. ``--quick`` runs the smoke splits with tiny
sampling (numbers mean nothing).

``bayescale.fit`` models each run's log loss around the law with Student-t noise of 2 degrees of
freedom (``nu``): its tails keep a few outlying runs from bending the law. Beyond the data the
law's misfit behaves like outliers too, so how heavy the tails are changes both the median a
split extrapolates to and its bands. Each noise model below fits every split of
``extrapolation.py`` as the default does (4 chains x 1000 + 1000, one retry) and is scored as
its default is: the form-error prior learned leave-one-family-out from the same noise model's
fits, the same targets (pooled 50%/90% coverage, the per-split 90% floor, the per-split error
bar against the best least-squares baseline, Huber's pooled error).

* ``nu = 4``: lighter tails (the default until this study chose nu = 2);
* ``nu = 2``: what ``bayescale.fit`` ships (its rows are extrapolation.py's default), a
  Student-t with no variance;
* ``nu learned`` (only with ``--learned``): ``nu`` a parameter with the Gamma(2, 0.1) prior of
  Juarez and Steel (2010). Its fits take a little longer (2026-12-07, 2 cores: 908 s for every
  split against 737 s for nu = 2). Before commit 52b6393 its 18 Chinchilla-law fits hung: the
  mode search's batched LAPACK calls deadlocked on a split CPU (see ``_nuts._serial_solves``).

The OLMo split and the data-constrained split repeat configurations, so their fits learn the
seed noise (Gaussian effects) under every noise model. The least-squares baselines are fitted
once (their point fits do not depend on the noise model; their bands are not scored here).
"""

from __future__ import annotations

import time
import warnings

import numpy as np

import _common as C
import bayescale as bs
from _splits import real_splits
from extrapolation import (LSQ_METHODS, bayes_methods, fit_settings, lofo_priors, lsq_method,
                           pooled, records_of, score, targets)


def noise_models(learned=False):
    """name -> priors override of each noise model (None: the shipped nu = 2)."""
    from bayescale.priors import learned_nu

    models = {"nu = 4": {"nu": 4.0}, "nu = 2": None}
    if learned:
        models["nu learned"] = {"nu": learned_nu()}
    return models


def fits_with(splits, settings, priors):
    """Every split's default fit with ``priors`` on its per-run noise, one ``fit_many`` call
    per law and kind (splits whose runs repeat a configuration keep the repeated-run model and
    its priors, in a program of their own, as ``fit_many(repeats="auto")`` runs them)."""
    fits = {}
    for law in dict.fromkeys(s.law for s in splits):
        idx = [i for i, s in enumerate(splits) if s.law == law]
        repeated = [i for i in idx if splits[i].train.has_repeats(bs.get_law(law).inputs)]
        for part, override in (([i for i in idx if i not in repeated], priors),
                               (repeated, None)):
            if not part:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", bs.ConvergenceWarning)
                group = bs.fit_many({str(i): splits[i].train for i in part}, law,
                                    priors=override, progress=False, **settings)
            fits.update({i: group[str(i)] for i in part})
    return fits


def default_rows(splits, fits):
    """The default's scored rows on every split, with the form-error prior learned from the
    other families (extrapolation.py's leave one family out)."""
    _, lofo = lofo_priors(*records_of(splits, fits))
    rows = []
    for i, s in enumerate(splits):
        y = np.log(s.test.loss)
        res = bayes_methods(s, fits[i], lofo[s.family])["default"]
        rows.append({"split": s.name, "family": s.family, **score(y, res),
                     "_abs": np.abs(y - res["pred"])})
    return rows


def nu_summary(fit):
    """Median and 90% interval of a fit's learned nu ('' when nu is fixed or absent)."""
    post = fit.idata.posterior
    if "nu" not in post:
        return ""
    q = np.quantile(np.asarray(post["nu"]).ravel(), [0.05, 0.5, 0.95])
    return f"{q[1]:.3g} [{q[0]:.3g}, {q[2]:.3g}]"


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv, extra=[
        (("--learned",), dict(action="store_true",
                              help="also learn nu (Gamma(2, 0.1) prior)"))])
    t0 = time.perf_counter()
    splits = real_splits(quick=args.quick)
    settings = fit_settings(args.quick)
    lsq = {}
    for i, s in enumerate(splits):
        for method in LSQ_METHODS.get(s.law, ()):
            res = lsq_method(s, method, n_boot=20, quick=args.quick)
            y = np.log(s.test.loss)
            lsq.setdefault(method, []).append({"split": s.name, "family": s.family,
                                               **score(y, res), "_abs": np.abs(y - res["pred"])})
    results, unconverged, learned = {}, {}, {}
    for name, priors in noise_models(args.learned).items():
        t1 = time.perf_counter()
        fits = fits_with(splits, settings, priors)
        results[name] = default_rows(splits, fits)
        if priors and not isinstance(priors["nu"], float):
            learned = {s.name: nu_summary(fits[i]) for i, s in enumerate(splits)}
        unconverged[name] = [s.name for i, s in enumerate(splits)
                             if not fits[i].diagnostics["converged"]]
        print(f"  {name}: {len(splits)} splits in {time.perf_counter() - t1:.0f} s; pooled "
              f"cov90 {pooled(results[name])['cov90']:.3f}", flush=True)
    write(args, splits, results, unconverged, lsq, learned, time.perf_counter() - t0)


def write(args, splits, results, unconverged, lsq, learned, seconds):
    names = list(noise_models(args.learned))
    checks = {n: targets({"default": results[n], **lsq}) for n in names}
    target_rows = [{"target": t, **{n: f"{checks[n][k][1]} ({'yes' if checks[n][k][2] else 'NO'})"
                                    for n in names}}
                   for k, (t, _, _) in enumerate(checks[names[0]])]
    cols = ["n_test", "mae", "bias", "cov50", "cov80", "cov90", "cov95", "width90", "mlpd",
            "min split cov90"]
    pooled_rows = [{"noise": n, **pooled(results[n])} for n in names]
    best = {}
    for method_rows in lsq.values():
        for r in method_rows:
            best[r["split"]] = min(best.get(r["split"], np.inf), r["mae"])
    split_rows = []
    for k, s in enumerate(splits):
        row = {"split": s.name, "n_test": s.test.n_points,
               "best least-squares mae": best.get(s.name, "")}
        for n in names:
            r = results[n][k]
            row[f"mae {n}"], row[f"cov90 {n}"] = r["mae"], r["cov90"]
        if learned:
            row["nu learned: median [90%]"] = learned[s.name]
        split_rows.append(row)
    text = C.header(
        "Noise tails on real extrapolations: Student-t degrees of freedom" + (
            " (QUICK smoke run)" if args.quick else ""), seconds=seconds,
        notes=[
            "Splits and scoring: those of extrapolation.py's default (new-run bands with the "
            "form error; its prior learned from the other families' fits under the same noise "
            "model). Bayes settings: " + ("2 chains x 150+150 (quick)" if args.quick else
                                          "4 chains x 1000+1000, one retry") + ".",
            "Noise models: " + ", ".join(names) + " (nu = 2 is what bayescale.fit ships"
            + ("; learned: prior Gamma(2, 0.1), Juarez and Steel 2010" if args.learned else "")
            + "). Splits whose training runs repeat a configuration keep the repeated-run "
            "model (Gaussian seed effects, no nu) under every one: " + ", ".join(
                s.name for s in splits if s.train.has_repeats(bs.get_law(s.law).inputs))
            + ".",
            "Not converged at the end: " + "; ".join(
                f"{n}: {', '.join(unconverged[n]) or 'none'}" for n in names) + ".",
            "Not measured here: the well-specified simulation (calibration.py), where the noise "
            "is Gaussian and heavier tails widen the new-run band.",
        ])
    text += ("\n## Targets of the default (issue 16), per noise model\n\n"
             + C.markdown_table(target_rows, ["target", *names]))
    text += ("\n## Pooled over every split\n\n"
             + C.markdown_table(pooled_rows, ["noise", *cols]))
    text += "\n## Per split\n\n" + C.markdown_table(split_rows, list(split_rows[0]))
    C.write_table(args.out, "noise.md", text)


if __name__ == "__main__":
    main()
