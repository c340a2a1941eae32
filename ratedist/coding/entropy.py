"""Entropy coding helpers on top of constriction (never a hand-written arithmetic coder).

Compressed data travels as ``bytes``; constriction works on ``uint32`` words.
"""

from __future__ import annotations

import numpy as np

from ..errors import CorruptStreamError

__all__ = [
    "words_to_bytes",
    "bytes_to_words",
    "encode_bernoulli",
    "decode_bernoulli",
    "binary_entropy_bits",
    "decode_failure",
]


def words_to_bytes(words: np.ndarray) -> bytes:
    return np.ascontiguousarray(words, dtype="<u4").tobytes()


def bytes_to_words(data: bytes) -> np.ndarray:
    if len(data) % 4:
        raise CorruptStreamError(f"compressed payload has {len(data)} bytes, not a multiple of 4.")
    return np.frombuffer(data, dtype="<u4").astype(np.uint32)


def _model():
    import constriction

    return constriction.stream.model


def encode_bernoulli(bits, p) -> bytes:
    """Range-code a 0/1 array under Bernoulli(``p``): ``p`` a scalar or one probability per bit.

    >>> b = np.array([0, 1, 1, 0, 0, 0, 1], dtype=np.int32)
    >>> np.array_equal(decode_bernoulli(encode_bernoulli(b, 0.4), 0.4, b.size), b)
    True
    """
    import constriction

    bits = np.ascontiguousarray(bits, dtype=np.int32).ravel()
    enc = constriction.stream.queue.RangeEncoder()
    if bits.size:
        if np.ndim(p) == 0:
            enc.encode(bits, _model().Bernoulli(float(p), perfect=False))
        else:
            enc.encode(bits, _model().Bernoulli(perfect=False), np.ascontiguousarray(p, dtype=np.float64).ravel())
    return words_to_bytes(enc.get_compressed())


def decode_bernoulli(data: bytes, p, n: int) -> np.ndarray:
    """Inverse of :func:`encode_bernoulli`; returns ``n`` int32 bits."""
    import constriction

    if n == 0:
        return np.zeros(0, dtype=np.int32)
    dec = constriction.stream.queue.RangeDecoder(bytes_to_words(data))
    try:
        if np.ndim(p) == 0:
            out = dec.decode(_model().Bernoulli(float(p), perfect=False), int(n))
        else:
            out = dec.decode(_model().Bernoulli(perfect=False), np.ascontiguousarray(p, dtype=np.float64).ravel())
    except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
        raise decode_failure(exc, "Bernoulli payload") from None
    return np.asarray(out, dtype=np.int32)


def decode_failure(exc: BaseException, what: str) -> BaseException:
    """The exception to raise when an entropy decode fails: every failure of constriction (the
    exceptions it raises on data that does not decode, and the pyo3 ``PanicException`` of an internal
    panic, which is a ``BaseException``) becomes a :class:`CorruptStreamError` naming ``what``;
    ratedist's own errors, interrupts and ``MemoryError`` pass through unchanged.

    Use as ``except BaseException as exc: raise decode_failure(exc, "...") from None``.

    >>> decode_failure(ValueError("bad word"), "mask payload")
    CorruptStreamError('mask payload does not decode: bad word')
    """
    if isinstance(exc, (CorruptStreamError, KeyboardInterrupt, SystemExit, MemoryError, GeneratorExit)):
        return exc
    return CorruptStreamError(f"{what} does not decode: {exc}")


def binary_entropy_bits(p):
    """h_b(p) in bits, with h_b(0) = h_b(1) = 0.

    >>> float(binary_entropy_bits(0.5))
    1.0
    """
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
    return np.where((p <= 0) | (p >= 1), 0.0, h)
