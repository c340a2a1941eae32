"""Numba kernels that flatten a tensor into normalized magnitudes and signs (private).

The per-tensor norm is summed in fixed chunks of ``CHUNK`` entries, each chunk in index order,
then the chunk sums in chunk order: the result does not depend on the number of threads or on
the BLAS library (``np.dot`` splits its sum by thread count), so the same weights give the same
norm, hence the same stream, on every machine.  The elementwise pass computes
``|x| / norm`` in float64 exactly as NumPy would (one correctly rounded division).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["chunked_norm", "magnitudes_signs", "CHUNK"]

CHUNK = 1 << 16


@njit(cache=True, parallel=True)
def chunked_norm(x, squared):  # pragma: no cover - compiled
    """``(Σ x² or Σ |x|, smallest positive |x|)`` in float64; the sum in fixed chunks, each in index
    order, then the chunk sums in order (deterministic for any thread count); ``inf`` when x has
    no non-zero entry."""
    n = x.size
    n_chunks = (n + CHUNK - 1) // CHUNK
    part = np.zeros(n_chunks, dtype=np.float64)
    low = np.full(n_chunks, np.inf)
    for c in prange(n_chunks):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        s = 0.0
        m = np.inf
        for i in range(lo, hi):
            v = abs(np.float64(x[i]))
            s += v * v if squared else v
            if v > 0.0 and v < m:
                m = v
        part[c] = s
        low[c] = m
    total = 0.0
    for c in range(n_chunks):
        total += part[c]
    return total, low.min()


@njit(cache=True, parallel=True)
def magnitudes_signs(x, norm, mags, signs):  # pragma: no cover - compiled
    """mags[i] = |x[i]| / norm (0 when norm is 0), signs[i] = sign(x[i]) as int8."""
    for i in prange(x.size):
        v = np.float64(x[i])
        mags[i] = abs(v) / norm if norm > 0.0 else 0.0
        signs[i] = 1 if v > 0.0 else (-1 if v < 0.0 else 0)
