"""Bernoulli mask sampling m ~ Bern(θ) for a batch of clients (THEORY.md §5).

One code path for NumPy and CuPy: the sample stays on the caller's device.
On the host, each entry compares a 32-bit uniform integer u (half of one raw
64-bit draw of the generator) with θ·2^32, so ``P(m = 1) = ⌈θ·2^32⌉ / 2^32``
(within 2^-32 of θ; exactly 0 and 1 at θ = 0 and 1), fused in a numba kernel.
On a CuPy device, float32 uniforms (within 2^-24).  Rows are drawn one after
another, so a batch never allocates more than one client's worth of randomness.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .._backend import namespace
from .._validation import check_int
from ..errors import InvalidArgumentError, InvalidShapeError

__all__ = ["sample_masks", "mask_counts", "check_theta"]


def check_theta(theta, name: str = "theta", *, ndims=(1, 2)):
    """Validate client probabilities: a 1-D ``(d,)`` or 2-D ``(K, d)`` array in [0, 1]."""
    xp = namespace(theta)
    if xp is np:
        theta = np.asarray(theta)
    if theta.dtype.kind not in "fiub":
        raise InvalidArgumentError(f"`{name}` must be a real array of probabilities, got dtype {theta.dtype}.")
    if theta.dtype.kind != "f":
        theta = theta.astype(xp.float64)
    if theta.ndim not in ndims:
        raise InvalidShapeError(
            f"`{name}` must have {' or '.join(str(n) for n in ndims)} dimension(s) "
            f"((d,) for one client, (K, d) for K clients), got shape {tuple(theta.shape)}."
        )
    if theta.size == 0:
        raise InvalidArgumentError(
            f"`{name}` is empty (shape {tuple(theta.shape)}); pass at least one client and one coordinate (K >= 1, d >= 1)."
        )
    bad = int(xp.count_nonzero(~xp.isfinite(theta)))
    if bad:
        raise InvalidArgumentError(f"`{name}` contains {bad} NaN or infinite value(s); probabilities must be finite.")
    lo, hi = float(theta.min()), float(theta.max())
    if lo < 0.0 or hi > 1.0:
        raise InvalidArgumentError(
            f"`{name}` must lie in [0, 1], got values in [{lo:.6g}, {hi:.6g}]; "
            "pass probabilities (e.g. sigmoid of the scores), not scores."
        )
    return theta


def _generator(xp, seed, rng):
    if rng is not None and seed is not None:
        raise InvalidArgumentError("pass either `seed` or `rng`, not both.")
    if rng is not None:
        return rng
    if xp is np:
        return np.random.default_rng(seed)
    return xp.random.default_rng(seed)


def _raw(gen, n):
    # full-range uint64 draws (faster than bit_generator.random_raw, which takes a lock per call path)
    return gen.integers(0, np.iinfo(np.uint64).max, (n + 1) // 2, dtype=np.uint64, endpoint=True)


def _row_sample(xp, gen, row):
    if xp is np:
        from ..kernels._fedpm_cpu import bernoulli_from_raw

        out = np.empty(row.shape[0], dtype=np.uint8)
        bernoulli_from_raw(_raw(gen, row.shape[0]), np.ascontiguousarray(row), out)
        return out
    u = gen.random(row.shape, dtype=xp.float32)
    return u < row.astype(xp.float32) if row.dtype != xp.float32 else u < row


def sample_masks(theta, *, seed=None, rng=None):
    """Sample binary masks ``m ~ Bern(θ)`` coordinate-wise, one row per client.

    Parameters
    ----------
    theta : array of shape (d,) or (K, d)
        Probabilities in [0, 1] (NumPy or CuPy); not modified.
    seed : int, optional
        Seed of a fresh generator (same seed, same masks).
    rng : numpy.random.Generator or cupy generator, optional
        Generator to draw from instead of ``seed``.

    Returns
    -------
    masks : uint8 array, same shape and device as ``theta``
        Entries 0 or 1.

    Notes
    -----
    ``P(m_i = 1) = ⌈θ_i 2^{32}⌉ / 2^{32}`` on the host (2^{24} on CuPy),
    exact at 0 and 1.  THEORY.md §5 (uplink).

    Examples
    --------
    >>> m = sample_masks(np.array([[0.0, 1.0, 0.5]]), seed=0)
    >>> m.dtype, m.shape, int(m[0, 0]), int(m[0, 1])
    (dtype('uint8'), (1, 3), 0, 1)
    """
    theta = check_theta(theta)
    xp = namespace(theta)
    gen = _generator(xp, seed, rng)
    if theta.ndim == 1:
        return _row_sample(xp, gen, theta).astype(xp.uint8)
    out = xp.empty(theta.shape, dtype=xp.uint8)
    for k in range(theta.shape[0]):
        out[k] = _row_sample(xp, gen, theta[k])
    return out


def mask_counts(thetas, *, seed=None, rng=None, n_clients: int | None = None):
    """Sample one mask per client and return ``M = Σ_k m^k`` without storing the masks.

    Parameters
    ----------
    thetas : array (K, d), array (d,) or iterable of (d,) arrays
        The clients' probabilities.  A 1-D array with ``n_clients=K`` means
        K clients sharing the same θ.  An iterable is consumed client by
        client, so ``K × d`` never needs to fit in memory.
    seed, rng
        As in :func:`sample_masks`; clients are sampled in order from one generator.
    n_clients : int, optional
        Only with a 1-D ``thetas``.

    Returns
    -------
    counts : array (d,) of uint16 (uint32 when K ≥ 65536), and the number of clients K.

    Examples
    --------
    >>> c, k = mask_counts(np.array([0.0, 1.0]), n_clients=3, seed=1)
    >>> c.tolist(), k
    ([0, 3], 3)
    """
    if hasattr(thetas, "shape"):
        arr = check_theta(thetas)
        if arr.ndim == 1:
            k = 1 if n_clients is None else check_int("n_clients", n_clients, minimum=1)
            rows: Iterable = (arr for _ in range(k))
        else:
            if n_clients is not None and int(n_clients) != arr.shape[0]:
                raise InvalidShapeError(f"`n_clients`={n_clients} does not match `thetas` with {arr.shape[0]} rows.")
            rows = iter(arr)
    else:
        if n_clients is not None:
            raise InvalidArgumentError("`n_clients` is only used with a 1-D `thetas` array.")
        rows = iter(thetas)
    counts = None
    xp = np
    gen = None
    k = 0
    for row in rows:
        if counts is None:
            row = check_theta(row, "thetas[0]", ndims=(1,))
            xp = namespace(row)
            gen = _generator(xp, seed, rng)
            counts = xp.zeros(row.shape, dtype=xp.uint32)
            d = row.shape[0]
        elif k == 0 or not hasattr(thetas, "shape"):
            row = check_theta(row, f"thetas[{k}]", ndims=(1,))
            if row.shape[0] != d:
                raise InvalidShapeError(f"client {k} has {row.shape[0]} probabilities but client 0 has {d}; all clients need the same d.")
        if xp is np:
            from ..kernels._fedpm_cpu import accumulate_bernoulli_from_raw

            accumulate_bernoulli_from_raw(_raw(gen, d), np.ascontiguousarray(row), counts)
        else:
            counts += _row_sample(xp, gen, row)
        k += 1
    if counts is None:
        raise InvalidArgumentError("`thetas` holds no client (K = 0); pass at least one client.")
    if k < 65536:
        counts = counts.astype(xp.uint16)
    return counts, k
