"""The SuRP decoder family: one entry point for sequential and data-parallel streams.

A SuRP stream is a ratedist container (:mod:`ratedist.coding.container`) whose
JSON header carries::

    format      "surp"
    algorithm   "sequential" | "parallel"
    tensors     [{"name", "shape", "dtype", "norm", "size"}, ...]  (key order)
    normalize   "l2" | "l1"
    params      algorithm parameters (floats stored exactly as JSON numbers)
    seed        int
    n_params    int
    checkpoints [{"target", "sparsity", "iteration", "segment", "n_bytes", "n_bits"}, ...]

``checkpoints[k]["segment"]`` is the number of segments in the prefix that
decodes to checkpoint ``k`` (segments ``0 .. segment-1``); ``n_bytes`` is the
length of that prefix.  Checkpoints are listed sparsest first, one segment per
checkpoint interval, so a prefix is self-contained: decoding checkpoint ``k``
reads only its first ``n_bytes`` bytes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from ..coding.container import unpack_container
from ..coding.limits import check_fits
from ..errors import CorruptStreamError, InvalidArgumentError
from ._common import unflatten, validate_table

__all__ = ["decode", "decode_vector", "inspect", "read_header", "select_checkpoint", "ALGORITHMS"]

ALGORITHMS = ("sequential", "parallel")


def _as_bytes(stream) -> bytes:
    if isinstance(stream, (bytes, bytearray, memoryview)):
        return bytes(stream)
    raise InvalidArgumentError(
        f"`stream` must be bytes (read the .rdst file with open(path, 'rb').read()), got {type(stream).__name__}."
    )


def read_header(stream: bytes) -> dict:
    """Parse and validate the container header of a SuRP stream (the segments are not read)."""
    c = unpack_container(_as_bytes(stream), max_segments=0)
    h = c.header
    if h.get("format") != "surp":
        raise CorruptStreamError(f"not a SuRP stream: header format is {h.get('format')!r}, expected 'surp'.")
    if h.get("algorithm") not in ALGORITHMS:
        raise CorruptStreamError(f"unknown SuRP algorithm {h.get('algorithm')!r}; this ratedist reads {ALGORITHMS}.")
    n = validate_table(h.get("tensors"))
    if h.get("n_params") != n:
        raise CorruptStreamError(f"header `n_params` {h.get('n_params')!r} disagrees with the tensor table ({n}).")
    if h.get("normalize") not in ("l2", "l1"):
        raise CorruptStreamError(f"header `normalize` {h.get('normalize')!r} is not 'l2' or 'l1'.")
    if not isinstance(h.get("params"), dict):
        raise CorruptStreamError("header `params` is missing.")
    cps = h.get("checkpoints")
    if not isinstance(cps, list) or not cps:
        raise CorruptStreamError("header has no checkpoint table.")
    last_seg = 0
    for k, cp in enumerate(cps):
        if not isinstance(cp, dict):
            raise CorruptStreamError(f"checkpoint {k} is not an object.")
        seg, it = cp.get("segment"), cp.get("iteration")
        if not (isinstance(seg, int) and last_seg < seg <= h["n_segments"]):
            raise CorruptStreamError(f"checkpoint {k} declares segment count {seg!r} (stream has {h['n_segments']}).")
        if not isinstance(it, int) or it < 0:
            raise CorruptStreamError(f"checkpoint {k} declares iteration {it!r}.")
        for key in ("target", "sparsity"):
            v = cp.get(key)
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not 0.0 <= v <= 1.0:
                raise CorruptStreamError(f"checkpoint {k} declares {key} {v!r}.")
        last_seg = seg
    return h


def select_checkpoint(header: dict, *, sparsity=None, checkpoint=None) -> int:
    """Index of the checkpoint to decode: by position, by target sparsity, or the last (densest)."""
    cps = header["checkpoints"]
    if sparsity is not None and checkpoint is not None:
        raise InvalidArgumentError("pass `sparsity` or `checkpoint`, not both.")
    if checkpoint is not None:
        if isinstance(checkpoint, bool) or not isinstance(checkpoint, (int, np.integer)) or not -len(cps) <= checkpoint < len(cps):
            raise InvalidArgumentError(f"`checkpoint` must be an index in [0, {len(cps)}), got {checkpoint!r}.")
        return int(checkpoint) % len(cps)
    if sparsity is None:
        return len(cps) - 1
    try:
        s = float(sparsity)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`sparsity` must be a number, got {sparsity!r}.") from None
    for k, cp in enumerate(cps):
        if math.isclose(cp["target"], s, rel_tol=0, abs_tol=1e-12):
            return k
    for k, cp in enumerate(cps):
        if cp["sparsity"] <= s:
            return k
    avail = ", ".join(f"{cp['target']:g} (reached {cp['sparsity']:.6g})" for cp in cps)
    raise InvalidArgumentError(f"`sparsity` {s!r} is not in this stream; its checkpoints are: {avail}.")


def _check_fits(header: dict) -> None:
    """Refuse, before allocating, a header whose model cannot be decoded in this machine's memory.

    Decoding holds â (float64) and the signs (int8) for every parameter, then the output tensors;
    a corrupted header that declares billions of parameters gets a clear error instead of an
    out-of-memory kill.
    """
    out_bytes = sum(int(t["size"]) * np.dtype(t["dtype"]).itemsize for t in header["tensors"])
    check_fits(9 * int(header["n_params"]) + out_bytes, f"{header['n_params']} parameters")


def decode_vector(stream: bytes, *, sparsity=None, checkpoint=None) -> tuple[np.ndarray, dict, int]:
    """Decode to the signed normalized reconstruction ``û`` (float64, shape (n,)).

    Returns ``(u_hat, header, checkpoint_index)``.  Reads only the prefix of the
    chosen checkpoint.
    """
    buf = _as_bytes(stream)
    header = read_header(buf)
    k = select_checkpoint(header, sparsity=sparsity, checkpoint=checkpoint)
    _check_fits(header)
    container = unpack_container(buf, max_segments=header["checkpoints"][k]["segment"])
    segments = container.segments
    if header["algorithm"] == "sequential":
        from .stream import decode_sequential

        u_hat = decode_sequential(header, segments, k)
    else:
        from .parallel import decode_parallel  # noqa: PLC0415 - optional sibling, imported lazily

        u_hat = decode_parallel(header, segments, k)
        if isinstance(u_hat, Mapping):
            return u_hat, header, k
    u_hat = np.asarray(u_hat, dtype=np.float64)
    if u_hat.shape != (header["n_params"],):
        raise CorruptStreamError(f"decoded {u_hat.shape} values for {header['n_params']} parameters.")
    return u_hat, header, k


def decode(stream: bytes, *, sparsity=None, checkpoint=None) -> dict[str, np.ndarray]:
    """Decode a SuRP stream (sequential or parallel) to a weights mapping.

    Parameters
    ----------
    stream : bytes
        The stream, or any prefix of it that contains the chosen checkpoint.
    sparsity : float, optional
        Target sparsity of the checkpoint to decode (as given to the encoder);
        without it, and without ``checkpoint``, the last (densest) checkpoint.
    checkpoint : int, optional
        Index of the checkpoint (0 is the sparsest).

    Returns
    -------
    dict[str, ndarray]
        Same keys, shapes and dtypes as the encoded mapping:
        ``ŵ = sign ⊙ â ⊙ norm`` per tensor.

    Raises
    ------
    CorruptStreamError
        Truncated or corrupted stream, wrong magic or version, absurd header.
    """
    u_hat, header, _ = decode_vector(stream, sparsity=sparsity, checkpoint=checkpoint)
    if isinstance(u_hat, Mapping):
        return dict(u_hat)
    return unflatten(u_hat, header["tensors"])


def inspect(stream: bytes) -> dict:
    """Describe a SuRP stream from its header: algorithm, tensors, parameters and checkpoints.

    Only the header is parsed; the segments are not decoded.
    """
    buf = _as_bytes(stream)
    h = read_header(buf)
    return {
        "format": "surp",
        "algorithm": h["algorithm"],
        "n_params": h["n_params"],
        "n_bytes": len(buf),
        "n_bits": 8 * len(buf),
        "normalize": h["normalize"],
        "seed": h.get("seed"),
        "params": dict(h["params"]),
        "tensors": [{k: t[k] for k in ("name", "shape", "dtype", "norm", "size")} for t in h["tensors"]],
        "checkpoints": [dict(cp) for cp in h["checkpoints"]],
        "n_segments": h["n_segments"],
    }
