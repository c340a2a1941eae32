"""Stored dtypes of checkpoints, the dtype computations run in, and the cast back.

The narrow float types (bfloat16 and the float8 family) come from ``ml_dtypes``,
the package JAX uses for them: NumPy has no such types, and ml_dtypes casts from
float32/float64 round to nearest even (directly, without a double rounding
through float32).
"""

from __future__ import annotations

import ml_dtypes
import numpy as np

__all__ = [
    "SAFETENSORS_CODES",
    "TORCH_NAMES",
    "to_compute",
    "safetensors_dtype",
    "compute_dtype",
    "is_codable",
    "cast_to_stored",
    "is_narrow_float",
]

# safetensors header code -> NumPy dtype (little-endian; the format is little-endian).
SAFETENSORS_CODES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype(ml_dtypes.bfloat16),
    "F8_E4M3": np.dtype(ml_dtypes.float8_e4m3fn),
    "F8_E5M2": np.dtype(ml_dtypes.float8_e5m2),
    "F8_E4M3FNUZ": np.dtype(ml_dtypes.float8_e4m3fnuz),
    "F8_E5M2FNUZ": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "F8_E8M0": np.dtype(ml_dtypes.float8_e8m0fnu),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "I16": np.dtype("<i2"),
    "I8": np.dtype("i1"),
    "U64": np.dtype("<u8"),
    "U32": np.dtype("<u4"),
    "U16": np.dtype("<u2"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
    "C64": np.dtype("<c8"),
}

_NARROW = frozenset(
    np.dtype(t) for t in (
        ml_dtypes.bfloat16, ml_dtypes.float8_e4m3fn, ml_dtypes.float8_e5m2, ml_dtypes.float8_e4m3fnuz,
        ml_dtypes.float8_e5m2fnuz, ml_dtypes.float8_e8m0fnu,
    )
)

# torch dtype name (``str(t.dtype)`` without ``torch.``) -> NumPy dtype of the same bytes.
TORCH_NAMES: dict[str, np.dtype] = {
    "float64": np.dtype(np.float64), "float32": np.dtype(np.float32), "float16": np.dtype(np.float16),
    "bfloat16": np.dtype(ml_dtypes.bfloat16),
    "float8_e4m3fn": np.dtype(ml_dtypes.float8_e4m3fn), "float8_e5m2": np.dtype(ml_dtypes.float8_e5m2),
    "float8_e4m3fnuz": np.dtype(ml_dtypes.float8_e4m3fnuz), "float8_e5m2fnuz": np.dtype(ml_dtypes.float8_e5m2fnuz),
    "float8_e8m0fnu": np.dtype(ml_dtypes.float8_e8m0fnu),
    "int64": np.dtype(np.int64), "int32": np.dtype(np.int32), "int16": np.dtype(np.int16), "int8": np.dtype(np.int8),
    "uint64": np.dtype(np.uint64), "uint32": np.dtype(np.uint32), "uint16": np.dtype(np.uint16),
    "uint8": np.dtype(np.uint8), "bool": np.dtype(np.bool_),
    "complex64": np.dtype(np.complex64), "complex128": np.dtype(np.complex128),
}


def is_narrow_float(dtype) -> bool:
    """True for the ml_dtypes float types (bfloat16, float8_*), which NumPy cannot compute in."""
    return np.dtype(dtype) in _NARROW


def safetensors_dtype(code: str) -> np.dtype | None:
    """The NumPy dtype of a safetensors header code, or None if ratedist cannot read it (e.g. packed F4)."""
    return SAFETENSORS_CODES.get(code)


def compute_dtype(stored) -> np.dtype:
    """The dtype a stored tensor is handed out in: float32 for bfloat16/float8 (exact), else the stored one.

    >>> compute_dtype(ml_dtypes.bfloat16), compute_dtype(np.float16)
    (dtype('float32'), dtype('float16'))
    """
    stored = np.dtype(stored)
    return np.dtype(np.float32) if stored in _NARROW else stored.newbyteorder("=")


def is_codable(stored) -> bool:
    """True for floating-point dtypes (the ones ratedist's codecs compress); False for int, bool, complex."""
    stored = np.dtype(stored)
    return stored in _NARROW or stored.kind == "f"


def to_compute(raw: np.ndarray) -> np.ndarray:
    """``raw`` (any stored dtype) as an array the numerics can use; narrow floats become float32 exactly."""
    if raw.dtype in _NARROW:
        return raw.astype(np.float32)
    if not raw.dtype.isnative:
        return raw.astype(raw.dtype.newbyteorder("="))
    return raw


def cast_to_stored(arr: np.ndarray, stored) -> np.ndarray:
    """Cast a decoded array back to the checkpoint's ``stored`` dtype.

    Floats round to nearest even and saturate at the largest finite value of the
    target type (the decoded values are finite, so an overflow to inf, or to NaN for
    the float8 types without an infinity, would be an artefact of the cast).
    Integers are rounded and clipped to the type's range; booleans are ``!= 0``.

    >>> cast_to_stored(np.array([1.0 + 2.0**-8 + 2.0**-40, 1e6]), ml_dtypes.bfloat16).astype(float).tolist()
    [1.0078125, 999424.0]
    >>> cast_to_stored(np.array([500.0, -3.2]), ml_dtypes.float8_e4m3fn).astype(float).tolist()
    [448.0, -3.25]
    """
    stored = np.dtype(stored)
    arr = np.asarray(arr)
    if arr.dtype == stored:
        return arr
    if stored in _NARROW or stored.kind == "f":
        info = ml_dtypes.finfo(stored) if stored in _NARROW else np.finfo(stored)
        big = float(info.max)
        src = arr if arr.dtype.kind == "f" else arr.astype(np.float64)
        if src.size and float(np.max(np.abs(src))) > big:
            src = np.clip(src, -big, big)
        return src.astype(stored)
    if stored.kind in "iu":
        info = np.iinfo(stored)
        return np.clip(np.rint(arr.astype(np.float64)), info.min, info.max).astype(stored)
    if stored.kind == "b":
        return arr != 0
    return arr.astype(stored)
