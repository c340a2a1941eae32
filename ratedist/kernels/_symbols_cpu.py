"""Per-position bookkeeping of the chain-interleaved index coder (``ratedist.quant._symbols``), in numba.

At chain position ``i`` every active chain ``b`` holds index ``f = starts[b] + i``.  These
kernels compute the coding context of each active chain and group the chains by context
(a counting sort: stable, so chains stay in ascending order inside a context), and, after
the position is decoded, store the magnitudes and step every chain's state machine.  Callers
guarantee ``active ≤ len(starts) − 1``, ``i < starts[b+1] − starts[b]`` for every active b,
and state / context tables whose entries are in range.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["position_groups", "position_commit"]


@njit(cache=True)
def position_groups(mag, st, starts, i, active, fsm_context, n_neighbour, n_ctx):
    """Context of each active chain, the chains grouped by context, and the group bounds.

    Returns ``(ctx, order, bounds)``: ``ctx[b]`` for b < active; ``order`` the chains sorted
    by context (stable); ``bounds[c]..bounds[c+1]`` the slice of ``order`` in context c.
    """
    ctx = np.empty(active, np.int64)
    counts = np.zeros(n_ctx + 1, np.int64)
    cap = n_neighbour - 1
    for b in range(active):
        f = starts[b] + i
        s = 0
        if i >= 1:
            s += mag[f - 1]
        if i >= 2:
            s += mag[f - 2]
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
def position_commit(mag, states, st, starts, i, active, m, next_state):
    """Store magnitudes ``m[b]`` and the states of position ``i``; step each chain's state by parity."""
    for b in range(active):
        f = starts[b] + i
        mag[f] = m[b]
        states[f] = st[b]
        st[b] = next_state[st[b], m[b] & 1]
