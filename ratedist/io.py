"""Weights in and out: ``.npz`` (no pickles), ``.safetensors``, torch state_dicts (``weights_only``).

Every loader returns a ``dict[str, numpy.ndarray]`` in file order; every writer
is atomic.
"""

from __future__ import annotations

import io as _io
import json
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ._validation import check_weights
from .coding.container import atomic_write
from .errors import BackendUnavailableError, InvalidArgumentError

__all__ = ["load_weights", "save_weights", "WEIGHT_SUFFIXES"]

WEIGHT_SUFFIXES = (".npz", ".safetensors", ".pt", ".pth", ".bin")


def _suffix(path: Path, name: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in WEIGHT_SUFFIXES:
        raise InvalidArgumentError(
            f"`{name}` {str(path)!r} has suffix {suffix!r}; use one of {', '.join(WEIGHT_SUFFIXES)}."
        )
    return suffix


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load a mapping of tensor names to arrays from ``.npz``, ``.safetensors`` or a torch file.

    Torch files are opened with ``weights_only=True``: arbitrary pickles are never executed.
    """
    path = Path(path)
    suffix = _suffix(path, "path")
    if not path.is_file():
        raise InvalidArgumentError(f"`path` {str(path)!r} does not exist or is not a file.")
    if suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as data:
                return {k: np.asarray(data[k]) for k in data.files}
        except Exception as exc:  # noqa: BLE001 - numpy and zipfile raise ValueError, EOFError, BadZipFile, OSError
            raise InvalidArgumentError(f"`path` {str(path)!r} is not a readable .npz of plain arrays: {exc}") from None
    if suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="numpy") as fh:
                keys = list(fh.keys())
                meta = fh.metadata() or {}
                order = json.loads(meta["ratedist.order"]) if "ratedist.order" in meta else keys
                if sorted(order) != sorted(keys):
                    order = keys
                return {k: fh.get_tensor(k) for k in order}
        except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
            raise InvalidArgumentError(f"`path` {str(path)!r} is not a valid .safetensors file: {exc}") from None
    try:
        import torch
    except ImportError:
        raise BackendUnavailableError(f"reading {str(path)!r} needs torch: pip install 'ratedist[torch]'.") from None
    try:
        obj = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types on bad files
        raise InvalidArgumentError(f"`path` {str(path)!r} is not a weights-only torch file: {exc}") from None
    if isinstance(obj, Mapping) and "state_dict" in obj and isinstance(obj["state_dict"], Mapping):
        obj = obj["state_dict"]
    if not isinstance(obj, Mapping):
        raise InvalidArgumentError(f"`path` {str(path)!r} holds a {type(obj).__name__}, not a state_dict.")
    return {k: v.detach().cpu().numpy() for k, v in obj.items() if hasattr(v, "detach")}


def save_weights(path: str | os.PathLike, weights: Mapping[str, np.ndarray]) -> Path:
    """Write ``weights`` to ``.npz`` or ``.safetensors`` (chosen by suffix), atomically."""
    path = Path(path)
    suffix = _suffix(path, "path")
    arrays = check_weights("weights", weights)
    if suffix == ".npz":
        buf = _io.BytesIO()
        np.savez(buf, **arrays)
        return atomic_write(path, buf.getvalue())
    if suffix == ".safetensors":
        from safetensors.numpy import save

        meta = {"ratedist.order": json.dumps(list(arrays))}
        return atomic_write(path, save({k: np.ascontiguousarray(v) for k, v in arrays.items()}, metadata=meta))
    raise InvalidArgumentError(f"`path` {str(path)!r}: writing torch files is not supported; use .safetensors or .npz.")
