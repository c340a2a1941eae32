"""Tests of ratedist.sparse.dst: selection, prune-and-regrow updates, SET and RigL training."""

from __future__ import annotations

import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError
from ratedist.sparse import (
    dsr_update,
    largest_k,
    layer_kept,
    prune_regrow,
    random_masks,
    smallest_k,
    snfs_update,
    update_fraction,
)


@pytest.mark.parametrize("seed", range(5))
def test_selection_equals_the_full_sort_reference(seed):
    """smallest_k / largest_k (one argpartition) pick exactly the entries a stable full sort picks,
    ties broken by the smaller index."""
    rng = np.random.default_rng(seed)
    v = rng.integers(0, 6, size=200).astype(np.float64)  # many ties
    for k in (0, 1, 7, 100, 199, 200):
        assert smallest_k(v, k).tolist() == sorted(np.argsort(v, kind="stable")[:k].tolist())
        assert largest_k(v, k).tolist() == sorted(np.lexsort((np.arange(v.size), -v))[:k].tolist())


def test_prune_regrow_keeps_counts_and_follows_its_criteria():
    """One update keeps every layer's count; the dropped weights are the smallest |w| among the active ones;
    gradient regrowth picks the largest |g| among the inactive ones; random regrowth repeats by seed."""
    rng = np.random.default_rng(0)
    w = {"a": rng.normal(size=(20, 10)), "b": rng.normal(size=(5, 20))}
    m = random_masks(w, sparsity=0.8, seed=1, method="erk")
    w = {k: np.where(m[k], v, 0.0) for k, v in w.items()}
    g = {k: rng.normal(size=v.shape) for k, v in w.items()}
    new, grown = prune_regrow(w, m, fraction=0.3, grow=g)
    assert layer_kept(new) == layer_kept(m)
    for k in w:
        act = np.flatnonzero(m[k].ravel())
        n_drop = int(np.floor(0.3 * act.size))
        dropped = set(act[np.argsort(np.abs(w[k].ravel()[act]), kind="stable")[:n_drop]].tolist())
        after_drop = m[k].ravel().copy()
        after_drop[list(dropped)] = False
        cand = np.flatnonzero(~after_drop)
        best = cand[np.lexsort((cand, -np.abs(g[k].ravel()[cand])))[:n_drop]]
        assert sorted(grown[k].tolist()) == sorted(best.tolist())
        assert set(np.flatnonzero(new[k].ravel()).tolist()) == (set(act.tolist()) - dropped) | set(best.tolist())
    r1, _ = prune_regrow(w, m, fraction=0.3, seed=7)
    r2, _ = prune_regrow(w, m, fraction=0.3, seed=7)
    assert layer_kept(r1) == layer_kept(m) and all(np.array_equal(r1[k], r2[k]) for k in w)
    with pytest.raises(InvalidArgumentError, match="`fraction`"):
        prune_regrow(w, m, fraction=1.5)


def test_dsr_keeps_global_count_and_adapts_threshold():
    """DSR prunes exactly the active weights below the threshold, regrows as many (global count constant,
    layers may trade), never empties a layer, and doubles/halves the threshold when the pruned count is
    below/above (1 ∓ δ) of the target."""
    rng = np.random.default_rng(2)
    w = {"a": rng.normal(size=(20, 10)), "b": rng.normal(size=(5, 20))}
    m = random_masks(w, sparsity=0.7, seed=0)
    w = {k: np.where(m[k], v, 0.0) for k, v in w.items()}
    n_act = sum(layer_kept(m).values())
    below = sum(int(np.count_nonzero(m[k] & (np.abs(w[k]) < 0.5))) for k in w)
    new, grown, h, k = dsr_update(w, m, threshold=0.5, n_target=below, seed=1)
    assert k == below and sum(layer_kept(new).values()) == n_act
    assert h == 0.5
    assert sum(g.size for g in grown.values()) == k
    for key in w:  # a small active weight survives only by being regrown (random regrowth may pick it)
        small_alive = np.flatnonzero((new[key] & m[key] & (np.abs(w[key]) < 0.5)).ravel())
        assert set(small_alive.tolist()) <= set(grown[key].tolist())
    assert dsr_update(w, m, threshold=0.5, n_target=10 * below)[2] == 1.0
    assert dsr_update(w, m, threshold=0.5, n_target=max(1, below // 10))[2] == 0.25
    tiny = {"a": np.full(4, 1e-6), "b": np.ones(4)}
    keep = {"a": np.array([True, True, False, False]), "b": np.array([True, False, False, False])}
    assert dsr_update(tiny, keep, threshold=1e-3, n_target=1)[0]["a"].sum() >= 1


def test_snfs_redistributes_by_momentum():
    """SNFS drops floor(p · n_active) smallest weights per layer, keeps the global count, gives the layer
    with the larger mean momentum the larger share of regrowth, and regrows at the largest |momentum|."""
    rng = np.random.default_rng(3)
    w = {"a": rng.normal(size=(10, 10)), "b": rng.normal(size=(10, 10))}
    m = random_masks(w, sparsity=0.8, seed=4)
    w = {k: np.where(m[k], v, 0.0) for k, v in w.items()}
    mom = {"a": rng.normal(size=(10, 10)) * 10.0, "b": rng.normal(size=(10, 10)) * 0.1}
    new, grown = snfs_update(w, m, mom, fraction=0.5)
    assert sum(layer_kept(new).values()) == sum(layer_kept(m).values())
    assert grown["a"].size > grown["b"].size
    for key in w:
        free = np.flatnonzero(~new[key].ravel())
        if grown[key].size and free.size:
            assert np.abs(mom[key].ravel()[grown[key]]).min() >= np.abs(mom[key].ravel()[free]).max()


def test_update_fraction_cosine_and_constant():
    """RigL's cosine decay goes from α at t = 0 to 0 at T_end; SET's fraction is constant until T_end."""
    assert update_fraction(0, alpha=0.3, t_end=10) == 0.3
    assert abs(update_fraction(5, alpha=0.3, t_end=10) - 0.15) < 1e-15
    assert update_fraction(7, alpha=0.3, t_end=10, decay="constant") == 0.3
    assert update_fraction(10, alpha=0.3, t_end=10, decay="constant") == 0.0


torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny networks: threads only contend on a shared machine

from ratedist.sparse import train_dst  # noqa: E402


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 24, bias=False), torch.nn.ReLU(), torch.nn.Linear(24, 4, bias=False))


def _data(n=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    return X, X[:, :4].argmax(1).long()


@pytest.mark.parametrize("method", ["set", "rigl", "dsr", "snfs"])
def test_dst_keeps_sparsity_constant_and_pruned_weights_zero(method):
    """SET, RigL, DSR and SNFS start from random masks at the requested sparsity (within one weight), keep
    the global count through every update (SET and RigL: every layer's count), actually move connections,
    keep masks binary and pruned weights at zero, and repeat exactly with the same seed."""
    runs = []
    for _ in range(2):
        net = _net()
        res = train_dst(net, _data(), method=method, sparsity=0.8, epochs=4, seed=0, update_every=3, batch_size=16)
        runs.append(res)
        n = 8 * 24 + 24 * 4
        kept0 = layer_kept(res.masks)
        assert abs(sum(kept0.values()) - 0.2 * n) <= 1.0
        assert res.history
        if method in ("set", "rigl"):
            assert all(h["kept"] == kept0 for h in res.history)
        assert all(sum(h["kept"].values()) == sum(kept0.values()) for h in res.history)
        assert sum(h["swapped"] for h in res.history) > 0
        p = dict(net.named_parameters())
        for k, m in res.masks.items():
            assert m.dtype == bool
            assert torch.all(p[k].detach()[~torch.from_numpy(m)] == 0)
    assert all(np.array_equal(runs[0].masks[k], runs[1].masks[k]) for k in runs[0].masks)
    assert all(np.array_equal(runs[0].weights[k], runs[1].weights[k]) for k in runs[0].weights)


def test_dst_mask_key_mismatch_is_an_error():
    """Initial masks that name no parameter of the module raise, naming the key."""
    with pytest.raises(InvalidArgumentError, match="'fc.weight'"):
        train_dst(_net(), _data(), method="rigl", masks={"fc.weight": np.ones((24, 8), bool)}, epochs=1, seed=0)
