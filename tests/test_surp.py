"""Tests of the sequential SuRP codec (issue 3; docs/theory.md §4b, §4c)."""

from __future__ import annotations

import importlib.util
import json
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratedist import surp
from ratedist.coding.container import pack_container, unpack_container
from ratedist.errors import CorruptStreamError, InvalidArgumentError, RatedistWarning
from ratedist.surp._common import flatten, needed_nonzeros
from ratedist.surp.encoder import max_iterations_for, run_fast, sequential_params
from ratedist.surp.encoder import encode_reference
from ratedist.surp.reference import Permutations, run_reference

EXACT = 0.0  # bit-exact comparisons
FP_IDENTITY = 1e-9  # relative tolerance of float identities summed with math.fsum
SETTINGS = settings(deadline=None, max_examples=15, suppress_health_check=[HealthCheck.too_slow])


def _model(n, seed=0, scale=1.0, zeros=0):
    rng = np.random.default_rng(seed)
    w1 = rng.laplace(size=n // 2).astype(np.float32)
    w2 = rng.laplace(size=n - n // 2) * scale
    if zeros:
        w2[: min(zeros, w2.size)] = 0.0
    return {"layer.weight": w1.reshape(-1, 1) if w1.size else w1, "layer2": w2}


@pytest.fixture(scope="module")
def small_encoding():
    w = _model(3000, seed=1)
    return w, surp.encode(w, [0.97, 0.9, 0.7], seed=4, keep_reconstructions=True)


# ---------------------------------------------------------------- permutations

@SETTINGS
@given(n=st.integers(1, 3000), seed=st.integers(0, 2**63 - 1), t=st.integers(0, 10**9))
def test_permutation_is_bijection_and_twins_agree(n, seed, t):
    """π_t is a permutation of [0, P) (P prime ≥ n), its inverse inverts it, and the numba kernels
    compute exactly the NumPy reference's permutation (issue 3: encoder and decoder compute it identically)."""
    from ratedist.kernels import _surp_cpu as K
    from ratedist.surp.encoder import _strides

    perms = Permutations(n, seed)
    p = perms.prime
    assert p >= n
    f = perms.forward(t, np.arange(p))
    assert np.array_equal(np.sort(f), np.arange(p))
    assert np.array_equal(perms.inverse(t, f), np.arange(p))
    a, inv = _strides(perms)
    a2, inv2 = perms.stride_arrays()
    assert np.array_equal(a, a2) and np.array_equal(inv, inv2)
    sk = np.array(perms.sigma_keys, dtype=np.uint64)
    f2 = K.perm_forward_many(np.arange(p), np.uint64(perms.base), t, p, sk, perms.big_a, perms.bbits, a)
    assert np.array_equal(f, f2)


def test_first_eligible_is_uniform_over_eligible_set():
    """Choosing the first element of E in the iteration's permutation is uniform over E
    (docs/theory.md §4c: shared randomness realizes the uniform choice); chi-square at 5 standard deviations."""
    n, size, trials = 5000, 7, 21000
    perms = Permutations(n, 11)
    elig = np.array([3, 4, 5, 1000, 1001, 4990, 2500])[:size]
    counts = np.zeros(size)
    for t in range(trials):
        counts[np.argmin(perms.inverse(t, elig))] += 1
    expected = trials / size
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    dof = size - 1
    assert chi2 < dof + 5 * np.sqrt(2 * dof), counts


# ---------------------------------------------------------------- fast == reference

@SETTINGS
@given(n=st.integers(2, 1500), seed=st.integers(0, 1000), zeros=st.integers(0, 200),
       s=st.lists(st.floats(0.05, 0.99), min_size=1, max_size=3))
def test_fast_encoder_matches_reference_stream(n, seed, zeros, s):
    """Same seed, same bytes: the fast encoder's stream equals the slow reference's (issue 3)."""
    w = _model(n, seed=seed, zeros=zeros)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RatedistWarning)
        a = surp.encode(w, s, seed=seed)
        b = encode_reference(w, s, seed=seed)
    assert a.stream == b.stream


def test_fast_matches_reference_at_20000():
    """The fast kernel's trace (positions, indices, |E_t|, τ_t, refresh events) equals the reference's
    on 20,000 weights to 80% sparsity (issue 3: tests on inputs up to ~20,000 weights)."""
    flat = flatten(_model(20_000, seed=7))
    a = flat.magnitudes
    p = sequential_params(a, seed=3)
    ks = [needed_nonzeros(0.8, a.size)]
    f = run_fast(a, p, ks, max_iterations=max_iterations_for(a.size))
    r = run_reference(a, p, ks, max_iterations=max_iterations_for(a.size), max_retries=10**6)
    for name in ("j", "m", "esize", "tau", "new", "ev_t", "ev_c"):
        assert np.array_equal(getattr(f, name), getattr(r, name)), name
    assert np.array_equal(f.ahat, r.ahat) and f.checkpoints == r.checkpoints


# ---------------------------------------------------------------- decoding

def test_decode_equals_encoder_at_every_checkpoint_from_prefix(small_encoding):
    """Every checkpoint prefix (only its first n_bytes) decodes bit for bit to the encoder's
    reconstruction with the input's keys, shapes and dtypes (docs/theory.md §4c exact decoder)."""
    w, enc = small_encoding
    for k, cp in enumerate(enc.report.checkpoints):
        dec = surp.decode(enc.stream[: cp.n_bytes], checkpoint=k)
        assert list(dec) == list(w)
        for name in w:
            assert dec[name].shape == w[name].shape and dec[name].dtype == w[name].dtype
            assert dec[name].tobytes() == enc.reconstructions[k][name].tobytes()
        by_target = surp.decode(enc.stream, sparsity=cp.target)
        assert all(np.array_equal(by_target[x], dec[x]) for x in w)
        n = sum(x.size for x in w.values())
        assert sum(int(np.count_nonzero(x)) for x in dec.values()) == round((1 - cp.sparsity) * n)
        assert cp.sparsity <= cp.target + 1e-12


def test_prefix_shorter_than_checkpoint_is_rejected(small_encoding):
    """A partial download that stops inside checkpoint k's segment cannot decode checkpoint k."""
    _, enc = small_encoding
    cp = enc.report.checkpoints[1]
    with pytest.raises(CorruptStreamError):
        surp.decode(enc.stream[: cp.n_bytes - 1], checkpoint=1)
    surp.decode(enc.stream[: cp.n_bytes - 1], checkpoint=0)


def test_report_bits_add_up(small_encoding):
    """Measured bits per part add up to the prefix size; bpp = bits / n; the estimate is printed beside."""
    w, enc = small_encoding
    rep = enc.report
    n = sum(x.size for x in w.values())
    assert rep.n_bits == 8 * len(enc.stream) and rep.units == "bits"
    for cp in rep.checkpoints:
        parts = {k: v for k, v in cp.bits.items() if k != "positions_estimate"}
        assert sum(parts.values()) == cp.n_bits == 8 * cp.n_bytes
        assert cp.bpp == pytest.approx(cp.n_bits / n)
        assert cp.bits["positions_estimate"] > 0 and cp.gap_bpp == pytest.approx(cp.bpp - cp.rd_bpp)
    d = rep.to_dict()
    assert set(d) >= {"n_params", "n_bits", "bpp", "ideal_bpp", "seconds", "checkpoints"}
    assert set(d["checkpoints"][0]) >= {"sparsity", "n_bits", "bpp", "ideal_bpp", "distortion", "rd_bpp"}
    json.dumps(d)


def test_distortion_is_normalized_l1_and_laplace_fit_matches():
    """d(u, û) = (1/n) Σ|u − û| (docs/theory.md §2) and λ̂ equals ratedist.rd.fit_laplace on u."""
    from ratedist.rd import fit_laplace

    w = _model(2000, seed=3)
    enc = surp.encode(w, [0.9, 0.6], normalize="l1", keep_reconstructions=True)
    flat = flatten(w, "l1")
    u = flat.signs * flat.magnitudes
    for k, cp in enumerate(enc.report.checkpoints):
        uh = flatten(enc.reconstructions[k], "l1")
        # û divides by the ORIGINAL norms
        uhat = np.concatenate([enc.reconstructions[k][t["name"]].ravel().astype(np.float64) / t["norm"]
                               for t in flat.table])
        assert cp.distortion == pytest.approx(np.mean(np.abs(u - uhat)), rel=1e-5)
        del uh
    assert enc.report.extra["lam_hat"] == pytest.approx(fit_laplace(u).lam, rel=1e-12)


# ---------------------------------------------------------------- invariants

@SETTINGS
@given(n=st.integers(3, 800), seed=st.integers(0, 100))
def test_invariants_of_the_reference(n, seed):
    """docs/theory.md §4b invariants: 0 ≤ â ≤ a, â + r = a, the L1 distortion falls by exactly τ_t per
    iteration, nnz(â) ≤ #iterations."""
    import math

    flat = flatten(_model(n, seed=seed))
    a = flat.magnitudes
    p = sequential_params(a)
    tr = run_reference(a, p, [needed_nonzeros(0.5, n)], max_iterations=10**5, max_retries=10**6)
    assert np.all(tr.ahat >= 0) and np.all(tr.ahat <= a * (1 + 1e-12))
    assert np.allclose(tr.ahat + tr.residual, a, rtol=0, atol=1e-12)
    assert np.count_nonzero(tr.ahat) <= tr.j.size
    ah = np.zeros_like(a)
    prev = math.fsum(a)
    for t in range(tr.j.size):
        ah[tr.m[t]] += tr.tau[t]
        cur = math.fsum(np.abs(a - ah))
        assert abs(prev - cur - tr.tau[t]) <= FP_IDENTITY * tr.tau[t]
        prev = cur


def test_shrinkage_and_signs_on_default_model():
    """|ŵ| ≤ |w| elementwise with signs kept (docs/theory.md §2 precondition ‖ŵ_l‖ ≤ ‖w_l‖)."""
    from ratedist.data import default_model

    w = default_model()
    enc = surp.encode(w, [0.9, 0.6], seed=2)
    for k in range(2):
        d = surp.decode(enc.stream, checkpoint=k)
        for name in w:
            x, y = w[name].astype(np.float64), d[name].astype(np.float64)
            assert np.all(np.abs(y) <= np.abs(x) * (1 + 1e-6))
            assert np.all((y == 0) | (np.sign(y) == np.sign(x)))


def test_already_sparse_input_keeps_its_zeros():
    """docs/theory.md §4b.8: zeros of an already-sparse input stay zero; lam_inv starts from the non-zeros."""
    w = _model(4000, seed=5, zeros=1500)
    enc = surp.encode(w, 0.6)
    d = surp.decode(enc.stream)
    assert np.all(d["layer2"][:1500] == 0)
    info = surp.inspect(enc.stream)
    assert info["params"]["n_active"] == 4000 - 1500 - int(np.sum(w["layer.weight"] == 0))


def test_same_seed_same_bytes_other_seed_other_bytes():
    w = _model(1000, seed=8)
    assert surp.encode(w, 0.8, seed=1).stream == surp.encode(w, 0.8, seed=1).stream
    assert surp.encode(w, 0.8, seed=1).stream != surp.encode(w, 0.8, seed=2).stream


# ---------------------------------------------------------------- bad input

def test_nan_weights_name_tensor_and_count():
    w = _model(100)
    w["layer2"][[3, 7]] = np.nan
    with pytest.raises(InvalidArgumentError, match=r"layer2.*2 NaN"):
        surp.encode(w, 0.5)


@pytest.mark.parametrize("s", [0.0, 1.0, -0.1, 1.5, float("nan"), []])
def test_sparsity_outside_open_unit_interval(s):
    with pytest.raises(InvalidArgumentError, match="sparsity"):
        surp.encode(_model(100), s)


def test_all_zero_and_empty_tensors():
    """All-zero tensors are recorded and never selected; an all-zero model stops at once with a warning."""
    w = {"zero": np.zeros((4, 4), np.float32), "empty": np.zeros((0, 3)), "w": np.arange(1, 21, dtype=np.float64)}
    enc = surp.encode(w, 0.5)
    d = surp.decode(enc.stream)
    assert d["empty"].shape == (0, 3) and np.all(d["zero"] == 0) and d["zero"].dtype == np.float32
    with pytest.warns(RatedistWarning, match="reached sparsity"):
        enc = surp.encode({"z": np.zeros(10)}, 0.5)
    assert np.all(surp.decode(enc.stream)["z"] == 0)


def test_unreachable_target_warns_with_what_was_reached():
    w = {"w": np.array([1.0, 2.0, 0.0, 0.0, 0.0])}
    with pytest.warns(RatedistWarning, match="reached sparsity 0.6"):
        enc = surp.encode(w, 0.2)
    assert enc.report.checkpoints[-1].sparsity == pytest.approx(0.6)


def test_wrong_magic_version_and_absurd_header(small_encoding):
    _, enc = small_encoding
    with pytest.raises(CorruptStreamError, match="magic"):
        surp.decode(b"XXXX" + enc.stream[4:])
    with pytest.raises(CorruptStreamError, match="version"):
        surp.decode(enc.stream[:4] + b"\x09\x00" + enc.stream[6:])
    c = unpack_container(enc.stream)
    h = dict(c.header)
    h.pop("n_segments")
    for bad in ({"n_params": 10**12}, {"tensors": [{"name": "a", "shape": [2**40], "dtype": "float32",
                                                     "norm": 1.0, "size": 2**40}]},
                {"format": "other"}, {"algorithm": "magic"}):
        with pytest.raises(CorruptStreamError):
            surp.decode(pack_container({**h, **bad}, list(c.segments)))
    with pytest.raises(InvalidArgumentError):
        surp.decode("not bytes")


# ---------------------------------------------------------------- fuzzing (>= 500 cases)

@pytest.fixture(scope="module")
def fuzz_stream():
    w = {"a": np.random.default_rng(0).laplace(size=(20, 15)).astype(np.float32)}
    return surp.encode(w, [0.9, 0.5], seed=1).stream


def _decode_or_corrupt(data):
    try:
        out = surp.decode(data)
    except CorruptStreamError:
        return
    assert out["a"].shape == (20, 15) and np.all(np.isfinite(out["a"]))


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(cut=st.integers(0, 10**6))
def test_fuzz_truncations(fuzz_stream, cut):
    """Any truncation decodes or raises CorruptStreamError, never crashes or hangs (issue 3)."""
    _decode_or_corrupt(fuzz_stream[: cut % (len(fuzz_stream) + 1)])


@settings(deadline=None, max_examples=200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4))
def test_fuzz_byte_flips(fuzz_stream, flips):
    """Random byte flips anywhere: CorruptStreamError (CRC) or a valid decode."""
    buf = bytearray(fuzz_stream)
    for pos, x in flips:
        buf[pos % len(buf)] ^= x
    _decode_or_corrupt(bytes(buf))


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(1, 255)), min_size=1, max_size=4),
       seg=st.integers(0, 1))
def test_fuzz_segment_payload_with_valid_crc(fuzz_stream, flips, seg):
    """Corrupted segment payloads re-framed with valid CRCs reach the entropy decoders and the numba
    replay: they must raise CorruptStreamError or decode to finite weights, never write out of bounds."""
    c = unpack_container(fuzz_stream)
    segs = [bytearray(s) for s in c.segments]
    for pos, x in flips:
        segs[seg][pos % len(segs[seg])] ^= x
    h = dict(c.header)
    h.pop("n_segments")
    _decode_or_corrupt(pack_container(h, [bytes(s) for s in segs]))


# ---------------------------------------------------------------- CLI, save/load, bench smoke

def test_cli_encode_decode_inspect(tmp_path, capsys):
    from ratedist.cli import main
    from ratedist.io import load_weights, save_weights

    w = _model(1200, seed=9)
    save_weights(tmp_path / "m.safetensors", w)
    code = main(["surp", "encode", str(tmp_path / "m.safetensors"), "-o", str(tmp_path / "m.rdst"),
                 "--sparsity", "0.9", "--sparsity", "0.5", "--seed", "3", "--json"])
    assert code == 0
    payload = json.loads(capsys.readouterr().out)
    assert set(payload) >= {"n_params", "n_bits", "bpp", "ideal_bpp", "seconds", "checkpoints"}
    assert [round(c["sparsity"], 2) for c in payload["checkpoints"]] == [0.9, 0.5]
    assert main(["surp", "decode", str(tmp_path / "m.rdst"), "-o", str(tmp_path / "d.npz"), "--sparsity", "0.9",
                 "--json"]) == 0
    capsys.readouterr()
    dec = load_weights(tmp_path / "d.npz")
    ref = surp.decode(surp.load(tmp_path / "m.rdst"), sparsity=0.9)
    assert all(np.array_equal(dec[k], ref[k]) for k in ref)
    assert main(["surp", "inspect", str(tmp_path / "m.rdst"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["algorithm"] == "sequential" and len(info["checkpoints"]) == 2
    (tmp_path / "bad.rdst").write_bytes(b"RDST")
    assert main(["surp", "decode", str(tmp_path / "bad.rdst"), "-o", str(tmp_path / "x.npz")]) == 2
    assert not (tmp_path / "x.npz").exists()


def test_bench_smoke():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_surp.py"
    spec = importlib.util.spec_from_file_location("bench_surp", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(quick=True)
    assert rows and all({"name", "ratio", "target", "passed", "detail"} <= set(r) for r in rows)


@SETTINGS
@given(v=st.lists(st.integers(0, 2**40 - 2), min_size=0, max_size=300))
def test_numba_integer_code_matches_numpy_twin(v):
    """The numba integer code (symbols, 16-bit low chunks, reassembly) equals the NumPy twins of
    ratedist.surp.stream bit for bit, and reassembly inverts it (issue 3: same seed, same bytes)."""
    from ratedist.surp import stream as S

    v = np.asarray(v, dtype=np.int64)
    sym, vals, sizes = S._int_code(v)
    sym0, nlow0, low0 = S.integer_symbols(v)
    vals0, sizes0 = S._chunks(nlow0, low0)
    assert np.array_equal(sym, sym0) and np.array_equal(vals, vals0) and np.array_equal(sizes, sizes0)
    assert np.array_equal(S._chunk_sizes(sym), sizes0)
    assert np.array_equal(S._assemble_fast(sym, vals), v)
    e0, n0 = S._symbols_to_values(sym0)
    assert np.array_equal(S._assemble(sym0, e0, n0, vals0.astype(np.int64)), v)


@pytest.mark.parametrize("threshold", [0, 100, 10**9])
def test_selection_strategy_never_changes_the_trace(threshold):
    """Walking the permutation, scanning the listed E, and switching between the two (list mode
    entered and left many times) give the reference's trace exactly (issue 3: the fast selection
    finds the first eligible position, whatever the strategy)."""
    flat = flatten(_model(6000, seed=11))
    a = flat.magnitudes
    p = sequential_params(a, seed=5)
    ks = [needed_nonzeros(0.7, a.size)]
    f = run_fast(a, p, ks, max_iterations=max_iterations_for(a.size), scan_threshold=threshold)
    r = run_reference(a, p, ks, max_iterations=max_iterations_for(a.size), max_retries=10**6)
    for name in ("j", "m", "esize", "tau", "new", "ev_t", "ev_c"):
        assert np.array_equal(getattr(f, name), getattr(r, name)), name
    assert np.array_equal(f.ahat, r.ahat)


@pytest.mark.parametrize("search_thread", [None, False])
@pytest.mark.parametrize("threshold,speculate_from,log_cap", [(0, 1, None), (100, 1, None), (10**9, 1, None),
                                                               (100, 1, 3), (0, 50, 1), (100, 10**9, None),
                                                               (100, 1, 40)])
def test_search_ahead_never_changes_the_trace(threshold, speculate_from, log_cap, search_thread):
    """Searching the next iterations ahead (on a second thread against E as it changes, or on this
    thread at posting, ``search_thread=False``), then correcting each answer with the indices that
    entered E since the request was posted (or searching afresh when the winner is not in E), gives
    the reference's trace exactly, also when a request's log of entries overflows (issue 3: the fast selection finds the first eligible position, whatever the strategy)."""
    flat = flatten(_model(6000, seed=13))
    a = flat.magnitudes
    p = sequential_params(a, seed=9)
    ks = [needed_nonzeros(0.7, a.size)]
    f = run_fast(a, p, ks, max_iterations=max_iterations_for(a.size), scan_threshold=threshold,
                 speculate_from=speculate_from, _log_cap=log_cap, _search_thread=search_thread)
    r = run_reference(a, p, ks, max_iterations=max_iterations_for(a.size), max_retries=10**6)
    for name in ("j", "m", "esize", "tau", "new", "ev_t", "ev_c"):
        assert np.array_equal(getattr(f, name), getattr(r, name)), name
    assert np.array_equal(f.ahat, r.ahat) and f.checkpoints == r.checkpoints


def test_tensor_norm_independent_of_thread_count():
    """The per-tensor norm (stored in the header) is the same float for 1 and 2 numba threads and
    agrees with an exactly rounded sum to 1e-12 relative: streams do not depend on the core count."""
    import math

    import numba

    from ratedist.surp._common import tensor_norm

    x = np.random.default_rng(5).laplace(size=300_001).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = (tensor_norm(x, "l2"), tensor_norm(x, "l1"))
        numba.set_num_threads(min(2, numba.config.NUMBA_NUM_THREADS))
        two = (tensor_norm(x, "l2"), tensor_norm(x, "l1"))
    finally:
        numba.set_num_threads(before)
    assert one == two
    x64 = x.astype(np.float64)
    assert one[0] == pytest.approx(math.sqrt(math.fsum(x64 * x64)), rel=1e-12)
    assert one[1] == pytest.approx(math.fsum(np.abs(x64)), rel=1e-12)


@pytest.mark.parametrize("algorithm", ["sequential", "parallel"])
def test_report_carries_model_bound(algorithm):
    """Every checkpoint reports the model's own certified bound at its distortion: lower ≤ upper, the measured
    rate is not below the lower certificate (a coder below a true bound would be a counting error), the gap is
    bpp/bound − 1, and ``bound=False`` leaves the fields empty without changing the stream."""
    rng = np.random.default_rng(12)
    w = {"a": rng.laplace(size=(30, 40)).astype(np.float32), "b": rng.normal(size=30).astype(np.float32)}
    enc = surp.encode(w, [0.5, 0.9], algorithm=algorithm)
    for c in enc.report.checkpoints:
        assert 0 < c.bound_bpp <= c.bound_bpp_upper
        assert c.bpp >= c.bound_bpp
        assert c.bound_gap == pytest.approx(c.bpp / c.bound_bpp - 1)
    d = enc.report.to_dict()["checkpoints"][0]
    assert {"bound_bpp", "bound_bpp_upper", "bound_gap"} <= set(d)
    plain = surp.encode(w, [0.5, 0.9], algorithm=algorithm, bound=False)
    assert plain.stream == enc.stream and plain.report.checkpoints[0].bound_bpp is None
    with pytest.raises(InvalidArgumentError, match="`bound`"):
        surp.encode(w, [0.5], bound="yes")


def _bn_model():
    rng = np.random.default_rng(4)
    return {"conv.weight": rng.laplace(size=(8, 4, 3, 3)).astype(np.float32),
            "bn.weight": rng.random(8).astype(np.float32), "bn.bias": rng.normal(size=8).astype(np.float32),
            "bn.running_mean": rng.normal(size=8).astype(np.float32),
            "bn.running_var": rng.random(8).astype(np.float32),
            "bn.num_batches_tracked": np.array(123, dtype=np.int64),
            "fc.weight": rng.laplace(size=(10, 32)).astype(np.float32)}


@pytest.mark.parametrize("algorithm", ["sequential", "parallel"])
def test_buffers_carried_losslessly(algorithm):
    """A state_dict's BatchNorm buffers are not coded (the reference code codes trainable parameters only):
    every checkpoint prefix decodes them bit for bit with their dtype and shape (0-d included), they are not
    counted in n_params, and the trainable tensors code as they would alone; include_buffers=True codes the
    float buffers too (the integer counter always travels losslessly)."""
    w = _bn_model()
    enc = surp.encode(w, [0.9, 0.5], algorithm=algorithm, bound=False)
    trainable = {k: v for k, v in w.items() if "running" not in k and "num_batches" not in k}
    assert enc.report.n_params == sum(v.size for v in trainable.values())
    alone = surp.encode(trainable, [0.9, 0.5], algorithm=algorithm, bound=False)
    for k, cp in enumerate(enc.report.checkpoints):
        dec = surp.decode(enc.stream[:cp.n_bytes], checkpoint=k)
        ref = surp.decode(alone.stream[:alone.report.checkpoints[k].n_bytes], checkpoint=k)
        assert list(dec) == list(w)
        for name in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
            assert dec[name].dtype == w[name].dtype and dec[name].shape == w[name].shape
            assert dec[name].tobytes() == w[name].tobytes()
        assert all(dec[n].tobytes() == ref[n].tobytes() for n in trainable)
    inc = surp.encode(w, [0.9], algorithm=algorithm, bound=False, include_buffers=True)
    assert inc.report.n_params == enc.report.n_params + 16


def test_carried_tensor_forgeries_are_corrupt():
    """A carried tensor whose payload is not base64, or holds the wrong number of bytes, or claims coded
    entries, is a corrupt stream (CRC recomputed by re-packing), never another exception."""
    import base64

    from ratedist.coding.container import pack_container, unpack_container

    enc = surp.encode(_bn_model(), [0.9], bound=False)
    c = unpack_container(enc.stream)
    i = next(i for i, t in enumerate(c.header["tensors"]) if t["name"] == "bn.running_var")
    for edit in ({"raw": "@@not base64@@"}, {"raw": base64.b64encode(b"\0" * 12).decode()}, {"size": 8},
                 {"norm": 1.0}, {"dtype": "<U4"}):
        h = json.loads(json.dumps(c.header))
        h["tensors"][i].update(edit)
        with pytest.raises(CorruptStreamError, match="carried tensor"):
            surp.decode(pack_container(h, list(c.segments)))
