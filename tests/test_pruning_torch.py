"""Tests of the torch adapter of ratedist.pruning (SynFlow, gradients, Hessian products)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ratedist.pruning import prune  # noqa: E402
from ratedist.pruning.scores import grasp, obd, snip  # noqa: E402
from ratedist.pruning.torch_adapter import (  # noqa: E402
    gradients,
    grasp_hessian_gradient,
    hessian_diagonal,
    hessian_vector_product,
    synflow,
)

# Hutchinson's estimator is checked within this many standard errors (fixed seed)
K_SE = 5.0


def _net():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 3, bias=False), torch.nn.ReLU(), torch.nn.Linear(3, 2, bias=False))


def test_synflow_hand_checked_and_restores_module():
    """SynFlow (Tanaka et al. 2020) of a bias-free 2-layer ReLU net with an all-ones input:
    R = 1ᵀ|W2||W1|1, so the score of W1_ij is |W1_ij| Σ_k |W2_ki|; the module is left unchanged."""
    m = _net()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    s = synflow(m, (4,))
    a1, a2 = m[0].weight.detach().abs().double().numpy(), m[2].weight.detach().abs().double().numpy()
    np.testing.assert_allclose(s["0.weight"], a2.sum(0)[:, None] * a1, rtol=1e-12)
    np.testing.assert_allclose(s["2.weight"], a2 * (a1.sum(1))[None, :], rtol=1e-12)
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    r = prune(s, method="global", sparsity=0.5, scores=s)
    assert r.n_kept == 9


def test_gradients_hvp_and_hessian_diagonal():
    """Gradients and H·v agree with torch.autograd.functional; the Hutchinson diagonal is within
    K_SE standard errors of the exact Hessian diagonal; the scores consume them."""
    lin = torch.nn.Linear(3, 2, bias=False).double()
    torch.manual_seed(1)
    x, y = torch.randn(16, 3, dtype=torch.float64), torch.randn(16, 2, dtype=torch.float64)
    loss_fn = lambda mod, b: ((mod(b[0]) - b[1]) ** 2).mean()  # noqa: E731
    w0 = lin.weight.detach().clone()

    def f(w):
        return ((x @ w.T - y) ** 2).mean()

    h = torch.autograd.functional.hessian(f, w0).reshape(6, 6).numpy()
    g = gradients(lin, loss_fn, (x, y))
    g_exact = torch.autograd.functional.jacobian(f, w0).numpy()
    np.testing.assert_allclose(g["weight"], g_exact, rtol=1e-10, atol=1e-12)
    v = {"weight": np.arange(6.0).reshape(2, 3)}
    np.testing.assert_allclose(hessian_vector_product(lin, loss_fn, (x, y), v)["weight"].ravel(),
                               h @ np.arange(6.0), rtol=1e-10, atol=1e-12)
    hg = grasp_hessian_gradient(lin, loss_fn, (x, y))
    np.testing.assert_allclose(hg["weight"].ravel(), h @ g_exact.ravel(), rtol=1e-10, atol=1e-12)
    n = 400
    d = hessian_diagonal(lin, loss_fn, (x, y), n_samples=n, seed=0)["weight"].ravel()
    se = np.sqrt(((h ** 2).sum(1) - np.diag(h) ** 2) / n)
    assert np.all(np.abs(d - np.diag(h)) <= K_SE * se + 1e-12)
    w = {"weight": w0.numpy()}
    assert obd(w, {"weight": np.diag(h).reshape(2, 3)})["weight"].shape == (2, 3)
    assert snip(w, g)["weight"].shape == grasp(w, hg)["weight"].shape == (2, 3)
