"""Refuse, before allocating, a payload whose declared size cannot be decoded in this process.

A corrupted (or hostile) header can declare billions of entries behind a valid CRC; the
decoders call :func:`check_fits` with the bytes their decode will hold at its peak, *before*
any work proportional to the declared size, so that such a header gets a
:class:`~ratedist.errors.CorruptStreamError` naming the sizes instead of a ``MemoryError``
or an out-of-memory kill.

The budget (:func:`memory_budget`) is the smallest of what this process may still allocate:
the address-space limit (``RLIMIT_AS``, less what the process already maps), the cgroup's
``memory.max`` (less its ``memory.current``), the kernel's ``MemAvailable`` and physical memory.
:func:`limit_memory` lowers it further, for a test or a service that decodes untrusted
streams:

>>> with limit_memory(2**30):
...     check_fits(2**40, "a terabyte")
Traceback (most recent call last):
...
ratedist.errors.CorruptStreamError: the payload declares a terabyte; decoding needs about 1024.0 GiB but this process may allocate 1.0 GiB (the limit set by ratedist.coding.limits.limit_memory). The header is corrupted, or the data is too large to decode here (decode it on a machine with more memory).
"""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import CorruptStreamError, InvalidArgumentError

__all__ = ["physical_memory", "available_memory", "memory_budget", "limit_memory", "check_fits"]

_OVERRIDES: list[int] = []


def physical_memory() -> int | None:
    """Physical memory of this machine in bytes (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _vm_size() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _rlimit_headroom() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return None
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY or soft < 0:
        return None
    return max(0, soft - _vm_size())


def _cgroup_headroom() -> int | None:
    """``memory.max − memory.current`` of this process's cgroup (v2), or v1's ``limit_in_bytes − usage_in_bytes``."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    root = Path("/sys/fs/cgroup")
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        rel = parts[2].lstrip("/")
        if parts[0] == "0" and parts[1] == "":  # cgroup v2 (unified)
            candidates = [(root / rel, "memory.max", "memory.current"), (root, "memory.max", "memory.current")]
        elif "memory" in parts[1].split(","):  # cgroup v1 memory controller
            candidates = [(root / "memory" / rel, "memory.limit_in_bytes", "memory.usage_in_bytes"),
                          (root / "memory", "memory.limit_in_bytes", "memory.usage_in_bytes")]
        else:
            continue
        for folder, limit_file, usage_file in candidates:
            limit = _read_int(str(folder / limit_file))
            if limit is not None and limit < 1 << 60:  # v1 writes ~2**63 for "no limit"; v2 writes "max"
                return max(0, limit - (_read_int(str(folder / usage_file)) or 0))
    return None


def available_memory() -> dict[str, int]:
    """Every memory bound this process is under, in bytes, by source (sources the OS does not give are absent).

    >>> all(v >= 0 for v in available_memory().values())
    True
    """
    out = {}
    for name, v in (("physical memory", physical_memory()), ("MemAvailable", _meminfo("MemAvailable")),
                    ("RLIMIT_AS", _rlimit_headroom()), ("cgroup memory.max", _cgroup_headroom())):
        if v is not None:
            out[name] = int(v)
    if _OVERRIDES:
        out["the limit set by ratedist.coding.limits.limit_memory"] = min(_OVERRIDES)
    return out


def memory_budget() -> tuple[int, str] | None:
    """``(bytes, source)``: the most this process may allocate now, and which bound sets it (None if unknown)."""
    bounds = available_memory()
    if not bounds:
        return None
    source = min(bounds, key=bounds.get)
    return bounds[source], source


class limit_memory:
    """Lower the memory budget of :func:`check_fits` to ``n_bytes``.

    Use it as a context manager (the previous budget comes back on exit) or call it once
    (the limit then stays for the life of the process, or until :meth:`release`).

    Parameters
    ----------
    n_bytes : int
        The largest peak, in bytes, that a decode may need; must be positive.

    Examples
    --------
    >>> with limit_memory(2**20):
    ...     memory_budget()[0] <= 2**20
    True
    """

    def __init__(self, n_bytes: int):
        if isinstance(n_bytes, bool) or not isinstance(n_bytes, int) or n_bytes <= 0:
            raise InvalidArgumentError(f"`n_bytes` must be a positive integer number of bytes, got {n_bytes!r}.")
        self.n_bytes = n_bytes
        self._active = True
        _OVERRIDES.append(n_bytes)

    def release(self) -> None:
        """Remove this limit (once)."""
        if self._active:
            self._active = False
            _OVERRIDES.remove(self.n_bytes)

    def __enter__(self) -> "limit_memory":
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def check_fits(need_bytes: int, declared: str) -> None:
    """Raise :class:`CorruptStreamError` when decoding needs more than this process may allocate.

    ``need_bytes`` is the decode's peak (every array it holds at once, not only the output);
    ``declared`` says what the header declares (e.g. ``"2147483646 parameters"``).
    """
    budget = memory_budget()
    if budget is None:
        return
    have, source = budget
    if need_bytes > have:
        where = "this machine has" if source == "physical memory" else "this process may allocate"
        raise CorruptStreamError(
            f"the payload declares {declared}; decoding needs about {need_bytes / 2**30:.1f} GiB but {where} "
            f"{have / 2**30:.1f} GiB ({source}). The header is corrupted, or the data is too large to "
            "decode here (decode it on a machine with more memory).")
