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
    """Σ x² (``squared``) or Σ |x| in float64, in fixed chunks (deterministic for any thread count)."""
    n = x.size
    n_chunks = (n + CHUNK - 1) // CHUNK
    part = np.zeros(n_chunks, dtype=np.float64)
    for c in prange(n_chunks):
        lo = c * CHUNK
        hi = min(lo + CHUNK, n)
        s = 0.0
        if squared:
            for i in range(lo, hi):
                v = np.float64(x[i])
                s += v * v
        else:
            for i in range(lo, hi):
                s += abs(np.float64(x[i]))
        part[c] = s
    total = 0.0
    for c in range(n_chunks):
        total += part[c]
    return total


@njit(cache=True, parallel=True)
def magnitudes_signs(x, norm, mags, signs):  # pragma: no cover - compiled
    """mags[i] = |x[i]| / norm (0 when norm is 0), signs[i] = sign(x[i]) as int8."""
    for i in prange(x.size):
        v = np.float64(x[i])
        mags[i] = abs(v) / norm if norm > 0.0 else 0.0
        signs[i] = 1 if v > 0.0 else (-1 if v < 0.0 else 0)
