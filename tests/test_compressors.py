"""Tests of ratedist.compressors: one interface, measured bits, unbiasedness, the DRIVE identity, WHT kernels (docs/theory.md §6)."""

import math
import os
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratedist import CorruptStreamError, InvalidArgumentError, InvalidShapeError
from ratedist.compressors import COMPRESSORS, decode, get_compressor, hadamard, rotate, unrotate
from ratedist.compressors.base import haar_orthogonal, rotation_signs
from ratedist.compressors.eden import lloyd_max_gaussian
from ratedist.compressors.qsgd import elias_gamma_lengths
from ratedist.kernels._fedpm_cpu import read_qsgd_tokens, read_qsgd_tokens_reference, write_fields, write_fields_reference

K_SE = 5.0  # Monte Carlo tolerance in standard errors (fixed seeds)
ID_TOL = 1e-10  # relative tolerance of float64 identities
F32_TOL = 1e-6  # relative tolerance where a float32 scale enters
SMALL = settings(max_examples=20, deadline=None)

ALL = [("qsgd", {"s": 3}), ("drive", {}), ("drive", {"scale": "mse"}), ("eden", {"bits": 2}), ("eden", {"bits": 0.5}),
       ("eden", {"bits": 1.5}), ("fedmask", {}), ("fedpm", {}), ("drive", {"rotation": "uniform"})]
UNIT = {"fedmask", "fedpm"}


def _vec(name, d, seed):
    rng = np.random.default_rng(seed)
    return rng.random(d) if name in UNIT else rng.standard_normal(d) * rng.uniform(0.1, 10)


@SMALL
@given(st.integers(1, 300), st.integers(0, 2**31), st.sampled_from(ALL))
def test_roundtrip_bits_and_determinism(d, seed, method):
    """Same seed, same bytes; the decoder needs only the bytes; every bit count is 8·len(bytes);
    the input is never modified."""
    name, params = method
    c = get_compressor(name, **params)
    x = _vec(name, d, seed)
    before = x.copy()
    data = c.encode(x, seed=seed)
    assert data == c.encode(x, seed=seed) and np.array_equal(x, before)
    xh = decode(data)
    assert xh.shape == (d,) and np.all(np.isfinite(xh))
    assert np.array_equal(xh, c.decode(data)) and c.n_bits(data) == 8 * len(data)


@pytest.mark.parametrize("name, params, trials", [
    ("qsgd", {"s": 2}, 3000), ("drive", {"rotation": "uniform"}, 2000),
    ("eden", {"bits": 1.5, "rotation": "uniform"}, 2000), ("eden", {"bits": 0.5, "rotation": "uniform"}, 2000),
    ("fedpm", {}, 3000),
])
def test_unbiased_monte_carlo(name, params, trials):
    """E x̂ = x for QSGD, unbiased DRIVE and EDEN (uniform rotation, docs/theory.md §6) and FedPM (§5):
    the mean over independent seeds lies within K_SE standard errors in every coordinate."""
    d = 24
    x = _vec(name, d, 11) * (1 if name in UNIT else np.linspace(0.2, 3, d))
    c = get_compressor(name, **params)
    xs = np.array([c.decode(c.encode(x, seed=s)) for s in range(trials)])
    se = xs.std(0, ddof=1) / math.sqrt(trials) + 1e-12
    assert np.all(np.abs(xs.mean(0) - x) <= K_SE * se)


def test_hadamard_drive_bias_is_reported():
    """The randomized Hadamard rotation is not Haar: DRIVE's unbiased scale leaves a bias for a small
    structured x (documented); it is zero in the projection ⟨x, x̂⟩ = ‖x‖² exactly."""
    d = 32
    x = np.random.default_rng(1).standard_normal(d) * np.linspace(0.2, 3, d)
    c = get_compressor("drive")
    xs = np.array([c.decode(c.encode(x, seed=s)) for s in range(300)])
    assert np.allclose(xs @ x, x @ x, rtol=F32_TOL * 10)


@SMALL
@given(st.integers(0, 12), st.integers(0, 2**31))
def test_drive_identity(log_d, seed):
    """DRIVE (unbiased S): ‖x − x̂‖² = ‖x‖²(d‖x‖²/‖Rx‖₁² − 1) for d a power of two (docs/theory.md §6), up to the
    float32 rounding of S."""
    d = 1 << log_d
    x = np.random.default_rng(seed).standard_normal(d)
    xh = decode(get_compressor("drive").encode(x, seed=seed))
    rx = rotate(x, seed)
    nx = x @ x
    predicted = nx * (d * nx / np.abs(rx).sum() ** 2 - 1)
    assert abs(np.sum((x - xh) ** 2) - predicted) <= 4 * F32_TOL * nx


@SMALL
@given(st.integers(1, 200), st.integers(0, 2**31), st.sampled_from(["hadamard", "uniform"]))
def test_rotation_orthogonal(d, seed, rotation):
    """R is orthogonal: ‖Rx‖ = ‖x‖ and R⁻¹R x = x (docs/theory.md §6 checks)."""
    x = np.random.default_rng(seed).standard_normal(d)
    rx = rotate(x, seed, rotation)
    assert abs(np.linalg.norm(rx) - np.linalg.norm(x)) <= ID_TOL * np.linalg.norm(x)
    assert np.allclose(unrotate(rx, seed, d, rotation), x, atol=ID_TOL * np.linalg.norm(x))
    if rotation == "uniform" and d <= 50:
        q = haar_orthogonal(seed, d)
        assert np.allclose(q @ q.T, np.eye(d), atol=1e-12)


@pytest.mark.parametrize("backend", ["numpy", "numba", "cuda"])
@pytest.mark.parametrize("n", [1, 2, 8, 32])
def test_hadamard_backends_agree(backend, n):
    """numba and numba.cuda (simulator without a GPU) WHTs equal the NumPy reference; H H = n I."""
    x = np.random.default_rng(n).standard_normal((3, n))
    ref = hadamard(x, backend="numpy")
    out = hadamard(x, backend=backend)
    assert np.allclose(out, ref, atol=1e-12 * n)
    assert np.allclose(hadamard(out, backend=backend), n * x, atol=1e-10 * n)
    h = hadamard(np.eye(min(n, 8)), backend=backend)  # the simulator is slow: a small H
    n = min(n, 8)
    assert np.allclose(h @ h.T, n * np.eye(n))


def test_lloyd_max_known_values():
    """Lloyd–Max MSEs for N(0, 1) at 1..3 bits match docs/theory.md §6 (0.3634, 0.1175, 0.03454) to 1e-4."""
    for b, v in [(1, 0.3634), (2, 0.1175), (3, 0.03455)]:
        c, t, mse = lloyd_max_gaussian(b)
        assert abs(mse - v) < 1e-4 and np.allclose(c, -c[::-1]) and np.all(np.diff(c) > 0)


def test_eden_fractional_bits_cost():
    """EDEN at fractional b spends b bits per padded coordinate on average (payload minus header)."""
    d = 4096
    x = np.random.default_rng(0).standard_normal(d)
    for b in (0.25, 0.5, 1.5, 2.75):
        data = get_compressor("eden", bits=b).encode(x, seed=5)
        body_bits = 8 * len(data) - 8 * 20
        assert abs(body_bits / d - b) < K_SE * math.sqrt(0.25 / d) + 0.04


def test_elias_kernels_match_reference():
    """The numba field writer and QSGD token reader agree with the NumPy/Python references."""
    rng = np.random.default_rng(0)
    vals = rng.integers(1, 1000, 60).astype(np.uint64)
    gap, sgn, lev = vals[:20], vals[20:40] % 2, vals[40:] % 7 + 1
    values = np.stack([gap, sgn, lev], 1).ravel()
    widths = np.stack([elias_gamma_lengths(gap), np.ones(20, np.int64), elias_gamma_lengths(lev)], 1).ravel()
    out = np.zeros((int(widths.sum()) + 7) // 8, dtype=np.uint8)
    write_fields(values, widths, out)
    assert np.array_equal(out, write_fields_reference(values, widths))
    idx, s, lv = np.zeros(20, np.int64), np.zeros(20, np.uint8), np.zeros(20, np.int64)
    status = read_qsgd_tokens(out, 8 * out.size, 20, 10**6, 7, idx, s, lv)
    ref = read_qsgd_tokens_reference(out.tobytes(), int(widths.sum()), 20)
    assert status == 0 and idx.tolist() == ref[0] and s.tolist() == ref[1] and lv.tolist() == ref[2]
    # guards: too small a dimension, too many tokens for the stream
    assert read_qsgd_tokens(out, 8 * out.size, 20, 5, 7, idx, s, lv) == 2
    assert read_qsgd_tokens(out, 8 * out.size, 40, 10**6, 7, np.zeros(40, np.int64), np.zeros(40, np.uint8),
                            np.zeros(40, np.int64)) == 1


def _reseal(body: bytes) -> bytes:
    return body + zlib.crc32(body).to_bytes(4, "little")


@pytest.mark.parametrize("name, params", ALL)
@pytest.mark.parametrize("mutate", ["flip", "truncate", "magic", "empty", "body_resealed"])
def test_corrupted_payloads(name, params, mutate):
    """Flipped, truncated, foreign or internally inconsistent payloads raise CorruptStreamError, never crash."""
    data = bytearray(get_compressor(name, **params).encode(_vec(name, 100, 0), seed=1))
    if mutate == "flip":
        data[len(data) // 2] ^= 0x08
    elif mutate == "truncate":
        data = data[:-6]
    elif mutate == "magic":
        data = bytearray(_reseal(b"XX" + bytes(data[2:-4])))
    elif mutate == "empty":
        data = bytearray()
    else:  # drop the last body byte but keep a valid CRC: the parser must notice
        data = bytearray(_reseal(bytes(data[:-5])))
    with pytest.raises(CorruptStreamError):
        decode(bytes(data))


def test_bad_inputs():
    """NaN, wrong rank, empty vectors, θ outside [0, 1], bad seeds and unknown names raise clear errors."""
    c = get_compressor("drive")
    with pytest.raises(InvalidArgumentError, match="`x`"):
        c.encode(np.array([1.0, np.nan]), seed=0)
    with pytest.raises(InvalidShapeError, match="`x`"):
        c.encode(np.ones((2, 2)), seed=0)
    with pytest.raises(InvalidArgumentError, match="`x`"):
        c.encode(np.array([]), seed=0)
    with pytest.raises(InvalidArgumentError, match=r"\[0, 1\]"):
        get_compressor("fedpm").encode(np.array([0.5, 1.2]), seed=0)
    with pytest.raises(InvalidArgumentError, match="`seed`"):
        c.encode(np.ones(3), seed=-1)
    with pytest.raises(InvalidArgumentError, match="`name`"):
        get_compressor("zip")
    with pytest.raises(InvalidArgumentError):
        get_compressor("qsgd", bits=3)
    with pytest.raises(InvalidArgumentError, match="`bits`"):
        get_compressor("eden", bits=0)
    with pytest.raises(InvalidArgumentError, match="rotation="):
        get_compressor("drive", rotation="uniform").encode(np.ones(5000), seed=0)
    with pytest.raises(InvalidShapeError):
        hadamard(np.ones(6))


def test_zero_vector_and_signs():
    """x = 0 decodes to 0 for every method; the rotation's ±1 diagonal depends only on the seed."""
    for name, params in ALL:
        assert np.all(decode(get_compressor(name, **params).encode(np.zeros(10), seed=2)) == 0)
    assert np.array_equal(rotation_signs(4, 16), rotation_signs(4, 16))


def test_bench_smoke():
    """The benchmark modules import and run in quick mode (rows carry name/ratio/target/passed/detail)."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "benchmarks"
    for fname in ("bench_hadamard.py", "bench_fedpm.py"):
        path = root / fname
        if not path.exists():
            pytest.skip(f"{fname} not present")
        spec = importlib.util.spec_from_file_location(path.stem, path)
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        rows = mod.main(quick=True)
        assert rows and all({"name", "ratio", "target", "passed", "detail"} <= set(r) for r in rows)


_ = (os, COMPRESSORS)


@pytest.mark.parametrize("method", ["fedpm", "qsgd", "drive", "eden", "fedmask"])
def test_cli_mean_estimate(method, capsys):
    """`ratedist mean-estimate --json` gives method, nmse, bpp (measured from bytes) and bias."""
    import json

    from ratedist.cli import main

    assert main(["mean-estimate", "--method", method, "--dim", "512", "--clients", "3", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["method"] == method and out["nmse"] >= 0 and out["bpp"] == out["n_bits"] / (512 * 3)
