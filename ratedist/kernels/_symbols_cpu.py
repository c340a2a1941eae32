"""Per-position bookkeeping of the chain-interleaved index coder (``ratedist.quant._symbols``), in numba.

At chain position ``i`` every active chain ``b`` holds index ``f = starts[b] + i``.  The coder
works on *position-major* copies ``x_T[i, b] = x[starts[b] + i]`` (:func:`to_positions`,
:func:`from_positions`), so that a position's chains, and their left neighbours, are contiguous
in memory (chain-major access strides by a chain length and misses the cache on every index:
it was a third of the decoder's time).  These kernels compute the coding context of each active chain and group the chains by context
(a counting sort: stable, so chains stay in ascending order inside a context); after the
magnitudes of the position are known, they store them, step every chain's state machine,
count the symbols into their contexts' laws and group the non-zero chains by sign context;
after the signs are known, they store them and count them.  Callers guarantee
``active ≤ len(starts) − 1``, ``i < starts[b+1] − starts[b]`` for every active b, state and
context tables whose entries are in range, and magnitudes ``m ≥ 0``.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["to_positions", "from_positions", "position_groups", "position_commit", "sign_commit"]


@njit(cache=True)
def to_positions(x, starts, length):
    """``x_T[i, b] = x[starts[b] + i]`` for the ``len(starts) − 1`` chains, zero past a chain's end."""
    b_n = starts.shape[0] - 1
    out = np.zeros((length, b_n), x.dtype)
    for b in range(b_n):
        for i in range(starts[b + 1] - starts[b]):
            out[i, b] = x[starts[b] + i]
    return out


@njit(cache=True)
def from_positions(x_t, starts):
    """Inverse of :func:`to_positions`: the chain-major array of length ``starts[-1]``."""
    b_n = starts.shape[0] - 1
    out = np.empty(starts[b_n], x_t.dtype)
    for b in range(b_n):
        for i in range(starts[b + 1] - starts[b]):
            out[starts[b] + i] = x_t[i, b]
    return out


@njit(cache=True)
def position_groups(mag_t, st, i, active, fsm_context, n_neighbour, n_ctx):
    """Context of each active chain, the chains grouped by context, and the group bounds.

    Returns ``(ctx, order, bounds)``: ``ctx[b]`` for b < active; ``order`` the chains sorted
    by context (stable); ``bounds[c]..bounds[c+1]`` the slice of ``order`` in context c.
    """
    ctx = np.empty(active, np.int64)
    counts = np.zeros(n_ctx + 1, np.int64)
    cap = n_neighbour - 1
    for b in range(active):
        s = 0
        if i >= 1:
            s += mag_t[i - 1, b]
        if i >= 2:
            s += mag_t[i - 2, b]
        if s > cap:
            s = cap
        c = fsm_context[st[b]] * n_neighbour + s
        ctx[b] = c
        counts[c + 1] += 1
    for c in range(n_ctx):
        counts[c + 1] += counts[c]
    bounds = counts.copy()
    order = np.empty(active, np.int64)
    for b in range(active):
        c = ctx[b]
        order[counts[c]] = b
        counts[c] += 1
    return ctx, order, bounds


@njit(cache=True)
def position_commit(mag_t, states_t, st, i, active, m, next_state, ctx, law_counts, escape, sgn_t):
    """Store magnitudes ``m[b]`` and the states of position ``i``, step each chain's state by parity,
    add each chain's symbol ``min(m, escape)`` to ``law_counts[ctx[b]]``, and group the chains with
    ``m[b] > 0`` by the sign of their left neighbour ``sgn_t[i − 1, b]`` (class 0: none or zero, 1: +, 2: −).

    Returns ``(sorder, sbounds)``: the non-zero chains sorted by sign class (stable) and the class
    bounds (4 entries).
    """
    scls = np.empty(active, np.int64)
    cnt = np.zeros(4, np.int64)
    for b in range(active):
        v = m[b]
        mag_t[i, b] = v
        states_t[i, b] = st[b]
        st[b] = next_state[st[b], v & 1]
        law_counts[ctx[b], min(v, escape)] += 1.0
        if v > 0:
            c = 0
            if i >= 1:
                left = sgn_t[i - 1, b]
                if left > 0:
                    c = 1
                elif left < 0:
                    c = 2
            scls[b] = c
            cnt[c + 1] += 1
        else:
            scls[b] = -1
    for c in range(3):
        cnt[c + 1] += cnt[c]
    sbounds = cnt.copy()
    sorder = np.empty(cnt[3], np.int64)
    for b in range(active):
        c = scls[b]
        if c >= 0:
            sorder[cnt[c]] = b
            cnt[c] += 1
    return sorder, sbounds


@njit(cache=True)
def sign_commit(sgn_t, i, sorder, sbounds, bits, sign_counts):
    """Store the signs ``1 − 2·bits[k]`` of the chains ``sorder[k]`` at position ``i`` and count each
    bit into its class's law ``sign_counts[class, bit]``."""
    for c in range(3):
        for k in range(sbounds[c], sbounds[c + 1]):
            bit = bits[k]
            sgn_t[i, sorder[k]] = 1 - 2 * bit
            sign_counts[c, bit] += 1.0
