r"""The law's form error beyond the data: what makes a band hold its coverage when extrapolating.

A fitted law is uncertain in its parameters (the law band) and a run has its noise; beyond the
training domain a third error dominates on real data: the law's form is not exactly right, and
its error grows with the distance from the data (on the bundled studies, a few percent of log
loss per decade of compute, often of one sign for a whole study). bayescale models it as

.. math::
    \log L^{new}(x) = \log L_\theta(x) + \varepsilon
        + \sum_k b_k\, r_k(x) + \tau\, r(x)\, \eta,\qquad \eta \sim N(0, 1),

where :math:`r_k(x)` is how many decades input k (N, D and compute C = kND; or x) lies beyond
the largest value trained on, :math:`r(x)` the most decades any input lies outside the values
trained on (above or below), the slopes :math:`b_k` are the study's own (shared by every run it
predicts) and :math:`\tau r \eta` is the part that differs from run to run. The slopes act
above the data only: the refits that learn them predict upward, and say nothing of a shift
below the smallest runs, where only the spread grows. Inside the domain every :math:`r_k` is 0 and the predictive is
the law's plus the noise, as before.

How big are the slopes? Two sources, combined by Bayes' rule (:func:`slope_posterior`):

* **Across studies** (:class:`FormErrorPrior`): :math:`b_k \sim N(0, (c\,\hat\sigma)^2)`, with
  :math:`\hat\sigma` the fit's noise scale (a law that fits its own data loosely extrapolates
  loosely too) and :math:`\log c \sim N(\mu, s^2)`; :math:`\tau = d\,\hat\sigma`. The numbers
  :math:`\mu, s, d` were learned from leave-future-out backtests of the bundled studies
  (``python benchmarks/extrapolation.py``, which also checks them on each study with the
  study left out of the learning).
* **The user's own data** (:class:`Evidence`): at fit time the law is refitted below the top 1
  and 2 levels of compute (or x) of the data, with the Laplace approximation of the posterior
  (:func:`bayescale.many.laplace_many`: a mode search, no sampling), and its errors on the
  runs above tell this study's slopes: on the bundled studies their sign and size foretell the
  errors further out. They enter as Gaussian observations
  :math:`e = R\,b + a\,\mathbf{1} + N(0, \Sigma)` with :math:`\Sigma` the refit's law
  covariance plus its noise and scatter, and :math:`a \sim N(0, (o\hat\sigma)^2)` a level
  shared by every run one refit holds out (integrated out): a refit's misfit just past its
  edge, which does not grow with distance and so is not read as slope. Without it, errors of
  one sign right past a refit's edge (a fraction of a decade) are read as a steep slope and
  carried far beyond; with it (o = 2, learned like the rest) the held-out runs of the bundled
  studies are predicted better pooled (90% coverage 0.84 -> 0.89, MLPD 2.07 -> 2.44;
  ``benchmarks/results/extrapolation.md``).

The slopes' posterior is a scale mixture of Gaussians over :math:`c`; each posterior draw of the
law gets one slope vector drawn from it (:func:`draw_form_error`), so every question (predict,
allocate, decide, targets, plots) carries the form error the way it carries parameter
uncertainty.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.special import logsumexp

from bayescale.errors import DataError, FitError

__all__ = ["FormErrorPrior", "PRIOR", "Holdout", "Evidence", "directions_of", "holdout",
           "inner_splits", "evidence_of", "slope_posterior", "draw_form_error", "with_form_error",
           "holdout_log_density", "holdout_pit", "FAR", "ExtrapolationWarning", "beyond_data"]

#: Levels of compute (or x) the refits of a fit's own data hold out.
DROP = (1, 2)
#: Laplace draws per mode (2 modes) of each refit.
LAPLACE_DRAWS = 500
#: At most this many held-out runs of a refit enter its evidence (spread evenly in rank along
#: the form error's direction): the evidence carries their covariance, runs x runs, which for
#: the thousands of runs above the top levels of a 100,000-run table took gigabytes and crashed
#: NumPy. Every bundled data set holds out fewer, so none of their results depends on it.
MAX_HELDOUT = 500
#: Beyond this many decades (1000x) past the data a prediction warns: the backtests behind the
#: form error reach about 2 decades.
FAR = 3.0


class ExtrapolationWarning(UserWarning):
    """A prediction lies further beyond the data than the backtests behind its bands reach."""


def beyond_data(post, inputs: Mapping[str, Any], *, warn: bool = True,
                stacklevel: int = 2) -> dict[str, np.ndarray]:
    """How far each point is from the training data: every input (and C = k N D) over the
    domain's largest, and ``decades`` outside the domain (above its largest or below its
    smallest value, whichever input is furthest); an :class:`ExtrapolationWarning` past
    :data:`FAR` decades when ``warn``. Empty for a posterior without a domain."""
    import warnings

    if post.domain is None:
        return {}
    values = {k: np.asarray(v, dtype=float) for k, v in inputs.items()}
    if "N" in values and "D" in values and "C" not in values:
        values["C"] = post.flops_per_param_token * values["N"] * values["D"]
    out = {k: v / post.domain.ranges[k][1] for k, v in values.items() if k in post.domain.ranges}
    out["decades"] = np.asarray(post.distances(values)["max"], dtype=float) + np.zeros(
        len(next(iter(values.values()))))
    far = float(np.max(out["decades"]))
    if warn and far > FAR:
        below = any(np.any(v < post.domain.ranges[k][0]) for k, v in values.items()
                    if k in post.domain.ranges)
        above = any(np.any(v > post.domain.ranges[k][1]) for k, v in values.items()
                    if k in post.domain.ranges)
        where = "below the smallest runs" if below and not above else "beyond the training data"
        warnings.warn(
            f"predicting {far:.1f} decades ({10**far:.3g}x) {where}: the backtests behind the "
            f"bands reach about 2 decades, and past {FAR:g} (1000x) their width is a guess; add "
            "runs nearer the question", ExtrapolationWarning, stacklevel=stacklevel + 1)
    return out


@dataclass(frozen=True)
class FormErrorPrior:
    r"""What the bundled studies say about a law's form error before a study's own data do.

    The slope along each direction is :math:`N(0, (c\hat\sigma)^2)` per decade with
    :math:`\log c \sim N(` ``log_c_mean``, ``log_c_sd`` :math:`^2)`, and the run-to-run scatter
    is ``scatter`` times :math:`\hat\sigma` per decade. ``evidence_inflation`` multiplies the
    covariance of a fit's own refit errors: the runs a refit misses share more than its law
    and noise say (their misfit is correlated), so they count as fewer independent runs.
    ``offset`` is the sd, in units of :math:`\hat\sigma`, of a level error shared by all the
    runs one refit holds out that does not grow with their distance (the refit's misfit just
    past its edge): the part of the refits' errors that is not read as a slope.
    ``source`` says how the numbers were learned.
    """

    log_c_mean: float
    log_c_sd: float
    scatter: float
    evidence_inflation: float = 1.0
    offset: float = 0.0
    source: str = ""

    def __post_init__(self):
        if not (math.isfinite(self.log_c_mean) and self.log_c_sd > 0 and self.scatter >= 0
                and self.evidence_inflation >= 1 and self.offset >= 0):
            raise FitError(f"a form-error prior needs a finite log_c_mean, log_c_sd > 0, "
                           f"scatter >= 0, evidence_inflation >= 1 and offset >= 0; got {self}")

    def grid(self, n: int = 41) -> tuple[np.ndarray, np.ndarray]:
        """``n`` values of log c over 3 standard deviations either side, and their normalised
        log weights."""
        z = np.linspace(-3.0, 3.0, n)
        log_w = -0.5 * z**2
        return self.log_c_mean + self.log_c_sd * z, log_w - logsumexp(log_w)


#: The default, learned from every bundled study (see the module docstring).
PRIOR = FormErrorPrior(log_c_mean=math.log(16.0), log_c_sd=0.5, scatter=1.0,
                       evidence_inflation=1.0, offset=2.0,
                       source="learned from 29 leave-future-out splits of 7 families of bundled "
                              "studies: python benchmarks/extrapolation.py --learn, 2026-12-02")


@dataclass(frozen=True, eq=False)
class Holdout:
    """How a fit predicted runs beyond its data, in the form the slope model reads.

    Attributes
    ----------
    cutoff : float
        The largest value of the axis the fit was trained on.
    error : numpy.ndarray
        (P,) observed log loss minus the law's median log loss at each held-out run.
    law_cov : numpy.ndarray
        (P, P) covariance of the law's log loss over the fit's draws.
    noise_var : numpy.ndarray
        (P,) variance of a run's noise on log loss.
    R : numpy.ndarray
        (P, K) decades beyond the fit's domain along each direction.
    """

    cutoff: float
    error: np.ndarray
    law_cov: np.ndarray
    noise_var: np.ndarray
    R: np.ndarray

    @property
    def r(self) -> np.ndarray:
        """(P,) the largest distance of each run."""
        return self.R.max(axis=1)

    def cov(self, scatter: float) -> np.ndarray:
        """The errors' covariance without the slopes: law, noise and ``scatter`` per decade."""
        return self.law_cov + np.diag(self.noise_var + (scatter * self.r) ** 2)

    def to_dict(self) -> dict[str, Any]:
        return {"cutoff": self.cutoff, "error": self.error.tolist(),
                "law_cov": self.law_cov.tolist(), "noise_var": self.noise_var.tolist(),
                "R": self.R.tolist()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Holdout:
        return cls(float(d["cutoff"]), np.asarray(d["error"], float),
                   np.asarray(d["law_cov"], float).reshape(len(d["error"]), len(d["error"])),
                   np.asarray(d["noise_var"], float),
                   np.asarray(d["R"], float).reshape(len(d["error"]), -1))


@dataclass(frozen=True, eq=False)
class Evidence:
    """A fit's own leave-future-out refits: one :class:`Holdout` per cutoff (maybe none)."""

    directions: tuple[str, ...]
    holdouts: tuple[Holdout, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"directions": list(self.directions),
                "holdouts": [h.to_dict() for h in self.holdouts]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Evidence:
        return cls(tuple(d["directions"]), tuple(Holdout.from_dict(h) for h in d["holdouts"]))


def directions_of(law) -> tuple[str, ...]:
    """The direction a law's form-error slope follows: compute C for laws in N and D (so the
    slope is the same all along an IsoFLOP curve and no split of a budget can exploit it), x
    for one-variable laws, and epochs D/U for the data-constrained law (whose question is
    repetition: its refits hold out the most repeated runs)."""
    if "U" in law.inputs:
        return ("epochs",)
    return ("C",) if tuple(law.inputs)[:2] == ("N", "D") else tuple(law.inputs)


def evenly_in_rank(values, most: int = MAX_HELDOUT) -> np.ndarray:
    """Indices of at most ``most`` of ``values``, spread evenly over their ranks (the smallest
    and the largest always among them), in increasing order of index; all of them when there
    are no more than ``most``."""
    values = np.asarray(values)
    if values.size <= most:
        return np.arange(values.size)
    order = np.argsort(values, kind="stable")
    return np.sort(order[np.unique(np.round(np.linspace(0, values.size - 1, most)).astype(int))])


def holdout(post, test, cutoff: float, directions: Sequence[str]) -> Holdout:
    """The :class:`Holdout` of posterior ``post`` (its form taken as exact) at the runs of
    ``test`` (a :class:`~bayescale.ScalingData`); of at most :data:`MAX_HELDOUT` of them,
    spread evenly along the first direction (:func:`evenly_in_rank`)."""
    if test.n_points > MAX_HELDOUT:
        axis = np.asarray(getattr(test, directions[0]), dtype=float)
        keep = np.zeros(test.n_points, dtype=bool)
        keep[evenly_in_rank(axis)] = True
        test = test.subset(keep)
    inputs = {k: getattr(test, k) for k in post.law.inputs}
    log_law = np.log(post.law_draws(inputs))
    nu = np.maximum(post.nu, 3.0)  # a Student-t's variance; nu <= 2 has none: capped
    ratio = np.ones_like(nu)
    finite = np.isfinite(nu)
    ratio[finite] = nu[finite] / (nu[finite] - 2)
    noise_var = float(np.median(post.new_run_sigma**2 * ratio))
    dist = post.distances(inputs, above=True)  # held out above the cutoff
    return Holdout(cutoff=float(cutoff),
                   error=np.log(test.loss) - np.median(log_law, axis=0),
                   law_cov=np.atleast_2d(np.cov(log_law, rowvar=False)),
                   noise_var=np.full(test.n_points, noise_var),
                   R=np.stack([dist[k] for k in directions], axis=1))


def inner_splits(data, law, drop: Sequence[int] = DROP) -> dict[float, tuple[Any, Any]]:
    """The refits a fit makes of its own data: cutoff -> (runs at or below, runs above), along
    compute (laws in N and D) or x, holding out the top ``drop`` levels; splits whose training
    runs could not identify the law (too few, one distinct N or D) are left out."""
    from bayescale.backtesting import default_cutoffs, subset

    (axis,) = directions_of(law)
    values = np.asarray(getattr(data, axis), dtype=float)
    out = {}
    for k in drop:
        try:
            (cut,) = default_cutoffs(values, (k,))
        except DataError:
            continue
        train = values <= cut
        try:
            subset(data, train).check_for(law.inputs, law.n_params + 2, law.name)
        except DataError:
            continue
        out[cut] = (subset(data, train), subset(data, ~train))
    return out


def evidence_of(groups: Mapping[str, Any], law, *, noise: str = "student_t",
                priors: Mapping[str, Any] | None = None, repeats: bool = False,
                seed: int = 0, draws: int = LAPLACE_DRAWS,
                like: Mapping[str, Any] | None = None) -> dict[str, Evidence]:
    """Each data set's :class:`Evidence`: its :func:`inner_splits` refitted with the Laplace
    approximation (2 chains of ``draws`` draws each), all in one program
    (:func:`bayescale.many.laplace_many`).

    The refits are padded to the rows (and configurations) of the full data sets: with two
    splits per data set, a fit of 4 chains and as many draws has the same mode-search and
    post programs, so the form error compiles nothing more. ``like``: larger data sets (of
    which ``groups`` are parts) to pad to instead.
    """
    from bayescale.many import laplace_many

    dirs = directions_of(law)
    jobs = {(name, cut): pair for name, data in groups.items()
            for cut, pair in inner_splits(data, law).items()}
    out = {name: Evidence(dirs) for name in groups}
    if not jobs:
        return out
    keys = list(jobs)
    refits = {f"{i}": jobs[k][0] for i, k in enumerate(keys)}
    if like:  # as many refits as the larger data sets make (copies, unused): same program
        more = sum(len(inner_splits(data, law)) for data in like.values())
        refits.update({f"pad{i}": jobs[keys[0]][0] for i in range(more - len(refits))})
    posts = laplace_many(refits, law, noise=noise, priors=priors, repeats=repeats,
                         draws=draws, seed=seed, like=like or groups)
    found: dict[str, list[Holdout]] = {name: [] for name in groups}
    for i, (name, cut) in enumerate(keys):
        found[name].append(holdout(posts[f"{i}"], jobs[name, cut][1], cut, dirs))
    return {name: Evidence(dirs, tuple(h)) for name, h in found.items()}


def slope_posterior(sigma: float, evidence: Evidence | None, prior: FormErrorPrior = PRIOR):
    r"""The slopes' posterior: a mixture over the prior's grid of c of Gaussians.

    Returns ``(log_w, means, covs)`` of shapes (G,), (G, K), (G, K, K): for each c,
    :math:`V = (I/\kappa^2 + \sum_j R_j^T\Sigma_j^{-1}R_j)^{-1}`,
    :math:`m = V\sum_j R_j^T\Sigma_j^{-1}e_j` with :math:`\kappa = c\hat\sigma`, and the log
    weight is the prior's plus the marginal likelihood of the errors (matrix determinant lemma).
    """
    if not (math.isfinite(sigma) and sigma > 0):
        raise FitError(f"the noise scale of a form error must be positive; got {sigma!r}")
    log_c, log_w = prior.grid()
    K = len(evidence.directions) if evidence is not None else 1
    A, B, ll0 = np.zeros((K, K)), np.zeros(K), 0.0
    for h in (evidence.holdouts if evidence is not None else ()):
        cov = prior.evidence_inflation * h.cov(prior.scatter * sigma) + (
            prior.offset * sigma) ** 2
        chol = np.linalg.cholesky(cov)
        Ri = np.linalg.solve(chol, h.R)
        ei = np.linalg.solve(chol, h.error)
        A += Ri.T @ Ri
        B += Ri.T @ ei
        ll0 += -0.5 * (ei @ ei) - np.sum(np.log(np.diag(chol))) - 0.5 * len(ei) * math.log(
            2 * math.pi)
    means, covs, ll = [], [], []
    eye = np.eye(K)
    for lc in log_c:
        k2 = (math.exp(lc) * sigma) ** 2
        V = np.linalg.inv(eye / k2 + A)
        V = 0.5 * (V + V.T)
        means.append(V @ B)
        covs.append(V)
        ll.append(ll0 - 0.5 * np.linalg.slogdet(eye + k2 * A)[1] + 0.5 * B @ V @ B)
    log_w = log_w + np.array(ll)
    return log_w - logsumexp(log_w), np.array(means), np.array(covs)


def draw_form_error(sigma, evidence: Evidence | None, prior: FormErrorPrior = PRIOR, *,
                    seed: int = 0):
    """One slope vector per posterior draw from :func:`slope_posterior` (mixture component by
    its weight, then the Gaussian), and each draw's scatter per decade (``scatter`` times the
    draw's noise scale). ``sigma`` is the (S,) noise scale of the draws; the slopes' scale
    uses its median. Returns ``(slopes (S, K), scatter (S,))``."""
    sigma = np.asarray(sigma, dtype=float)
    log_w, means, covs = slope_posterior(float(np.median(sigma)), evidence, prior)
    rng = np.random.default_rng(seed)
    g = np.searchsorted(np.cumsum(np.exp(log_w)), rng.uniform(size=sigma.size) * (1 - 1e-12))
    g = np.minimum(g, len(log_w) - 1)
    chol = np.linalg.cholesky(covs + 1e-300 * np.eye(covs.shape[-1]))
    z = rng.standard_normal((sigma.size, means.shape[1]))
    slopes = means[g] + np.einsum("sij,sj->si", chol[g], z)
    return slopes, prior.scatter * sigma


def with_form_error(post, evidence: Evidence | None, prior: FormErrorPrior = PRIOR, *,
                    seed: int = 0):
    """``post`` (a :class:`~bayescale.Posterior` with a training domain) with the form error
    drawn from ``evidence`` and ``prior``; ``evidence=None`` returns it without one."""
    import dataclasses

    if evidence is None:
        return post.without_form_error()
    slopes, scatter = draw_form_error(post.new_run_sigma, evidence, prior, seed=seed)
    return dataclasses.replace(post, form_slopes=slopes, form_scatter=scatter,
                               form_directions=tuple(evidence.directions))


def holdout_log_density(outer: Holdout, sigma: float, evidence: Evidence | None,
                        prior: FormErrorPrior = PRIOR, *, shift: bool = True) -> float:
    """Joint log predictive density of a held-out set's errors under the form-error model
    (what :func:`fit_prior` maximises); ``shift=False`` drops the slopes' mean (a zero-mean
    form error of the same spread)."""
    from scipy import stats

    log_w, means, covs = slope_posterior(sigma, evidence, prior)
    base = outer.cov(prior.scatter * sigma)
    out = []
    for lw, m, V in zip(log_w, means, covs):
        mean = outer.R @ m if shift else np.zeros(len(outer.error))
        extra = V if shift else V + np.outer(m, m)
        out.append(lw + stats.multivariate_normal(mean, base + outer.R @ extra @ outer.R.T,
                                                  allow_singular=True).logpdf(outer.error))
    return float(logsumexp(out))


def holdout_pit(outer: Holdout, sigma: float, evidence: Evidence | None,
                prior: FormErrorPrior = PRIOR) -> np.ndarray:
    """Each held-out run's probability integral transform under the form-error model that
    :func:`holdout_log_density` scores: the predictive probability that the run's error is
    below the one observed (a mixture over the prior's grid of c of Gaussians, each with the
    law's and the noise's variance, the scatter's and the slopes'). A central band of mass q
    holds the run when ``abs(pit - 0.5) <= q / 2``; calibrated bands give uniform PITs."""
    from scipy import stats

    log_w, means, covs = slope_posterior(sigma, evidence, prior)
    base = np.diag(outer.cov(prior.scatter * sigma))
    pit = np.zeros(len(outer.error))
    for w, m, V in zip(np.exp(log_w), means, covs):
        sd = np.sqrt(base + np.einsum("pi,ij,pj->p", outer.R, V, outer.R))
        pit += w * stats.norm.cdf(outer.error, loc=outer.R @ m, scale=sd)
    return pit
