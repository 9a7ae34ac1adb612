"""The two-step task model (bayescale.tasks) and training curves as data.

Fast tests use fixed draws (a step 1 posterior from loose draws, a degenerate step 2) so that the
chained prediction, the probability of a target and the compute for a target have closed forms;
the slow tests sample: recovery on simulated ladders and a backtest on the OLMo ladder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import optimize, stats

from bayescale import Posterior, ScalingData
from bayescale.datasets import list_tasks, load_frame, load_task
from bayescale.errors import DataError, FitError
from bayescale.tasks import (TaskData, TaskFit, _checks, _link_prior, fit_tasks, link_mean,
                             load_task_fit)

from conftest import SAMPLER

TRUTH1 = dict(E=0.4, A=60.0, B=90.0, alpha=0.3, beta=0.3)  # task loss (bpb) law
TRUTH2 = dict(floor=0.25, ceiling=0.9, k=8.0, u0=0.8)      # sigmoid link


def law(N, D, p=TRUTH1):
    return p["E"] + p["A"] / N ** p["alpha"] + p["B"] / D ** p["beta"]


def sigmoid(u, p=TRUTH2):
    return p["floor"] + (p["ceiling"] - p["floor"]) / (1 + np.exp(p["k"] * (u - p["u0"])))


def fixed_fit(sigma=1e-9, tau=0.0, S=400):
    """A TaskFit whose step 1 is the exact law (no noise, no form error) and whose step 2 is
    the exact link with run noise sd sqrt(sigma^2 + tau^2)."""
    from bayescale import Domain

    data = _ladder(seed=0)
    step1 = Posterior.from_draws("chinchilla", {k: np.full(S, v) for k, v in TRUTH1.items()},
                                 None, domain=Domain.from_data(data.finals()))
    draws = {k: np.full(S, v) for k, v in TRUTH2.items()}
    draws.update(sigma=np.full(S, sigma), tau=np.full(S, tau))
    return TaskFit(data, step1, "sigmoid", draws)


def _ladder(sizes=(1e8, 2e8, 4e8, 8e8), mults=(10, 20, 40, 100), seed=0, noise=0.005,
            run_sd=0.005, task="sim", checkpoints=6):
    """Training curves of a simulated ladder: each run's checkpoints at 1/6 .. 6/6 of its
    tokens, task loss from the law (intermediate checkpoints a little higher), accuracy from
    the sigmoid plus a run effect and checkpoint noise."""
    rng = np.random.default_rng(seed)
    rows = []
    for N in sizes:
        for m in mults:
            D_final = m * N
            delta = rng.normal(0, run_sd)
            for j in range(1, checkpoints + 1):
                D = D_final * j / checkpoints
                L = law(N, D) * (1 + 0.02 * (1 - j / checkpoints)) * np.exp(rng.normal(0, 0.003))
                acc = sigmoid(L) + delta + rng.normal(0, noise)
                rows.append(dict(run=f"{N:g}-{m}", N=N, D=D, bpb=L, acc=acc))
    return TaskData.from_frame(pd.DataFrame(rows), loss_col="bpb", accuracy_col="acc",
                               task=task, chance=0.25)


# ------------------------------------------------------------------------------- the links
def test_links_match_their_published_forms():
    u = np.linspace(0.3, 2.0, 9)
    p = dict(floor=0.25, ceiling=0.8, k=6.0, u0=1.1)
    # Bhagia et al.: Acc(L) = a / (1 + exp(-k' (L - L0))) + b with a = ceiling - floor, b = floor
    # and k' = -k (accuracy falls with loss)
    assert np.allclose(link_mean(u, p, "sigmoid"),
                       0.55 / (1 + np.exp(6.0 * (u - 1.1))) + 0.25)
    assert np.allclose(link_mean(np.array([1.1]), p, "sigmoid"), (0.25 + 0.8) / 2)
    with warnings.catch_warnings():  # far past the midpoint: the floor exactly, no overflow
        warnings.simplefilter("error")
        far = link_mean(np.array([1e3]), dict(p, k=50.0), "sigmoid")
    assert far[0] == 0.25
    # Gadre et al.: Err(L) = eps - k exp(-gamma L); acc = 1 - Err
    eps, k, gamma, ref = 0.7, 0.05, 2.0, 1.0
    q = dict(floor=1 - eps, kappa=k * np.exp(-gamma * ref), gamma=gamma, u_ref=ref)
    assert np.allclose(link_mean(u, q, "exponential"), 1 - (eps - k * np.exp(-gamma * u)))
    with pytest.raises(FitError, match="unknown link"):
        link_mean(u, p, "probit")


@pytest.mark.parametrize("link", ["sigmoid", "exponential"])
def test_link_prior_does_not_depend_on_the_units_of_task_loss(link):
    """Task loss in bits or nats (or shifted): the prior on accuracy curves is the same.
    Drawn with one seed, the prior's link through u and through 1/ln(2) u + 0.3 gives the
    same accuracies at the same checkpoints; a prior not scaled to the data would not."""
    import jax
    from numpyro.infer import Predictive

    from bayescale.tasks import LinkModel

    u = np.array([0.8, 0.9, 1.0, 1.1, 1.25])
    model = LinkModel(link, 1, "independent")
    mus = []
    for v in (u, u / np.log(2.0) + 0.3):
        prior = _link_prior(v, 0.25)
        draws = Predictive(model, num_samples=300)(jax.random.PRNGKey(0), v, None, None,
                                                   prior)
        p = {k: np.asarray(x)[:, None] for k, x in draws.items() if k != "obs"}
        if link == "exponential":
            p["u_ref"] = np.full_like(p["floor"], float(np.mean(v)))
        mus.append(link_mean(v[None, :], p, link))
    assert np.allclose(mus[0], mus[1], rtol=1e-5)  # float32 draws
    assert np.std(mus[0]) > 0.01  # and the draws do vary
    # the floor sits at chance, tightly, when chance is known
    assert _link_prior(u, 0.25)["floor_loc"] == 0.25
    assert _link_prior(u, None)["floor_scale"] > _link_prior(u, 0.25)["floor_scale"]


@pytest.mark.parametrize("noise", ["per_run", "independent", "run_effect"])
def test_padding_rows_add_nothing_to_the_link_density(noise, x64):
    """Step 2 pads a backtest's refit to the full fit's rows and runs: at the same parameters
    the padded model's log density equals the unpadded one's (and unmasked padding would
    change it: the padding repeats the last checkpoint, far from the link)."""
    from numpyro.infer.util import log_density

    from bayescale.tasks import LinkModel

    rng = np.random.default_rng(1)
    u = np.linspace(0.8, 1.3, 12)
    run = np.repeat(np.arange(4), 3)
    acc = sigmoid(u) + rng.normal(0, 0.01, u.size)
    prior = _link_prior(u, 0.25)
    params = dict(floor=0.25, headroom=0.8, k=8.0, u0=0.8, sigma=0.02, tau=0.01)
    extra = 7
    pad = (np.r_[u, np.full(extra, u[-1])], np.r_[acc, np.full(extra, 0.99)],
           np.r_[run, np.full(extra, 6)], prior, np.r_[np.ones(12, bool), np.zeros(extra, bool)])

    def density(model, args):
        return float(log_density(model, args, {}, params)[0])

    plain = density(LinkModel("sigmoid", 4, noise), (u, acc, run, prior))
    padded = density(LinkModel("sigmoid", 7, noise), pad)
    assert padded == pytest.approx(plain, rel=1e-12, abs=1e-9)
    unmasked = density(LinkModel("sigmoid", 7, noise), pad[:4])
    assert abs(unmasked - plain) > 1.0


def test_backtest_check_runs_the_fits_programs(monkeypatch):
    """The backtest check refits without the largest model size, padded to the full fit's
    runs: it asks for no sampler program the fit did not (no second compile)."""
    from bayescale import _nuts

    asked = []
    real = _nuts._exported
    monkeypatch.setattr(_nuts, "_exported", lambda key, *a, **k: (asked.append(key),
                                                                  real(key, *a, **k))[1])
    data = _ladder(seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit_tasks({"sim": data}, check=False, progress=False, **SAMPLER)
        plain = set(asked)
        asked.clear()
        checked = fit_tasks({"sim": data}, progress=False, **SAMPLER)["sim"]
    assert checked.checks["backtest"] is not None and checked.checks["backtest"]["runs"] == 4
    assert set(asked) == plain, set(asked) - plain


# ------------------------------------------------------------------------------- task data
def test_task_data_finds_finals_and_second_half():
    t = _ladder(checkpoints=6)
    assert t.n_runs == 16 and t.n_rows == 96
    # the final row of each run is its largest D
    for run in np.unique(t.run):
        rows = t.run == run
        assert t.final[rows].sum() == 1
        assert t.D[rows & t.final][0] == t.D[rows].max()
    half = t.link_rows("second_half")
    assert half.sum() == 16 * 4  # checkpoints 3/6 .. 6/6
    finals = t.finals()
    assert finals.n_points == 16 and np.allclose(finals.loss, t.loss[t.final])


def test_olmo_ladder_tasks():
    tasks = list_tasks()
    assert len(tasks) == 20 and "hellaswag_val" in tasks
    t = load_task(task="hellaswag_val")
    df = load_frame("olmo_ladder")
    assert t.n_rows == len(df) == 3569 and t.n_runs == 30
    assert t.chance == 0.25 and load_task(task="piqa_val").chance == 0.5
    assert np.array_equal(t.final, df["final"].to_numpy() == 1)
    finals = t.finals()
    # the five 1xC reruns repeat their originals' (N, D): the repeated-run model sees them
    assert finals.has_repeats(("N", "D"))
    assert len(np.unique(finals.configurations(("N", "D")))) == 25
    with pytest.raises(DataError, match="unknown task 'arc'.*arc_easy_test"):
        load_task(task="arc")


@pytest.mark.parametrize("change, message", [
    (lambda df: df.assign(acc=df.acc * 100), "percent: divide by 100"),
    (lambda df: df.assign(N=np.where(df.index == 3, 5e8, df.N)), "more than one parameter count"),
    (lambda df: df.assign(bpb=np.where(df.index == 2, np.nan, df.bpb)), "missing or infinite"),
    (lambda df: df.drop(columns=["run"]), "no run column"),
])
def test_task_data_errors(change, message):
    df = pd.DataFrame({"run": ["a"] * 3 + ["b"] * 3, "N": [1e8] * 3 + [2e8] * 3,
                       "D": [1e9, 2e9, 3e9] * 2, "bpb": [1.2, 1.1, 1.0, 1.1, 1.0, 0.9],
                       "acc": [0.3, 0.32, 0.35, 0.33, 0.36, 0.4]})
    with pytest.raises(DataError, match=message):
        TaskData.from_frame(change(df), loss_col="bpb", accuracy_col="acc")


# ------------------------------------------------------------------------------- chained
def test_chained_prediction_is_the_link_of_the_law():
    fit = fixed_fit()
    N, D = np.array([1e9, 3e9]), np.array([2e10, 6e10])
    pred = fit.predict(N, D)
    expected = sigmoid(law(N, D))
    assert np.allclose(np.median(pred.accuracy_draws, axis=0), expected, atol=1e-6)
    assert np.allclose(np.median(pred.mean_draws, axis=0), expected, atol=1e-9)
    table = pred.table()
    assert np.allclose(table["task_loss"], law(N, D), rtol=1e-9)
    assert np.allclose(table["law_accuracy"], expected, atol=1e-9)  # the link at the law


def test_probability_of_a_target_follows_the_run_noise():
    sigma, tau = 0.01, 0.02
    fit = fixed_fit(sigma=sigma, tau=tau, S=4000)
    N, D = np.array([1e9]), np.array([2e10])
    mu = sigmoid(law(N, D))[0]
    s = np.hypot(sigma, tau)
    for target in (mu - s, mu, mu + 1.5 * s):
        p = fit.prob_at_least(target, N=N, D=D)[0]
        assert abs(p - stats.norm.sf(target, mu, s)) < 0.03


def test_compute_for_accuracy_solves_the_chain():
    """With an exact step 1 and a noiseless link, the least compute reaching the target at the
    compute-optimal split is where the closed-form chain crosses it (scipy brentq)."""
    fit = fixed_fit()
    target = 0.6
    G = (TRUTH1["alpha"] * TRUTH1["A"] / (TRUTH1["beta"] * TRUTH1["B"])) ** (1 / 0.6)

    def acc_at(logc):
        C = 10 ** logc
        n = G * (C / 6) ** 0.5  # Hoffmann eq. 4 with alpha = beta
        return sigmoid(law(n, C / (6 * n))) - target

    c_star = 10 ** optimize.brentq(acc_at, 15, 30)
    out = fit.compute_for_accuracy(target, prob=0.9)
    assert out.reached and abs(np.log10(out.compute / c_star)) < 0.02
    # along a fixed 20 tokens per parameter the answer is larger (not the optimum)
    fixed = fit.compute_for_accuracy(target, prob=0.9, tokens_per_param=20)
    n = np.sqrt(fixed.compute / 120)
    assert abs(sigmoid(law(n, 20 * n)) - target) < 0.003
    # noise: reaching it with probability 0.9 needs the mean at target + 1.28 sd
    noisy = fixed_fit(sigma=0.01, S=4000).compute_for_accuracy(target, prob=0.9)
    assert abs(sigmoid(law(noisy.N, noisy.D)) - (target + 1.2816 * 0.01)) < 0.004
    unreachable = fit.compute_for_accuracy(0.95, prob=0.9)  # above the ceiling 0.9
    assert not unreachable.reached and unreachable.achieved < 0.9
    with pytest.raises(FitError, match="percent"):
        fit.compute_for_accuracy(60)


def test_flags_name_flat_and_unordered_tasks():
    fit = fixed_fit(sigma=0.01)
    u = np.linspace(0.7, 1.1, 50)
    flags, checks = _checks(fit, u, sigmoid(u))
    assert flags == [] and checks["spearman"] < -0.99 and checks["movement_over_noise"] > 3
    flat = fixed_fit(sigma=0.2)  # noise far above the link's movement over the data
    flags, _ = _checks(flat, u, sigmoid(u))
    assert len(flags) == 1 and flags[0].startswith("flat")
    rng = np.random.default_rng(0)
    flags, checks = _checks(fit, u, rng.permutation(sigmoid(u)))
    assert any(f.startswith("not monotone") for f in flags)


def test_single_step_fit_saves_and_loads(tmp_path):
    data = _ladder()
    draws = {k: np.full(10, v) for k, v in dict(floor=0.25, ceiling=0.9, k=2.0, u0=-19.0,
                                                 sigma=0.01).items()}
    fit = TaskFit(data, None, "sigmoid", draws, steps=1, rows="final", flags=("flat: x",))
    fit.link_draws.update(_max_rhat=np.array([1.2]), _min_ess_bulk=np.array([90.0]),
                          _divergences=np.array([3]), _converged=np.array([False]))
    path = fit.save(tmp_path / "task.nc")
    back = load_task_fit(path)
    assert back.diagnostics["step2"] == {"max_rhat": 1.2, "min_ess_bulk": 90.0,
                                         "divergences": 3, "converged": False}
    assert not back.diagnostics["converged"]
    assert back.steps == 1 and back.flags == ("flat: x",) and back.task == "sim"
    assert np.array_equal(back.data.accuracy, data.accuracy)
    a = fit.predict([1e9], [2e10]).accuracy_draws
    b = back.predict([1e9], [2e10]).accuracy_draws
    assert np.array_equal(a, b)
    assert np.isnan(back.predict([1e9], [2e10]).table()["task_loss"]).all()  # no step 1
    (tmp_path / "junk.nc").write_text("not a fit")
    with pytest.raises(FitError, match="not a bayescale task fit"):
        load_task_fit(tmp_path / "junk.nc")


# ------------------------------------------------------------------------------- training curves
def test_per_run_likelihood_matches_the_multivariate_normal():
    """config_log_likelihood with checkpoints whose means differ within a run equals the
    log density of N(mu, sigma^2 I + tau^2 J) per run (scipy)."""
    import jax.numpy as jnp

    from bayescale._jax import scope
    from bayescale.models import config_log_likelihood

    rng = np.random.default_rng(1)
    config = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
    mu = rng.normal(0, 1, 9)
    y = mu + rng.normal(0, 0.3, 9)
    sigma, tau = 0.2, 0.5
    with scope():
        got = np.asarray(config_log_likelihood(jnp.asarray(y), jnp.asarray(mu),
                                               jnp.asarray(config), 3, sigma=sigma,
                                               sigma_fit=tau))
    for c in range(3):
        rows = config == c
        n = rows.sum()
        cov = sigma ** 2 * np.eye(n) + tau ** 2 * np.ones((n, n))
        assert np.isclose(got[c], stats.multivariate_normal(mu[rows], cov).logpdf(y[rows]))


def _curves(step_col=True):
    df = load_frame("olmo_ladder").drop(columns=["run"] + ([] if step_col else ["step"]))
    return df


@pytest.mark.parametrize("step_col", [True, False])
def test_checkpoints_without_a_run_column_are_warned_about(step_col):
    with pytest.warns(UserWarning, match="look like checkpoints.*--run-col"):
        ScalingData.from_frame(_curves(step_col), n_col="N_params", d_col="D_tokens",
                               loss_col="loss_c4_en")


def test_three_checkpoints_per_run_are_warned_about():
    df = load_frame("chinchilla")
    rows = [dict(N=r.N_params, D=round(r.D_tokens * f), loss=r.loss + 0.05 * (1 - f))
            for r in df.itertuples() for f in (1 / 3, 2 / 3, 1)]
    with pytest.warns(UserWarning, match="evenly spaced"):
        ScalingData.from_frame(pd.DataFrame(rows))


@pytest.mark.parametrize("name, kw", [("chinchilla", {}), ("chinchilla", {"all": True}),
                                      ("porian2024", {"config": "all", "corpus": "all"}),
                                      ("datablations", {"all": True}), ("olmo_ladder", {})])
def test_sweeps_of_finished_runs_are_not_warned_about(name, kw):
    from bayescale.datasets import load_dataset

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_dataset(name, **kw)
    df = load_frame("olmo_ladder")
    finals = df[df.final == 1].drop(columns=["run", "step"])  # 10x .. 200x N: not checkpoints
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ScalingData.from_frame(finals, n_col="N_params", d_col="D_tokens", loss_col="loss_c4_en")


def test_fit_uses_final_checkpoints_or_a_run_effect():
    from bayescale.datasets import load_dataset
    from bayescale.inference import select_checkpoints
    from bayescale.laws import get_law
    from bayescale.models import build_model

    data = load_dataset("olmo_ladder", checkpoints=True)
    assert data.has_checkpoints and data.n_points == 3569
    final = select_checkpoints(data, "final")
    df = load_frame("olmo_ladder")
    assert final.n_points == 30
    assert np.allclose(np.sort(final.loss), np.sort(df.loc[df.final == 1, "loss_c4_en"]))
    everything = select_checkpoints(data, "all")
    built = build_model(everything, get_law("chinchilla"))
    assert built.repeats and built.model.n_config == 30  # one effect per run
    runs = pd.Series(built.config).groupby(data.run).nunique()
    assert (runs == 1).all()
    with pytest.raises(FitError, match="checkpoints must be"):
        select_checkpoints(data, "last")


# ------------------------------------------------------------------------------- CLI
def _cli(*args):
    return subprocess.run([sys.executable, "-m", "bayescale.cli", *args], capture_output=True,
                          text=True)


@pytest.mark.parametrize("args, message", [
    (["task", "fit", "--dataset", "olmo_ladder"], "--task is required.*hellaswag_val"),
    (["task", "fit", "--dataset", "olmo_ladder", "--task", "piqa_val", "--target-accuracy",
      "70"], "target-accuracy must lie in"),
    (["task", "fit", "--dataset", "olmo_ladder", "--task", "piqa_val", "--N", "1e9"],
     "as many --N as --D"),
    (["task", "predict", "missing.nc", "--N", "1e9", "--D", "1e10"], "task fit file not found"),
    (["task"], "task fit` or `bayescale task predict"),
])
def test_task_cli_errors(args, message):
    r = _cli(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    import re

    assert re.search(message, r.stderr), r.stderr


# ------------------------------------------------------------------------------- sampling
@pytest.mark.slow
def test_simulated_ladders_recover_the_link_and_cover_the_largest_size():
    """Eight simulated ladders fitted on their three smaller sizes in one program each step:
    the link's parameters are recovered and the 90% bands of the largest size's final
    checkpoints hold about 90% of them."""
    tasks = {f"t{i}": _ladder(seed=i, task=f"t{i}") for i in range(8)}
    train = {k: t.subset(t.N < 8e8) for k, t in tasks.items()}
    fits = fit_tasks(train, check=False, progress=False, **SAMPLER)
    inside, total, k_in = 0, 0, 0
    for name, t in tasks.items():
        f = fits[name]
        s = f.summary(0.9)
        k_in += s.loc["k", "lo"] <= TRUTH2["k"] <= s.loc["k", "hi"]
        assert abs(s.loc["u0", "median"] - TRUTH2["u0"]) < 0.1
        held = t.subset(t.N == 8e8)
        pred = f.predict(held.N[held.final], held.D[held.final], level=0.9)
        table = pred.table(0.9)
        actual = held.accuracy[held.final]
        inside += int(np.sum((actual >= table.accuracy_lo) & (actual <= table.accuracy_hi)))
        total += len(actual)
        assert not f.flags  # a ladder that follows the two steps is not flagged
    assert k_in >= 6
    assert inside / total >= 0.75, (inside, total)


@pytest.mark.slow
def test_olmo_hellaswag_backtest(tmp_path):
    """Real data: fitted on the 190M-760M runs, the 1B and 3B final checkpoints of HellaSwag
    lie inside the 90% bands (at least 10 of 12) with a median error under 2.5 points; the
    fit survives a save and a load through the CLI."""
    out = tmp_path / "hs.nc"
    r = _cli("task", "fit", "--dataset", "olmo_ladder", "--task", "hellaswag_val",
             "--max-train-params", "1e9", "--no-check", "--no-progress", *sum(
                 ([f"--{k}", str(v)] for k, v in SAMPLER.items()), []),
             "--out", str(out), "--json")
    assert r.returncode == 0, r.stderr
    t = load_task(task="hellaswag_val")
    held = t.subset(t.N > 1e9)
    f = held.final
    args = sum((["--N", f"{n:.10g}", "--D", f"{d:.10g}"] for n, d in zip(held.N[f], held.D[f])),
               [])
    r = _cli("task", "predict", str(out), *args, "--target-accuracy", "0.6", "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["level"] == 0.9  # task predict's default: the level of accuracy_lo and _hi
    table = pd.DataFrame(res["predictions"])
    actual = held.accuracy[f]
    inside = (actual >= table.accuracy_lo) & (actual <= table.accuracy_hi)
    assert inside.sum() >= 10, table.assign(actual=actual)
    assert np.median(np.abs(table.accuracy - actual)) < 0.025
    # P(acc >= 0.6) rises with tokens at the largest size: no step down beyond three Monte
    # Carlo standard errors of a difference of two independent estimates from S draws
    big = table[table.N > 3e9].sort_values("D")
    prob = big.prob_at_least_target.to_numpy()
    s = SAMPLER["chains"] * SAMPLER["draws"]
    se = np.sqrt((prob[1:] * (1 - prob[1:]) + prob[:-1] * (1 - prob[:-1])) / s)
    assert np.all(np.diff(prob) >= -3 * se - 1e-12), prob
    assert prob[-1] - prob[0] > 0.5, prob
    assert res["compute_for_target"]["reached"]


def test_task_report_shows_flags_predictions_and_step_1(tmp_path):
    from bayescale.report import render_task_report

    fit = fixed_fit()
    page = render_task_report(fit)
    assert "Task model: sim" in page and "checks passed" in page
    assert page.count("data:image/png;base64,") >= 2  # plot_task and step 1's extrapolation
    assert "Step 1: task loss from N and D" in page
    # the table's median at 10x the largest training compute is the chained closed form
    c = 10 * np.max(6 * fit.data.N[fit.data.final] * fit.data.D[fit.data.final])
    n = np.sqrt(c / 120)
    assert f"{sigmoid(law(n, 20 * n)):.3f}" in page
    fit.flags = ("flat: accuracy moves 0.1 points",)
    assert "Not predictable" in render_task_report(fit)
    # and through the CLI, from a saved (single-step) task fit
    draws = {k: np.full(10, v) for k, v in dict(floor=0.25, ceiling=0.9, k=2.0, u0=-19.0,
                                                 sigma=0.01).items()}
    TaskFit(_ladder(), None, "sigmoid", draws, steps=1, rows="final").save(tmp_path / "t.nc")
    r = _cli("report", str(tmp_path / "t.nc"), "--out", str(tmp_path / "t.html"))
    assert r.returncode == 0, r.stderr
    assert "Task model: sim" in (tmp_path / "t.html").read_text()


def test_step_2_draws_are_thinned_evenly_across_chains():
    """Step 2 keeps twice step 1's draws, stored chain after chain: a prediction pairs step 1's
    S draws with S of step 2's spread over every chain, not the first chains only."""
    fit = fixed_fit(S=400)
    fit.link_draws = {k: np.concatenate([v, v]) for k, v in fit.link_draws.items()}
    fit.link_draws["floor"] = np.repeat([0.20, 0.22, 0.24, 0.26], 200)  # four "chains"
    picked = fit._params(400)["floor"]
    assert len(picked) == 400 and np.allclose(np.bincount((picked * 100 - 20).astype(int) // 2),
                                              100)
    pred = fit.predict([1e9], [2e10])
    assert pred.accuracy_draws.shape == (400, 1)


def test_task_fit_reads_files_like_fit(tmp_path, capsys):
    """`task fit FILE` reads with the reader of `fit`: a '#' comment line and ';' delimiters
    give the four columns (a plain CSV reader sees one), so the error is about the run
    column, in one line, exit 2."""
    from bayescale.cli import main

    path = tmp_path / "curves.csv"
    path.write_text("# exported from W&B\nN;D;bpb;acc\n1e8;2e9;1.1;0.3\n2e8;4e9;1.0;0.35\n")
    assert main(["task", "fit", str(path), "--loss-col", "bpb", "--acc-col", "acc",
                 "--out", str(tmp_path / "t.nc")]) == 2
    err = capsys.readouterr().err
    assert "['N', 'D', 'bpb', 'acc']" in err and "run column" in err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
