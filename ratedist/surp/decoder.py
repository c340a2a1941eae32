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

from ..coding.container import prefix_length, unpack_container
from ..coding.header import read_choice, read_float, read_int, read_list, read_object
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


_MAX_MAGNITUDE = 1.0 + 1e-6  # |û| bound of a genuine stream (see decode_vector), with room for rounding
# Largest JSON number that a prefix size may hold (every size is below 2**53, exact in a float).
_MAX_BYTES = 2**53


def _read_sequential_params(prm: dict, n: int) -> None:
    """Every number the sequential decoder uses from ``params``, typed and ranged (see stream.py)."""
    from ._sequential import max_iterations_for

    cap = max_iterations_for(n)
    path = "params"
    read_float(prm, "sf", lo=0.0, lo_open=True, hi=1e300, path=path)
    read_float(prm, "decay", lo=0.0, hi=1.0, hi_open=True, path=path)
    read_float(prm, "alpha_eff0", lo=0.0, lo_open=True, hi=1e300, path=path)
    read_float(prm, "lam_inv0", lo=0.0, hi=1e300, path=path)
    read_float(prm, "s0", lo=0.0, hi=1e300, path=path)
    read_float(prm, "refresh_factor", lo=0.0, lo_open=True, hi=1.0, hi_open=True, path=path)
    read_int(prm, "n_active", lo=1, hi=n, path=path)
    read_int(prm, "refresh_every", lo=1, hi=cap, path=path)
    if "alpha" in prm:
        read_float(prm, "alpha", lo=0.0, hi=1e300, path=path)


def _read_parallel_params(prm: dict) -> None:
    from .parallel import MAX_ROUNDS

    path = "params"
    read_float(prm, "gamma", lo=0.0, hi=1.0, lo_open=True, hi_open=True, path=path)
    read_float(prm, "tau1", lo=0.0, lo_open=True, hi=1e300, path=path)
    for key in ("lam_inv", "sf"):
        if key in prm:
            read_float(prm, key, lo=0.0, hi=1e300, path=path)
    if "n_rounds" in prm:
        read_int(prm, "n_rounds", lo=0, hi=MAX_ROUNDS, path=path)


def read_header(stream: bytes) -> dict:
    """Parse and validate the container header of a SuRP stream (the segments are not read).

    Every field the decoders use is checked for its JSON type and its range
    (:mod:`ratedist.coding.header`); anything else raises :class:`CorruptStreamError`
    naming the field.
    """
    from ._sequential import max_iterations_for
    from .parallel import MAX_ROUNDS

    buf = _as_bytes(stream)
    c = unpack_container(buf, max_segments=0)
    h = c.header
    if h.get("format") != "surp":
        raise CorruptStreamError(f"not a SuRP stream: header format is {_short(h.get('format'))}, expected 'surp'.")
    if h.get("algorithm") not in ALGORITHMS:
        raise CorruptStreamError(f"unknown SuRP algorithm {_short(h.get('algorithm'))}; this ratedist reads {ALGORITHMS}.")
    n = validate_table(h.get("tensors"))
    if isinstance(h.get("n_params"), bool) or h.get("n_params") != n:
        raise CorruptStreamError(f"header `n_params` {_short(h.get('n_params'))} disagrees with the tensor table ({n}).")
    read_choice(h, "normalize", ("l2", "l1"))
    read_int(h, "seed", lo=0, hi=2**63 - 1)
    prm = read_object(h, "params")
    sequential = h["algorithm"] == "sequential"
    if sequential:
        _read_sequential_params(prm, n)
    else:
        _read_parallel_params(prm)
    n_seg = h["n_segments"]
    cps = read_list(h, "checkpoints", min_len=1, max_len=max(1, n_seg))  # one segment or more each
    last_seg = last_it = last_nnz = 0
    last_bytes = hdr_end = prefix_length(buf, 0)
    it_cap = max_iterations_for(n) if sequential else MAX_ROUNDS
    for k in range(len(cps)):
        path = f"checkpoints[{k}]"
        cp = read_object(cps, k, path="checkpoints")
        seg = read_int(cp, "segment", lo=last_seg + 1, hi=n_seg, path=path)
        it = read_int(cp, "iteration", lo=last_it, hi=it_cap, path=path)
        for key in ("target", "sparsity"):
            read_float(cp, key, lo=0.0, hi=1.0, path=path)
        if sequential:
            last_nnz = read_int(cp, "nnz", lo=last_nnz, hi=n, path=path)
        nb = read_int(cp, "n_bytes", lo=max(last_bytes, hdr_end), hi=_MAX_BYTES, path=path)
        read_int(cp, "n_bits", lo=8 * nb, hi=8 * nb, path=path)
        last_bytes = nb
        last_seg, last_it = seg, it
    return h


def _short(v) -> str:
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


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


# Peak bytes a decode holds, per parameter, per iteration (sequential) and per output byte, measured
# with tracemalloc on real decodes of 2·10^5 Laplacian weights (numba's own temporaries are small):
# sequential: max(9 n + 24.0 I, 8 n + 8 max_t + out) at I = 0.5 n … 1.83 n iterations; we charge 25 per
# iteration (the j list and its concatenation, int64 each, plus the symbol arrays), 9 per parameter
# (â float64 + signs int8) in the replay, then û (8 n) + one tensor's float64 copy (8 max_t) + the
# output while unflattening.  parallel: 53 bytes/param besides the output at 99 % density (double-
# buffered index/â/sign arrays grown by 1.5×, û, the round's set temporaries); we charge 56.
_SEQ_PER_PARAM, _SEQ_PER_ITERATION, _PAR_PER_PARAM = 9, 25, 56


def _check_fits(header: dict, k: int) -> None:
    """Refuse, before any O(n) work, a header whose decode cannot fit in this process's memory.

    The need is the decode's measured peak (see the factors above), so a corrupted header that
    declares billions of parameters or iterations gets a clear error instead of ``MemoryError``
    or an out-of-memory kill.
    """
    tensors = header["tensors"]
    n = int(header["n_params"])
    out_bytes = sum(int(t["size"]) * np.dtype(t["dtype"]).itemsize for t in tensors)
    unflatten = 8 * n + 8 * max(int(t["size"]) for t in tensors) + out_bytes
    if header["algorithm"] == "sequential":
        iters = int(header["checkpoints"][k]["iteration"])
        replay = _SEQ_PER_PARAM * n + _SEQ_PER_ITERATION * iters
        need = max(replay, unflatten)
        declared = f"{n} parameters and {iters} iterations" if replay > unflatten else f"{n} parameters"
    else:
        need = _PAR_PER_PARAM * n + out_bytes
        declared = f"{n} parameters"
    check_fits(need, declared)


def decode_vector(stream: bytes, *, sparsity=None, checkpoint=None) -> tuple[np.ndarray, dict, int]:
    """Decode to the signed normalized reconstruction ``û`` (float64, shape (n,)).

    Returns ``(u_hat, header, checkpoint_index)``.  Reads only the prefix of the
    chosen checkpoint.
    """
    buf = _as_bytes(stream)
    header = read_header(buf)
    k = select_checkpoint(header, sparsity=sparsity, checkpoint=checkpoint)
    _check_fits(header, k)
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
    # Both encoders add τ to â_i only while the residual a_i − â_i exceeds τ, so â_i < a_i ≤ 1 (a is a
    # weight over its tensor's L2 or L1 norm), up to float64 rounding of the sums; a larger magnitude
    # means forged parameters (thresholds, sf, tau1) behind a valid CRC.
    top = float(np.max(np.abs(u_hat))) if u_hat.size else 0.0
    if not top <= _MAX_MAGNITUDE:
        raise CorruptStreamError(f"the stream decodes to a normalized magnitude {top!r} > 1, which no encoder "
                                 "writes: its header parameters are corrupted.")
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
