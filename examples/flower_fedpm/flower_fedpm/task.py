"""The learning task: a frozen random MLP on scikit-learn's digits, clients train mask scores (FedPM).

Every random choice derives from the run seed: the frozen weights and initial scores from
``run_seed``, a client's data shard from its index k (an even split of a seeded permutation),
its local training from :func:`ratedist.fedpm.client_seed` (run seed, round, k, stream=STREAM_LOCAL).
"""

from __future__ import annotations

import math

import numpy as np

from ratedist.fedpm import STREAM_LOCAL, client_seed

SIZES = (64, 128, 10)
D = sum(a * b for a, b in zip(SIZES[:-1], SIZES[1:]))

_DATA: dict = {}


def digits():
    """(X_train, y_train, X_test, y_test) as torch tensors, features scaled to [0, 1]; cached per process."""
    if not _DATA:
        import torch
        from sklearn.datasets import load_digits

        x, y = load_digits(return_X_y=True)
        perm = np.random.default_rng(0).permutation(len(y))
        x = torch.from_numpy((x[perm] / 16.0).astype(np.float32))
        y = torch.from_numpy(y[perm].astype(np.int64))
        _DATA["split"] = (x[:1400], y[:1400], x[1400:], y[1400:])
    return _DATA["split"]


def shard(node: int, n_nodes: int) -> np.ndarray:
    """Training indices of client ``node`` (IID: an even split of the training set)."""
    return np.array_split(np.arange(1400), n_nodes)[node]


def frozen_weights(run_seed: int):
    """Signed-constant weights ±√(2/fan_in), frozen for the whole run."""
    rng = np.random.default_rng([run_seed, 1])
    return [np.where(rng.random((b, a)) < 0.5, -1.0, 1.0).astype(np.float32) * math.sqrt(2.0 / a)
            for a, b in zip(SIZES[:-1], SIZES[1:])]


def initial_scores(run_seed: int) -> np.ndarray:
    """The first broadcast: scores s ~ N(0, 1), flat float32 (d,)."""
    return np.random.default_rng([run_seed, 2]).standard_normal(D).astype(np.float32)


def _unflat(v, weights):
    import torch

    out, o = [], 0
    for w in weights:
        n = int(np.prod(w.shape))
        out.append(torch.from_numpy(np.ascontiguousarray(v[o:o + n], dtype=np.float32)).reshape(w.shape))
        o += n
    return out


def _forward(x, mats):
    import torch

    for i, w in enumerate(mats):
        x = x @ w.T
        if i < len(mats) - 1:
            x = torch.relu(x)
    return x


def local_update(arrays, *, node, server_round, run_seed, context):
    """Train scores from the broadcast s^g with sampled masks (straight-through); return ``{"theta": θ_k}``."""
    import torch

    cfg = context.run_config
    n_nodes = int(cfg["num-nodes"])
    X, y, _, _ = digits()
    idx = torch.from_numpy(shard(node, n_nodes))
    W = [torch.from_numpy(w) for w in frozen_weights(run_seed)]
    g = torch.Generator().manual_seed(client_seed(run_seed, server_round, node, stream=STREAM_LOCAL))
    s = [t.clone().requires_grad_(True) for t in _unflat(arrays["scores"], W)]
    opt = torch.optim.Adam(s, lr=float(cfg["score-lr"]))
    for _ in range(int(cfg["local-epochs"])):
        perm = idx[torch.randperm(len(idx), generator=g)]
        for i in range(0, len(perm), 32):
            b = perm[i:i + 32]
            mats = []
            for w, sc in zip(W, s):
                th = torch.sigmoid(sc)
                m = th + ((torch.rand(th.shape, generator=g) < th).float() - th).detach()
                mats.append(w * m)
            opt.zero_grad()
            torch.nn.functional.cross_entropy(_forward(X[b], mats), y[b]).backward()
            opt.step()
    theta = np.concatenate([torch.sigmoid(t).detach().numpy().ravel().astype(np.float64) for t in s])
    return {"theta": theta, "num-examples": len(idx)}


def accuracy(theta_g, run_seed: int, server_round: int) -> float:
    """Test accuracy of the network masked by one sample m ~ Bern(θ^g)."""
    import torch

    from ratedist.fedpm import sample_masks

    _, _, Xt, yt = digits()
    W = [torch.from_numpy(w) for w in frozen_weights(run_seed)]
    m = sample_masks(theta_g, seed=client_seed(run_seed, server_round, 0, stream=3)).astype(np.float32)
    mats = [w * mm for w, mm in zip(W, _unflat(m, W))]
    with torch.no_grad():
        return float((_forward(Xt, mats).argmax(1) == yt).float().mean())
