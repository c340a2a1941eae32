"""Closed-form rate-distortion functions (docs/theory.md §1).

Laplacian source under absolute error, Gaussian under squared error, Bernoulli
under Hamming distortion.  All functions broadcast over arrays, compute in nats
and convert on return when ``units="bits"``.
"""

from __future__ import annotations

import numpy as np

from .._units import check_units, from_nats, to_nats
from .._validation import check_finite_array, check_open_unit, check_positive
from ..errors import InvalidArgumentError

__all__ = [
    "rate_laplace",
    "distortion_laplace",
    "rate_gaussian",
    "distortion_gaussian",
    "rate_bernoulli",
    "distortion_bernoulli",
    "binary_entropy",
]


def _as_array(name, x, *, positive=False, nonnegative=False):
    arr = check_finite_array(name, np.asarray(x, dtype=np.float64) if np.ndim(x) == 0 else x)
    arr = np.asarray(arr, dtype=np.float64)
    if positive and np.any(arr <= 0):
        raise InvalidArgumentError(f"`{name}` must be > 0 everywhere, got min {float(arr.min())!r}.")
    if nonnegative and np.any(arr < 0):
        raise InvalidArgumentError(f"`{name}` must be >= 0 everywhere, got min {float(arr.min())!r}.")
    return arr


def _ret(x):
    return float(x) if np.ndim(x) == 0 else x


def rate_laplace(distortion, lam=1.0, *, units="nats"):
    """R(D) of a Laplace(λ) source under absolute-error distortion.

    Parameters
    ----------
    distortion : array_like, shape (...)
        Mean absolute error D > 0.
    lam : float
        Rate parameter λ > 0 of the density (λ/2)·exp(−λ|u|).
    units : {"nats", "bits"}

    Returns
    -------
    rate : float or ndarray, shape (...)
        R(D) = max(0, −ln(λD)) in ``units`` per symbol.

    Notes
    -----
    docs/theory.md §1; the slides' Laplacian rate-distortion function. R(D) = 0 for
    D ≥ 1/λ (reproduce 0), and R → ∞ as D → 0.

    Examples
    --------
    >>> rate_laplace(0.5, 1.0, units="bits")
    1.0
    >>> rate_laplace([0.25, 2.0], 1.0, units="bits").tolist()
    [2.0, 0.0]
    """
    check_units(units)
    lam = check_positive("lam", lam)
    d = _as_array("distortion", distortion, positive=True)
    r = np.maximum(0.0, -np.log(lam * d))
    return _ret(from_nats(r, units))


def distortion_laplace(rate, lam=1.0, *, units="nats"):
    """D(R) = e^{−R}/λ of a Laplace(λ) source under absolute error (R in nats).

    >>> distortion_laplace(1.0, 1.0, units="bits")
    0.5
    """
    check_units(units)
    lam = check_positive("lam", lam)
    r = _as_array("rate", rate, nonnegative=True)
    return _ret(np.exp(-to_nats(r, units)) / lam)


def rate_gaussian(distortion, variance=1.0, *, units="nats"):
    """R(D) = max(0, ½ ln(σ²/D)) of a N(0, σ²) source under squared error.

    >>> rate_gaussian(0.25, 1.0, units="bits")
    1.0
    """
    check_units(units)
    var = check_positive("variance", variance)
    d = _as_array("distortion", distortion, positive=True)
    return _ret(from_nats(np.maximum(0.0, 0.5 * np.log(var / d)), units))


def distortion_gaussian(rate, variance=1.0, *, units="nats"):
    """D(R) = σ² e^{−2R} of a N(0, σ²) source under squared error.

    >>> distortion_gaussian(1.0, 1.0, units="bits")
    0.25
    """
    check_units(units)
    var = check_positive("variance", variance)
    r = _as_array("rate", rate, nonnegative=True)
    return _ret(var * np.exp(-2.0 * to_nats(r, units)))


def binary_entropy(p, *, units="nats"):
    """h(p) = −p ln p − (1−p) ln(1−p), with h(0) = h(1) = 0.

    >>> binary_entropy(0.5, units="bits")
    1.0
    """
    check_units(units)
    p = _as_array("p", p, nonnegative=True)
    if np.any(p > 1):
        raise InvalidArgumentError(f"`p` must lie in [0, 1], got max {p.max()!r}.")
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(np.where(p > 0, p * np.log(p), 0.0) + np.where(p < 1, (1 - p) * np.log1p(-p), 0.0))
    return _ret(from_nats(h, units))


def rate_bernoulli(distortion, p, *, units="nats"):
    """R(D) = h(p) − h(D) for 0 ≤ D < min(p, 1−p), else 0: Bernoulli(p) under Hamming distortion.

    >>> round(rate_bernoulli(0.0, 0.5, units="bits"), 12)
    1.0
    """
    check_units(units)
    p = check_probability_open("p", p)
    d = _as_array("distortion", distortion, nonnegative=True)
    if np.any(d > 1):
        raise InvalidArgumentError(f"`distortion` is a Hamming distortion in [0, 1], got max {d.max()!r}.")
    dmax = min(p, 1 - p)
    dc = np.minimum(d, dmax)
    r = np.where(d < dmax, binary_entropy(p) - np.asarray(binary_entropy(dc)), 0.0)
    return _ret(from_nats(np.maximum(r, 0.0), units))


def distortion_bernoulli(rate, p, *, units="nats"):
    """D(R): the D ≤ min(p, 1−p) with h(p) − h(D) = R (bisection to machine precision).

    >>> round(distortion_bernoulli(rate_bernoulli(0.1, 0.3), 0.3), 12)
    0.1
    """
    check_units(units)
    p = check_probability_open("p", p)
    r = np.asarray(to_nats(_as_array("rate", rate, nonnegative=True), units), dtype=np.float64)
    hp = binary_entropy(p)
    target = np.maximum(hp - r, 0.0)  # h(D) must equal this
    lo = np.zeros_like(target)
    hi = np.full_like(target, min(p, 1 - p))
    for _ in range(80):  # h is increasing on [0, 1/2]
        mid = 0.5 * (lo + hi)
        below = np.asarray(binary_entropy(mid)) < target
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    return _ret(0.5 * (lo + hi))


def check_probability_open(name, p):
    return check_open_unit(name, p)
