"""Byte-level helpers shared by the small payload formats: LEB128 varints and a trailing CRC32.

The SuRP and pruning streams use the container of :mod:`ratedist.coding.container`;
the per-message payloads of the compressors and FedPM masks are too small for it
and carry these instead.
"""

from __future__ import annotations

import struct
import zlib

from ..errors import CorruptStreamError, InvalidArgumentError

__all__ = ["put_varint", "get_varint", "put_varints", "get_varints", "seal", "unseal"]


def put_varint(n: int) -> bytes:
    """LEB128 encoding of a non-negative integer."""
    out = bytearray()
    n = int(n)
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def get_varint(buf: bytes, pos: int) -> tuple[int, int]:
    """Read a LEB128 integer at ``pos``; return (value, next position)."""
    n = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise CorruptStreamError("payload ends inside a varint or the varint is too long; it is truncated or corrupted.")
        b = buf[pos]
        pos += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            if n >> 63:
                raise CorruptStreamError("payload holds a varint of 64 bits or more; it is corrupted.")
            return n, pos


def seal(body: bytes) -> bytes:
    """Append the CRC32 of ``body``."""
    return body + struct.pack("<I", zlib.crc32(body))


def unseal(data: bytes, what: str) -> bytes:
    """Check and strip the trailing CRC32; raise :class:`CorruptStreamError` on mismatch."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"`data` must be bytes, got {type(data).__name__}.")
    data = bytes(data)
    if len(data) < 5:
        raise CorruptStreamError(f"{what} payload has {len(data)} bytes, too short to be valid; it is truncated.")
    body, (crc,) = data[:-4], struct.unpack("<I", data[-4:])
    if zlib.crc32(body) != crc:
        raise CorruptStreamError(f"{what} payload fails its CRC32 check: it is corrupted or truncated.")
    return body


def put_varints(values) -> bytes:
    """LEB128 encodings of a sequence of non-negative integers, concatenated."""
    return b"".join(put_varint(v) for v in values)


def get_varints(buf: bytes, n: int, what: str = "payload") -> list[int]:
    """Read exactly ``n`` LEB128 integers that fill ``buf``; trailing bytes are corruption."""
    out, pos = [], 0
    for _ in range(n):
        v, pos = get_varint(buf, pos)
        out.append(v)
    if pos != len(buf):
        raise CorruptStreamError(f"{what} has {len(buf) - pos} trailing bytes; the stream is corrupted.")
    return out
