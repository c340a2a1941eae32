"""Numba CPU kernels of trellis-coded (dependent) quantization: Viterbi search, greedy walk, levels, statistics.

Private: called by :mod:`ratedist.quant.tcq` after validation.  Nothing is checked here; the
caller guarantees that

* ``pred[t, x]`` is the unique state ``s`` with ``next_state[s, x] = t`` (every state of the
  trellis has exactly one predecessor per input parity ``x``), states fit in 0..255;
* every state's context lies in ``[0, bits.shape[0])`` and ``ctx_quant[c]`` (0 or 1) is the
  quantizer of every state in context ``c``;
* ``bits.shape[1] - 1`` is at least the largest candidate magnitude,
  ``floor((max|u| / Δ + 1 + max(shrink)) / 2) + 1``;
* ``starts`` holds ``B + 1`` non-decreasing offsets from 0 to ``n``;
* indices and states passed to :func:`reconstruct_cpu` / :func:`counts_cpu` are in range.

The two scalar quantizers (step ``Δ``, index ``k``, magnitude ``m = |k|``, the sign of ``u``):

* quantizer 0: level magnitudes ``(2m − shrink[0]) Δ`` for ``m ≥ 1``;
* quantizer 1: level magnitudes ``(2m − 1 − shrink[1]) Δ`` for ``m ≥ 1``;

and magnitude 0 is the level 0 — in quantizer 1 only when ``q1_zero`` (dependent quantization
as in VVC); without it quantizer 1 has no zero level (Marcellin–Fischer TCQ).  At a weight
``x`` the candidates of a quantizer are the magnitudes ``0``, ``m_lo`` (the largest level
≤ ``|x|``) and ``m_lo + 1`` (the smallest above), with the sign of ``x``.

Arithmetic is sequential within a chain and chains run in ``prange`` writing disjoint slices,
so the results do not depend on the thread count.  Each loop over chains or weights
comes twice, ``*_cpu`` (parallel) and ``*_serial`` (one thread; a parallel launch costs
milliseconds on a busy machine, more than a small tensor's work), both calling the same
per-chain (per-weight) function, so the two give identical outputs.  Ties: within a parity the earlier candidate
in the order (0, m_lo, m_lo + 1) wins; between the two branches into a state, parity 0; among
final states, the lowest.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

__all__ = ["viterbi_cpu", "viterbi_serial", "greedy_cpu", "greedy_serial", "reconstruct_cpu", "reconstruct_serial",
           "viterbi_nb_cpu", "viterbi_nb_serial", "counts_cpu", "counts_nb_cpu", "level_gaps_cpu",
           "candidate_magnitudes"]


@njit(cache=True, inline="always")
def _level(m, quant, step, shrink):  # pragma: no cover - compiled
    """Magnitude of the reconstruction of magnitude index ``m ≥ 1`` in quantizer ``quant``."""
    return (2.0 * m - quant - shrink) * step


@njit(cache=True, inline="always")
def _m_lo(r, quant, shrink, q1_zero):  # pragma: no cover - compiled
    """Largest magnitude whose level is ≤ ``r·Δ`` (``r = |x| / Δ``); the smallest allowed one if none is."""
    m = np.int64(np.floor((r + quant + shrink) * 0.5))
    low = 1 if (quant == 1 and not q1_zero) else 0
    return m if m > low else np.int64(low)


@njit(cache=True)
def candidate_magnitudes(x, step, shrink, quant, q1_zero):  # pragma: no cover - compiled
    """``(m_lo, m_lo + 1, zero allowed)`` at weight ``x`` in quantizer ``quant`` (for the tests' reference)."""
    lo = _m_lo(abs(x) / step, quant, shrink[quant], q1_zero)
    return lo, lo + 1, quant == 0 or q1_zero


@njit(cache=True, inline="always")
def _rho(e, l1):  # pragma: no cover - compiled
    return abs(e) if l1 else e * e


@njit(cache=True, inline="always")
def _branches(a, r, sgn, step, shrink, lam, bits, ctx_quant, l1, q1_zero, br, bk, i):  # pragma: no cover - compiled
    """Best cost and signed index per (context, parity) at a weight of magnitude ``a = r·Δ`` and sign ``sgn``.

    Writes ``br[2c + parity]`` and ``bk[i, c, parity]``.
    """
    for c in range(ctx_quant.shape[0]):
        quant = ctx_quant[c]
        sh = shrink[quant]
        lo = _m_lo(r, quant, sh, q1_zero)
        best0 = np.inf
        m0 = 0
        if quant == 0 or q1_zero:
            best0 = _rho(a, l1) + lam * bits[c, 0]
        best1 = np.inf
        m1 = 0
        for m in (lo, lo + 1):
            if m == 0:
                continue
            cost = _rho(a - _level(m, quant, step, sh), l1) + lam * bits[c, m]
            if m & 1:
                if cost < best1:
                    best1 = cost
                    m1 = m
            elif cost < best0:
                best0 = cost
                m0 = m
        br[2 * c] = best0
        bk[i, c, 0] = sgn * m0
        br[2 * c + 1] = best1
        bk[i, c, 1] = sgn * m1


@njit(cache=True)
def _viterbi_chain(b, u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, p0, p1, j0, j1, l1, q1_zero,
                   out_q, out_states, out_cost):  # pragma: no cover - compiled
    """One chain of :func:`viterbi_cpu` (writes only that chain's slice of the outputs)."""
    n_states = pred.shape[0]
    n_ctx = ctx_quant.shape[0]
    lo = starts[b]
    length = starts[b + 1] - lo
    cost = np.full(n_states, np.inf)
    new = np.empty(n_states)
    cost[0] = 0.0
    back = np.empty((length, n_states), dtype=np.uint8)   # parity of the surviving branch into t
    kept = np.empty((length, n_ctx, 2), dtype=np.int64)    # best index per (context, parity)
    br = np.empty(2 * n_ctx)
    for i in range(length):
        x = u[lo + i]
        a = abs(x)
        _branches(a, a / step, -1 if x < 0 else 1, step, shrink, lam, bits, ctx_quant, l1, q1_zero, br,
                  kept, i)
        for t in range(n_states):
            v0 = cost[p0[t]] + br[j0[t]]
            v1 = cost[p1[t]] + br[j1[t]]
            if v1 < v0:
                new[t] = v1
                back[i, t] = 1
            else:
                new[t] = v0
                back[i, t] = 0
        cost, new = new, cost
    s = 0
    for t in range(1, n_states):
        if cost[t] < cost[s]:
            s = t
    out_cost[b] = cost[s] if length else 0.0
    for i in range(length - 1, -1, -1):
        x = back[i, s]
        s = pred[s, x]
        out_q[lo + i] = kept[i, state_ctx[s], x]
        out_states[lo + i] = s


@njit(cache=True)
def _viterbi_tables(pred, state_ctx):  # pragma: no cover - compiled
    """Predecessors per parity and the branch-table slot of each branch into every state."""
    n_states = pred.shape[0]
    p0 = pred[:, 0].copy()
    p1 = pred[:, 1].copy()
    j0 = np.empty(n_states, dtype=np.int64)
    j1 = np.empty(n_states, dtype=np.int64)
    for t in range(n_states):
        j0[t] = 2 * state_ctx[p0[t]]
        j1[t] = 2 * state_ctx[p1[t]] + 1
    return p0, p1, j0, j1


@njit(parallel=True, cache=True)
def viterbi_cpu(u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, l1, q1_zero,
                out_q, out_states, out_cost):  # pragma: no cover - compiled
    """Minimize ``Σ ρ(u_i − level_i) + lam · bits[ctx(state_i), |k_i|]`` over each chain's paths.

    Each chain starts in state 0 and ends in whichever state is cheapest.  Writes the signed
    indices ``out_q`` (n,), the state in which each index is chosen ``out_states`` (n,) and each
    chain's minimal cost ``out_cost`` (B,).  ``l1`` selects ρ = |·| (True) or (·)² (False);
    ``shrink`` is a float64 array of 2 (one per quantizer).  Memory per chain in flight:
    ``length × S`` bytes of back-pointers and ``length × C × 2`` indices.
    """
    p0, p1, j0, j1 = _viterbi_tables(pred, state_ctx)
    for b in prange(starts.shape[0] - 1):
        _viterbi_chain(b, u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, p0, p1, j0, j1, l1, q1_zero,
                       out_q, out_states, out_cost)


@njit(cache=True)
def viterbi_serial(u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, l1, q1_zero,
                   out_q, out_states, out_cost):  # pragma: no cover - compiled
    """:func:`viterbi_cpu` on one thread (identical outputs)."""
    p0, p1, j0, j1 = _viterbi_tables(pred, state_ctx)
    for b in range(starts.shape[0] - 1):
        _viterbi_chain(b, u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, p0, p1, j0, j1, l1, q1_zero,
                       out_q, out_states, out_cost)


@njit(cache=True, inline="always")
def _branches_nb(a, r, sgn, step, shrink, lam, bits, ctx_quant, n_nb, l1, q1_zero, br, bk):  # pragma: no cover
    """As :func:`_branches`, for every (context, neighbourhood class): slot ``(c·n_nb + j)·2 + parity``."""
    for c in range(ctx_quant.shape[0]):
        quant = ctx_quant[c]
        sh = shrink[quant]
        lo = _m_lo(r, quant, sh, q1_zero)
        zero_ok = quant == 0 or q1_zero
        d0 = _rho(a, l1)
        d_lo = _rho(a - _level(lo, quant, step, sh), l1) if lo > 0 else np.inf
        d_hi = _rho(a - _level(lo + 1, quant, step, sh), l1)
        for j in range(n_nb):
            row = c * n_nb + j
            best0 = d0 + lam * bits[row, 0] if zero_ok else np.inf
            m0 = 0
            best1 = np.inf
            m1 = 0
            for m, d in ((lo, d_lo), (lo + 1, d_hi)):
                if m == 0:
                    continue
                cost = d + lam * bits[row, m]
                if m & 1:
                    if cost < best1:
                        best1 = cost
                        m1 = m
                elif cost < best0:
                    best0 = cost
                    m0 = m
            br[2 * row] = best0
            bk[2 * row] = sgn * m0
            br[2 * row + 1] = best1
            bk[2 * row + 1] = sgn * m1


@njit(cache=True)
def _viterbi_nb_chain(b, u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, n_nb, l1, q1_zero,
                      out_q, out_states, out_cost):  # pragma: no cover - compiled
    """One chain of :func:`viterbi_nb_cpu` (writes only that chain's slice of the outputs)."""
    n_states = pred.shape[0]
    n_slots = 2 * ctx_quant.shape[0] * n_nb
    lo = starts[b]
    length = starts[b + 1] - lo
    cost = np.full(n_states, np.inf)
    new = np.empty(n_states)
    cost[0] = 0.0
    m1 = np.zeros(n_states, dtype=np.int64)   # |k| of the last and the one-before-last index of each survivor
    m2 = np.zeros(n_states, dtype=np.int64)
    n1 = np.zeros(n_states, dtype=np.int64)
    n2 = np.zeros(n_states, dtype=np.int64)
    back = np.empty((length, n_states), dtype=np.uint8)
    kept = np.empty((length, n_states), dtype=np.int64)   # index on the surviving branch into each state
    br = np.empty(n_slots)
    bk = np.empty(n_slots, dtype=np.int64)
    row = np.empty(n_states, dtype=np.int64)
    for i in range(length):
        x = u[lo + i]
        a = abs(x)
        _branches_nb(a, a / step, -1 if x < 0 else 1, step, shrink, lam, bits, ctx_quant, n_nb, l1, q1_zero,
                     br, bk)
        for s in range(n_states):  # branch-table row of each state under its survivor's neighbourhood
            j = m1[s] + m2[s]
            row[s] = 2 * (state_ctx[s] * n_nb + (j if j < n_nb else n_nb - 1))
        for t in range(n_states):
            s0 = pred[t, 0]
            s1 = pred[t, 1]
            k0 = row[s0]
            k1 = row[s1] + 1
            v0 = cost[s0] + br[k0]
            v1 = cost[s1] + br[k1]
            if v1 < v0:
                new[t] = v1
                back[i, t] = 1
                k = bk[k1]
                n2[t] = m1[s1]
            else:
                new[t] = v0
                back[i, t] = 0
                k = bk[k0]
                n2[t] = m1[s0]
            kept[i, t] = k
            n1[t] = k if k >= 0 else -k
        cost, new = new, cost
        m1, n1 = n1, m1
        m2, n2 = n2, m2
    s = 0
    for t in range(1, n_states):
        if cost[t] < cost[s]:
            s = t
    out_cost[b] = cost[s] if length else 0.0
    for i in range(length - 1, -1, -1):
        out_q[lo + i] = kept[i, s]
        s = pred[s, back[i, s]]
        out_states[lo + i] = s


@njit(parallel=True, cache=True)
def viterbi_nb_cpu(u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, n_nb, l1, q1_zero,
                   out_q, out_states, out_cost):  # pragma: no cover - compiled
    """:func:`_viterbi` under a rate model that also depends on the neighbourhood of each index.

    The law of index i is row ``ctx(state_i) · n_nb + min(|k_{i−1}| + |k_{i−2}|, n_nb − 1)`` of
    ``bits`` (the left-neighbour context of :mod:`ratedist.quant._symbols`; indices before the
    chain count as 0), the neighbourhood taken along each state's surviving path.  That is the
    usual survivor approximation (as in VVC's rate–distortion-optimized quantization): exact
    when ``n_nb = 1``, otherwise a path that a different survivor would have continued more
    cheaply is not searched.
    """
    for b in prange(starts.shape[0] - 1):
        _viterbi_nb_chain(b, u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, n_nb, l1, q1_zero,
                          out_q, out_states, out_cost)


@njit(cache=True)
def viterbi_nb_serial(u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, n_nb, l1, q1_zero,
                      out_q, out_states, out_cost):  # pragma: no cover - compiled
    """:func:`viterbi_nb_cpu` on one thread (identical outputs)."""
    for b in range(starts.shape[0] - 1):
        _viterbi_nb_chain(b, u, starts, step, shrink, lam, bits, state_ctx, ctx_quant, pred, n_nb, l1, q1_zero,
                          out_q, out_states, out_cost)


@njit(cache=True)
def counts_nb_cpu(q, states, starts, state_ctx, n_nb, counts):  # pragma: no cover - compiled
    """``counts[ctx(state_i)·n_nb + min(|q_{i−1}| + |q_{i−2}|, n_nb − 1), |q_i|] += 1`` along each chain."""
    for b in range(starts.shape[0] - 1):
        a1 = 0
        a2 = 0
        for i in range(starts[b], starts[b + 1]):
            k = q[i]
            m = k if k >= 0 else -k
            j = a1 + a2
            counts[state_ctx[states[i]] * n_nb + (j if j < n_nb else n_nb - 1), m] += 1
            a2 = a1
            a1 = m


@njit(cache=True)
def _greedy_chain(b, u, starts, step, state_quant, next_state, q1_zero, out_q, out_states):  # pragma: no cover
    s = 0
    for i in range(starts[b], starts[b + 1]):
        x = u[i]
        a = abs(x)
        quant = state_quant[s]
        m = _m_lo(a / step, quant, 0.0, q1_zero)
        here = _level(m, quant, step, 0.0) if m else 0.0
        if a - here > _level(m + 1, quant, step, 0.0) - a:
            m += 1
        out_q[i] = -m if x < 0 else m
        out_states[i] = s
        s = next_state[s, m & 1]


@njit(parallel=True, cache=True)
def greedy_cpu(u, starts, step, state_quant, next_state, q1_zero, out_q, out_states):  # pragma: no cover - compiled
    """Walk each chain's FSM from state 0, taking the nearest level (no shrink) of the current quantizer.

    Ties between the two neighbouring levels go to the lower magnitude.  Seeds the rate model of
    the first Viterbi pass.
    """
    for b in prange(starts.shape[0] - 1):
        _greedy_chain(b, u, starts, step, state_quant, next_state, q1_zero, out_q, out_states)


@njit(cache=True)
def greedy_serial(u, starts, step, state_quant, next_state, q1_zero, out_q, out_states):  # pragma: no cover
    """:func:`greedy_cpu` on one thread (identical outputs)."""
    for b in range(starts.shape[0] - 1):
        _greedy_chain(b, u, starts, step, state_quant, next_state, q1_zero, out_q, out_states)


@njit(cache=True, inline="always")
def _level_of(k, quant, step, shrink):  # pragma: no cover - compiled
    if k == 0:
        return 0.0
    v = ((2 * abs(k) - quant) - shrink[quant]) * step
    return v if k > 0 else -v


@njit(parallel=True, cache=True)
def reconstruct_cpu(q, states, state_quant, step, shrink, out):  # pragma: no cover - compiled
    """``out[i] = sgn(q_i) · ((2|q_i| − quant) − shrink[quant]) · step`` with ``quant`` that of ``states[i]``; 0 at q = 0."""
    for i in prange(q.shape[0]):
        out[i] = _level_of(q[i], state_quant[states[i]], step, shrink)


@njit(cache=True)
def reconstruct_serial(q, states, state_quant, step, shrink, out):  # pragma: no cover - compiled
    """:func:`reconstruct_cpu` on one thread (identical outputs)."""
    for i in range(q.shape[0]):
        out[i] = _level_of(q[i], state_quant[states[i]], step, shrink)


@njit(cache=True)
def counts_cpu(q, states, state_ctx, counts):  # pragma: no cover - compiled
    """``counts[ctx(state_i), |q_i|] += 1`` for every i (counts zeroed by the caller)."""
    for i in range(q.shape[0]):
        k = q[i]
        counts[state_ctx[states[i]], k if k >= 0 else -k] += 1


@njit(cache=True)
def level_gaps_cpu(u, q, states, state_quant, inv_step, gaps, which):  # pragma: no cover - compiled
    """Unshrunk level minus ``|u|``, in steps, of every non-zero index, and its quantizer; returns how many.

    ``gaps[j] = (2|q_i| − quant) − |u_i| · inv_step`` and ``which[j] = quant`` for the j-th non-zero ``q_i``.
    """
    j = 0
    for i in range(q.shape[0]):
        k = q[i]
        if k != 0:
            quant = state_quant[states[i]]
            gaps[j] = (2 * abs(k) - quant) - abs(u[i]) * inv_step
            which[j] = quant
            j += 1
    return j

