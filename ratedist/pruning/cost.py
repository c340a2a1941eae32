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
from ..coding.entropy import bytes_to_words, decode_bernoulli, encode_bernoulli, words_to_bytes
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
    except Exception as exc:  # noqa: BLE001 - constriction raises on inconsistent data
        raise CorruptStreamError(f"value payload does not decode: {exc}") from None


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


def decode_cost(stream: bytes) -> DecodedPruning:
    """Decode a :func:`cost` stream into the pruned (quantized) weights and the masks.

    Raises
    ------
    CorruptStreamError
        Truncated or corrupted streams, or a header inconsistent with its segments.
    """
    c = unpack_container(stream)
    h = c.header
    if h.get("format") != FORMAT or h.get("version") != _VERSION:
        raise CorruptStreamError(f"not a pruning-cost stream (format {h.get('format')!r}, version {h.get('version')!r}).")
    bits = h.get("value_bits")
    if bits is not None and (not isinstance(bits, int) or not 1 <= bits <= _MAX_VALUE_BITS):
        raise CorruptStreamError(f"header `value_bits` {bits!r} is invalid.")
    tensors = h.get("tensors")
    if not isinstance(tensors, list):
        raise CorruptStreamError("header has no tensor list.")
    segs = list(c.segments)
    pos = 0

    def take() -> bytes:
        nonlocal pos
        if pos >= len(segs):
            raise CorruptStreamError("stream has fewer segments than its header describes.")
        pos += 1
        return segs[pos - 1]

    weights, masks = {}, {}
    try:
        for e in tensors:
            name, shape, dtype = e["name"], tuple(int(d) for d in e["shape"]), np.dtype(e["dtype"])
            if any(d < 0 for d in shape) or dtype.kind not in "fiub":
                raise CorruptStreamError(f"tensor {name!r}: invalid shape or dtype in the header.")
            size = math.prod(shape)
            check_fits(size * (dtype.itemsize + 9), f"tensor {name!r} of shape {shape}")  # mask, values, output
            kept = e["kept"]
            if kept is None:
                m = np.ones(size, dtype=bool)
            else:
                kept = int(kept)
                if not 0 <= kept <= size:
                    raise CorruptStreamError(f"tensor {name!r}: kept count {kept} outside [0, {size}].")
                if 0 < kept < size:
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
                lo, hi, scale = int(e["qmin"]), int(e["qmax"]), float(e["scale"])
                if not 0 <= lo <= hi < (1 << bits) or not math.isfinite(scale) or scale < 0:
                    raise CorruptStreamError(f"tensor {name!r}: invalid quantizer parameters in the header.")
                counts = np.array(get_varints(take(), hi - lo + 1, "value histogram"), dtype=np.int64)
                if nk and int(counts.sum()) != nk:
                    raise CorruptStreamError(f"tensor {name!r}: histogram counts {int(counts.sum())} symbols, mask keeps {nk}.")
                sym = _decode_symbols(take(), counts, nk) + lo
                vals = _dequantize(sym, scale, bits)
            out = np.zeros(size, dtype=np.float64)
            out[m] = vals
            weights[name] = out.astype(dtype).reshape(shape)
            masks[name] = m.reshape(shape)
    except (KeyError, TypeError, ValueError) as exc:
        if isinstance(exc, CorruptStreamError):
            raise
        raise CorruptStreamError(f"pruning-cost header is malformed: {exc!r}.") from None
    if pos != len(segs):
        raise CorruptStreamError(f"stream has {len(segs) - pos} segments more than its header describes.")
    return DecodedPruning(weights=weights, masks=masks)
