"""Units of information: ratedist computes in nats and converts only at the edge."""

from __future__ import annotations

import math

from .errors import InvalidArgumentError

__all__ = ["UNITS", "check_units", "from_nats", "to_nats", "LN2"]

LN2 = math.log(2.0)
UNITS = ("nats", "bits")


def check_units(units: str) -> str:
    """Return ``units`` if it is ``"nats"`` or ``"bits"``; raise otherwise."""
    if units not in UNITS:
        raise InvalidArgumentError(
            f"`units` must be one of {UNITS!r}, got {units!r}."
        )
    return units


def from_nats(value, units: str):
    """Convert an information quantity (or a rate per unit) from nats to ``units``.

    >>> from_nats(math.log(2), "bits")
    1.0
    """
    check_units(units)
    return value / LN2 if units == "bits" else value


def to_nats(value, units: str):
    """Convert an information quantity given in ``units`` to nats.

    >>> to_nats(1.0, "bits") == math.log(2)
    True
    """
    check_units(units)
    return value * LN2 if units == "bits" else value
