"""Tests of ratedist.sparse.imp: nested magnitude steps, gradual and iterative pruning, lottery tickets."""

from __future__ import annotations

import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError
from ratedist.sparse import check_schedule, layer_kept, magnitude_step, rewound_weights


def _weights(seed=0):
    rng = np.random.default_rng(seed)
    return {"a": rng.normal(size=(12, 10)).astype(np.float32), "b": rng.normal(size=(5, 12)).astype(np.float32)}


def test_magnitude_steps_are_nested_exact_and_never_revive():
    """Each step keeps exactly round((1-S)N) weights, a subset of the previous mask, and the kept
    weights are the largest |w| among those still kept (global allocation)."""
    w = _weights()
    n = 180
    m = None
    for s in (0.2, 0.36, 0.488, 0.9):
        new = magnitude_step(w, m, s)
        assert sum(layer_kept(new).values()) == int(np.floor((1 - s) * n + 0.5))
        if m is not None:
            assert all(not np.any(new[k] & ~m[k]) for k in w)
            alive = np.concatenate([np.abs(w[k])[m[k]] for k in w])
            kept = np.concatenate([np.abs(w[k])[new[k]] for k in w])
            assert kept.min() >= np.sort(alive)[::-1][kept.size - 1]
        m = new
    with pytest.raises(InvalidArgumentError, match="`sparsity`"):
        magnitude_step(w, m, 0.5)


def test_schedule_must_not_decrease_or_leave_the_unit_interval():
    """A schedule that goes down, is empty or leaves [0, 1) is a clear error."""
    with pytest.raises(InvalidArgumentError, match="non-decreasing"):
        check_schedule([0.5, 0.2])
    with pytest.raises(InvalidArgumentError, match="empty"):
        check_schedule([])
    with pytest.raises(InvalidArgumentError, match="`sparsity`"):
        check_schedule([0.5, 1.0])


def test_rewound_weights_are_the_stored_values():
    """Rewinding keeps the stored value of every kept weight bit for bit and zeroes the rest."""
    w = _weights(1)
    m = magnitude_step(w, None, 0.7)
    r = rewound_weights(w, m)
    for k in w:
        assert np.array_equal(r[k][m[k]].view(np.uint32), w[k][m[k]].view(np.uint32))
        assert np.all(r[k][~m[k]] == 0)


torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny networks: threads only contend on a shared machine

from ratedist.sparse import gradual_magnitude_pruning, iterative_magnitude_pruning, lottery_ticket  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 24, bias=False), torch.nn.ReLU(), torch.nn.Linear(24, 4, bias=False))


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    return X, X[:, :4].argmax(1).long()


N_W = 8 * 24 + 24 * 4


def _check_final(res, net, s):
    assert abs(sum(layer_kept(res.masks).values()) - (1 - s) * N_W) <= 1.0
    p = dict(net.named_parameters())
    for k, m in res.masks.items():
        assert m.dtype == bool
        assert torch.all(p[k].detach()[~torch.from_numpy(m)] == 0)
        assert np.all(res.weights[k][~m] == 0)


def test_gradual_magnitude_pruning_reaches_target_and_keeps_zeros():
    """Gradual (cubic) pruning during training ends within one weight of the target, the sparsity
    rises monotonically over the pruning events, and pruned weights are zero at the end."""
    net = _net()
    res = gradual_magnitude_pruning(net, _data(), sparsity=0.9, epochs=6, seed=0, every=2, batch_size=16)
    _check_final(res, net, 0.9)
    sp = [h["sparsity"] for h in res.history]
    assert len(sp) >= 3 and all(b >= a for a, b in zip(sp, sp[1:]))


@pytest.mark.parametrize("begin,end", [(0.5, 0.5), (0.8, 0.2), (-0.1, 0.5), (0.1, 1.2)])
def test_gradual_schedule_that_ends_before_it_starts_is_an_error(begin, end):
    """A pruning window with end <= begin (or outside [0, 1]) raises, naming `begin` and `end`."""
    with pytest.raises(InvalidArgumentError, match="`begin`.*`end`"):
        gradual_magnitude_pruning(_net(), _data(), sparsity=0.9, epochs=2, seed=0, begin=begin, end=end)


def test_iterative_pruning_follows_the_twenty_percent_rounds():
    """The default IMP schedule is 1 - 0.8^k up to the target, each round meeting its level within a
    weight; the final model has exactly the target sparsity."""
    net = _net()
    res = iterative_magnitude_pruning(net, _data(), sparsity=0.6, epochs_first=2, epochs_per_round=1, seed=0,
                                      batch_size=32)
    targets = [h["target"] for h in res.history]
    np.testing.assert_allclose(targets[:-1], 1 - 0.8 ** np.arange(1, len(targets)), rtol=1e-12)
    assert targets[-1] == 0.6
    for h in res.history:
        assert abs((1 - h["sparsity"]) * N_W - (1 - h["target"]) * N_W) <= 1.0
    _check_final(res, net, 0.6)


@pytest.mark.parametrize("rewind_step", [0, 5])
def test_lottery_ticket_rewinds_bit_for_bit(rewind_step):
    """The ticket starts from the stored rewind point: with rewind_step=0 the initialization itself,
    otherwise the weights after k steps (different from the initialization); every kept weight equals
    the stored value bit for bit, pruned ones are zero; the final model meets the target."""
    net = _net(3)
    init = {k: p.detach().numpy().copy() for k, p in net.named_parameters()}
    res = lottery_ticket(net, _data(), sparsity=0.8, epochs=2, seed=0, rounds=2, rewind_step=rewind_step,
                         batch_size=16)
    stored, start = res.extra["rewind_weights"], res.extra["ticket_init"]
    for k, m in res.masks.items():
        assert np.array_equal(start[k][m].view(np.uint32), stored[k][m].view(np.uint32))
        assert np.all(start[k][~m] == 0)
        same_as_init = np.array_equal(stored[k], init[k])
        assert same_as_init == (rewind_step == 0)
    _check_final(res, net, 0.8)
    assert [round(h["target"], 12) for h in res.history] == [round(1 - 0.2 ** 0.5, 12), 0.8]


def test_lottery_controls():
    """Random reinitialization keeps the ticket's mask but not its weights; the random-mask control keeps
    the rewound weights' source and every layer's count but moves the kept positions."""
    ticket = lottery_ticket(_net(), _data(), sparsity=0.8, epochs=1, seed=0, batch_size=16, method="uniform")
    re = lottery_ticket(_net(), _data(), sparsity=0.8, epochs=1, seed=0, batch_size=16, control="reinit",
                        method="uniform")
    rm = lottery_ticket(_net(), _data(), sparsity=0.8, epochs=1, seed=0, batch_size=16, control="random_mask",
                        method="uniform")
    for k in ticket.masks:
        assert np.array_equal(re.masks[k], ticket.masks[k])
        assert not np.array_equal(re.extra["ticket_init"][k], ticket.extra["ticket_init"][k])
        assert int(rm.masks[k].sum()) == int(ticket.masks[k].sum())
        assert not np.array_equal(rm.masks[k], ticket.masks[k])
        m = rm.masks[k]
        assert np.array_equal(rm.extra["ticket_init"][k][m], rm.extra["rewind_weights"][k][m])


def test_rewind_step_past_training_is_an_error():
    """A rewind point after the last optimizer step of the first training is a clear error."""
    with pytest.raises(InvalidArgumentError, match="`rewind_step`"):
        lottery_ticket(_net(), _data(), sparsity=0.5, epochs=1, seed=0, batch_size=64, rewind_step=50)
