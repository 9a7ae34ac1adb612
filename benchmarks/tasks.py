"""Downstream accuracy on the OLMo ladder: train on 190M-760M, predict the 1B and 3B runs.

    python benchmarks/tasks.py [--quick] [--out DIR]

Writes ``tasks.md`` and ``tasks.png`` to ``benchmarks/results/``. The bundled ``olmo_ladder``
(Bhagia et al. 2024) has 30 runs: 5 sizes x 0.5-10x Chinchilla tokens and a 1xC rerun per size,
each with its whole training curve and 20 task columns (bits per byte of the correct answer and
accuracy). Every method is fitted on the 18 runs of 190M, 370M and 760M parameters and predicts
the accuracy of the 12 final checkpoints of 1.3B and 3.2B (up to 4.2x the parameters and 17.5x the
compute of the largest training run, C = 6ND):

* **two-step** (bayescale's default, :func:`bayescale.tasks.fit_tasks`): step 1 the Chinchilla
  law of task loss on the final checkpoints (NUTS, form error included), step 2 a sigmoid from
  task loss to accuracy on the second half of every run's checkpoints, chained per draw with a
  new run's noise; the predictability checks on (flat, not monotone, backtest of 760M from
  190M-370M);
* **single-step**: the sigmoid of accuracy against log compute on the final checkpoints;
* **least squares** (the ladder's own method): scipy ``curve_fit`` of the same two steps on the
  same rows, a point prediction.

Per task: median absolute error in accuracy points over the 12 targets and, for the Bayesian
methods, how many of the 12 lie inside the 90% band of a new run. Pooled: the 90% coverage over
all (task, model) pairs and over the tasks the checks pass; the number of tasks with a median
error of at most 2 points.
"""

from __future__ import annotations

import time
import warnings

import numpy as np
from scipy.optimize import curve_fit

import _common as C
from bayescale.baselines import curve_fit_chinchilla, log_loss_of
from bayescale.datasets import list_tasks, load_task
from bayescale.summaries import interval
from bayescale.tasks import fit_tasks

TRAIN_MAX = 1e9  # 760M parameters and below


def _sigmoid(u, b, c, k, u0):
    return b + (c - b) / (1 + np.exp(k * (u - u0)))


def lsq_two_step(train, target_N, target_D):
    """The ladder's method: curve_fit of the law on final checkpoints, then of the sigmoid on the
    second-half checkpoints; the point prediction at the targets (NaN where a step fails)."""
    f = train.final
    try:
        step1 = curve_fit_chinchilla(train.N[f], train.D[f], train.loss[f])
        loss = np.exp(log_loss_of("chinchilla", step1.params, target_N, target_D))
    except Exception:  # noqa: BLE001 - a failed baseline is a NaN row, not a crash
        return np.full(len(target_N), np.nan)
    rows = train.link_rows("second_half")
    u, acc = train.loss[rows], train.accuracy[rows]
    try:
        p, _ = curve_fit(_sigmoid, u, acc, p0=[train.chance or 0.25, 0.8, 1 / np.std(u),
                                             np.mean(u)],
                         bounds=([0, 0, 0, -10], [1, 1, 1e3, 10]), maxfev=20000)
    except Exception:  # noqa: BLE001
        return np.full(len(target_N), np.nan)
    return _sigmoid(loss, *p)


def score(pred, actual):
    med, lo, hi = interval(pred.accuracy_draws, 0.9)
    inside = (actual >= lo) & (actual <= hi)
    return np.abs(med - actual), inside, hi - lo


def main(argv=None) -> int:
    args = C.parse_args(__doc__.splitlines()[0], argv)
    start = time.perf_counter()
    names = list_tasks()
    sampler = dict(chains=4, warmup=1000, draws=1000)
    if args.quick:
        names, sampler = names[:2], dict(chains=2, warmup=150, draws=150)
    tasks = {n: load_task(task=n) for n in names}
    train = {n: t.subset(t.N < TRAIN_MAX) for n, t in tasks.items()}
    held = {n: t.subset(t.N > TRAIN_MAX) for n, t in tasks.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t0 = time.perf_counter()
        two = fit_tasks(train, progress=False, **sampler)
        two_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        one = fit_tasks(train, steps=1, check=False, progress=False, **sampler)
        one_s = time.perf_counter() - t0
    rows, pooled = [], {"two": [], "one": [], "two_ok": []}
    good = {"two": 0, "one": 0, "lsq": 0}
    for n in names:
        h = held[n]
        f = h.final
        actual = h.accuracy[f]
        e2, in2, w2 = score(two[n].predict(h.N[f], h.D[f], level=0.9), actual)
        e1, in1, _ = score(one[n].predict(h.N[f], h.D[f], level=0.9), actual)
        el = np.abs(lsq_two_step(train[n], h.N[f], h.D[f]) - actual)
        pooled["two"] += list(in2)
        pooled["one"] += list(in1)
        if two[n].predictable:
            pooled["two_ok"] += list(in2)
        for key, e in (("two", e2), ("one", e1), ("lsq", el)):
            good[key] += bool(np.nanmedian(e) <= 0.02)
        rows.append({"task": n, "chance": tasks[n].chance,
                     "two-step err": 100 * np.median(e2), "two-step in 90%": f"{in2.sum()}/12",
                     "width": 100 * np.median(w2),
                     "single-step err": 100 * np.median(e1), "single-step in 90%":
                     f"{in1.sum()}/12", "LSQ err": 100 * np.nanmedian(el),
                     "flags": "; ".join(fl.split(":")[0] for fl in two[n].flags) or "-"})
    flagged = sum(not two[n].predictable for n in names)
    notes = [
        f"{len(names)} tasks x 12 targets (1.3B and 3.2B, 0.5-10x Chinchilla tokens, two 1xC "
        "reruns); trained on the 18 runs of 190M-760M",
        f"NUTS {sampler['chains']} chains x {sampler['warmup']} + {sampler['draws']}, "
        "defaults otherwise; fit times (every task in one program per step): "
        f"two-step with checks {two_s:.0f} s, single-step {one_s:.0f} s",
        "err: median absolute error of the median prediction in accuracy points; in 90%: "
        "targets inside the 90% band of a new run; width: median width of that band (points)",
    ]
    summary = [
        {"method": "two-step (default)",
         "90% coverage, all pairs": np.mean(pooled["two"]),
         "90% coverage, tasks not flagged": (np.mean(pooled["two_ok"]) if pooled["two_ok"]
                                             else float("nan")),
         "tasks with median error <= 2 points": f"{good['two']} of {len(names)}"},
        {"method": "single-step", "90% coverage, all pairs": np.mean(pooled["one"]),
         "90% coverage, tasks not flagged": "",
         "tasks with median error <= 2 points": f"{good['one']} of {len(names)}"},
        {"method": "least squares (two-step)", "90% coverage, all pairs": "",
         "90% coverage, tasks not flagged": "",
         "tasks with median error <= 2 points": f"{good['lsq']} of {len(names)}"},
    ]
    text = (C.header("Downstream accuracy on the OLMo ladder", seconds=time.perf_counter() - start,
                     notes=notes)
            + f"\n{flagged} of {len(names)} tasks flagged as not predictable by the checks.\n\n"
            + C.markdown_table(summary, list(summary[0]))
            + "\n" + C.markdown_table(rows, list(rows[0])))
    C.write_table(args.out, "tasks.md", text)
    try:
        from bayescale.plots import plot_task

        import matplotlib.pyplot as plt

        pick = "hellaswag_val" if "hellaswag_val" in names else names[0]
        h = held[pick]
        fig = plot_task(two[pick], N=h.N[h.final], D=h.D[h.final], actual=h.accuracy[h.final])
        C.save_png(fig, args.out / "tasks.png")
        plt.close(fig)
    except ImportError:
        pass
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
