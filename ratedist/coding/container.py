"""The ratedist container: one self-describing file format for every stream.

Layout (all integers little-endian)::

    magic      4 bytes   b"RDST"
    version    u16       FORMAT_VERSION
    reserved   u16       0
    hdr_len    u32       length of the JSON header in bytes
    header     hdr_len   UTF-8 JSON object (format, algorithm, tensors, checkpoints, ...)
    hdr_crc    u32       CRC32 of the header bytes
    segments   repeated: seg_len u32 | payload seg_len bytes | crc32(payload) u32

Segments are written in order and each is CRC32-protected, so a reader that
wants only the first ``k`` segments (a checkpoint prefix) reads only the bytes
up to the end of segment ``k`` and never needs the rest of the file.  The
header declares ``n_segments``; every declared size is checked against the
bytes actually present before anything is allocated.
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

from ..errors import CorruptStreamError, InvalidArgumentError

__all__ = [
    "MAGIC",
    "FORMAT_VERSION",
    "Container",
    "pack_container",
    "unpack_container",
    "prefix_length",
    "atomic_write",
]

MAGIC = b"RDST"
FORMAT_VERSION = 1
_FIXED = struct.Struct("<4sHHI")
_U32 = struct.Struct("<I")
MAX_HEADER_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class Container:
    """A parsed container: the JSON header and the segment payloads read so far."""

    header: dict
    segments: tuple[bytes, ...]
    version: int


def pack_container(header: dict, segments: list[bytes]) -> bytes:
    """Serialize ``header`` (a JSON-able dict) and ``segments`` into container bytes.

    ``header["n_segments"]`` is set here.

    >>> blob = pack_container({"format": "demo"}, [b"abc", b""])
    >>> c = unpack_container(blob)
    >>> c.header["format"], c.segments
    ('demo', (b'abc', b''))
    """
    header = dict(header)
    header["n_segments"] = len(segments)
    try:  # NaN/Infinity are not JSON: a stream holding them would not decode, so refuse to write it
        hdr = json.dumps(header, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")
    except ValueError as exc:
        raise InvalidArgumentError(f"`header` holds a value that JSON cannot carry ({exc}); the stream would "
                                   "not decode. Check the inputs for NaN or infinite values.") from None
    if len(hdr) > MAX_HEADER_BYTES:
        raise InvalidArgumentError(f"`header` serializes to {len(hdr)} bytes; the limit is {MAX_HEADER_BYTES}.")
    parts = [_FIXED.pack(MAGIC, FORMAT_VERSION, 0, len(hdr)), hdr, _U32.pack(zlib.crc32(hdr))]
    for seg in segments:
        seg = bytes(seg)
        parts += [_U32.pack(len(seg)), seg, _U32.pack(zlib.crc32(seg))]
    return b"".join(parts)


# Longest integer literal a header may hold (Python's int() refuses more than 4300 digits by default;
# sizes are below 2**64, 20 digits, but a user's seed may be any non-negative integer).
_MAX_INT_DIGITS = 4000


def _json_constant(name: str):
    raise CorruptStreamError(f"header holds the non-JSON number {name}; the stream is corrupted or forged.")


def _json_float(text: str) -> float:
    v = float(text)
    if not math.isfinite(v):
        raise CorruptStreamError(f"header holds the number {text[:40]} that overflows a float; the stream is corrupted.")
    return v


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS:
        raise CorruptStreamError(f"header holds an integer of {len(text)} digits (at most {_MAX_INT_DIGITS}); "
                                 "the stream is corrupted.")
    return int(text)


def _parse_json(hdr: bytes) -> dict:
    """The header's JSON object; NaN, ±Infinity, overflowing floats, huge integers, invalid UTF-8
    and absurd nesting all raise :class:`CorruptStreamError` (json itself would accept the first
    three, or leak ``OverflowError``/``ValueError``/``RecursionError``)."""
    try:
        return json.loads(hdr.decode("utf-8"), parse_constant=_json_constant, parse_float=_json_float,
                          parse_int=_json_int)
    except CorruptStreamError:
        raise
    except (UnicodeDecodeError, ValueError, OverflowError, RecursionError) as exc:
        raise CorruptStreamError(f"header is not valid JSON: {str(exc)[:200]}.") from None


def _read_header(buf: bytes) -> tuple[dict, int, int]:
    if len(buf) < _FIXED.size:
        raise CorruptStreamError(f"stream is {len(buf)} bytes long, shorter than the {_FIXED.size}-byte preamble; it is truncated or not a ratedist stream.")
    magic, version, _reserved, hdr_len = _FIXED.unpack_from(buf, 0)
    if magic != MAGIC:
        raise CorruptStreamError(f"bad magic {magic!r}: not a ratedist stream (expected {MAGIC!r}).")
    if version != FORMAT_VERSION:
        raise CorruptStreamError(f"stream format version {version} is not supported (this ratedist reads version {FORMAT_VERSION}).")
    end = _FIXED.size + hdr_len
    if hdr_len > MAX_HEADER_BYTES or end + 4 > len(buf):
        raise CorruptStreamError(f"header declares {hdr_len} bytes but only {max(0, len(buf) - _FIXED.size - 4)} are present; the stream is truncated or corrupted.")
    hdr = bytes(buf[_FIXED.size:end])
    (crc,) = _U32.unpack_from(buf, end)
    if zlib.crc32(hdr) != crc:
        raise CorruptStreamError("header CRC32 mismatch: the stream is corrupted.")
    header = _parse_json(hdr)
    if not isinstance(header, dict) or not isinstance(header.get("n_segments"), int) or header["n_segments"] < 0:
        raise CorruptStreamError("header is not a JSON object with a non-negative integer `n_segments`.")
    return header, version, end + 4


def unpack_container(buf: bytes, *, max_segments: int | None = None) -> Container:
    """Parse container bytes, verifying every CRC.

    ``max_segments`` reads only the first segments (a prefix); the bytes after
    them are never touched and may be absent.
    """
    buf = memoryview(bytes(buf)) if not isinstance(buf, (bytes, bytearray, memoryview)) else memoryview(buf)
    header, version, pos = _read_header(buf)
    want = header["n_segments"] if max_segments is None else min(int(max_segments), header["n_segments"])
    segments = []
    for k in range(want):
        if pos + 4 > len(buf):
            raise CorruptStreamError(f"stream truncated before segment {k} of {header['n_segments']}.")
        (n,) = _U32.unpack_from(buf, pos)
        if pos + 4 + n + 4 > len(buf):
            raise CorruptStreamError(f"segment {k} declares {n} bytes but the stream ends {len(buf) - pos - 4} bytes later; it is truncated or corrupted.")
        payload = bytes(buf[pos + 4:pos + 4 + n])
        (crc,) = _U32.unpack_from(buf, pos + 4 + n)
        if zlib.crc32(payload) != crc:
            raise CorruptStreamError(f"segment {k}: CRC32 mismatch; the stream is corrupted.")
        segments.append(payload)
        pos += 8 + n
    return Container(header=header, segments=tuple(segments), version=version)


def prefix_length(buf: bytes, n_segments: int) -> int:
    """Number of bytes from the start of ``buf`` up to the end of segment ``n_segments``."""
    header, _, pos = _read_header(memoryview(buf))
    for k in range(min(n_segments, header["n_segments"])):
        if pos + 4 > len(buf):
            raise CorruptStreamError(f"stream truncated before segment {k}.")
        (n,) = _U32.unpack_from(buf, pos)
        pos += 8 + n
    return pos


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temporary file in the same folder, then rename).

    A crash leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    folder = path.parent if str(path.parent) else Path(".")
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
    return path
