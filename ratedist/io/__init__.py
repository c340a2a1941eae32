"""Weights in and out: ``.safetensors`` (every dtype it stores), sharded checkpoints, ``.npz`` (no pickles),
torch state_dicts (``weights_only=True``, memory-mapped).

:func:`open_weights` opens a file, an ``*.index.json`` or a directory as a lazy
read-only mapping that knows each tensor's stored dtype; :func:`load_weights`
reads it all into a ``dict[str, numpy.ndarray]`` in the checkpoint's order
(bfloat16 and float8 as float32, exactly); :func:`save_weights` writes one file
or a shard set atomically, in the dtypes and layout of ``like=``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping

import numpy as np

from ..errors import InvalidArgumentError
from ._dtypes import cast_to_stored, compute_dtype, is_codable
from ._source import INDEX_SUFFIX, WEIGHT_SUFFIXES, WeightsSource, open_weights
from ._write import save_weights

__all__ = [
    "load_weights",
    "save_weights",
    "open_weights",
    "WeightsSource",
    "codable_weights",
    "compute_dtype",
    "cast_to_stored",
    "WEIGHT_SUFFIXES",
    "INDEX_SUFFIX",
]


def load_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every tensor of a checkpoint (file, ``*.index.json`` or directory) into writable NumPy arrays.

    Keys come in the checkpoint's order.  float64/32/16, integer and boolean
    tensors keep their dtype; bfloat16 and float8 tensors come back as float32
    (exact).  ``open_weights(path).stored_dtype(name)`` tells the stored dtype.
    Torch files are opened with ``weights_only=True``: arbitrary pickles are never executed.
    """
    with open_weights(path) as src:
        return {name: src.value(name, copy=True) for name in src}


def codable_weights(weights: Mapping[str, np.ndarray], select: Iterable[str] | None = None
                    ) -> tuple[dict[str, np.ndarray], list[str]]:
    """Split a checkpoint into the floating-point tensors the codecs compress and notes on the others.

    Integer, boolean and complex tensors (``num_batches_tracked``, masks, ...)
    are skipped with a one-line note each.  With ``select`` (tensor names), only
    those are taken, and a selected name that is missing or not floating point
    is an error.  For a :class:`WeightsSource` the skipped tensors are never read.

    >>> w = {"fc.weight": np.ones((2, 2), np.float32), "bn.num_batches_tracked": np.array(3)}
    >>> kept, notes = codable_weights(w)
    >>> list(kept), notes
    (['fc.weight'], ["skipped 'bn.num_batches_tracked' (int64): only floating-point tensors are coded"])
    """
    def stored(name):
        return weights.stored_dtype(name) if isinstance(weights, WeightsSource) else np.asarray(weights[name]).dtype

    if select is None:
        kept, notes = {}, []
        for name in weights:
            dt = stored(name)
            if is_codable(dt):
                kept[name] = weights[name]
            else:
                notes.append(f"skipped {name!r} ({dt.name}): only floating-point tensors are coded")
        return kept, notes
    kept = {}
    for name in select:
        if name not in weights:
            raise InvalidArgumentError(f"tensor {name!r} was selected but the checkpoint has no such tensor.")
        dt = stored(name)
        if not is_codable(dt):
            raise InvalidArgumentError(
                f"tensor {name!r} was selected but has dtype {dt.name}, which cannot be coded (only floating-point "
                "tensors are); leave it out of the selection."
            )
        kept[name] = weights[name]
    return kept, []
