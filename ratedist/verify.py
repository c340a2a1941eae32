"""``ratedist.verify``: the claims ledger (kept as the name ``ratedist verify`` users know).

The ledger itself lives in :mod:`ratedist.claims`, one module per section of the theory.
"""

from __future__ import annotations

from .claims import Check, ClaimResult, claim, registered_claims, run_claim, run_claims

__all__ = ["Check", "ClaimResult", "claim", "run_claim", "run_claims", "registered_claims"]
