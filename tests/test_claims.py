"""Every claim of the ledger (`ratedist verify`), one test each.

The claims themselves state their theorem and source (ratedist/claims/, one module per section of
docs/theory.md); this file only runs them, so no theorem is written twice.
"""

from __future__ import annotations

import pytest

from ratedist.claims import claim_modules, registered_claims, run_claim

CLAIMS = registered_claims()


@pytest.mark.parametrize("cid", CLAIMS)
def test_claim_passes(cid):
    """The claim's measured margin is within its tolerance (see the claim's statement and source)."""
    res = run_claim(cid)
    assert res.passed, f"{cid}: measured {res.measured} vs tolerance {res.tolerance}; {res.detail}"


def test_ledger_is_discovered_in_section_order():
    """Each module of ratedist.claims registers at least one claim, and the ledger runs them in the
    order of the theory's sections."""
    from importlib import import_module

    mods = claim_modules()
    sections = [getattr(import_module(m), "SECTION") for m in mods]
    assert sections == sorted(sections) and len(mods) >= 8
    owners = {c.split(".")[0] for c in CLAIMS}
    assert len(CLAIMS) == len(set(CLAIMS)) and len(owners) >= 8
