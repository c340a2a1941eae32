"""Tests of ratedist.sparse.obs: layer-wise optimal brain surgeon."""

from __future__ import annotations

import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError, InvalidShapeError
from ratedist.sparse.obs import obs_layer, obs_prune

RTOL = 1e-8  # float64 downdates of a well-conditioned 12x12 inverse: ~1e-13 in practice


def _problem(seed=0, n=400, d=12, out=5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))  # correlated inputs: OBS differs from magnitude
    W = rng.normal(size=(out, d))
    return X, W


@pytest.mark.parametrize("s", [0.25, 0.5, 0.9])
def test_obs_survivors_are_the_least_squares_optimum_on_their_support(s):
    """After greedy OBS with exact inverse-Hessian downdates (Hassibi & Stork 1993), each row's surviving
    weights minimize ||X (w' - w)||² over weights supported on the kept set (checked against lstsq);
    the layer keeps exactly round((1-S)N) weights, spread evenly over rows."""
    X, W = _problem()
    W2, m = obs_layer(W, X.T @ X / X.shape[0], sparsity=s, damp=0.0)
    assert int(m.sum()) == int(np.floor((1 - s) * W.size + 0.5))
    assert m.sum(1).max() - m.sum(1).min() <= 1
    assert np.all(W2[~m] == 0)
    for r in range(W.shape[0]):
        keep = np.flatnonzero(m[r])
        ref = np.zeros(W.shape[1])
        if keep.size:
            ref[keep] = np.linalg.lstsq(X[:, keep], X @ W[r], rcond=None)[0]
        np.testing.assert_allclose(W2[r], ref, rtol=RTOL, atol=RTOL * np.abs(W[r]).max())


def test_obs_reconstructs_better_than_magnitude_pruning():
    """With correlated inputs the OBS layer's output error is no larger than that of magnitude pruning with
    the same per-row counts and no weight update (the OBS update alone is optimal for its support)."""
    X, W = _problem(1)
    W2, m = obs_layer(W, X.T @ X / X.shape[0], sparsity=0.5)
    Wm = W.copy()
    for r in range(W.shape[0]):
        k = int((~m[r]).sum())
        Wm[r, np.argsort(np.abs(W[r]), kind="stable")[:k]] = 0.0
    err = lambda A: float(np.mean((X @ (A - W).T) ** 2))  # noqa: E731
    assert err(W2) <= err(Wm)


def test_obs_bad_input():
    """Wrong shapes, an out-of-range sparsity and Hessians for unknown tensors are clear errors."""
    X, W = _problem()
    H = X.T @ X
    with pytest.raises(InvalidShapeError, match="`hessian`"):
        obs_layer(W, H[:5, :5], sparsity=0.5)
    with pytest.raises(InvalidArgumentError, match="`sparsity`"):
        obs_layer(W, H, sparsity=1.0)
    with pytest.raises(InvalidArgumentError, match="'zz'"):
        obs_prune({"a": W}, {"zz": H}, sparsity=0.5)


torch = pytest.importorskip("torch")
torch.set_num_threads(1)


def test_input_hessians_of_a_module():
    """input_hessians gives Xᵀ X / n of every linear layer's input (the first layer's input is X itself),
    keyed by the weight's parameter name, and obs_prune uses them under those keys."""
    from ratedist.sparse.obs import input_hessians

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(6, 8, bias=False), torch.nn.ReLU(), torch.nn.Linear(8, 3, bias=False))
    X = torch.randn(50, 6, dtype=torch.float32)
    H = input_hessians(net, X)
    assert sorted(H) == ["0.weight", "2.weight"]
    x = X.double().numpy()
    np.testing.assert_allclose(H["0.weight"], x.T @ x / 50, rtol=1e-12)
    w = {k: p.detach().numpy() for k, p in net.named_parameters()}
    new, masks = obs_prune(w, H, sparsity=0.75)
    assert all(int(masks[k].sum()) == int(np.floor(0.25 * w[k].size + 0.5)) for k in masks)
    assert all(new[k].dtype == np.float32 for k in new)


def test_input_hessians_of_a_convolution_match_the_unfolded_layer():
    """For a conv layer the Hessian is that of its unfolded receptive fields: the conv's output equals
    the unfolded inputs times weight.reshape(out, -1)ᵀ, so OBS on the reshaped weight is OBS on the conv."""
    from ratedist.sparse.obs import input_hessians

    torch.manual_seed(1)
    conv = torch.nn.Conv2d(2, 3, 3, padding=1, bias=False).double()
    net = torch.nn.Sequential(conv)
    X = torch.randn(4, 2, 5, 5, dtype=torch.float64)
    H = input_hessians(net, X)["0.weight"]
    cols = torch.nn.functional.unfold(X, 3, padding=1).transpose(1, 2).reshape(-1, 18)
    y = (cols @ conv.weight.detach().reshape(3, -1).T).reshape(4, 25, 3).permute(0, 2, 1).reshape(4, 3, 5, 5)
    np.testing.assert_allclose(y.numpy(), conv(X).detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(H, (cols.T @ cols / cols.shape[0]).numpy(), rtol=1e-12)
