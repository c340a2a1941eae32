"""numba CPU kernels of the data-parallel SuRP encoder and decoder (private).

The parallel variant runs rounds t = 0, 1, ... with thresholds ``taus[t]``
(strictly decreasing, positive, float64).  Round t selects every index whose
residual is strictly above ``taus[t]``.  Because an index that was never
selected still has ``r_i = a_i``, the round in which it first becomes non-zero
is ``t_i = min{t : a_i > taus[t]}`` (an exact comparison, found by bisection),
and each index's later trajectory depends on its own residual only.  The
kernels below exploit this: one parallel pass finds every ``t_i``; the indices
that enter before the last round are compacted (in index order); a second
parallel pass replays each index's trajectory, counting and then writing the
positions that the stream codes.  The positions need the number of indices
``j < i`` already non-zero at round t, which a Fenwick tree over rounds gives
per chunk.

Every kernel has the same arithmetic as the NumPy reference
(``ratedist.surp.parallel._reference_rounds``): ``r = a - tau`` on entry,
then ``r -= tau`` and ``ahat += tau`` on each refinement, in float64, so the
sets and reconstructions are bit-identical.  Nothing here validates: callers
check shapes, ranges and finiteness first.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = [
    "first_rounds",
    "min_positive",
    "round_histogram",
    "compact_entering",
    "trajectory_counts",
    "trajectory_positions",
    "decode_round",
    "trajectory_reconstruct",
]


@njit(cache=True, parallel=True)
def first_rounds(a, taus, out):  # pragma: no cover - compiled
    """``out[i] = min{t : a[i] > taus[t]}`` or ``taus.size`` if none.

    ``taus`` is ``taus[0]·γ^t`` built by repeated multiplication (non-increasing).
    A logarithm gives a guess, which exact comparisons against ``taus`` then
    correct, so the result is the exact first index whatever the rounding of
    the logarithm.
    """
    T = taus.size
    if T == 0:
        for i in prange(a.size):
            out[i] = 0
        return
    tau0 = taus[0]
    inv_log_gamma = 1.0 / np.log(taus[1] / tau0) if T > 1 else -1.0
    for i in prange(a.size):
        x = a[i]
        if not x > taus[T - 1]:
            out[i] = T
            continue
        if x > tau0:
            out[i] = 0
            continue
        g = np.log(x / tau0) * inv_log_gamma  # ≈ t with tau0·γ^t = x
        t = int(g) if g < T else T - 1
        if t < 0:
            t = 0
        while t > 0 and x > taus[t - 1]:
            t -= 1
        while not x > taus[t]:
            t += 1
        out[i] = t


@njit(cache=True, parallel=True)
def min_positive(a):  # pragma: no cover - compiled
    """Smallest strictly positive entry of ``a`` (``inf`` if none)."""
    n_chunks = 64
    n = a.size
    step = (n + n_chunks - 1) // n_chunks
    part = np.full(n_chunks, np.inf)
    for c in prange(n_chunks):
        m = np.inf
        for i in range(c * step, min(n, (c + 1) * step)):
            x = a[i]
            if x > 0.0 and x < m:
                m = x
        part[c] = m
    return part.min()


@njit(cache=True, parallel=True)
def round_histogram(t_first, n_bins, n_chunks):  # pragma: no cover - compiled
    """Counts of ``t_first`` per value in ``[0, n_bins)`` (values >= n_bins are ignored)."""
    n = t_first.size
    table = np.zeros((n_chunks, n_bins), dtype=np.int64)
    step = (n + n_chunks - 1) // n_chunks
    for c in prange(n_chunks):
        lo = c * step
        hi = min(n, lo + step)
        for i in range(lo, hi):
            t = t_first[i]
            if t < n_bins:
                table[c, t] += 1
    out = np.zeros(n_bins, dtype=np.int64)
    for c in range(n_chunks):
        for t in range(n_bins):
            out[t] += table[c, t]
    return out


@njit(cache=True, parallel=True)
def compact_entering(t_first, a, n_rounds, n_chunks):  # pragma: no cover - compiled
    """``(idx, t_first[idx], a[idx])`` for the indices ``i`` (ascending) with ``t_first[i] < n_rounds``:
    chunk counts, prefix sum, scatter."""
    n = t_first.size
    step = (n + n_chunks - 1) // n_chunks
    counts = np.zeros(n_chunks + 1, dtype=np.int64)
    for c in prange(n_chunks):
        lo = c * step
        hi = min(n, lo + step)
        k = 0
        for i in range(lo, hi):
            if t_first[i] < n_rounds:
                k += 1
        counts[c + 1] = k
    for c in range(n_chunks):
        counts[c + 1] += counts[c]
    total = counts[n_chunks]
    idx = np.empty(total, dtype=np.int64)
    ct = np.empty(total, dtype=t_first.dtype)
    ca = np.empty(total, dtype=a.dtype)
    for c in prange(n_chunks):
        lo = c * step
        hi = min(n, lo + step)
        k = counts[c]
        for i in range(lo, hi):
            t = t_first[i]
            if t < n_rounds:
                idx[k] = i
                ct[k] = t
                ca[k] = a[i]
                k += 1
    return idx, ct, ca


@njit(cache=True, parallel=True)
def trajectory_counts(comp_t, comp_a, taus, n_rounds, checkpoints, bounds):  # pragma: no cover - compiled
    """Pass A over the compacted indices, chunk by chunk.

    Returns ``cnt_new[c, t]`` (indices of chunk c entering at round t),
    ``cnt_ref[c, t]`` (refinements of chunk c at round t) and ``res[c, j]``
    (sum of the residuals of chunk c's entered indices after ``checkpoints[j]``
    rounds; indices not yet entered are not included).
    """
    n_chunks = bounds.size - 1
    n_ck = checkpoints.size
    cnt_new = np.zeros((n_chunks, n_rounds), dtype=np.int64)
    cnt_ref = np.zeros((n_chunks, n_rounds), dtype=np.int64)
    res = np.zeros((n_chunks, n_ck), dtype=np.float64)
    for c in prange(n_chunks):
        for e in range(bounds[c], bounds[c + 1]):
            t0 = comp_t[e]
            r = comp_a[e] - taus[t0]
            cnt_new[c, t0] += 1
            j = 0
            while j < n_ck and checkpoints[j] <= t0:
                j += 1
            for t in range(t0 + 1, n_rounds):
                while j < n_ck and checkpoints[j] == t:
                    res[c, j] += r
                    j += 1
                if r > taus[t]:
                    r -= taus[t]
                    cnt_ref[c, t] += 1
            while j < n_ck:
                res[c, j] += r
                j += 1
    return cnt_new, cnt_ref, res


@njit(cache=True, parallel=True)
def trajectory_positions(comp_idx, comp_t, comp_a, taus, n_rounds, bounds,
                         base_lt, off_new, off_ref, new_pos, new_src, ref_pos):  # pragma: no cover - compiled
    """Pass B: write the coded positions of every round.

    ``base_lt[c, t]`` is the number of compacted indices of chunks before c with
    entry round < t; ``off_new[c, t]`` / ``off_ref[c, t]`` the first output slot
    of chunk c in round t.  ``new_pos`` receives the rank of an entering index
    among the indices still zero at its round, ``new_src`` its compacted
    position (to gather signs), ``ref_pos`` the rank of a refined index among
    the indices already non-zero.  Within a round, positions come out ascending.
    """
    n_chunks = bounds.size - 1
    for c in prange(n_chunks):
        fen = np.zeros(n_rounds + 1, dtype=np.int64)
        wn = off_new[c].copy()
        wr = off_ref[c].copy()
        for e in range(bounds[c], bounds[c + 1]):
            t0 = comp_t[e]
            # number of earlier indices (in this chunk) with entry round < t0
            s = 0
            k = t0
            while k > 0:
                s += fen[k]
                k -= k & (-k)
            new_pos[wn[t0]] = comp_idx[e] - (base_lt[c, t0] + s)
            new_src[wn[t0]] = e
            wn[t0] += 1
            r = comp_a[e] - taus[t0]
            for t in range(t0 + 1, n_rounds):
                if r > taus[t]:
                    r -= taus[t]
                    s = 0
                    k = t
                    while k > 0:
                        s += fen[k]
                        k -= k & (-k)
                    ref_pos[wr[t]] = base_lt[c, t] + s
                    wr[t] += 1
            k = t0 + 1
            while k <= n_rounds:
                fen[k] += 1
                k += k & (-k)


@njit(cache=True)
def decode_round(nz_idx, nz_ahat, nz_neg, nnz, new_ranks, new_neg, ref_pos, tau, n,
                 out_idx, out_ahat, out_neg):  # pragma: no cover - compiled
    """Apply one decoded round to the sorted non-zero list; return the new count or -1.

    ``ref_pos`` (each < nnz) are refined first (``ahat += tau``); ``new_ranks``
    (ascending ranks among the zero indices) are mapped to indices and merged
    with ``ahat = 0 + tau`` and their sign flags ``new_neg``.  -1 means a rank
    or position out of range (a corrupt stream); nothing is written out of bounds.
    """
    for q in range(ref_pos.size):
        p = ref_pos[q]
        if p < 0 or p >= nnz:
            return -1
        nz_ahat[p] += tau
    if nnz + new_ranks.size > out_idx.size:
        return -1
    j = 0
    w = 0
    for q in range(new_ranks.size):
        x = new_ranks[q] + j
        while j < nnz and nz_idx[j] <= x:
            out_idx[w] = nz_idx[j]
            out_ahat[w] = nz_ahat[j]
            out_neg[w] = nz_neg[j]
            w += 1
            j += 1
            x += 1
        if x >= n or x < 0:
            return -1
        out_idx[w] = x
        out_ahat[w] = 0.0 + tau
        out_neg[w] = new_neg[q]
        w += 1
    while j < nnz:
        out_idx[w] = nz_idx[j]
        out_ahat[w] = nz_ahat[j]
        out_neg[w] = nz_neg[j]
        w += 1
        j += 1
    return w


@njit(cache=True, parallel=True)
def trajectory_reconstruct(comp_t, comp_a, taus, n_done, out):  # pragma: no cover - compiled
    """``out[e]`` = reconstruction magnitude of compacted index e after ``n_done`` rounds (0 if not entered)."""
    for e in prange(comp_t.size):
        t0 = comp_t[e]
        if t0 >= n_done:
            out[e] = 0.0
            continue
        ah = 0.0 + taus[t0]
        r = comp_a[e] - taus[t0]
        for t in range(t0 + 1, n_done):
            if r > taus[t]:
                r -= taus[t]
                ah += taus[t]
        out[e] = ah
