"""``.npz`` archives without pickles: headers checked when opened, arrays read when used."""

from __future__ import annotations

import io as _io
import zipfile
import zlib
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError

__all__ = ["NpzFile", "npz_bytes"]


class NpzFile:
    """One ``.npz`` opened lazily: every member's ``.npy`` header is read and checked, its data is not."""

    kind = "npz"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.metadata: dict[str, str] = {}
        label = f"`path` {str(self.path)!r}"
        try:
            self._zip = zipfile.ZipFile(self.path)
        except (OSError, zipfile.BadZipFile, EOFError, ValueError) as exc:
            raise InvalidArgumentError(f"{label} is not a readable .npz of plain arrays: {exc}") from None
        try:
            self.entries: dict[str, tuple[np.dtype, tuple[int, ...], str]] = {}
            for member in self._zip.namelist():
                if not member.endswith(".npy"):
                    raise InvalidArgumentError(
                        f"{label} holds {member!r}, which is not a .npy array; save the archive with numpy.savez."
                    )
                name = member[:-4]
                if name in self.entries:
                    raise InvalidArgumentError(
                        f"{label} holds array {name!r} twice (one copy would silently win); rewrite it with one "
                        "array per name."
                    )
                self.entries[name] = (*self._header(label, name, member), member)
        except BaseException:
            self._zip.close()
            raise
        self.names = list(self.entries)

    def _header(self, label, name, member):
        try:
            with self._zip.open(member) as fh:
                fmt = np.lib.format
                version = fmt.read_magic(fh)
                read = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                shape, _fortran, dtype = read(fh)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, zlib.error) as exc:
            raise InvalidArgumentError(f"{label}: array {name!r} has an unreadable .npy header: {exc}") from None
        if dtype.hasobject:
            raise InvalidArgumentError(
                f"{label}: array {name!r} holds Python objects (a pickle), which ratedist never loads; save plain "
                "numeric arrays."
            )
        return dtype, tuple(shape)

    def stored_dtype(self, name: str) -> np.dtype:
        return self.entries[name][0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def raw(self, name: str) -> np.ndarray:
        member = self.entries[name][2]
        try:
            with self._zip.open(member) as fh:
                arr = np.lib.format.read_array(fh, allow_pickle=False)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as exc:
            raise InvalidArgumentError(
                f"`path` {str(self.path)!r}: array {name!r} cannot be read ({exc}); the archive is corrupt: write "
                "it again."
            ) from None
        arr.flags.writeable = False
        return arr

    def close(self) -> None:
        self._zip.close()


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """The bytes of an uncompressed ``.npz`` holding ``arrays`` in order (as ``numpy.savez`` writes it)."""
    buf = _io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()
