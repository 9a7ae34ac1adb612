"""One place that imports JAX and sets it up for bayescale.

* float64 by default: scaling-law draws feed closed forms and optimisers whose answers are
  checked to 1e-6. The sampler stays in float64 too: float32 makes the likelihood's gradient
  cheaper on a CPU, but that gradient is the smaller part of a NUTS step (the kernel's loop
  bookkeeping is the rest), and a float32 likelihood broke where float64 does not: on data
  whose repeated runs are exact copies, the seed noise heads to zero and every transition
  diverged.
* Several CPU devices: on a CPU-only host XLA sees one device, and NUTS chains run one after the
  other inside it. Unless ``XLA_FLAGS`` already says otherwise, bayescale asks XLA for one CPU
  device per core (at most 8) before JAX starts, so chains and :func:`bayescale.fit_many`'s groups
  run in parallel (NumPyro's ``set_host_device_count``). ``BAYESCALE_CPU_DEVICES=N`` picks N;
  ``BAYESCALE_CPU_DEVICES=1`` turns this off. It has no effect once JAX has started, nor on GPUs.
* A persistent cache, on by default, in ``$XDG_CACHE_HOME/bayescale`` (``~/.cache/bayescale``):
  JAX's compilation cache (XLA executables) and bayescale's exported sampler programs, so a fit
  in a new process neither traces nor compiles. ``BAYESCALE_CACHE_DIR=/some/folder`` moves it,
  ``BAYESCALE_CACHE_DIR=off`` turns it off. The cache is capped at 2 GiB and locked (filelock)
  against concurrent processes; a read-only home runs without it.
"""

from __future__ import annotations

import os
from pathlib import Path

_OFF = ("0", "off", "none", "false", "no")


def _cpu_devices() -> int:
    wanted = os.environ.get("BAYESCALE_CPU_DEVICES", "").strip()
    if wanted:
        try:
            return max(1, int(wanted))
        except ValueError:
            return 1
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


_flags = os.environ.get("XLA_FLAGS", "")
if "xla_force_host_platform_device_count" not in _flags and _cpu_devices() > 1:
    os.environ["XLA_FLAGS"] = (
        f"{_flags} --xla_force_host_platform_device_count={_cpu_devices()}").strip()

import jax  # noqa: E402

jax.config.update("jax_enable_x64", True)


def cache_dir() -> Path | None:
    """The persistent cache folder, or None when turned off (``BAYESCALE_CACHE_DIR=off``)."""
    value = os.environ.get("BAYESCALE_CACHE_DIR")
    if value is not None and value.strip().lower() in _OFF + ("",):
        return None
    if value:
        return Path(value).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "bayescale"


def _setup_cache() -> Path | None:
    folder = cache_dir()
    if folder is None:
        return None
    try:
        (folder / "jax").mkdir(parents=True, exist_ok=True)
        (folder / "programs").mkdir(parents=True, exist_ok=True)
    except OSError:  # read-only home: run without the cache
        return None
    if not jax.config.jax_compilation_cache_dir:
        jax.config.update("jax_compilation_cache_dir", str(folder / "jax"))
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        # A size cap makes JAX lock the cache folder (filelock) around every read and write:
        # without it, a process reading an entry another process is still writing can crash.
        jax.config.update("jax_compilation_cache_max_size", 2 * 1024**3)
    return folder


#: Where bayescale keeps exported programs and JAX its executables (None: no cache).
CACHE = _setup_cache()

import jax.numpy as jnp  # noqa: E402

__all__ = ["jax", "jnp", "CACHE", "cache_dir"]
