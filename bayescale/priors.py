r"""Default priors, overridable by site name, and their JSON form for saved fits.

Priors are placed on the sites the models sample (see :attr:`bayescale.laws.Law.sampled`):

=============  =============================================================================
site           default (``m`` = median observed loss, ``l`` = lowest observed loss, nats)
=============  =============================================================================
``E``          LogNormal(log(l) - 0.5, 0.75): irreducible loss, centred a little under the data
``A_ref``      LogNormal(log(0.3 m), 1.5): the N-term :math:`A N_{ref}^{-\alpha}` at the
``B_ref``      reference size (likewise the D-term, or the x-term of one-variable laws), nats
``alpha``      LogNormal(log 0.3, 1): exponents (``power_pure``: LogNormal(log 0.1, 1))
``beta``
``L_N_ref``    LogNormal(log m, 1): Kaplan, loss at the reference N with unlimited data
``L_D_ref``    (likewise for D)
``alpha_N``    LogNormal(log 0.1, 1): Kaplan exponents
``alpha_D``
``delta``      Normal(0, 0.3): ``broken_power``, the change of exponent at the break (> 0
               steeper after it, < 0 flatter)
``log_break_ref``  Normal(0, 3): ``broken_power``, log x_b minus the reference log x (e-folds)
``f``          LogNormal(0, 0.75): ``broken_power``, the break's width in e-folds of x
``L_ref``      LogNormal(log m, 0.5): ``log``, the loss at the reference x
``a``          Normal(0, 0.2 m): ``log``, the loss's change per e-fold of x
``R_N``        LogNormal(log 10, 1.5): ``data_constrained``, the repetitions R_N*, R_D* after
``R_D``        which an excess parameter or a repeated token is worth 1/e of a new one
``sigma``      LogNormal(log(0.02 / m), 1): noise on log loss; 0.02 nats is the seed-to-seed
               spread of repeated runs (Kaplan et al. 2020), i.e. 0.02/m on log loss
``sigma_fit``  LogNormal(log(0.02 / m), 1): with repeated runs, the deviation of a
               configuration's mean from the law (``sigma`` is then the seed-to-seed noise)
``nu``         2.0: Student-t degrees of freedom (a number fixes it; a distribution learns it);
               not used with repeated runs, whose configuration effects are Gaussian
=============  =============================================================================

Override any of them by name: ``fit(data, priors={"alpha": dist.Uniform(0, 2), "nu": 10.0})``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from bayescale.errors import FitError

__all__ = ["default_priors", "resolve_priors", "prior_to_dict", "prior_from_dict",
           "priors_to_json", "priors_from_json"]


def _dist():
    import numpyro.distributions as dist

    return dist


def learned_nu():
    """The prior of a learned Student-t ``nu``: Gamma(2, 0.1) (Juarez and Steel 2010; mean 20),
    what ``--nu learned`` and the benchmarks' learned-nu runs use."""
    return _dist().Gamma(2.0, 0.1)


def default_priors(law, loss: np.ndarray, *, repeats: bool = False, noise: str = "student_t"):
    """Weakly informative default priors for ``law`` given the observed losses (nats)."""
    dist = _dist()
    m = float(np.median(loss))
    low = float(np.min(loss))
    exponent = 0.1 if law.name in ("power_pure", "kaplan") else 0.3
    table = {
        "E": dist.LogNormal(math.log(low) - 0.5, 0.75),
        "A_ref": dist.LogNormal(math.log(0.3 * m), 1.5),
        "B_ref": dist.LogNormal(math.log(0.3 * m), 1.5),
        "alpha": dist.LogNormal(math.log(exponent), 1.0),
        "beta": dist.LogNormal(math.log(exponent), 1.0),
        "L_N_ref": dist.LogNormal(math.log(m), 1.0),
        "L_D_ref": dist.LogNormal(math.log(m), 1.0),
        "alpha_N": dist.LogNormal(math.log(0.1), 1.0),
        "alpha_D": dist.LogNormal(math.log(0.1), 1.0),
        "delta": dist.Normal(0.0, 0.3),
        "log_break_ref": dist.Normal(0.0, 3.0),
        "f": dist.LogNormal(0.0, 0.75),
        "L_ref": dist.LogNormal(math.log(m), 0.5),
        "a": dist.Normal(0.0, 0.2 * m),
        "R_N": dist.LogNormal(math.log(10.0), 1.5),
        "R_D": dist.LogNormal(math.log(10.0), 1.5),
    }
    priors = {site: table[site] for site in law.sampled}
    priors["sigma"] = dist.LogNormal(math.log(0.02 / m), 1.0)
    if repeats:
        priors["sigma_fit"] = dist.LogNormal(math.log(0.02 / m), 1.0)
    if noise == "student_t" and not repeats:  # repeats: Gaussian effects, integrated out
        priors["nu"] = 2.0
    return priors


def resolve_priors(law, loss, overrides: Mapping[str, Any] | None, *, repeats: bool, noise: str):
    """Defaults with ``overrides`` applied; unknown names raise :class:`FitError`."""
    dist = _dist()
    priors = default_priors(law, loss, repeats=repeats, noise=noise)
    for name, value in (overrides or {}).items():
        if name == "nu" and repeats and noise == "student_t":
            raise FitError("nu: these runs repeat configurations, so they get the repeated-run "
                           "model (Gaussian configuration effects and seed noise, no Student-t "
                           "noise); pass repeats=False (--repeats no) to keep per-run Student-t "
                           "noise with this nu")
        if name not in priors:
            natural = f" ({name!r} is derived; put the prior on {name}_ref)" if (
                f"{name}_ref" in priors) else ""
            raise FitError(f"no prior site {name!r} in law {law.name!r} with {noise} noise"
                           f"{natural}; sites: {', '.join(priors)}")
        if isinstance(value, (int, float)):
            if name != "nu":
                raise FitError(f"prior {name!r} must be a numpyro distribution (only 'nu' may be "
                               "fixed to a number)")
            value = float(value)
        elif not isinstance(value, dist.Distribution):
            raise FitError(f"prior {name!r} must be a numpyro distribution, got "
                           f"{type(value).__name__}")
        priors[name] = value
    return priors


def prior_to_dict(prior) -> dict[str, Any]:
    """JSON-able description of a prior: ``{"dist": "LogNormal", "loc": .., "scale": ..}``."""
    if isinstance(prior, (int, float)):
        return {"fixed": float(prior)}
    params = {}
    for name in prior.arg_constraints:
        value = getattr(prior, name, None)
        if value is None:
            continue
        params[name] = np.asarray(value).tolist()
    return {"dist": type(prior).__name__, **params}


def prior_from_dict(spec: Mapping[str, Any]):
    """Inverse of :func:`prior_to_dict`."""
    if "fixed" in spec:
        return float(spec["fixed"])
    dist = _dist()
    kwargs = {k: v for k, v in spec.items() if k != "dist"}
    cls = getattr(dist, spec["dist"], None)
    if cls is None:
        raise FitError(f"saved prior uses unknown distribution {spec['dist']!r}")
    if spec["dist"] in ("Normal", "LogNormal", "HalfNormal", "Uniform", "StudentT", "Gamma",
                        "HalfCauchy", "Exponential", "TruncatedNormal", "Beta"):
        kwargs = {k: v for k, v in kwargs.items() if k not in ("probs",)}
    return cls(**kwargs)


def priors_to_json(priors: Mapping[str, Any]) -> str:
    return json.dumps({k: prior_to_dict(v) for k, v in priors.items()})


def priors_from_json(text: str) -> dict[str, Any]:
    return {k: prior_from_dict(v) for k, v in json.loads(text).items()}
