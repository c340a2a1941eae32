"""Shared pieces of the SuRP codecs: flattening, per-tensor normalization, the tensor table.

Both SuRP encoders (sequential and data-parallel) and the decoder family work on
one float64 vector ``u`` of normalized weights: every tensor of the input
mapping, in key order, divided by its own norm (docs/theory.md §4b.1).  Magnitudes
``a = |u|`` and signs are kept apart (§4b.2); the reconstruction is
``ŵ = sign ⊙ â ⊙ norm`` per tensor.  The tensor table recorded in the stream
header is ``[{"name", "shape", "dtype", "norm", "size"}, ...]``.

A tensor whose norm is 0 (all zero) or that is empty is recorded with norm 0;
its entries have ``a = 0`` and are never selected.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from .._validation import check_choice, check_weights
from ..errors import CorruptStreamError, InvalidArgumentError

__all__ = [
    "NORMALIZATIONS",
    "MAX_PARAMS",
    "Flat",
    "flatten",
    "unflatten",
    "tensor_norm",
    "check_sparsities",
    "needed_nonzeros",
    "validate_table",
    "is_buffer",
    "raw_tensor",
    "BUFFER_SUFFIXES",
]

NORMALIZATIONS = ("l2", "l1")
# Indices are int32 inside the kernels and positions are coded below 2**31.
MAX_PARAMS = 2**31 - 2
_OUT_KINDS = "fiub"


@dataclass(frozen=True)
class Flat:
    """A weights mapping flattened to magnitudes and signs of the normalized weights.

    Attributes
    ----------
    magnitudes : ndarray of float64, shape (n,)
        ``a = |u|`` with ``u = w / ‖w‖`` per tensor (0 for a zero-norm tensor).
    signs : ndarray of int8, shape (n,)
        ``sign(w)`` in {-1, 0, +1}.
    table : tuple of dict
        ``{"name", "shape", "dtype", "norm", "size"}`` per tensor, in key order.
    normalize : str
        ``"l2"`` (Frobenius norm, the reference code) or ``"l1"`` (entrywise L1, docs/theory.md §2).
    min_positive : float
        The smallest positive magnitude (``inf`` when every weight is zero).
    """

    magnitudes: np.ndarray
    signs: np.ndarray
    table: tuple
    normalize: str
    min_positive: float = math.inf

    @property
    def n(self) -> int:
        return int(self.magnitudes.size)

    @property
    def slices(self) -> list[slice]:
        """Slice of each tensor in the flat vector."""
        out, pos = [], 0
        for t in self.table:
            out.append(slice(pos, pos + t["size"]))
            pos += t["size"]
        return out


def _kernel_input(x: np.ndarray) -> np.ndarray:
    """A contiguous float32/float64 view (no copy when it already is one), else a float64 copy."""
    x = np.asarray(x).ravel()
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    return np.ascontiguousarray(x)


def _norm_and_min(x: np.ndarray, normalize: str, name: str = "x") -> tuple[float, float]:
    """``(norm, smallest positive |x|)`` of a :func:`_kernel_input` array (``(0.0, inf)`` when empty)."""
    from ..kernels._flatten_cpu import chunked_norm

    if x.size == 0:
        return 0.0, math.inf
    s, low = chunked_norm(x, normalize == "l2")
    if math.isfinite(s) and (s > 0 or low == math.inf):
        return (float(np.sqrt(s)) if normalize == "l2" else float(s)), float(low)
    # The sum overflowed (float64 weights near 1.8e308) or every square underflowed (subnormal
    # weights): sum the weights scaled by their largest magnitude instead.  Ordinary inputs never
    # reach this branch, so their norms (and streams) are unchanged.
    top = float(np.max(np.abs(x)))
    s, _ = chunked_norm(np.ascontiguousarray(np.abs(x.astype(np.float64)) / top), normalize == "l2")
    norm = top * (float(np.sqrt(s)) if normalize == "l2" else float(s))
    if not math.isfinite(norm) or norm <= 0:
        raise InvalidArgumentError(
            f"`weights`[{name!r}] has {normalize.upper()} norm {norm!r} (largest |weight| {top!r}): it is not a finite positive "
            "float64, so SuRP cannot normalize it. Rescale the weights (e.g. divide the tensor by its largest "
            "magnitude) before encoding.")
    return norm, float(low)


def tensor_norm(x: np.ndarray, normalize: str) -> float:
    """Norm of one tensor in float64: Frobenius (``"l2"``) or entrywise L1 (``"l1"``).

    Summed in fixed chunks in a fixed order, so it does not depend on the thread count or BLAS.

    >>> tensor_norm(np.array([3.0, -4.0]), "l2"), tensor_norm(np.array([3, -4], dtype=np.int8), "l1")
    (5.0, 7.0)
    """
    return _norm_and_min(_kernel_input(x), normalize)[0]


#: Name endings of the non-trainable buffers of a torch state_dict (BatchNorm's running statistics).
BUFFER_SUFFIXES = ("running_mean", "running_var", "num_batches_tracked")


def is_buffer(name: str, arr: np.ndarray, include_buffers: bool = False) -> bool:
    """Whether tensor ``name`` is carried losslessly instead of coded: integer and boolean tensors always
    (SuRP's magnitudes would round them), BatchNorm running statistics unless ``include_buffers``.
    The reference code codes trainable parameters only (weights, biases, BN affine)."""
    if arr.dtype.kind in "iub":
        return True
    return not include_buffers and name.rsplit(".", 1)[-1] in BUFFER_SUFFIXES


def flatten(weights: Mapping, normalize: str = "l2", *, include_buffers: bool = False) -> Flat:
    """Flatten ``weights`` into normalized magnitudes and signs, in key order.

    Parameters
    ----------
    weights : Mapping[str, array_like]
        Tensors (NumPy, torch or CuPy arrays); NaN or infinite entries raise an
        error naming the tensor and the count.
    normalize : {"l2", "l1"}
        Per-tensor norm that ``u`` is divided by.
    include_buffers : bool
        Code BatchNorm running statistics like weights (default: carry them losslessly, see
        :func:`is_buffer`). A carried tensor has an entry ``raw`` (its bytes, base64) in the table,
        ``size`` 0 (it takes no coded position) and norm 0.

    Returns
    -------
    Flat

    Examples
    --------
    >>> f = flatten({"w": np.array([3.0, -4.0]), "z": np.zeros(2)})
    >>> f.magnitudes.tolist(), f.signs.tolist(), [t["norm"] for t in f.table]
    ([0.6, 0.8, 0.0, 0.0], [1, -1, 0, 0], [5.0, 0.0])
    """
    from ..kernels._flatten_cpu import magnitudes_signs

    check_choice("normalize", normalize, NORMALIZATIONS)
    arrays = check_weights("weights", weights)
    if not isinstance(include_buffers, bool):
        raise InvalidArgumentError(f"`include_buffers` must be True or False, got {include_buffers!r}.")
    raw = {k for k, a in arrays.items() if is_buffer(k, a, include_buffers)}
    n = sum(int(a.size) for k, a in arrays.items() if k not in raw)
    if n > MAX_PARAMS:
        raise InvalidArgumentError(f"`weights` has {n} entries; SuRP supports at most {MAX_PARAMS}.")
    if n == 0:
        raise InvalidArgumentError("`weights` has no entries (every tensor is empty); pass at least one weight.")
    mags = np.empty(n, dtype=np.float64)
    signs = np.empty(n, dtype=np.int8)
    table = []
    pos = 0
    lo = math.inf
    for name, arr in arrays.items():
        if name in raw:
            data = np.ascontiguousarray(arr)
            table.append({"name": name, "shape": [int(s) for s in arr.shape], "dtype": data.dtype.str,
                          "norm": 0.0, "size": 0, "raw": base64.b64encode(data.tobytes()).decode("ascii")})
            continue
        size = int(arr.size)
        x = _kernel_input(arr)
        norm, low = _norm_and_min(x, normalize, name)
        if size:
            magnitudes_signs(x, norm, mags[pos:pos + size], signs[pos:pos + size])
            if norm > 0:  # division by norm > 0 is monotone, so the smallest magnitude is low / norm
                lo = min(lo, low / norm)
        table.append({"name": name, "shape": [int(s) for s in arr.shape], "dtype": str(arr.dtype),
                      "norm": norm, "size": size})
        pos += size
    return Flat(magnitudes=mags, signs=signs, table=tuple(table), normalize=normalize, min_positive=lo)


def unflatten(u_hat: np.ndarray, table: Sequence[dict]) -> dict[str, np.ndarray]:
    """Map a signed normalized reconstruction ``û`` back to the input's keys, shapes and dtypes.

    ``ŵ = û ⊙ norm`` per tensor (with ``û = sign ⊙ â``), cast to the tensor's
    dtype (rounded first for integer dtypes).

    >>> f = flatten({"w": np.array([[3.0, -4.0]], dtype=np.float32)})
    >>> out = unflatten(f.signs * f.magnitudes, f.table)
    >>> out["w"].dtype, out["w"].shape, out["w"].tolist()
    (dtype('float32'), (1, 2), [[3.0, -4.0]])
    """
    out = {}
    pos = 0
    for t in table:
        if "raw" in t:
            out[t["name"]] = raw_tensor(t)
            continue
        size = int(t["size"])
        seg = np.asarray(u_hat[pos:pos + size], dtype=np.float64) * float(t["norm"])
        seg += 0.0  # -0.0 -> +0.0, so that equal reconstructions are equal bit for bit
        dtype = np.dtype(t["dtype"])
        if dtype.kind in "iu":
            seg = np.rint(seg)
            info = np.iinfo(dtype)
            if seg.size and not (info.min <= seg.min() and seg.max() <= info.max):  # NaN fails too
                raise CorruptStreamError(f"tensor {t['name']!r} decodes to values outside {dtype} (its header norm is "
                                         f"{t['norm']!r}); the stream is corrupted.")
        elif dtype.kind == "b":
            seg = seg != 0
        with np.errstate(over="ignore", invalid="ignore"):
            cast = seg.astype(dtype)
        if dtype.kind in "fc" and cast.size and not np.isfinite(cast).all():
            raise CorruptStreamError(f"tensor {t['name']!r} decodes to infinite weights in {dtype} (its header norm is "
                                     f"{t['norm']!r}); the stream is corrupted.")
        out[t["name"]] = cast.reshape(tuple(t["shape"]))
        pos += size
    return out


def check_sparsities(sparsity) -> tuple[float, ...]:
    """Validate one or several target sparsities in (0, 1); return them sorted, sparsest first.

    >>> check_sparsities([0.5, 0.9, 0.5])
    (0.9, 0.5)
    """
    values = [sparsity] if np.ndim(sparsity) == 0 else list(np.asarray(sparsity, dtype=object).ravel())
    if not values:
        raise InvalidArgumentError("`sparsity` is empty; pass at least one target in (0, 1), e.g. 0.9.")
    out = []
    for v in values:
        try:
            s = float(v)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"`sparsity` must be a number in (0, 1), got {v!r}.") from None
        if not (math.isfinite(s) and 0.0 < s < 1.0):
            raise InvalidArgumentError(
                f"`sparsity` must lie strictly between 0 and 1 (fraction of zero weights), got {v!r}."
            )
        out.append(s)
    return tuple(sorted(set(out), reverse=True))


def needed_nonzeros(sparsity: float, n: int) -> int:
    """Smallest number of non-zeros k with ``1 - k/n <= sparsity`` (sparsity reached).

    >>> needed_nonzeros(0.9, 1000), needed_nonzeros(0.999, 10)
    (100, 1)
    """
    k = int(math.ceil((1.0 - sparsity) * n - 1e-9 * n))
    # correct the float guess exactly
    while k > 0 and 1.0 - (k - 1) / n <= sparsity:
        k -= 1
    while 1.0 - k / n > sparsity:
        k += 1
    return max(k, 1)


def raw_tensor(t: dict) -> np.ndarray:
    """The tensor a table entry carries losslessly (``raw``: base64 of its bytes), checked against its
    declared dtype and shape."""
    name, shape = t.get("name"), t.get("shape")
    try:
        dtype = np.dtype(t.get("dtype"))
        data = base64.b64decode(t.get("raw"), validate=True)
    except (TypeError, ValueError, binascii.Error):
        raise CorruptStreamError(f"stream header: carried tensor {name!r} has an unreadable dtype or payload.") from None
    if dtype.kind not in _OUT_KINDS or dtype.hasobject or len(data) != math.prod(shape) * dtype.itemsize:
        raise CorruptStreamError(f"stream header: carried tensor {name!r} holds {len(data)} bytes, not "
                                 f"{shape!r} of {dtype}.")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def validate_table(table) -> int:
    """Check a tensor table read from a stream header; return n (total entries).

    Raises :class:`~ratedist.errors.CorruptStreamError` on anything absurd.
    """
    if not isinstance(table, list) or not table:
        raise CorruptStreamError("stream header has no tensor table (`tensors`).")
    n = 0
    names = set()
    for t in table:
        if not isinstance(t, dict):
            raise CorruptStreamError("stream header: a tensor entry is not an object.")
        name, shape, dtype, norm, size = (t.get(k) for k in ("name", "shape", "dtype", "norm", "size"))
        if not isinstance(name, str) or name in names:
            raise CorruptStreamError(f"stream header: bad or duplicate tensor name {name!r}.")
        names.add(name)
        if not isinstance(shape, list) or not all(isinstance(s, int) and 0 <= s <= MAX_PARAMS for s in shape):
            raise CorruptStreamError(f"stream header: tensor {name!r} has an invalid shape {shape!r}.")
        if "raw" in t:
            if size != 0 or norm != 0 or not isinstance(t["raw"], str) or math.prod(shape) > MAX_PARAMS:
                raise CorruptStreamError(f"stream header: carried tensor {name!r} has a bad size, norm or payload.")
            raw_tensor(t)
            continue
        if not isinstance(size, int) or size != math.prod(shape):
            raise CorruptStreamError(f"stream header: tensor {name!r} declares size {size!r} for shape {shape!r}.")
        try:
            kind = np.dtype(dtype).kind
        except TypeError:
            kind = "?"
        if not isinstance(dtype, str) or kind not in _OUT_KINDS:
            raise CorruptStreamError(f"stream header: tensor {name!r} has an unsupported dtype {dtype!r}.")
        if not isinstance(norm, (int, float)) or isinstance(norm, bool) or not math.isfinite(norm) or norm < 0:
            raise CorruptStreamError(f"stream header: tensor {name!r} has an invalid norm {norm!r}.")
        n += size
        if n > MAX_PARAMS:
            raise CorruptStreamError(f"stream header declares more than {MAX_PARAMS} parameters.")
    if n == 0:
        raise CorruptStreamError("stream header declares no parameters.")
    return n
