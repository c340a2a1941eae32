"""Bit-level kernels of the FedPM baselines (numba, CPU) with NumPy/Python references.

* :func:`write_fields` packs a sequence of ``(value, width)`` fields MSB-first
  into bytes (the Elias-gamma code of ``v >= 1`` is ``v`` written in
  ``2*bitlen(v) - 1`` bits, so it is one field).
* :func:`read_qsgd_tokens` parses QSGD's Elias-gamma token stream
  ``gamma(gap), sign bit, gamma(level)`` per non-zero coordinate.

Callers validate inputs; the reader guards every index itself and returns a
status code (0 = ok) instead of reading out of bounds.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._mix import mix64, mix64_array, mix64_int

__all__ = [
    "write_fields",
    "write_fields_reference",
    "read_qsgd_tokens",
    "read_qsgd_tokens_reference",
    "accumulate_counter_bernoulli",
    "accumulate_counter_bernoulli_serial",
    "counter_bernoulli",
    "counter_bernoulli_serial",
    "counter_uniforms_reference",
    "counter_bernoulli_reference",
]


@njit(cache=True)
def write_fields(values, widths, out):
    """Write ``values[i]`` in ``widths[i]`` bits (MSB first) into the zeroed uint8 ``out``."""
    pos = 0
    for i in range(values.shape[0]):
        v = values[i]
        w = widths[i]
        for k in range(w - 1, -1, -1):
            if (v >> np.uint64(k)) & np.uint64(1):
                out[pos >> 3] |= np.uint8(128 >> (pos & 7))
            pos += 1
    return pos


def write_fields_reference(values, widths) -> np.ndarray:
    """NumPy reference of :func:`write_fields`: returns the packed bytes."""
    values = np.asarray(values, dtype=np.uint64)
    widths = np.asarray(widths, dtype=np.int64)
    owner = np.repeat(np.arange(values.size), widths)
    start = np.cumsum(widths) - widths
    k = np.arange(owner.size) - start[owner]
    shift = (widths[owner] - 1 - k).astype(np.uint64)
    bits = ((values[owner] >> shift) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits)


@njit(cache=True)
def _gamma(buf, nbits, pos):
    # returns (value, new_pos); value 0 signals an error (gamma codes are >= 1)
    zeros = 0
    while True:
        if pos >= nbits:
            return np.uint64(0), pos
        bit = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
        if bit:
            break
        zeros += 1
        pos += 1
        if zeros > 62:
            return np.uint64(0), pos
    if pos + zeros + 1 > nbits:
        return np.uint64(0), pos
    v = np.uint64(0)
    for _ in range(zeros + 1):
        bit = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
        v = (v << np.uint64(1)) | np.uint64(bit)
        pos += 1
    return v, pos


@njit(cache=True)
def read_qsgd_tokens(buf, nbits, nnz, d, s, index, sign, level):
    """Parse ``nnz`` tokens into ``index``, ``sign`` (0/1), ``level``; return a status code.

    0 ok; 1 stream ended early; 2 index beyond ``d``; 3 level outside ``1..s``;
    4 a whole byte or more left over (``nbits`` is the padded length ``8 * n_bytes``).
    """
    pos = 0
    cur = -1
    for t in range(nnz):
        gap, pos = _gamma(buf, nbits, pos)
        if gap == 0:
            return 1
        cur += np.int64(gap)
        if cur >= d or cur < 0:
            return 2
        if pos >= nbits:
            return 1
        sign[t] = (buf[pos >> 3] >> (7 - (pos & 7))) & 1
        pos += 1
        lv, pos = _gamma(buf, nbits, pos)
        if lv == 0:
            return 1
        if lv > s:
            return 3
        index[t] = cur
        level[t] = np.int64(lv)
    if nbits - pos >= 8:
        return 4
    return 0


def read_qsgd_tokens_reference(buf: bytes, nbits: int, nnz: int):
    """Plain-Python reference parser; returns lists (index, sign, level)."""
    bits = np.unpackbits(np.frombuffer(buf, dtype=np.uint8))[:nbits].tolist()
    pos, cur, out = 0, -1, ([], [], [])

    def gamma():
        nonlocal pos
        z = 0
        while bits[pos] == 0:
            z += 1
            pos += 1
        v = 0
        for _ in range(z + 1):
            v = 2 * v + bits[pos]
            pos += 1
        return v

    for _ in range(nnz):
        cur += gamma()
        out[0].append(cur)
        out[1].append(bits[pos])
        pos += 1
        out[2].append(gamma())
    return out


_TWO32 = 4294967296.0

# ---------------------------------------------------------------- counter-based Bernoulli sampler
# Entry i of client k draws the 32-bit uniform
#     u_{k,i} = half (i & 1) of  W_k[i >> 1],   W_k[j] = mix64(c_k + (j + 1)·G),   c_k = mix64(key + (k + 1)·G)
# (low half first), with G = 0x9E3779B97F4A7C15 and mix64 the splitmix64 finalizer; the entry is
# 1[u < θ·2^32].  It is a pure function of (key, k, i): any thread order, chunking or device
# (a numba.cuda or CuPy twin) gives the same bits.

_G = np.uint64(0x9E3779B97F4A7C15)
_LO32 = np.uint64(0xFFFFFFFF)
_S32 = np.uint64(32)
_BLOCK = 8192  # 64-bit words per parallel work item (16384 entries)


@njit(inline="always")
def _client_key(key, k):
    return mix64(key + np.uint64(k + 1) * _G)


@njit(inline="always")
def _valid(t):
    return t >= 0.0 and t <= 1.0  # False for NaN


@njit(inline="always")
def _count_block(rows, n_rows, key, client0, j0, j1, counts):
    # words j0..j1-1 (entries 2j, 2j+1; the odd last entry when 2j+1 == d) of rows[0..n_rows-1]
    d = rows[0].shape[0]
    half = d >> 1
    jp = min(j1, half)
    nb = 0
    for c in range(n_rows):
        theta = rows[c]
        ck = _client_key(key, client0 + c)
        for j in range(j0, jp):
            w = mix64(ck + np.uint64(j + 1) * _G)
            t0 = np.float64(theta[2 * j])
            t1 = np.float64(theta[2 * j + 1])
            nb += (not _valid(t0)) + (not _valid(t1))
            counts[2 * j] += np.float64(w & _LO32) < t0 * _TWO32
            counts[2 * j + 1] += np.float64(w >> _S32) < t1 * _TWO32
        if j1 > half:
            w = mix64(ck + np.uint64(half + 1) * _G)
            t0 = np.float64(theta[d - 1])
            nb += not _valid(t0)
            counts[d - 1] += np.float64(w & _LO32) < t0 * _TWO32
    return nb


@njit(inline="always")
def _mask_block(theta, key, client0, j0, j1, out):
    n_rows, d = theta.shape
    half = d >> 1
    jp = min(j1, half)
    nb = 0
    for c in range(n_rows):
        ck = _client_key(key, client0 + c)
        for j in range(j0, jp):
            w = mix64(ck + np.uint64(j + 1) * _G)
            t0 = np.float64(theta[c, 2 * j])
            t1 = np.float64(theta[c, 2 * j + 1])
            nb += (not _valid(t0)) + (not _valid(t1))
            out[c, 2 * j] = np.float64(w & _LO32) < t0 * _TWO32
            out[c, 2 * j + 1] = np.float64(w >> _S32) < t1 * _TWO32
        if j1 > half:
            w = mix64(ck + np.uint64(half + 1) * _G)
            t0 = np.float64(theta[c, d - 1])
            nb += not _valid(t0)
            out[c, d - 1] = np.float64(w & _LO32) < t0 * _TWO32
    return nb


@njit(parallel=True, cache=True)
def accumulate_counter_bernoulli(rows, n_rows, key, client0, counts):
    """counts[i] += Σ_{c < n_rows} 1[u_{client0+c, i} < rows[c][i]·2^32].

    ``rows`` is a tuple (or 2-D array) of equal-length 1-D float rows, one per
    client; entries past ``n_rows`` are padding and ignored.  A chunk of clients
    is sampled per block of coordinates while that block of ``counts`` stays in
    cache.  Returns the number of entries outside [0, 1] or NaN (the caller
    raises and discards ``counts`` when it is non-zero).  Parallel over blocks.
    """
    nw = (rows[0].shape[0] + 1) >> 1
    bad = 0
    for b in prange((nw + _BLOCK - 1) // _BLOCK):
        bad += _count_block(rows, n_rows, key, client0, b * _BLOCK, min(nw, b * _BLOCK + _BLOCK), counts)
    return bad


@njit(cache=True)
def accumulate_counter_bernoulli_serial(rows, n_rows, key, client0, counts):
    """Single-threaded :func:`accumulate_counter_bernoulli` (same bits; no thread wake-up for small inputs)."""
    nw = (rows[0].shape[0] + 1) >> 1
    return _count_block(rows, n_rows, key, client0, 0, nw, counts)


@njit(parallel=True, cache=True)
def counter_bernoulli(theta, key, client0, out):
    """out[c, i] = 1[u_{client0+c, i} < θ[c, i]·2^32] (uint8) for θ (C, d); returns the count of invalid θ."""
    nw = (theta.shape[1] + 1) >> 1
    bad = 0
    for b in prange((nw + _BLOCK - 1) // _BLOCK):
        bad += _mask_block(theta, key, client0, b * _BLOCK, min(nw, b * _BLOCK + _BLOCK), out)
    return bad


@njit(cache=True)
def counter_bernoulli_serial(theta, key, client0, out):
    """Single-threaded :func:`counter_bernoulli` (same bits)."""
    return _mask_block(theta, key, client0, 0, (theta.shape[1] + 1) >> 1, out)


def counter_uniforms_reference(key: int, client: int, d: int, xp=np):
    """The 32-bit uniforms ``u_{client, 0..d-1}`` (uint32) in plain array arithmetic (NumPy or CuPy)."""
    g = 0x9E3779B97F4A7C15
    ck = mix64_int(int(key) + (int(client) + 1) * g)  # Python ints, wrapped explicitly
    j = xp.arange(1, (d + 1) // 2 + 1, dtype=xp.uint64)
    w = mix64_array(xp.uint64(ck) + j * xp.uint64(g))
    u = xp.stack([w & xp.uint64(0xFFFFFFFF), w >> xp.uint64(32)], axis=1).reshape(-1)[:d]
    return u.astype(xp.uint32)


def counter_bernoulli_reference(theta, key: int, client0: int = 0):
    """Array reference of :func:`counter_bernoulli`: masks (C, d) uint8 for the rows of ``theta`` (NumPy or CuPy)."""
    xp = np if isinstance(theta, np.ndarray) else __import__("cupy")
    theta = xp.asarray(theta, dtype=xp.float64)
    rows = [counter_uniforms_reference(key, client0 + c, theta.shape[1], xp).astype(xp.float64) < theta[c] * _TWO32
            for c in range(theta.shape[0])]
    return xp.stack(rows).astype(xp.uint8)


# ---------------------------------------------------------------- Beta aggregation
@njit(parallel=True, cache=True)
def beta_update(alpha, beta, counts, k, low, high, reset, prior, mode, theta):
    """One round of Beta aggregation in place, one pass: with ``ones = low·k + (high − low)·M_i``,
    α_i ← (λ₀ if reset else α_i) + ones, β_i ← (λ₀ if reset else β_i) + (k − ones), and θ_i the
    posterior mode (α − 1)/(α + β − 2) clipped to [0, 1] (the mean α/(α + β) where α + β ≤ 2)
    when ``mode`` else the mean.  Same floating-point operations as the NumPy path of
    :class:`ratedist.fedpm.BetaAggregator`."""
    for i in prange(alpha.shape[0]):
        ones = low * k + (high - low) * np.float64(counts[i])
        a = (prior if reset else alpha[i]) + ones
        b = (prior if reset else beta[i]) + (k - ones)
        alpha[i] = a
        beta[i] = b
        den = a + b - 2.0
        if mode and den > 0:
            t = (a - 1.0) / den
            theta[i] = 0.0 if t < 0.0 else (1.0 if t > 1.0 else t)
        else:
            theta[i] = a / (a + b)
