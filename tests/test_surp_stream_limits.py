"""A stream header that declares more parameters than the machine can hold is refused before allocating."""

from __future__ import annotations

import numpy as np
import pytest

from ratedist import surp
from ratedist.coding.container import pack_container, unpack_container
from ratedist.errors import CorruptStreamError
from ratedist.surp import decoder

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
    monkeypatch.setattr(decoder, "_memory_bytes", lambda: 4 * 2**30)
    with pytest.raises(CorruptStreamError, match=r"declares 2147483646 parameters; decoding them needs about"):
        surp.decode(_with_n(enc.stream, N_ABSURD))
    # the genuine stream still decodes, bit-exactly, on the same (pretended) machine
    assert np.array_equal(surp.decode(enc.stream)["w"], enc.reconstructions[-1]["w"])

def test_memory_bytes_is_positive_or_unknown():
    """The physical-memory probe returns a positive byte count (or None where the OS does not say)."""
    m = decoder._memory_bytes()
    assert m is None or m > 0
