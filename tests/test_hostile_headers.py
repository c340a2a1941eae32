"""Forged headers with valid CRCs are refused quickly, in little memory, with CorruptStreamError.

Every stream format is taken from its golden stream (``tests/golden/``); one header field at a
time is replaced by a value of a bad class — wrong JSON type, negative, huge, NaN, ±Infinity,
missing, or a size multiplied far beyond the payload — and the CRCs are recomputed, so that only
the decoder's own checks stand between the forged header and a crash, a hang or an allocation of
gigabytes.  Each case runs under ``limit_memory(256 MiB)`` and must finish within a second.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import math
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratedist.coding import limits
from ratedist.coding.container import pack_container, unpack_container
from ratedist.coding.header import read_float, read_int, read_shape
from ratedist.coding.varint import get_varint, put_varint, seal, unseal
from ratedist.errors import CorruptStreamError, InvalidArgumentError

GOLDEN = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("_golden_streams_hostile", GOLDEN / "_streams.py")
_streams = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_streams)
CASES = _streams.cases()
BUDGET = 256 * 2**20
SECONDS = 1.0

REFUSED = (CorruptStreamError, InvalidArgumentError)
RAW = {"NaN": "NaN", "Infinity": "Infinity", "-Infinity": "-Infinity", "1e999": "1e999"}
BAD = {  # class -> value (strings in RAW become bare JSON tokens)
    "wrong type (string)": "x",
    "wrong type (bool)": True,
    "wrong type (list)": [1],
    "negative": -1,
    "huge": 10**30,
    "beyond int64": 2**64 + 1,
    "NaN": "NaN",
    "Infinity": "Infinity",
    "-Infinity": "-Infinity",
    "overflowing float": "1e999",
}


@pytest.fixture(scope="module", autouse=True)
def _warm():
    """Decode every golden stream once, so that loading numba's compiled kernels is not timed."""
    for name, (_, decode) in CASES.items():
        decode((GOLDEN / f"{name}.bin").read_bytes())


def _golden(name: str) -> bytes:
    return (GOLDEN / f"{name}.bin").read_bytes()


def _raw_container(header_text: bytes, segments) -> bytes:
    parts = [struct.pack("<4sHHI", b"RDST", 1, 0, len(header_text)), header_text,
             struct.pack("<I", zlib.crc32(header_text))]
    for s in segments:
        parts += [struct.pack("<I", len(s)), bytes(s), struct.pack("<I", zlib.crc32(s))]
    return b"".join(parts)


def _forge(stream: bytes, path, value, *, delete=False) -> bytes:
    """The container ``stream`` with header field ``path`` set to ``value`` (or deleted), CRCs recomputed."""
    c = unpack_container(stream)
    h = copy.deepcopy(c.header)
    obj = h
    for k in path[:-1]:
        obj = obj[k]
    if delete:
        del obj[path[-1]]
    else:
        obj[path[-1]] = "\x00" + value if isinstance(value, str) and value in RAW else value
    text = json.dumps(h, sort_keys=True, separators=(",", ":"))
    for tok in RAW:
        text = text.replace(json.dumps("\x00" + tok), tok)
    return _raw_container(text.encode(), c.segments)


def _assert_refused(decode, data):
    """``decode(data)`` raises CorruptStreamError/InvalidArgumentError within SECONDS under BUDGET."""
    t0 = time.perf_counter()
    with limits.limit_memory(BUDGET):
        with pytest.raises(REFUSED):
            decode(data)
    assert time.perf_counter() - t0 < SECONDS


# ------------------------------------------------------------------ container formats, field by field

FIELDS = {
    "surp_sequential": [("params", "refresh_every"), ("params", "n_active"), ("params", "sf"), ("params", "decay"),
                        ("params", "refresh_factor"), ("params", "alpha_eff0"), ("checkpoints", 0, "n_bytes"),
                        ("checkpoints", 1, "n_bits"), ("checkpoints", 0, "iteration"), ("checkpoints", 1, "nnz"),
                        ("checkpoints", 0, "segment"), ("checkpoints", 0, "sparsity"), ("tensors", 0, "shape"),
                        ("tensors", 0, "size"), ("tensors", 1, "norm"), ("tensors", 0, "dtype"), ("n_params",),
                        ("seed",), ("normalize",), ("n_segments",), ("checkpoints",), ("tensors",)],
    "surp_parallel": [("params", "gamma"), ("params", "tau1"), ("checkpoints", 0, "iteration"),
                      ("checkpoints", 1, "n_bytes"), ("checkpoints", 1, "segment"), ("tensors", 2, "shape"),
                      ("tensors", 0, "norm"), ("n_params",), ("seed",), ("params",)],
    "pruning_cost": [("value_bits",), ("tensors", 0, "shape"), ("tensors", 0, "kept"), ("tensors", 1, "scale"),
                     ("tensors", 1, "qmin"), ("tensors", 2, "qmax"), ("tensors", 0, "name"), ("tensors", 0, "dtype"),
                     ("tensors",), ("version",)],
    "refinement": [("block",), ("index_bits",), ("lam",), ("n_blocks",), ("seed",), ("n_segments",)],
    "quant_scalar": [("format",), ("n_segments",)],
}
# (format, field) pairs for which a value class is a valid setting, not an attack
# (a prefix may declare more segments than it holds; a norm, scale or λ of 1e30 is a real setting)
VALID = {("refinement", ("seed",), "huge"), ("refinement", ("seed",), "beyond int64"),
         ("refinement", ("lam",), "huge"), ("refinement", ("lam",), "beyond int64"),
         ("pruning_cost", ("tensors", 0, "name"), "wrong type (string)"),
         ("pruning_cost", ("tensors", 1, "scale"), "huge"), ("pruning_cost", ("tensors", 1, "scale"), "beyond int64"),
         ("surp_sequential", ("n_segments",), "huge"), ("surp_sequential", ("n_segments",), "beyond int64"),
         ("surp_sequential", ("tensors", 1, "norm"), "huge"), ("surp_sequential", ("tensors", 1, "norm"), "beyond int64"),
         ("surp_parallel", ("tensors", 0, "norm"), "huge"), ("surp_parallel", ("tensors", 0, "norm"), "beyond int64")}


def _field_cases():
    for name, fields in FIELDS.items():
        for path in fields:
            for cls in [*BAD, "missing"]:
                if (name, path, cls) not in VALID:
                    yield pytest.param(name, path, cls, id=f"{name}-{'.'.join(map(str, path))}-{cls}")


@pytest.mark.parametrize("name, path, cls", list(_field_cases()))
def test_forged_header_field_is_refused(name, path, cls):
    """A container header whose field ``path`` holds a value of a bad class (wrong type, negative, huge,
    NaN, ±Infinity, overflowing, missing) and a valid CRC raises CorruptStreamError or
    InvalidArgumentError within a second and 256 MiB, never another exception."""
    stream = _golden(name)
    data = _forge(stream, path, None, delete=True) if cls == "missing" else _forge(stream, path, BAD[cls])
    _assert_refused(CASES[name][1], data)


SIZE_FORGERIES = {  # extra size: a count or shape far beyond what the payload holds
    "surp_sequential": [(("checkpoints", 1, "iteration"), 10**9), (("params", "refresh_every"), 2**62),
                        (("tensors", 0, "shape"), [2**20, 2**20])],
    "surp_parallel": [(("checkpoints", 1, "iteration"), 99_999), (("tensors", 0, "shape"), [2**31 - 2])],
    "pruning_cost": [(("tensors", 0, "shape"), [2**20, 2**10]), (("tensors", 1, "shape"), [2**36])],
    "refinement": [(("n_blocks",), 10**12), (("block",), 2**20), (("index_bits",), [40, 40])],
}


@pytest.mark.parametrize("name, path, value", [pytest.param(n, p, v, id=f"{n}-{'.'.join(map(str, p))}")
                                               for n, cases in SIZE_FORGERIES.items() for p, v in cases])
def test_forged_sizes_are_refused(name, path, value):
    """A header that declares sizes or counts far beyond its payload (for SuRP, consistent tables that
    declare ~10^12 parameters) is refused within a second and 256 MiB."""
    stream = _golden(name)
    c = unpack_container(stream)
    h = copy.deepcopy(c.header)
    h.pop("n_segments")
    obj = h
    for k in path[:-1]:
        obj = obj[k]
    obj[path[-1]] = value
    if path[-1] == "shape" and name.startswith("surp"):  # keep the table self-consistent
        t = obj
        t["size"] = math.prod(value)
        h["n_params"] = sum(x["size"] for x in h["tensors"])
    _assert_refused(CASES[name][1], pack_container(h, list(c.segments)))


def test_huge_norm_is_refused_not_infinite():
    """A valid-CRC SuRP header whose float32 tensor has norm 1e300 would decode to ±inf weights: refused."""
    for name in ("surp_sequential", "surp_parallel"):
        _assert_refused(CASES[name][1], _forge(_golden(name), ("tensors", 0, "norm"), 1e300))


def test_json_constants_never_leak_from_the_container():
    """NaN, ±Infinity, 1e999 and a 5000-digit integer anywhere in a JSON header raise CorruptStreamError
    (json would accept the first ones and leak OverflowError/ValueError for the others)."""
    for tok in ("NaN", "Infinity", "-Infinity", "1e999", "-1e999", "9" * 5000):
        data = _raw_container(f'{{"format":"surp","n_segments":0,"x":{tok}}}'.encode(), [])
        with pytest.raises(CorruptStreamError):
            unpack_container(data)
    deep = ("[" * 100_000 + "]" * 100_000).encode()
    with pytest.raises(CorruptStreamError):
        unpack_container(_raw_container(b'{"n_segments":0,"x":' + deep + b"}", []))


def test_container_refuses_to_write_nan():
    """pack_container never writes a header the reader would refuse (NaN/Infinity are not JSON)."""
    with pytest.raises(InvalidArgumentError, match="`header`"):
        pack_container({"x": math.nan}, [])


# ------------------------------------------------------------------ compact payloads (varint headers)


def _compact(name: str):
    body = unseal(_golden(name), "test")
    d, pos = get_varint(body, 3)
    seed, rest = get_varint(body, pos)
    return body, d, seed, rest


def _with_head(body, d, seed, rest, params: bytes | None = None, cut: int = 0) -> bytes:
    tail = body[rest:] if params is None else params + body[rest + cut:]
    return seal(body[:3] + put_varint(d) + put_varint(seed) + tail)


@pytest.mark.parametrize("name", ["qsgd", "drive", "eden", "fedmask", "fedpm"])
@pytest.mark.parametrize("d", [0, 2**40, 2**40 + 1, 2**62])
def test_compressor_dimension_forgeries(name, d):
    """Dimension 0, 2^40 (over the budget), 2^40 + 1 and 2^62 (out of range) are refused quickly."""
    body, _, seed, rest = _compact(name)
    _assert_refused(CASES[name][1], _with_head(body, d, seed, rest))


@pytest.mark.parametrize("name", ["qsgd", "drive", "eden", "fedmask", "fedpm"])
def test_compressor_seed_beyond_64_bits(name):
    """A seed varint of 64 bits or more is refused."""
    body, d, _, rest = _compact(name)
    data = seal(body[:3] + put_varint(d) + b"\xff" * 9 + b"\x01" + body[rest:])
    _assert_refused(CASES[name][1], data)


def test_dense_rotation_limit_applies_to_decoders():
    """DRIVE and EDEN payloads that ask for a dense (uniform) rotation of d = 5000 > 4096 are refused
    before building the 5000 × 5000 matrix (the encoder's own limit)."""
    from ratedist import compressors

    d = 5000
    for name, flag, need in (("drive", 0b10, (d + 7) // 8), ("eden", 1, (d + 7) // 8)):
        body, _, seed, rest = _compact(name)
        params = bytes([flag]) + (struct.pack("<f", 1.0) if name == "eden" else b"") + struct.pack("<f", 1.0)
        data = seal(body[:3] + put_varint(d) + put_varint(seed) + params + bytes(need))
        _assert_refused(compressors.decode, data)


def test_eden_body_size_checked_before_work():
    """An EDEN payload declaring d = 2^24 at 8 bits with a 1-byte body is refused in O(1): no width is drawn."""
    from ratedist.compressors import eden

    body, _, seed, rest = _compact("eden")
    params = bytes([0]) + struct.pack("<f", 8.0) + struct.pack("<f", 1.0)
    data = seal(body[:3] + put_varint(2**24) + put_varint(seed) + params + b"\x00")
    called = []
    orig = eden._widths
    try:
        eden._widths = lambda *a: called.append(a) or orig(*a)
        _assert_refused(CASES["eden"][1], data)
    finally:
        eden._widths = orig
    assert not called


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, -1.0, 0.0, 1e30])
def test_float32_parameters(value):
    """Non-finite, negative, zero or huge float32 parameters (EDEN's bits, QSGD's norm) are refused."""
    body, d, seed, rest = _compact("eden")
    params = bytes([0]) + struct.pack("<f", value) + struct.pack("<f", 1.0)
    _assert_refused(CASES["eden"][1], seal(body[:3] + put_varint(d) + put_varint(seed) + params + body[rest + 9:]))
    if not value >= 0 or math.isinf(value):
        body, d, seed, rest = _compact("qsgd")
        s, p2 = get_varint(body, rest)
        forged = body[:p2] + struct.pack("<f", value) + body[p2 + 4:]
        _assert_refused(CASES["qsgd"][1], seal(forged))


@pytest.mark.parametrize("name", ["fedpm_mask", "fedpm_mask_coordinate"])
@pytest.mark.parametrize("n", [0, 2**35, 2**36, 2**62])
def test_mask_length_forgeries(name, n):
    """FedPM mask payloads declaring 0, 2^35 (over the budget) or more entries are refused quickly."""
    body = unseal(_golden(name), "test")
    _, pos = get_varint(body, 1)
    _assert_refused(CASES[name][1], seal(body[:1] + put_varint(n) + body[pos:]))


# ------------------------------------------------------------------ a strategy over every decoder

_CONTAINER = [n for n in sorted(CASES) if _golden(n)[:4] == b"RDST"]
_values = st.one_of(st.integers(-2**70, 2**70), st.floats(allow_nan=False, allow_infinity=False),
                    st.sampled_from(["NaN", "Infinity", "-Infinity", "1e999", "x", None, True, [], {}]),
                    st.lists(st.integers(-2, 2**40), max_size=3))


def _paths(obj, path=()):
    if path:
        yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, path + (i,))


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_CONTAINER), pick=st.integers(0, 10**6), value=_values, delete=st.booleans())
def test_hostile_header_strategy(name, pick, value, delete):
    """Any one header field of any container format replaced by any value (type, range, ±inf, huge
    counts) or deleted: the decoder raises CorruptStreamError/InvalidArgumentError or returns a
    result, within a second and 256 MiB, never another exception."""
    stream = _golden(name)
    paths = list(_paths(unpack_container(stream, max_segments=0).header))
    path = paths[pick % len(paths)]
    try:
        data = _forge(stream, path, None, delete=True) if delete else _forge(stream, path, value)
    except (KeyError, IndexError, TypeError):
        return
    t0 = time.perf_counter()
    with limits.limit_memory(BUDGET):
        try:
            CASES[name][1](data)
        except REFUSED:
            pass
    assert time.perf_counter() - t0 < SECONDS


_COMPACT = [n for n in sorted(CASES) if _golden(n)[:4] != b"RDST"]


@settings(deadline=None, max_examples=150, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.sampled_from(_COMPACT), field=st.integers(0, 3), value=st.integers(0, 2**70),
       f32=st.floats(width=32), at=st.integers(0, 40))
def test_hostile_compact_header_strategy(name, field, value, f32, at):
    """Any compact payload (compressors, FedPM masks) whose varint dimension/length or seed is replaced by
    any integer up to 2^70, or one of whose first parameter bytes is replaced by any float32 (NaN and
    ±inf included), CRC recomputed: CorruptStreamError/InvalidArgumentError or a decode, within a second
    and 256 MiB, never another exception."""
    body = unseal(_golden(name), "test")
    if name.startswith("fedpm_mask"):
        n, pos = get_varint(body, 1)
        forged = body[:1] + put_varint(value) + body[pos:] if field < 2 else \
            body[:pos + at % 8] + struct.pack("<f", f32) + body[pos + at % 8 + 4:]
    else:
        d, pos = get_varint(body, 3)
        seed, rest = get_varint(body, pos)
        if field == 0:
            forged = body[:3] + put_varint(value) + body[pos:]
        elif field == 1:
            forged = body[:pos] + put_varint(value) + body[rest:]
        else:
            i = rest + at % 12
            forged = body[:i] + struct.pack("<f", f32) + body[i + 4:]
    data = seal(forged)
    t0 = time.perf_counter()
    with limits.limit_memory(BUDGET):
        try:
            CASES[name][1](data)
        except REFUSED:
            pass
    assert time.perf_counter() - t0 < SECONDS


# ------------------------------------------------------------------ the typed readers and the budget


def test_typed_readers_name_the_field():
    """Each reader raises CorruptStreamError naming the dotted field and the expectation."""
    with pytest.raises(CorruptStreamError, match=r"`checkpoints\[1\]\.n_bytes` is 1\.5; expected an integer"):
        read_int({"n_bytes": 1.5}, "n_bytes", lo=0, hi=9, path="checkpoints[1]")
    with pytest.raises(CorruptStreamError, match="`params.gamma` is missing"):
        read_float({}, "gamma", lo=0, hi=1, path="params")
    with pytest.raises(CorruptStreamError, match="`shape`"):
        read_shape({"shape": [2**30, 2**30]}, "shape", max_size=2**40)
    with pytest.raises(CorruptStreamError):
        read_int({"k": True}, "k", lo=0, hi=1)
    with pytest.raises(CorruptStreamError):
        read_float({"k": 10**400}, "k")


def test_memory_budget_respects_limit_memory():
    """limit_memory lowers the budget inside its block and restores it after; check_fits refuses above it."""
    before = limits.memory_budget()
    with limits.limit_memory(2**20):
        assert limits.memory_budget()[0] == 2**20
        with pytest.raises(CorruptStreamError, match="limit_memory"):
            limits.check_fits(2**21, "two mebibytes")
        limits.check_fits(2**19, "half a mebibyte")
    after = limits.memory_budget()
    assert (before is None) == (after is None)
    if after is not None:
        assert after[0] > 2**20
    with pytest.raises(InvalidArgumentError, match="`n_bytes`"):
        limits.limit_memory(0)


def test_rlimit_as_lowers_the_budget():
    """In a child process with RLIMIT_AS set, the budget is at most the limit (less what is mapped)."""
    import subprocess
    import sys

    code = ("import resource; from ratedist.coding import limits; "
            "resource.setrlimit(resource.RLIMIT_AS, (8 * 2**30, resource.RLIM_INFINITY)); "
            "b = limits.memory_budget(); print(b[0] <= 8 * 2**30, b[1])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    ok, source = out.stdout.split(maxsplit=1)
    assert ok == "True"


def test_genuine_streams_still_decode_under_the_budget():
    """Every golden stream decodes to its pinned result under the 256 MiB budget (the checks refuse only
    hostile input)."""
    manifest = json.loads((GOLDEN / "manifest.json").read_text())
    with limits.limit_memory(BUDGET):
        for name, (_, decode) in CASES.items():
            assert _streams.digest(decode(_golden(name))) == manifest[name]["decoded_sha256"], name


# ------------------------------------------------------------------ encoders never write what decoders refuse


@pytest.mark.parametrize("algorithm", ["sequential", "parallel"])
def test_float64_weights_near_overflow_round_trip(algorithm):
    """float64 weights up to 1.7e308 (whose squares overflow) get a finite scaled L2 norm: both encoders
    write a stream that decodes, bit for bit, to their own finite reconstruction."""
    from ratedist import surp

    w = {"w": np.random.default_rng(0).laplace(size=200), "big": np.array([1.7e308, -3e307, 1e300, 0.0])}
    enc = surp.encode(w, [0.5], algorithm=algorithm, keep_reconstructions=True, bound=False)
    out = surp.decode(enc.stream)
    assert np.isfinite(out["big"]).all() and out["big"][0] > 1e307
    assert all(np.array_equal(out[k], enc.reconstructions[-1][k]) for k in w)


@pytest.mark.parametrize("algorithm", ["sequential", "parallel"])
def test_unrepresentable_norm_is_refused_up_front(algorithm):
    """A tensor whose L2 norm exceeds the float64 range is refused by both encoders with an error naming it."""
    from ratedist import surp

    w = {"w": np.full(10, 1.5e308)}
    with pytest.raises(InvalidArgumentError, match=r"`weights`\['w'\] has L2 norm inf"):
        surp.encode(w, [0.5], algorithm=algorithm, bound=False)


def test_subnormal_weights_get_a_nonzero_norm():
    """Subnormal weights (whose squares underflow to 0) are not mistaken for an all-zero tensor."""
    from ratedist import surp

    w = {"w": np.array([1e-320, -5e-322, 3e-321, 0.0])}
    enc = surp.encode(w, [0.5], algorithm="parallel", keep_reconstructions=True, bound=False)
    assert surp.inspect(enc.stream)["tensors"][0]["norm"] > 0
    assert np.array_equal(surp.decode(enc.stream)["w"], enc.reconstructions[-1]["w"])
