"""Tests of ratedist.sparse.pai: SNIP, GraSP, SynFlow, FORCE and random masks at initialization."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny networks: threads only contend on a shared machine

from ratedist.errors import InvalidArgumentError  # noqa: E402
from ratedist.pruning.torch_adapter import gradients  # noqa: E402
from ratedist.sparse import PAI_METHODS, layer_kept, pai_masks, reshuffle_masks, train_fixed_mask  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 24), torch.nn.ReLU(), torch.nn.Linear(24, 4))


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    return X, X[:, :4].argmax(1).long()


N_W = 8 * 24 + 24 * 4


@pytest.mark.parametrize("method", PAI_METHODS)
@pytest.mark.parametrize("s", [0.5, 0.9, 0.98])
def test_pai_masks_meet_target_and_leave_module_unchanged(method, s):
    """Every method keeps exactly round((1-S)N) of the weight matrices (biases are not masked), masks are
    binary, scoring leaves the module's parameters bit for bit unchanged, and repeats exactly."""
    net = _net()
    before = {k: v.detach().clone() for k, v in net.named_parameters()}
    kw = dict(sparsity=s, seed=1, batch=_data(), iterations=5)
    m = pai_masks(net, method, **kw)
    assert sorted(m) == ["0.weight", "2.weight"]
    assert sum(layer_kept(m).values()) == int(np.floor((1 - s) * N_W + 0.5))
    assert all(a.dtype == bool for a in m.values())
    assert all(torch.equal(before[k], v) for k, v in net.named_parameters())
    again = pai_masks(net, method, **kw)
    assert all(np.array_equal(m[k], again[k]) for k in m)


def test_snip_is_the_global_top_of_g_times_w():
    """SNIP keeps the weights of largest |g ⊙ w| over all layers (Lee et al. 2019), checked against a
    full sort of the hand-computed scores."""
    net, batch = _net(2), _data()
    m = pai_masks(net, "snip", sparsity=0.8, batch=batch)
    g = gradients(net, lambda mod, b: torch.nn.functional.cross_entropy(mod(b[0]), b[1]), batch)
    w = {k: p.detach().double().numpy() for k, p in net.named_parameters()}
    sc = np.concatenate([np.abs(g[k] * w[k]).ravel() for k in m])
    ref = np.zeros(sc.size, bool)
    ref[np.lexsort((np.arange(sc.size), -sc))[:int(np.floor(0.2 * N_W + 0.5))]] = True
    assert np.array_equal(np.concatenate([m[k].ravel() for k in m]), ref)


def test_synflow_is_data_free_and_avoids_layer_collapse():
    """SynFlow needs no data (the input shape suffices) and keeps weights in every layer at 98 %
    (iterative SynFlow avoids layer collapse, Tanaka et al. 2020); SNIP without a batch, or SynFlow
    without an input shape, is a clear error."""
    net = _net()
    m = pai_masks(net, "synflow", sparsity=0.98, input_shape=(8,), iterations=20)
    assert all(v > 0 for v in layer_kept(m).values())
    with pytest.raises(InvalidArgumentError, match="`input_shape`"):
        pai_masks(net, "synflow", sparsity=0.5)
    with pytest.raises(InvalidArgumentError, match="`batch`"):
        pai_masks(net, "snip", sparsity=0.5)


def test_fixed_mask_training_keeps_reshuffled_counts_and_zeros():
    """Training a (reshuffled) PaI mask keeps every pruned weight at zero and the per-layer counts of the
    original mask; the requested sparsity is met to the weight."""
    net = _net()
    m = pai_masks(net, "snip", sparsity=0.9, batch=_data())
    r = reshuffle_masks(m, seed=0)
    res = train_fixed_mask(net, r, _data(), epochs=2, seed=0, batch_size=32)
    assert layer_kept(res.masks) == layer_kept(m)
    for k, mk in res.masks.items():
        assert np.all(res.weights[k][~mk] == 0)
    assert sum(layer_kept(res.masks).values()) == int(np.floor(0.1 * N_W + 0.5))
