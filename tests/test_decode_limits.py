"""Payload headers that declare more data than the machine can hold are refused before allocating."""

from __future__ import annotations

import numpy as np
import pytest

from ratedist import compressors, surp
from ratedist.coding.container import pack_container, unpack_container
from ratedist.coding.varint import get_varint, put_varint, seal, unseal
from ratedist.errors import CorruptStreamError
from ratedist.coding import limits

N_ABSURD = 2**31 - 2


def _with_n(stream: bytes, n: int) -> bytes:
    c = unpack_container(stream)
    h = dict(c.header)
    h.pop("n_segments")
    h["tensors"] = [{**h["tensors"][0], "shape": [n], "size": n}]
    h["n_params"] = n
    return pack_container(h, list(c.segments))


@pytest.mark.parametrize("algorithm", ["sequential", "parallel"])
def test_header_too_large_for_memory_is_refused(monkeypatch, algorithm):
    """A CRC-valid header declaring 2**31 − 2 parameters on a (pretended) 4 GiB machine raises
    CorruptStreamError naming the sizes, for both algorithms, before any n-sized allocation."""
    w = {"w": np.random.default_rng(0).laplace(size=300).astype(np.float32)}
    enc = surp.encode(w, 0.9, algorithm=algorithm, keep_reconstructions=True)
    monkeypatch.setattr(limits, "physical_memory", lambda: 4 * 2**30)
    with pytest.raises(CorruptStreamError, match=r"declares 2147483646 parameters; decoding needs about"):
        surp.decode(_with_n(enc.stream, N_ABSURD))
    # the genuine stream still decodes, bit-exactly, on the same (pretended) machine
    assert np.array_equal(surp.decode(enc.stream)["w"], enc.reconstructions[-1]["w"])

def test_physical_memory_is_positive_or_unknown():
    """The physical-memory probe returns a positive byte count (or None where the OS does not say)."""
    m = limits.physical_memory()
    assert m is None or m > 0


@pytest.mark.parametrize("method", ["qsgd", "drive", "eden", "fedmask", "fedpm"])
def test_compressor_dimension_too_large_for_memory_is_refused(method):
    """A CRC-valid compressor payload whose header declares d = 2**40 raises CorruptStreamError
    naming the dimension (never MemoryError), for every compressor."""
    x = np.random.default_rng(0).uniform(size=500)
    comp = compressors.get_compressor(method)
    body = unseal(comp.encode(x, seed=1), "test")
    d, pos = get_varint(body, 3)
    seed, rest = get_varint(body, pos)
    forged = seal(body[:3] + put_varint(2**40) + put_varint(seed) + body[rest:])
    with pytest.raises(CorruptStreamError, match="declares dimension 1099511627776"):
        comp.decode(forged)
    assert d == 500 and np.asarray(comp.decode(comp.encode(x, seed=1))).shape == (500,)


@pytest.mark.parametrize("n_forged", [2**34, 2**40])
@pytest.mark.parametrize("mode", ["paper", "per_coordinate"])
def test_mask_payload_with_absurd_length_is_refused(monkeypatch, mode, n_forged):
    """A CRC-valid FedPM mask payload declaring 2**34 or 2**40 entries raises CorruptStreamError
    (2**40 used to reach constriction with an out-of-range model and panic)."""
    from ratedist.fedpm import bitrate as B

    monkeypatch.setattr(limits, "physical_memory", lambda: 4 * 2**30)
    mask = np.random.default_rng(1).uniform(size=1000) < 0.3
    theta = np.full(1000, 0.3)
    if mode == "paper":
        data, dec = B.bitrate_paper(mask).data, B.decode_mask_paper
    else:
        data, dec = B.bitrate_per_coordinate(mask, theta).data, (lambda d: B.decode_mask_per_coordinate(d, theta))
    body = unseal(data, "test")
    n, pos = get_varint(body, 1)
    assert n == 1000 and np.array_equal(dec(data).astype(bool), mask)
    with pytest.raises(CorruptStreamError, match="2\\^35|decoding needs about"):
        dec(seal(body[:1] + put_varint(n_forged) + body[pos:]))


def test_pruning_cost_stream_with_absurd_shape_is_refused():
    """A CRC-valid pruning-cost stream whose header declares a tensor of 2**40 entries raises
    CorruptStreamError naming the tensor, not MemoryError."""
    from ratedist.pruning import cost, decode_cost, prune

    w = {"a": np.random.default_rng(2).normal(size=(40, 30))}
    res = prune(w, method="global", sparsity=0.8)
    stream = cost(w, res.masks, value_bits=8).stream
    c = unpack_container(stream)
    h = dict(c.header)
    h.pop("n_segments")
    h["tensors"] = [{**h["tensors"][0], "shape": [2**40]}]
    with pytest.raises(CorruptStreamError, match="tensor 'a' of shape"):
        decode_cost(pack_container(h, list(c.segments)))


def test_refinement_stream_with_absurd_block_count_is_refused():
    """A CRC-valid refinement stream declaring 10**15 blocks (with a zero-bit stage, whose payload is
    empty whatever the count) raises CorruptStreamError, not MemoryError."""
    from ratedist.refinement import make_refinement_code, refinement_decode_bytes, refinement_encode_bytes

    code = make_refinement_code(2, [0.0], seed=3)
    blob = refinement_encode_bytes(code, np.random.default_rng(0).laplace(size=(5, 2)))
    c = unpack_container(blob)
    h = dict(c.header)
    h.pop("n_segments")
    assert h["index_bits"] == [0]
    h["n_blocks"] = 10**15
    with pytest.raises(CorruptStreamError, match="declares 1000000000000000 blocks of 2 symbols"):
        refinement_decode_bytes(pack_container(h, list(c.segments)))
