"""The per-chain functions the NUTS programs of :mod:`bayescale._nuts` are traced from (internal).

:class:`Kernels` holds, for one NumPyro model, the mode search and whitening (``init_one``), a
chunk of NUTS transitions (``chunk_one``) and the map of whitened draws back to the model's
parameters, log likelihoods and simulated observations (``post_one``). It is made only when a
program must be traced; a program loaded from the cache needs none of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from bayescale._jax import jax, jnp

if TYPE_CHECKING:
    from bayescale._nuts import NutsSpec

__all__ = ["Kernels"]


class Kernels:
    """The per-chain functions of one model (made only when a program is traced).

    A chain's latent parameters are one flat vector :math:`u` on the unconstrained scale; NUTS
    runs on :math:`z`, with :math:`u = u^* + L z` (see the module docstring).

    Parameters
    ----------
    model : callable
        The NumPyro model.
    args : tuple
        One element's arguments (they fix the shapes).
    spec : NutsSpec
        The sampler's settings.
    obs_site : str
        The observed site that ``post_one`` simulates.
    predictive_args : callable
        The model's arguments with the observations removed, from its arguments.
    """

    def __init__(self, model, args: Sequence[Any], spec: NutsSpec, obs_site: str,
                 predictive_args: Callable):
        from jax.flatten_util import ravel_pytree
        from numpyro.infer.hmc import hmc

        self.model, self.spec = model, spec
        self.obs_site, self.predictive_args = obs_site, predictive_args
        shapes = jax.eval_shape(self._latent, tuple(args))
        latent = {name: jnp.zeros(s.shape, s.dtype) for name, s in shapes.items()}
        self.names = tuple(latent)
        self.unravel = ravel_pytree(latent)[1]
        self.dim = sum(int(np.prod(s.shape)) for s in shapes.values())
        self._init_kernel, self._sample_kernel = hmc(potential_fn_gen=self._potential_at,
                                                     algo="NUTS")

    def _latent(self, args) -> dict[str, Any]:
        """The latent sites of one prior draw, on the unconstrained scale."""
        from numpyro import handlers
        from numpyro.distributions import biject_to

        trace = handlers.trace(handlers.seed(self.model, 0)).get_trace(*args)
        return {name: biject_to(site["fn"].support).inv(site["value"])
                for name, site in trace.items()
                if site["type"] == "sample" and not site["is_observed"]}

    def potential(self, u, a):
        """Negative log density at the flat unconstrained ``u`` (infinite where not finite)."""
        from numpyro.infer.util import potential_energy

        value = potential_energy(self.model, a, {}, self.unravel(u))
        return jnp.where(jnp.isfinite(value), value, jnp.inf)

    def _potential_at(self, a, u_star, scale):
        """The potential of the whitened :math:`z` (NumPyro's ``potential_fn_gen``)."""
        return lambda z: self.potential(u_star + scale @ z, a)

    def starts(self, rng, a):
        """The mode search's starting points: the median of 15 prior draws, then
        ``spec.starts - 1`` further draws pulled halfway towards it."""
        from jax.flatten_util import ravel_pytree
        from numpyro import handlers
        from numpyro.distributions import biject_to

        def one(k):
            trace = handlers.trace(handlers.seed(self.model, k)).get_trace(
                *self.predictive_args(a))
            return ravel_pytree({name: biject_to(trace[name]["fn"].support).inv(
                trace[name]["value"]) for name in self.names})[0]

        draws = jax.vmap(one)(jax.random.split(rng, 15 + self.spec.starts - 1))
        median = jnp.median(draws[:15], axis=0)
        return jnp.concatenate([median[None], 0.5 * (median + draws[15:])])

    def newton(self, u, a):
        """Damped Newton steps from ``u``: the mode, the whitening scale and the potential."""
        dim, potential = self.dim, self.potential
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

        def step(i, carry):
            # Step 0 only evaluates the start (d = 0, taken): the potential, its gradient and
            # its Hessian appear once in the program, inside the loop, which halves the
            # search's share of the compile.
            u, lam, f, g, h = carry
            first = i == 0
            d = -jnp.linalg.solve(h + lam * eye, g)
            trial = u + jnp.where(jnp.all(jnp.isfinite(d)) & ~first, d, 0.0)
            f_trial, g_trial = value_and_grad(trial, a)
            better = first | ((f_trial < f) & jnp.all(jnp.isfinite(g_trial)))
            h = jnp.where(better, hessian(trial, a), h)
            lam = jnp.where(first, lam, jnp.where(better, lam / 3.0, lam * 4.0))
            return (jnp.where(better, trial, u), lam, jnp.where(better, f_trial, f),
                    jnp.where(better, g_trial, g), h)

        zero = jnp.zeros_like(u)
        u, _, f, _, h = jax.lax.fori_loop(0, self.spec.newton_steps + 1, step,
                                          (u, 1.0, jnp.inf, zero, eye))
        vals, vecs = jnp.linalg.eigh(0.5 * (h + h.T))
        vals = jnp.where(jnp.isfinite(vals), jnp.maximum(jnp.abs(vals), 1e-2), 1.0)
        scale = vecs / jnp.sqrt(vals)
        return u, jnp.where(jnp.all(jnp.isfinite(scale)), scale, eye), f

    def init_state(self, z0, a, u_star, scale, rng_key):
        """NumPyro's NUTS state at ``z0`` of the posterior whitened at ``u_star``."""
        spec = self.spec
        return self._init_kernel(z0, spec.warmup, dense_mass=spec.dense_mass,
                                 target_accept_prob=spec.target_accept,
                                 max_tree_depth=spec.max_tree_depth,
                                 model_args=(a, u_star, scale), rng_key=rng_key)

    def state_tree(self, args: Sequence[Any]):
        """The tree structure of a chain's NUTS state (what init makes and chunk carries).

        An abstract evaluation of :meth:`init_state`: nothing runs, nothing is stored.
        """
        z = np.zeros(self.dim)
        shapes = jax.eval_shape(self.init_state, z, tuple(args), z, np.eye(self.dim),
                                jax.random.PRNGKey(0))
        return jax.tree_util.tree_structure(shapes)

    def init_one(self, ids, a, serial=False):
        """A chain's mode, whitening scale and NUTS state (see the module docstring).

        ``serial`` searches from one start at a time (:func:`_serial_solves`).
        """
        rng = jax.random.fold_in(jax.random.PRNGKey(ids[0]), ids[1])
        k_start, k_jitter, k_nuts = jax.random.split(rng, 3)
        one_start = lambda u: self.newton(u, a)  # noqa: E731
        u0 = self.starts(k_start, a)
        modes, scales, values = (jax.lax.map(one_start, u0) if serial
                                 else jax.vmap(one_start)(u0))
        best = jnp.argmin(values)
        u_star, scale = modes[best], scales[best]
        z0 = jax.random.uniform(k_jitter, (self.dim,), minval=-1.0, maxval=1.0)
        return self.init_state(z0, a, u_star, scale, k_nuts), u_star, scale

    def chunk_one(self, state, a, u_star, scale, length):
        """``length`` NUTS transitions of a chain: the last state and each draw's statistics."""
        def body(s, _):
            s = self._sample_kernel(s, model_args=(a, u_star, scale))
            return s, {"z": s.z, "lp": -s.potential_energy, "energy": s.energy,
                       "n_steps": s.num_steps, "acceptance_rate": s.accept_prob,
                       "diverging": s.diverging, "step_size": s.adapt_state.step_size}

        return jax.lax.scan(body, state, None, length=length)

    def post_one(self, ids, z, a, u_star, scale):
        """A chain's draws ``z`` as parameters (deterministic sites included), and the
        pointwise log likelihoods and one simulation of the observed site of every
        ``spec.pointwise_every``-th draw (each with the random key it has unthinned)."""
        from numpyro import handlers
        from numpyro.infer.util import constrain_fn, log_likelihood

        model = self.model
        rng = jax.random.fold_in(jax.random.PRNGKey(ids[0] + 1), ids[1])
        u = u_star + z @ scale.T
        params = jax.vmap(lambda v: constrain_fn(model, a, {}, self.unravel(v),
                                                 return_deterministic=True))(u)
        every = self.spec.pointwise_every
        kept = jax.tree_util.tree_map(lambda v: v[::every], params)
        ll = log_likelihood(model, kept, *a)

        def simulate(k, p):
            trace = handlers.trace(handlers.seed(handlers.condition(model, p), k)).get_trace(
                *self.predictive_args(a))
            return trace[self.obs_site]["value"]

        keys = jax.random.split(rng, z.shape[0])[::every]
        return params, ll, {self.obs_site: jax.vmap(simulate)(keys, kept)}


# ------------------------------------------------------------------------------ build
