"""Entropy coding (constriction) and the ratedist container format."""

from .container import (
    FORMAT_VERSION,
    MAGIC,
    Container,
    atomic_write,
    pack_container,
    prefix_length,
    unpack_container,
)
from .entropy import binary_entropy_bits, bytes_to_words, decode_bernoulli, encode_bernoulli, words_to_bytes

__all__ = [
    "FORMAT_VERSION",
    "MAGIC",
    "Container",
    "atomic_write",
    "pack_container",
    "prefix_length",
    "unpack_container",
    "binary_entropy_bits",
    "bytes_to_words",
    "decode_bernoulli",
    "encode_bernoulli",
    "words_to_bytes",
]
