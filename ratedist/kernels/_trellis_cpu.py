"""Numba CPU kernels of the bitshift trellis quantizer: Viterbi search and decode.

Private: called by :mod:`ratedist.quant.trellis` after validation (nothing is checked here
and numba does not bounds-check).  The trellis has ``S = 2^L`` states; a group of ``V``
weights consumes ``k`` bits ``b`` and moves the state to ``s' = ((s << k) | b) mod 2^L``,
whose codebook column ``codebook_t[:, s']`` reproduces the group.  The predecessors of
``s'`` are the ``K = 2^k`` states ``(s' >> k) + a·M`` (``M = 2^(L−k)``, ``a`` in ``0..K−1``), so
one trellis step is a minimum over ``a`` for each of the ``M`` values of ``s' >> k`` plus
one distortion per state: O(S·(1 + V)) per group, not O(S·K).

Arithmetic contract (the CUDA twin :mod:`ratedist.kernels._trellis_cuda` repeats it, so
both give the same bits):

* the distortion of a state is ``d = ρ(x_0 − c_0)``, then ``d = d + ρ(x_j − c_j)`` for
  ``j = 1..V−1`` (components beyond the tensor's end skipped), ``ρ(e) = |e|`` or ``e·e``;
  the path cost is ``m + d`` with ``m`` the best predecessor cost;
* minima are first minima: predecessors scanned by increasing ``a`` and final states by
  increasing index, each with a strict ``<``;
* no fastmath (no reassociation, no contraction into fused multiply-adds).

Block modes (``start`` residues are the low ``L − k`` bits of the state before the first
group, the only bits of it that reach the next state): ``start = -1`` lets the path start
anywhere (cost 0 for every state), ``start = r >= 0`` forces the residue ``r``;
``end = -1`` takes the best final state, ``end = r >= 0`` the best final state whose low
``L − k`` bits are ``r``.  :func:`viterbi_blocks` codes every block tail-biting (its
start residue equals its end residue) when it holds at least ``L − k`` bits, with the
two-pass approximation: a free pass over the block rotated by half its length gives the
residue of the state at the block boundary, and a second pass forces it at both ends.
Shorter blocks start from state 0 and end free.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["viterbi_path", "viterbi_blocks", "decode_blocks", "tail_biting", "block_start_state"]


@njit(cache=True, inline="always")
def tail_biting(n_groups_block, k, L):  # pragma: no cover - compiled
    """True when a block of ``n_groups_block`` groups is coded tail-biting (≥ L − k bits)."""
    return n_groups_block * k >= L - k


@njit(cache=True, inline="always")
def _combine(cost, mm, d, k, n_res):  # pragma: no cover - compiled
    """cost[s] = mm[s >> k] + d[s] (unrolled for k = 1, 2: the gather would not vectorize)."""
    if k == 1:
        for j in range(n_res):
            m = mm[j]
            cost[2 * j] = m + d[2 * j]
            cost[2 * j + 1] = m + d[2 * j + 1]
    elif k == 2:
        for j in range(n_res):
            m = mm[j]
            cost[4 * j] = m + d[4 * j]
            cost[4 * j + 1] = m + d[4 * j + 1]
            cost[4 * j + 2] = m + d[4 * j + 2]
            cost[4 * j + 3] = m + d[4 * j + 3]
    else:
        for s in range(n_res << k):
            cost[s] = mm[s >> k] + d[s]


@njit(cache=True)
def viterbi_path(x, g0, tb, rot, nv_last, codebook_t, L, k, l1, start, end,
                 cost, nxt, mm, bp, states):  # pragma: no cover - compiled
    """Least-distortion path through groups ``g0 .. g0+tb−1`` of ``x`` (n_groups, V).

    The groups are visited in the rotated order ``g0 + (t + rot) mod tb``, t = 0..tb−1.
    ``nv_last`` is the number of real components of the tensor's last group (the others
    are padding and cost nothing).  Scratch: ``cost``, ``nxt`` (S,) float64, ``mm`` (M,)
    float64, ``bp`` (≥ tb, M) uint8.  Writes the state after each visited group into
    ``states[0:tb]`` (visit order) and returns the path's distortion.
    """
    n_groups, v = x.shape
    n_states = 1 << L
    n_pred = 1 << k
    n_res = 1 << (L - k)
    cb0 = codebook_t[0]
    for t in range(tb):
        g = g0 + (t + rot) % tb
        nv = nv_last if g == n_groups - 1 else v
        bpt = bp[t]
        # best predecessor of every s' >> k: the first minimum over a
        if t == 0:
            for j in range(n_res):
                mm[j] = 0.0 if (start < 0 or j == start) else np.inf
                bpt[j] = 0
        else:
            for j in range(n_res):
                mm[j] = cost[j]
                bpt[j] = 0
            for a in range(1, n_pred):
                off = a * n_res
                for j in range(n_res):
                    c = cost[off + j]
                    if c < mm[j]:
                        mm[j] = c
                        bpt[j] = a
        # distortion d of every state, then the path cost m + d (into cost: the swap of two
        # arrays would cost numba its vectorization)
        x0 = x[g, 0]
        if nv == 1 and k == 1:
            if l1:
                for j in range(n_res):
                    m = mm[j]
                    cost[2 * j] = m + abs(x0 - cb0[2 * j])
                    cost[2 * j + 1] = m + abs(x0 - cb0[2 * j + 1])
            else:
                for j in range(n_res):
                    m = mm[j]
                    e0 = x0 - cb0[2 * j]
                    e1 = x0 - cb0[2 * j + 1]
                    cost[2 * j] = m + e0 * e0
                    cost[2 * j + 1] = m + e1 * e1
        else:
            if nv == 1:
                if l1:
                    for s in range(n_states):
                        nxt[s] = abs(x0 - cb0[s])
                else:
                    for s in range(n_states):
                        e = x0 - cb0[s]
                        nxt[s] = e * e
            else:  # the first two components in one sweep: (ρ0 + ρ1), the same order as one at a time
                x1 = x[g, 1]
                cb1 = codebook_t[1]
                if l1:
                    for s in range(n_states):
                        nxt[s] = abs(x0 - cb0[s]) + abs(x1 - cb1[s])
                else:
                    for s in range(n_states):
                        e0 = x0 - cb0[s]
                        e1 = x1 - cb1[s]
                        nxt[s] = e0 * e0 + e1 * e1
            for i in range(2, nv):
                xi = x[g, i]
                cbi = codebook_t[i]
                if l1:
                    for s in range(n_states):
                        nxt[s] = nxt[s] + abs(xi - cbi[s])
                else:
                    for s in range(n_states):
                        e = xi - cbi[s]
                        nxt[s] = nxt[s] + e * e
            _combine(cost, mm, nxt, k, n_res)
    # final state: the first minimum (among those with the required residue)
    best = np.inf
    sb = 0
    if end < 0:
        for s in range(n_states):
            if cost[s] < best:
                best = cost[s]
                sb = s
    else:
        for a in range(n_pred):
            s = end + a * n_res
            if cost[s] < best:
                best = cost[s]
                sb = s
    s = sb
    for t in range(tb - 1, -1, -1):
        states[t] = s
        s = (s >> k) + (np.int64(bp[t, s >> k]) << (L - k))
    return best


@njit(cache=True)
def _code_block(x, g0, tb, nv_last, codebook_t, L, k, l1, codes, cost, nxt, mm, bp, states):  # pragma: no cover
    """Code one block into ``codes[g0:g0+tb]``; returns its distortion."""
    kmask = (1 << k) - 1
    rmask = (1 << (L - k)) - 1
    if tail_biting(tb, k, L):
        rot = tb // 2
        viterbi_path(x, g0, tb, rot, nv_last, codebook_t, L, k, l1, -1, -1, cost, nxt, mm, bp, states)
        r = states[tb - 1 - rot] & rmask        # the state after the block's last group
        d = viterbi_path(x, g0, tb, 0, nv_last, codebook_t, L, k, l1, r, r, cost, nxt, mm, bp, states)
    else:
        d = viterbi_path(x, g0, tb, 0, nv_last, codebook_t, L, k, l1, 0, -1, cost, nxt, mm, bp, states)
    for t in range(tb):
        codes[g0 + t] = states[t] & kmask
    return d


@njit(parallel=True, cache=True)
def viterbi_blocks(x, block, nv_last, codebook_t, L, k, l1, codes, dist):  # pragma: no cover - compiled
    """Code every block of ``block`` groups of ``x`` (n_groups, V), in parallel over blocks.

    Writes the k-bit code of every group into ``codes`` (n_groups,) uint8 and each block's
    distortion into ``dist`` (n_blocks,) float64.  Scratch per block in flight:
    ``block·2^(L−k)`` bytes of back-pointers and ``2^L`` float64 twice.
    """
    n_groups = x.shape[0]
    n_blocks = (n_groups + block - 1) // block
    n_states = 1 << L
    n_res = 1 << (L - k)
    for b in prange(n_blocks):
        g0 = b * block
        tb = min(block, n_groups - g0)
        cost = np.empty(n_states)
        nxt = np.empty(n_states)
        mm = np.empty(n_res)
        bp = np.empty((tb, n_res), dtype=np.uint8)
        states = np.empty(tb, dtype=np.int64)
        dist[b] = _code_block(x, g0, tb, nv_last, codebook_t, L, k, l1, codes, cost, nxt, mm, bp, states)


@njit(cache=True, inline="always")
def _read_code(buf, g, k):  # pragma: no cover - compiled
    """The k-bit code of group g, most significant bit first (buf has one spare byte at the end)."""
    p = g * k
    i = p >> 3
    w = (np.int64(buf[i]) << 8) | np.int64(buf[i + 1])
    return (w >> (16 - (p & 7) - k)) & ((1 << k) - 1)


@njit(cache=True)
def block_start_state(buf, g0, tb, k, L):  # pragma: no cover - compiled
    """State before the block's first group: the block's last bits (tail-biting) or 0."""
    s = 0
    if tail_biting(tb, k, L):
        mask = (1 << L) - 1
        first = max(0, tb - (L + k - 1) // k)
        for t in range(first, tb):
            s = ((s << k) | _read_code(buf, g0 + t, k)) & mask
    return s


@njit(parallel=True, cache=True)
def decode_blocks(buf, n_groups, block, k, L, codebook_t, n, out):  # pragma: no cover - compiled
    """Reconstruct ``out`` (n,) from the packed codes ``buf`` (one spare byte at the end).

    ``codebook_t`` (V, 2^L); group g fills ``out[g·V : min(n, g·V+V)]``.
    """
    v = codebook_t.shape[0]
    mask = (1 << L) - 1
    n_blocks = (n_groups + block - 1) // block
    for b in prange(n_blocks):
        g0 = b * block
        tb = min(block, n_groups - g0)
        s = block_start_state(buf, g0, tb, k, L)
        for t in range(tb):
            g = g0 + t
            s = ((s << k) | _read_code(buf, g, k)) & mask
            base = g * v
            if base + v <= n:
                for i in range(v):
                    out[base + i] = codebook_t[i, s]
            else:
                for i in range(n - base):
                    out[base + i] = codebook_t[i, s]
