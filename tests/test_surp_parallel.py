"""Tests of the data-parallel SuRP (issue 4; docs/theory.md §4): sets, streams, decoder, backends, bad input."""

from __future__ import annotations

import math
import struct
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratedist import surp
from ratedist.coding.container import pack_container, unpack_container
from ratedist.errors import CorruptStreamError, InvalidArgumentError, UnreachableTargetError
from ratedist.kernels import _surp_parallel_cpu as K
from ratedist.surp import parallel as P

# The reconstruction is a sum of float64 thresholds, identical on every path: exact equality.
EXACT = 0.0
# Σ r computed by two different summation orders (n ≤ 10^4 terms of size ≤ 1): a few ulps per term.
SUM_RTOL = 1e-10
# Measured gap bits vs log2 C(m, k): range-coder and fixed-point model overhead per round.
CODER_REL = 0.03
CODER_ABS_PER_ROUND = 48.0


def _weights(seed: int, sizes=((30, 40), (500,)), dtype=np.float64):
    rng = np.random.default_rng(seed)
    return {f"t{j}": rng.laplace(size=s).astype(dtype) for j, s in enumerate(sizes)}


def _reference_sets(a, taus, n_rounds):
    """Independent full scan: the eligible set of every round, as index arrays."""
    r = a.copy()
    sets = []
    for t in range(n_rounds):
        e = np.flatnonzero(r > taus[t])
        r[e] -= taus[t]
        sets.append(e)
    return sets, r


weights_strategy = st.builds(
    lambda seed, n1, n2, zeros, dt: {
        "a": np.where(np.random.default_rng(seed).random(n1) < zeros, 0.0,
                      np.random.default_rng(seed).laplace(size=n1)).astype(dt),
        "b": np.random.default_rng(seed + 1).standard_t(3, size=n2).astype(dt),
    },
    st.integers(0, 10_000), st.integers(1, 400), st.integers(0, 400), st.sampled_from([0.0, 0.2]),
    st.sampled_from([np.float32, np.float64]),
)


@settings(max_examples=25, deadline=None)
@given(w=weights_strategy, targets=st.lists(st.sampled_from([0.95, 0.9, 0.8, 0.6, 0.5]), min_size=1, max_size=3),
       gamma=st.sampled_from([0.5, 0.8, 0.95]))
def test_decode_equals_encoder_reconstruction_and_backends_agree(w, targets, gamma):
    """Claim (issue 4): decode(encode(w)) equals the encoder's reconstruction bit for bit at every
    checkpoint, and the NumPy reference and the numba kernels write the same bytes; also
    0 ≤ â ≤ |u| with signs kept (docs/theory.md §4b invariants)."""
    try:
        ref = P.encode_parallel(w, targets, gamma=gamma, backend="numpy", keep_reconstructions=True)
    except UnreachableTargetError:
        return
    fast = P.encode_parallel(w, targets, gamma=gamma, backend="numba", keep_reconstructions=True)
    assert fast.stream == ref.stream
    for k, cp in enumerate(ref.report.checkpoints):
        out = surp.decode(ref.stream, checkpoint=k)
        for name in w:
            assert out[name].dtype == w[name].dtype and out[name].shape == w[name].shape
            assert np.array_equal(out[name], ref.reconstructions[k][name])
            assert np.array_equal(out[name], fast.reconstructions[k][name])
            wa = np.asarray(w[name], dtype=np.float64)
            oa = np.asarray(out[name], dtype=np.float64)
            assert np.all(np.abs(oa) <= np.abs(wa) * (1 + 1e-6) + 1e-30)
            assert np.all((oa == 0) | (np.sign(oa) == np.sign(wa)))
        assert cp.sparsity <= cp.target


def test_sets_match_an_independent_full_scan():
    """Claim (docs/theory.md §4, parallel variant): round t selects exactly {i : r_i > τ_t} (strict), every
    selected residual drops by τ_t; checked against a full scan, and the reported distortion
    Σ r_i / n equals the independently computed residual sum."""
    w = _weights(3)
    enc = P.encode_parallel(w, [0.9, 0.6], backend="numba", keep_reconstructions=True)
    flat = surp._common.flatten(w)
    a = flat.magnitudes
    plan, taus = P.plan_rounds(a, flat.signs < 0, [0.9, 0.6], gamma=P.DEFAULT_GAMMA, backend="numba")
    sets, r = _reference_sets(a, taus, plan.n_rounds)
    nonzero = np.zeros(a.size, bool)
    for t, e in enumerate(sets):
        new = e[~nonzero[e]]
        ref = e[nonzero[e]]
        ranks_new = np.cumsum(~nonzero)[new] - 1
        ranks_ref = np.cumsum(nonzero)[ref] - 1
        assert np.array_equal(plan.new_pos[plan.new_off[t]:plan.new_off[t + 1]], ranks_new)
        assert np.array_equal(plan.ref_pos[plan.ref_off[t]:plan.ref_off[t + 1]], ranks_ref)
        nonzero[new] = True
    assert math.isclose(plan.residual_sums[-1], float(r.sum()), rel_tol=SUM_RTOL)
    assert math.isclose(enc.report.checkpoints[-1].distortion * a.size, float(r.sum()), rel_tol=SUM_RTOL)


@settings(max_examples=40, deadline=None)
@given(m=st.integers(1, 5000), frac=st.floats(0.0, 1.0), seed=st.integers(0, 1000))
def test_set_coding_roundtrip(m, frac, seed):
    """Claim: the gap coder is lossless for every subset of [0, m), including k = 0, 1, m − 1, m."""
    import constriction

    rng = np.random.default_rng(seed)
    k = int(round(frac * m))
    pos = np.sort(rng.choice(m, size=k, replace=False)).astype(np.int64)
    enc = constriction.stream.queue.RangeEncoder()
    P._encode_count(enc, k, m)
    P._encode_set(enc, pos, m)
    dec = constriction.stream.queue.RangeDecoder(enc.get_compressed())
    kk = P._decode_count(dec, m)
    assert kk == k
    assert np.array_equal(P._decode_set(dec, kk, m), pos)


def test_set_coding_escape_path():
    """Claim: a gap far beyond its geometric law (the quotient escape) still round-trips."""
    import constriction

    m = 1 << 20
    pos = np.array([0, 1, 2, 3, m - 1], dtype=np.int64)  # k/m tiny except one huge gap
    enc = constriction.stream.queue.RangeEncoder()
    P._encode_set(enc, pos, m)
    dec = constriction.stream.queue.RangeDecoder(enc.get_compressed())
    assert np.array_equal(P._decode_set(dec, pos.size, m), pos)


def test_measured_bits_near_information_content():
    """Claim (issue 4): the position bits are close to Σ_t log2 C(m_t, k_t), the sets' information
    content under the i.i.d. model, and the sign bits are one per new non-zero."""
    rng = np.random.default_rng(0)
    w = {"w": rng.laplace(size=20000)}
    enc = P.encode_parallel(w, [0.9, 0.5], backend="numba")
    cp = enc.report.checkpoints[-1]
    est = cp.bits["positions_estimate"]
    assert cp.bits["positions"] <= est * (1 + CODER_REL) + CODER_ABS_PER_ROUND * cp.iteration
    assert cp.bits["positions"] >= est * (1 - CODER_REL)
    nnz = round((1 - cp.sparsity) * 20000)
    assert abs(cp.bits["signs"] - nnz) <= 64
    assert cp.n_bits == 8 * cp.n_bytes


def test_first_rounds_kernel_matches_reference():
    """Claim: the entry round found by bisection is min{t : a_i > τ_t} (strict), ties included."""
    taus = P.thresholds(1.0, 0.5, 12)
    a = np.concatenate([taus, taus * (1 + 1e-16), np.nextafter(taus, 2.0), [0.0, 5.0, 1e-9]])
    out = np.empty(a.size, np.int32)
    K.first_rounds(a, taus, out)
    expect = np.array([next((t for t in range(taus.size) if x > taus[t]), taus.size) for x in a])
    assert np.array_equal(out, expect)


@pytest.mark.parametrize("cap", [0, 1, 3, None])
def test_round_cap_never_changes_the_stream(monkeypatch, cap):
    """The numba plan resolves entry rounds only up to an estimated cap and redoes the pass when the
    cap is too low: any cap (0, 1, 3 rounds, or the estimate) gives the NumPy reference's stream."""
    w = {"a": np.random.default_rng(11).laplace(size=(120, 90)).astype(np.float32)}
    want = surp.encode(w, [0.95, 0.7], algorithm="parallel", backend="numpy").stream
    if cap is not None:
        monkeypatch.setattr(P, "_round_cap", lambda a, taus, k, margin=8: min(cap, taus.size))
    assert surp.encode(w, [0.95, 0.7], algorithm="parallel", backend="numba").stream == want


def test_cuda_simulator_stream_equals_cpu_stream():
    """Claim (issue 4): the CUDA kernels (run here under NUMBA_ENABLE_CUDASIM=1 when no GPU is present)
    produce the same stream as the CPU backends on a fixed input."""
    w = _weights(7, sizes=((20, 30), (300,)))
    cpu = P.encode_parallel(w, [0.9, 0.6], backend="numba")
    dev = P.encode_parallel(w, [0.9, 0.6], backend="cuda")
    assert dev.stream == cpu.stream


def test_prefix_decodes_alone_and_sparsity_selects():
    """Claim: a checkpoint's prefix (its first n_bytes) decodes on its own to the same weights."""
    w = _weights(11)
    enc = surp.encode(w, [0.95, 0.8, 0.5], algorithm="parallel")
    for k, cp in enumerate(enc.report.checkpoints):
        full = surp.decode(enc.stream, checkpoint=k)
        part = surp.decode(enc.stream[:cp.n_bytes], checkpoint=k)
        by_s = surp.decode(enc.stream[:cp.n_bytes], sparsity=cp.target)
        for name in w:
            assert np.array_equal(full[name], part[name]) and np.array_equal(full[name], by_s[name])
    with pytest.raises(CorruptStreamError):
        surp.decode(enc.stream[:enc.report.checkpoints[0].n_bytes - 1], checkpoint=0)


def test_bad_arguments():
    """Claim: bad input raises RatedistError subclasses naming the argument."""
    w = _weights(1)
    with pytest.raises(InvalidArgumentError, match="`gamma`"):
        P.encode_parallel(w, 0.9, gamma=1.0)
    with pytest.raises(InvalidArgumentError, match="`gamma`"):
        P.encode_parallel(w, 0.9, gamma=float("nan"))
    with pytest.raises(InvalidArgumentError, match="`sparsity`"):
        P.encode_parallel(w, 1.5)
    with pytest.raises(InvalidArgumentError, match="`backend`"):
        P.encode_parallel(w, 0.9, backend="tpu")
    bad = dict(w, t0=np.full(3, np.nan))
    with pytest.raises(InvalidArgumentError, match="t0"):
        P.encode_parallel(bad, 0.9)
    with pytest.raises(UnreachableTargetError):
        P.encode_parallel({"z": np.zeros(100)}, 0.5)
    with pytest.raises(UnreachableTargetError):
        P.encode_parallel({"z": np.r_[np.zeros(90), np.ones(10)]}, 0.5, backend="numba")
    with pytest.raises(UnreachableTargetError):
        P.encode_parallel({"z": np.r_[np.zeros(90), np.ones(10)]}, 0.5, backend="numpy")


def test_zero_and_empty_tensors_are_kept():
    """Claim: all-zero and empty tensors are recorded, never selected, and decoded with their shape."""
    w = {"a": np.random.default_rng(0).laplace(size=200), "z": np.zeros((3, 4), np.float32),
         "e": np.zeros((0, 5))}
    enc = P.encode_parallel(w, 0.5, backend="numba")
    out = surp.decode(enc.stream)
    assert out["z"].shape == (3, 4) and not out["z"].any() and out["e"].shape == (0, 5)


def _valid_stream():
    return P.encode_parallel(_weights(5, sizes=((40, 25),)), [0.9, 0.6], backend="numba").stream


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_truncated_or_flipped_streams_raise_corrupt(data):
    """Claim (issue 3/4 bad input): truncations and byte flips of a valid stream raise
    CorruptStreamError (or, for a flip in an unchecked reserved byte, decode to the original)."""
    blob = _valid_stream_cached()
    original = surp.decode(blob)
    if data.draw(st.booleans()):
        cut = data.draw(st.integers(0, len(blob) - 1))
        bad = blob[:cut]
    else:
        i = data.draw(st.integers(0, len(blob) - 1))
        bad = bytearray(blob)
        bad[i] ^= data.draw(st.integers(1, 255))
        bad = bytes(bad)
    try:
        out = surp.decode(bad)
    except CorruptStreamError:
        return
    assert all(np.array_equal(out[k], original[k]) for k in original)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_payload_corruption_with_valid_crc_never_crashes(data):
    """Claim: a segment payload corrupted behind a recomputed CRC (so only the decoder's guards
    stand) either raises CorruptStreamError or decodes to arrays of the declared shapes."""
    blob = _valid_stream_cached()
    c = unpack_container(blob)
    seg = data.draw(st.integers(0, len(c.segments) - 1))
    payload = bytearray(c.segments[seg])
    if len(payload) == 0:
        return
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        payload = payload[: 4 * data.draw(st.integers(0, len(payload) // 4))]
    segs = list(c.segments)
    segs[seg] = bytes(payload)
    header = dict(c.header)
    header.pop("n_segments")
    bad = pack_container(header, segs)
    try:
        out = surp.decode(bad)
    except CorruptStreamError:
        return
    assert out["t0"].shape == (40, 25)


def test_header_with_absurd_rounds_is_rejected():
    """Claim: a header declaring an absurd number of rounds or a bad γ raises CorruptStreamError."""
    c = unpack_container(_valid_stream_cached())
    for mutate in (lambda h: h["checkpoints"][0].update(iteration=10**9),
                   lambda h: h["params"].update(gamma=1.5),
                   lambda h: h["params"].update(tau1="x")):
        h = {k: (dict(v) if isinstance(v, dict) else v) for k, v in c.header.items()}
        h["checkpoints"] = [dict(cp) for cp in c.header["checkpoints"]]
        h.pop("n_segments")
        mutate(h)
        with pytest.raises(CorruptStreamError):
            surp.decode(pack_container(h, list(c.segments)), checkpoint=0)


_CACHE: dict = {}


def _valid_stream_cached():
    if "s" not in _CACHE:
        _CACHE["s"] = _valid_stream()
    return _CACHE["s"]


def test_container_fields():
    """Claim: the header says format 'surp', algorithm 'parallel', and one segment per checkpoint."""
    h = surp.read_header(_valid_stream_cached())
    assert h["format"] == "surp" and h["algorithm"] == "parallel"
    assert [cp["segment"] for cp in h["checkpoints"]] == [1, 2]
    assert struct.unpack_from("<4s", _valid_stream_cached())[0] == b"RDST"
    assert zlib.crc32(b"") == 0  # container CRC of an empty segment is well defined


@pytest.mark.gpu
def test_real_gpu_stream_equals_cpu_stream():
    """Claim (issue 4): on a real GPU (CuPy arrays) the stream equals the CPU stream, 10^6 weights."""
    w = {"w": np.random.default_rng(0).laplace(size=1_000_000)}
    cpu = P.encode_parallel(w, [0.9, 0.5], backend="numba")
    dev = P.encode_parallel(w, [0.9, 0.5], backend="cuda")
    assert dev.stream == cpu.stream


def test_benchmark_smoke():
    """Smoke: the benchmark module runs in quick mode and its parallel stream decodes bit-exactly."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_surp_parallel.py"
    spec = importlib.util.spec_from_file_location("bench_surp_parallel", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    mod.N_QUICK = 50_000
    rows = mod.main(quick=True)
    assert rows and "decodes bit-exactly: True" in rows[0]["detail"]
