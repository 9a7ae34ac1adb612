"""Divergences and cost of NUTS by target acceptance, on the bundled real data.

    python benchmarks/sampler.py [--quick] [--out DIR] [--seeds S]

Writes ``sampler.md`` to ``benchmarks/results/``: for each data set and target acceptance,
``S`` fits (seeds 0..S-1, 4 chains x 1000 + 1000) with the default law, noise and priors, and
how many of them reported divergent transitions, the divergences in all, the mean leapfrog
steps per draw, the smallest bulk ESS of the 4 chains, how many fits were short only of ESS
and sampled more chains (``fit``'s default ``more_chains``) and the smallest bulk ESS with
them, and the median wall time of a fit (programs loaded; the added chains included). This is
the evidence behind ``fit``'s default ``target_accept``: the highest target whose cost stays
small where every target gives clean fits.

Data sets: Chinchilla (Epoch AI's 240 runs), its C <= 3e20 FLOPs subset (177 runs, the training
split of the extrapolation benchmark), Porian's default configuration (121 runs), and the
revisiting default learning curve with the power law.
"""

from __future__ import annotations

import statistics
import time
import warnings

import numpy as np

import _common as C
import bayescale

TARGETS = (0.8, 0.9, 0.95, 0.98)


def cases(quick: bool) -> dict[str, tuple[bayescale.ScalingData, str]]:
    chin = bayescale.load_dataset("chinchilla")
    train = chin.C <= 3e20
    out = {
        "Chinchilla (240)": (chin, "chinchilla"),
        "Chinchilla C <= 3e20 (177)": (bayescale.ScalingData.from_arrays(
            N=chin.N[train], D=chin.D[train], loss=chin.loss[train]), "chinchilla"),
        "Porian default (121)": (bayescale.load_dataset("porian2024"), "chinchilla"),
        "revisiting default": (bayescale.load_dataset("revisiting"), "power"),
    }
    return dict(list(out.items())[:1]) if quick else out


def min_ess(fit, chains: int) -> float:
    """The smallest bulk ESS over the fit's reported parameters in its first ``chains``."""
    import arviz as az

    names = list(fit.law.sampled) + list(fit.noise_params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return min(float(az.ess(fit._chain_draws(n)[:chains], method="bulk"))
                   for n in dict.fromkeys(names) if fit._chain_draws(n) is not None)


def main(argv=None) -> None:
    args = C.parse_args(__doc__.splitlines()[0], argv,
                        extra=[(("--seeds",), {"type": int, "default": 4,
                                               "help": "fits per data set and target"})])
    seeds = 1 if args.quick else args.seeds
    settings = (dict(chains=2, warmup=100, draws=100) if args.quick
                else dict(chains=4, warmup=1000, draws=1000))
    targets = TARGETS[1:3] if args.quick else TARGETS
    start = time.perf_counter()
    rows = []
    for name, (data, law) in cases(args.quick).items():
        for target in targets:
            divs, steps, ess, ess_all, added, seconds = [], [], [], [], [], []
            for seed in range(seeds):
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", bayescale.ConvergenceWarning)
                    fit = bayescale.fit(data, law, seed=seed, target_accept=target,
                                        progress=False, **settings)
                seconds.append(time.perf_counter() - t0)
                d = fit.diagnostics
                k = settings["chains"]  # the chains asked for; more_chains adds only when
                divs.append(int(d["divergences"]))  # there are no divergences
                ess.append(min_ess(fit, k))
                ess_all.append(float(d["min_ess_bulk"]))
                added.append(int(fit.options.get("added_chains", 0)))
                steps.append(float(np.mean(fit._arrays["stats"]["n_steps"][:k])))
            rows.append({
                "data set": name, "law": law, "target_accept": target,
                "fits with divergences": f"{sum(v > 0 for v in divs)} of {seeds}",
                "divergences": sum(divs),
                "leapfrog steps per draw": float(np.mean(steps)),
                "min bulk ESS": min(ess),
                "fits that added chains": f"{sum(a > 0 for a in added)} of {seeds}",
                "min bulk ESS, chains added": min(ess_all),
                # the first seed's fit also loads or compiles the programs
                "median fit_s": statistics.median(seconds[1:] or seconds),
            })
            print(rows[-1], flush=True)
    settings_text = (f"{settings['chains']} chains x {settings['warmup']} + {settings['draws']}"
                     f" draws; seeds 0-{seeds - 1}")
    text = C.header(
        "NUTS target acceptance: divergences and cost on the bundled data",
        seconds=time.perf_counter() - start,
        notes=[f"Each row: {seeds} fits ({settings_text}), default law, Student-t noise and "
               "priors. leapfrog steps per draw and min bulk ESS: over the chains asked for, "
               "every seed. fits that added chains: short only of bulk ESS (no divergences, "
               "R-hat <= 1.02), so fit's default more_chains sampled up to 3x the chains more; "
               "min bulk ESS, chains added: over all of each fit's chains. median fit_s: wall "
               "time of one fit with its programs loaded and its added chains (the first "
               "seed's fit, which loads them, is left out)."])
    columns = ["data set", "law", "target_accept", "fits with divergences", "divergences",
               "leapfrog steps per draw", "min bulk ESS", "fits that added chains",
               "min bulk ESS, chains added", "median fit_s"]
    C.write_table(args.out, "sampler.md", text + "\n" + C.markdown_table(rows, columns) + "\n")


if __name__ == "__main__":
    main()
