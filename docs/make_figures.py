"""Regenerate the figures in docs/img from the bundled Chinchilla runs (run by hand, ~1 min).

    python docs/make_figures.py            # fits with the defaults (4 chains, 1000 + 1000)
    python docs/make_figures.py FIT.nc     # or reuse a fit saved by `bayescale fit --out`
    python docs/make_figures.py FIT.nc residuals ppc   # only these figures
"""

import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import bayescale as bs  # noqa: E402
from bayescale import plots  # noqa: E402
from bayescale.baselines import fit_lsq  # noqa: E402

OUT = Path(__file__).parent / "img"
BUDGET = 5.88e23  # FLOPs of Chinchilla: 6 x 70e9 parameters x 1.4e12 tokens

fit = bs.load_fit(sys.argv[1]) if len(sys.argv) > 1 else bs.fit(bs.load_dataset("chinchilla"))
d = fit.data


def lsq():
    return {name: fit_lsq(method, "chinchilla", N=d.N, D=d.D, loss=d.loss, bootstrap=200, seed=0)
            for name, method in (("Huber (Approach 3)", "huber"), ("curve_fit", "curve_fit"))}


figures = {
    "fit": lambda: plots.plot_fit(fit, extrapolate_to=BUDGET),
    "frontier": lambda: plots.plot_frontier(fit, (1e18, 1e25)),
    "isoflop": lambda: plots.plot_isoflop(fit, [1e19, 1e20, 1e21, 1e22, BUDGET]),
    "tokens_per_param": lambda: plots.plot_tokens_per_param(fit, BUDGET),
    "decision": lambda: plots.plot_decision(fit, BUDGET),
    "bayes_vs_lsq": lambda: plots.plot_bayes_vs_lsq(fit, lsq(), extrapolate_to=BUDGET),
    "residuals": lambda: plots.plot_residuals(fit),
    "ppc": lambda: plots.plot_ppc(fit),
    "trace": lambda: plots.plot_diagnostics(fit, "trace"),
    "pair": lambda: plots.plot_diagnostics(fit, "pair"),
    "rank": lambda: plots.plot_diagnostics(fit, "rank"),
}
OUT.mkdir(exist_ok=True)
only = set(sys.argv[2:]) or set(figures)
for name, draw in figures.items():
    if name not in only:
        continue
    out = draw()
    fig = out if isinstance(out, plt.Figure) else getattr(out, "figure", None) or out[0].figure
    fig.savefig(OUT / f"{name}.png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    print(OUT / f"{name}.png")
