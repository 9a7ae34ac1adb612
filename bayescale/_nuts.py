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

The programs are exported (:mod:`jax.export`) into bayescale's cache folder
(:data:`bayescale._jax.CACHE`), keyed by the model's static description, the shapes of its
arguments, the platform and device count, and the versions and source of bayescale and its
libraries. A new process loads them instead of tracing NumPyro's kernel again (about two
seconds), and JAX's persistent compilation cache then skips XLA's compile.
"""

from __future__ import annotations

import functools
import hashlib
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bayescale._jax import CACHE, jax, jnp

__all__ = ["NutsSpec", "NutsResult", "run_nuts", "device_split"]

#: Compiled programs of this process, by cache key.
_LOADED: dict[str, Callable] = {}
#: Exported (traced and lowered) programs of this process, by cache key.
_EXPORTED: dict[str, Any] = {}
#: State tree structure of each model key (needed to trace a chunk program).
_STATE_TREES: dict[str, Any] = {}


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


@dataclass
class NutsResult:
    """Output of :func:`run_nuts`: NumPy arrays with leading axes (element * chain, draw)."""

    posterior: dict[str, np.ndarray]
    log_likelihood: dict[str, np.ndarray]
    predictive: dict[str, np.ndarray]
    stats: dict[str, np.ndarray]
    seconds: float


def device_split(n: int) -> int:
    """How many devices share ``n`` chains: all of them when there are at least as many chains
    (padded to a multiple), else the largest divisor of ``n`` not above the device count."""
    n_dev = jax.device_count()
    if n >= n_dev:
        return n_dev
    return max(d for d in range(1, n_dev + 1) if n % d == 0)


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


_SOURCE = None


def _program_key(name: str, model_key: Any, spec: NutsSpec, extra: Any, n_dev: int) -> str:
    """File name of a program: everything its tracing depends on, hashed."""
    global _SOURCE
    if _SOURCE is None:
        _SOURCE = _source_hash()
    text = repr((name, model_key, spec, extra, n_dev, jax.default_backend(), _SOURCE))
    return f"{name}-{hashlib.sha256(text.encode()).hexdigest()[:32]}"


def _ensure_lapack() -> None:
    """Load LAPACK's kernels into XLA before running programs that were not lowered here.

    XLA:CPU's linear-algebra custom calls find LAPACK when JAX lowers a ``jnp.linalg`` op; an
    executable loaded without that lowering would call a null pointer (jax-ml/jax#28908).
    Lowering a tiny Cholesky (nothing is compiled) does it.
    """
    jax.jit(jnp.linalg.cholesky).lower(np.eye(2))


def _exported(key: str, build: Callable, avals: Sequence[Any], k: int):
    """The exported program ``key``: from this process, the cache folder, or traced now."""
    exported = _EXPORTED.get(key)
    if exported is not None:
        return exported
    path = None if CACHE is None else CACHE / "programs" / f"{key}.jaxexport"
    if path is not None and path.exists():
        try:
            exported = jax.export.deserialize(bytearray(path.read_bytes()))
            _ensure_lapack()
        except Exception:  # noqa: BLE001 - a stale or damaged entry: export it again
            exported = None
    if exported is None:
        if k == 1:
            jitted = jax.jit(build())
        else:  # every argument and result is split on its leading (chain) axis
            from jax.sharding import NamedSharding, PartitionSpec

            split = NamedSharding(_mesh(k), PartitionSpec("batch"))
            jitted = jax.jit(build(), in_shardings=split, out_shardings=split)
        exported = jax.export.export(jitted)(*avals)
        if path is not None:
            from bayescale.io import atomic_path

            try:
                with atomic_path(path) as tmp:
                    tmp.write_bytes(exported.serialize())
            except OSError:
                pass
    _EXPORTED[key] = exported
    return exported


def _compiled(programs: Sequence[tuple[str, Any, Sequence[Any], int]]) -> list[Callable]:
    """Compile (or fetch from JAX's persistent cache) exported programs, in parallel threads:
    XLA releases the GIL while it compiles, so a cold start costs the longest compile, not the
    sum."""
    from concurrent.futures import ThreadPoolExecutor

    def compile_one(exported, avals, k):
        if k == 1:
            fn = jax.jit(exported.call)
        else:  # run on the mesh the program was split for
            mesh = _mesh(k)
            unflatten = jax.tree_util.tree_unflatten
            fn = jax.jit(exported.call,
                         in_shardings=unflatten(exported.in_tree,
                                                exported.in_shardings_jax(mesh))[0],
                         out_shardings=unflatten(exported.out_tree,
                                                 exported.out_shardings_jax(mesh)))
        return fn.lower(*avals).compile()

    missing = [p for p in programs if p[0] not in _LOADED]
    if len(missing) > 1:
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            futures = {p[0]: pool.submit(compile_one, *p[1:]) for p in missing}
            for key, future in futures.items():
                _LOADED[key] = future.result()
    elif missing:
        _LOADED[missing[0][0]] = compile_one(*missing[0][1:])
    out = [_LOADED[p[0]] for p in programs]
    while len(_LOADED) > 24:
        _LOADED.pop(next(iter(_LOADED)))
    while len(_EXPORTED) > 24:
        _EXPORTED.pop(next(iter(_EXPORTED)))
    return out


def _aval(x) -> Any:
    return jax.ShapeDtypeStruct(np.shape(x), np.dtype(x.dtype))


class _Kernels:
    """The per-chain functions of one model (traced only when a program is exported)."""

    def __init__(self, model, args, treedef, spec: NutsSpec, obs_site: str,
                 predictive_args: Callable):
        from jax.flatten_util import ravel_pytree
        from numpyro import handlers
        from numpyro.distributions import biject_to
        from numpyro.infer.hmc import hmc
        from numpyro.infer.util import constrain_fn, log_likelihood, potential_energy

        self.model, self.treedef, self.spec = model, treedef, spec

        def latent_of(a):
            trace = handlers.trace(handlers.seed(model, 0)).get_trace(*a)
            return {name: biject_to(site["fn"].support).inv(site["value"])
                    for name, site in trace.items()
                    if site["type"] == "sample" and not site["is_observed"]}

        shapes = jax.eval_shape(latent_of, tuple(args))
        latent = {name: jnp.zeros(s.shape, s.dtype) for name, s in shapes.items()}
        _, unravel = ravel_pytree(latent)
        dim = sum(int(np.prod(s.shape)) for s in shapes.values())
        self.dim = dim

        def potential(u, a):
            value = potential_energy(model, a, {}, unravel(u))
            return jnp.where(jnp.isfinite(value), value, jnp.inf)

        def potential_gen(a, u_star, scale):
            return lambda z: potential(u_star + scale @ z, a)

        init_kernel, sample_kernel = hmc(potential_fn_gen=potential_gen, algo="NUTS")

        def starts(rng, a):
            def one(k):
                trace = handlers.trace(handlers.seed(model, k)).get_trace(*predictive_args(a))
                return ravel_pytree({name: biject_to(trace[name]["fn"].support).inv(
                    trace[name]["value"]) for name in latent})[0]

            draws = jax.vmap(one)(jax.random.split(rng, 15 + spec.starts - 1))
            median = jnp.median(draws[:15], axis=0)
            return jnp.concatenate([median[None], 0.5 * (median + draws[15:])])

        def newton(u, a):
            value_and_grad = jax.value_and_grad(potential)
            grad = jax.grad(potential)
            eye = jnp.eye(dim)

            def hessian(u, a):
                # Central differences of the gradient: as accurate as whitening needs (about
                # 1e-8 relative) and a fraction of the compile time of forward-over-reverse.
                steps = jnp.concatenate([eye, -eye]) * 1e-4
                g = jax.vmap(lambda e: grad(u + e, a))(steps)
                h = (g[:dim] - g[dim:]) / 2e-4
                return 0.5 * (h + h.T)

            def step(_, carry):
                u, lam, f, g, h = carry
                d = -jnp.linalg.solve(h + lam * eye, g)
                trial = u + jnp.where(jnp.all(jnp.isfinite(d)), d, 0.0)
                f_trial, g_trial = value_and_grad(trial, a)
                better = (f_trial < f) & jnp.all(jnp.isfinite(g_trial))
                h = jnp.where(better, hessian(trial, a), h)
                return (jnp.where(better, trial, u), jnp.where(better, lam / 3.0, lam * 4.0),
                        jnp.where(better, f_trial, f), jnp.where(better, g_trial, g), h)

            f, g = value_and_grad(u, a)
            u, _, f, _, h = jax.lax.fori_loop(0, spec.newton_steps, step,
                                              (u, 1.0, f, g, hessian(u, a)))
            vals, vecs = jnp.linalg.eigh(0.5 * (h + h.T))
            vals = jnp.where(jnp.isfinite(vals), jnp.maximum(jnp.abs(vals), 1e-2), 1.0)
            scale = vecs / jnp.sqrt(vals)
            return u, jnp.where(jnp.all(jnp.isfinite(scale)), scale, eye), f

        def init_one(ids, a, serial=False):
            rng = jax.random.fold_in(jax.random.PRNGKey(ids[0]), ids[1])
            k_start, k_jitter, k_nuts = jax.random.split(rng, 3)
            one_start = lambda u: newton(u, a)  # noqa: E731
            u0 = starts(k_start, a)
            modes, scales, values = (jax.lax.map(one_start, u0) if serial
                                     else jax.vmap(one_start)(u0))
            best = jnp.argmin(values)
            u_star, scale = modes[best], scales[best]
            z0 = jax.random.uniform(k_jitter, (dim,), minval=-1.0, maxval=1.0)
            state = init_kernel(z0, spec.warmup, dense_mass=spec.dense_mass,
                                target_accept_prob=spec.target_accept,
                                max_tree_depth=spec.max_tree_depth,
                                model_args=(a, u_star, scale), rng_key=k_nuts)
            return state, u_star, scale

        def chunk_one(state, a, u_star, scale, length):
            def body(s, _):
                s = sample_kernel(s, model_args=(a, u_star, scale))
                return s, {"z": s.z, "lp": -s.potential_energy, "energy": s.energy,
                           "n_steps": s.num_steps, "acceptance_rate": s.accept_prob,
                           "diverging": s.diverging, "step_size": s.adapt_state.step_size}

            return jax.lax.scan(body, state, None, length=length)

        def post_one(ids, z, a, u_star, scale):
            rng = jax.random.fold_in(jax.random.PRNGKey(ids[0] + 1), ids[1])
            u = u_star + z @ scale.T
            params = jax.vmap(lambda v: constrain_fn(model, a, {}, unravel(v),
                                                     return_deterministic=True))(u)
            ll = log_likelihood(model, params, *a)

            def simulate(k, p):
                trace = handlers.trace(handlers.seed(handlers.condition(model, p), k)).get_trace(
                    *predictive_args(a))
                return trace[obs_site]["value"]

            keys = jax.random.split(rng, z.shape[0])
            return params, ll, {obs_site: jax.vmap(simulate)(keys, params)}

        self.init_one, self.chunk_one, self.post_one = init_one, chunk_one, post_one

    def args(self, leaves):
        return jax.tree_util.tree_unflatten(self.treedef, leaves)


def _mesh(k: int):
    from jax.sharding import Mesh

    return Mesh(np.asarray(jax.devices()[:k]), ("batch",))


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


def _serial_solves(dim: int, k: int) -> bool:
    """Whether the mode search solves its linear systems one chain and one start at a time.

    On a CPU whose chains are split over several devices, jaxlib's batched LAPACK LU (behind
    ``jnp.linalg.solve``) deadlocks once the systems are large enough (34 unknowns did, 6 never
    did): it queues the batch on the CPU thread pool and waits, while every pool thread runs a
    device program (seen in a native stack, jax 0.10.2). Unbatched solves do not queue.
    """
    return jax.default_backend() == "cpu" and k > 1 and dim > 8


def _batched(f: Callable, width: int | None) -> Callable:
    """``f`` over a leading axis: vectorised in groups of ``width`` run one after another
    (``lax.map``), one element at a time (no vectorisation) for ``width`` 1, or all at once
    (``vmap``) for ``width`` None."""
    if width is None:
        return jax.vmap(f)
    return lambda *xs: jax.lax.map(lambda x: f(*x), xs,
                                   batch_size=None if width == 1 else width)


def _sharded(f: Callable, k: int) -> Callable:
    """``f`` batched on its leading axis, split across the first ``k`` devices."""
    if k == 1:
        return f
    from jax.sharding import PartitionSpec

    return jax.shard_map(f, mesh=_mesh(k), in_specs=PartitionSpec("batch"),
                         out_specs=PartitionSpec("batch"), check_vma=False)


def run_nuts(model, args: Sequence[Any], spec: NutsSpec, *, seed: int, obs_site: str,
             predictive_args: Callable, model_key: Any,
             batched_args: Sequence[Any] | None = None, n_elements: int = 1,
             progress: bool = False, description: str = "NUTS") -> NutsResult:
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

    Returns arrays with leading axes ``(n_elements * chains, draws)``, element-major.
    """
    start = time.perf_counter()
    n = n_elements * spec.chains
    k = device_split(n)
    padded = math.ceil(n / k) * k
    index = np.minimum(np.arange(padded), n - 1)  # padding repeats the last chain; dropped later
    element = index // spec.chains
    leaves, treedef = jax.tree_util.tree_flatten(tuple(args))
    if batched_args is None:
        leaves = [np.ascontiguousarray(np.broadcast_to(np.asarray(v), (padded,) + np.shape(v)))
                  for v in leaves]
    else:
        batched, batched_def = jax.tree_util.tree_flatten(tuple(batched_args))
        if batched_def != treedef:
            raise ValueError("batched_args must have the structure of args")
        leaves = [np.asarray(v)[element] for v in batched]
    ids = np.stack([np.full(padded, seed, dtype=np.int64), index], axis=1)
    avals = [jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype) for v in leaves]
    shapes = tuple((a.shape, str(a.dtype)) for a in avals)
    base = (model_key, str(treedef), shapes)

    kernels = None

    def get_kernels():
        nonlocal kernels
        if kernels is None:
            one = [np.asarray(v)[0] for v in leaves]
            kernels = _Kernels(model, jax.tree_util.tree_unflatten(treedef, one), treedef, spec,
                               obs_site, predictive_args)
        return kernels

    leaf_avals = [_aval(v) for v in leaves]
    ids_aval = _aval(ids)
    total = spec.warmup + spec.draws
    length = max(1, math.ceil(total / 20))
    width = lockstep_width(spec.chains, padded // k)
    init_key = _program_key("init", base, spec, width, k)
    chunk_key = _program_key("chunk", base, spec, (length, width), k)
    post_key = _program_key("post", base, spec, width, k)

    def build_init():
        kern = get_kernels()

        def init(ids, *lv):
            if _serial_solves(kern.dim, k):
                one, w = functools.partial(kern.init_one, serial=True), 1
            else:
                one, w = kern.init_one, width
            state, u_star, scale = _batched(one, w)(ids, kern.args(list(lv)))
            _STATE_TREES[init_key] = jax.tree_util.tree_structure(state)
            return jax.tree_util.tree_leaves(state), u_star, scale

        return _sharded(init, k)

    def build_chunk():
        kern = get_kernels()
        if init_key not in _STATE_TREES:  # init came from the cache: trace its state's shape
            jax.eval_shape(build_init(), ids_aval, *leaf_avals)
        tree = _STATE_TREES[init_key]

        def chunk(state, u_star, scale, *lv):
            s = jax.tree_util.tree_unflatten(tree, state)
            s, out = _batched(lambda s, a, u, l: kern.chunk_one(s, a, u, l, length), width)(
                s, kern.args(list(lv)), u_star, scale)
            return jax.tree_util.tree_leaves(s), out

        return _sharded(chunk, k)

    def build_post():
        kern = get_kernels()

        def post(ids, z, u_star, scale, *lv):
            return _batched(kern.post_one, width)(ids, z, kern.args(list(lv)), u_star, scale)

        return _sharded(post, k)

    # Trace (or load) all three programs, then compile them side by side.
    init_exp = _exported(init_key, build_init, [ids_aval, *leaf_avals], k)
    state_avals, u_aval, scale_aval = jax.tree_util.tree_unflatten(
        init_exp.out_tree, [_aval(a) for a in init_exp.out_avals])
    chunk_avals = [state_avals, u_aval, scale_aval, *leaf_avals]
    chunk_exp = _exported(chunk_key, build_chunk, chunk_avals, k)
    z_aval = jax.ShapeDtypeStruct((padded, spec.draws) + u_aval.shape[1:], u_aval.dtype)
    post_avals = [ids_aval, z_aval, u_aval, scale_aval, *leaf_avals]
    post_exp = _exported(post_key, build_post, post_avals, k)
    init, run_chunk, post = _compiled([
        (init_key, init_exp, [ids_aval, *leaf_avals], k),
        (chunk_key, chunk_exp, chunk_avals, k),
        (post_key, post_exp, post_avals, k)])

    state, u_star, scale = init(ids, *leaves)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc=description, unit="it", leave=False)
    outs, done = [], 0
    while done < total:
        state, out = run_chunk(state, u_star, scale, *leaves)
        outs.append(out)
        if bar is not None:
            jax.block_until_ready(state)
            bar.update(min(length, total - done))
        done += length
    if bar is not None:
        bar.close()
    stats = {name: np.concatenate([np.asarray(o[name]) for o in outs], axis=1)
             [:, spec.warmup:total] for name in outs[0]}
    z = stats.pop("z")

    params, ll, pred = post(ids, z, u_star, scale, *leaves)

    def host(tree):
        return {name: np.asarray(v)[:n] for name, v in tree.items()}

    stats = {name: v[:n] for name, v in stats.items()}
    stats["tree_depth"] = np.ceil(np.log2(stats["n_steps"] + 1)).astype(np.int32)
    return NutsResult(posterior=host(params), log_likelihood=host(ll), predictive=host(pred),
                      stats=stats, seconds=time.perf_counter() - start)
