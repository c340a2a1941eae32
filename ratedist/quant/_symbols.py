"""Context-coded quantization indices: the entropy-coding layer shared by every ratedist quantizer.

A quantizer turns a tensor into signed integer indices ``q`` and a *state* per index, the
state of a small finite-state machine (FSM) driven by the parity of the indices: the
dependent-quantization trellis (``ratedist.quant.tcq``) has 4 to 256 states, the scalar
quantizer one.  Each state maps to a coding context; the magnitude ``|q|`` is range-coded
(constriction) under the empirical law of its context, and the signs of the non-zero
indices follow as raw bits (weight signs are fair coins: a model would not save anything).

Why chains.  The context of index ``i`` depends on the parities of the indices before it,
so a decoder cannot know the contexts in advance, and decoding one symbol per constriction
call would cost about a microsecond each.  The tensor is therefore cut into ``B`` chains of
contiguous indices, each running its own FSM from state 0, and the symbols are coded
position-major: position 0 of every chain, then position 1, ...; within a position, context
0's symbols first (in chain order), then context 1's, and so on.  The decoder knows the
states of all chains at a position before decoding it, so it decodes every position with
one constriction call per context, and the FSM step is a vectorized table lookup.  With
one state there is one context and the chains degenerate to one call for the whole tensor.

Payload (bytes)::

    varint M            largest magnitude (alphabet 0..M)
    varint n_words      length of the range-coded part in 32-bit words
    varint counts[c][m] for every context c and magnitude m = 0..M (the coding law)
    n_words × u32       range-coded magnitudes in the coding order above (little-endian)
    packed sign bits    one bit per non-zero index in index order (1 = negative), np.packbits order

The counts are exact, so the model is the empirical law and the rate is within a few
bytes of ``n·H(|q| | context) + nnz`` bits plus the table.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coding.entropy import bytes_to_words, words_to_bytes
from ..coding.varint import get_varint, put_varints
from ..errors import CorruptStreamError

__all__ = ["StateMachine", "SCALAR_FSM", "chain_starts", "encode_indices", "decode_indices",
           "context_counts", "rate_table", "MAX_MAGNITUDE"]

#: largest magnitude a payload may declare (the alphabet of one context); 2^20 levels is far beyond
#: any useful quantizer (a step of 1e-6 of the tensor's norm)
MAX_MAGNITUDE = 1 << 20


@dataclass(frozen=True)
class StateMachine:
    """A parity-driven FSM: ``next_state[s, q & 1]`` and the coding context ``context[s]``.

    Attributes
    ----------
    next_state : ndarray, shape (S, 2), int64
    context : ndarray, shape (S,), int64, values in [0, n_contexts)
    n_contexts : int
    """

    next_state: np.ndarray
    context: np.ndarray
    n_contexts: int

    @property
    def n_states(self) -> int:
        return int(self.next_state.shape[0])


#: the scalar quantizer's machine: one state, one context
SCALAR_FSM = StateMachine(next_state=np.zeros((1, 2), dtype=np.int64), context=np.zeros(1, dtype=np.int64),
                          n_contexts=1)


def chain_starts(n: int, n_chains: int) -> np.ndarray:
    """Start offsets of ``n_chains`` contiguous chains covering ``0..n`` (the first ``n % B`` are one longer).

    Returns ``B + 1`` offsets (the last is ``n``).

    >>> chain_starts(10, 3).tolist()
    [0, 4, 7, 10]
    """
    b = max(1, min(int(n_chains), int(n))) if n else 1
    base, extra = divmod(int(n), b)
    lengths = np.full(b, base, dtype=np.int64)
    lengths[:extra] += 1
    return np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)


def _coding_order(n: int, starts: np.ndarray, ctx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices in coding order and the boundaries of its (position, context) groups."""
    b = starts.shape[0] - 1
    chain = np.repeat(np.arange(b, dtype=np.int64), np.diff(starts))
    pos = np.arange(n, dtype=np.int64) - starts[chain]
    order = np.lexsort((chain, ctx, pos))
    key = pos[order] * (int(ctx.max()) + 1 if n else 1) + ctx[order]
    cut = np.flatnonzero(np.diff(key)) + 1
    return order, np.concatenate([[0], cut, [n]]).astype(np.int64)


def context_counts(mag: np.ndarray, ctx: np.ndarray, n_contexts: int, m_max: int) -> np.ndarray:
    """Histogram ``counts[c, m]`` of magnitudes ``mag`` (≤ ``m_max``) per context."""
    flat = ctx.astype(np.int64) * (m_max + 1) + mag.astype(np.int64)
    return np.bincount(flat, minlength=n_contexts * (m_max + 1)).reshape(n_contexts, m_max + 1)


def rate_table(counts: np.ndarray, m_max: int, *, prior: float = 0.5) -> np.ndarray:
    """Estimated bits of coding magnitude ``m`` (plus its sign bit when m > 0) in each context.

    For rate–distortion searches: the law of ``counts`` smoothed by ``prior`` pseudo-counts per
    symbol and extended to ``m_max`` (a larger alphabet than the counts cover) with a
    geometric tail.  Returns shape ``(n_contexts, m_max + 1)``.
    """
    counts = np.asarray(counts, dtype=np.float64)
    c, m0 = counts.shape
    out = np.empty((c, m_max + 1))
    for k in range(c):
        row = np.zeros(m_max + 1)
        row[:min(m0, m_max + 1)] = counts[k, :m_max + 1]
        row = row + prior
        if m_max + 1 > m0:  # geometric tail beyond the observed alphabet
            row[m0:] = prior * 0.5 ** np.arange(1, m_max + 2 - m0)
        out[k] = -np.log2(row / row.sum())
    out[:, 1:] += 1.0
    return out


def encode_indices(q: np.ndarray, states: np.ndarray, fsm: StateMachine, n_chains: int) -> bytes:
    """Code signed indices ``q`` whose FSM states are ``states`` (the state in which each index was chosen).

    ``states`` must be the trajectory of ``fsm`` driven by ``q`` along each chain of
    :func:`chain_starts` (``n``, ``n_chains``), starting from state 0; the caller guarantees it.
    """
    import constriction

    q = np.ascontiguousarray(q, dtype=np.int64)
    n = q.shape[0]
    n_chains = n if fsm.n_states == 1 else n_chains
    mag = np.abs(q)
    m_max = int(mag.max()) if n else 0
    if m_max > MAX_MAGNITUDE:
        raise ValueError(f"index magnitude {m_max} exceeds the format's limit {MAX_MAGNITUDE}")
    ctx = fsm.context[np.asarray(states, dtype=np.int64)] if fsm.n_contexts > 1 else np.zeros(n, dtype=np.int64)
    counts = context_counts(mag, ctx, fsm.n_contexts, m_max)
    words = np.zeros(0, dtype=np.uint32)
    if n and m_max > 0:
        starts = chain_starts(n, n_chains)
        order, bounds = _coding_order(n, starts, ctx)
        sym = mag[order].astype(np.int32)
        gctx = ctx[order][bounds[:-1]]
        models = [constriction.stream.model.Categorical(row / row.sum(), perfect=False) if row.sum() else None
                  for row in counts.astype(np.float64)]
        enc = constriction.stream.queue.RangeEncoder()
        for g in range(bounds.shape[0] - 1):
            enc.encode(sym[bounds[g]:bounds[g + 1]], models[int(gctx[g])])
        words = enc.get_compressed()
    signs = np.packbits(q[mag > 0] < 0)
    head = put_varints([m_max, words.shape[0]]) + put_varints(counts.ravel().tolist())
    return head + words_to_bytes(words) + signs.tobytes()


def decode_indices(payload: bytes, n: int, fsm: StateMachine, n_chains: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_indices`: the signed indices and their states (both int64, length ``n``).

    Raises :class:`CorruptStreamError` on any payload that does not decode; allocations stay
    O(n + table).
    """
    import constriction

    buf = bytes(payload)
    n_chains = n if fsm.n_states == 1 else n_chains
    m_max, pos = get_varint(buf, 0)
    n_words, pos = get_varint(buf, pos)
    if m_max > MAX_MAGNITUDE:
        raise CorruptStreamError(f"index payload declares magnitudes up to {m_max}, above the limit {MAX_MAGNITUDE}.")
    n_cells = fsm.n_contexts * (m_max + 1)
    if n_cells > len(buf) - pos:  # every count takes at least one byte
        raise CorruptStreamError(f"index payload declares {n_cells} counts but holds {len(buf) - pos} bytes.")
    counts = np.empty(n_cells, dtype=np.int64)
    for k in range(n_cells):
        v, pos = get_varint(buf, pos)
        if v > n:
            raise CorruptStreamError(f"index payload holds a count {v} larger than the {n} indices.")
        counts[k] = v
    counts = counts.reshape(fsm.n_contexts, m_max + 1)
    if int(counts.sum()) != n:
        raise CorruptStreamError(f"index payload's counts sum to {int(counts.sum())}, not to the {n} indices.")
    nnz = n - int(counts[:, 0].sum())
    n_sign = (nnz + 7) // 8
    if pos + 4 * n_words + n_sign != len(buf):
        raise CorruptStreamError(
            f"index payload has {len(buf)} bytes; its tables, {n_words} words and {nnz} sign bits need "
            f"{pos + 4 * n_words + n_sign}. It is truncated or corrupted.")
    words = bytes_to_words(buf[pos:pos + 4 * n_words])
    signs = np.unpackbits(np.frombuffer(buf, dtype=np.uint8, count=n_sign, offset=pos + 4 * n_words),
                          count=nnz).astype(bool)
    mag = np.zeros(n, dtype=np.int64)
    states = np.zeros(n, dtype=np.int64)
    if n and (m_max > 0 or fsm.n_states > 1):
        models = [constriction.stream.model.Categorical(row / row.sum(), perfect=False) if row.sum() else None
                  for row in counts.astype(np.float64)]
        starts = chain_starts(n, n_chains)
        b = starts.shape[0] - 1
        lengths = np.diff(starts)
        dec = constriction.stream.queue.RangeDecoder(words)
        st = np.zeros(b, dtype=np.int64)
        n_pos = int(lengths[0])
        try:
            for i in range(n_pos):
                active = int(np.count_nonzero(lengths > i)) if i >= int(lengths[-1]) else b
                idx = starts[:active] + i
                cur = st[:active]
                states[idx] = cur
                ctx = fsm.context[cur] if fsm.n_contexts > 1 else None
                for c in range(fsm.n_contexts):
                    sel = idx if ctx is None else idx[ctx == c]
                    if sel.shape[0] == 0 or m_max == 0:
                        continue
                    if models[c] is None:
                        raise CorruptStreamError(f"index payload codes a symbol in context {c}, whose law is empty.")
                    mag[sel] = dec.decode(models[c], int(sel.shape[0]))
                st[:active] = fsm.next_state[cur, mag[idx] & 1]
        except CorruptStreamError:
            raise
        except BaseException as exc:  # constriction raises (or panics) on data that does not decode
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise CorruptStreamError(f"index payload does not decode: {exc}") from None
        if np.count_nonzero(mag) != nnz:
            raise CorruptStreamError("index payload decodes to a different number of non-zero indices than "
                                     "its counts declare; it is corrupted.")
        if not np.array_equal(context_counts(mag, fsm.context[states], fsm.n_contexts, m_max).ravel(),
                              counts.ravel()):
            raise CorruptStreamError("index payload decodes to indices whose histogram differs from its "
                                     "counts; it is corrupted.")
    q = mag
    nzi = np.flatnonzero(q)
    q[nzi[signs]] *= -1
    return q, states
