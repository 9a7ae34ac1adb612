"""One place that imports JAX and sets it up for bayescale.

* float64 everywhere: scaling-law draws feed closed forms and optimisers whose answers are checked
  to 1e-6, and float32 costs only a little speed here.
* JAX's persistent compilation cache, opt-in with ``BAYESCALE_CACHE_DIR=/some/folder``: a second
  fit in a new process then skips most of XLA's compile time. It is off by default because on
  the CPU, loading some cached executables crashes the process (a segfault in XLA's
  deserialisation, jax-ml/jax#28908; seen here in a long test run). When on, it is capped at
  2 GiB and locked for concurrent processes. Within one process, fits of same-shaped data reuse
  the compiled sampler anyway (see :mod:`bayescale.inference`).
"""

from __future__ import annotations

import os
from pathlib import Path

import jax

jax.config.update("jax_enable_x64", True)

_cache = os.environ.get("BAYESCALE_CACHE_DIR", "")
if _cache and not jax.config.jax_compilation_cache_dir:
    try:
        Path(_cache).mkdir(parents=True, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", _cache)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        # A size cap makes JAX lock the cache folder (filelock) around every read and write:
        # without it, a process reading an entry another process is still writing can crash
        # (seen as a segfault in deserialisation with several fits running at once).
        jax.config.update("jax_compilation_cache_max_size", 2 * 1024**3)
    except OSError:  # read-only home: run without the cache
        pass

import jax.numpy as jnp  # noqa: E402

__all__ = ["jax", "jnp"]
