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

from ..coding.entropy import bytes_to_words, words_to_bytes
from ..coding.varint import get_varint, put_varints
from ..errors import CorruptStreamError
from ..kernels._symbols_cpu import position_commit, position_groups

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
MIN_CHUNK = 16
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

    A context's symbols at one position are coded in chunks, and the law is updated after
    each chunk, so that the first symbols of a context do not all pay for the prior: chunks
    hold at most max(:data:`MIN_CHUNK`, total count / 4) symbols (a 1 % loss at 1 bit per
    weight otherwise, measured on 10⁶ Laplacian indices).
    """

    def __init__(self, n_ctx: int):
        import constriction

        self._cat = constriction.stream.model.Categorical
        self.mag = np.full((n_ctx, ESCAPE + 1), PRIOR)
        self.exp = np.full(_N_EXP, PRIOR)
        self.sign = np.full((3, 2), PRIOR)

    def model(self, row: np.ndarray):
        return self._cat(row / row.sum(), perfect=False)

    @staticmethod
    def chunks(row: np.ndarray, lo: int, hi: int):
        """(start, end) of the chunks of ``lo..hi``; reads the row's total as it grows (call lazily)."""
        a = lo
        while a < hi:
            z = min(hi, a + max(MIN_CHUNK, int(row.sum() / 4)))
            yield a, z
            a = z


def _code_signs(laws, pos: int, f: np.ndarray, sgn: np.ndarray, code, neg) -> None:
    """Code (or decode) the signs of the non-zero indices ``f`` at chain position ``pos``.

    The context is the sign of the left neighbour in the chain (none or zero, +, −); each context
    has an adaptive two-symbol law.  ``code(law, k, symbols)`` encodes ``symbols`` (encoder, ``neg``
    given) or decodes ``k`` of them into ``sgn[f]`` (decoder, ``neg`` None, returns the 0/1 array).
    """
    left = sgn[f - 1] if pos >= 1 else np.zeros(f.shape[0], dtype=np.int64)
    cls = np.where(left > 0, 1, np.where(left < 0, 2, 0))
    for c in range(3):
        sel = f[cls == c]
        if not sel.shape[0]:
            continue
        row = laws.sign[c]
        for a, z in laws.chunks(row, 0, sel.shape[0]):
            part = sel[a:z]
            if neg is not None:
                bits = neg[part]
                code(laws.model(row), z - a, bits)
            else:
                bits = code(laws.model(row), z - a, part)
            row += np.bincount(bits, minlength=2)


def _decode_into(dec, sgn):
    def decode(law, k, part):
        bits = np.asarray(dec.decode(law, k), dtype=np.int64)
        sgn[part] = 1 - 2 * bits
        return bits
    return decode


def _neighbour(mag: np.ndarray, idx: np.ndarray, pos: int) -> np.ndarray:
    """Neighbourhood class of the indices ``idx`` at chain position ``pos`` (earlier positions decoded)."""
    if pos == 0:
        return np.zeros(idx.shape[0], dtype=np.int64)
    s = mag[idx - 1]
    if pos >= 2:
        s = s + mag[idx - 2]
    return np.minimum(s, N_NEIGHBOUR - 1)


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
        st_all = np.ascontiguousarray(states, dtype=np.int64)
        neg = (q < 0).astype(np.int32)
        sgn = np.sign(q)
        for i in range(int(lengths[0])):
            active = b if i < short else int(np.count_nonzero(lengths > i))
            idx = starts[:active] + i
            ctx, order, bounds = position_groups(mag, st_all[idx], starts, i, active, fctx_table, N_NEIGHBOUR, n_ctx)
            m = mag[idx]
            sym = np.minimum(m, ESCAPE)
            for c in np.flatnonzero(np.diff(bounds)).tolist():
                row = laws.mag[c]
                for a, z in laws.chunks(row, int(bounds[c]), int(bounds[c + 1])):
                    chunk = sym[order[a:z]]
                    enc.encode(chunk.astype(np.int32), laws.model(row))
                    row += np.bincount(chunk, minlength=ESCAPE + 1)
            esc = order[sym[order] == ESCAPE]
            if esc.shape[0]:
                e, man = _escape_parts(m[esc])
                for a, z in laws.chunks(laws.exp, 0, esc.shape[0]):
                    enc.encode(e[a:z].astype(np.int32), laws.model(laws.exp))
                    laws.exp += np.bincount(e[a:z], minlength=_N_EXP)
                if int(e.sum()):
                    mantissas.append(_mantissa_bits(e, man))
            nzc = np.flatnonzero(m)
            if nzc.shape[0]:
                _code_signs(laws, i, idx[nzc], sgn, lambda law, k, sel: enc.encode(sel, law), neg)
    words = enc.get_compressed()
    mant = np.concatenate(mantissas).astype(bool) if mantissas else np.zeros(0, dtype=bool)
    return put_varints([words.shape[0], mant.shape[0]]) + words_to_bytes(words) + np.packbits(mant).tobytes()


def decode_indices(payload: bytes, n: int, fsm: StateMachine, n_chains: int) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of :func:`encode_indices`: the signed indices and their states (both int64, length ``n``).

    Raises :class:`CorruptStreamError` on any payload that does not decode; allocations stay O(n).
    """
    import constriction

    buf = bytes(payload)
    n_words, pos = get_varint(buf, 0)
    n_mant, pos = get_varint(buf, pos)
    if pos + 4 * n_words + (n_mant + 7) // 8 > len(buf) or n_mant > 64 * max(n, 1):
        raise CorruptStreamError(f"index payload declares {n_words} words and {n_mant} mantissa bits but holds "
                                 f"{len(buf)} bytes; it is truncated or corrupted.")
    words = bytes_to_words(buf[pos:pos + 4 * n_words])
    rest = buf[pos + 4 * n_words:]
    mag = np.zeros(n, dtype=np.int64)
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
        sgn = np.zeros(n, dtype=np.int64)
        try:
            for i in range(int(lengths[0])):
                active = b if i < short else int(np.count_nonzero(lengths > i))
                ctx, order, bounds = position_groups(mag, st, starts, i, active, fctx_table, N_NEIGHBOUR, n_ctx)
                sym = np.empty(active, dtype=np.int64)
                for c in np.flatnonzero(np.diff(bounds)).tolist():
                    row = laws.mag[c]
                    for a, z in laws.chunks(row, int(bounds[c]), int(bounds[c + 1])):
                        chunk = np.asarray(dec.decode(laws.model(row), z - a), dtype=np.int64)
                        sym[order[a:z]] = chunk
                        row += np.bincount(chunk, minlength=ESCAPE + 1)
                m = sym
                esc = order[sym[order] == ESCAPE]
                if esc.shape[0]:
                    m = sym.copy()
                    e = np.empty(esc.shape[0], dtype=np.int64)
                    for a, z in laws.chunks(laws.exp, 0, esc.shape[0]):
                        e[a:z] = dec.decode(laws.model(laws.exp), z - a)
                        laws.exp += np.bincount(e[a:z], minlength=_N_EXP)
                    total = int(e.sum())
                    if mp + total > n_mant:
                        raise CorruptStreamError("index payload needs more escape mantissa bits than it holds.")
                    m[esc] = np.left_shift(1, e) + _mantissa_values(e, mant_bits[mp:mp + total]) + ESCAPE - 1
                    mp += total
                    if int(m[esc].max()) > MAX_MAGNITUDE:
                        raise CorruptStreamError(f"index payload decodes a magnitude above {MAX_MAGNITUDE}.")
                position_commit(mag, states, st, starts, i, active, m, next_state)
                nzc = np.flatnonzero(m)
                if nzc.shape[0]:
                    _code_signs(laws, i, starts[:active][nzc] + i, sgn, _decode_into(dec, sgn), None)
        except CorruptStreamError:
            raise
        except BaseException as exc:  # constriction raises (or panics) on data that does not decode
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                raise
            raise CorruptStreamError(f"index payload does not decode: {exc}") from None
    if mp != n_mant or len(rest) != (n_mant + 7) // 8:
        raise CorruptStreamError(f"index payload's sizes disagree with what it decodes ({mp} of {n_mant} "
                                 f"mantissa bits, {len(rest)} trailing bytes); it is corrupted.")
    q = mag
    if n:
        q[sgn < 0] *= -1
    return q, states
