"""The real extrapolation splits the benchmarks score: train on the smaller runs of a published
scaling study, predict the larger ones.

Every split is a :class:`Split`: the study's family (the same runs under several accounting
rules count as one family), a name, the law fitted, the axis it extrapolates along, and the
training and held-out runs. Nothing here fits; the data are bayescale's bundled data sets.

* Chinchilla (Epoch AI's 240 runs): train C <= 1e20 and C <= 3e20 FLOPs.
* Porian et al. 2024: each of the 15 configuration/corpus groups, the top two IsoFLOP budgets
  held out.
* datablations (Muennighoff et al. 2023), the 41 single-epoch runs: train N < 1e9, predict the
  larger models; and the data-constrained law on the repeated runs: train on up to 4 epochs,
  predict 5 to 100 epochs (past ~100 epochs the C4 loss rises with repetition, overfitting that
  no law here describes, so those 59 runs are left out).
* OLMo ladder (Bhagia et al. 2024), final C4 loss: train 190M-760M, predict 1B and 3B.
* revisiting (Alabdulmohsin et al. 2022): the 10 one-variable learning curves, split by the data
  set's own ``is_train`` flag.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import bayescale as bs
from bayescale.backtesting import subset
from bayescale.datasets import load_frame

__all__ = ["Split", "real_splits"]


@dataclass(frozen=True, eq=False)
class Split:
    family: str
    name: str
    law: str
    by: str
    train: bs.ScalingData
    test: bs.ScalingData


def _split(family, name, law, by, data, train_mask) -> Split:
    train_mask = np.asarray(train_mask, dtype=bool)
    return Split(family, name, law, by, subset(data, train_mask), subset(data, ~train_mask))


def real_splits(quick: bool = False) -> list[Split]:
    """Every split, in a fixed order; ``quick``: one Chinchilla split and one learning curve
    (smoke runs)."""
    out = []
    chin = bs.load_dataset("chinchilla")
    for cut in (1e20, 3e20):
        out.append(_split("chinchilla", f"Chinchilla C <= {cut:.0e}", "chinchilla", "C", chin,
                          chin.C <= cut))
    por = bs.load_dataset("porian2024", config="all", corpus="all")
    for group in np.unique(por.group):
        g = subset(por, por.group == group)
        budgets = np.round(np.log2(g.C))
        top = np.unique(budgets)[-2]
        out.append(_split("porian", f"Porian {group}", "chinchilla", "C", g, budgets < top))
    blat = bs.load_dataset("datablations")
    out.append(_split("datablations", "datablations N < 1e9", "chinchilla", "N", blat,
                      blat.N < 1e9))
    every = bs.load_dataset("datablations", all=True)
    epochs = every.D / every.U
    keep = subset(every, epochs <= 100)
    out.append(_split("datablations repeated", "datablations epochs <= 4 -> 5-100",
                      "data_constrained", "D", keep, (keep.D / keep.U) <= 4))
    olmo = bs.load_dataset("olmo_ladder")
    out.append(_split("olmo", "OLMo ladder 190M-760M", "chinchilla", "N", olmo, olmo.N < 1e9))
    curves = load_frame("revisiting")
    for (domain, model), g in curves.groupby(["domain", "model"], sort=True):
        data = bs.load_dataset("revisiting", domain=domain, model=str(model))
        train = g["is_train"].to_numpy() == 1
        out.append(_split(f"revisiting {domain}", f"revisiting {domain} {model}", "power", "x",
                          data, train))
    if quick:
        out = [out[0], next(s for s in out if s.family.startswith("revisiting"))]
    return out
