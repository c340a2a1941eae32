"""The claims ledger behind ``ratedist verify``.

A claim is a statement of the theory (docs/theory.md) or of a reproduced table, with its source and a
numeric check that returns the measured margin and its tolerance. Each module of this package holds
the claims of one section of the theory and says which with ``SECTION = n``; the modules are found
automatically (a new module is a new section of the ledger, nothing to register by hand) and run in
section order.
"""

from __future__ import annotations

import importlib
import math
import pkgutil
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass

__all__ = ["Check", "ClaimResult", "claim", "run_claim", "run_claims", "registered_claims", "claim_modules"]


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
    """The outcome of one claim: pass or fail, the measured margin, its tolerance, the time taken."""

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


def claim_modules() -> list[str]:
    """The modules of this package, in section order (their ``SECTION``, then their name)."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        mod = importlib.import_module(f"{__name__}.{info.name}")
        found.append((getattr(mod, "SECTION", 99), info.name, mod.__name__))
    return [name for _, _, name in sorted(found)]


def registered_claims() -> list[str]:
    """The ids of every claim, in section order."""
    order = {name: i for i, name in enumerate(claim_modules())}
    return sorted(_REGISTRY, key=lambda cid: order.get(_REGISTRY[cid].func.__module__, len(order)))


def run_claims(select: str | None = None) -> list[ClaimResult]:
    """Run every registered claim (or those whose id contains ``select``)."""
    results = []
    for cid in registered_claims():
        if select and select not in cid:
            continue
        results.append(run_claim(cid))
    return results


def run_claim(cid: str) -> ClaimResult:
    """Run one claim by id; a check that raises is a failed claim, reported with its traceback."""
    if cid not in _REGISTRY:
        registered_claims()
    c = _REGISTRY[cid]
    t0 = time.perf_counter()
    try:
        chk = c.func()
        passed = chk.passed if chk.passed is not None else bool(chk.measured <= chk.tolerance)
        return ClaimResult(c.id, c.statement, c.source, bool(passed), float(chk.measured),
                           float(chk.tolerance), time.perf_counter() - t0, chk.detail)
    except Exception as exc:  # noqa: BLE001 - a crashing check is a failed claim, reported
        return ClaimResult(c.id, c.statement, c.source, False, math.nan, math.nan, time.perf_counter() - t0,
                           f"check raised {type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}")
