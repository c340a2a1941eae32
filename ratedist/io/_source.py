"""Open a checkpoint (a file, an ``*.index.json`` or a directory) as a lazy read-only mapping."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from ..errors import InvalidArgumentError
from ._dtypes import compute_dtype, is_narrow_float, to_compute
from ._npz import NpzFile
from ._safetensors import SafetensorsFile, _no_duplicates
from ._torch import TorchFile

__all__ = ["WeightsSource", "open_weights", "WEIGHT_SUFFIXES", "INDEX_SUFFIX"]

WEIGHT_SUFFIXES = (".npz", ".safetensors", ".pt", ".pth", ".bin")
INDEX_SUFFIX = ".index.json"
_READERS = {".npz": NpzFile, ".safetensors": SafetensorsFile, ".pt": TorchFile, ".pth": TorchFile, ".bin": TorchFile}


class WeightsSource(Mapping):
    """A checkpoint opened lazily: ``Mapping[str, numpy.ndarray]`` whose values are read when accessed.

    Iteration follows the checkpoint's order (the index's ``weight_map`` for a
    sharded checkpoint, the file's order otherwise).  Values are read-only and in
    the dtype computations use (:func:`compute_dtype`: bfloat16 and float8 become
    float32, exactly); :meth:`stored_dtype` tells the dtype on disk and
    :meth:`raw` gives the tensor in it.  ``.safetensors`` values are
    ``numpy.memmap`` views at the header's offsets; ``.npz`` members are
    decompressed on access; torch files are opened with ``mmap=True``.

    Use it as a context manager (or call :meth:`close`) to release the files.
    """

    def __init__(self, path: Path, files: list, order: list[str], owner: dict[str, int], *,
                 index_name: str | None = None, index: dict | None = None):
        self.path = path
        self.files = tuple(files)
        self._order = order
        self._owner = owner
        self.index_name = index_name
        self.index = index  # the parsed index file (metadata and any other top-level keys), or None

    # -- Mapping
    def __getitem__(self, name: str) -> np.ndarray:
        out = to_compute(self.raw(name))
        if out.flags.writeable:
            out.flags.writeable = False
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def __contains__(self, name) -> bool:
        return name in self._owner

    # -- what is stored
    def _file(self, name: str):
        try:
            return self.files[self._owner[name]]
        except KeyError:
            raise KeyError(name) from None

    def raw(self, name: str) -> np.ndarray:
        """Tensor ``name`` in its stored dtype (``ml_dtypes.bfloat16`` etc. for the narrow floats), read-only."""
        return self._file(name).raw(name)

    def stored_dtype(self, name: str) -> np.dtype:
        """The dtype tensor ``name`` has on disk (e.g. ``dtype(bfloat16)``), whatever :meth:`__getitem__` returns."""
        return self._file(name).stored_dtype(name)

    @property
    def stored_dtypes(self) -> dict[str, str]:
        """``{name: stored dtype name}`` in order, for reports (``'bfloat16'``, ``'float8_e4m3fn'``, ...)."""
        return {n: self.stored_dtype(n).name for n in self._order}

    def shape(self, name: str) -> tuple[int, ...]:
        return self._file(name).shape(name)

    def shard_of(self, name: str) -> str:
        """The file name (relative to the checkpoint's folder) holding tensor ``name``."""
        return self._file(name).path.name

    def names_in(self, file) -> list[str]:
        """The tensors of ``file`` (one of :attr:`files`) that belong to this checkpoint, in the file's order."""
        k = self.files.index(file)
        return [n for n in file.names if self._owner.get(n) == k]

    @property
    def format(self) -> str:
        return self.files[0].kind

    @property
    def sharded(self) -> bool:
        return self.index_name is not None or len(self.files) > 1

    def value(self, name: str, *, copy: bool = False) -> np.ndarray:
        """Like ``self[name]``; with ``copy=True`` a fresh writable array that does not keep the file mapped."""
        if not copy:
            return self[name]
        raw = self.raw(name)
        return raw.astype(compute_dtype(raw.dtype)) if is_narrow_float(raw.dtype) or not raw.dtype.isnative \
            else np.array(raw)

    def close(self) -> None:
        for f in self.files:
            f.close()

    def __enter__(self) -> WeightsSource:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"WeightsSource({str(self.path)!r}, {len(self)} tensors in {len(self.files)} file(s))"


def _reader(path: Path, what: str):
    suffix = path.suffix.lower()
    cls = _READERS.get(suffix)
    if cls is None:
        raise InvalidArgumentError(
            f"`{what}` {str(path)!r} has suffix {suffix!r}; use one of {', '.join(WEIGHT_SUFFIXES)}, an "
            f"`*{INDEX_SUFFIX}` or a directory."
        )
    if not path.is_file():
        raise InvalidArgumentError(f"`{what}` {str(path)!r} does not exist or is not a file.")
    return cls(path)


def _assemble(path: Path, files: list, order: list[str] | None, **kw) -> WeightsSource:
    owner: dict[str, int] = {}
    for k, f in enumerate(files):
        for name in f.names:
            if name in owner:
                other = files[owner[name]].path.name
                for g in files:
                    g.close()
                raise InvalidArgumentError(
                    f"`path` {str(path)!r}: tensor {name!r} is in two shards, {other!r} and {f.path.name!r}; remove "
                    "the stale shard (or fix the index) so each name has one home."
                )
            owner[name] = k
    if order is None:
        order = [n for f in files for n in f.names]
    else:  # a shard may hold tensors its index does not list: they are not part of the checkpoint
        listed = set(order)
        owner = {n: k for n, k in owner.items() if n in listed}
    return WeightsSource(path, files, order, owner, **kw)


def _open_index(index_path: Path) -> WeightsSource:
    label = f"`path` {str(index_path)!r}"
    if not index_path.is_file():
        raise InvalidArgumentError(f"{label} does not exist or is not a file.")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates(label))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidArgumentError(f"{label} is not a readable JSON index: {exc}") from None
    wmap = index.get("weight_map") if isinstance(index, dict) else None
    if not (isinstance(wmap, dict) and wmap and all(isinstance(v, str) for v in wmap.values())):
        raise InvalidArgumentError(
            f"{label} has no `weight_map` of tensor names to shard files; it is not a checkpoint index."
        )
    shard_names = list(dict.fromkeys(wmap.values()))
    files = []
    try:
        for shard in shard_names:
            p = index_path.parent / shard
            if os.path.isabs(shard) or ".." in Path(shard).parts:
                raise InvalidArgumentError(f"{label} lists shard {shard!r} outside its folder; fix the index.")
            if not p.is_file():
                n = sum(1 for v in wmap.values() if v == shard)
                raise InvalidArgumentError(
                    f"{label} lists shard {shard!r} for {n} tensor(s) but {str(p)!r} is missing; download or copy it "
                    "next to the index."
                )
            files.append(_reader(p, "path"))
        for name, shard in wmap.items():
            f = files[shard_names.index(shard)]
            if name not in f.names:
                raise InvalidArgumentError(
                    f"{label} maps tensor {name!r} to shard {shard!r}, which has no such tensor; the index and the "
                    "shards do not match: download them again."
                )
    except BaseException:
        for f in files:
            f.close()
        raise
    return _assemble(index_path, files, list(wmap), index_name=index_path.name, index=index)


def _open_directory(folder: Path) -> WeightsSource:
    entries = sorted(p for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))
    indexes = [p for p in entries if p.name.endswith(INDEX_SUFFIX)]
    if len(indexes) > 1:
        st = [p for p in indexes if p.name.endswith(".safetensors" + INDEX_SUFFIX)]
        if len(st) != 1:
            raise InvalidArgumentError(
                f"`path` {str(folder)!r} holds several indexes ({', '.join(p.name for p in indexes)}); pass the one "
                "to read."
            )
        indexes = st
    if indexes:
        return _open_index(indexes[0])
    weights = [p for p in entries if p.suffix.lower() in WEIGHT_SUFFIXES]
    shards = [p for p in weights if p.suffix.lower() == ".safetensors"]
    if shards:
        files = []
        try:
            for p in shards:
                files.append(_reader(p, "path"))
        except BaseException:
            for f in files:
                f.close()
            raise
        return _assemble(folder, files, None)
    if len(weights) == 1:
        return _assemble(folder, [_reader(weights[0], "path")], None)
    if weights:
        raise InvalidArgumentError(
            f"`path` {str(folder)!r} holds several checkpoints ({', '.join(p.name for p in weights)}) and no index; "
            "pass one file."
        )
    raise InvalidArgumentError(
        f"`path` {str(folder)!r} is a directory with no checkpoint (no *{INDEX_SUFFIX}, "
        f"{', '.join(WEIGHT_SUFFIXES)} file); pass the folder that holds the weights, or a file."
    )


def open_weights(path: str | os.PathLike) -> WeightsSource:
    """Open a checkpoint lazily: a weights file, a sharded checkpoint's ``*.index.json``, or a directory.

    A directory is read through its index if it has one, else as the set of its
    ``.safetensors`` shards (in file-name order), else as its single weights file.
    Headers are read and checked now (sizes, offsets, duplicate names, shards
    listed but missing, names held by two shards); tensor data is read only when a
    value is accessed.  Nothing is ever unpickled.

    Returns
    -------
    WeightsSource
        A read-only ``Mapping[str, ndarray]`` with ``stored_dtype(name)``.
    """
    if isinstance(path, WeightsSource):
        return path
    p = Path(path)
    if not p.exists():
        raise InvalidArgumentError(
            f"`path` {str(p)!r} does not exist; pass a weights file ({', '.join(WEIGHT_SUFFIXES)}), an "
            f"`*{INDEX_SUFFIX}` or a directory."
        )
    if p.is_dir():
        return _open_directory(p)
    if p.name.endswith(INDEX_SUFFIX):
        return _open_index(p)
    return _assemble(p, [_reader(p, "path")], None)
