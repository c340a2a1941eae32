"""Input checks of the public boundary.

Every check raises a :class:`~ratedist.errors.RatedistError` subclass whose
message names the argument in backticks, shows what was received and says what
to do.  Kernels never validate; public functions call these first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from .errors import InvalidArgumentError, InvalidShapeError

__all__ = [
    "check_choice",
    "check_positive",
    "check_nonnegative",
    "check_finite_scalar",
    "check_probability",
    "check_open_unit",
    "check_int",
    "check_finite_array",
    "check_pmf",
    "check_weights",
]


def _scalar(name: str, value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`{name}` must be a real number, got {value!r}.") from None
    return v


def check_choice(name: str, value: Any, options: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``options``; otherwise list the valid ones."""
    if value not in options:
        valid = ", ".join(repr(o) for o in options)
        raise InvalidArgumentError(f"`{name}` must be one of {valid}; got {value!r}.")
    return value


def check_finite_scalar(name: str, value: Any) -> float:
    v = _scalar(name, value)
    if not np.isfinite(v):
        raise InvalidArgumentError(f"`{name}` must be finite, got {value!r}.")
    return v


def check_positive(name: str, value: Any) -> float:
    """A finite scalar > 0."""
    v = check_finite_scalar(name, value)
    if v <= 0:
        raise InvalidArgumentError(f"`{name}` must be > 0, got {value!r}.")
    return v


def check_nonnegative(name: str, value: Any) -> float:
    v = check_finite_scalar(name, value)
    if v < 0:
        raise InvalidArgumentError(f"`{name}` must be >= 0, got {value!r}.")
    return v


def check_probability(name: str, value: Any) -> float:
    """A scalar in the closed interval [0, 1]."""
    v = check_finite_scalar(name, value)
    if not 0.0 <= v <= 1.0:
        raise InvalidArgumentError(f"`{name}` must lie in [0, 1], got {value!r}.")
    return v


def check_open_unit(name: str, value: Any) -> float:
    """A scalar in the open interval (0, 1)."""
    v = check_finite_scalar(name, value)
    if not 0.0 < v < 1.0:
        raise InvalidArgumentError(f"`{name}` must lie strictly between 0 and 1, got {value!r}.")
    return v


def check_int(name: str, value: Any, *, minimum: int | None = None, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            value = int(value)
        else:
            raise InvalidArgumentError(f"`{name}` must be an integer, got {value!r}.")
    v = int(value)
    if minimum is not None and v < minimum:
        raise InvalidArgumentError(f"`{name}` must be >= {minimum}, got {v}.")
    if maximum is not None and v > maximum:
        raise InvalidArgumentError(f"`{name}` must be <= {maximum}, got {v}.")
    return v


def check_finite_array(name: str, x: Any, *, allow_empty: bool = False, ndim: int | None = None, xp=None):
    """Return ``x`` as an array of floats; reject NaN/inf, empty arrays and wrong ``ndim``."""
    if xp is None:
        xp = np
        x = np.asarray(x)
        if x.dtype.kind not in "fiub":
            raise InvalidArgumentError(f"`{name}` must be a real numeric array, got dtype {x.dtype}.")
        if x.dtype.kind != "f":
            x = x.astype(np.float64)
    if ndim is not None and x.ndim != ndim:
        raise InvalidShapeError(f"`{name}` must be {ndim}-dimensional, got shape {tuple(x.shape)}.")
    if not allow_empty and x.size == 0:
        raise InvalidArgumentError(f"`{name}` is empty (shape {tuple(x.shape)}); pass at least one element.")
    bad = int(xp.count_nonzero(~xp.isfinite(x))) if x.size else 0
    if bad:
        raise InvalidArgumentError(
            f"`{name}` contains {bad} NaN or infinite value(s) out of {x.size}; "
            "remove or replace them before calling."
        )
    return x


def check_pmf(name: str, p: Any, *, atol: float = 1e-9):
    """A 1-D probability vector: finite, non-negative, summing to 1 within ``atol``."""
    p = check_finite_array(name, p, ndim=1)
    if np.any(p < 0):
        raise InvalidArgumentError(f"`{name}` has negative entries (min {p.min():.3g}); a pmf is non-negative.")
    s = float(p.sum())
    if abs(s - 1.0) > atol * max(1, p.size):
        raise InvalidArgumentError(
            f"`{name}` sums to {s!r}, not 1; normalize it (p / p.sum()) before calling."
        )
    return p


def check_weights(name: str, weights: Any, *, allow_empty_tensors: bool = True) -> dict[str, np.ndarray]:
    """Validate a ``Mapping[str, array]`` of weights; return a dict of NumPy arrays.

    NaN or infinite entries raise an error naming the tensor and the count.
    """
    if not isinstance(weights, Mapping):
        raise InvalidArgumentError(
            f"`{name}` must be a mapping of tensor names to arrays (a state_dict), got {type(weights).__name__}."
        )
    if len(weights) == 0:
        raise InvalidArgumentError(f"`{name}` is an empty mapping; pass at least one tensor.")
    out: dict[str, np.ndarray] = {}
    for key, value in weights.items():
        if not isinstance(key, str):
            raise InvalidArgumentError(f"`{name}` keys must be strings, got {key!r}.")
        arr = _to_numpy(value)
        if arr.dtype.kind not in "fiub":
            raise InvalidArgumentError(f"tensor {key!r} of `{name}` has non-numeric dtype {arr.dtype}.")
        if arr.size == 0 and not allow_empty_tensors:
            raise InvalidArgumentError(f"tensor {key!r} of `{name}` is empty (shape {arr.shape}).")
        if arr.dtype.kind == "f":
            bad = int(np.count_nonzero(~np.isfinite(arr)))
            if bad:
                raise InvalidArgumentError(
                    f"tensor {key!r} of `{name}` contains {bad} NaN or infinite value(s) out of {arr.size}; "
                    "fix the model (or drop that tensor) before compressing."
                )
        out[key] = arr
    return out


def _to_numpy(value: Any) -> np.ndarray:
    """Bring an array-like (NumPy, CuPy, torch) to a host NumPy array."""
    if hasattr(value, "detach") and hasattr(value, "cpu"):  # torch tensor
        value = value.detach().cpu()
        if str(value.dtype) == "torch.bfloat16":
            value = value.float()
        return value.numpy()
    if hasattr(value, "get") and type(value).__module__.startswith("cupy"):
        return value.get()
    return np.asarray(value)
