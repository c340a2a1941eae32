"""Numba CPU kernels of successive refinement: exhaustive nearest-codeword search under L1.

Private: called by :mod:`ratedist.refinement` after validation.  Distances are
accumulated coordinate by coordinate in index order (no fastmath), so they are
bitwise equal to the NumPy reference and the CUDA twin, and ties go to the
smallest index (strict ``<``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["nearest_l1_cpu"]


@njit(parallel=True, cache=True)
def nearest_l1_cpu(blocks, codebook, out_index, out_distance):  # pragma: no cover - compiled
    """For each row b of ``blocks`` (B, n) the index of the L1-nearest row of ``codebook`` (K, n).

    Partial-distance elimination: a codeword's sum is abandoned as soon as it
    reaches the best distance so far (the accumulated prefix is the same as
    the full sum's, so the chosen index is unchanged).
    """
    n_blocks, n = blocks.shape
    n_codewords = codebook.shape[0]
    for b in prange(n_blocks):
        best = np.inf
        best_k = 0
        for k in range(n_codewords):
            d = 0.0
            for j in range(n):
                d += abs(blocks[b, j] - codebook[k, j])
                if d >= best:
                    break
            if d < best:
                best = d
                best_k = k
        out_index[b] = best_k
        out_distance[b] = best
