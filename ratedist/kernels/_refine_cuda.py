"""numba.cuda twin of :mod:`ratedist.kernels._refine_cpu`: L1 nearest-codeword search on a GPU.

One thread per source block keeps its block in registers and scans the
codebook, which the thread block loads tile by tile into shared memory.
Distances are float64 sums in coordinate order, like the CPU kernel and the
NumPy reference, so the indices agree bitwise.  Runs under
``NUMBA_ENABLE_CUDASIM=1`` (tests, tiny sizes) and on a real GPU.
"""

from __future__ import annotations

import math

import numpy as np
from numba import cuda, float64

__all__ = ["nearest_l1_cuda", "THREADS", "TILE", "MAX_BLOCK"]

THREADS = 128  # threads per thread block
TILE = 128  # codewords per shared-memory tile
MAX_BLOCK = 24  # longest block length n supported (registers per thread)


@cuda.jit(cache=False)
def _nearest_l1_kernel(blocks, codebook, out_index, out_distance):  # pragma: no cover - compiled
    tile = cuda.shared.array(shape=(TILE, MAX_BLOCK), dtype=float64)
    x = cuda.local.array(MAX_BLOCK, dtype=float64)
    b = cuda.grid(1)
    tid = cuda.threadIdx.x
    n_blocks = blocks.shape[0]
    n = blocks.shape[1]
    n_codewords = codebook.shape[0]
    if b < n_blocks:
        for j in range(MAX_BLOCK):
            x[j] = blocks[b, j] if j < n else 0.0
    best = math.inf
    best_k = 0
    for start in range(0, n_codewords, TILE):
        # cooperative load of codewords start .. start+TILE-1
        for e in range(tid, TILE * n, THREADS):
            r = e // n
            c = e - r * n
            if start + r < n_codewords:
                tile[r, c] = codebook[start + r, c]
        cuda.syncthreads()
        stop = min(TILE, n_codewords - start)
        if b < n_blocks:
            for r in range(stop):
                d = 0.0
                for j in range(MAX_BLOCK):  # constant trip count: unrolled, x stays in registers
                    if j < n:
                        d += abs(x[j] - tile[r, j])
                if d < best:
                    best = d
                    best_k = start + r
        cuda.syncthreads()
    if b < n_blocks:
        out_index[b] = best_k
        out_distance[b] = best


def nearest_l1_cuda(blocks: np.ndarray, codebook: np.ndarray, out_index=None, out_distance=None):
    """Launch the kernel on host or device arrays; returns device arrays ``(index, distance)``.

    ``blocks`` (B, n) and ``codebook`` (K, n) are float64 with n ≤ :data:`MAX_BLOCK`.
    """
    d_blocks = blocks if hasattr(blocks, "copy_to_host") else cuda.to_device(np.ascontiguousarray(blocks))
    d_code = codebook if hasattr(codebook, "copy_to_host") else cuda.to_device(np.ascontiguousarray(codebook))
    n_blocks = blocks.shape[0]
    if out_index is None:
        out_index = cuda.device_array(n_blocks, dtype=np.int64)
    if out_distance is None:
        out_distance = cuda.device_array(n_blocks, dtype=np.float64)
    grid = max(1, (n_blocks + THREADS - 1) // THREADS)
    _nearest_l1_kernel[grid, THREADS](d_blocks, d_code, out_index, out_distance)
    return out_index, out_distance
