"""Tests of ratedist.fedpm: masks, mean estimator, Beta aggregation, measured bit rates, privacy (docs/theory.md §5)."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratedist import CorruptStreamError, InvalidArgumentError, InvalidShapeError
from ratedist.coding.entropy import binary_entropy_bits
from ratedist.fedpm import (
    BetaAggregator,
    bitrate_paper,
    bitrate_per_coordinate,
    bpp_paper_formula,
    clip_for_ldp,
    decode_mask_paper,
    decode_mask_per_coordinate,
    error_bound,
    estimator_error,
    ldp_epsilon,
    logit_safe,
    mask_counts,
    mean_estimate,
    sample_masks,
)

K_SE = 5.0  # Monte Carlo tolerance in standard errors (fixed seeds)
EPS = 1e-12  # identities in float64
RANGE_CODER_FLUSH_BITS = 64  # at most two 32-bit words beyond the information content
SMALL = settings(max_examples=25, deadline=None)


@SMALL
@given(st.integers(1, 6), st.integers(1, 12), st.integers(0, 2**31))
def test_sample_masks_unbiased(k, d, seed):
    """E m = θ coordinate-wise (docs/theory.md §5, uplink): Monte Carlo mean within K_SE standard errors."""
    theta = np.random.default_rng(seed).random((k, d))
    t = 4000
    mean = np.zeros((k, d))
    rng = np.random.default_rng(seed + 1)
    for _ in range(t):
        mean += sample_masks(theta, rng=rng)
    mean /= t
    se = np.sqrt(theta * (1 - theta) / t) + 1e-12
    # Bonferroni over k*d coordinates is absorbed by K_SE = 5
    assert np.all(np.abs(mean - theta) <= K_SE * se + 2.0**-24)


@SMALL
@given(st.integers(1, 40_000), st.integers(1, 8), st.integers(0, 2**64 - 1), st.integers(0, 2**40),
       st.sampled_from([np.float32, np.float64]))
def test_counter_kernels_match_reference(d, k, key, client0, dtype):
    """The parallel and serial numba samplers and count kernels equal the NumPy reference of the same counter-based
    hash bit for bit (odd and even d, any key and first client, float32/float64, θ at 0 and 1)."""
    from ratedist.kernels._fedpm_cpu import (
        accumulate_counter_bernoulli,
        accumulate_counter_bernoulli_serial,
        counter_bernoulli,
        counter_bernoulli_reference,
        counter_bernoulli_serial,
    )

    theta = np.random.default_rng(key % 1000).random((k, d)).astype(dtype)
    theta[:, 0] = 0.0
    theta[:, -1] = 1.0 if d > 1 else 0.0
    ref = counter_bernoulli_reference(theta, key, client0)
    out = np.empty((k, d), dtype=np.uint8)
    assert counter_bernoulli(theta, np.uint64(key), client0, out) == 0
    assert np.array_equal(out, ref) and np.all(out[:, 0] == 0) and (d == 1 or np.all(out[:, -1] == 1))
    counts = np.zeros(d, dtype=np.uint32)
    rows = tuple(theta[c] for c in range(k)) + (theta[0],) * (8 - k)  # padding rows are ignored (mask_counts pads to 8)
    assert accumulate_counter_bernoulli(rows, k, np.uint64(key), client0, counts) == 0
    assert np.array_equal(counts, ref.sum(0))
    serial_out, serial_counts = np.empty_like(out), np.zeros_like(counts)
    assert counter_bernoulli_serial(theta, np.uint64(key), client0, serial_out) == 0
    assert accumulate_counter_bernoulli_serial(rows, k, np.uint64(key), client0, serial_counts) == 0
    assert np.array_equal(serial_out, out) and np.array_equal(serial_counts, counts)


def test_counter_hash_golden_and_thread_invariance():
    """mix64 is splitmix64's finalizer (published first output 0xE220A8397B1DCDAF from state 0); the masks do not
    depend on the number of numba threads, and invalid θ is counted by the kernel and reported by name."""
    import numba

    from ratedist.kernels._fedpm_cpu import counter_uniforms_reference
    from ratedist.kernels._mix import mix64_int

    assert mix64_int(0x9E3779B97F4A7C15) == 0xE220A8397B1DCDAF
    u = counter_uniforms_reference(0, -1, 4)  # c = mix64(0) = 0: the splitmix64 sequence from state 0
    assert int(u[0]) == 0x7B1DCDAF and int(u[1]) == 0xE220A839
    theta = np.random.default_rng(3).random((3, 50_001))
    a = sample_masks(theta, seed=9)
    n = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        b = sample_masks(theta, seed=9)
        c1, _ = mask_counts(iter(theta), seed=9)
    finally:
        numba.set_num_threads(n)
    assert np.array_equal(a, b) and np.array_equal(c1, a.sum(0))
    bad = theta.copy()
    bad[2, 777] = np.nan
    with pytest.raises(InvalidArgumentError, match=r"`thetas\[2\]`"):
        mask_counts(iter(bad), seed=0)


def test_sample_masks_determinism_and_extremes():
    """Same seed, same masks; θ = 0 and θ = 1 give 0 and 1 exactly; the input is not modified."""
    theta = np.array([[0.0, 1.0, 0.3, 0.7]] * 50)
    before = theta.copy()
    a, b = sample_masks(theta, seed=3), sample_masks(theta, seed=3)
    assert a.dtype == np.uint8 and np.array_equal(a, b) and np.array_equal(theta, before)
    assert np.all(a[:, 0] == 0) and np.all(a[:, 1] == 1)
    counts, k = mask_counts(theta, seed=3)
    assert k == 50 and np.array_equal(counts, a.sum(0))
    assert np.array_equal(sample_masks(theta[17], seed=3, first_client=17), a[17])
    assert not np.array_equal(sample_masks(theta, seed=4), a)
    c32, _ = mask_counts(iter(theta.astype(np.float32)), seed=3)  # chunked iterable, float32 rows
    assert np.array_equal(c32, a.sum(0))


@SMALL
@given(st.integers(1, 5), st.integers(1, 8), st.integers(0, 2**31))
def test_estimator_error_exact_formula(k, d, seed):
    """E‖θ̂ − θ̄‖² = (1/K²) Σ_k Σ_i θ(1−θ) (docs/theory.md §5): Monte Carlo within K_SE standard errors."""
    rng = np.random.default_rng(seed)
    theta = rng.random((k, d))
    t = 3000
    errs = np.array([np.sum((mean_estimate(sample_masks(theta, rng=rng)) - theta.mean(0)) ** 2) for _ in range(t)])
    exact = estimator_error(theta)
    assert abs(errs.mean() - exact) <= K_SE * errs.std(ddof=1) / math.sqrt(t) + 1e-12


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 10), st.integers(0, 2**31), st.booleans())
def test_error_bound_equality_iff_half(k, d, seed, half):
    """estimator_error ≤ d/(4K), with equality iff every θ = ½ (docs/theory.md §5)."""
    theta = np.full((k, d), 0.5) if half else np.random.default_rng(seed).random((k, d))
    err, bound = estimator_error(theta), error_bound(d, k)
    assert err <= bound * (1 + EPS)
    assert (abs(err - bound) <= EPS * bound) == bool(np.all(theta == 0.5))


@SMALL
@given(st.integers(1, 8), st.integers(1, 20), st.integers(0, 2**31))
def test_beta_every_round_prior_one_is_average(k, d, seed):
    """With reset every round and λ₀ = 1 the posterior mode equals the plain average, bit for bit (docs/theory.md §5)."""
    theta = np.random.default_rng(seed).random((k, d))
    agg = BetaAggregator(d)
    for r in range(3):
        m = sample_masks(theta, seed=seed + r)
        g = agg.update(m)
        assert np.array_equal(g, mean_estimate(m))
        assert np.all(np.isfinite(agg.scores()))


@SMALL
@given(st.integers(1, 6), st.integers(1, 10), st.floats(0.05, 5.0), st.integers(0, 2**31),
       st.sampled_from(["mode", "mean"]), st.sampled_from(["every_round", "never"]))
def test_beta_readout_in_unit_interval(k, d, prior, seed, readout, reset):
    """θ^g ∈ [0, 1] for every prior, read-out and reset policy; scores are finite (unanimous clients too)."""
    agg = BetaAggregator(d, prior=prior, readout=readout, reset=reset)
    rng = np.random.default_rng(seed)
    for _ in range(3):
        m = (rng.random((k, d)) < rng.choice([0.0, 0.5, 1.0])).astype(np.uint8)
        g = agg.update(m)
        assert np.all((g >= 0) & (g <= 1)) and np.all(np.isfinite(agg.scores()))


@SMALL
@given(st.integers(1, 9), st.integers(1, 3000), st.floats(0.05, 5.0), st.booleans(), st.booleans(), st.booleans(),
       st.integers(0, 2**31))
def test_beta_kernel_matches_array_reference(k, d, prior, mode, mapping, reset, seed):
    """The one-pass numba Beta update equals its array reference (the CuPy path) bit for bit: α, β and θ^g, for every
    read-out, prior, reset flag and the 0.01/0.99 mapping, unanimous coordinates included."""
    from ratedist.fedpm.aggregation import beta_update_reference
    from ratedist.kernels._fedpm_cpu import beta_update

    rng = np.random.default_rng(seed)
    counts = rng.integers(0, k + 1, d).astype(np.uint16)
    counts[:2] = [0, k][: min(2, d)] if d >= 2 else counts[:1]
    alpha, beta = rng.uniform(0.1, 9, d), rng.uniform(0.1, 9, d)
    low, high = (0.01, 0.99) if mapping else (0.0, 1.0)
    a_ref, b_ref, t_ref = beta_update_reference(alpha, beta, counts, k, low, high, reset, prior, mode)
    theta = np.empty(d)
    beta_update(alpha, beta, counts, float(k), low, high, reset, prior, mode, theta)
    assert np.array_equal(alpha, a_ref) and np.array_equal(beta, b_ref) and np.array_equal(theta, t_ref)


def test_beta_policies_and_reference_mapping():
    """'never' accumulates; a schedule resets on listed rounds; counts equal masks; the 0.01/0.99 mapping stays inside."""
    m = np.array([[1, 0, 1], [1, 0, 0]], dtype=np.uint8)
    never = BetaAggregator(3, reset="never")
    never.update(m)
    g = never.update(m)
    assert np.allclose(never.alpha, [5, 1, 3]) and np.allclose(g, [1.0, 0.0, 0.5])
    sched = BetaAggregator(3, reset=[1])
    sched.update(m)
    sched.update(m)
    assert np.allclose(sched.alpha, [3, 1, 2])
    viacount = BetaAggregator(3).update(m.sum(0), n_clients=2)
    assert np.array_equal(viacount, BetaAggregator(3).update(m))
    ref = BetaAggregator(3, reference_mapping=True).update(m)
    assert np.allclose(ref, [0.99, 0.01, 0.5]) and np.all((ref >= 0.01) & (ref <= 0.99))
    assert np.allclose(logit_safe(np.array([0.0, 1.0]), 1e-6), [math.log(1e-6 / (1 - 1e-6)), math.log((1 - 1e-6) / 1e-6)])


@SMALL
@given(st.integers(1, 3000), st.floats(0.0, 1.0), st.integers(0, 2**31))
def test_bitrate_paper_roundtrip_and_bounds(n, f, seed):
    """Bits decode exactly; n_bits = 8·len(bytes); log2(N)/N ≤ formula ≤ 1 + log2(N)/N; measured ≤ formula +
    (header + CRC + 64 flush bits + log2(N+1) − log2 N)/N (docs/theory.md §5, bitrate)."""
    m = (np.random.default_rng(seed).random(n) < f).astype(np.uint8)
    code = bitrate_paper(m)
    assert np.array_equal(decode_mask_paper(code.data), m)
    assert code.n_bits == 8 * len(code.data) and code.bpp == code.n_bits / n
    lo = math.log2(n) / n
    assert lo - EPS <= code.bpp_formula <= 1 + lo + EPS
    slack = (code.overhead_bits + RANGE_CODER_FLUSH_BITS + 1) / n + 1e-3
    assert code.bpp <= code.bpp_formula + slack


@pytest.mark.parametrize("n", [1, 7, 8, 9, 4099, 100_003])
@pytest.mark.parametrize("f", ["zero", "one", "single", "tiny", 0.5, 0.01])
def test_bitrate_paper_byte_symbols_extremes(n, f):
    """Byte-symbol coding (8 bits under the product of 8 Bernoulli(f)) plus separately coded tail bits decodes exactly
    and stays within the coder-overhead bound, f = 0, f = 1, a single one, f ≈ 2^-20, N not a multiple of 8."""
    rng = np.random.default_rng(n)
    m = np.zeros(n, dtype=np.uint8)
    if f == "one":
        m[:] = 1
    elif f == "single":
        m[n - 1] = 1  # the one sits in the tail when N mod 8 ≠ 0
    elif f == "tiny":
        m = (rng.random(n) < 2.0**-20).astype(np.uint8)
    elif f != "zero":
        m = (rng.random(n) < f).astype(np.uint8)
    for arg in (m, m.astype(bool), m.astype(np.int64)):
        code = bitrate_paper(arg)
        assert np.array_equal(decode_mask_paper(code.data), m) and code.n_ones == int(m.sum())
    assert code.bpp <= code.bpp_formula + (code.overhead_bits + RANGE_CODER_FLUSH_BITS + 1) / n + 1e-3


def test_bitrate_large_n_split_count_and_symmetry():
    """N ≥ 2^23 codes the count in two uniform symbols; h_b(f) = h_b(1 − f) and flipping the mask keeps the formula."""
    n = (1 << 23) + 5
    m = np.zeros(n, dtype=np.uint8)
    m[::3] = 1
    code = bitrate_paper(m)
    assert np.array_equal(decode_mask_paper(code.data), m)
    flipped = bitrate_paper(1 - m)
    assert abs(flipped.bpp_formula - code.bpp_formula) <= EPS
    assert abs(code.bpp - code.bpp_formula) < 1e-3
    f = np.linspace(0, 1, 101)
    assert np.allclose(binary_entropy_bits(f), binary_entropy_bits(1 - f), atol=1e-15)
    assert bpp_paper_formula(0, 10) == pytest.approx(math.log2(10) / 10)


@SMALL
@given(st.integers(1, 2000), st.integers(0, 2**31))
def test_bitrate_per_coordinate_roundtrip(n, seed):
    """Per-coordinate Bernoulli(θ^g) coding decodes exactly with the same θ^g; n_bits = 8·len(bytes);
    measured ≤ cross-entropy + (header + CRC + 64)/N + coder slack."""
    rng = np.random.default_rng(seed)
    th = rng.choice([0.0, 1.0, 0.5, 0.1], n) * rng.random(n) ** 0.1
    m = (rng.random(n) < th).astype(np.uint8)
    code = bitrate_per_coordinate(m, th)
    assert np.array_equal(decode_mask_per_coordinate(code.data, th), m)
    assert code.n_bits == 8 * len(code.data)
    assert code.bpp <= code.bpp_formula + (code.overhead_bits + RANGE_CODER_FLUSH_BITS) / n + 1e-3


@pytest.mark.parametrize("mutate", ["flip", "truncate", "tag", "empty"])
def test_bitrate_corrupted_payloads(mutate):
    """Corrupted, truncated or foreign payloads raise CorruptStreamError."""
    m = (np.arange(500) % 3 == 0).astype(np.uint8)
    data = bytearray(bitrate_paper(m).data)
    if mutate == "flip":
        data[len(data) // 2] ^= 0x10
    elif mutate == "truncate":
        data = data[:-3]
    elif mutate == "tag":
        data = bytearray(bitrate_per_coordinate(m, np.full(500, 0.3)).data)
    else:
        data = bytearray()
    with pytest.raises(CorruptStreamError):
        decode_mask_paper(bytes(data))


def test_ldp_epsilon():
    """ε = ln((1 − θ_min)/θ_min); a clipped θ has likelihood ratios bounded by e^ε (docs/theory.md §5, privacy)."""
    assert ldp_epsilon(0.5) == 0.0
    assert ldp_epsilon(0.1) == pytest.approx(math.log(9))
    assert ldp_epsilon(0.1, units="bits") == pytest.approx(math.log2(9))
    t = clip_for_ldp(np.array([0.0, 0.5, 1.0]), 0.1)
    ratio = max(t.max() / t.min(), (1 - t.min()) / (1 - t.max()))
    assert ratio <= math.exp(ldp_epsilon(0.1)) * (1 + EPS)
    for bad in (0.0, 0.6, float("nan")):
        with pytest.raises(InvalidArgumentError, match="`theta_min`"):
            ldp_epsilon(bad)


@pytest.mark.parametrize("theta, exc", [
    (np.array([0.2, 1.5]), InvalidArgumentError),
    (np.array([0.2, np.nan]), InvalidArgumentError),
    (np.array([-0.1]), InvalidArgumentError),
    (np.zeros((0, 4)), InvalidArgumentError),
    (np.zeros((2, 2, 2)), InvalidShapeError),
])
def test_bad_theta(theta, exc):
    """θ outside [0, 1], NaN, K = 0 or a wrong rank raise errors naming `theta`."""
    with pytest.raises(exc, match="`theta`"):
        sample_masks(theta, seed=0)
    with pytest.raises(exc):
        estimator_error(theta)


def test_bad_shapes_and_counts():
    """Mismatched shapes, K = 0, and impossible counts raise clear errors."""
    agg = BetaAggregator(3)
    with pytest.raises(InvalidShapeError):
        agg.update(np.zeros((2, 4), dtype=np.uint8))
    with pytest.raises(InvalidArgumentError, match="`n_clients`"):
        agg.update(np.array([1, 0, 2]))
    with pytest.raises(InvalidArgumentError, match="`counts`"):
        agg.update(np.array([1, 0, 3]), n_clients=2)
    with pytest.raises(InvalidArgumentError):
        agg.update(np.zeros((0, 3)))
    with pytest.raises(InvalidArgumentError):
        mean_estimate(np.array([[0, 2]]))
    with pytest.raises(InvalidShapeError):
        bitrate_per_coordinate(np.zeros(4, dtype=np.uint8), np.full(5, 0.5))
    with pytest.raises(InvalidArgumentError, match="`K`"):
        error_bound(10, 0)
    with pytest.raises(InvalidArgumentError, match="`reset`"):
        BetaAggregator(3, reset="sometimes")
    with pytest.raises(InvalidShapeError):
        mask_counts(iter([np.full(3, 0.5), np.full(4, 0.5)]), seed=0)


def test_cli_fedpm_estimate(capsys):
    """`ratedist fedpm estimate --json` reports mse, exact error, bound and measured vs formula bits; bad input exits 2."""
    import json

    from ratedist.cli import main

    assert main(["fedpm", "estimate", "--dim", "2000", "--clients", "4", "--theta-dist", "half", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"mse", "error_exact", "bound", "bpp_measured", "bpp_paper"}
    assert out["error_exact"] == pytest.approx(out["bound"])  # all θ = ½: equality
    assert out["bpp_paper"] <= out["bpp_measured"] <= out["bpp_paper"] + 0.1
    assert main(["fedpm", "estimate", "--dim", "0", "--clients", "3"]) == 2
    assert "`--dim`" in capsys.readouterr().err


def test_fedpm_error_figure_quick(tmp_path):
    """figures/fedpm_error.py (quick): the Monte Carlo error agrees with the exact formula within K_SE standard errors
    at every K and θ law, never exceeds the bound d/(4K) beyond its error bar, and the PNG/JSON are written."""
    import json

    from ratedist.scripts import load_script, repo_root

    mod = load_script(repo_root() / "figures" / "fedpm_error.py")
    mod.main(["--quick", "--out", str(tmp_path)])
    data = json.loads((tmp_path / "fedpm_error.json").read_text())["results"]
    assert data["max_abs_z"] < K_SE
    for curve in data["curves"]:
        for p in curve["points"]:
            assert p["exact"] <= p["bound"] * (1 + EPS) and p["error"] - p["ci95"] <= p["bound"] * (1 + EPS)
    assert (tmp_path / "fedpm_error.png").stat().st_size > 10_000


def test_one_mixer_three_spellings():
    """The numba, array and integer spellings of splitmix64's finalizer (ratedist/kernels/_mix.py) give
    the same 64-bit outputs on edge values and random inputs."""
    from numba import njit

    from ratedist.kernels._mix import mix64, mix64_array, mix64_int

    @njit
    def _apply(z):
        out = np.empty_like(z)
        for i in range(z.size):
            out[i] = mix64(z[i])
        return out

    z = np.concatenate([np.array([0, 1, 2**63, 2**64 - 1], dtype=np.uint64),
                        np.random.default_rng(0).integers(0, 2**64 - 1, size=1000, dtype=np.uint64)])
    a = mix64_array(z)
    assert np.array_equal(_apply(z), a)
    assert [mix64_int(int(v)) for v in z] == [int(v) for v in a]
