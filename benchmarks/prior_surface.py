"""How much the real splits' held-out log density depends on the form-error prior.

    python benchmarks/prior_surface.py [--quick] [--out DIR]

Writes ``prior_surface.md`` to ``benchmarks/results/``. The splits and fits are
``extrapolation.py``'s (same settings and seeds, so the same fits, refits and held-out errors);
each split's held-out errors are scored under the shipped prior
(:data:`bayescale.extrapolation.PRIOR`) and under priors that change one of its numbers: c
(log c sd as shipped) from 2 to 64, the run-to-run scatter, the offset. The score is the one
``extrapolation.py --learn`` maximises: the per-run joint log density of the held-out errors,
averaged over the families extrapolated in compute or x (each family weighted equally). A
difference far below the spread between families is one the splits cannot tell apart.

A second table scores narrower priors (``_common.form_error_variants``, the list
``calibration.py`` measures where the law is exactly right) by the same density and by the
coverage of their central 50% and 90% bands on the held-out runs, pooled over every split and
on the worst split of 2 or more runs: what a narrower default would cost on real
extrapolations. Coverage here is read from each run's PIT under the model the density scores
(:func:`bayescale.extrapolation.holdout_pit`: the law's band as a Gaussian of its draws'
covariance), so it can differ a little from ``extrapolation.py``'s, which counts draws.
"""

from __future__ import annotations

import dataclasses
import math
import time

import numpy as np

import _common as C
from _splits import real_splits
from bayescale.extrapolation import PRIOR, holdout_log_density, holdout_pit
from extrapolation import bayes_fits, family_average, fit_settings, records_of

#: Each prior scored: the shipped one with one number changed.
VARIANTS = ([("c", c, dataclasses.replace(PRIOR, log_c_mean=math.log(c)))
             for c in (2.0, 4.0, 8.0, 16.0, 32.0, 64.0)]
            + [("scatter", v, dataclasses.replace(PRIOR, scatter=v)) for v in (0.0, 0.5, 2.0)]
            + [("offset", v, dataclasses.replace(PRIOR, offset=v)) for v in (0.0, 1.0, 4.0)])


def main(argv=None):
    args = C.parse_args(__doc__.splitlines()[0], argv)
    t0 = time.perf_counter()
    splits = real_splits(quick=args.quick)
    fits = bayes_fits(splits, fit_settings(args.quick))
    records, families, direction = records_of(splits, fits)
    fams = [f for f in dict.fromkeys(families) if direction[f] != ("epochs",)]
    rows = []
    for what, value, prior in VARIANTS:
        scores = np.array([[holdout_log_density(o, sigma, ev, prior)
                            for o, sigma, ev in records]])
        per_family = {f: family_average(scores, records, families, [f])[0] for f in fams}
        rows.append({"changed": what, "value": value,
                     "shipped": "yes" if prior == PRIOR else "",
                     "average over families": family_average(scores, records, families,
                                                             fams)[0], **per_family})
    trade = []
    for label, prior in C.form_error_variants():
        scores = np.array([[holdout_log_density(o, sigma, ev, prior)
                            for o, sigma, ev in records]])
        pits = [np.abs(holdout_pit(o, sigma, ev, prior) - 0.5) for o, sigma, ev in records]
        pooled = np.concatenate(pits)
        worst, which = min((float(np.mean(p <= 0.45)), s.name)
                           for p, s in zip(pits, splits) if p.size >= 2)
        trade.append({"prior": label,
                      "average over families": family_average(scores, records, families,
                                                              fams)[0],
                      "50% coverage": float(np.mean(pooled <= 0.25)),
                      "90% coverage": float(np.mean(pooled <= 0.45)),
                      "worst split, 90%": worst, "which": which})
    text = C.header("Held-out log density of the real splits under priors near the shipped "
                    "one" + (" (QUICK smoke run)" if args.quick else ""),
                    seconds=time.perf_counter() - t0, notes=[
        f"Shipped prior: {PRIOR}.",
        "Each row changes one number of it (c = exp(log c mean); scatter and offset in units "
        "of the fit's noise scale). Scores: per-run joint log density of each split's held-out "
        "errors (nats), per family and averaged over the families extrapolated in compute or x, "
        "as extrapolation.py --learn maximises it.",
        "Fits: " + ("2 chains x 150+150 (quick)" if args.quick else
                    "4 chains x 1000+1000, unconverged fits refitted once with twice as many")
        + ", as extrapolation.py."])
    text += "\n" + C.markdown_table(rows, list(rows[0]))
    text += ("\n## Narrower priors: what they cost on the real splits\n\n"
             f"Held-out log density (family average, as above) and the coverage of each prior's "
             f"central 50% and 90% bands on the {sum(len(o.error) for o, _, _ in records)} "
             f"held-out runs of the {len(records)} splits, pooled, and on the worst split of 2 "
             "or more runs. The same list is measured where the law is exactly right in "
             "calibration.md.\n\n" + C.markdown_table(trade, list(trade[0])))
    C.write_table(args.out, "prior_surface.md", text)


if __name__ == "__main__":
    main()
