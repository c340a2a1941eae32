"""Numba CPU kernels of successive refinement: exhaustive nearest-codeword search under L1.

Private: called by :mod:`ratedist.refinement` after validation.  Distances are
accumulated coordinate by coordinate in index order (no fastmath), so they are
bitwise equal to the NumPy reference and the CUDA twin, and ties go to the
smallest index (strict ``<``, codewords scanned in order).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["nearest_l1_cpu", "TILE", "CHUNK"]

TILE = 512  # codewords whose partial distances live in one (L1-resident) accumulator
CHUNK = 16  # source blocks per parallel work item


@njit(parallel=True, cache=True)
def nearest_l1_cpu(blocks, codebook_t, out_index, out_distance):  # pragma: no cover - compiled
    """For each row b of ``blocks`` (B, n) the index of the L1-nearest codeword.

    ``codebook_t`` is the codebook transposed, shape (n, K), C-contiguous, so
    the innermost loop runs over contiguous codewords and vectorizes (SIMD
    across codewords); partial sums for a tile of :data:`TILE` codewords are
    accumulated coordinate by coordinate, exactly as the NumPy reference does.
    """
    n_blocks, n = blocks.shape
    n_codewords = codebook_t.shape[1]
    n_chunks = (n_blocks + CHUNK - 1) // CHUNK
    for c in prange(n_chunks):
        acc = np.empty(TILE)
        for b in range(c * CHUNK, min(n_blocks, (c + 1) * CHUNK)):
            best = np.inf
            best_k = 0
            for start in range(0, n_codewords, TILE):
                m = min(TILE, n_codewords - start)
                x0 = blocks[b, 0]
                r0 = codebook_t[0, start:start + m]
                for i in range(m):
                    acc[i] = abs(x0 - r0[i])
                j = 1
                # four coordinates per pass: ((acc + a1) + a2) + a3 ... is the same left-to-right
                # order as one coordinate per pass, with a quarter of the accumulator traffic
                while j + 4 <= n:
                    x0, x1, x2, x3 = blocks[b, j], blocks[b, j + 1], blocks[b, j + 2], blocks[b, j + 3]
                    r0 = codebook_t[j, start:start + m]
                    r1 = codebook_t[j + 1, start:start + m]
                    r2 = codebook_t[j + 2, start:start + m]
                    r3 = codebook_t[j + 3, start:start + m]
                    for i in range(m):
                        acc[i] = acc[i] + abs(x0 - r0[i]) + abs(x1 - r1[i]) + abs(x2 - r2[i]) + abs(x3 - r3[i])
                    j += 4
                while j < n:
                    x0 = blocks[b, j]
                    r0 = codebook_t[j, start:start + m]
                    for i in range(m):
                        acc[i] += abs(x0 - r0[i])
                    j += 1
                for i in range(m):
                    if acc[i] < best:
                        best = acc[i]
                        best_k = start + i
            out_index[b] = best_k
            out_distance[b] = best
