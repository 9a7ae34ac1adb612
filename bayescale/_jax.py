"""One place that imports JAX and says how bayescale uses it.

Importing bayescale changes none of JAX's global settings: ``jax.config.jax_enable_x64`` and the
persistent compilation cache stay as the user left them. bayescale's own computations run inside
:func:`scope` (every public function that does JAX work enters it), which sets, for that
computation and that thread only:

* **float64**: scaling-law draws feed closed forms and optimisers whose answers are checked to
  1e-6. The sampler stays in float64 too: float32 makes the likelihood's gradient cheaper on a
  CPU, but that gradient is the smaller part of a NUTS step (the kernel's loop bookkeeping is the
  rest), and a float32 likelihood broke where float64 does not: on data whose repeated runs are
  exact copies, the seed noise heads to zero and every transition diverged.
* **the persistent cache**, on by default, in ``$XDG_CACHE_HOME/bayescale``
  (``~/.cache/bayescale``): JAX's compilation cache (XLA executables) and bayescale's exported
  sampler programs, so a fit in a new process neither traces nor compiles.
  ``BAYESCALE_CACHE_DIR=/some/folder`` moves it, ``BAYESCALE_CACHE_DIR=off`` turns it off. The
  cache is capped at 2 GiB and locked (filelock) against concurrent processes; a read-only home
  runs without it. A compilation cache folder the user configured is kept. (JAX opens its
  compilation cache once per process, at the first compile that asks for one: a user who sets a
  folder of their own after bayescale has compiled gets bayescale's.)

**What must be set before JAX starts: the number of CPU devices.** On a CPU-only host XLA sees
one device, and NUTS chains run one after the other inside it. When this module is imported
before JAX has started its backends, and ``XLA_FLAGS`` does not already set
``--xla_force_host_platform_device_count``, bayescale adds that flag to ``XLA_FLAGS`` with one
CPU device per core (at most 8), so chains and :func:`bayescale.fit_many`'s groups run in
parallel (NumPyro's ``set_host_device_count``). ``BAYESCALE_CPU_DEVICES=N`` picks N (a whole
number >= 1; anything else is an error at import); ``BAYESCALE_CPU_DEVICES=1`` leaves the flag
alone. A device count set in ``XLA_FLAGS`` must be a whole number >= 1, or bayescale refuses it
with one message instead of XLA's abort. **When JAX has already started** (the user ran JAX code
before bayescale first touched JAX), the device count can no longer change: bayescale uses the
devices JAX has, and chains that would have run side by side run one after another on one device
(the same posterior; not the same draws, since the device count is part of what fixes them). It
has no effect on GPUs and TPUs.
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from bayescale.errors import SetupError

_OFF = ("0", "off", "none", "false", "no")
_DEVICE_FLAG = "xla_force_host_platform_device_count"


def _cpu_devices() -> int:
    """Devices to ask XLA for: ``BAYESCALE_CPU_DEVICES`` or one per core, at most 8."""
    wanted = os.environ.get("BAYESCALE_CPU_DEVICES", "").strip()
    if wanted:
        if not re.fullmatch(r"[0-9]+", wanted) or int(wanted) < 1:
            raise SetupError(f"BAYESCALE_CPU_DEVICES={wanted!r}: give a whole number of CPU "
                             "devices >= 1 (1 runs every chain on one device)")
        return int(wanted)
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # macOS
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def _jax_started() -> bool:
    """True when JAX has already initialised its backends (XLA_FLAGS is then read)."""
    if "jax" not in sys.modules:
        return False
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except (ImportError, AttributeError):  # a JAX without this helper: assume it started
        return True


def _device_flags() -> None:
    n = _cpu_devices()  # checks BAYESCALE_CPU_DEVICES even where XLA_FLAGS decides
    flags = os.environ.get("XLA_FLAGS", "")
    given = re.search(rf"--{_DEVICE_FLAG}(=\S*)?(\s|$)", flags)
    if given:
        value = (given.group(1) or "=")[1:]
        if not re.fullmatch(r"[0-9]+", value) or int(value) < 1:
            raise SetupError(f"XLA_FLAGS sets --{_DEVICE_FLAG}={value!r}: give a whole "
                             "number of CPU devices >= 1, or drop the flag (bayescale then asks "
                             "for one per core)")
        return
    if _DEVICE_FLAG in flags or _jax_started():
        return
    if n > 1:
        os.environ["XLA_FLAGS"] = f"{flags} --{_DEVICE_FLAG}={n}".strip()


_device_flags()

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402


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
        for part in ("jax", "programs"):
            (folder / part).mkdir(parents=True, exist_ok=True)
            if not os.access(folder / part, os.W_OK | os.X_OK):
                return None  # a read-only cache folder: run without it
    except OSError:  # read-only home: run without the cache
        return None
    return folder


#: Where bayescale keeps exported programs and JAX its executables (None: no cache).
CACHE = _setup_cache()


@contextlib.contextmanager
def scope() -> Iterator[None]:
    """float64 and bayescale's persistent compilation cache, for the code inside (this thread).

    Re-entrant and cheap; the settings are JAX's own context managers, so they end with the
    block whatever happens inside it.
    """
    from jax._src import config

    with contextlib.ExitStack() as stack:
        stack.enter_context(jax.enable_x64(True))
        if CACHE is not None and not config.compilation_cache_dir.value:
            stack.enter_context(config.compilation_cache_dir(str(CACHE / "jax")))
            stack.enter_context(config.persistent_cache_min_compile_time_secs(0.0))
            # A size cap makes JAX lock the cache folder (filelock) around every read and write:
            # without it, a process reading an entry another process is still writing can crash.
            stack.enter_context(config.compilation_cache_max_size(2 * 1024**3))
        yield


F = TypeVar("F", bound=Callable[..., Any])


def scoped(fn: F) -> F:
    """``fn`` run inside :func:`scope`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with scope():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


__all__ = ["jax", "jnp", "CACHE", "cache_dir", "scope", "scoped"]
