"""The claims ledger behind ``ratedist verify``.

Each claim has an id, a statement, a source (THEORY.md section or paper), and a
numeric check that returns the measured margin and its tolerance.  Claims are
registered with :func:`claim` in the modules listed in ``CLAIM_MODULES``.
"""

from __future__ import annotations

import importlib
import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Check", "ClaimResult", "claim", "run_claims", "CLAIM_MODULES", "registered_claims"]

# Modules that register claims when imported; each area of ratedist adds its own.
CLAIM_MODULES = [
    "ratedist._bounds_claims",
    "ratedist._refinement_claims",
    "ratedist.rd._claims",
    "ratedist.pruning._claims",
    "ratedist.sparse._claims",
    "ratedist.surp._parallel_claims",
    "ratedist.surp._claims",
    "ratedist.fedpm._claims",
    "ratedist.compressors._claims",
    "ratedist._repro_claims",
]


@dataclass(frozen=True)
class Check:
    """What a claim's check returns: the measured quantity and its tolerance.

    ``passed`` defaults to ``measured <= tolerance`` (the measured value is an error or a gap).
    """

    measured: float
    tolerance: float
    passed: bool | None = None
    detail: str = ""


@dataclass(frozen=True)
class ClaimResult:
    id: str
    statement: str
    source: str
    passed: bool
    measured: float
    tolerance: float
    seconds: float
    detail: str = ""

    def to_dict(self) -> dict:
        d = asdict(self)
        for k in ("measured", "tolerance"):
            if not math.isfinite(d[k]):
                d[k] = str(d[k])
        return d


@dataclass(frozen=True)
class _Claim:
    id: str
    statement: str
    source: str
    func: Callable[[], Check]


_REGISTRY: dict[str, _Claim] = {}


def claim(id: str, statement: str, source: str):
    """Register a claim; the decorated function takes no argument and returns a :class:`Check`."""

    def deco(func: Callable[[], Check]):
        if id in _REGISTRY and _REGISTRY[id].func.__qualname__ != func.__qualname__:
            raise RuntimeError(f"claim id {id!r} registered twice")
        _REGISTRY[id] = _Claim(id, statement, source, func)
        return func

    return deco


def registered_claims() -> list[str]:
    for mod in CLAIM_MODULES:
        importlib.import_module(mod)
    return list(_REGISTRY)


def run_claims(select: str | None = None) -> list[ClaimResult]:
    """Run every registered claim (or those whose id contains ``select``)."""
    results = []
    for cid in registered_claims():
        if select and select not in cid:
            continue
        c = _REGISTRY[cid]
        t0 = time.perf_counter()
        try:
            chk = c.func()
            passed = chk.passed if chk.passed is not None else bool(chk.measured <= chk.tolerance)
            res = ClaimResult(c.id, c.statement, c.source, bool(passed), float(chk.measured),
                              float(chk.tolerance), time.perf_counter() - t0, chk.detail)
        except Exception as exc:  # noqa: BLE001 - a crashing check is a failed claim, reported
            res = ClaimResult(c.id, c.statement, c.source, False, math.nan, math.nan,
                              time.perf_counter() - t0,
                              f"check raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
        results.append(res)
    return results
