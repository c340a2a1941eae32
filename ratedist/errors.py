"""Exceptions and warnings raised by ratedist.

Every error subclasses :class:`RatedistError` *and* the built-in exception a
caller would naturally catch (``ValueError``, ``ImportError``, ...), so
``except ValueError`` keeps working.  Messages name the offending argument in
backticks, show what was received and say what to do.
"""

from __future__ import annotations

__all__ = [
    "RatedistError",
    "InvalidArgumentError",
    "InvalidShapeError",
    "BackendUnavailableError",
    "CorruptStreamError",
    "UnreachableTargetError",
    "ConvergenceWarning",
    "RatedistWarning",
]


class RatedistError(Exception):
    """Base class of every error raised by ratedist."""


class InvalidArgumentError(RatedistError, ValueError):
    """An argument has a value outside its domain (NaN, negative, unknown option...)."""


class InvalidShapeError(RatedistError, ValueError):
    """An array argument has the wrong shape, or two arrays do not match."""


class BackendUnavailableError(RatedistError, ImportError):
    """A requested backend (``numba``, ``cuda``) is not installed or has no device."""


class CorruptStreamError(RatedistError, ValueError):
    """A bitstream is truncated, corrupted, or not a ratedist stream."""


class UnreachableTargetError(RatedistError, ValueError):
    """A requested target (sparsity, distortion, rate) cannot be reached."""


class RatedistWarning(UserWarning):
    """Base class of ratedist warnings."""


class ConvergenceWarning(RatedistWarning):
    """An iterative method stopped before reaching its requested accuracy."""
