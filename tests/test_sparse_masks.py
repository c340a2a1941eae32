"""Tests of ratedist.sparse.masks: checks, random and reshuffled masks, the torch binding and masked training."""

from __future__ import annotations

import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError
from ratedist.sparse import check_masks, check_sparsity, layer_kept, mask_sparsity, random_masks, reshuffle_masks

SHAPES = {"fc1.weight": (16, 8), "fc1.bias": (16,), "fc2.weight": (4, 16)}


def _w():
    return {k: np.zeros(s, np.float32) for k, s in SHAPES.items()}


@pytest.mark.parametrize("bad", [-0.1, 1.0, 1.5, float("nan")])
def test_sparsity_outside_unit_interval_is_a_clear_error(bad):
    """A sparsity outside [0, 1) raises an InvalidArgumentError naming `sparsity`."""
    with pytest.raises(InvalidArgumentError, match="`sparsity`"):
        check_sparsity(bad)
    with pytest.raises(InvalidArgumentError, match="`sparsity`"):
        random_masks(_w(), sparsity=bad, seed=0)


@pytest.mark.parametrize("method", ["uniform", "er", "erk", "global"])
@pytest.mark.parametrize("s", [0.0, 0.5, 0.9, 0.98])
def test_random_masks_meet_the_target_and_repeat(method, s):
    """Random masks keep round((1-S)N) of the selected weights (every layer within one weight of S
    for 'uniform'), are binary, leave biases dense, and the same seed gives the same masks."""
    m = random_masks(_w(), sparsity=s, seed=3, method=method)
    n = 16 * 8 + 4 * 16
    kept = layer_kept(m)
    assert kept["fc1.weight"] + kept["fc2.weight"] == int(np.floor((1 - s) * n + 0.5))
    assert m["fc1.bias"].all() and all(a.dtype == bool for a in m.values())
    if method == "uniform":
        for k in ("fc1.weight", "fc2.weight"):
            assert abs(kept[k] - (1 - s) * m[k].size) <= 1.0
    again = random_masks(_w(), sparsity=s, seed=3, method=method)
    assert all(np.array_equal(m[k], again[k]) for k in m)


def test_reshuffle_keeps_layer_counts_and_moves_positions():
    """The layer-wise reshuffle (Frankle et al. 2021) keeps every layer's kept count, changes which
    weights are kept, leaves dense tensors alone, and is reproducible by seed."""
    m = random_masks(_w(), sparsity=0.8, seed=0)
    r = reshuffle_masks(m, seed=5)
    assert layer_kept(r) == layer_kept(m)
    assert not np.array_equal(r["fc1.weight"], m["fc1.weight"])
    assert r["fc1.bias"].all()
    assert all(np.array_equal(r[k], reshuffle_masks(m, seed=5)[k]) for k in m)


def test_check_masks_rejects_non_binary_and_foreign_keys():
    """Masks must be binary and name known tensors of the right shape."""
    with pytest.raises(InvalidArgumentError, match="binary"):
        check_masks({"a": np.array([0.0, 0.5])})
    with pytest.raises(InvalidArgumentError, match="'zz'"):
        check_masks({"zz": np.ones(3, bool)}, {"a": np.zeros(3)})
    assert mask_sparsity({"a": np.array([1, 0, 0, 0])}) == 0.75


torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny networks: threads only contend on a shared machine

from ratedist.sparse import MaskedModule, train_masked  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Sequential()
    net.add_module("fc1", torch.nn.Linear(8, 16))
    net.add_module("relu", torch.nn.ReLU())
    net.add_module("fc2", torch.nn.Linear(16, 4))
    return net


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    y = (X[:, :4].argmax(1)).long()
    return X, y


def test_module_mask_key_mismatch_names_the_keys():
    """A mask key that is not a parameter of the module is an error naming the key and the
    module's parameters; a wrong shape names the parameter."""
    net = _net()
    with pytest.raises(InvalidArgumentError, match="'layer9.weight'.*fc1.weight"):
        MaskedModule(net, {"layer9.weight": np.ones((16, 8), bool)})
    with pytest.raises(InvalidArgumentError, match="'fc1.weight'"):
        MaskedModule(net, {"fc1.weight": np.ones((8, 16), bool)})


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_pruned_weights_grads_and_optimizer_state_stay_zero(optimizer):
    """Through masked training (Adam with weight decay, SGD with momentum) every pruned weight stays
    exactly zero, its gradient is zero and every optimizer state tensor is zero at its position;
    the same seed gives bit-identical weights."""
    masks = random_masks({k: p.detach().numpy() for k, p in _net().named_parameters()}, sparsity=0.9, seed=1)
    masks = {k: v for k, v in masks.items() if k.endswith("weight")}
    runs = []
    for _ in range(2):
        net = _net()
        out = train_masked(net, masks, _data(), epochs=3, seed=4, optimizer=optimizer, weight_decay=1e-2, lr=1e-2)
        p = dict(net.named_parameters())
        for k, m in masks.items():
            assert torch.all(p[k].detach()[~torch.from_numpy(m)] == 0)
            assert torch.all(p[k].grad[~torch.from_numpy(m)] == 0)
            state = out["optimizer"].state[p[k]]
            tensors = [v for v in state.values() if torch.is_tensor(v) and v.shape == p[k].shape]
            assert tensors, "the optimizer keeps per-weight state"
            for v in tensors:
                assert torch.all(v[~torch.from_numpy(m)] == 0)
            assert torch.any(p[k].detach()[torch.from_numpy(m)] != 0)
        runs.append({k: v.detach().clone() for k, v in net.named_parameters()})
    assert all(torch.equal(runs[0][k], runs[1][k]) for k in runs[0])
