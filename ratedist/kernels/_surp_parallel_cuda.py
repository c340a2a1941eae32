"""numba.cuda twins of the data-parallel SuRP kernels (private).

The device does the passes over all n weights: the thresholding pass that
finds each index's entry round (``first_rounds``, a bisection over the
float64 thresholds, the same comparisons as the CPU kernel), the histogram of
entry rounds (atomics), and the compaction of the indices that enter before
the last round (per-tile counts, an exclusive prefix sum, an ordered scatter).
The compacted ~(1 - sparsity)·n indices come back to the host, where the CPU
trajectory kernels and the entropy coder take over.

Arrays are CuPy arrays on a real GPU and numba device arrays under the CUDA
simulator (``NUMBA_ENABLE_CUDASIM=1``, no CuPy needed): :func:`device_api`
hides the difference.
"""

from __future__ import annotations

import numpy as np
from numba import cuda

__all__ = [
    "device_api",
    "first_rounds_cuda",
    "round_histogram_cuda",
    "compact_entering_cuda",
    "THREADS",
    "TILE",
]

THREADS = 256  # threads per block
TILE = 64  # elements per thread in the compaction passes


def device_api(use_cupy: bool):
    """``(to_device, empty, to_host)`` for CuPy (real GPU) or numba device arrays (simulator)."""
    if use_cupy:
        import cupy

        return cupy.asarray, (lambda n, dtype: cupy.empty(n, dtype=dtype)), cupy.asnumpy
    return (cuda.to_device, (lambda n, dtype: cuda.device_array(n, dtype=dtype)),
            (lambda x: x.copy_to_host()))


@cuda.jit
def _first_rounds_kernel(a, taus, out):  # pragma: no cover - device code
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    T = taus.shape[0]
    while i < a.shape[0]:
        x = a[i]
        lo = 0
        hi = T
        while lo < hi:
            mid = (lo + hi) >> 1
            if x > taus[mid]:
                hi = mid
            else:
                lo = mid + 1
        out[i] = lo
        i += stride


@cuda.jit
def _histogram_kernel(t_first, n_bins, hist):  # pragma: no cover - device code
    i = cuda.grid(1)
    stride = cuda.gridsize(1)
    while i < t_first.shape[0]:
        t = t_first[i]
        if t < n_bins:
            cuda.atomic.add(hist, t, 1)
        i += stride


@cuda.jit
def _tile_count_kernel(t_first, n_rounds, counts):  # pragma: no cover - device code
    tid = cuda.grid(1)
    if tid < counts.shape[0]:
        lo = tid * TILE
        hi = min(lo + TILE, t_first.shape[0])
        k = 0
        for i in range(lo, hi):
            if t_first[i] < n_rounds:
                k += 1
        counts[tid] = k


@cuda.jit
def _tile_scatter_kernel(t_first, a, n_rounds, offsets, idx, comp_t, comp_a):  # pragma: no cover - device code
    tid = cuda.grid(1)
    if tid < offsets.shape[0]:
        lo = tid * TILE
        hi = min(lo + TILE, t_first.shape[0])
        k = offsets[tid]
        for i in range(lo, hi):
            t = t_first[i]
            if t < n_rounds:
                idx[k] = i
                comp_t[k] = t
                comp_a[k] = a[i]
                k += 1


def _blocks(n: int, threads: int = THREADS, max_blocks: int = 65535 * 8) -> int:
    return max(1, min(max_blocks, (n + threads - 1) // threads))


def first_rounds_cuda(a_dev, taus_dev, out_dev) -> None:
    """Device twin of :func:`ratedist.kernels._surp_parallel_cpu.first_rounds`."""
    n = int(a_dev.shape[0])
    _first_rounds_kernel[_blocks(n), THREADS](a_dev, taus_dev, out_dev)


def round_histogram_cuda(t_dev, n_bins: int, api) -> np.ndarray:
    """Host array of the counts of entry rounds ``< n_bins``."""
    to_device, _empty, to_host = api
    hist = to_device(np.zeros(n_bins, dtype=np.int64))
    n = int(t_dev.shape[0])
    _histogram_kernel[_blocks(n), THREADS](t_dev, n_bins, hist)
    return np.asarray(to_host(hist))


def compact_entering_cuda(t_dev, a_dev, n_rounds: int, api):
    """Host arrays ``(idx, t, a)`` of the indices with entry round < ``n_rounds``, ascending."""
    to_device, empty, to_host = api
    n = int(t_dev.shape[0])
    n_tiles = max(1, (n + TILE - 1) // TILE)
    counts = empty(n_tiles, np.int64)
    _tile_count_kernel[_blocks(n_tiles), THREADS](t_dev, n_rounds, counts)
    host_counts = np.asarray(to_host(counts))
    offsets = np.zeros(n_tiles, dtype=np.int64)
    np.cumsum(host_counts[:-1], out=offsets[1:])
    total = int(host_counts.sum())
    if total == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(0, np.float64)
    idx = empty(total, np.int64)
    comp_t = empty(total, np.int32)
    comp_a = empty(total, np.float64)
    _tile_scatter_kernel[_blocks(n_tiles), THREADS](t_dev, a_dev, n_rounds, to_device(offsets), idx, comp_t, comp_a)
    return np.asarray(to_host(idx)), np.asarray(to_host(comp_t)), np.asarray(to_host(comp_a))
