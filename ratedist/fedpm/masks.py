"""Bernoulli mask sampling m ~ Bern(θ) for a batch of clients (docs/theory.md §5).

A counter-based generator: entry i of client k compares the 32-bit uniform

    u_{k,i} = half (i mod 2) of W_k[⌊i/2⌋],   W_k[j] = mix64(c_k + (j + 1)·G),   c_k = mix64(key + (k + 1)·G)

(low half first; G = 0x9E3779B97F4A7C15, mix64 the splitmix64 finalizer) with
θ·2^32, so ``P(m = 1) = ⌈θ·2^32⌉ / 2^32`` (within 2^-32 of θ; exactly 0 and 1
at θ = 0 and 1).  The 64-bit ``key`` comes from the seed
(:func:`mask_key`).  Every mask entry is a pure function of (key, client,
index): the numba kernel's thread count, the chunking of clients and the device
(the CuPy path evaluates the same hash in array arithmetic) never change a bit,
and client k's mask can be drawn on its own with ``first_client=k``.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .._backend import namespace
from .._validation import check_int
from ..errors import InvalidArgumentError, InvalidShapeError

__all__ = ["sample_masks", "mask_counts", "mask_key", "check_theta"]

#: Clients sampled per kernel call by :func:`mask_counts` (the counts block stays in cache).
_CHUNK = 8
#: Below this many entries per call the single-threaded kernels run (waking threads costs more).
_PARALLEL_MIN = 1 << 18


def check_theta(theta, name: str = "theta", *, ndims=(1, 2)):
    """Validate client probabilities: a 1-D ``(d,)`` or 2-D ``(K, d)`` array in [0, 1]."""
    xp = namespace(theta)
    if xp is np:
        theta = np.asarray(theta)
    _light_check(theta, name, ndims)
    if theta.dtype.kind != "f":
        theta = theta.astype(xp.float64)
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


def mask_key(seed=None, rng=None) -> int:
    """The 64-bit key of the counter-based mask generator.

    Parameters
    ----------
    seed : int, sequence of int or numpy.random.SeedSequence, optional
        Hashed by :class:`numpy.random.SeedSequence` (same seed, same key).
    rng : numpy.random.Generator, optional
        Draws the key instead (each call advances ``rng``, so repeated calls give fresh masks).
        With neither, the key comes from fresh OS entropy.

    Examples
    --------
    >>> mask_key(0) == mask_key(0) != mask_key(1)
    True
    """
    if rng is not None and seed is not None:
        raise InvalidArgumentError("pass either `seed` or `rng`, not both.")
    if rng is not None:
        if not hasattr(rng, "integers"):
            raise InvalidArgumentError(f"`rng` must be a numpy.random.Generator, got {type(rng).__name__}.")
        return int(np.asarray(rng.integers(0, 1 << 64, dtype=np.uint64, endpoint=False)).item())
    if isinstance(seed, np.random.Generator):
        return mask_key(rng=seed)
    try:
        ss = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    except (TypeError, ValueError) as exc:
        raise InvalidArgumentError(
            f"`seed` must be a non-negative int, a sequence of them or a SeedSequence, got {seed!r} ({exc})."
        ) from None
    return int(ss.generate_state(1, dtype=np.uint64)[0])


def _float_rows(theta):
    # the kernels take float32 or float64, C-contiguous
    if theta.dtype not in (np.float32, np.float64):
        theta = theta.astype(np.float64)
    return np.ascontiguousarray(theta)


def sample_masks(theta, *, seed=None, rng=None, first_client: int = 0):
    """Sample binary masks ``m ~ Bern(θ)`` coordinate-wise, one row per client.

    Parameters
    ----------
    theta : array of shape (d,) or (K, d)
        Probabilities in [0, 1] (NumPy or CuPy); not modified.
    seed : int, optional
        Seed of the generator (same seed, same masks; see :func:`mask_key`).
    rng : numpy.random.Generator, optional
        Draws the generator's key instead of ``seed`` (fresh masks on every call).
    first_client : int, default 0
        Index of the first row's client: row r is client ``first_client + r``,
        so ``sample_masks(theta[k], seed=s, first_client=k)`` equals
        ``sample_masks(theta, seed=s)[k]``.

    Returns
    -------
    masks : uint8 array, same shape and device as ``theta``
        Entries 0 or 1.

    Notes
    -----
    ``P(m_i = 1) = ⌈θ_i 2^{32}⌉ / 2^{32}``, exact at 0 and 1, identical bits on
    NumPy and CuPy.  docs/theory.md §5 (uplink).

    Examples
    --------
    >>> m = sample_masks(np.array([[0.0, 1.0, 0.5]]), seed=0)
    >>> m.dtype, m.shape, int(m[0, 0]), int(m[0, 1])
    (dtype('uint8'), (1, 3), 0, 1)
    >>> bool(np.array_equal(sample_masks(np.full((3, 5), 0.5), seed=4)[2],
    ...                     sample_masks(np.full(5, 0.5), seed=4, first_client=2)))
    True
    """
    first_client = check_int("first_client", first_client, minimum=0, maximum=(1 << 62))
    xp = namespace(theta)
    key = mask_key(seed, rng)
    if xp is np:
        theta = np.asarray(theta)
        _light_check(theta, "theta", (1, 2))
        rows = _float_rows(theta.reshape(1, -1) if theta.ndim == 1 else theta)
        from ..kernels import _fedpm_cpu as kern

        out = np.empty(rows.shape, dtype=np.uint8)
        draw = kern.counter_bernoulli if rows.size >= _PARALLEL_MIN else kern.counter_bernoulli_serial
        if draw(rows, np.uint64(key), first_client, out):
            check_theta(theta)  # raises with the offending range
            raise InvalidArgumentError("`theta` holds NaN or values outside [0, 1].")
        return out.reshape(theta.shape)
    theta = check_theta(theta)
    from ..kernels._fedpm_cpu import counter_bernoulli_reference

    rows = theta.reshape(1, -1) if theta.ndim == 1 else theta
    return counter_bernoulli_reference(rows, key, first_client).reshape(theta.shape)


def _light_check(theta, name, ndims):
    # the O(1) checks; values (NaN, outside [0, 1]) are checked by the kernels on the fly
    if theta.dtype.kind not in "fiub":
        raise InvalidArgumentError(f"`{name}` must be a real array of probabilities, got dtype {theta.dtype}.")
    if theta.ndim not in ndims:
        raise InvalidShapeError(
            f"`{name}` must have {' or '.join(str(n) for n in ndims)} dimension(s) "
            f"((d,) for one client, (K, d) for K clients), got shape {tuple(theta.shape)}."
        )
    if theta.size == 0:
        raise InvalidArgumentError(
            f"`{name}` is empty (shape {tuple(theta.shape)}); pass at least one client and one coordinate (K >= 1, d >= 1)."
        )


def mask_counts(thetas, *, seed=None, rng=None, n_clients: int | None = None):
    """Sample one mask per client and return ``M = Σ_k m^k`` without storing the masks.

    Parameters
    ----------
    thetas : array (K, d), array (d,) or iterable of (d,) arrays
        The clients' probabilities.  A 1-D array with ``n_clients=K`` means
        K clients sharing the same θ.  An iterable is consumed a few clients at
        a time, so ``K × d`` never needs to fit in memory.
    seed, rng
        As in :func:`sample_masks`; the row of client k is client k of the same
        key, so the counts equal ``sample_masks(stacked, seed=seed).sum(0)``.
    n_clients : int, optional
        Only with a 1-D ``thetas``.

    Returns
    -------
    counts : array (d,) of uint16 (uint32 when K ≥ 65536), and the number of clients K.

    Notes
    -----
    On the host, a parallel numba kernel samples a chunk of clients per
    coordinate block and adds their bits without materializing uniforms.

    Examples
    --------
    >>> c, k = mask_counts(np.array([0.0, 1.0]), n_clients=3, seed=1)
    >>> c.tolist(), k
    ([0, 3], 3)
    """
    key = mask_key(seed, rng)
    if hasattr(thetas, "shape"):
        xp = namespace(thetas)
        arr = thetas if xp is not np else np.asarray(thetas)
        _light_check(arr, "thetas", (1, 2))
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
        if isinstance(thetas, (str, bytes)) or not isinstance(thetas, Iterable):
            raise InvalidArgumentError(f"`thetas` must be an array or an iterable of arrays, got {type(thetas).__name__}.")
        rows = iter(thetas)
    counts = None
    d = 0
    k = 0
    chunk: list = []
    for row in rows:
        xp = namespace(row)
        if xp is np:
            row = np.asarray(row)
        name = f"thetas[{k + len(chunk)}]"
        if counts is None:
            _light_check(row, name, (1,))
            d = row.shape[0]
            counts = xp.zeros(d, dtype=xp.uint32)
        elif row.ndim != 1 or row.shape[0] != d or row.dtype.kind not in "fiub":
            _light_check(row, name, (1,))
            raise InvalidShapeError(f"client {k + len(chunk)} has {row.shape[0]} probabilities but client 0 has {d}; "
                                    "all clients need the same d.")
        if xp is not np:
            row = check_theta(row, name, ndims=(1,))
            from ..kernels._fedpm_cpu import counter_bernoulli_reference

            counts += counter_bernoulli_reference(row.reshape(1, -1), key, k)[0]
            k += 1
            continue
        chunk.append(row)
        if len(chunk) == _CHUNK:
            _accumulate(chunk, key, k, counts)
            k += len(chunk)
            chunk = []
    if chunk:
        _accumulate(chunk, key, k, counts)
        k += len(chunk)
    if counts is None:
        raise InvalidArgumentError("`thetas` holds no client (K = 0); pass at least one client.")
    if k < 65536:
        counts = counts.astype(namespace(counts).uint16)
    return counts, k


def _accumulate(chunk, key, client0, counts):
    from ..kernels import _fedpm_cpu as kern

    dtype = np.float32 if all(r.dtype == np.float32 for r in chunk) else np.float64
    rows = [np.ascontiguousarray(r, dtype=dtype) for r in chunk]
    n = len(rows)
    rows += [rows[0]] * (_CHUNK - n)  # fixed tuple length: one compiled kernel per dtype
    add = kern.accumulate_counter_bernoulli if n * counts.shape[0] >= _PARALLEL_MIN else kern.accumulate_counter_bernoulli_serial
    if add(tuple(rows), n, np.uint64(key), client0, counts):
        for c, r in enumerate(chunk):
            check_theta(r, f"thetas[{client0 + c}]", ndims=(1,))
        raise InvalidArgumentError(f"`thetas` rows {client0}..{client0 + n - 1} hold NaN or values outside [0, 1].")
