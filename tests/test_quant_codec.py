"""The model-level quantization codec (ratedist.quant.codec): streams, allocation, reports, bad input."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratedist import quant
from ratedist.coding.container import pack_container, unpack_container
from ratedist.errors import CorruptStreamError, InvalidArgumentError, UnreachableTargetError
from ratedist.frontier import model_distortion
from ratedist.quant.codec import allocate

RNG = np.random.default_rng(7)
MODEL = {
    "conv.weight": (RNG.standard_t(3, size=(32, 16, 3, 3)) * 0.1).astype(np.float32),
    "conv.bias": (RNG.normal(size=32) * 0.01).astype(np.float32),
    "fc.weight": RNG.laplace(size=(10, 512)).astype(np.float64),
    "fc.half": RNG.normal(size=(32, 32)).astype(np.float16),
}
N = sum(v.size for v in MODEL.values())


@pytest.mark.parametrize("metric", ["l1", "mse"])
@pytest.mark.parametrize("normalize", ["l2", "l1", None])
def test_round_trip_bit_exact(metric, normalize):
    """decode(encode(w)) returns the encoder's reconstruction bit for bit, with the input's keys, order,
    shapes and dtypes; the reported bits are 8·len(stream) and the reported distortion is the distortion
    of the decoded weights."""
    enc = quant.encode(MODEL, method="scalar", rate=2.0, metric=metric, normalize=normalize)
    dec = quant.decode(enc.stream)
    assert list(dec) == list(MODEL)
    for k in MODEL:
        assert dec[k].dtype == MODEL[k].dtype and dec[k].shape == MODEL[k].shape
        assert np.array_equal(dec[k], enc.weights[k])
    assert enc.report.n_bits == 8 * len(enc.stream)
    assert enc.report.bpp <= 2.0
    # the float16 tensor's distortion is measured before the cast back to its dtype
    exact = {k: v for k, v in MODEL.items() if v.dtype != np.float16}
    assert math.isclose(
        sum(enc.report.tensors[k].distortion * MODEL[k].size for k in exact) / sum(v.size for v in exact.values()),
        model_distortion(exact, {k: dec[k] for k in exact}, metric=metric, normalize=normalize), rel_tol=1e-6)


def test_distortion_target_and_monotone_rate():
    """A distortion target is met by the decoded weights, and along a sweep of rate targets the measured
    distortion never increases as the rate grows."""
    d0 = model_distortion(MODEL, {k: np.zeros_like(v) for k, v in MODEL.items()})
    for frac in (0.6, 0.2, 0.05):
        enc = quant.encode(MODEL, method="scalar", distortion=frac * d0)
        assert model_distortion(MODEL, quant.decode(enc.stream)) <= frac * d0 * (1 + 1e-9)
    dists = [quant.encode(MODEL, method="scalar", rate=r).report.distortion for r in (0.5, 1, 2, 3, 4, 6)]
    assert all(b <= a * (1 + 1e-9) for a, b in zip(dists, dists[1:]))


def test_allocation_minimizes_the_lagrangian():
    """Everett's theorem, discrete form: the allocation returned at multiplier μ minimizes Σ(dist + μ·bits)
    over every combination of operating points (brute force on small random instances), and it respects
    the bit budget."""
    rng = np.random.default_rng(0)
    for _ in range(30):
        pts = []
        for _t in range(3):
            b = np.sort(rng.uniform(0, 10, size=4))
            d = np.sort(rng.uniform(0, 10, size=4))[::-1]
            pts.append((b, d))
        budget = float(rng.uniform(5, 25))
        try:
            choice, mu = allocate(pts, bits=budget)
        except UnreachableTargetError:
            assert sum(p[0].min() for p in pts) > budget
            continue
        assert sum(p[0][c] for p, c in zip(pts, choice)) <= budget + 1e-9
        # before the greedy fill, the common-slope choice is Lagrangian-optimal: check the fill only added
        lag = min(sum(p[1][c] + mu * p[0][c] for p, c in zip(pts, combo))
                  for combo in itertools.product(range(4), repeat=3))
        base = [int(np.argmin(p[1] + mu * p[0])) for p in pts]
        assert sum(p[1][c] + mu * p[0][c] for p, c in zip(pts, base)) <= lag + 1e-9
        assert sum(p[1][c] for p, c in zip(pts, choice)) <= sum(p[1][c] for p, c in zip(pts, base)) + 1e-9


def test_zero_tensor_and_all_zero_point():
    """An all-zero tensor costs no payload and decodes to zeros; a rate just above the header's cost codes
    every tensor as zeros."""
    w = {"z": np.zeros((4, 4), np.float32), "a": RNG.normal(size=5000).astype(np.float32)}
    enc = quant.encode(w, method="scalar", rate=1.0)
    assert np.array_equal(quant.decode(enc.stream)["z"], w["z"])
    info = quant.inspect(enc.stream)
    assert info["tensors"]["z"]["n_bits"] == 0
    with pytest.raises(UnreachableTargetError, match="header"):
        quant.encode(w, method="scalar", rate=0.01)


@pytest.mark.parametrize("kwargs,match", [
    ({"rate": 0}, "`rate`"),
    ({"rate": -1}, "`rate`"),
    ({"rate": math.nan}, "`rate`"),
    ({"rate": 64}, "`rate`"),
    ({"distortion": 0}, "`distortion`"),
    ({"distortion": 10.0}, "zero-rate distortion"),
    ({}, "exactly one"),
    ({"rate": 1, "distortion": 0.1}, "exactly one"),
    ({"rate": 1, "metric": "l3"}, "`metric`"),
    ({"rate": 1, "normalize": "max"}, "`normalize`"),
    ({"rate": 1, "method": "vq"}, "`method`"),
])
def test_bad_arguments(kwargs, match):
    """Bad targets and options raise InvalidArgumentError naming the argument."""
    kwargs = {"method": "scalar", **kwargs}
    with pytest.raises(InvalidArgumentError, match=match):
        quant.encode(MODEL, **kwargs)


@pytest.mark.parametrize("weights,match", [
    ({}, "empty mapping"),
    ({"a": np.array([1.0, np.nan])}, "NaN"),
    ({"a": np.array([1.0, np.inf])}, "NaN or infinite"),
    ({"a": np.zeros((0, 3))}, "empty"),
    ({"a": np.arange(5)}, "dtype int"),
])
def test_bad_weights(weights, match):
    """NaN or infinite weights, empty tensors, empty mappings and integer tensors get a one-line error."""
    with pytest.raises(InvalidArgumentError, match=match):
        quant.encode(weights, method="scalar", rate=1.0)


def test_huge_weights_do_not_overflow():
    """Weights near the float64 maximum are normalized without overflow and decode finite."""
    w = {"a": np.random.default_rng(1).normal(size=2000) * 1e305}  # Σw² overflows; the norm does not
    enc = quant.encode(w, method="scalar", rate=3.0)
    out = quant.decode(enc.stream)["a"]
    assert np.all(np.isfinite(out)) and np.array_equal(out, enc.weights["a"])


# ----------------------------------------------------------------------------- hostile streams

_STREAM = quant.encode(MODEL, method="scalar", rate=2.0).stream
_FUZZ = settings(deadline=None, max_examples=500, suppress_health_check=[HealthCheck.too_slow])


def _reseal(stream: bytes, seg: int, ops) -> bytes:
    c = unpack_container(stream)
    segs = [bytearray(s) for s in c.segments]
    b = segs[seg % len(segs)]
    for op, pos, val in ops:
        if op == "cut":
            del b[pos % (len(b) + 1):]
        elif op == "ins":
            b[pos % (len(b) + 1):pos % (len(b) + 1)] = bytes([val])
        elif b:
            i = pos % len(b)
            b[i] = b[i] ^ (1 << (val % 8)) if op == "flip" else val
    header = {k: v for k, v in c.header.items() if k != "n_segments"}
    return pack_container(header, [bytes(s) for s in segs])


@_FUZZ
@given(seg=st.integers(0, 10), ops=st.lists(st.tuples(st.sampled_from(["flip", "set", "cut", "ins"]),
                                                   st.integers(0, 10**6), st.integers(0, 255)),
                                         min_size=1, max_size=4))
def test_resealed_mutations(seg, ops):
    """A stream whose tensor table or tensor segments were mutated and re-sealed (CRCs recomputed)
    decodes to weights of the declared shapes or raises CorruptStreamError — nothing else."""
    forged = _reseal(_STREAM, seg, ops)
    try:
        out = quant.decode(forged)
    except CorruptStreamError:
        return
    assert all(np.all(np.isfinite(v)) for v in out.values())


@pytest.mark.parametrize("edit", [{"format": "ratedist.surp"}, {"format": 3}, {}])
def test_forged_headers(edit):
    """A valid-CRC JSON header naming another format raises CorruptStreamError."""
    c = unpack_container(_STREAM)
    with pytest.raises(CorruptStreamError):
        quant.decode(pack_container(edit, list(c.segments)))


@pytest.mark.parametrize("table", [
    lambda m: bytes([9, 0, 0]) + m[3:],                                    # unknown method code
    lambda m: bytes([0, 5, 0]) + m[3:],                                    # unknown metric code
    lambda m: bytes([0, 0, 3]) + m[3:],                                    # unknown normalization code
    lambda m: m[:3] + bytes([1, 6]) + b"states" + b"i" + bytes([200, 1]) + m[4:],   # option scalar rejects
    lambda m: m + b"\x00",                                                 # trailing byte
])
def test_forged_tables(table):
    """A valid-CRC table with an unknown method, metric or normalization code, coder options the coder
    rejects, or trailing bytes, raises CorruptStreamError."""
    c = unpack_container(_STREAM)
    segs = list(c.segments)
    segs[0] = table(segs[0])
    with pytest.raises(CorruptStreamError):
        quant.decode(pack_container({"format": quant.codec.FORMAT}, segs))


def test_earlier_revision_named():
    """A stream of the format's first revision (same table, header "ratedist.quant") is refused with a message
    that says it is an earlier revision to re-encode, not a foreign stream."""
    segs = list(unpack_container(_STREAM).segments)
    with pytest.raises(CorruptStreamError, match="earlier revision"):
        quant.decode(pack_container({"format": "ratedist.quant"}, segs))


def test_truncations():
    """Every truncation of a stream raises CorruptStreamError."""
    for k in range(0, len(_STREAM), max(1, len(_STREAM) // 300)):
        with pytest.raises(CorruptStreamError):
            quant.decode(_STREAM[:k])


def test_cli_round_trip(tmp_path):
    """`ratedist quant encode` writes the stream whose rate it prints, `decode` restores the encoder's
    weights, `inspect` reads the header; an output equal to the input is refused."""
    from ratedist.cli import main
    from ratedist.io import load_weights, save_weights

    src = tmp_path / "w.safetensors"
    save_weights(src, {k: v for k, v in MODEL.items() if v.dtype != np.float16})
    out = tmp_path / "w.rdst"
    import contextlib
    import io

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert main(["quant", "encode", str(src), "-o", str(out), "--method", "scalar", "--rate", "2",
                     "--no-bound", "--json"]) == 0
    rep = json.loads(buf.getvalue())
    assert rep["n_bits"] == 8 * out.stat().st_size and rep["bpp"] <= 2
    assert main(["quant", "decode", str(out), "-o", str(tmp_path / "d.npz")]) == 0
    dec = load_weights(tmp_path / "d.npz")
    ref = quant.decode(out.read_bytes())
    assert all(np.array_equal(dec[k], ref[k]) for k in ref)
    assert main(["quant", "inspect", str(out)]) == 0
    assert main(["quant", "encode", str(src), "-o", str(src), "--rate", "2"]) == 2
    assert main(["quant", "decode", str(out), "-o", str(out)]) == 2
