"""``.safetensors`` files: a validating header parser, lazy memory-mapped reads, and bytes to write.

Reading parses the header here rather than through ``safetensors.safe_open``
for two reasons: ``safe_open(...).get_tensor`` copies every tensor into a new
array (we want ``numpy.memmap`` views at the header's offsets, read only when a
tensor is used), and its JSON parser lets a duplicated tensor name win silently,
which we refuse.  Writing goes through ``safetensors.numpy.save``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError
from ._dtypes import SAFETENSORS_CODES

__all__ = ["SafetensorsFile", "safetensors_bytes", "ORDER_KEY"]

ORDER_KEY = "ratedist.order"
_MAX_HEADER_BYTES = 100 * 1024 * 1024  # the safetensors library's own limit


def _no_duplicates(label: str):
    def hook(pairs):
        out = {}
        for k, v in pairs:
            if k in out:
                raise InvalidArgumentError(
                    f"{label} names {k!r} twice (one copy would silently win); the file is corrupt or hand-edited: "
                    "rewrite it with a single entry per name."
                )
            out[k] = v
        return out

    return hook


class SafetensorsFile:
    """One ``.safetensors`` file opened lazily: the header is read and checked, the data is not."""

    kind = "safetensors"

    def __init__(self, path: Path):
        self.path = Path(path)
        label = f"`path` {str(self.path)!r}"
        try:
            size = os.path.getsize(self.path)
            with open(self.path, "rb") as fh:
                head = fh.read(8)
                if len(head) < 8:
                    raise InvalidArgumentError(
                        f"{label} is not a valid .safetensors file: it is {size} bytes long, shorter than the 8-byte "
                        "header length; it is truncated or not a safetensors file."
                    )
                n = int.from_bytes(head, "little")
                if n > min(_MAX_HEADER_BYTES, size - 8):
                    raise InvalidArgumentError(
                        f"{label} is not a valid .safetensors file: its header claims {n} bytes but the file has "
                        f"{size - 8} after the length field; it is truncated or not a safetensors file."
                    )
                raw = fh.read(n)
        except OSError as exc:
            raise InvalidArgumentError(f"{label} cannot be read: {exc.strerror or exc}.") from None
        try:
            header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates(label))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise InvalidArgumentError(
                f"{label} is not a valid .safetensors file: its header is not UTF-8 JSON; it is corrupt or another "
                "format."
            ) from None
        if not isinstance(header, dict):
            raise InvalidArgumentError(f"{label} is not a valid .safetensors file: its header is not a JSON object.")
        self.data_start = 8 + n
        buffer_len = size - self.data_start
        meta = header.pop("__metadata__", None)
        if meta is not None and not (
            isinstance(meta, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in meta.items())
        ):
            raise InvalidArgumentError(
                f"{label} has a `__metadata__` that is not a mapping of strings to strings; the file is corrupt."
            )
        self.metadata: dict[str, str] = dict(meta or {})
        self.entries: dict[str, tuple[np.dtype, tuple[int, ...], int, int, str]] = {}
        spans = []
        for name, entry in header.items():
            dtype, shape, begin, end, code = self._entry(label, name, entry, buffer_len)
            self.entries[name] = (dtype, shape, begin, end, code)
            spans.append((begin, end, name))
        spans.sort()
        for (b0, e0, n0), (b1, e1, n1) in zip(spans, spans[1:]):
            if b1 < e0:
                raise InvalidArgumentError(
                    f"{label}: the bytes of tensors {n0!r} and {n1!r} overlap ([{b0}, {e0}) and [{b1}, {e1})); the "
                    "header lies about its sizes: re-export the checkpoint."
                )
        self.names = self._order(list(self.entries))

    @staticmethod
    def _entry(label, name, entry, buffer_len):
        if not isinstance(entry, dict):
            raise InvalidArgumentError(f"{label}: header entry {name!r} is not an object; the file is corrupt.")
        code, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
        if not isinstance(code, str):
            raise InvalidArgumentError(f"{label}: tensor {name!r} has no dtype in the header; the file is corrupt.")
        dtype = SAFETENSORS_CODES.get(code)
        if dtype is None:
            raise InvalidArgumentError(
                f"{label}: tensor {name!r} has dtype {code!r}, which ratedist cannot read (it reads "
                f"{', '.join(SAFETENSORS_CODES)}); convert that tensor, e.g. to BF16 or F32, or drop it."
            )
        if not (isinstance(shape, list) and all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                                                for s in shape)):
            raise InvalidArgumentError(f"{label}: tensor {name!r} has an invalid shape {shape!r}; the file is corrupt.")
        if not (isinstance(offsets, list) and len(offsets) == 2
                and all(isinstance(o, int) and not isinstance(o, bool) for o in offsets)):
            raise InvalidArgumentError(
                f"{label}: tensor {name!r} has invalid data_offsets {offsets!r}; the file is corrupt."
            )
        begin, end = offsets
        want = math.prod(shape) * dtype.itemsize
        if not 0 <= begin <= end or end - begin != want:
            raise InvalidArgumentError(
                f"{label}: tensor {name!r} ({code}, shape {tuple(shape)}) needs {want} bytes but its header gives "
                f"offsets [{begin}, {end}); the header lies about its sizes: re-export the checkpoint."
            )
        if end > buffer_len:
            raise InvalidArgumentError(
                f"{label}: tensor {name!r} ends at byte {end} of the data but the file holds only {buffer_len}; it "
                "is truncated: copy or download it again."
            )
        return dtype, tuple(shape), begin, end, code

    def _order(self, names: list[str]) -> list[str]:
        """ratedist's own files record their key order; other files list names sorted, as safetensors does."""
        if ORDER_KEY in self.metadata:
            try:
                order = json.loads(self.metadata[ORDER_KEY])
            except json.JSONDecodeError:
                order = None
            if isinstance(order, list) and sorted(map(str, order)) == sorted(names) and len(set(order)) == len(order):
                return list(order)
        return sorted(names)

    def stored_dtype(self, name: str) -> np.dtype:
        return self.entries[name][0]

    def shape(self, name: str) -> tuple[int, ...]:
        return self.entries[name][1]

    def raw(self, name: str) -> np.ndarray:
        """The tensor in its stored dtype, as a read-only view of the file mapped at its offsets."""
        dtype, shape, begin, end, _ = self.entries[name]
        if end == begin:
            out = np.zeros(shape, dtype=dtype)
            out.flags.writeable = False
            return out
        try:
            mm = np.memmap(self.path, dtype=dtype, mode="r", offset=self.data_start + begin,
                           shape=(math.prod(shape),))
        except (OSError, ValueError) as exc:
            raise InvalidArgumentError(
                f"`path` {str(self.path)!r}: tensor {name!r} cannot be mapped ({exc}); the file changed or is "
                "truncated: copy it again."
            ) from None
        return mm.view(np.ndarray).reshape(shape)

    def close(self) -> None:  # memory maps are released with the arrays that use them
        pass


def safetensors_bytes(arrays: dict[str, np.ndarray], metadata: dict[str, str] | None, *, label: str) -> bytes:
    """Serialize ``arrays`` (in order) with ``metadata``; refuse dtypes the format cannot hold, naming the tensor."""
    from safetensors.numpy import save

    codes = {v.name for v in SAFETENSORS_CODES.values()}
    out = {}
    for name, arr in arrays.items():
        if arr.dtype.newbyteorder("=").name not in codes:
            raise InvalidArgumentError(
                f"tensor {name!r} has dtype {arr.dtype}, which {label} (a .safetensors file) cannot hold; write "
                ".npz instead, or cast it (e.g. to float64) first."
            )
        # np.ascontiguousarray would turn a 0-d array into shape (1,); np.require keeps the shape.
        out[name] = np.require(arr, requirements="C")
    return save(out, metadata=metadata or None)
