"""FedPM's mean estimator θ̂ = (1/K) Σ_k m^k, its exact error and the bound d/(4K) (docs/theory.md §5)."""

from __future__ import annotations

from .._backend import namespace
from .._validation import check_int
from ..errors import InvalidArgumentError, InvalidShapeError
from .masks import check_theta

__all__ = ["mean_estimate", "estimator_error", "error_bound"]


def mean_estimate(masks):
    """Server estimate θ̂ = (1/K) Σ_k m^k of the clients' mean probability.

    Parameters
    ----------
    masks : array of shape (K, d)
        Binary masks (0/1, any numeric or bool dtype), one row per client.

    Returns
    -------
    theta_hat : float64 array of shape (d,), on the masks' device.

    Notes
    -----
    Unbiased: E θ̂ = θ̄ = (1/K) Σ_k θ^k (docs/theory.md §5).

    Examples
    --------
    >>> import numpy as np
    >>> mean_estimate(np.array([[1, 0], [1, 1]], dtype=np.uint8)).tolist()
    [1.0, 0.5]
    """
    xp = namespace(masks)
    if xp is __import__("numpy"):
        masks = xp.asarray(masks)
    if masks.ndim != 2:
        raise InvalidShapeError(f"`masks` must be 2-D (K clients, d coordinates), got shape {tuple(masks.shape)}.")
    if masks.shape[0] == 0 or masks.shape[1] == 0:
        raise InvalidArgumentError(f"`masks` is empty (shape {tuple(masks.shape)}); pass K >= 1 clients and d >= 1 coordinates.")
    if masks.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"`masks` must be a numeric 0/1 array, got dtype {masks.dtype}.")
    if masks.dtype.kind != "b":
        bad = int(xp.count_nonzero((masks != 0) & (masks != 1)))
        if bad:
            raise InvalidArgumentError(f"`masks` must contain only 0 and 1; {bad} entries are neither.")
    return xp.mean(masks.astype(xp.float64), axis=0)


def estimator_error(theta):
    """Exact mean squared error E‖θ̂ − θ̄‖² = (1/K²) Σ_k Σ_i θ_i^k (1 − θ_i^k).

    Parameters
    ----------
    theta : array of shape (K, d) or (d,)
        The clients' probabilities (a 1-D array is one client, K = 1).

    Returns
    -------
    float
        The expected squared Euclidean error of :func:`mean_estimate`.

    Examples
    --------
    >>> import numpy as np
    >>> estimator_error(np.full((4, 8), 0.5)) == error_bound(8, 4)
    True
    """
    theta = check_theta(theta)
    xp = namespace(theta)
    k = 1 if theta.ndim == 1 else theta.shape[0]
    return float(xp.sum(theta * (1.0 - theta))) / k**2


def error_bound(d, K):
    """The bound d/(4K) on :func:`estimator_error`, with equality iff every θ = ½.

    Examples
    --------
    >>> error_bound(100, 10)
    2.5
    """
    d = check_int("d", d, minimum=1)
    K = check_int("K", K, minimum=1)
    return d / (4.0 * K)
