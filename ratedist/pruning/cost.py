"""What a pruned model costs in bits: mask positions and kept values, entropy-coded with constriction.

:func:`cost` writes a real stream (the ratedist container) and measures it;
:func:`decode_cost` reads it back.  Every reported number comes from bytes that decode.

Stream layout (container header ``format = "ratedist.pruning.cost"``): for each
tensor, in mapping order, a header entry (name, shape, dtype, coding mode,
kept count, quantizer scale) and its segments:

* ``mask``  (pruned tensors with ``0 < kept < size``): the flattened mask
  range-coded with an i.i.d. Bernoulli(``kept / size``) model; the kept count is
  the side information in the header.
* ``hist`` and ``values`` (quantized mode): the kept values (C order) quantized by
  a ``value_bits``-bit mid-rise uniform quantizer on ``[-scale, scale]``
  (``scale = max |kept value|``, per tensor), the symbol histogram as LEB128
  varints, and the symbols range-coded with a categorical model built from that histogram.
* ``values`` (raw mode, ``value_bits=None``): the kept values as little-endian float32.

Tensors not selected by ``layers`` are stored dense, their values coded the same way.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import _to_numpy, check_int
from ..coding.container import pack_container, unpack_container
from ..coding.header import read_float, read_int, read_list, read_object, read_shape, read_str
from ..coding.entropy import bytes_to_words, decode_bernoulli, decode_failure, encode_bernoulli, words_to_bytes
from ..coding.limits import check_fits
from ..coding.varint import get_varints, put_varints
from ..errors import CorruptStreamError, InvalidArgumentError, InvalidShapeError
from .allocation import _lazy_arrays, _phantoms, _shape_of, select_layers

__all__ = ["PruningCost", "DecodedPruning", "cost", "decode_cost", "FORMAT"]

FORMAT = "ratedist.pruning.cost"
_VERSION = 1
_MAX_VALUE_BITS = 16


@dataclass(frozen=True)
class PruningCost:
    """Measured size of a pruned model's stream.

    Attributes
    ----------
    n_bits : int
        ``8 * len(stream)``, everything included.
    bpp : float
        ``n_bits / n_params``: bits per parameter over *every* tensor of ``weights``
        (pruned or not, biases and norm parameters included).
    mask_bits, value_bits_total, header_bits : int
        Bytes of the mask segments, of the value segments (histograms included) and
        of the rest (container preamble, JSON header, segment lengths and CRCs), times 8.
    n_params : int
        Total number of parameters in ``weights``.
    n_kept : int
        Non-pruned parameters (all tensors).
    stream : bytes
        The container; :func:`decode_cost` inverts it.
    units : str
        ``"bits"``.
    """

    n_bits: int
    bpp: float
    mask_bits: int
    value_bits_total: int
    header_bits: int
    n_params: int
    n_kept: int
    stream: bytes
    units: str = "bits"


@dataclass(frozen=True)
class DecodedPruning:
    """The decoded pruned mapping: ``weights`` (zeros where pruned, quantized values) and ``masks``."""

    weights: dict
    masks: dict


# ----------------------------------------------------------------------------- helpers


def _quantize(v: np.ndarray, bits: int) -> tuple[np.ndarray, float]:
    """Mid-rise uniform quantizer: symbols in [0, 2^bits), scale = max |v|."""
    half = 1 << (bits - 1)
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    if scale == 0.0:
        return np.full(v.size, half, dtype=np.int64), 0.0
    step = 2.0 * scale / (1 << bits)
    q = np.floor(v.astype(np.float64) / step).astype(np.int64)
    return np.clip(q, -half, half - 1) + half, scale


def _dequantize(sym: np.ndarray, scale: float, bits: int) -> np.ndarray:
    half = 1 << (bits - 1)
    step = 2.0 * scale / (1 << bits)
    return (sym.astype(np.float64) - half + 0.5) * step


def _categorical(counts: np.ndarray):
    import constriction

    return constriction.stream.model.Categorical(counts.astype(np.float64) / counts.sum(), perfect=False)


def _encode_symbols(sym: np.ndarray, counts: np.ndarray) -> bytes:
    import constriction

    enc = constriction.stream.queue.RangeEncoder()
    if sym.size and counts.size > 1:
        enc.encode(np.ascontiguousarray(sym, dtype=np.int32), _categorical(counts))
    return words_to_bytes(enc.get_compressed())


def _decode_symbols(data: bytes, counts: np.ndarray, n: int) -> np.ndarray:
    import constriction

    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if counts.size == 1:
        return np.zeros(n, dtype=np.int64)
    dec = constriction.stream.queue.RangeDecoder(bytes_to_words(data))
    try:
        return np.asarray(dec.decode(_categorical(counts), int(n)), dtype=np.int64)
    except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
        raise decode_failure(exc, "value payload") from None


# ----------------------------------------------------------------------------- encoder


def cost(weights: Mapping[str, Any], masks: Mapping[str, Any] | None = None, *, value_bits: int | None = None,
         layers=None) -> PruningCost:
    """Code a pruned model (mask positions and kept values) and measure its bits.

    Parameters
    ----------
    weights : Mapping[str, array]
        The (dense or already masked) weights.  A :class:`~ratedist.io.WeightsSource` is
        checked in chunks and read one tensor at a time (same bytes as the loaded mapping).
    masks : Mapping[str, array of bool], optional
        Kept positions per tensor (e.g. ``prune(...).masks``); tensors without a
        mask are dense.  Default: everything kept.
    value_bits : int, optional
        ``None``: kept values stored as raw float32 (32 bits each).  An integer
        ``b`` in [1, 16]: each tensor's kept values quantized to ``b`` bits
        (mid-rise uniform on ``[-max|w|, max|w|]``) and entropy-coded.
    layers : str or list of str, optional
        Tensors whose mask is coded (patterns as in :func:`~ratedist.pruning.prune`);
        default: every tensor that has a mask in ``masks``.  Other tensors must be
        dense (all-True mask or none).

    Returns
    -------
    PruningCost
        ``n_bits == 8 * len(stream)``; ``bpp = n_bits / n_params`` with
        ``n_params`` the number of parameters of *all* tensors in ``weights``.

    Examples
    --------
    >>> from ratedist.pruning import prune
    >>> rng = np.random.default_rng(0)
    >>> w = {"fc": rng.normal(size=(256, 256)).astype(np.float32)}
    >>> r = prune(w, method="global", sparsity=0.9)
    >>> c = cost(w, r.masks, value_bits=4)
    >>> c.n_bits == 8 * len(c.stream), bool(c.bpp < 1.0)
    (True, True)
    >>> bool((decode_cost(c.stream).masks["fc"] == r.masks["fc"]).all())
    True
    """
    arrays = _lazy_arrays(weights)  # a WeightsSource is read tensor by tensor below
    if value_bits is not None:
        value_bits = check_int("value_bits", value_bits, minimum=1, maximum=_MAX_VALUE_BITS)
    mask_arrays: dict[str, np.ndarray] = {}
    if masks is not None:
        if not isinstance(masks, Mapping):
            raise InvalidArgumentError(f"`masks` must be a mapping of tensor names to boolean arrays, got {type(masks).__name__}.")
        for k, m in masks.items():
            if k not in arrays:
                raise InvalidArgumentError(f"`masks` has tensor {k!r} that is not in `weights`.")
            m = np.asarray(_to_numpy(m))
            if m.shape != _shape_of(arrays, k):
                raise InvalidShapeError(f"`masks`[{k!r}] has shape {m.shape}, but the weight has shape {_shape_of(arrays, k)}.")
            if m.dtype != bool:
                if not np.all((m == 0) | (m == 1)):
                    raise InvalidArgumentError(f"`masks`[{k!r}] must be boolean (or 0/1).")
                m = m.astype(bool)
            mask_arrays[k] = m
    if layers is None:
        coded = [k for k in arrays if k in mask_arrays]
    else:
        coded = select_layers(_phantoms(arrays, list(arrays)), layers)
    for k, m in mask_arrays.items():
        if k not in coded and not m.all():
            raise InvalidArgumentError(
                f"`masks`[{k!r}] prunes weights but the tensor is not selected by `layers`={layers!r}; "
                "add it to `layers` or drop its mask."
            )

    entries, segments = [], []
    mask_bytes = value_bytes = 0
    n_params = n_kept = 0
    for k in arrays:
        a = np.asarray(arrays[k])
        n_params += a.size
        flat = a.reshape(-1)
        entry = {"name": k, "shape": list(a.shape), "dtype": a.dtype.str}
        if k in coded:
            m = mask_arrays.get(k, np.ones(a.shape, dtype=bool)).reshape(-1)
            kept = int(np.count_nonzero(m))
            entry["kept"] = kept
            if 0 < kept < a.size:
                seg = encode_bernoulli(m.astype(np.int32), kept / a.size)
                segments.append(seg)
                mask_bytes += len(seg)
            values = flat[m]
        else:
            entry["kept"] = None
            values = flat
        n_kept += values.size
        if value_bits is None:
            seg = np.ascontiguousarray(values, dtype="<f4").tobytes()
            segments.append(seg)
            value_bytes += len(seg)
        else:
            sym, scale = _quantize(values, value_bits)
            lo = int(sym.min()) if sym.size else 0
            hi = int(sym.max()) if sym.size else 0
            counts = np.bincount(sym - lo, minlength=hi - lo + 1) if sym.size else np.zeros(1, dtype=np.int64)
            hist = put_varints(counts.tolist())
            vals = _encode_symbols(sym - lo, counts)
            entry.update(scale=scale, qmin=lo, qmax=hi)
            segments += [hist, vals]
            value_bytes += len(hist) + len(vals)
        entries.append(entry)
    header = {"format": FORMAT, "version": _VERSION, "value_bits": value_bits, "tensors": entries}
    stream = pack_container(header, segments)
    n_bits = 8 * len(stream)
    return PruningCost(n_bits=n_bits, bpp=n_bits / n_params, mask_bits=8 * mask_bytes,
                       value_bits_total=8 * value_bytes, header_bits=n_bits - 8 * (mask_bytes + value_bytes),
                       n_params=n_params, n_kept=n_kept, stream=stream)


# ----------------------------------------------------------------------------- decoder

# Largest tensor a pruning-cost header may declare (entries); the memory check refuses most before.
_MAX_ENTRIES = 1 << 40


def _read_tensor_entries(tensors: list, bits):
    """Every tensor entry of the header, typed and ranged: (name, shape, dtype, size, kept, (qmin, qmax, scale))."""
    plan, names = [], set()
    for i in range(len(tensors)):
        path = f"tensors[{i}]"
        e = read_object(tensors, i, path="tensors")
        name = read_str(e, "name", path=path)
        if name in names:
            raise CorruptStreamError(f"stream header field `{path}.name` repeats tensor {name!r}.")
        names.add(name)
        shape, size = read_shape(e, "shape", max_size=_MAX_ENTRIES, path=path)
        code = read_str(e, "dtype", max_len=16, path=path)
        try:
            dtype = np.dtype(code)
        except TypeError:
            dtype = None
        if dtype is None or dtype.kind not in "fiub" or dtype.itemsize > 16:
            raise CorruptStreamError(f"stream header field `{path}.dtype` is {code!r}; expected a real numeric dtype.")
        kept = None if e.get("kept", 0) is None else read_int(e, "kept", lo=0, hi=size, path=path)
        quant = None
        if bits is not None:
            lo = read_int(e, "qmin", lo=0, hi=(1 << bits) - 1, path=path)
            hi = read_int(e, "qmax", lo=lo, hi=(1 << bits) - 1, path=path)
            scale = read_float(e, "scale", lo=0.0, hi=1e300, path=path)
            quant = (lo, hi, scale)
        plan.append((name, shape, dtype, size, kept, quant))
    return plan



def decode_cost(stream: bytes) -> DecodedPruning:
    """Decode a :func:`cost` stream into the pruned (quantized) weights and the masks.

    Raises
    ------
    CorruptStreamError
        Truncated or corrupted streams, or a header inconsistent with its segments.
    """
    c = unpack_container(stream)
    h = c.header
    if h.get("format") != FORMAT or h.get("version") != _VERSION or isinstance(h.get("version"), bool):
        raise CorruptStreamError(f"not a pruning-cost stream (format {h.get('format')!r:.60}, version {h.get('version')!r:.20}).")
    bits = None if h.get("value_bits") is None else read_int(h, "value_bits", lo=1, hi=_MAX_VALUE_BITS)
    tensors = read_list(h, "tensors", max_len=h["n_segments"])  # every tensor owns a segment or more
    plan = _read_tensor_entries(tensors, bits)
    # Peak of the decode, measured with tracemalloc (2·10^5 float32 weights, 99 % kept, 8-bit values):
    # every decoded tensor and mask is kept (itemsize + 1 bytes per entry) and the tensor being decoded
    # adds 24.7 bytes per entry (the int32 mask bits, the float64 output, the symbols and values); we
    # charge 26.  All tensors are checked together, before any of them is decoded.
    total = sum(size * (dtype.itemsize + 1) for _, _, dtype, size, _, _ in plan)
    big = max(plan, key=lambda p: p[3], default=None)
    largest = big[3] if big else 0
    check_fits(total + 26 * largest, f"{len(plan)} tensor(s) of {sum(p[3] for p in plan)} entries in all (the "
                                     f"largest, tensor {big[0]!r} of shape {big[1]})" if big else "no tensor")
    segs = list(c.segments)
    pos = 0

    def take() -> bytes:
        nonlocal pos
        if pos >= len(segs):
            raise CorruptStreamError("stream has fewer segments than its header describes.")
        pos += 1
        return segs[pos - 1]

    weights, masks = {}, {}
    for name, shape, dtype, size, kept, quant in plan:
        if kept is None:
            m = np.ones(size, dtype=bool)
        elif 0 < kept < size:
            m = decode_bernoulli(take(), kept / size, size).astype(bool)
            if int(m.sum()) != kept:
                raise CorruptStreamError(f"tensor {name!r}: decoded mask keeps {int(m.sum())}, header says {kept}.")
        else:
            m = np.full(size, kept == size, dtype=bool)
        nk = int(m.sum())
        if bits is None:
            raw = take()
            if len(raw) != 4 * nk:
                raise CorruptStreamError(f"tensor {name!r}: {len(raw)} value bytes for {nk} float32 values.")
            vals = np.frombuffer(raw, dtype="<f4").astype(np.float64)
        else:
            lo, hi, scale = quant
            counts = np.array(get_varints(take(), hi - lo + 1, "value histogram"), dtype=np.int64)
            if nk and int(counts.sum()) != nk:
                raise CorruptStreamError(f"tensor {name!r}: histogram counts {int(counts.sum())} symbols, mask keeps {nk}.")
            sym = _decode_symbols(take(), counts, nk) + lo
            vals = _dequantize(sym, scale, bits)
        out = np.zeros(size, dtype=np.float64)
        out[m] = vals
        with np.errstate(over="ignore", invalid="ignore"):
            cast = out.astype(dtype)
        if dtype.kind == "f" and not np.isfinite(cast).all():
            raise CorruptStreamError(f"tensor {name!r} decodes to infinite values in {dtype} (header `scale` "
                                     f"{quant[2] if quant else None!r}); the stream is corrupted.")
        weights[name] = cast.reshape(shape)
        masks[name] = m.reshape(shape)
    if pos != len(segs):
        raise CorruptStreamError(f"stream has {len(segs) - pos} segments more than its header describes.")
    return DecodedPruning(weights=weights, masks=masks)
