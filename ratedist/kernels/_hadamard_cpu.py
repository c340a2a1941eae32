"""Fast Walsh–Hadamard transform (numba, CPU) and its slow NumPy reference.

The transform is the unnormalized Sylvester–Hadamard product ``y = H x`` with
``H`` of order ``n = 2^k`` (``H H = n I``), applied along the last axis.
Callers validate: the length must be a power of two and the array C-contiguous
float64; nothing is checked here.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["fwht_inplace", "fwht_rows_inplace", "fwht_reference"]

# Butterfly levels below this block size are done block by block while the
# block sits in cache; the larger levels sweep the whole array.
_BLOCK = 2048


@njit(cache=True)
def _levels(x, lo, hi, h_start, h_stop):
    h = h_start
    while h < h_stop:
        step = 2 * h
        for start in range(lo, hi, step):
            for j in range(start, start + h):
                a = x[j]
                b = x[j + h]
                x[j] = a + b
                x[j + h] = a - b
        h = step


@njit(cache=True)
def fwht_inplace(x):
    """Unnormalized WHT of a 1-D float64 array of power-of-two length, in place."""
    n = x.shape[0]
    block = _BLOCK if n > _BLOCK else n
    for lo in range(0, n, block):
        _levels(x, lo, lo + block, 1, block)
    _levels(x, 0, n, block, n)


@njit(cache=True)
def fwht_rows_inplace(x):
    """Unnormalized WHT of every row of a 2-D float64 array, in place."""
    for r in range(x.shape[0]):
        fwht_inplace(x[r])


def fwht_reference(x: np.ndarray) -> np.ndarray:
    """Slow, obviously right NumPy WHT along the last axis (returns a new array)."""
    y = np.array(x, dtype=np.float64, copy=True)
    n = y.shape[-1]
    lead = y.shape[:-1]
    h = 1
    while h < n:
        v = y.reshape(lead + (n // (2 * h), 2, h))
        a = v[..., 0, :].copy()
        b = v[..., 1, :]
        v[..., 0, :] = a + b
        v[..., 1, :] = a - b
        h *= 2
    return y
