"""Tests of ratedist.refinement: successive-refinement random codebooks (docs/theory.md §3)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from ratedist import CorruptStreamError, InvalidArgumentError, InvalidShapeError
from ratedist.coding import prefix_length
from ratedist.errors import UnreachableTargetError
from ratedist.rd import rate_laplace
from ratedist.refinement import (
    ideal_refinement_stage,
    make_refinement_code,
    measure_refinement,
    nearest_codeword,
    refinement_decode,
    refinement_decode_bytes,
    refinement_encode,
    refinement_encode_bytes,
    split_rate,
)

KS_ALPHA = 0.01  # KS test level with a fixed seed
K_SE = 5.0  # Monte Carlo tolerance in standard errors


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 24), st.integers(1, 64), st.integers(1, 40))
def test_numba_matches_numpy_reference(seed, n, k, b):
    """The numba kernel returns the same indices and distances (bitwise) as the NumPy reference:
    both sum |x_j − c_j| in coordinate order and break ties toward the smaller index."""
    rng = np.random.default_rng(seed)
    book = rng.laplace(size=(k, n)) * (rng.random((k, n)) < 0.7)
    x = rng.laplace(size=(b, n))
    i1, d1 = nearest_codeword(x, book, backend="numpy")
    i2, d2 = nearest_codeword(x, book, backend="numba")
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    brute = np.abs(x[:, None, :] - book[None]).sum(-1)
    assert np.allclose(d1, brute.min(axis=1), rtol=1e-12)


def test_cuda_kernel_matches_reference_small():
    """The numba.cuda twin (simulator without a GPU, tiny codebooks) gives the reference's indices."""
    rng = np.random.default_rng(0)
    book = rng.laplace(size=(40, 3))
    book[5] = book[9]  # a duplicate codeword: the smaller index must win
    x = np.concatenate([rng.laplace(size=(12, 3)), book[9:10]])
    i1, d1 = nearest_codeword(x, book, backend="numpy")
    i2, d2 = nearest_codeword(x, book, backend="cuda")
    np.testing.assert_array_equal(i1, i2)
    np.testing.assert_array_equal(d1, d2)
    assert i2[-1] == 5


def test_seeded_codebooks_and_indices():
    """Same seed → same codebooks, indices and bytes; a different seed → different codebooks."""
    u = np.random.default_rng(1).laplace(size=(50, 6))
    a, b = make_refinement_code(6, [1, 1], seed=7), make_refinement_code(6, [1, 1], seed=7)
    assert all(np.array_equal(x, y) for x, y in zip(a.codebooks, b.codebooks))
    assert refinement_encode_bytes(a, u) == refinement_encode_bytes(b, u)
    assert not np.array_equal(make_refinement_code(6, [1, 1], seed=8).codebooks[0], a.codebooks[0])


def test_codebook_law_is_the_optimal_reproduction():
    """Stage t's codewords follow the optimal reproduction law of Laplace(λ_t) at D_t = 1/λ_{t+1}:
    atom (λ_t/λ_{t+1})² at zero (docs/theory.md §3)."""
    code = make_refinement_code(16, [0.75, 0.75], seed=0)
    for t, book in enumerate(code.codebooks):
        atom = (code.lams[t] / code.lams[t + 1]) ** 2
        frac = np.mean(book == 0)
        assert abs(frac - atom) <= K_SE * np.sqrt(atom * (1 - atom) / book.size)


def test_ideal_stage_residual_is_laplacian_with_next_lambda():
    """docs/theory.md §3: after an ideal stage (V ~ P(V|U) of the optimal channel) the residual U − V is
    Laplace(λ_{t+1}) (KS test, fixed seed), independent of V, and two ideal stages reach D(R₁+R₂)."""
    u = np.random.default_rng(0).laplace(scale=1 / 2.0, size=100_000)
    s1 = ideal_refinement_stage(u, 2.0, 0.7, seed=1)
    assert s1.lam_next == pytest.approx(2.0 * 2**0.7)
    assert stats.kstest(s1.residual, stats.laplace(scale=1 / s1.lam_next).cdf).pvalue > KS_ALPHA
    atom = (2.0 / s1.lam_next) ** 2
    assert abs(np.mean(s1.reproduction == 0) - atom) <= K_SE * np.sqrt(atom * (1 - atom) / u.size)
    assert abs(np.corrcoef(np.abs(s1.residual), np.abs(s1.reproduction))[0, 1]) <= K_SE / np.sqrt(u.size)
    s2 = ideal_refinement_stage(s1.residual, s1.lam_next, 0.8, seed=2)
    assert stats.kstest(s2.residual, stats.laplace(scale=1 / s2.lam_next).cdf).pvalue > KS_ALPHA
    d = np.mean(np.abs(u - s1.reproduction - s2.reproduction))
    target = 2.0 ** (-1.5) / 2.0
    assert abs(d - target) <= K_SE * target / np.sqrt(u.size)


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 24), st.lists(st.floats(0, 0.5), min_size=1, max_size=5))
def test_stage_rates_add_up(n, rates):
    """docs/theory.md §3: the stage rates k_t/n add up, and Σ_t log2(λ_{t+1}/λ_t) = R(D_L) (no rate loss)."""
    bits = [int(round(n * r)) for r in rates]
    total = sum(bits) / n
    code = make_refinement_code(n, [b / n for b in bits], max_codebook_entries=2**30)
    assert sum(code.stage_rates()) == pytest.approx(total, abs=1e-12)
    lams = np.array(code.lams)
    assert np.sum(np.log2(lams[1:] / lams[:-1])) == pytest.approx(rate_laplace(code.distortions()[-1], code.lam, units="bits"), abs=1e-12)


def test_split_rate_matches_total():
    """split_rate spreads round(n·R) index bits over the stages: L stages and one stage have the same total rate."""
    for n, r, L in [(8, 1.0, 3), (12, 1.0, 4), (5, 0.6, 2)]:
        rates = split_rate(n, r, L)
        assert len(rates) == L and sum(round(x * n) for x in rates) == round(n * r)


def test_gap_to_rd_shrinks_with_block_length():
    """Random-coding successive refinement approaches D(R) as n grows (fixed seed, 3000 blocks):
    at 1 bit/symbol the operational distortion gap decreases over n = 2, 4, 8, 12."""
    gaps = []
    for n in (2, 4, 8, 12):
        rep = measure_refinement(n, [0.5, 0.5], blocks=3000, seed=0, compare_single=False)
        last = rep.stages[-1]
        assert last.cumulative_rate == 1.0 and last.measured_rate == 1.0
        gaps.append(last.distortion / last.rd_distortion - 1)
    assert all(g > 0 for g in gaps)  # operational points stay above the R(D) curve
    assert all(a > b for a, b in zip(gaps, gaps[1:])), gaps


def test_stages_vs_single_stage_and_evaluations():
    """L stages cost Σ 2^{k_t} evaluations per block vs 2^{Σk_t}; every stage's distortion decreases
    and is at least D(R) at its cumulative rate."""
    rep = measure_refinement(8, split_rate(8, 1.0, 2), blocks=1500, seed=3)
    assert rep.evaluations == 2 * 2**4 and rep.single_stage.evaluations == 2**8
    assert not rep.single_stage.skipped and rep.single_stage.distortion > rep.single_stage.rd_distortion
    ds = [s.distortion for s in rep.stages]
    assert ds[0] > ds[1] and all(s.distortion > s.rd_distortion for s in rep.stages)


def test_stream_roundtrip_and_prefix():
    """The byte stream decodes to the encoder's reconstructions; a prefix with the first t segments
    decodes to the first t stages; corrupted bytes raise CorruptStreamError."""
    code = make_refinement_code(5, [0.6, 0.6, 0.4], seed=2)
    u = np.random.default_rng(3).laplace(size=(40, 5))
    idx = refinement_encode(code, u)
    blob = refinement_encode_bytes(code, u)
    full = refinement_decode_bytes(blob)
    np.testing.assert_array_equal(full, refinement_decode(code, idx))
    pre = refinement_decode_bytes(blob[: prefix_length(blob, 2)], stages=2)
    np.testing.assert_array_equal(pre, full[:2])
    bad = bytearray(blob)
    bad[-6] ^= 0x10
    with pytest.raises(CorruptStreamError):
        refinement_decode_bytes(bytes(bad))
    with pytest.raises(CorruptStreamError):
        refinement_decode_bytes(blob[:-3])


def test_bad_inputs():
    """Out-of-range block, rates, shapes, indices and oversized codebooks raise clear errors."""
    with pytest.raises(InvalidArgumentError, match="`block`"):
        make_refinement_code(25, 1.0)
    with pytest.raises(InvalidArgumentError, match="rates"):
        make_refinement_code(4, [1.0, float("nan")])
    with pytest.raises(UnreachableTargetError, match="max_codebook_entries"):
        make_refinement_code(24, 1.0)
    code = make_refinement_code(4, [0.5])
    with pytest.raises(InvalidShapeError, match="multiple"):
        refinement_encode(code, np.zeros(7))
    with pytest.raises(InvalidArgumentError, match="stage 1"):
        refinement_decode(code, np.array([[4]]))
    with pytest.raises(InvalidShapeError, match="length"):
        nearest_codeword(np.zeros((2, 3)), np.zeros((4, 2)))


def test_cli_refine_json(capsys):
    """`ratedist refine --json` reports per-stage rate/distortion/D(R), the one-stage comparison and
    the evaluation counts L·2^{nR/L} vs 2^{nR}."""
    import json

    from ratedist.cli import main

    assert main(["refine", "--block", "6", "--stages", "2", "--rate", "1", "--blocks", "300", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [s["rate"] for s in out["stages"]] == [0.5, 0.5]
    assert out["evaluations"] == 2 * 2**3 and out["single_stage"]["evaluations"] == 2**6
    assert all(s["distortion"] > s["rd_distortion"] for s in out["stages"])
    assert main(["refine", "--block", "30", "--stages", "2", "--rate", "1", "--json"]) == 2
    assert "`--block`" in capsys.readouterr().err


def test_benchmark_smoke():
    """benchmarks/bench_refinement.py runs in quick mode and its kernels agree with the references
    (speed is not asserted here; see the benchmark)."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_refinement.py"
    spec = importlib.util.spec_from_file_location("bench_refinement", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(quick=True)
    assert rows and all({"name", "ratio", "target", "passed", "detail"} <= set(r) for r in rows)
    assert "same indices: 1.0000" in rows[0]["detail"] and rows[1]["passed"]
