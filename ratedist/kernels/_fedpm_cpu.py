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
from numba import njit

__all__ = [
    "write_fields",
    "write_fields_reference",
    "read_qsgd_tokens",
    "read_qsgd_tokens_reference",
    "bernoulli_from_raw",
    "accumulate_bernoulli_from_raw",
    "bernoulli_from_raw_reference",
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


@njit(cache=True)
def bernoulli_from_raw(raw, theta, out):
    """out[i] = 1[u_i < θ_i·2^32] with u_i the i-th 32-bit half (low first) of the uint64 ``raw``."""
    for i in range(theta.shape[0]):
        w = raw[i >> 1]
        if i & 1:
            w = w >> np.uint64(32)
        u = np.float64(w & np.uint64(0xFFFFFFFF))
        out[i] = 1 if u < theta[i] * _TWO32 else 0


@njit(cache=True)
def accumulate_bernoulli_from_raw(raw, theta, counts):
    """counts[i] += 1[u_i < θ_i·2^32] (same draw as :func:`bernoulli_from_raw`)."""
    for i in range(theta.shape[0]):
        w = raw[i >> 1]
        if i & 1:
            w = w >> np.uint64(32)
        if np.float64(w & np.uint64(0xFFFFFFFF)) < theta[i] * _TWO32:
            counts[i] += 1


def bernoulli_from_raw_reference(raw, theta):
    """NumPy reference of :func:`bernoulli_from_raw` (little-endian halves)."""
    u = np.asarray(raw, dtype="<u8").view("<u4")[: theta.shape[0]].astype(np.float64)
    return (u < np.asarray(theta, dtype=np.float64) * _TWO32).astype(np.uint8)
