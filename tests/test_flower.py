"""ratedist.flower and the FedPM pieces it needs (picklable aggregator, run seeds)."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError, InvalidShapeError
from ratedist.fedpm import BetaAggregator, ResetPolicy, client_seed


def _masks(rng, k, d):
    return (rng.random((k, d)) < rng.random(d)).astype(np.uint8)


def _reset_at_two(t):  # module level: picklable
    return t % 2 == 0


@pytest.mark.parametrize("reset", ["every_round", "never", [2, 3], _reset_at_two])
def test_beta_aggregator_pickles_and_continues_identically(reset):
    """A pickled aggregator continues exactly as the original: same α, β and θ^g bit for bit, every reset policy."""
    rng = np.random.default_rng(0)
    rounds = [_masks(rng, 3, 50) for _ in range(5)]
    a = BetaAggregator(50, prior=0.7, reset=reset, readout="mode")
    for m in rounds[:2]:
        a.update(m)
    b = pickle.loads(pickle.dumps(a))
    for m in rounds[2:]:
        ta, tb = a.update(m), b.update(m)
        assert np.array_equal(ta, tb)
    assert np.array_equal(a.alpha, b.alpha) and np.array_equal(a.beta, b.beta) and a.round == b.round == 5


@pytest.mark.parametrize("reset", ["every_round", "never", [1, 4]])
@pytest.mark.parametrize("mapping", [False, True])
def test_beta_aggregator_state_round_trip(reset, mapping):
    """from_state(state()) restores α, β, θ^g, the round and the policy, and the next rounds agree bit for bit."""
    rng = np.random.default_rng(1)
    a = BetaAggregator(40, prior=2.0, reset=reset, readout="mean", reference_mapping=mapping, eps=1e-3)
    for _ in range(3):
        a.update(_masks(rng, 4, 40))
    b = BetaAggregator.from_state(*a.state())
    assert (b.round, b.prior, b.readout, b.reference_mapping, b.eps) == (3, 2.0, "mean", mapping, 1e-3)
    assert b.reset_policy == a.reset_policy
    for _ in range(3):
        m = _masks(rng, 4, 40)
        assert np.array_equal(a.update(m), b.update(m))
    assert np.array_equal(a.scores(), b.scores())


def test_beta_aggregator_state_errors():
    """A callable policy cannot be written to a record; incomplete or mis-shaped states are refused by name."""
    with pytest.raises(InvalidArgumentError, match="callable"):
        BetaAggregator(3, reset=_reset_at_two).state()
    a = BetaAggregator(3)
    a.update(np.ones((1, 3), dtype=np.uint8))
    arrays, config = a.state()
    with pytest.raises(InvalidShapeError, match="alpha"):
        BetaAggregator.from_state({**arrays, "alpha": np.zeros(4)}, config)
    with pytest.raises(InvalidArgumentError, match="theta"):
        BetaAggregator.from_state({"alpha": arrays["alpha"], "beta": arrays["beta"]}, config)
    with pytest.raises(InvalidArgumentError, match="round"):
        BetaAggregator.from_state({}, config)
    with pytest.raises(InvalidArgumentError, match="reset"):
        BetaAggregator.from_state(arrays, {k: v for k, v in config.items() if k != "reset"})
    with pytest.raises(InvalidArgumentError, match="reset"):
        ResetPolicy("sometimes")
    # an empty aggregator round-trips too
    fresh = BetaAggregator.from_state(*BetaAggregator(5, reset="never").state())
    assert fresh.alpha is None and fresh.round == 0 and fresh.reset_policy.name == "never"


def test_client_seed_is_a_pure_function_of_its_arguments():
    """client_seed depends only on (run seed, round, node, stream, index) and separates all of them."""
    base = client_seed(3, 2, 5)
    assert base == client_seed(3, 2, 5, stream=1, index=0)
    variants = {client_seed(4, 2, 5), client_seed(3, 3, 5), client_seed(3, 2, 6), client_seed(3, 2, 5, stream=0),
                client_seed(3, 2, 5, index=1)}
    assert base not in variants and len(variants) == 5
    assert 0 <= base < 2**63
    with pytest.raises(InvalidArgumentError, match="`node`"):
        client_seed(3, 2, -1)
