"""The sparse-training claims of ``ratedist verify`` (ratedist.sparse._claims) run and pass."""

from __future__ import annotations

import pytest


def test_sparse_claims_are_registered_and_pass():
    """Every `sparse.` claim runs without raising and passes; with torch installed the four lecture claims
    (reshuffle sanity, GMP hard to beat, RigL >= SET, rewound ticket > reinit) are among them."""
    from ratedist.verify import registered_claims, run_claims

    ids = [c for c in registered_claims() if c.startswith("sparse.")]
    assert {"sparse.selection_full_sort", "sparse.dst_constant_sparsity"} <= set(ids)
    try:
        import torch  # noqa: F401
    except ImportError:
        pytest.skip("the lecture claims need torch")
    assert {"sparse.reshuffle_sanity", "sparse.gmp_hard_to_beat", "sparse.rigl_ge_set",
            "sparse.lottery_rewind_beats_reinit"} <= set(ids)
    res = run_claims("sparse.")
    failed = [(r.id, r.measured, r.tolerance, r.detail) for r in res if not r.passed]
    assert not failed, failed
