"""Shared test set-up: CPU only, fixed seeds, and small helpers.

Like numpyro's own test suite, tests run on the CPU with a fixed seed; nothing here samples.
JAX's global float64 switch is left off, as a user's is: bayescale's computations must set
float64 themselves (:func:`bayescale._jax.scope`), and a test that calls ``jnp`` directly
asks for it with the ``x64`` fixture.
"""

from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("MPLBACKEND", "Agg")
# bayescale's persistent cache (exported sampler programs, XLA executables) in a folder of this
# test session: subprocesses (CLI, notebooks) share it, and the user's cache is left alone.
if "BAYESCALE_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["BAYESCALE_CACHE_DIR"] = tempfile.mkdtemp(prefix="bayescale-test-cache-")

import numpy as np  # noqa: E402
import pytest  # noqa: E402


#: The sampler setting of the fast tests that sample (the notebooks' quick mode): a program is
#: compiled once per law, model and padded data size (:func:`bayescale.many.padded_size`) and
#: shared by every test, in this process and in the subprocesses, through the session's cache.
SAMPLER = dict(chains=2, warmup=300, draws=300)
#: The same on the command line.
SAMPLER_ARGS = ["--chains", "2", "--warmup", "300", "--draws", "300"]


def simulate_chinchilla(truth=None, *, n_side=7, sigma=0.01, seed=0, df=None):
    """A Chinchilla-shaped grid of runs: N from 1e7..1e10 and 3-30x.. tokens, noisy log loss."""
    truth = truth or dict(E=1.8, A=480.0, B=2100.0, alpha=0.35, beta=0.37)
    rng = np.random.default_rng(seed)
    N = np.geomspace(5e7, 5e9, n_side)
    ratio = np.geomspace(4, 100, n_side)
    N, r = np.meshgrid(N, ratio)
    N, D = N.ravel(), (N * r).ravel()
    mean = truth["E"] + truth["A"] / N ** truth["alpha"] + truth["B"] / D ** truth["beta"]
    eps = sigma * (rng.standard_t(df, N.size) if df else rng.standard_normal(N.size))
    return N, D, mean * np.exp(eps), truth


@pytest.fixture
def x64():
    """float64 for a test's own ``jnp`` code (JAX's global switch stays off)."""
    import jax

    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="module")
def x64_module():
    """float64 for every test of a module that calls ``jnp`` itself
    (``pytestmark = pytest.mark.usefixtures("x64_module")``)."""
    import jax

    with jax.enable_x64(True):
        yield


def chinchilla_draws(n: int = 500, seed: int = 0) -> dict[str, np.ndarray]:
    """Fixed 'posterior' draws jittered around Epoch AI's Chinchilla fit (no sampling)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((5, n))
    return {
        "E": 1.8 * np.exp(0.01 * z[0]),
        "A": 480.0 * np.exp(0.1 * z[1]),
        "B": 2100.0 * np.exp(0.1 * z[2]),
        "alpha": 0.35 + 0.01 * z[3],
        "beta": 0.37 + 0.01 * z[4],
    }


@pytest.fixture(autouse=True, scope="module")
def _fresh_compiled_programs():
    """Free compiled programs after each test module.

    A long pytest process accumulates hundreds of XLA:CPU executables; late in full runs an LLVM
    compile then segfaulted. Clearing JAX's caches (and bayescale's sampler cache) between
    modules keeps the process as small as a user's.
    """
    yield
    import gc

    import jax

    from bayescale import _nuts

    _nuts._LOADED.clear()
    jax.clear_caches()
    gc.collect()


class Stop(Exception):
    """Raised by :func:`stop`, monkeypatched over a sampler so a test ends where it would start."""


def stop(*args, **kwargs):
    raise Stop


def post(law, params, noise=None, *, k: float = 6.0):
    """Fixed draws as a :class:`bayescale.Posterior` (no sampling)."""
    from bayescale.posterior import Posterior

    return Posterior.from_draws(law, params, noise, flops_per_param_token=k)
