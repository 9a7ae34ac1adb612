r"""NumPyro models: a scaling law plus an explicit noise term on log loss.

One generic function places the sample sites; :data:`MODELS` holds a thin model per law.
Observations are log losses :math:`y_i = \log L_i`:

* no repeated runs: :math:`y_i \sim \mathrm{StudentT}(\nu, \log L(N_i, D_i), \sigma)` (the robust
  default, the Bayesian counterpart of the Huber loss) or :math:`\mathrm{Normal}(\log L, \sigma)`;
* repeated runs of a configuration (same inputs, several seeds): a configuration effect
  :math:`\delta_c = \sigma_{fit} z_c`, :math:`z_c \sim \mathrm{StudentT}(\nu, 0, 1)` (or Normal),
  absorbs the law's misfit, and :math:`y_i \sim \mathrm{Normal}(\log L + \delta_{c(i)}, \sigma)`,
  so :math:`\sigma` is the seed-to-seed noise learned from the repeats.

Law parameters are sampled at the reference point of the data (``A_ref`` ...) and recorded in natural
units as deterministic sites (``A``, ``B``, ``N_c`` ...) with the names every output uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import numpyro
import numpyro.distributions as dist

from bayescale._jax import jnp
from bayescale.laws import LAWS, Law

__all__ = ["scaling_model", "MODELS", "OBS_SITE"]

#: Name of the observed site: the natural log of the loss.
OBS_SITE = "log_loss"


def scaling_model(log_inputs: Mapping[str, Any], y=None, *, law: Law, priors: Mapping[str, Any],
                  log_ref: Mapping[str, float], config=None, n_config: int = 0):
    """Place the sites of ``law`` with its noise term; ``y`` (log losses) None to predict.

    Parameters
    ----------
    log_inputs: natural log of each input of the law, e.g. ``{"N": log N, "D": log D}``.
    y: observed log losses, or None.
    law: the law; priors: a prior per site (see :mod:`bayescale.priors`).
    log_ref: reference point (mean log input) of the amplitude parameterisation.
    config, n_config: configuration index of each row when runs are repeated, else None.
    """
    sampled = {site: numpyro.sample(site, priors[site]) for site in law.sampled}
    params = law.from_sampled(sampled, log_ref)
    for name in law.params:
        if name not in sampled:
            numpyro.deterministic(name, params[name])
    mu = law.log_loss(params, log_inputs)
    sigma = numpyro.sample("sigma", priors["sigma"])
    nu = priors.get("nu")
    if nu is not None and not isinstance(nu, float):
        nu = numpyro.sample("nu", nu)
    if config is None:
        noise = dist.Normal(mu, sigma) if nu is None else dist.StudentT(nu, mu, sigma)
        with numpyro.plate("runs", mu.shape[0]):
            numpyro.sample(OBS_SITE, noise, obs=y)
        return
    sigma_fit = numpyro.sample("sigma_fit", priors["sigma_fit"])
    with numpyro.plate("configs", n_config):
        z = numpyro.sample("z_config", dist.Normal() if nu is None else dist.StudentT(nu))
    with numpyro.plate("runs", mu.shape[0]):
        numpyro.sample(OBS_SITE, dist.Normal(mu + sigma_fit * jnp.take(z, config), sigma), obs=y)


#: A thin model per law: ``MODELS["chinchilla"](log_inputs, y, priors=..., log_ref=...)``.
MODELS = {name: partial(scaling_model, law=law) for name, law in LAWS.items()}
