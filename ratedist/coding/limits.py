"""Refuse, before allocating, a payload whose declared size cannot be decoded on this machine.

A corrupted (or hostile) header can declare billions of entries behind a valid CRC; the
decoders call :func:`check_fits` with the bytes they are about to allocate, so that such a
header gets a :class:`~ratedist.errors.CorruptStreamError` naming the sizes instead of a
``MemoryError`` or an out-of-memory kill.
"""

from __future__ import annotations

import os

from ..errors import CorruptStreamError

__all__ = ["physical_memory", "check_fits"]


def physical_memory() -> int | None:
    """Physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_fits(need_bytes: int, declared: str) -> None:
    """Raise :class:`CorruptStreamError` when decoding needs more than this machine's memory.

    ``declared`` says what the header declares (e.g. ``"2147483646 parameters"``).
    """
    have = physical_memory()
    if have is not None and need_bytes > have:
        raise CorruptStreamError(
            f"the payload declares {declared}; decoding needs about {need_bytes / 2**30:.1f} GiB but this "
            f"machine has {have / 2**30:.1f} GiB. The header is corrupted, or the data is too large to "
            "decode here (decode it on a machine with more memory).")
