"""Write weights as one file or as a shard set with its index, in the source's dtype and layout, atomically."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._validation import check_weights
from ..coding.container import atomic_write
from ..errors import InvalidArgumentError
from ._dtypes import cast_to_stored, compute_dtype, is_narrow_float
from ._npz import npz_bytes
from ._safetensors import ORDER_KEY, SAFETENSORS_CODES, safetensors_bytes
from ._source import INDEX_SUFFIX, WEIGHT_SUFFIXES, WeightsSource, open_weights

__all__ = ["save_weights", "DEFAULT_SHARD_BYTES"]

DEFAULT_SHARD_BYTES = 5 * 10**9  # shards of a checkpoint written without `like` (the Hugging Face default)
_DEFAULT_INDEX = "model.safetensors" + INDEX_SUFFIX


def _checked(weights) -> dict[str, np.ndarray]:
    """check_weights, also accepting bfloat16/float8 arrays (checked for NaN/inf through float32)."""
    if not isinstance(weights, Mapping):
        return check_weights("weights", weights)
    narrow = {}
    proxy = {}
    for k, v in weights.items():
        if isinstance(v, np.ndarray) and is_narrow_float(v.dtype):
            narrow[k] = v
            proxy[k] = v.astype(np.float32)
        else:
            proxy[k] = v
    out = check_weights("weights", proxy)
    out.update({k: v for k, v in narrow.items() if k in out})
    return out


def _safetensors_ok(name: str, arr: np.ndarray, target: Path) -> None:
    if arr.dtype.newbyteorder("=") not in {d.newbyteorder("=") for d in SAFETENSORS_CODES.values()}:
        raise InvalidArgumentError(
            f"tensor {name!r} has dtype {arr.dtype}, which `path` {str(target)!r} (.safetensors) cannot hold; write "
            ".npz instead, or cast it (e.g. to float64) first."
        )


def _file_metadata(base: Mapping[str, str] | None, order: list[str]) -> dict[str, str]:
    """The source file's metadata, plus ratedist's key order where the reader would not infer it (sorted names)."""
    if base is None:
        return {ORDER_KEY: json.dumps(order)}
    meta = dict(base)
    if ORDER_KEY in meta or order != sorted(order):
        meta[ORDER_KEY] = json.dumps(order)
    return meta


def save_weights(path: str | os.PathLike, weights: Mapping[str, np.ndarray], *, like=None,
                 max_shard_bytes: int | None = None) -> Path:
    """Write ``weights`` to ``path`` atomically: one ``.safetensors``/``.npz`` file, or shards plus an index.

    Parameters
    ----------
    path
        ``*.safetensors`` or ``*.npz``: one file.  A directory (existing, or a
        new path without a suffix), or a path ending in ``.index.json``: a set of
        ``.safetensors`` shards and their index in that folder.
    weights
        ``Mapping[str, array]``; float arrays (any precision, bfloat16/float8
        from ``ml_dtypes`` too), integer or boolean arrays.
    like
        The checkpoint the weights came from (an :func:`open_weights` result, or a
        path to open).  The output then keeps its stored dtypes (cast back with
        round-to-nearest-even, saturating at the largest finite value), its key
        order, its files' metadata and, for shard output, its shard membership,
        shard file names and index metadata.  A ``.npz`` cannot hold
        bfloat16/float8, so those tensors are written as float32 there.  Names
        of ``weights`` missing from ``like`` are appended (in their own dtype, in
        the last shard); names of ``like`` missing from ``weights`` are left out.
    max_shard_bytes
        Shard size for shard output without ``like`` (default 5 GB).

    Notes
    -----
    Nothing is written until every tensor has been checked and cast.  Shards are
    written into a temporary folder beside the target; a new (or empty) target
    folder is then put in place with one rename, so the set appears whole or not
    at all.  Into an existing non-empty folder the files are renamed one by one,
    the index last; other files there are left alone.
    """
    target = Path(path)
    arrays = _checked(weights)
    src = None if like is None else open_weights(like)
    try:
        return _save(target, arrays, src, max_shard_bytes)
    finally:
        if src is not None and src is not like:
            src.close()


def _ordered(arrays: dict[str, np.ndarray], src: WeightsSource | None) -> list[str]:
    if src is None:
        return list(arrays)
    return [n for n in src if n in arrays] + [n for n in arrays if n not in src]


def _save(target: Path, arrays, src, max_shard_bytes) -> Path:
    name = target.name
    suffix = target.suffix.lower()
    shard_output = name.endswith(INDEX_SUFFIX) or target.is_dir() or (suffix == "" and name not in ("", "."))
    if not shard_output and suffix not in (".safetensors", ".npz"):
        if suffix in WEIGHT_SUFFIXES:
            raise InvalidArgumentError(
                f"`path` {str(target)!r}: writing torch files is not supported; use .safetensors or .npz."
            )
        raise InvalidArgumentError(
            f"`path` {str(target)!r} has suffix {suffix!r}; write a .safetensors or .npz file, a directory, or a "
            f"path ending in {INDEX_SUFFIX}."
        )
    order = _ordered(arrays, src)
    as_npz = suffix == ".npz" and not shard_output
    out = {}
    for n in order:
        arr = arrays[n]
        if src is not None and n in src:
            stored = src.stored_dtype(n)
            arr = cast_to_stored(arr, compute_dtype(stored) if as_npz and is_narrow_float(stored) else stored)
        if not as_npz:
            _safetensors_ok(n, arr, target)
        out[n] = arr
    if as_npz:
        return atomic_write(target, npz_bytes(out))
    if not shard_output:
        base = None if src is None else src.files[0].metadata
        return atomic_write(target, safetensors_bytes(out, _file_metadata(base, order), label=f"`path` {str(target)!r}"))
    return _save_shards(target, out, src, max_shard_bytes)


def _plan(out: dict[str, np.ndarray], src: WeightsSource | None, max_shard_bytes: int | None):
    """[(file name, [tensor names in file order], source metadata or None)] and the index name."""
    def st_name(file_name: str) -> str:
        p = Path(file_name)
        return file_name if p.suffix.lower() == ".safetensors" else p.stem + ".safetensors"

    if src is not None:
        plan = []
        for f in src.files:
            names = [n for n in src.names_in(f) if n in out]
            plan.append([st_name(f.path.name), names, f.metadata])
        extra = [n for n in out if n not in src]
        plan[-1][1].extend(extra)
        plan = [p for p in plan if p[1]]
        index = src.index_name if (src.index_name or "").endswith(".safetensors" + INDEX_SUFFIX) else _DEFAULT_INDEX
        return plan, index
    limit = DEFAULT_SHARD_BYTES if max_shard_bytes is None else int(max_shard_bytes)
    if limit <= 0:
        raise InvalidArgumentError(f"`max_shard_bytes` must be > 0, got {max_shard_bytes!r}.")
    groups: list[list[str]] = [[]]
    size = 0
    for n, arr in out.items():
        if groups[-1] and size + arr.nbytes > limit:
            groups.append([])
            size = 0
        groups[-1].append(n)
        size += arr.nbytes
    k = len(groups)
    return [[f"model-{i + 1:05d}-of-{k:05d}.safetensors", g, None] for i, g in enumerate(groups)], _DEFAULT_INDEX


def _save_shards(target: Path, out: dict[str, np.ndarray], src, max_shard_bytes) -> Path:
    if target.name.endswith(INDEX_SUFFIX):
        folder, index_name = target.parent, target.name
        plan, _ = _plan(out, src, max_shard_bytes)
    else:
        folder = target
        plan, index_name = _plan(out, src, max_shard_bytes)
    if folder.exists() and not folder.is_dir():
        raise InvalidArgumentError(f"`path` {str(folder)!r} exists and is not a directory; give a directory path.")
    index = dict(src.index) if src is not None and src.index is not None else {}
    meta = dict(index.get("metadata") or {}) if isinstance(index.get("metadata"), dict) else {}
    meta["total_size"] = int(sum(out[n].nbytes for _, names, _ in plan for n in names))
    index["metadata"] = meta
    weight_map = {n: file for file, names, _ in plan for n in names}
    index["weight_map"] = {n: weight_map[n] for n in out}
    index_bytes = (json.dumps(index, indent=2) + "\n").encode("utf-8")

    parent = folder.parent
    parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name or 'weights'}.", suffix=".tmp", dir=parent))
    try:
        for file, names, base in plan:
            blob = safetensors_bytes({n: out[n] for n in names}, _file_metadata(base, names),
                                     label=f"`path` {str(folder / file)!r}")
            _write_synced(tmp / file, blob)
            del blob
        _write_synced(tmp / index_name, index_bytes)
        written = [file for file, _, _ in plan] + [index_name]
        if not folder.exists() or not any(folder.iterdir()):
            os.chmod(tmp, 0o777 & ~_umask())
            os.replace(tmp, folder)  # one rename; rename(2) may replace an empty directory
        else:
            for file in written:  # the index last: it is what readers follow
                os.replace(tmp / file, folder / file)
            tmp.rmdir()
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return folder / index_name


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(path, 0o666 & ~_umask())


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask

