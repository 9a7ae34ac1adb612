"""The NUTS driver (bayescale._nuts): device sharding, reproducibility, the exported-program cache
and the Laplace whitening.

Device counts are fixed when JAX starts, so runs on 4 or 1 CPU devices, with a fresh cache or
none, happen in subprocesses that print their results as JSON. Sampling is kept small.
"""

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import bayescale as bs
from bayescale import ScalingData
from conftest import SAMPLER, simulate_chinchilla

TESTS = Path(__file__).parent

#: Run in a subprocess: fit (and optionally fit_many) as told by the JSON in argv[2], print JSON.
SCRIPT = r"""
import json, sys, warnings
sys.path.insert(0, sys.argv[1])
task = json.loads(sys.argv[2])
from conftest import SAMPLER, simulate_chinchilla
import numpy as np
import bayescale as bs
from bayescale import _jax, _nuts

traced = []  # the model is traced only when a program is exported, not when one is loaded
_init = _nuts._Kernels.__init__
_nuts._Kernels.__init__ = lambda self, *a, **k: (traced.append(1), _init(self, *a, **k))[1]

def data(E, n_side, seed):
    truth = dict(E=E, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    N, D, loss, _ = simulate_chinchilla(truth, n_side=n_side, seed=seed)
    return bs.ScalingData.from_arrays(N=N, D=D, loss=loss)

def moments(f):
    return {p: [float(f.draws(p).mean()), float(f.draws(p).std())] for p in f.param_names}

warnings.simplefilter("ignore", bs.ConvergenceWarning)
out = {"devices": _jax.jax.device_count(), "cache": None if _jax.CACHE is None else str(_jax.CACHE),
       "compilation_cache": _jax.jax.config.jax_compilation_cache_dir}
fit = bs.fit(data(1.8, task["n_side"], 1), progress=False, **task["fit"])
out["fit"] = moments(fit)
if "many" in task:
    group = bs.fit_many({"a": data(1.8, task["n_side"], 1), "b": data(2.1, task["n_side"], 2)},
                        progress=False, **task["many"])
    out["many"] = {k: moments(f) for k, f in group.items()}
    out["many_E_99"] = list(group.summary(0.99).loc[("b", "E"), ["lo", "hi"]])
out["traced"] = len(traced)
out["program_devices"] = sorted({e.nr_devices for e in _nuts._EXPORTED.values()})
# module-level containers holding something, besides the two program caches
out["module_state"] = sorted(k for k, v in vars(_nuts).items() if not k.startswith("__")
                             and isinstance(v, (dict, list, set)) and v
                             and k not in ("_LOADED", "_EXPORTED"))
print("RESULT " + json.dumps(out))
"""


def start_script(task, **env_changes) -> subprocess.Popen:
    """Start SCRIPT in a new Python process with ``os.environ`` changed (None: unset)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return subprocess.Popen([sys.executable, "-c", SCRIPT, str(TESTS), json.dumps(task)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def script_result(proc: subprocess.Popen):
    """The RESULT of a process :func:`start_script` started."""
    stdout, stderr = proc.communicate(timeout=400)
    assert proc.returncode == 0, stderr[-3000:]
    line = next(s for s in stdout.splitlines() if s.startswith("RESULT "))
    return json.loads(line[len("RESULT "):])


def run_script(task, **env_changes):
    """Run SCRIPT in a new Python process with ``os.environ`` changed (None: unset)."""
    return script_result(start_script(task, **env_changes))


# ------------------------------------------------------------------------------ sharding


SPLIT_FIT = dict(chains=4, warmup=300, draws=300)


@pytest.fixture(scope="module")
def device_layouts():
    """Both layouts' processes, run at the same time (each compiles programs of its own)."""
    four = start_script({"n_side": 6, "fit": SPLIT_FIT,
                         "many": dict(chains=2, warmup=300, draws=300)},
                        XLA_FLAGS="--xla_force_host_platform_device_count=4",
                        BAYESCALE_CPU_DEVICES=None)
    one = start_script({"n_side": 6, "fit": SPLIT_FIT}, XLA_FLAGS=None,
                       BAYESCALE_CPU_DEVICES="1")
    return script_result(four), script_result(one)


@pytest.fixture(scope="module")
def four_devices(device_layouts):
    """4 chains on 4 emulated CPU devices (one each), then fit_many of 2 groups x 2 chains."""
    return device_layouts[0]


@pytest.fixture(scope="module")
def one_device(device_layouts):
    """The same 4 chains batched on 1 CPU device."""
    return device_layouts[1]


def test_chains_split_across_devices_agree_with_one_device(four_devices, one_device):
    # The chains use the same random streams on 4 devices and on 1, but XLA's code for a batch
    # of 4 and of 1 rounds differently, so the chains part ways; the posteriors still agree
    # within Monte-Carlo error (about 0.1 sd for the difference of two means at ESS ~250, so
    # 0.5 sd is a 5-sigma bound).
    assert four_devices["devices"] == 4 and one_device["devices"] == 1
    # the exported programs were split for the devices there were
    assert four_devices["program_devices"] == [4] and one_device["program_devices"] == [1]
    for p, (mean, sd) in one_device["fit"].items():
        assert abs(four_devices["fit"][p][0] - mean) < 0.5 * sd, (p, four_devices["fit"][p], sd)


def test_fit_many_split_across_devices(four_devices, one_device):
    # 2 groups x 2 chains on 4 devices, one chain each (program_devices above): group "a" is the
    # data of the fits above (2 chains: MC error of the difference of means about 0.12 sd),
    # group "b" its own data (E = 2.1). Chains handed the wrong group's data would fail this.
    many = four_devices["many"]
    for p in ("E", "alpha", "beta", "sigma"):
        mean, sd = one_device["fit"][p]
        assert abs(many["a"][p][0] - mean) < 0.6 * sd, (p, many["a"][p], mean, sd)
    lo, hi = four_devices["many_E_99"]
    assert lo <= 2.1 <= hi and many["a"]["E"][0] < 1.9


# ------------------------------------------------------------------------------ in-process

FIT = SAMPLER


@pytest.fixture(scope="module")
def chin_data():
    N, D, loss, _ = simulate_chinchilla(n_side=7, seed=1)
    return ScalingData.from_arrays(N=N, D=D, loss=loss)


def quiet_fit(data, **kwargs):
    """The chains asked for (``more_chains=False``; its added chains are tested in test_fit):
    these tests read the sampler's arrays chain by chain."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", bs.ConvergenceWarning)
        return bs.fit(data, "chinchilla",
                      **{**FIT, "progress": False, "more_chains": False, **kwargs})


def assert_same_arrays(a, b):
    for group in ("posterior", "log_likelihood", "predictive", "stats"):
        assert a._arrays[group].keys() == b._arrays[group].keys()
        for name, value in a._arrays[group].items():
            np.testing.assert_array_equal(value, b._arrays[group][name], err_msg=f"{group}/{name}")


def test_progress_bar_does_not_change_draws(chin_data, capsys):
    silent = quiet_fit(chin_data, seed=3)
    capsys.readouterr()
    shown = quiet_fit(chin_data, seed=3, progress=True)
    assert f"chinchilla, {chin_data.n_points} runs:" in capsys.readouterr().err  # the bar
    assert_same_arrays(silent, shown)


def test_same_seed_same_draws_other_seed_other_draws(chin_data):
    a, b, c = (quiet_fit(chin_data, seed=s) for s in (5, 5, 6))
    assert_same_arrays(a, b)
    assert not np.array_equal(a.draws("E"), c.draws("E"))
    # the two chains of one fit use their own streams
    chains = a._chain_draws("E")
    assert not np.array_equal(chains[0], chains[1])


def test_whitened_posterior_needs_short_trajectories(chin_data):
    # On the Laplace-whitened posterior NUTS takes 7-15 leapfrog steps per draw (31 without the
    # whitening), at step sizes of order 0.5 (the posterior is close to a standard normal).
    # The acceptance target is pinned at 0.9 (the default is 0.95) for the bounds below.
    fit = quiet_fit(chin_data, seed=0, target_accept=0.9)
    stats = fit._arrays["stats"]
    assert stats["n_steps"].shape == (2, 300)
    assert np.median(stats["n_steps"]) <= 15
    assert np.all((stats["step_size"] > 0.15) & (stats["step_size"] < 1.5))
    # Step-size adaptation works: the acceptance rate is near the 0.9 target, not pinned at 1
    # (steps too small) or far below. Dual averaging's final (averaged) step is a little
    # smaller than the target's, so the realised mean sits above 0.9: over 16 seeds and two
    # data sets here it ranged 0.91-0.98 (mean 0.945) after 300 warm-up steps and 0.89-0.97
    # after 1000, hence the asymmetric bounds rather than 0.9 +- 0.05.
    assert 0.85 < stats["acceptance_rate"].mean() < 0.99
    assert not stats["diverging"].any()


def test_post_program_at_level_1_gives_the_bits_of_level_3(chin_data, monkeypatch):
    # The post program is compiled at XLA's optimisation level 1 on a CPU; it must give
    # exactly what level 3 gives: parameters, log likelihoods and the simulated runs.
    import jax

    from bayescale import _nuts

    if jax.default_backend() != "cpu":
        pytest.skip("the level-1 post program is a CPU option")
    seen = []
    compile_ = jax.stages.Lowered.compile

    def spy(self, compiler_options=None, **kwargs):
        seen.append(compiler_options)
        return compile_(self, compiler_options=compiler_options, **kwargs)

    monkeypatch.setattr(jax.stages.Lowered, "compile", spy)
    monkeypatch.setattr(_nuts, "_LOADED", {})
    level1 = quiet_fit(chin_data, seed=8, form_error=False)
    assert {"xla_backend_optimization_level": 1} in seen  # post's options reached XLA
    monkeypatch.setattr(_nuts, "_CPU_OPTIONS", {})
    monkeypatch.setattr(_nuts, "_LOADED", {})
    seen.clear()
    level3 = quiet_fit(chin_data, seed=8, form_error=False)
    assert seen and not any(seen)
    assert_same_arrays(level1, level3)


def test_large_table_keeps_every_kth_pointwise_draw(chin_data, monkeypatch):
    # Past POINTWISE_CAP values a fit's pointwise outputs keep every k-th draw (here the cap is
    # lowered so that 49 runs x 2 chains x 300 draws need k = 3): the posterior keeps every
    # draw, the same draws as an unthinned fit, and the kept log likelihoods and predictive
    # draws are those of the unthinned fit at draws 0, 3, 6, ... (same random keys).
    from bayescale import _nuts

    full = quiet_fit(chin_data, seed=4, form_error=False)
    monkeypatch.setattr(_nuts, "POINTWISE_CAP", 2 * 300 * 64 // 3)  # padded to 64 rows
    thin = quiet_fit(chin_data, seed=4, form_error=False)
    np.testing.assert_array_equal(thin.draws("E"), full.draws("E"))
    for group in ("log_likelihood", "predictive"):
        a, b = full._arrays[group]["log_loss"], thin._arrays[group]["log_loss"]
        assert b.shape == (2, 100, chin_data.n_points)
        np.testing.assert_allclose(b, a[:, ::3], rtol=1e-12, err_msg=group)
    idata = thin.idata
    assert list(idata.log_likelihood.draw.values) == list(range(0, 300, 3))
    assert idata.posterior.draw.size == 300
    monkeypatch.setattr("bayescale.inference.LARGE_TABLE", 10)
    with pytest.warns(UserWarning, match=r"one draw in 3 \(100 of 300 per chain\)"):
        quiet_fit(chin_data, seed=4, form_error=False)


# ------------------------------------------------------------------------------ program cache

#: A small fit without the form-error refits (their Laplace programs are cached the same way,
#: under names of their own): these tests count NUTS's three programs.
TINY = {"n_side": 4, "fit": dict(chains=2, warmup=100, draws=100, form_error=False)}


def test_new_process_loads_exported_programs(tmp_path):
    cache = tmp_path / "cache"
    cold = run_script(TINY, BAYESCALE_CACHE_DIR=str(cache))
    assert cold["cache"] == str(cache) and cold["traced"] == 1
    files = sorted(p.name for p in (cache / "programs").glob("*.jaxexport"))
    assert [f.split("-")[0] for f in files] == ["chunk", "init", "post"], files
    stamps = {p: p.stat().st_mtime_ns for p in (cache / "programs").iterdir()}
    warm = run_script(TINY, BAYESCALE_CACHE_DIR=str(cache))
    assert warm["traced"] == 0  # all three programs came from the cache folder
    assert warm["fit"] == cold["fit"]  # bit-identical floats through JSON
    assert {p: p.stat().st_mtime_ns for p in (cache / "programs").iterdir()} == stamps


def test_chunk_program_traced_when_init_program_is_cached(tmp_path):
    # The chunk program unflattens NUTS's state, whose tree structure it takes from an
    # abstract evaluation of the kernel's initialisation: it must also work when the init
    # program was loaded, not traced, and give the draws of a run that traced both.
    cache = tmp_path / "cache"
    cold = run_script(TINY, BAYESCALE_CACHE_DIR=str(cache))
    (chunk,) = (cache / "programs").glob("chunk-*.jaxexport")
    chunk.unlink()
    again = run_script(TINY, BAYESCALE_CACHE_DIR=str(cache))
    assert again["traced"] == 1 and (cache / "programs" / chunk.name).exists()
    assert again["fit"] == cold["fit"]


def test_programs_compile_while_the_next_is_traced(monkeypatch):
    # _compiled hands each program to a compiler thread as soon as its builder yields it (so
    # the next one is traced meanwhile), compiles a program yielded twice once, skips one
    # already loaded, and returns the executables in the order yielded.
    import concurrent.futures

    from bayescale import _nuts

    submitted = []

    class Pool(concurrent.futures.ThreadPoolExecutor):
        def submit(self, fn, program):
            submitted.append(program.key)
            return super().submit(fn, program)

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", Pool)
    monkeypatch.setattr(_nuts, "_compile_one", lambda program: f"exe-{program.key}")
    monkeypatch.setattr(_nuts, "_LOADED", {"cached": "exe-cached"})

    def programs():
        for key, before in (("init", []), ("chunk", ["init"]), ("cached", ["init", "chunk"]),
                            ("post", ["init", "chunk"]), ("init", ["init", "chunk", "post"])):
            # tracing `key`: every earlier new program is already with the compiler
            assert submitted == before, (key, submitted)
            yield _nuts._Program(key, None, ())

    out = _nuts._compiled(programs())
    assert out == ["exe-init", "exe-chunk", "exe-cached", "exe-post", "exe-init"]
    assert submitted == ["init", "chunk", "post"]


def test_cache_off(tmp_path):
    # No cache folder anywhere: none in the (redirected) home, no JAX compilation cache.
    # (matplotlib and arviz still write their own caches there.)
    home = tmp_path / "home"
    home.mkdir()
    out = run_script(TINY, BAYESCALE_CACHE_DIR="off", HOME=str(home),
                     XDG_CACHE_HOME=str(home / ".cache"))
    assert out["cache"] is None and not out["compilation_cache"]
    assert out["traced"] == 1
    # tracing the programs left nothing in the module besides the program caches
    assert out["module_state"] == []
    assert abs(out["fit"]["E"][0] - 1.8) < 3 * out["fit"]["E"][1]
    assert not (home / ".cache" / "bayescale").exists()
    assert not [p for p in home.rglob("*") if p.suffix == ".jaxexport" or p.name == "jax"]


# ------------------------------------------------------------------------------ chain layout

def test_lockstep_batches_equal_one_vmap():
    # A CPU device runs its chains in lockstep batches one after another (lax.map); the result
    # must be what one vmap over every chain gives, remainder batch included (5 = 2 + 2 + 1).
    from bayescale._jax import jax, jnp
    from bayescale._nuts import _batched

    def f(x, tree):
        return {"dot": x @ tree["m"], "cum": jnp.cumsum(x) * tree["s"]}, jnp.linalg.norm(x)

    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    tree = {"m": rng.normal(size=(5, 3, 4)), "s": rng.normal(size=(5,))}
    want = jax.vmap(f)(x, tree)
    got = jax.jit(_batched(f, 2))(x, tree)
    for w, g in zip(jax.tree_util.tree_leaves(want), jax.tree_util.tree_leaves(got)):
        np.testing.assert_allclose(np.asarray(g), np.asarray(w), rtol=1e-12, atol=1e-14)


def test_lockstep_width_on_cpu():
    # One data set's chains per lockstep batch on a CPU; a device with no more chains than one
    # data set has runs them as one batch.
    from bayescale._nuts import lockstep_width

    assert lockstep_width(4, 32) == 4
    assert lockstep_width(4, 4) is None and lockstep_width(4, 2) is None


HIERARCHICAL_SPLIT = r"""
import sys, warnings
import numpy as np
import bayescale as bs
from bayescale import _jax
warnings.simplefilter("ignore", bs.ConvergenceWarning)
data = bs.load_dataset("chinchilla")
rng = np.random.default_rng(0)
groups = {f"g{g}": bs.ScalingData.from_arrays(N=data.N[i], D=data.D[i], loss=data.loss[i])
          for g, i in enumerate(rng.integers(0, data.n_points, (8, data.n_points)))}
fits = bs.fit_many(groups, "chinchilla", hierarchical=True, repeats=False, chains=2,
                   warmup=200, draws=50, progress=False)
alpha = {float(np.median(f.draws("alpha"))) for f in fits.values()}
print("RESULT", _jax.jax.device_count(), len(fits), len(alpha))
"""


@pytest.mark.slow
def test_hierarchical_fit_split_over_cpu_devices_finishes():
    # 8 groups of 240 runs share their exponents: 34 parameters. With its 2 chains split over
    # 2 CPU devices, the mode search's batched LAPACK solves deadlocked (the process sat at 0%
    # CPU); solved one at a time they finish. A warm-up of 200 includes slow adaptation windows,
    # so the dense mass matrix's Cholesky factorisations run split too.
    # 2 devices, 8 groups, and one shared alpha posterior for all of them
    assert result_on_two_cpu_devices(HIERARCHICAL_SPLIT, timeout=400) == ["2", "8", "1"]


def result_on_two_cpu_devices(script: str, *, timeout: int) -> list[str]:
    """The fields after ``RESULT`` that ``script`` prints, run in a new process on 2 CPU
    devices (a deadlock fails on the timeout)."""
    env = dict(os.environ, JAX_PLATFORMS="cpu", BAYESCALE_CPU_DEVICES="2")
    env.pop("XLA_FLAGS", None)
    proc = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return next(s for s in proc.stdout.splitlines() if s.startswith("RESULT")).split()[1:]


MANY_GROUPS_SPLIT = r"""
import warnings
import numpy as np
import numpyro.distributions as dist
import bayescale as bs
from bayescale import _jax
warnings.simplefilter("ignore", bs.ConvergenceWarning)
data = bs.load_dataset("chinchilla")
rng = np.random.default_rng(0)
groups = {f"g{g}": data.subset(rng.permutation(data.n_points)[:60 + 5 * g]) for g in range(18)}
fits = bs.fit_many(groups, "chinchilla", priors={"nu": dist.Gamma(2.0, 0.1)}, chains=4,
                   warmup=50, draws=50, progress=False, retries=0)
nu = [float(np.median(f.draws("nu"))) for f in fits.values()]
print("RESULT", _jax.jax.device_count(), len(fits), int(np.all(np.isfinite(nu))))
"""


@pytest.mark.slow
def test_many_groups_split_over_cpu_devices_finish():
    # 18 data sets x 4 chains of the Chinchilla law with a learned nu (7 unknowns) over 2 CPU
    # devices: with the mode search's LAPACK calls batched over every chain of a device, the
    # process sat at 0% CPU from the first chunk on (2026-12-07, jax 0.10.2; 6 unknowns or 9
    # data sets did not); solved one at a time it finishes in about 25 s.
    assert result_on_two_cpu_devices(MANY_GROUPS_SPLIT, timeout=600) == ["2", "18", "1"]
