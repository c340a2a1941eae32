"""CRC-valid corruption of every payload format decodes or raises CorruptStreamError, never anything else.

The CRC catches random damage; these tests re-seal mutated bytes (flips, overwrites, truncations)
so that the decoders' own checks are what stands between a forged payload and a crash.
The SuRP streams have their own fuzz tests (tests/test_surp.py, tests/test_surp_parallel.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratedist.coding.container import pack_container, unpack_container
from ratedist.coding.varint import seal, unseal
from ratedist.errors import CorruptStreamError

X = np.random.default_rng(1).uniform(size=300)
_SETTINGS = settings(deadline=None, max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])

edits = st.lists(st.tuples(st.sampled_from(["flip", "set", "cut"]), st.integers(0, 10**6), st.integers(0, 255)),
                 min_size=1, max_size=3)


def _mutate(body: bytes, ops) -> bytes:
    b = bytearray(body)
    for op, pos, val in ops:
        if op == "cut":
            b = b[: pos % (len(b) + 1)]
        elif b:
            i = pos % len(b)
            b[i] = b[i] ^ (1 << (val % 8)) if op == "flip" else val
    return bytes(b)


def _decodes_or_corrupt(fn, shape=None):
    try:
        out = fn()
    except CorruptStreamError:
        return
    if shape is not None:
        assert np.asarray(out).shape == shape


@pytest.mark.parametrize("method", ["qsgd", "drive", "eden", "fedmask", "fedpm"])
@_SETTINGS
@given(ops=edits)
def test_compressor_payloads(method, ops):
    """Every compressor's decoder, fed a re-sealed mutation of a valid payload, returns a vector or
    raises CorruptStreamError."""
    from ratedist import compressors

    comp = compressors.get_compressor(method)
    body = unseal(comp.encode(X, seed=2), "test")
    forged = seal(_mutate(body, ops))
    _decodes_or_corrupt(lambda: np.ravel(comp.decode(forged)))


@_SETTINGS
@given(ops=edits)
def test_fedpm_mask_payload(ops):
    """The paper-accounting mask decoder, fed a re-sealed mutation, returns a mask or raises CorruptStreamError."""
    from ratedist.fedpm import bitrate as B

    body = unseal(B.bitrate_paper(X < 0.3).data, "test")
    _decodes_or_corrupt(lambda: B.decode_mask_paper(seal(_mutate(body, ops))))


def _container_case(kind):
    if kind == "pruning":
        from ratedist.pruning import cost, decode_cost, prune

        w = {"a": np.random.default_rng(2).normal(size=(20, 15)), "b": np.random.default_rng(3).normal(size=10)}
        return cost(w, prune(w, method="global", sparsity=0.7).masks, value_bits=6).stream, decode_cost
    from ratedist.refinement import make_refinement_code, refinement_decode_bytes, refinement_encode_bytes

    code = make_refinement_code(3, [1.0, 2.0], seed=3)
    return refinement_encode_bytes(code, np.random.default_rng(0).laplace(size=(20, 3))), refinement_decode_bytes


@pytest.mark.parametrize("kind", ["pruning", "refinement"])
@_SETTINGS
@given(ops=edits, seg=st.integers(0, 10))
def test_container_segments(kind, ops, seg):
    """A pruning-cost or refinement stream whose segment is mutated and re-packed with valid CRCs
    decodes or raises CorruptStreamError."""
    stream, decode = _container_case(kind)
    c = unpack_container(stream)
    header = {k: v for k, v in c.header.items() if k != "n_segments"}
    segs = list(c.segments)
    k = seg % len(segs)
    segs[k] = _mutate(bytes(segs[k]), ops)
    _decodes_or_corrupt(lambda: decode(pack_container(header, segs)))


def test_entropy_decode_failures_are_corrupt_streams(monkeypatch):
    """Every decoder routes constriction's failures through coding.entropy.decode_failure: a panic (pyo3's
    PanicException derives from BaseException, not Exception) inside a decode is a CorruptStreamError,
    while interrupts pass through unchanged."""
    import numpy as np

    from ratedist.coding.entropy import decode_failure
    from ratedist.errors import CorruptStreamError
    import importlib

    cost_mod = importlib.import_module("ratedist.pruning.cost")  # the module (the package exports a function `cost`)

    class Panic(BaseException):  # stands in for pyo3_runtime.PanicException
        pass

    assert isinstance(decode_failure(Panic("boom"), "x"), CorruptStreamError)
    kb = KeyboardInterrupt()
    assert decode_failure(kb, "x") is kb
    rng = np.random.default_rng(0)
    w = {"fc": rng.normal(size=(32, 32)).astype(np.float32)}
    stream = cost_mod.cost(w, {"fc": np.abs(w["fc"]) > 0.5}, value_bits=4).stream

    def panic(*args, **kwargs):
        raise Panic("constriction panicked")

    monkeypatch.setattr(cost_mod, "_categorical", panic)
    import pytest

    with pytest.raises(CorruptStreamError, match="does not decode: constriction panicked"):
        cost_mod.decode_cost(stream)
