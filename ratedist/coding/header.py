"""Typed readers for the fields of a stream header: every failure is a :class:`CorruptStreamError`.

A header is data from outside (a file, a message): any field may be missing, of the wrong JSON
type, out of range, or absurdly large behind a valid CRC.  Each reader takes the object that
holds the field, the field's key and the path of that object in the header (for the message),
checks the type and the range, and returns the value as a plain Python ``int``/``float``/``str``.
The message names the field (``checkpoints[1].n_bytes``), shows what was found and what was
expected.

Booleans are never accepted as numbers (JSON ``true`` is not ``1``), and floats are never
accepted as integers.

Examples
--------
>>> read_int({"n": 3}, "n", lo=0, hi=10)
3
>>> read_int({"n": -1}, "n", lo=0, hi=10, path="params")
Traceback (most recent call last):
...
ratedist.errors.CorruptStreamError: stream header field `params.n` is -1; expected an integer in [0, 10]. The stream is corrupted or was not written by ratedist.
>>> read_float({"x": 0.5}, "x", lo=0.0, hi=1.0)
0.5
>>> read_choice({"m": "l2"}, "m", ("l2", "l1"))
'l2'
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import CorruptStreamError

__all__ = [
    "field_name",
    "read_object",
    "read_int",
    "read_float",
    "read_choice",
    "read_str",
    "read_list",
    "read_int_list",
    "read_shape",
]

_MISSING = object()


def field_name(path: str, key) -> str:
    """``path.key`` (or ``path[key]`` for an integer key, or ``key`` at the top level)."""
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else str(key)


def _fail(path: str, key, value, expected: str) -> CorruptStreamError:
    shown = "missing" if value is _MISSING else f"{_short(value)}"
    return CorruptStreamError(f"stream header field `{field_name(path, key)}` is {shown}; expected {expected}. "
                              "The stream is corrupted or was not written by ratedist.")


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _get(obj, key, path: str):
    if isinstance(key, int):
        if not isinstance(obj, list):
            raise CorruptStreamError(f"stream header field `{path}` is {_short(obj)}; expected a list.")
        return obj[key] if 0 <= key < len(obj) else _MISSING
    if not isinstance(obj, dict):
        raise CorruptStreamError(f"stream header field `{path or '<root>'}` is {_short(obj)}; expected an object.")
    return obj.get(key, _MISSING)


def read_object(obj, key, *, path: str = "") -> dict:
    """The JSON object at ``obj[key]``."""
    v = _get(obj, key, path)
    if not isinstance(v, dict):
        raise _fail(path, key, v, "an object")
    return v


def read_int(obj, key, *, lo: int, hi: int, path: str = "", default=_MISSING) -> int:
    """The integer at ``obj[key]``, in ``[lo, hi]`` (``default`` when missing, if given).

    >>> read_int({}, "k", lo=0, hi=5, default=2)
    2
    """
    v = _get(obj, key, path)
    if v is _MISSING and default is not _MISSING:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise _fail(path, key, v, f"an integer in [{lo}, {hi}]")
    return int(v)


def read_float(obj, key, *, lo: float = -math.inf, hi: float = math.inf, lo_open: bool = False,
               hi_open: bool = False, path: str = "") -> float:
    """The finite number at ``obj[key]`` (a JSON integer is accepted), in the given interval.

    >>> read_float({"g": 0.95}, "g", lo=0.0, hi=1.0, lo_open=True, hi_open=True)
    0.95
    """
    v = _get(obj, key, path)
    ok = not isinstance(v, bool) and isinstance(v, (int, float))
    if ok:
        try:
            f = float(v)
        except OverflowError:  # an integer too large for a float
            ok = False
        else:
            ok = (math.isfinite(f) and (lo < f if lo_open else lo <= f) and (f < hi if hi_open else f <= hi))
    if not ok:
        interval = f"{'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise _fail(path, key, v, f"a finite number in {interval}")
    return f


def read_choice(obj, key, choices: Sequence, *, path: str = ""):
    """The value at ``obj[key]``, which must be one of ``choices`` (strings, ints or ``None``)."""
    v = _get(obj, key, path)
    if isinstance(v, bool) and not any(isinstance(c, bool) for c in choices):
        raise _fail(path, key, v, f"one of {list(choices)}")
    if v is _MISSING or not any(type(v) is type(c) and v == c for c in choices):
        raise _fail(path, key, v, f"one of {list(choices)}")
    return v


def read_str(obj, key, *, max_len: int = 4096, path: str = "") -> str:
    """The string at ``obj[key]`` (at most ``max_len`` characters)."""
    v = _get(obj, key, path)
    if not isinstance(v, str) or len(v) > max_len:
        raise _fail(path, key, v, f"a string of at most {max_len} characters")
    return v


def read_list(obj, key, *, min_len: int = 0, max_len: int, path: str = "") -> list:
    """The list at ``obj[key]``, of length in ``[min_len, max_len]`` (its items are not checked)."""
    v = _get(obj, key, path)
    if not isinstance(v, list) or not min_len <= len(v) <= max_len:
        raise _fail(path, key, v, f"a list of {min_len} to {max_len} items")
    return v


def read_int_list(obj, key, *, lo: int, hi: int, min_len: int = 0, max_len: int, path: str = "") -> list[int]:
    """A list of integers in ``[lo, hi]``.

    >>> read_int_list({"b": [0, 3]}, "b", lo=0, hi=40, max_len=8)
    [0, 3]
    """
    items = read_list(obj, key, min_len=min_len, max_len=max_len, path=path)
    name = field_name(path, key)
    return [read_int(items, i, lo=lo, hi=hi, path=name) for i in range(len(items))]


def read_shape(obj, key, *, max_size: int, max_ndim: int = 32, path: str = "") -> tuple[tuple[int, ...], int]:
    """A tensor shape (list of non-negative integers) whose product is at most ``max_size``.

    Returns ``(shape, size)``; the product is computed with Python integers (no overflow).

    >>> read_shape({"shape": [3, 4]}, "shape", max_size=100)
    ((3, 4), 12)
    """
    dims = read_int_list(obj, key, lo=0, hi=max_size, max_len=max_ndim, path=path)
    size = math.prod(dims)
    if size > max_size:
        raise _fail(path, key, dims, f"a shape of at most {max_size} entries")
    return tuple(dims), size
