"""Fast Walsh–Hadamard transform on a CUDA device (numba.cuda twin of ``_hadamard_cpu``).

One kernel launch per butterfly level; each thread updates one pair.  Runs in
numba's simulator under ``NUMBA_ENABLE_CUDASIM=1`` (small sizes only).  Callers
validate (power-of-two length, float64).
"""

from __future__ import annotations

import numpy as np
from numba import cuda

__all__ = ["fwht_cuda"]

_THREADS = 256


@cuda.jit
def _butterfly(x, h, n_rows, n):
    t = cuda.grid(1)
    half = n // 2
    if t >= n_rows * half:
        return
    r = t // half
    p = t - r * half
    blk = p // h
    j = blk * 2 * h + (p - blk * h)
    a = x[r, j]
    b = x[r, j + h]
    x[r, j] = a + b
    x[r, j + h] = a - b


def fwht_cuda(x):
    """Unnormalized WHT along the last axis of a 1-D or 2-D float64 array.

    ``x`` may be a NumPy array (copied to the device and back) or a device
    array (CuPy or numba), transformed in place and returned.
    """
    on_host = isinstance(x, np.ndarray)
    arr = np.ascontiguousarray(x, dtype=np.float64) if on_host else x
    two_d = arr.reshape(1, -1) if arr.ndim == 1 else arr
    dev = cuda.to_device(two_d) if on_host else cuda.as_cuda_array(two_d)
    n_rows, n = two_d.shape
    total = n_rows * (n // 2)
    blocks = max(1, (total + _THREADS - 1) // _THREADS)
    h = 1
    while h < n:
        _butterfly[blocks, _THREADS](dev, h, n_rows, n)
        h *= 2
    if on_host:
        return dev.copy_to_host().reshape(arr.shape)
    return x
