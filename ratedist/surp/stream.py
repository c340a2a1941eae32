"""Bytes of the sequential SuRP stream: entropy coding (constriction) of positions, signs and refreshes.

Container header: see :mod:`ratedist.surp.decoder`.  One segment per checkpoint
interval; segment k holds iterations ``[it_{k-1}, it_k)``::

    preamble  "<QQQIII": n_iter, n_signs, n_events, bytes of positions, signs, refreshes
    positions constriction range-coded j_t (block parameters, symbols, low bits; below)
    signs     one Bernoulli(1/2) bit per index that becomes non-zero (1 = negative)
    refreshes adaptive integer codes of (iteration gap − 1, retry count − 1) per refresh event

Integer code (Elias-gamma-like): v ≥ 0, w = v + 1; w < 8 is the symbol
w − 1; otherwise e = ⌊log2 w⌋ and the symbol is 7 + 4(e − 3) + (the two bits
after the leading one), followed by the e − 2 remaining low bits coded
uniformly (chunks of at most 16 bits).

Positions (the decoder cannot know |E_t|): iterations are cut into blocks (at
most 512 iterations, a new block at every refresh event, where |E| jumps);
each block sends q = round(8 log2 mean(j + 1)) (adaptively coded deltas) and
its symbols are coded under the Geometric(2**(−q/8)) law, which is the shape of
j_t (docs/theory.md §4c).  Refresh gaps and counts use a categorical model whose
counts both sides update after every block of symbols (blocks of 64, 64, 128,
… up to 4096 symbols; counts decay by ``_RHO`` per block).
"""

from __future__ import annotations

import math
import struct
import time

import numpy as np

from ..coding.container import pack_container
from ..coding.entropy import bytes_to_words, decode_bernoulli, decode_failure, encode_bernoulli, words_to_bytes
from ..coding.header import read_float, read_int
from ..errors import CorruptStreamError
from .report import SurpCheckpoint, SurpReport, geometric_entropy_bits, laplace_lam_hat, rd_bits_per_param

__all__ = ["AdaptiveIntegerCode", "PositionCode", "geometric_symbol_probs", "build_sequential_stream", "decode_sequential", "integer_symbols"]

_PRE = struct.Struct("<QQQIII")
_EMAX = 40  # integers below 2**40 (low-bit chunks then stay below constriction's 2**24 limit)
_K = 7 + 4 * (_EMAX - 2)  # alphabet of the adaptive symbol
_RHO = 0.5 ** (1 / 4)  # count decay per block (half-life 4 blocks)
_PRIOR = 0.05
_MAX_BLOCK = 4096
_CHUNK = 16
_CONTAINER_PRE = 12 + 4  # container preamble + header CRC
_SEG_FRAME = 8  # length + CRC per segment


def _constriction():
    import constriction

    return constriction


def integer_symbols(v: np.ndarray):
    """Split non-negative integers into (symbol, number of low bits, low bits)."""
    w = np.asarray(v, dtype=np.int64) + 1
    e = np.zeros(w.shape, dtype=np.int64)
    big = w >= 8
    if np.any(big):
        wb = w[big]
        eb = np.floor(np.log2(wb.astype(np.float64))).astype(np.int64)
        eb -= (np.left_shift(np.int64(1), eb) > wb).astype(np.int64)
        eb += (np.left_shift(np.int64(1), eb + 1) <= wb).astype(np.int64)
        e[big] = eb
    sym = np.where(big, 7 + 4 * (e - 3) + ((w >> np.maximum(e - 2, 0)) & 3), w - 1)
    nlow = np.where(big, e - 2, 0)
    low = w & ((np.left_shift(np.int64(1), nlow)) - 1)
    return sym.astype(np.int32), nlow, low


def _symbols_to_values(sym: np.ndarray, nlow_only=False):
    sym = sym.astype(np.int64)
    big = sym >= 7
    e = np.where(big, (sym - 7) // 4 + 3, 0)
    nlow = np.where(big, e - 2, 0)
    return e, nlow


def _chunks(nlow: np.ndarray, low: np.ndarray):
    """Low bits as uniform symbols of at most 16 bits: (values, sizes) in coding order."""
    hi_bits = np.maximum(nlow - _CHUNK, 0)
    lo_bits = np.minimum(nlow, _CHUNK)
    has_hi = hi_bits > 0
    has_lo = lo_bits > 0
    n_chunks = has_hi.astype(np.int64) + has_lo
    pos = np.cumsum(n_chunks) - n_chunks
    total = int(n_chunks.sum())
    vals = np.empty(total, dtype=np.int32)
    sizes = np.empty(total, dtype=np.int32)
    ih = pos[has_hi]
    vals[ih] = (low[has_hi] >> _CHUNK).astype(np.int32)
    sizes[ih] = (np.left_shift(np.int64(1), hi_bits[has_hi])).astype(np.int32)
    il = pos[has_lo] + has_hi[has_lo]
    vals[il] = (low[has_lo] & ((np.left_shift(np.int64(1), lo_bits[has_lo])) - 1)).astype(np.int32)
    sizes[il] = (np.left_shift(np.int64(1), lo_bits[has_lo])).astype(np.int32)
    return vals, sizes


def _int_code(values: np.ndarray):
    """Integer-code symbols and low-bit chunks (values, alphabet sizes) of non-negative integers (numba)."""
    from ..kernels import _surp_cpu as K

    v = np.ascontiguousarray(values, dtype=np.int64)
    sym = np.empty(v.size, dtype=np.int32)
    nlow = np.empty(v.size, dtype=np.int64)
    low = np.empty(v.size, dtype=np.int64)
    nch = K.integer_symbols_run(v, sym, nlow, low)
    vals = np.empty(nch, dtype=np.int32)
    sizes = np.empty(nch, dtype=np.int32)
    K.chunks_run(nlow, low, vals, sizes)
    return sym, vals, sizes


def _chunk_sizes(sym: np.ndarray) -> np.ndarray:
    from ..kernels import _surp_cpu as K

    sizes = np.empty(2 * sym.size, dtype=np.int32)
    return sizes[:K.chunk_sizes_run(sym, sizes)]


def _assemble_fast(sym: np.ndarray, chunks: np.ndarray) -> np.ndarray:
    from ..kernels import _surp_cpu as K

    out = np.empty(sym.size, dtype=np.int64)
    if K.assemble_run(sym, np.ascontiguousarray(chunks, dtype=np.int64), out) != chunks.size:
        raise CorruptStreamError("low-bit chunks disagree with the decoded symbols; the stream is corrupted.")
    return out


class AdaptiveIntegerCode:
    """Block-adaptive categorical model of the integer-code symbols; identical state on both sides."""

    def __init__(self):
        self.counts = np.full(_K, _PRIOR, dtype=np.float64)
        self.hist = np.zeros(_K, dtype=np.int64)
        self.seen = 0
        self.block_start = 0
        self.block_size = 64

    def _blocks(self, count):
        """Yield (lo, hi) ranges of the next ``count`` symbols split at block boundaries, updating the model."""
        done = 0
        while done < count:
            end = self.block_start + self.block_size
            take = min(count - done, end - self.seen)
            yield done, done + take
            done += take

    def _after(self, syms):
        self.hist += np.bincount(syms, minlength=_K)[:_K]
        self.seen += syms.size
        if self.seen == self.block_start + self.block_size:
            self.counts = self.counts * _RHO + self.hist
            self.hist[:] = 0
            self.block_start = self.seen
            self.block_size = min(2 * self.block_size if self.seen >= 128 else 64, _MAX_BLOCK)

    def _model(self):
        return _constriction().stream.model.Categorical(self.counts, perfect=False)

    def encode(self, values: np.ndarray, enc) -> None:
        if values.size and (values.min() < 0 or values.max() >= 2**_EMAX - 1):
            raise AssertionError("integer outside the adaptive code's range")
        sym, vals, sizes = _int_code(values)
        for lo, hi in self._blocks(sym.size):
            part = np.ascontiguousarray(sym[lo:hi])
            enc.encode(part, self._model())
            self._after(part)
        if vals.size:
            enc.encode(vals, _constriction().stream.model.Uniform(), sizes)

    def decode(self, count: int, dec) -> np.ndarray:
        sym = np.empty(count, dtype=np.int32)
        try:
            for lo, hi in self._blocks(count):
                part = np.asarray(dec.decode(self._model(), hi - lo), dtype=np.int32)
                sym[lo:hi] = part
                self._after(part)
            if sym.size and (sym.min() < 0 or sym.max() >= _K):  # sym < _K means e <= _EMAX
                raise CorruptStreamError("a decoded integer is out of range; the stream is corrupted.")
            sizes = _chunk_sizes(sym)
            chunks = np.asarray(dec.decode(_constriction().stream.model.Uniform(), sizes), dtype=np.int64) \
                if sizes.size else np.zeros(0, dtype=np.int64)
        except CorruptStreamError:
            raise
        except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
            raise decode_failure(exc, "entropy-coded payload") from None
        return _assemble_fast(sym, chunks)


_BLK = 512  # iterations per position block (blocks also start at every refresh event)
_QS = 8  # the block's geometric parameter is p = 2**(-q/_QS)
_QMAX = 8 * 40
_GEOM_CACHE: dict = {}


def _alphabet(domain: int) -> int:
    """Number of symbols needed for w = j + 1 ≤ domain."""
    e = max(int(domain).bit_length() - 1, 2)
    return 7 + 4 * (e - 2)


def geometric_symbol_probs(q: int, k: int) -> np.ndarray:
    """Masses of the k integer-code symbols under w ~ Geometric(p = 2**(-q/8)) on {1, 2, ...}."""
    key = (q, k)
    if key not in _GEOM_CACHE:
        p = min(2.0 ** (-q / _QS), 1.0 - 1e-12)
        s = np.arange(k, dtype=np.int64)
        e = np.where(s >= 7, (s - 7) // 4 + 3, 0)
        lo = np.where(s >= 7, (np.left_shift(np.int64(1), e)) + ((s - 7) % 4) * np.left_shift(np.int64(1), np.maximum(e - 2, 0)), s + 1)
        hi = np.where(s >= 7, lo + np.left_shift(np.int64(1), np.maximum(e - 2, 0)), s + 2)
        lg = math.log1p(-p)
        mass = np.exp((lo - 1) * lg) - np.exp((hi - 1) * lg)
        _GEOM_CACHE[key] = np.maximum(mass, 0.0)
    return _GEOM_CACHE[key]


def _blocks(t0: int, t1: int, ev_t: np.ndarray) -> np.ndarray:
    """Block starts in [t0, t1): multiples of _BLK and refresh-event iterations; returns starts + [t1]."""
    if t1 <= t0:
        return np.array([t0], dtype=np.int64)
    grid = np.arange((t0 + _BLK - 1) // _BLK * _BLK, t1, _BLK, dtype=np.int64)
    starts = np.union1d(np.concatenate([[t0], grid, ev_t[(ev_t >= t0) & (ev_t < t1)]]), [])
    return np.concatenate([starts.astype(np.int64), [t1]])


class PositionCode:
    """Positions j_t: per block a quantized geometric parameter (forward-adaptive side information,
    coded as adaptive deltas), then the block's integer-code symbols under that geometric law and
    the low bits uniformly.  Both sides keep the same state across segments."""

    def __init__(self, domain: int):
        self.k = _alphabet(domain)
        self.q_code = AdaptiveIntegerCode()
        self.q_prev = 0

    def encode(self, j: np.ndarray, t0: int, ev_t: np.ndarray, enc) -> None:
        bounds = _blocks(t0, t0 + j.size, ev_t)
        qs = []
        if j.size:
            # block means: exact integer sums (j < 2**31, blocks of at most _BLK) / counts, which is
            # bit for bit np.mean(j[lo:hi]) (its float64 sum of these integers is exact too)
            sums = np.add.reduceat(np.asarray(j, dtype=np.int64), bounds[:-1] - t0).tolist()
            cnts = np.diff(bounds).tolist()
            for sm, ct in zip(sums, cnts):
                mean_w = float(np.float64(sm) / np.float64(ct)) + 1.0
                qs.append(min(max(int(round(_QS * math.log2(mean_w))), 0), _QMAX))
        qs = np.asarray(qs, dtype=np.int64)
        deltas = np.diff(np.concatenate([[self.q_prev], qs]))
        self.q_code.encode(np.where(deltas >= 0, 2 * deltas, -2 * deltas - 1), enc)
        if qs.size:
            self.q_prev = int(qs[-1])
        sym, vals, sizes = _int_code(j)
        if sym.size and sym.max() >= self.k:
            raise AssertionError("position outside the permutation domain")
        model = _constriction().stream.model
        for (lo, hi), q in zip(zip(bounds[:-1], bounds[1:]), qs):
            if hi > lo:
                enc.encode(np.ascontiguousarray(sym[lo - t0:hi - t0]),
                           model.Categorical(geometric_symbol_probs(int(q), self.k), perfect=False))
        if vals.size:
            enc.encode(vals, model.Uniform(), sizes)

    def decode(self, count: int, t0: int, ev_t: np.ndarray, dec) -> np.ndarray:
        bounds = _blocks(t0, t0 + count, ev_t)
        nb = bounds.size - 1
        zz = self.q_code.decode(nb, dec) if nb else np.zeros(0, np.int64)
        deltas = np.where(zz % 2 == 0, zz // 2, -(zz + 1) // 2)
        qs = self.q_prev + np.cumsum(deltas)
        if qs.size and (qs.min() < 0 or qs.max() > _QMAX):
            raise CorruptStreamError("a position block declares an impossible parameter; the stream is corrupted.")
        if qs.size:
            self.q_prev = int(qs[-1])
        model = _constriction().stream.model
        sym = np.empty(count, dtype=np.int32)
        try:
            for (lo, hi), q in zip(zip(bounds[:-1], bounds[1:]), qs):
                if hi > lo:
                    sym[lo - t0:hi - t0] = dec.decode(
                        model.Categorical(geometric_symbol_probs(int(q), self.k), perfect=False), int(hi - lo))
            if sym.size and (sym.min() < 0 or sym.max() >= self.k):
                raise CorruptStreamError("a decoded position symbol is out of range; the stream is corrupted.")
            sizes = _chunk_sizes(sym)
            chunks = np.asarray(dec.decode(model.Uniform(), sizes), dtype=np.int64) if sizes.size \
                else np.zeros(0, dtype=np.int64)
        except CorruptStreamError:
            raise
        except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
            raise decode_failure(exc, "position payload") from None
        return _assemble_fast(sym, chunks)


def _assemble(sym, e, nlow, chunks):
    count = sym.size
    hi_bits = np.maximum(nlow - _CHUNK, 0)
    lo_bits = np.minimum(nlow, _CHUNK)
    has_hi, has_lo = hi_bits > 0, lo_bits > 0
    n_chunks = has_hi.astype(np.int64) + has_lo
    pos = np.cumsum(n_chunks) - n_chunks
    low = np.zeros(count, dtype=np.int64)
    low[has_hi] = chunks[pos[has_hi]] << _CHUNK
    low[has_lo] |= chunks[pos[has_lo] + has_hi[has_lo]]
    s64 = sym.astype(np.int64)
    w = np.where(s64 >= 7, (np.left_shift(np.int64(1), e)) | (((s64 - 7) & 3) << np.maximum(e - 2, 0)) | low, s64 + 1)
    return w - 1


def _range_encoder():
    return _constriction().stream.queue.RangeEncoder()


def _range_decoder(data: bytes):
    return _constriction().stream.queue.RangeDecoder(bytes_to_words(data))


def _segments(trace, bounds):
    """Yield the per-segment slices of a trace: (iterations, sign slice, event slice)."""
    prev_t, prev_nnz = 0, 0
    for (t_k, nnz_k, _s) in bounds:
        ev_lo = int(np.searchsorted(trace.ev_t, prev_t, side="left"))
        ev_hi = int(np.searchsorted(trace.ev_t, t_k, side="left"))
        yield slice(prev_t, t_k), slice(prev_nnz, nnz_k), slice(ev_lo, ev_hi)
        prev_t, prev_nnz = t_k, nnz_k


def build_sequential_stream(flat, p, trace, targets, *, seconds_start=None, lam_hat=None):
    """Entropy-code a sequential trace into container bytes and build its :class:`SurpReport`."""
    t0 = seconds_start if seconds_start is not None else time.perf_counter()
    n = flat.n
    new_idx = trace.m[trace.new]
    sign_bits = (flat.signs[new_idx] < 0).astype(np.int32)
    from ._randomness import next_prime

    pos_code = PositionCode(next_prime(n))
    gap_code, cnt_code = AdaptiveIntegerCode(), AdaptiveIntegerCode()
    last_ev = -1
    payloads, parts = [], []
    for it_sl, sg_sl, ev_sl in _segments(trace, trace.checkpoints):
        enc = _range_encoder()
        pos_code.encode(trace.j[it_sl], it_sl.start, trace.ev_t[ev_sl], enc)
        pos_bytes = words_to_bytes(enc.get_compressed())
        sign_bytes = encode_bernoulli(sign_bits[sg_sl], 0.5)
        ev_t = trace.ev_t[ev_sl]
        gaps = np.diff(np.concatenate([[last_ev], ev_t])) - 1
        if ev_t.size:
            last_ev = int(ev_t[-1])
        enc = _range_encoder()
        gap_code.encode(gaps, enc)
        cnt_code.encode(trace.ev_c[ev_sl] - 1, enc)
        ev_bytes = words_to_bytes(enc.get_compressed())
        pre = _PRE.pack(it_sl.stop - it_sl.start, sg_sl.stop - sg_sl.start, ev_t.size,
                        len(pos_bytes), len(sign_bytes), len(ev_bytes))
        payloads.append(pre + pos_bytes + sign_bytes + ev_bytes)
        parts.append({"positions": 8 * len(pos_bytes), "signs": 8 * len(sign_bytes), "refreshes": 8 * len(ev_bytes),
                      "framing": 8 * (_PRE.size + _SEG_FRAME)})
    # per-iteration paper-style estimate, cumulative
    cp_its = [t_k for (t_k, _, _) in trace.checkpoints]
    est_cum = {}
    acc, prev = 0.0, 0
    for t_k in sorted(set(cp_its)):  # summed per segment, without an n-long temporary
        acc += float(np.sum(geometric_entropy_bits(trace.esize[prev:t_k] / n))) if t_k > prev else 0.0
        est_cum[t_k], prev = acc, t_k
    lam_hat = laplace_lam_hat(flat.magnitudes) if lam_hat is None else lam_hat
    slices = flat.slices
    tensor_of_new = np.searchsorted(np.array([s.stop for s in slices]), new_idx, side="right")
    cps_header = []
    for k, (target, (t_k, nnz_k, s_k)) in enumerate(zip(targets, trace.checkpoints)):
        cps_header.append({"target": float(target), "sparsity": 1.0 - nnz_k / n, "iteration": int(t_k),
                           "nnz": int(nnz_k), "segment": k + 1, "n_bytes": 0, "n_bits": 0})
    header = {"format": "surp", "algorithm": "sequential", "tensors": [dict(t) for t in flat.table],
              "normalize": flat.normalize, "params": p.to_header(), "seed": p.seed, "n_params": n,
              "checkpoints": cps_header}
    # the header holds the prefix sizes, which depend on the header's own length: iterate to a fixed point
    for _ in range(8):
        blob = pack_container(header, payloads)
        hdr_len = int.from_bytes(blob[8:12], "little")
        pos = _CONTAINER_PRE + hdr_len
        changed = False
        for k, cp in enumerate(cps_header):
            pos += _SEG_FRAME + len(payloads[k])
            if cp["n_bytes"] != pos:
                cp["n_bytes"], cp["n_bits"], changed = pos, 8 * pos, True
        if not changed:
            break
    header_bits = 8 * (_CONTAINER_PRE + hdr_len)
    checkpoints = []
    cum = {"positions": 0, "signs": 0, "refreshes": 0, "framing": 0}
    for k, cp in enumerate(cps_header):
        for key in cum:
            cum[key] += parts[k][key]
        t_k, nnz_k, s_k = trace.checkpoints[k]
        bits = {"header": header_bits, **cum}
        assert sum(bits.values()) == cp["n_bits"]
        pos_est = est_cum[t_k]
        bits["positions_estimate"] = pos_est
        ideal = pos_est + header_bits + cum["signs"] + cum["refreshes"] + cum["framing"]
        dist = max(s_k, 0.0) / n
        rd = rd_bits_per_param(dist, lam_hat)
        per_tensor = {}
        counts = np.bincount(tensor_of_new[:nnz_k], minlength=len(slices))
        for ti, tinfo in enumerate(flat.table):
            per_tensor[tinfo["name"]] = 1.0 - counts[ti] / tinfo["size"] if tinfo["size"] else 1.0
        bpp = cp["n_bits"] / n
        checkpoints.append(SurpCheckpoint(
            target=cp["target"], sparsity=cp["sparsity"], sparsity_per_tensor=per_tensor, iteration=t_k,
            n_bits=cp["n_bits"], bpp=bpp, ideal_bpp=ideal / n, distortion=dist, rd_bpp=rd, gap_bpp=bpp - rd,
            bits=bits, segment=cp["segment"], n_bytes=cp["n_bytes"]))
    last = checkpoints[-1]
    n_bits = 8 * len(blob)
    extra = {"iterations": int(trace.final[0]) if trace.final else last.iteration,
             "refresh_events": int(trace.ev_t.size), "refreshes": int(trace.ev_c.sum()),
             "lam_hat": lam_hat, "status": trace.status, "seed": p.seed,
             "positions_bits": last.bits["positions"], "positions_estimate_bits": last.bits["positions_estimate"]}
    report = SurpReport(algorithm="sequential", n_params=n, n_bits=n_bits, bpp=n_bits / n, ideal_bpp=last.ideal_bpp,
                        seconds=time.perf_counter() - t0, checkpoints=tuple(checkpoints), extra=extra)
    return blob, report


def _num(params, key, *, kind=float, positive=True):
    """A finite non-negative (``positive``: > 0) number of ``params``; CorruptStreamError naming the field."""
    if kind is int:
        return read_int(params, key, lo=1 if positive else 0, hi=2**63 - 1, path="params")
    return read_float(params, key, lo=0.0, lo_open=positive, path="params")


def decode_sequential(header: dict, segments, checkpoint_index: int) -> np.ndarray:
    """Replay a sequential stream up to checkpoint ``checkpoint_index``; return û (signed, float64)."""
    from ..kernels import _surp_cpu as K
    from ._randomness import Permutations
    from ._sequential import MAX_RETRIES, max_iterations_for
    from ._sequential import stride_tables as _strides

    n = header["n_params"]
    prm = header["params"]
    sf, decay = _num(prm, "sf"), _num(prm, "decay", positive=False)
    alpha_eff0, lam0 = _num(prm, "alpha_eff0"), _num(prm, "lam_inv0", positive=False)
    s0, n_active = _num(prm, "s0", positive=False), _num(prm, "n_active", kind=int)
    every, factor = _num(prm, "refresh_every", kind=int), _num(prm, "refresh_factor")
    seed = header.get("seed")
    if not isinstance(seed, int) or not 0 <= seed < 2**63 or decay >= 1 or factor >= 1 or n_active > n:
        raise CorruptStreamError("stream header has invalid sequential SuRP parameters.")
    cps = header["checkpoints"]
    cap = max_iterations_for(n)
    if not isinstance(header.get("seed"), int) or not 0 <= header["seed"] < 2**63:
        raise CorruptStreamError("stream header has an invalid `seed`.")
    perms = Permutations(n, seed)
    domain = perms.prime
    js, signs, evt, evc = [], [], [], []
    pos_code = PositionCode(domain)
    gap_code, cnt_code = AdaptiveIntegerCode(), AdaptiveIntegerCode()
    prev_it, prev_nnz, last_ev = 0, 0, -1
    for k in range(checkpoint_index + 1):
        it_k, nnz_k = cps[k].get("iteration"), cps[k].get("nnz")
        if not isinstance(nnz_k, int) or not prev_nnz <= nnz_k <= n or not prev_it <= it_k <= cap:
            raise CorruptStreamError(f"checkpoint {k} declares an impossible iteration or non-zero count.")
        if cps[k]["segment"] != k + 1:
            raise CorruptStreamError(f"checkpoint {k} of a sequential stream must end at segment {k + 1}.")
        seg = segments[k]
        if len(seg) < _PRE.size:
            raise CorruptStreamError(f"segment {k} is shorter than its preamble.")
        n_it, n_sg, n_ev, lp, ls, le = _PRE.unpack_from(seg, 0)
        if n_it != it_k - prev_it or n_sg != nnz_k - prev_nnz or n_ev > n_it or _PRE.size + lp + ls + le != len(seg):
            raise CorruptStreamError(f"segment {k} declares counts or sizes that disagree with the header.")
        o = _PRE.size
        pos_b, sign_b, ev_b = seg[o:o + lp], seg[o + lp:o + lp + ls], seg[o + lp + ls:]
        signs.append(decode_bernoulli(sign_b, 0.5, n_sg).astype(np.uint8))
        dec = _range_decoder(ev_b) if n_ev else None
        gaps = gap_code.decode(n_ev, dec) if n_ev else np.zeros(0, np.int64)
        cnts = cnt_code.decode(n_ev, dec) + 1 if n_ev else np.zeros(0, np.int64)
        ev_t = np.zeros(0, np.int64)
        if n_ev:
            if gaps.max() > cap or cnts.max() > MAX_RETRIES:
                raise CorruptStreamError(f"segment {k}: a refresh event is out of range.")
            ev_t = last_ev + np.cumsum(gaps + 1)
            if ev_t[0] < prev_it or ev_t[-1] >= it_k:
                raise CorruptStreamError(f"segment {k}: a refresh event lies outside the segment's iterations.")
            last_ev = int(ev_t[-1])
            evt.append(ev_t)
            evc.append(cnts)
        j = pos_code.decode(n_it, prev_it, ev_t, _range_decoder(pos_b)) if n_it else np.zeros(0, np.int64)
        if j.size and (j.min() < 0 or j.max() >= domain):
            raise CorruptStreamError(f"segment {k}: a decoded position is outside [0, {domain}).")
        js.append(j)
        prev_it, prev_nnz = it_k, nnz_k
    j = np.concatenate(js).astype(np.int64)
    sbits = np.concatenate(signs).astype(np.uint8)
    ev_t = np.concatenate(evt).astype(np.int64) if evt else np.zeros(0, np.int64)
    ev_c = np.concatenate(evc).astype(np.int64) if evc else np.zeros(0, np.int64)
    ahat = np.zeros(n, dtype=np.float64)
    sgn = np.zeros(n, dtype=np.int8)
    st_f = np.array([lam0, alpha_eff0, s0], dtype=np.float64)
    st_i = np.zeros(1, dtype=np.int64)
    code = K.seq_decode_run(ahat, sgn, j, sbits, ev_t, ev_c, np.uint64(perms.base), n, perms.prime,
                            np.array(perms.sigma_keys, dtype=np.uint64), _strides(perms)[0], perms.big_a, perms.bbits, sf, decay,
                            float(n_active), every, factor, st_f, st_i)
    if code != 0:
        raise CorruptStreamError(f"the stream's selections do not replay consistently (code {code}); it is corrupted.")
    return np.multiply(ahat, sgn, out=ahat)  # in place: the same float64 values as sgn * ahat
