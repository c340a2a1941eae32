"""Tests of ratedist.sparse.regularized: L0 hard-concrete gates and sparse variational dropout."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torch.set_num_threads(1)  # tiny networks: threads only contend on a shared machine

from ratedist.errors import ConvergenceWarning, InvalidArgumentError  # noqa: E402
from ratedist.sparse import layer_kept  # noqa: E402
from ratedist.sparse.regularized import search_lambda, train_regularized  # noqa: E402

N_W = 8 * 32 + 32 * 4
TOL = 0.05  # natural-sparsity tolerance of the search on this tiny problem (documented default 0.02)


def _net(seed=0):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(8, 32, bias=False), torch.nn.ReLU(), torch.nn.Linear(32, 4, bias=False))


def _data(n=256, seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(n, 8, generator=g)
    return X, X[:, :4].argmax(1).long()


@pytest.mark.parametrize("method,lams", [("l0", (0.01, 30.0)), ("vd", (0.001, 0.1))])
def test_natural_sparsity_grows_with_lambda_and_masks_are_exact(method, lams):
    """A larger penalty weight prunes more (the natural sparsity rises with λ); with a requested sparsity the
    masks keep exactly round((1-S)N) weights, are binary, and the returned and module weights are zero there."""
    nat = []
    for lam in lams:
        net = _net()
        res = train_regularized(net, _data(), method=method, lam=lam, epochs=6, seed=0, sparsity=0.7, batch_size=32)
        nat.append(res.extra["natural_sparsity"])
        assert sum(layer_kept(res.masks).values()) == int(np.floor(0.3 * N_W + 0.5))
        p = dict(net.named_parameters())
        for k, m in res.masks.items():
            assert m.dtype == bool and np.all(res.weights[k][~m] == 0)
            assert torch.all(p[k].detach()[~torch.from_numpy(m)] == 0)
    assert nat[1] > nat[0]


@pytest.mark.parametrize("method,lo,hi", [("vd", 1e-3, 10.0), ("l0", 1e-2, 1e3)])
def test_lambda_search_reaches_the_target(method, lo, hi):
    """The bisection on log λ finds a penalty whose natural sparsity (VD: log α > 3 pruned; L0: closed
    test-time gates) is within TOL of the target, and records every trial."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        res = search_lambda(_net, _data(), method=method, sparsity=0.6, epochs=20, seed=0, lam_low=lo, lam_high=hi,
                            n_trials=10, tolerance=TOL, batch_size=32)
    assert abs(res.extra["natural_sparsity"] - 0.6) <= TOL and res.extra["converged"]
    assert len(res.extra["search"]) >= 1


def test_regularized_bad_input():
    """A negative λ, an empty search interval or an unknown method are clear errors."""
    with pytest.raises(InvalidArgumentError, match="`lam`"):
        train_regularized(_net(), _data(), method="l0", lam=-1.0, epochs=1, seed=0)
    with pytest.raises(InvalidArgumentError, match="`lam_low`"):
        search_lambda(_net, _data(), method="vd", sparsity=0.5, epochs=1, seed=0, lam_low=1.0, lam_high=0.1)
    with pytest.raises(InvalidArgumentError, match="`method`"):
        train_regularized(_net(), _data(), method="l1", lam=1.0, epochs=1, seed=0)
