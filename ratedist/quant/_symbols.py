"""Context-coded quantization indices: the entropy-coding layer shared by every ratedist quantizer.

A quantizer turns a tensor into signed integer indices ``q`` and a *state* per index, the
state of a small finite-state machine (FSM) driven by the parity of the indices: the
dependent-quantization trellis (``ratedist.quant.tcq``) has 4 to 256 states, the scalar
quantizer one.  The magnitude ``|q|`` is range-coded (constriction) under an adaptive law
chosen by a context; the sign of each non-zero index is coded under an adaptive law chosen by
the sign of its left neighbour (neighbouring weights of a trained layer agree in sign 57–60 %
of the time on the embedded models, worth about 0.02 bit per weight).

Contexts.  A magnitude's context is the pair (FSM context of its state, neighbourhood class
``min(|q_{i−1}| + |q_{i−2}|, 4)`` of the two indices before it in the same chain) — the
left-neighbour context of CABAC.  Real weight tensors are not i.i.d.: a convolution kernel,
or a row of a linear layer, shares a scale, and on the digits CNN this context alone lowers
the empirical entropy of scalar-quantized weights by about a fifth (0.2 bit at 1 bit).

Adaptive laws.  Each context's law is a count vector that starts at :data:`PRIOR` per symbol
and grows by the symbols coded in it (encoder and decoder update the same counts in the same
order, chunk by chunk).  Nothing about the law is transmitted.  (Halving the counts to follow
changes along a tensor was measured and did not pay on the embedded models.)  Magnitudes 0..15 are symbols of their own; 16 is an escape followed by the
Elias-gamma exponent e of ``|q| − 15`` (adaptive, one law) and its e mantissa bits (raw).

Why chains.  Contexts depend on the indices before, so a decoder cannot know them in
advance, and decoding one symbol per constriction call would cost about a microsecond each.
The tensor is therefore cut into ``B`` chains of contiguous indices, each running its own
FSM from state 0 and its own neighbourhood, and the symbols are coded position-major:
position 0 of every chain, then position 1, ...; within a position, context 0's symbols
first (in chain order), then context 1's, and so on, then the escape exponents, then the
signs of the position's non-zero indices grouped by sign context.  The decoder
knows the contexts of all chains at a position before decoding it, so it decodes every
position with one constriction call per context and updates states and laws vectorized.

Payload (bytes)::

    varint n_words      length of the range-coded part in 32-bit words
    varint n_mantissa   number of raw escape mantissa bits
    n_words × u32       range-coded magnitudes, escape exponents and signs, in the coding order above
    packed mantissas    the escape mantissas, most significant bit first, in coding order
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..coding.entropy import bytes_to_words, decode_failure, words_to_bytes
from ..coding.varint import get_varint, put_varints
from ..errors import CorruptStreamError
from ..kernels._symbols_cpu import from_positions, position_commit, position_groups, sign_commit, to_positions

__all__ = ["StateMachine", "SCALAR_FSM", "chain_starts", "default_chains", "encode_indices", "decode_indices",
           "context_counts", "rate_table", "MAX_MAGNITUDE", "CHAIN_LENGTH"]

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


#: target chain length of :func:`default_chains`: the decoder's Python loop runs once per chain position
CHAIN_LENGTH = 256


def default_chains(n: int) -> int:
    """Number of chains for ``n`` indices: chains of about :data:`CHAIN_LENGTH` indices, or of 64 below
    2^14 indices (a small tensor would otherwise cost a decoder loop of 256 steps for a few chains)."""
    n = int(n)
    return max(1, n // (CHAIN_LENGTH if n >= 1 << 14 else 64))


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


#: escape symbol: magnitudes ≥ ESCAPE are coded as ESCAPE, an exponent and mantissa bits
ESCAPE = 16
#: neighbourhood classes min(|q_{i−1}| + |q_{i−2}|, N_NEIGHBOUR − 1)
N_NEIGHBOUR = 5
#: initial pseudo-count of every symbol of an adaptive law
PRIOR = 0.1
#: smallest chunk of symbols coded between two updates of a law
MIN_CHUNK = 1
#: a law is rebuilt when the symbols coded since its last build reach this fraction of its count total
REBUILD_FRACTION = 0.25
_N_EXP = 22                      # exponents 0..21 cover |q| up to 2^21 + 14 > MAX_MAGNITUDE


def _escape_parts(m: np.ndarray):
    """Exponent and mantissa of the escaped magnitudes m ≥ ESCAPE: m − ESCAPE + 1 = 2^e + mantissa."""
    r = m - ESCAPE + 1
    e = np.floor(np.log2(r.astype(np.float64))).astype(np.int64)
    e = e - (np.left_shift(1, e) > r) + (np.left_shift(1, e + 1) <= r)   # exact despite float log2
    return e, r - np.left_shift(1, e)


def _mantissa_bits(e: np.ndarray, man: np.ndarray) -> np.ndarray:
    """The e_j low bits of each man_j, most significant first, concatenated."""
    total = int(e.sum())
    first = np.repeat(np.cumsum(e) - e, e)
    shift = np.repeat(e, e) - 1 - (np.arange(total) - first)
    return (np.repeat(man, e) >> shift) & 1


def _mantissa_values(e: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """Inverse of :func:`_mantissa_bits`: the values of consecutive e_j-bit groups (0 for e_j = 0)."""
    out = np.zeros(e.shape[0], dtype=np.int64)
    nz = e > 0
    if bits.shape[0]:
        ez = e[nz]
        first = np.cumsum(ez) - ez
        shift = np.repeat(ez, ez) - 1 - (np.arange(bits.shape[0]) - np.repeat(first, ez))
        out[nz] = np.add.reduceat(bits << shift, first)
    return out


class _Laws:
    """The adaptive laws of every context (identical on both sides).

    Each law is a count vector (:data:`PRIOR` per symbol plus the symbols coded in it) and a
    constriction model built from it.  The model is rebuilt when the symbols coded since its
    last build reach a quarter of the count total it was built from (at least
    :data:`MIN_CHUNK`): the first symbols of a context do not all pay for the prior (a 1 %
    loss at 1 bit per weight otherwise, measured on 10⁶ Laplacian indices), and a law is
    rebuilt O(log n) times rather than at every chain position (the rebuilds were most of the
    decoder's time).  Counts of magnitudes and signs are added by the position kernels;
    a rebuild in the middle of a position adds the position's symbols coded so far.
    """

    def __init__(self, n_ctx: int):
        import constriction

        self._cat = constriction.stream.model.Categorical
        self.mag = np.full((n_ctx, ESCAPE + 1), PRIOR)
        self.exp = np.full((1, _N_EXP), PRIOR)
        self.sign = np.full((3, 2), PRIOR)
        self._state = {}

    def run(self, kind: str, c: int, coder, buf: np.ndarray, lo: int, hi: int, decoding: bool) -> None:
        """Code ``buf[lo:hi]`` (encoder) or decode into it (decoder) under law ``c`` of table ``kind``
        (``"mag"``, ``"exp"`` or ``"sign"``)."""
        table = getattr(self, kind)
        key = (kind, c)
        st = self._state.get(key)
        if st is None:
            st = self._state[key] = [self._build(table[c]), 0, MIN_CHUNK]
        a = lo
        while a < hi:
            t = min(hi - a, st[2] - st[1])
            if decoding:
                buf[a:a + t] = coder.decode(st[0], t)
            else:
                coder.encode(buf[a:a + t], st[0])
            st[1] += t
            a += t
            if st[1] >= st[2]:
                row = table[c] + np.bincount(buf[lo:a], minlength=table.shape[1])
                st[:] = [self._build(row), 0, max(MIN_CHUNK, int(row.sum() * REBUILD_FRACTION))]

    def _build(self, row: np.ndarray):
        return self._cat(row / row.sum(), perfect=False)


def _position_magnitudes(laws, coder, decoding, bounds, buf) -> None:
    """Code (or decode) the symbols ``buf`` of one position, grouped by context as ``bounds`` says."""
    for c in np.flatnonzero(bounds[1:] - bounds[:-1]).tolist():
        laws.run("mag", c, coder, buf, int(bounds[c]), int(bounds[c + 1]), decoding)


def _position_signs(laws, coder, decoding, sbounds, bits) -> None:
    """Code (or decode) the sign bits ``bits`` of one position's non-zero indices, grouped by sign class."""
    for c in range(3):
        if sbounds[c + 1] > sbounds[c]:
            laws.run("sign", c, coder, bits, int(sbounds[c]), int(sbounds[c + 1]), decoding)


def encode_indices(q: np.ndarray, states: np.ndarray, fsm: StateMachine, n_chains: int) -> bytes:
    """Code signed indices ``q`` whose FSM states are ``states`` (the state in which each index was chosen).

    ``states`` must be the trajectory of ``fsm`` driven by ``q`` along each chain of
    :func:`chain_starts` (``n``, ``n_chains``), starting from state 0; the caller guarantees it.
    """
    import constriction

    q = np.ascontiguousarray(q, dtype=np.int64)
    n = q.shape[0]
    mag = np.abs(q)
    if n and int(mag.max()) > MAX_MAGNITUDE:
        raise ValueError(f"index magnitude {int(mag.max())} exceeds the format's limit {MAX_MAGNITUDE}")
    enc = constriction.stream.queue.RangeEncoder()
    mantissas: list[np.ndarray] = []
    if n:
        starts = chain_starts(n, n_chains)
        lengths = np.diff(starts)
        b = starts.shape[0] - 1
        n_ctx = fsm.n_contexts * N_NEIGHBOUR
        laws = _Laws(n_ctx)
        short = int(lengths[-1])
        fctx_table = np.ascontiguousarray(fsm.context, dtype=np.int64)
        next_state = np.ascontiguousarray(fsm.next_state, dtype=np.int64)
        length = int(lengths[0])
        mag_t = to_positions(mag, starts, length)
        st_t = to_positions(np.ascontiguousarray(states, dtype=np.int64), starts, length)
        sgn_t = to_positions(np.sign(q), starts, length)
        scratch = np.empty_like(mag_t)                     # the commit kernel's stores (unused here)
        for i in range(length):
            active = b if i < short else int(np.count_nonzero(lengths > i))
            st = st_t[i, :active].copy()
            ctx, order, bounds = position_groups(mag_t, st, i, active, fctx_table, N_NEIGHBOUR, n_ctx)
            m = mag_t[i, :active]
            buf = np.minimum(m[order], ESCAPE).astype(np.int32)
            _position_magnitudes(laws, enc, False, bounds, buf)
            if int(buf.max()) == ESCAPE:
                esc = order[buf == ESCAPE]
                e, man = _escape_parts(m[esc])
                e32 = e.astype(np.int32)
                laws.run("exp", 0, enc, e32, 0, e32.shape[0], False)
                laws.exp[0] += np.bincount(e, minlength=_N_EXP)
                if int(e.sum()):
                    mantissas.append(_mantissa_bits(e, man))
            sorder, sbounds = position_commit(scratch, scratch, st, i, active, m, next_state, ctx,
                                              laws.mag, ESCAPE, sgn_t)
            if sorder.shape[0]:
                bits = (sgn_t[i, sorder] < 0).astype(np.int32)
                _position_signs(laws, enc, False, sbounds, bits)
                sign_commit(sgn_t, i, sorder, sbounds, bits.astype(np.int64), laws.sign)
    words = enc.get_compressed()
    mant = np.concatenate(mantissas).astype(bool) if mantissas else np.zeros(0, dtype=bool)
    return put_varints([words.shape[0], mant.shape[0]]) + words_to_bytes(words) + np.packbits(mant).tobytes()


def decode_indices(payload: bytes, n: int, fsm: StateMachine, n_chains: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_indices`: the signed indices and their states (both int64, length ``n``).

    Raises :class:`CorruptStreamError` on any payload that does not decode; allocations stay O(n).
    """
    import constriction

    buf_in = bytes(payload)
    n_words, pos = get_varint(buf_in, 0)
    n_mant, pos = get_varint(buf_in, pos)
    if pos + 4 * n_words + (n_mant + 7) // 8 > len(buf_in) or n_mant > 64 * max(n, 1):
        raise CorruptStreamError(f"index payload declares {n_words} words and {n_mant} mantissa bits but holds "
                                 f"{len(buf_in)} bytes; it is truncated or corrupted.")
    words = bytes_to_words(buf_in[pos:pos + 4 * n_words])
    rest = buf_in[pos + 4 * n_words:]
    q = np.zeros(n, dtype=np.int64)
    states = np.zeros(n, dtype=np.int64)
    mant_bits = np.unpackbits(np.frombuffer(rest[len(rest) - (n_mant + 7) // 8:], dtype=np.uint8),
                              count=n_mant).astype(np.int64) if n_mant else np.zeros(0, dtype=np.int64)
    mp = 0
    if n:
        starts = chain_starts(n, n_chains)
        lengths = np.diff(starts)
        b = starts.shape[0] - 1
        n_ctx = fsm.n_contexts * N_NEIGHBOUR
        laws = _Laws(n_ctx)
        dec = constriction.stream.queue.RangeDecoder(words)
        st = np.zeros(b, dtype=np.int64)
        short = int(lengths[-1])
        fctx_table = np.ascontiguousarray(fsm.context, dtype=np.int64)
        next_state = np.ascontiguousarray(fsm.next_state, dtype=np.int64)
        length = int(lengths[0])
        mag_t = np.zeros((length, b), dtype=np.int64)
        states_t = np.zeros((length, b), dtype=np.int64)
        sgn_t = np.zeros((length, b), dtype=np.int64)
        try:
            for i in range(length):
                active = b if i < short else int(np.count_nonzero(lengths > i))
                ctx, order, bounds = position_groups(mag_t, st, i, active, fctx_table, N_NEIGHBOUR, n_ctx)
                buf = np.empty(active, dtype=np.int64)
                _position_magnitudes(laws, dec, True, bounds, buf)
                m = np.empty(active, dtype=np.int64)
                m[order] = buf
                if int(buf.max()) == ESCAPE:
                    esc = order[buf == ESCAPE]
                    e = np.empty(esc.shape[0], dtype=np.int64)
                    laws.run("exp", 0, dec, e, 0, e.shape[0], True)
                    laws.exp[0] += np.bincount(e, minlength=_N_EXP)
                    total = int(e.sum())
                    if mp + total > n_mant:
                        raise CorruptStreamError("index payload needs more escape mantissa bits than it holds.")
                    m[esc] = np.left_shift(1, e) + _mantissa_values(e, mant_bits[mp:mp + total]) + ESCAPE - 1
                    mp += total
                    if int(m[esc].max()) > MAX_MAGNITUDE:
                        raise CorruptStreamError(f"index payload decodes a magnitude above {MAX_MAGNITUDE}.")
                sorder, sbounds = position_commit(mag_t, states_t, st, i, active, m, next_state, ctx,
                                                  laws.mag, ESCAPE, sgn_t)
                if sorder.shape[0]:
                    bits = np.empty(sorder.shape[0], dtype=np.int64)
                    _position_signs(laws, dec, True, sbounds, bits)
                    sign_commit(sgn_t, i, sorder, sbounds, bits, laws.sign)
        except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
            raise decode_failure(exc, "index payload") from None
    if mp != n_mant or len(rest) != (n_mant + 7) // 8:
        raise CorruptStreamError(f"index payload's sizes disagree with what it decodes ({mp} of {n_mant} "
                                 f"mantissa bits, {len(rest)} trailing bytes); it is corrupted.")
    if n:
        q = from_positions(mag_t * sgn_t, starts)
        states = from_positions(states_t, starts)
    return q, states
