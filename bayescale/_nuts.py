r"""NUTS compiled into three XLA programs, for one fit or many, on every device JAX sees.

NumPyro's :class:`~numpyro.infer.MCMC` traces and compiles its warm-up and sampling loops again on
every ``run``, and its default mass-matrix regularisation (shrinkage towards :math:`10^{-3} I`)
is larger than the posterior variance of a well-measured scaling law, which forces small step
sizes and long trajectories. This module drives NumPyro's NUTS kernel
(:func:`numpyro.infer.hmc.hmc`) itself:

1. **init**: each chain searches for the posterior mode with damped Newton steps
   (Levenberg-Marquardt on a central-difference Hessian) from 4 starting points (the median of
   15 prior draws, as NumPyro's ``init_to_median``, and 3 prior draws pulled halfway towards
   it; different draws for every chain), keeps
   the best, and whitens the posterior there: :math:`u = u^* + L z` with :math:`L L^T = H^{-1}`
   (eigenvalues of the Hessian :math:`H` floored, so a saddle or a flat direction gives a wide
   scale, not a failure). NUTS then runs on :math:`z`, where the posterior of a scaling law is
   close to a standard normal, and short trajectories suffice. The mass
   matrix is still adapted on :math:`z`, so a poor Laplace approximation costs speed, not
   correctness.
2. **chunk**: a twentieth of the transitions of every chain in a ``lax.scan``; the progress bar
   moves between calls, so showing it changes nothing in the draws.
3. **post**: draws back to constrained parameters and deterministic sites, pointwise log
   likelihoods and posterior-predictive draws.

Everything is batched over a leading axis of chains (of one data set, or of many:
:func:`bayescale.fit_many`) and split across devices with ``shard_map`` when JAX sees several:
a multi-GPU host or a ``jax.distributed`` cluster runs the same call. Within a device an
accelerator advances all its chains in lockstep (one ``vmap``); a CPU advances one data set's
chains at a time (``lax.map`` over batches of ``chains``), because batched chains wait for the
longest trajectory and a CPU gains no arithmetic from the wider batch
(:func:`lockstep_width`).

:func:`run_nuts` does its work in three steps:

* **build** (:class:`_Builder`): the cache key and argument shapes of each program, and the
  program itself, exported (:mod:`jax.export`) into bayescale's cache folder
  (:data:`bayescale._jax.CACHE`). The key covers the model's static description, the shapes of
  its arguments, the platform and device count, and the versions and source of bayescale and
  its libraries. A new process loads the programs instead of tracing NumPyro's kernel again
  (about two seconds); the model's per-chain functions (:class:`_Kernels`) are made only when
  a program must be traced. The chunk program carries NUTS's state as a flat list of arrays;
  when it is traced, the state's tree structure comes from an abstract evaluation
  (``jax.eval_shape``) of the kernel's initialisation, so tracing writes nothing outside itself.
* **compile** (:func:`_compiled`): each program in a worker thread as soon as it is exported,
  so that the next one is traced while XLA compiles the last, and the three compile side by
  side; JAX's persistent compilation cache then skips XLA's compile in a new process. :func:`run_nuts`
  runs inside :func:`bayescale._jax.scope` (float64, the cache), and each worker enters it
  again: JAX's settings hold per thread. On a CPU, post is compiled at XLA's optimisation
  level 1 (:data:`_CPU_OPTIONS`; same bits, less to compile).
* **run** (:func:`_sample`): init, the chunks (with the progress bar between them), post.
"""

from __future__ import annotations

import functools
import hashlib
import math
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from bayescale._jax import CACHE, jax, jnp, scope, scoped
from bayescale._kernels import Kernels as _Kernels

__all__ = ["NutsSpec", "NutsResult", "run_nuts", "run_laplace", "device_split", "concatenate"]

#: Compiled programs of this process, by cache key (written only by :func:`_compiled`).
_LOADED: dict[str, Callable] = {}
#: Exported (traced and lowered) programs of this process, by cache key (written only by
#: :func:`_exported`).
_EXPORTED: dict[str, Any] = {}
#: How many programs of each kind a process keeps.
_KEEP = 24
#: XLA options of a program, by name, on a CPU (not to be changed at run time). ``post`` runs
#: once per fit, after sampling: level 1 skips LLVM's heavier optimisations, which it does not
#: need, and gives the same bits (tests/test_sampler.py checks it); init and chunk keep level 3
#: (level 1 there changes the last bits of the mode, so every draw).
_CPU_OPTIONS = MappingProxyType({"post": MappingProxyType({"xla_backend_optimization_level": 1})})


@dataclass(frozen=True)
class NutsSpec:
    """Static settings of a sampler run (they shape the compiled programs)."""

    chains: int
    warmup: int
    draws: int
    target_accept: float = 0.95
    dense_mass: bool = True
    max_tree_depth: int = 10
    newton_steps: int = 60
    starts: int = 4
    #: The pointwise outputs (log likelihoods, posterior predictive) keep every this-many-th
    #: draw of each chain: 1 but for tables too large to hold them all (:func:`pointwise_every`).
    pointwise_every: int = 1


@dataclass
class NutsResult:
    """Output of :func:`run_nuts`: NumPy arrays with leading axes (element * chain, draw)."""

    posterior: dict[str, np.ndarray]
    log_likelihood: dict[str, np.ndarray]
    predictive: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    seconds: float


def concatenate(results: Sequence[NutsResult]) -> NutsResult:
    """One result of the chains of several :func:`run_nuts` calls on the same data and spec
    (in the order given); seconds add up."""
    groups = ("posterior", "log_likelihood", "predictive", "stats")
    arrays = {g: {k: np.concatenate([getattr(r, g)[k] for r in results])
                  for k in getattr(results[0], g)} for g in groups}
    return NutsResult(**arrays, seconds=sum(r.seconds for r in results))


#: Most values one pointwise output (log likelihoods or posterior predictive: chains x kept
#: draws x rows) holds: 2^25, 256 MiB of float64.
POINTWISE_CAP = 2**25


def pointwise_every(chains: int, draws: int, rows: int) -> int:
    """The stride of the draws whose pointwise outputs a run keeps: 1 (every draw) while
    ``chains * draws * rows`` fits :data:`POINTWISE_CAP`, else the smallest that does. The
    posterior keeps every draw; only the arrays that grow with the rows are thinned."""
    return max(1, math.ceil(chains * draws * rows / POINTWISE_CAP))


def device_split(n: int) -> int:
    """How many devices share ``n`` chains: all of them when there are at least as many chains
    (padded to a multiple), else the largest divisor of ``n`` not above the device count."""
    n_dev = jax.device_count()
    if n >= n_dev:
        return n_dev
    return max(d for d in range(1, n_dev + 1) if n % d == 0)


# ------------------------------------------------------------------------------ the chains


@dataclass(frozen=True)
class _Layout:
    """Where the chains of one run go.

    Attributes
    ----------
    n : int
        Chains asked for (``n_elements * chains``).
    k : int
        Devices they are split across (:func:`device_split`).
    padded : int
        Chains run: ``n`` rounded up to a multiple of ``k``; the padding repeats the last
        chain and is dropped from the output.
    width : int or None
        Chains of a device advanced in lockstep (:func:`lockstep_width`).
    total : int
        Transitions of every chain (warm-up and draws).
    length : int
        Transitions of one chunk program: a twentieth of ``total``, rounded up.
    """

    n: int
    k: int
    padded: int
    width: int | None
    total: int
    length: int

    @classmethod
    def of(cls, spec: NutsSpec, n_elements: int) -> _Layout:
        """The layout of ``n_elements`` data sets' ``spec.chains`` chains on this host."""
        n = n_elements * spec.chains
        k = device_split(n)
        padded = math.ceil(n / k) * k
        total = spec.warmup + spec.draws
        return cls(n=n, k=k, padded=padded, width=lockstep_width(spec.chains, padded // k),
                   total=total, length=max(1, math.ceil(total / 20)))

    def index(self) -> np.ndarray:
        """The chain behind each of the ``padded`` rows (padding repeats the last one)."""
        return np.minimum(np.arange(self.padded), self.n - 1)


def _inputs(args: Sequence[Any], batched_args: Sequence[Any] | None, layout: _Layout, *,
            chains: int, seed: int,
            first_chain: int = 0) -> tuple[np.ndarray, list[np.ndarray], Any]:
    """Every chain's random-stream ids and model arguments, stacked on a leading axis.

    Returns
    -------
    ids : ndarray of int64, shape (padded, 2)
        ``(seed, first_chain + chain)``: the chain's streams are folded in from
        ``PRNGKey(seed)``.
    leaves : list of ndarray
        The leaves of the model's arguments, each with a leading axis of ``padded`` chains:
        ``args`` repeated, or the row of ``batched_args`` of each chain's element.
    treedef : PyTreeDef
        The structure of ``tuple(args)``.
    """
    index = layout.index()
    leaves, treedef = jax.tree_util.tree_flatten(tuple(args))
    if batched_args is None:
        leaves = [np.ascontiguousarray(
            np.broadcast_to(np.asarray(v), (layout.padded,) + np.shape(v))) for v in leaves]
    else:
        batched, batched_def = jax.tree_util.tree_flatten(tuple(batched_args))
        if batched_def != treedef:
            raise ValueError("batched_args must have the structure of args")
        leaves = [np.asarray(v)[index // chains] for v in batched]
    ids = np.stack([np.full(layout.padded, seed, dtype=np.int64), first_chain + index], axis=1)
    return ids, leaves, treedef


def lockstep_width(chains: int, per_device: int) -> int | None:
    """How many chains of a device advance in lockstep (one vectorised batch); None for all.

    Batched NUTS chains wait for the longest trajectory among them, and on a CPU a batch costs
    as much arithmetic as its chains run one by one, so there wider batches only add waiting:
    a CPU runs one data set's chains at a time (its chains in lockstep, the data sets one after
    another). An accelerator's wide vector units make the batch nearly free: it runs all.
    """
    if jax.default_backend() != "cpu" or per_device <= chains:
        return None
    return chains


def _serial_solves(k: int) -> bool:
    """Whether the mode search solves its linear systems one chain and one start at a time.

    On a CPU whose chains are split over several devices, jaxlib's batched LAPACK kernels
    (LU behind ``jnp.linalg.solve``, the eigendecomposition behind ``eigh``) can deadlock: they
    queue the batch on the CPU thread pool and wait, while every pool thread runs a device
    program (seen in native stacks, jax 0.10.2). Whether they do depends on the batch, not only
    on the systems' size: 34 unknowns did in 2 chains; 7 (the Chinchilla law with a learned
    Student-t nu) did with 18 data sets' chains at once, and 6 did not. Unbatched calls do not
    queue, so a split CPU always solves one at a time.
    """
    return jax.default_backend() == "cpu" and k > 1


def _batched(f: Callable, width: int | None) -> Callable:
    """``f`` over a leading axis: vectorised in groups of ``width`` run one after another
    (``lax.map``), one element at a time (no vectorisation) for ``width`` 1, or all at once
    (``vmap``) for ``width`` None."""
    if width is None:
        return jax.vmap(f)
    return lambda *xs: jax.lax.map(lambda x: f(*x), xs,
                                   batch_size=None if width == 1 else width)


def _mesh(k: int):
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices()[:k]), ("batch",))


def _sharded(f: Callable, k: int) -> Callable:
    """``f`` batched on its leading axis, split across the first ``k`` devices."""
    if k == 1:
        return f
    from jax.sharding import PartitionSpec

    return jax.shard_map(f, mesh=_mesh(k), in_specs=PartitionSpec("batch"),
                         out_specs=PartitionSpec("batch"), check_vma=False)


def _aval(x) -> Any:
    return jax.ShapeDtypeStruct(np.shape(x), np.dtype(x.dtype))


# ------------------------------------------------------------------------------ one chain


@functools.cache
def _source_hash() -> str:
    """Versions of the libraries and a hash of bayescale's own source: a change invalidates."""
    import numpyro

    import bayescale

    digest = hashlib.sha256()
    for part in (jax.__version__, numpyro.__version__, np.__version__, bayescale.__version__,
                 str(jax.config.jax_enable_x64)):
        digest.update(part.encode())
    for path in sorted(Path(bayescale.__file__).parent.glob("*.py")):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def _shaping(name: str, spec: NutsSpec) -> Any:
    """The sampler settings that program ``name`` is traced with.

    The mode search and NUTS's initial state (init) depend on the mass matrix's form and the
    search, not on the warm-up's length or the acceptance target (they shape only the
    transitions), and post only on the number of draws: a Laplace refit
    (:func:`run_laplace`) of as many chains and rows as a fit shares the fit's programs.
    """
    if name == "init":
        return (spec.dense_mass, spec.newton_steps, spec.starts)
    if name == "post":
        return spec.draws, spec.pointwise_every
    return spec


def _program_key(name: str, model_key: Any, spec: NutsSpec, extra: Any, n_dev: int) -> str:
    """File name of a program: everything its tracing depends on, hashed."""
    text = repr((name, model_key, _shaping(name, spec), extra, n_dev, jax.default_backend(),
                 _source_hash()))
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


@dataclass(frozen=True)
class _Program:
    """An exported program, with its cache key and the shapes of its arguments."""

    key: str
    exported: Any  # jax.export.Exported
    avals: tuple

    def out_avals(self):
        """The shapes of its results, in their tree."""
        return jax.tree_util.tree_unflatten(self.exported.out_tree,
                                            [_aval(a) for a in self.exported.out_avals])


class _Builder:
    """Builds the init, chunk and post programs of one run (:meth:`programs`).

    Each program is taken from this process, loaded from the cache folder, or traced and
    exported; the model's :class:`_Kernels` are made only for the last.

    Parameters
    ----------
    model, spec, obs_site, predictive_args, model_key : as in :func:`run_nuts`.
    ids, leaves, treedef : every chain's stream ids and argument leaves (:func:`_inputs`).
    layout : where the chains go.
    """

    def __init__(self, model, spec: NutsSpec, layout: _Layout, ids: np.ndarray,
                 leaves: Sequence[np.ndarray], treedef, *, obs_site: str,
                 predictive_args: Callable, model_key: Any):
        self.model, self.spec, self.layout, self.treedef = model, spec, layout, treedef
        self.obs_site, self.predictive_args = obs_site, predictive_args
        self.one_args = jax.tree_util.tree_unflatten(treedef, [np.asarray(v)[0] for v in leaves])
        self.ids_aval = _aval(ids)
        self.leaf_avals = [_aval(v) for v in leaves]
        shapes = tuple((a.shape, str(a.dtype)) for a in self.leaf_avals)
        self.base = (model_key, str(treedef), shapes)

    @functools.cached_property
    def kernels(self) -> _Kernels:
        """The model's per-chain functions, made on first use (only to trace a program)."""
        return _Kernels(self.model, self.one_args, self.spec, self.obs_site,
                        self.predictive_args)

    def programs(self, *, chunk: bool = True) -> Iterator[_Program]:
        """The init, chunk and post programs, in that order (init and post without
        ``chunk``), each yielded as soon as it is exported, so that :func:`_compiled` can
        compile one while the next is traced."""
        lay = self.layout
        init = self._program("init", None, self._init_fn, [self.ids_aval, *self.leaf_avals])
        yield init
        state, u_star, scale = init.out_avals()
        if chunk:
            yield self._program("chunk", (lay.length, lay.width), self._chunk_fn,
                                [state, u_star, scale, *self.leaf_avals])
        z = jax.ShapeDtypeStruct((lay.padded, self.spec.draws) + u_star.shape[1:],
                                 u_star.dtype)
        yield self._program("post", None, self._post_fn,
                            [self.ids_aval, z, u_star, scale, *self.leaf_avals])

    def cached(self) -> bool:
        """True when every program of the run is in this process or the cache folder (no
        tracing and, normally, no compile to wait for)."""
        lay = self.layout
        for name, extra in (("init", None), ("chunk", (lay.length, lay.width)),
                            ("post", None)):
            key = _program_key(name, self.base, self.spec, extra, lay.k)
            if key not in _EXPORTED and (
                    CACHE is None or not (CACHE / "programs" / f"{key}.jaxexport").exists()):
                return False
        return True

    def _program(self, name: str, extra: Any, make: Callable, avals: list) -> _Program:
        key = _program_key(name, self.base, self.spec, extra, self.layout.k)
        return _Program(key, _exported(key, make, avals, self.layout.k), tuple(avals))

    def _args(self, leaves):
        return jax.tree_util.tree_unflatten(self.treedef, list(leaves))

    def _init_fn(self) -> Callable:
        """init(ids, *leaves) -> (state leaves, u_star, scale) of every chain."""
        kern, k = self.kernels, self.layout.k
        # Every chain at once (the mode search has no trajectories to wait for), so that the
        # program depends on the number of chains only, not on how they split into data sets.
        if _serial_solves(k):
            one, width = functools.partial(kern.init_one, serial=True), 1
        else:
            one, width = kern.init_one, None

        def init(ids, *leaves):
            state, u_star, scale = _batched(one, width)(ids, self._args(leaves))
            return jax.tree_util.tree_leaves(state), u_star, scale

        return _sharded(init, k)

    def _chunk_fn(self) -> Callable:
        """chunk(state leaves, u_star, scale, *leaves) -> (state leaves, statistics): one chunk
        of transitions of every chain."""
        kern, length = self.kernels, self.layout.length
        tree = kern.state_tree(self.one_args)

        def one(state, a, u_star, scale):
            return kern.chunk_one(state, a, u_star, scale, length)

        def chunk(state, u_star, scale, *leaves):
            s = jax.tree_util.tree_unflatten(tree, state)
            s, out = _batched(one, self.layout.width)(s, self._args(leaves), u_star, scale)
            return jax.tree_util.tree_leaves(s), out

        return _sharded(chunk, self.layout.k)

    def _post_fn(self) -> Callable:
        """post(ids, z, u_star, scale, *leaves) -> (parameters, log likelihoods, predictive)."""
        kern = self.kernels

        def post(ids, z, u_star, scale, *leaves):  # every chain at once, as init
            return _batched(kern.post_one, None)(ids, z, self._args(leaves), u_star, scale)

        return _sharded(post, self.layout.k)


def _ensure_lapack() -> None:
    """Load LAPACK's kernels into XLA before running programs that were not lowered here.

    XLA:CPU's linear-algebra custom calls find LAPACK when JAX lowers a ``jnp.linalg`` op; an
    executable loaded without that lowering would call a null pointer (jax-ml/jax#28908).
    Lowering a tiny Cholesky (nothing is compiled) does it.
    """
    jax.jit(jnp.linalg.cholesky).lower(np.eye(2))


def _exported(key: str, make: Callable[[], Callable], avals: Sequence[Any], k: int):
    """The exported program ``key``: from this process, the cache folder, or traced now
    (``make()`` gives the function to trace)."""
    exported = _EXPORTED.get(key)
    if exported is None:
        path = None if CACHE is None else CACHE / "programs" / f"{key}.jaxexport"
        exported = _read_program(path)
        if exported is None:
            exported = _export(make(), avals, k)
            _write_program(path, exported)
        _EXPORTED[key] = exported
        while len(_EXPORTED) > _KEEP:
            _EXPORTED.pop(next(iter(_EXPORTED)))
    return exported


def _read_program(path: Path | None):
    """The exported program stored at ``path``; None if there is none or it cannot be read."""
    if path is None or not path.exists():
        return None
    try:
        exported = jax.export.deserialize(bytearray(path.read_bytes()))
    except Exception:  # noqa: BLE001 - a stale or damaged entry: export it again
        return None
    _ensure_lapack()
    return exported


def _write_program(path: Path | None, exported) -> None:
    """Store ``exported`` at ``path`` (atomically; a cache that cannot be written is skipped)."""
    if path is None:
        return
    from bayescale.errors import OutputError
    from bayescale.io import atomic_path

    try:
        with atomic_path(path, record=False) as tmp:
            tmp.write_bytes(exported.serialize())
    except (OSError, OutputError):
        pass


def _export(fn: Callable, avals: Sequence[Any], k: int):
    """Trace and lower ``fn`` at ``avals``, split on the leading (chain) axis of every argument
    and result across ``k`` devices."""
    if k == 1:
        jitted = jax.jit(fn)
    else:
        from jax.sharding import NamedSharding, PartitionSpec

        split = NamedSharding(_mesh(k), PartitionSpec("batch"))
        jitted = jax.jit(fn, in_shardings=split, out_shardings=split)
    return jax.export.export(jitted)(*avals)


# ------------------------------------------------------------------------------ compile


def _compiled(programs: Iterable[_Program]) -> list[Callable]:
    """Compile (or fetch from JAX's persistent cache) exported programs in worker threads,
    each as soon as ``programs`` yields it: XLA releases the GIL while it compiles, so on a
    cold start the next program is traced (:meth:`_Builder.programs`) while the last
    compiles, and the programs compile side by side."""
    from concurrent.futures import ThreadPoolExecutor

    pool, futures, keys = None, {}, []
    try:
        for program in programs:
            keys.append(program.key)
            if program.key in _LOADED or program.key in futures:
                continue
            if pool is None:
                pool = ThreadPoolExecutor(max_workers=3)
            futures[program.key] = pool.submit(_compile_in_scope, program)
        for key, future in futures.items():
            _LOADED[key] = future.result()
    finally:
        if pool is not None:  # on an error or Ctrl-C, drop the compiles not yet started
            pool.shutdown(wait=True, cancel_futures=True)
    out = [_LOADED[key] for key in keys]
    while len(_LOADED) > _KEEP:
        _LOADED.pop(next(iter(_LOADED)))
    return out


def _compile_in_scope(program: _Program) -> Callable:
    """:func:`_compile_one` in a worker thread: JAX's settings of :func:`~bayescale._jax.scope`
    (float64, the compilation cache) hold per thread, so the worker enters it again."""
    with scope():
        return _compile_one(program)


def _compile_one(program: _Program) -> Callable:
    """The executable of one exported program, on the devices it was split for."""
    exported, avals = program.exported, program.avals
    if exported.nr_devices == 1:
        fn = jax.jit(exported.call)
    else:
        mesh = _mesh(exported.nr_devices)
        unflatten = jax.tree_util.tree_unflatten
        fn = jax.jit(exported.call,
                     in_shardings=unflatten(exported.in_tree,
                                            exported.in_shardings_jax(mesh))[0],
                     out_shardings=unflatten(exported.out_tree,
                                             exported.out_shardings_jax(mesh)))
    name = program.key.split("-", 1)[0]
    options = dict(_CPU_OPTIONS.get(name, {})) if jax.default_backend() == "cpu" else None
    return fn.lower(*avals).compile(compiler_options=options or None)


# ------------------------------------------------------------------------------ run


def _sample(programs: Sequence[Callable], ids: np.ndarray, leaves: Sequence[np.ndarray],
            spec: NutsSpec, layout: _Layout, *, progress: bool, description: str):
    """Run the compiled init, chunk and post programs.

    Returns
    -------
    params, log_lik, predictive : dict
        ``post``'s output, with a leading axis of ``padded`` chains.
    stats : dict of ndarray, shape (padded, draws)
        Each draw's transition statistics and its whitened position ``"z"``.
    """
    init, run_chunk, post = programs
    state, u_star, scale = init(ids, *leaves)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=layout.total, desc=description, unit="it", leave=False)
    outs, done = [], 0
    while done < layout.total:
        state, out = run_chunk(state, u_star, scale, *leaves)
        outs.append(out)
        if bar is not None:
            jax.block_until_ready(state)
            bar.update(min(layout.length, layout.total - done))
        done += layout.length
    if bar is not None:
        bar.close()
    stats = {name: np.concatenate([np.asarray(o[name]) for o in outs], axis=1)
             [:, spec.warmup:layout.total] for name in outs[0]}
    params, ll, pred = post(ids, stats["z"], u_star, scale, *leaves)
    return params, ll, pred, stats


@scoped
def run_nuts(model, args: Sequence[Any], spec: NutsSpec, *, seed: int, obs_site: str,
             predictive_args: Callable, model_key: Any,
             batched_args: Sequence[Any] | None = None, n_elements: int = 1,
             progress: bool = False, description: str = "NUTS", rows: int = 0,
             first_chain: int = 0) -> NutsResult:
    """Run NUTS on ``model``: ``spec.chains`` chains for each of ``n_elements`` data sets.

    Parameters
    ----------
    model, args: the NumPyro model and one element's arguments (they fix the structure).
    spec: chains, warm-up, draws and kernel settings.
    seed: chain ``c`` of element ``e`` draws from ``fold_in(PRNGKey(seed), e * chains + c)``.
    obs_site, predictive_args: the observed site, and the arguments that simulate it
        (observations replaced by None).
    model_key: hashable description of everything the model's tracing depends on besides
        the shapes of ``args`` (law, noise, fixed priors...): it names the cached programs.
    batched_args: every element's arguments stacked on a leading axis (:func:`fit_many`);
        None for one data set.
    progress: show a progress bar of the transitions on stderr.
    rows: the rows of each element's data: the pointwise outputs of a table too large to
        hold them for every draw keep every :func:`pointwise_every`-th draw.
    first_chain: the streams' first chain number (one data set only): ``first_chain=4`` with
        4 chains runs streams 4-7, more chains for a fit that ran 0-3 (:func:`concatenate`).

    Returns arrays with leading axes ``(n_elements * chains, draws)``, element-major (the
    pointwise outputs: ``draws / spec.pointwise_every``, rounded up). It runs inside
    :func:`bayescale._jax.scope` (float64, bayescale's compilation cache).
    """
    start = time.perf_counter()
    spec = _thinned(spec, n_elements, rows)
    layout = _Layout.of(spec, n_elements)
    if first_chain and n_elements != 1:
        raise ValueError("first_chain is for one data set's extra chains")
    ids, leaves, treedef = _inputs(args, batched_args, layout, chains=spec.chains, seed=seed,
                                   first_chain=first_chain)
    builder = _Builder(model, spec, layout, ids, leaves, treedef, obs_site=obs_site,
                       predictive_args=predictive_args, model_key=model_key)
    if progress and not builder.cached():
        where = "" if CACHE is None else f" in {CACHE}"
        print(f"bayescale: compiling the sampler for {description} (once: later runs of the "
              f"same law, size and options load it from the cache{where}) ...", file=sys.stderr,
              flush=True)
    programs = _compiled(builder.programs())
    params, ll, pred, stats = _sample(programs, ids, leaves, spec, layout, progress=progress,
                                      description=description)
    n = layout.n
    stats = {name: v[:n] for name, v in stats.items() if name != "z"}
    stats["tree_depth"] = np.ceil(np.log2(stats["n_steps"] + 1)).astype(np.int32)
    return NutsResult(posterior=_rows(params, n), log_likelihood=_rows(ll, n),
                      predictive=_rows(pred, n), stats=stats,
                      seconds=time.perf_counter() - start)


@scoped
def run_laplace(model, args: Sequence[Any], spec: NutsSpec, *, seed: int, obs_site: str,
                predictive_args: Callable, model_key: Any,
                batched_args: Sequence[Any] | None = None, n_elements: int = 1,
                rows: int = 0) -> NutsResult:
    r"""The Laplace approximation of ``model``'s posterior, without NUTS.

    Each chain's init program finds its mode :math:`u^*` and the whitening :math:`L` with
    :math:`L L^T = H^{-1}` (the inverse Hessian, eigenvalues floored) exactly as for
    :func:`run_nuts`; then ``spec.draws`` draws :math:`u = u^* + L z`, :math:`z \sim N(0, I)`
    (from ``seed``) go through the post program. Arguments and result as in :func:`run_nuts`
    (``stats`` is empty): the cheap posterior the leave-future-out refits of
    :mod:`bayescale.extrapolation` use. It costs the mode search, a fraction of a fit.
    """
    start = time.perf_counter()
    spec = _thinned(spec, n_elements, rows)
    layout = _Layout.of(spec, n_elements)
    ids, leaves, treedef = _inputs(args, batched_args, layout, chains=spec.chains, seed=seed)
    builder = _Builder(model, spec, layout, ids, leaves, treedef, obs_site=obs_site,
                       predictive_args=predictive_args, model_key=model_key)
    init, post = _compiled(builder.programs(chunk=False))
    _, u_star, scale = init(ids, *leaves)
    z = np.random.default_rng(seed).standard_normal((layout.padded, spec.draws,
                                                     np.shape(u_star)[-1]))
    params, ll, pred = post(ids, z, u_star, scale, *leaves)
    n = layout.n
    return NutsResult(posterior=_rows(params, n), log_likelihood=_rows(ll, n),
                      predictive=_rows(pred, n), stats={}, seconds=time.perf_counter() - start)


def _thinned(spec: NutsSpec, n_elements: int, rows: int) -> NutsSpec:
    """``spec`` with the :func:`pointwise_every` of its chains, draws and ``rows``."""
    import dataclasses

    every = pointwise_every(n_elements * spec.chains, spec.draws, rows)
    return spec if every == spec.pointwise_every else dataclasses.replace(spec,
                                                                          pointwise_every=every)


def _rows(tree: dict[str, Any], n: int) -> dict[str, np.ndarray]:
    """The first ``n`` chains of each array, as NumPy arrays on the host."""
    return {name: np.asarray(v)[:n] for name, v in tree.items()}
