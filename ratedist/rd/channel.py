"""The optimal test channel and reproduction law of the Laplacian source (docs/theory.md §1).

Backward channel: U = V + Z with Z ~ Laplace(scale D) independent of V, and
V = 0 with probability (λD)², otherwise V ~ Laplace(λ).  Then U ~ Laplace(λ)
and E|U − V| = D exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._units import check_units, from_nats
from .._validation import check_finite_array, check_int, check_positive
from ..errors import InvalidArgumentError

__all__ = [
    "LaplaceReproductionLaw",
    "laplace_reproduction_law",
    "sample_laplace_test_channel",
    "shannon_lower_bound",
    "fit_laplace",
    "LaplaceFit",
    "differential_entropy_laplace",
]


@dataclass(frozen=True)
class LaplaceReproductionLaw:
    """Law of the optimal reproduction V: an atom at 0 plus a Laplace(λ) part.

    Attributes
    ----------
    atom : float
        P(V = 0) = (λD)².
    lam : float
        Rate λ of the continuous part, whose weight is ``1 - atom``.
    distortion : float
        The distortion D the law is optimal for.
    """

    atom: float
    lam: float
    distortion: float

    def mean_abs(self) -> float:
        """E|V| = (1 − (λD)²)/λ."""
        return (1.0 - self.atom) / self.lam

    def sample(self, size, rng) -> np.ndarray:
        rng = np.random.default_rng(rng)
        v = rng.laplace(0.0, 1.0 / self.lam, size=size)
        v[rng.random(size) < self.atom] = 0.0
        return v

    def cdf(self, x):
        x = np.asarray(x, dtype=np.float64)
        lap = np.where(x < 0, 0.5 * np.exp(self.lam * np.minimum(x, 0)), 1 - 0.5 * np.exp(-self.lam * np.maximum(x, 0)))
        return (1 - self.atom) * lap + self.atom * (x >= 0)


def laplace_reproduction_law(distortion, lam=1.0) -> LaplaceReproductionLaw:
    """Optimal reproduction law of a Laplace(λ) source at mean absolute error D ≤ 1/λ.

    >>> law = laplace_reproduction_law(0.5, 1.0)
    >>> law.atom
    0.25
    """
    lam = check_positive("lam", lam)
    d = check_positive("distortion", distortion)
    if lam * d > 1:
        raise InvalidArgumentError(
            f"`distortion` {d!r} exceeds D_max = 1/lam = {1 / lam!r}; at D >= 1/lam the optimal reproduction is V = 0."
        )
    return LaplaceReproductionLaw(atom=(lam * d) ** 2, lam=lam, distortion=d)


def sample_laplace_test_channel(n, distortion, lam=1.0, *, seed=None):
    """Draw ``n`` pairs (U, V) from the optimal backward test channel.

    Returns
    -------
    u, v : ndarray, shape (n,)
        U = V + Z; U ~ Laplace(λ), E|U − V| = D, P(V = 0) = (λD)².

    >>> u, v = sample_laplace_test_channel(200_000, 0.5, 1.0, seed=0)
    >>> bool(abs(np.mean(np.abs(u - v)) - 0.5) < 0.01)
    True
    """
    n = check_int("n", n, minimum=1)
    law = laplace_reproduction_law(distortion, lam)
    rng = np.random.default_rng(seed)
    v = law.sample(n, rng)
    z = rng.laplace(0.0, law.distortion, size=n)
    return v + z, v


def differential_entropy_laplace(lam=1.0, *, units="nats") -> float:
    """h(U) = ln(2e/λ) of a Laplace(λ) density."""
    lam = check_positive("lam", lam)
    return float(from_nats(np.log(2 * np.e / lam), units))


def shannon_lower_bound(distortion, *, entropy=None, pmf=None, step=None,
                        distortion_type="absolute", units="nats"):
    """Shannon lower bound R(D) ≥ h(U) − max{h(Z) : E ρ(Z) ≤ D} for difference distortions.

    Give either ``entropy`` (the differential entropy h(U) in nats) of a
    continuous source, or ``pmf`` and ``step`` of a grid-quantized source, for
    which h(U) ≈ H(X_Δ) + ln Δ.

    Parameters
    ----------
    distortion : array_like
        D > 0.
    distortion_type : {"absolute", "squared"}
        ρ = |·| (max entropy ln(2eD)) or ρ = (·)² (max entropy ½ ln(2πeD)).

    Returns
    -------
    float or ndarray
        max(0, bound) in ``units``.

    Notes
    -----
    docs/theory.md §1.  Tight for the Laplacian under absolute error when D ≤ 1/λ
    and for the Gaussian under squared error when D ≤ σ².

    >>> from ratedist.rd import rate_laplace
    >>> bool(abs(shannon_lower_bound(0.3, entropy=np.log(2 * np.e)) - rate_laplace(0.3)) < 1e-12)
    True
    """
    check_units(units)
    if (entropy is None) == (pmf is None):
        raise InvalidArgumentError("give exactly one of `entropy` (continuous source) or `pmf` with `step` (grid source).")
    if pmf is not None:
        if step is None:
            raise InvalidArgumentError("`step` (the grid spacing Δ) is required with `pmf`.")
        step = check_positive("step", step)
        p = check_finite_array("pmf", pmf, ndim=1)
        if np.any(p < 0) or abs(p.sum() - 1) > 1e-9 * max(1, p.size):
            raise InvalidArgumentError(f"`pmf` must be non-negative and sum to 1, got sum {p.sum()!r}.")
        nz = p[p > 0]
        entropy = float(-(nz * np.log(nz)).sum() + np.log(step))
    else:
        entropy = float(entropy)
        if not np.isfinite(entropy):
            raise InvalidArgumentError(f"`entropy` must be finite, got {entropy!r}.")
    d = np.asarray(distortion, dtype=np.float64)
    d = check_finite_array("distortion", d) if d.ndim else d
    if np.any(d <= 0) or not np.all(np.isfinite(d)):
        raise InvalidArgumentError(f"`distortion` must be finite and > 0, got {distortion!r}.")
    if distortion_type == "absolute":
        hz = np.log(2 * np.e * d)
    elif distortion_type == "squared":
        hz = 0.5 * np.log(2 * np.pi * np.e * d)
    else:
        raise InvalidArgumentError(f"`distortion_type` must be 'absolute' or 'squared', got {distortion_type!r}.")
    out = from_nats(np.maximum(0.0, entropy - hz), units)
    return float(out) if np.ndim(out) == 0 else out


@dataclass(frozen=True)
class LaplaceFit:
    """Maximum-likelihood Laplace fit of a sample.

    Attributes
    ----------
    lam : float
        λ̂ = 1 / mean|w − loc|.
    loc : float
        Location (0 unless ``center=True``, then the sample median).
    ks_statistic, ks_pvalue : float
        Kolmogorov–Smirnov statistic and p-value against the fitted law.  The
        p-value ignores that λ was estimated from the same sample, so it is
        conservative (too large); a small value still rejects the Laplacian.
    n : int
    """

    lam: float
    loc: float
    ks_statistic: float
    ks_pvalue: float
    n: int


def fit_laplace(weights, *, center=False, max_ks_samples=200_000, seed=0) -> LaplaceFit:
    """Fit a Laplace(λ) law to ``weights`` by maximum likelihood, with a KS goodness-of-fit test.

    ``weights`` may be an array or a mapping of arrays (all entries pooled).

    >>> rng = np.random.default_rng(0)
    >>> fit = fit_laplace(rng.laplace(0, 0.5, 100_000))
    >>> round(fit.lam, 1), fit.ks_pvalue > 0.01
    (2.0, True)
    """
    from collections.abc import Mapping

    from scipy import stats

    if isinstance(weights, Mapping):
        from .._validation import check_weights

        arrays = check_weights("weights", weights)
        w = np.concatenate([a.ravel().astype(np.float64) for a in arrays.values()])
    else:
        w = check_finite_array("weights", weights).ravel().astype(np.float64)
    if w.size == 0:
        raise InvalidArgumentError("`weights` is empty; pass at least one value.")
    loc = float(np.median(w)) if center else 0.0
    mad = float(np.mean(np.abs(w - loc)))
    if mad <= 0:
        raise InvalidArgumentError("`weights` are all equal to the location; a Laplace law cannot be fitted.")
    lam = 1.0 / mad
    sample = w
    if w.size > max_ks_samples:
        sample = np.random.default_rng(seed).choice(w, size=max_ks_samples, replace=False)
    ks = stats.kstest(sample, stats.laplace(loc=loc, scale=mad).cdf)
    return LaplaceFit(lam=lam, loc=loc, ks_statistic=float(ks.statistic), ks_pvalue=float(ks.pvalue), n=int(w.size))
