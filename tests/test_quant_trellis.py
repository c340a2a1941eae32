"""Tests of ratedist.quant.trellis: the fixed-rate bitshift trellis quantizer (QTIP-style) and its kernels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special, stats

from ratedist.errors import CorruptStreamError, InvalidArgumentError
from ratedist.kernels import _trellis_cpu as K
from ratedist.quant._base import tensor_distortion
from ratedist.quant.trellis import (
    BLOCK_WEIGHTS,
    RATES,
    BitshiftTrellisCoder,
    _groups,
    _log,
    _normal_lower_quantile,
    _spare,
    codebook,
    pack_codes,
    payload_bytes,
    unpack_codes,
)

#: kernel path costs and NumPy reference sums add the same ≤ 40 terms of size O(1) in different orders
SUM_RTOL = 1e-12
KS_ALPHA = 0.01  # KS test level (fixed seeds: deterministic)


def _rho(e, metric):
    return np.abs(e) if metric == "l1" else e * e


def _scratch(L, k, tb):
    return (np.empty(1 << L), np.empty(1 << L), np.empty(1 << (L - k)), np.empty((tb, 1 << (L - k)), np.uint8),
            np.empty(tb, np.int64))


def _exhaustive(x, nv_last, cb, L, k, metric, valid=None):
    """Every start residue r and every code sequence: (distortion[r, seq], end residue[r, seq]).

    The obviously right reference: states s_t = ((s_{t-1} << k) | b_t) mod 2^L from s_{-1} = r,
    distortion Σ_t Σ_i ρ(x[t, i] − c[i, s_t]) over the real components (``valid``, by default all
    but the padding of the last group).
    """
    t_len, v = x.shape
    n_states, n_res = 1 << L, 1 << (L - k)
    n_seq = 1 << (t_len * k)
    seq = np.arange(n_seq, dtype=np.int64)
    codes = np.stack([(seq >> (k * (t_len - 1 - t))) & ((1 << k) - 1) for t in range(t_len)], axis=1)
    if valid is None:
        valid = np.ones((t_len, v), bool)
        valid[-1, nv_last:] = False
    dist = np.zeros((n_res, n_seq))
    end = np.zeros((n_res, n_seq), dtype=np.int64)
    for r in range(n_res):
        s = np.full(n_seq, r, dtype=np.int64)
        for t in range(t_len):
            s = ((s << k) | codes[:, t]) & (n_states - 1)
            dist[r] += (_rho(x[t][None, :] - cb[:, s].T, metric) * valid[t]).sum(axis=1)
        end[r] = s & (n_res - 1)
    return dist, end


def _path_distortion(x, nv_last, cb, L, k, metric, start_state, states):
    """Check that ``states`` is a trellis path from ``start_state`` and return its distortion."""
    s = start_state
    total = 0.0
    for t in range(x.shape[0]):
        assert states[t] >> k == s & ((1 << (L - k)) - 1), "not a path of the bitshift trellis"
        s = int(states[t])
        nv = nv_last if t == x.shape[0] - 1 else x.shape[1]
        total += float(np.sum(_rho(x[t, :nv] - cb[:nv, s], metric)))
    return total


CASES = [(2, 1, 1, 7, "mse", 1), (3, 1, 1, 8, "l1", 1), (4, 1, 1, 9, "mse", 1), (4, 2, 1, 5, "l1", 1),
         (4, 3, 1, 3, "mse", 1), (4, 1, 2, 8, "mse", 1), (4, 2, 2, 4, "l1", 2), (4, 1, 4, 7, "l1", 3)]


@pytest.mark.parametrize("L,k,V,T,metric,nv_last", CASES)
def test_viterbi_is_optimal_against_exhaustive_search(L, k, V, T, metric, nv_last):
    """Viterbi's principle of optimality: the kernel's path has the least distortion of all code sequences
    (exhaustive enumeration), for a free start and end, a free start and end visiting the groups in a
    rotated order, the start state 0 (free end), and every forced start/end residue r; the minimum over r
    of the forced runs is the exhaustive minimum over tail-biting sequences (start state = end state).
    The returned states are a path of the trellis with the returned distortion."""
    rng = np.random.default_rng(L * 100 + k * 10 + V)
    x = rng.laplace(size=(T, V))
    x[-1, nv_last:] = 0.0
    cb = codebook(L, V, metric, 1.0, 0.2)
    dist, end = _exhaustive(x, nv_last, cb, L, k, metric)
    n_res = 1 << (L - k)
    l1 = metric == "l1"

    def run(rot, start, stop):
        sc = _scratch(L, k, T)
        d = K.viterbi_path(x, 0, T, rot, nv_last, cb, L, k, l1, start, stop, *sc)
        return d, sc[4].copy()

    d, states = run(0, -1, -1)
    assert d == pytest.approx(dist.min(), rel=SUM_RTOL)
    # the path from its own (free) start: any start state with the right residue
    assert _path_distortion(x, nv_last, cb, L, k, metric, int(states[0] >> k), states) == pytest.approx(d, rel=SUM_RTOL)

    rot = T // 2
    order = (np.arange(T) + rot) % T
    d_rot, _states = run(rot, -1, -1)
    # the rotated visit moves the padded group: enumerate with its mask moved along
    valid = np.ones((T, V), bool)
    valid[-1, nv_last:] = False
    dist_rot, _ = _exhaustive(x[order], nv_last, cb, L, k, metric, valid=valid[order])
    assert d_rot == pytest.approx(dist_rot.min(), rel=SUM_RTOL)

    d0, states0 = run(0, 0, -1)
    assert d0 == pytest.approx(dist[0].min(), rel=SUM_RTOL)
    assert _path_distortion(x, nv_last, cb, L, k, metric, 0, states0) == pytest.approx(d0, rel=SUM_RTOL)

    forced = []
    for r in range(n_res):
        d_r, states_r = run(0, r, r)
        assert d_r == pytest.approx(dist[r][end[r] == r].min(), rel=SUM_RTOL)
        assert int(states_r[-1]) & (n_res - 1) == r
        assert _path_distortion(x, nv_last, cb, L, k, metric, r, states_r) == pytest.approx(d_r, rel=SUM_RTOL)
        forced.append(d_r)
    tail_biting = min(dist[r][end[r] == r].min() for r in range(n_res))
    assert min(forced) == pytest.approx(tail_biting, rel=SUM_RTOL)


def _reference_decode(codes, n, block, k, L, cb):
    """Obviously right decoder: per block, the start state from the block's last codes (tail-biting) or 0,
    then the state scan and the table lookup."""
    v = cb.shape[0]
    out = np.zeros(-(-n // v) * v)
    for g0 in range(0, codes.shape[0], block):
        blk = [int(c) for c in codes[g0:g0 + block]]
        s = 0
        if len(blk) * k >= L - k:
            for c in blk:  # the block's last L bits
                s = ((s << k) | c) % (1 << L)
        for t, c in enumerate(blk):
            s = ((s << k) | c) % (1 << L)
            out[(g0 + t) * v:(g0 + t + 1) * v] = cb[:, s]
    return out[:n]


@pytest.mark.parametrize("L,k,V,n,block,metric", [(4, 1, 1, 34, 8, "l1"), (4, 2, 2, 29, 4, "mse"),
                                                  (3, 1, 2, 41, 6, "mse"), (5, 3, 1, 22, 3, "l1"),
                                                  (6, 1, 2, 35, 8, "mse")])
def test_blocks_are_tail_biting_and_decode_to_their_distortion(L, k, V, n, block, metric):
    """viterbi_blocks codes every block of ≥ L − k bits tail-biting: the decoder, which rebuilds the start
    state from the block's own last bits, reads back exactly the path the encoder scored (the block
    distortions of the kernel equal those of the decoded reconstruction), and each such block's distortion
    is at least the exhaustive tail-biting minimum; shorter blocks start from state 0 and are optimal for
    that start.  The numba decoder equals the slow reference decoder bit for bit."""
    rng = np.random.default_rng(n)
    u = rng.laplace(size=n)
    cb = codebook(L, V, metric, 1.0, 0.3)
    x, nv_last = _groups(u, V)
    codes = np.zeros(x.shape[0], np.uint8)
    dist = np.zeros(-(-x.shape[0] // block))
    K.viterbi_blocks(x, block, nv_last, cb, L, k, metric == "l1", codes, dist)
    recon = np.empty(n)
    K.decode_blocks(_spare(pack_codes(codes, k)), x.shape[0], block, k, L, cb, n, recon)
    np.testing.assert_array_equal(recon, _reference_decode(codes, n, block, k, L, cb))
    n_short = 0
    for b, g0 in enumerate(range(0, x.shape[0], block)):
        lo, hi = g0 * V, min(n, (g0 + block) * V)
        assert tensor_distortion(u[lo:hi], recon[lo:hi], metric) == pytest.approx(dist[b], rel=SUM_RTOL)
        xb = x[g0:g0 + block]
        nvb = nv_last if g0 + block >= x.shape[0] else V
        ex, end = _exhaustive(xb, nvb, cb, L, k, metric)
        if xb.shape[0] * k >= L - k:
            tb_min = min(ex[r][end[r] == r].min() for r in range(ex.shape[0]))
            assert dist[b] >= tb_min * (1 - SUM_RTOL)
        else:
            n_short += 1
            assert dist[b] == pytest.approx(ex[0].min(), rel=SUM_RTOL)
    assert n_short <= 1


def test_pack_unpack_codes():
    """Codes packed k bits each, most significant first, without gaps, in ceil(g·k/8) bytes, unpack to themselves."""
    rng = np.random.default_rng(3)
    for k in range(1, 9):
        for g in (1, 7, 8, 13, 100):
            codes = rng.integers(0, 1 << k, size=g).astype(np.uint8)
            p = pack_codes(codes, k)
            assert len(p) == (g * k + 7) // 8
            np.testing.assert_array_equal(unpack_codes(p, g, k), codes)
            bits = "".join(format(int(c), f"0{k}b") for c in codes)
            assert "".join(format(b, "08b") for b in p)[:g * k] == bits


# ----------------------------------------------------------------------------- codebook


def test_series_log_and_normal_quantile_are_accurate():
    """The portable logarithm agrees with the C library's to 4 ulp, and the normal quantile with scipy's ndtri
    to the 1.15e-9 relative error of Acklam's approximation, over (0, 1) down to the smallest uniform."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.random(100_000), 2.0 ** -np.arange(1, 60.0), [2.0 ** -53, 1.0]])
    x = x[x > 0]
    ref = np.log(x)
    assert np.all(np.abs(_log(x) - ref) <= 4 * np.spacing(np.abs(ref)) + (ref == 0) * 1e-300)
    y = np.concatenate([rng.random(100_000) * 0.5, [2.0 ** -53, 1e-12, 0.02425, 0.5 - 1e-12]])
    y = y[y > 0]
    q = _normal_lower_quantile(y)
    ref = -special.ndtri(y)
    assert np.all(np.abs(q - ref) <= 1.2e-9 * np.maximum(np.abs(ref), 1e-3))


@pytest.mark.parametrize("metric", ["l1", "mse"])
def test_codebook_follows_its_law(metric):
    """The hashed codebook is a sample of its reproduction law: an atom of mass p0 at 0 (binomial, 5 s.e.)
    and a continuous part passing a Kolmogorov–Smirnov test against Laplace(scale) or N(0, scale²)."""
    p0, scale = 0.3, 0.7
    c = codebook(14, 2, metric, scale, p0).ravel()
    n = c.shape[0]
    assert abs(np.mean(c == 0) - p0) < 5 * math.sqrt(p0 * (1 - p0) / n)
    law = stats.laplace(scale=scale) if metric == "l1" else stats.norm(scale=scale)
    assert stats.kstest(c[c != 0], law.cdf).pvalue > KS_ALPHA
    np.testing.assert_array_equal(c, codebook(14, 2, metric, scale, p0).ravel())  # deterministic
    assert not np.any(np.signbit(c[c == 0]))  # the atom is +0.0


def test_codebook_components_are_distinct():
    """Different components and states draw different uniforms (the hash does not collide on this range)."""
    c = codebook(16, 16, "l1", 1.0, 0.0)
    assert np.unique(c).shape[0] == c.size


# ----------------------------------------------------------------------------- the coder


@pytest.mark.parametrize("metric", ["l1", "mse"])
@pytest.mark.parametrize("k,V", [(1, 1), (2, 1), (1, 2), (3, 2), (3, 8), (5, 4), (4, 1), (0, 1)])
@pytest.mark.parametrize("n", [1, 5, BLOCK_WEIGHTS * 3 + 37])
def test_roundtrip_bit_exact_and_payload_length(metric, k, V, n):
    """decode_tensor(encode_tensor(u)) equals the encoder's reconstruction bit for bit; the payload holds
    exactly ceil(ceil(n/V)·k/8) bytes (k bits per group, packed without gaps); the reported params
    survive JSON."""
    import json

    coder = BitshiftTrellisCoder(L=6)
    u = np.random.default_rng(n + k).laplace(size=n) * 0.01
    code = coder.encode_tensor(u, metric, k=k, V=V)
    assert len(code.payload) == payload_bytes(n, k, V) == (-(-n // V) * k + 7) // 8
    params = json.loads(json.dumps(code.params))
    assert params == code.params
    out = coder.decode_tensor(code.payload, params, n, metric)
    assert out.dtype == np.float64 and out.shape == (n,)
    np.testing.assert_array_equal(out, code.recon)


def test_distortion_decreases_along_the_candidates():
    """On Laplace data the measured distortion is non-increasing along the candidate list (increasing rate).
    Not a theorem for codes of different group sizes; it is what the table of RATES was chosen for."""
    coder = BitshiftTrellisCoder(L=8)
    u = np.random.default_rng(11).laplace(size=8192)
    cands = coder.candidates(u, "l1")
    rates = [c["k"] / c["V"] for c in cands]
    assert rates == sorted(rates) and len(set(rates)) == len(rates)
    d = [tensor_distortion(u, coder.encode_tensor(u, "l1", **c).recon, "l1") for c in cands]
    assert all(b <= a for a, b in zip(d, d[1:])), d


def test_estimate_matches_the_full_code():
    """The allocator's estimate gives the payload's exact bits, and a distortion measured on an evenly spaced
    block subsample (8192 of 40000 i.i.d. weights) within 5 % of the full code's (sampling error ≈ 1 %)."""
    coder = BitshiftTrellisCoder(L=6)
    u = np.random.default_rng(4).laplace(size=40_000)
    prepared = coder.prepare(u, "l1")
    for k, v in ((1, 1), (3, 2), (0, 1)):
        bits, dist = coder.estimate(prepared, "l1", k=k, V=v)
        code = coder.encode_tensor(u, "l1", k=k, V=v)
        assert bits == 8 * len(code.payload)
        assert dist == pytest.approx(tensor_distortion(u, code.recon, "l1"), rel=0.05)


def test_model_codec_roundtrip():
    """Through the model codec (method "trellis"), a stream decodes to the encoder's weights exactly and its
    coder options carry L."""
    from ratedist.quant import codec

    rng = np.random.default_rng(0)
    w = {"a": rng.laplace(size=(32, 40)).astype(np.float32), "b": rng.normal(size=300).astype(np.float32)}
    enc = codec.encode(w, method="trellis", rate=1.0, L=6)
    assert enc.report.bpp <= 1.0 and codec.inspect(enc.stream)["coder"] == {"L": 6}
    dec = codec.decode(enc.stream)
    for name in w:
        np.testing.assert_array_equal(dec[name], enc.weights[name])


def test_candidates_and_options():
    """Candidates are RATES with k < L, coarsest first; an all-zero tensor gets only the empty code; the
    options the decoder needs are L alone."""
    u = np.ones(10)
    assert BitshiftTrellisCoder(L=12).candidates(u, "l1") == [{"k": k, "V": v} for k, v in RATES]
    assert all(c["k"] < 3 for c in BitshiftTrellisCoder(L=3).candidates(u, "mse"))
    assert BitshiftTrellisCoder(L=5).candidates(np.zeros(10), "l1") == [{"k": 0, "V": 1}]
    assert BitshiftTrellisCoder(L=7).options() == {"L": 7}


#: measured D/D(R) at L = 12 on these seeds, 2·10⁵ samples: Laplace/L1 at 1 bit 1.065 (within the
#: ~10 % of QTIP-style codes); Gaussian/MSE at 2 bits 1.172 — short of 10 % at L = 12 (QTIP needs
#: L = 16 for ≈ 1.10); the bounds below are those numbers plus 2 % (Monte Carlo error of the distortion
#: on 2·10⁵ samples ≈ 0.3 %, and the law search on a 16k subsample moves it by ≈ 0.5 %).
RD_CASES = [("l1", 1, 1, 1.065 + 0.02), ("mse", 2, 1, 1.172 + 0.02)]


@pytest.mark.parametrize("metric,k,V,bound", RD_CASES)
def test_close_to_the_rate_distortion_function(metric, k, V, bound):
    """On i.i.d. Laplace(1) (absolute error) and N(0, 1) (squared error) samples, L = 12 codes at R = k/V bits
    per weight land above the Shannon limit D(R) = 2^{-R}/λ, resp. σ²·4^{-R} (minus the Monte Carlo error:
    a code on a finite sample can beat D(R) by a few standard errors at most) and within ``bound``·D(R)."""
    n = 200_000
    rng = np.random.default_rng(2024)
    u = rng.laplace(size=n) if metric == "l1" else rng.normal(size=n)
    r = k / V
    d_r = 2.0 ** -r if metric == "l1" else 4.0 ** -r
    code = BitshiftTrellisCoder(L=12).encode_tensor(u, metric, k=k, V=V)
    d = tensor_distortion(u, code.recon, metric) / n
    assert 8 * len(code.payload) == n * r
    assert d > d_r * (1 - 5 / math.sqrt(n))
    assert d < bound * d_r, d / d_r


def _cuda_kernels():
    from ratedist.kernels import _trellis_cuda

    return _trellis_cuda


@pytest.mark.parametrize("L,k,V,n,block,metric,threads", [(4, 1, 1, 37, 16, "l1", 3), (5, 2, 2, 50, 8, "mse", 16),
                                                          (6, 1, 2, 37, 8, "l1", 5), (6, 3, 4, 70, 4, "mse", 3),
                                                          (5, 4, 1, 20, 8, "l1", 4)])
def test_cuda_kernels_match_cpu_bit_for_bit(L, k, V, n, block, metric, threads):
    """The numba.cuda twin (simulator without a GPU: tiny trellises) gives the CPU kernel's codes and block
    distortions bit for bit — same float64 operations in the same order, same first-minimum ties, whatever
    the number of threads per block — and its decoder the same reconstruction.  The cases include a
    padded last group and a last block too short for tail-biting."""
    G = _cuda_kernels()
    rng = np.random.default_rng(n)
    u = rng.laplace(size=n)
    u[::7] = 0.0
    cb = codebook(L, V, metric, 1.0, 0.25)
    x, nv_last = _groups(u, V)
    n_blocks = -(-x.shape[0] // block)
    c1, d1 = np.zeros(x.shape[0], np.uint8), np.zeros(n_blocks)
    K.viterbi_blocks(x, block, nv_last, cb, L, k, metric == "l1", c1, d1)
    c2, d2 = np.zeros_like(c1), np.zeros_like(d1)
    G.viterbi_blocks_cuda(x, block, nv_last, cb, L, k, metric == "l1", c2, d2, threads=threads)
    np.testing.assert_array_equal(c1, c2)
    np.testing.assert_array_equal(d1, d2)
    buf = _spare(pack_codes(c1, k))
    o1, o2 = np.empty(n), np.empty(n)
    K.decode_blocks(buf, x.shape[0], block, k, L, cb, n, o1)
    G.decode_blocks_cuda(buf, x.shape[0], block, k, L, cb, n, o2)
    np.testing.assert_array_equal(o1, o2)


def test_cuda_backend_coder_matches_numba(monkeypatch):
    """The coder with backend="cuda" (simulator) writes the same payload, params and reconstruction as with
    backend="numba"."""
    G = _cuda_kernels()
    monkeypatch.setattr(G, "THREADS", 4)
    u = np.random.default_rng(5).laplace(size=45)
    a = BitshiftTrellisCoder(L=3, backend="numba").encode_tensor(u, "mse", k=1, V=4)
    b = BitshiftTrellisCoder(L=3, backend="cuda").encode_tensor(u, "mse", k=1, V=4)
    assert a.payload == b.payload and a.params == b.params
    np.testing.assert_array_equal(a.recon, b.recon)
    np.testing.assert_array_equal(BitshiftTrellisCoder(L=3, backend="cuda").decode_tensor(b.payload, b.params, 45,
                                                                                         "mse"), a.recon)


def test_same_bits_with_one_or_two_threads():
    """Blocks are coded independently, each writing its own outputs: numba with 1 or 2 threads gives the
    same payload and reconstruction."""
    import numba

    u = np.random.default_rng(9).laplace(size=BLOCK_WEIGHTS * 9 + 11)
    before = numba.get_num_threads()
    out = []
    try:
        for t in (1, min(2, numba.config.NUMBA_NUM_THREADS)):
            numba.set_num_threads(t)
            code = BitshiftTrellisCoder(L=8).encode_tensor(u, "l1", k=1, V=1)
            out.append((code.payload, code.recon, code.params))
    finally:
        numba.set_num_threads(before)
    assert out[0][0] == out[1][0] and out[0][2] == out[1][2]
    np.testing.assert_array_equal(out[0][1], out[1][1])


def test_invalid_arguments():
    """Bad constructor and operating-point arguments raise InvalidArgumentError naming the argument."""
    with pytest.raises(InvalidArgumentError, match="`L`"):
        BitshiftTrellisCoder(L=17)
    with pytest.raises(InvalidArgumentError, match="`L`"):
        BitshiftTrellisCoder(L=1)
    with pytest.raises(InvalidArgumentError, match="`backend`"):
        BitshiftTrellisCoder(backend="gpu")
    coder = BitshiftTrellisCoder(L=4)
    u = np.ones(20)
    with pytest.raises(InvalidArgumentError, match="`k`"):
        coder.encode_tensor(u, "l1", k=4, V=1)
    with pytest.raises(InvalidArgumentError, match="`V`"):
        coder.encode_tensor(u, "l1", k=1, V=3)
    with pytest.raises(InvalidArgumentError, match="`metric`"):
        coder.encode_tensor(u, "l2", k=1, V=1)


# ----------------------------------------------------------------------------- corrupt input

_FUZZ_N = 300
_FUZZ_CODER = BitshiftTrellisCoder(L=6)
_FUZZ_CODES = {(m, k, v): _FUZZ_CODER.encode_tensor(np.random.default_rng(k * 7 + v).laplace(size=_FUZZ_N), m,
                                                    k=k, V=v)
               for m in ("l1", "mse") for k, v in ((1, 1), (3, 2), (1, 8), (5, 4), (0, 1))}
_FUZZ = settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow])


def _decodes_or_corrupt(payload, params, n, metric):
    try:
        out = _FUZZ_CODER.decode_tensor(payload, params, n, metric)
    except CorruptStreamError:
        return
    assert isinstance(out, np.ndarray) and out.shape == (n,) and out.dtype == np.float64


@_FUZZ
@given(key=st.sampled_from(sorted(_FUZZ_CODES)), cut=st.integers(0, 200), flips=st.lists(st.integers(0, 10**6),
                                                                                      max_size=4),
       extra=st.binary(max_size=3), dn=st.integers(-20, 20))
def test_fuzz_mutated_payloads(key, cut, flips, extra, dn):
    """Truncated, extended and bit-flipped payloads, also with a wrong length n, decode to n values or raise
    CorruptStreamError, never another exception."""
    code = _FUZZ_CODES[key]
    b = bytearray(code.payload)
    b = b[:max(0, len(b) - cut)] if cut % 3 == 0 else b
    for f in flips:
        if b:
            b[f % len(b)] ^= 1 << (f % 8)
    _decodes_or_corrupt(bytes(b) + (extra if cut % 5 == 1 else b""), code.params, max(1, _FUZZ_N + dn), key[0])


_values = st.one_of(st.none(), st.booleans(), st.integers(-3, 40), st.integers(-2**70, 2**70),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=3),
                    st.lists(st.integers(0, 3), max_size=2))


@_FUZZ
@given(key=st.sampled_from(sorted(_FUZZ_CODES)), field=st.sampled_from(["k", "V", "scale", "p0", "extra", "drop"]),
       value=_values, metric=st.sampled_from(["l1", "mse", "l2"]),
       n=st.one_of(st.just(_FUZZ_N), st.integers(-2, 10**4)), drop=st.integers(0, 3))
def test_fuzz_forged_params(key, field, value, metric, n, drop):
    """Forged parameters (wrong types, out-of-range k, V, scale, p0, missing or extra keys), a wrong metric or
    length: CorruptStreamError or a decode of the right length, never another exception."""
    code = _FUZZ_CODES[key]
    params = dict(code.params)
    if field == "drop":
        params.pop(sorted(params)[drop % len(params)])
    else:
        params[field] = value
    _decodes_or_corrupt(code.payload, params, n, metric)


def test_corrupt_examples():
    """Specific corruptions are refused with CorruptStreamError: wrong length, non-zero padding bits,
    out-of-range k, an overflowing scale, non-dict params."""
    coder = BitshiftTrellisCoder(L=6)
    code = coder.encode_tensor(np.random.default_rng(0).laplace(size=13), "l1", k=3, V=2)
    p = code.params
    with pytest.raises(CorruptStreamError, match="bytes"):
        coder.decode_tensor(code.payload[:-1], p, 13, "l1")
    with pytest.raises(CorruptStreamError, match="padding"):
        coder.decode_tensor(code.payload[:-1] + bytes([code.payload[-1] | 1]), p, 13, "l1")
    with pytest.raises(CorruptStreamError, match="`k`"):
        coder.decode_tensor(code.payload, {**p, "k": 6}, 13, "l1")
    with pytest.raises(CorruptStreamError, match="`scale`"):
        coder.decode_tensor(code.payload, {**p, "scale": 1e308}, 13, "l1")
    with pytest.raises(CorruptStreamError, match="`p0`"):
        coder.decode_tensor(code.payload, {**p, "p0": 1.0}, 13, "l1")
    with pytest.raises(CorruptStreamError):
        coder.decode_tensor(code.payload, [1, 2], 13, "l1")
