"""Claims of the sparse-training lectures (docs/theory.md §7; issue 15) for ``ratedist verify``.

Two framework-free claims (the DST mask update is exact selection and keeps the sparsity) and,
when torch is installed (the ``torch`` extra), the quick versions of the lectures' claims on the
bias-free digits MLP 64-256-128-10, trained ``EPOCHS`` epochs with Adam at 90 % or 95 % sparsity
(the full versions are the table ``ratedist repro sparse``).  Trained runs are cached and shared
between the claims.  Noise margin: the binomial standard error of a difference of two
accuracies on the 450 test images (one seed each).
"""

from __future__ import annotations

SECTION = 7.5  # after the allocations of §7: the training-time methods

import functools
import math

import numpy as np

from . import Check, claim
from ..sparse.dst import largest_k, prune_regrow, smallest_k
from ..sparse.masks import layer_kept, random_masks

__all__: list[str] = []

EPOCHS = 8
SEED = 0
N_TEST = 450


@claim("sparse.selection_full_sort",
       "The DST selections (k smallest magnitudes, k largest gradients, one argpartition each) pick exactly the "
       "entries of a stable full sort, ties by index, on 10^5 values with many ties",
       "issue 15 (selection by argpartition, deterministic ties)")
def _selection() -> Check:
    rng = np.random.default_rng(0)
    v = rng.integers(0, 50, size=100_000).astype(np.float32)
    bad = 0
    for k in (1, 999, 50_000, 99_999):
        bad += int(np.setxor1d(smallest_k(v, k), np.argsort(v, kind="stable")[:k]).size)
        bad += int(np.setxor1d(largest_k(v, k), np.lexsort((np.arange(v.size), -v))[:k]).size)
    return Check(measured=float(bad), tolerance=0.0, detail="indices differing from the full-sort reference")


@claim("sparse.dst_constant_sparsity",
       "Ten SET/RigL prune-and-regrow updates on an ERK-initialized 90 %-sparse model keep every layer's count "
       "exactly, and every update moves connections",
       "Evci et al. 2020 (RigL); Mocanu et al. 2018 (SET); issue 15")
def _constant() -> Check:
    rng = np.random.default_rng(1)
    shapes = {"c1": (32, 3, 3, 3), "c2": (64, 32, 3, 3), "fc": (10, 256)}
    w = {k: rng.normal(size=s) for k, s in shapes.items()}
    m = random_masks(w, sparsity=0.9, seed=2, method="erk")
    kept0 = layer_kept(m)
    err = 0
    for t in range(10):
        w = {k: np.where(m[k], v + 0.1 * rng.normal(size=v.shape), 0.0) for k, v in w.items()}
        grow = "random" if t % 2 else {k: rng.normal(size=v.shape) for k, v in w.items()}
        new, grown = prune_regrow(w, m, fraction=0.3, grow=grow, seed=t)
        err += sum(abs(layer_kept(new)[k] - kept0[k]) for k in kept0)
        err += int(sum(g.size for g in grown.values()) == 0)
        m = new
    return Check(measured=float(err), tolerance=0.0, detail="per-layer count changes + updates that moved nothing")


def _have_torch() -> bool:
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


@functools.lru_cache(maxsize=None)
def _run(method: str, sparsity: float, seed: int = SEED) -> float:
    """Test accuracy of the digits MLP trained by ``method`` at ``sparsity`` (cached)."""
    import torch

    from .. import sparse
    from ..data import digits_split

    torch.set_num_threads(1)
    Xtr, Xte, ytr, yte = digits_split()
    X, y = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(64, 256, bias=False), torch.nn.ReLU(),
                              torch.nn.Linear(256, 128, bias=False), torch.nn.ReLU(), torch.nn.Linear(128, 10, bias=False))
    opts = {"lr": 2e-3, "weight_decay": 1e-4, "batch_size": 64}
    data = (X, y)
    if method in ("snip", "snip-reshuffled"):
        g = torch.Generator().manual_seed(10007 + seed)
        idx = torch.randperm(X.shape[0], generator=g)[:256]
        masks = sparse.pai_masks(net, "snip", sparsity=sparsity, batch=(X[idx], y[idx]))
        if method == "snip-reshuffled":
            masks = sparse.reshuffle_masks(masks, seed=seed + 17)
        sparse.train_fixed_mask(net, masks, data, epochs=EPOCHS, seed=seed, **opts)
    elif method == "gmp":
        sparse.gradual_magnitude_pruning(net, data, sparsity=sparsity, epochs=EPOCHS, seed=seed, **opts)
    elif method in ("set", "rigl"):
        sparse.train_dst(net, data, method=method, sparsity=sparsity, epochs=EPOCHS, seed=seed, update_every=10, **opts)
    elif method in ("lth-rewind", "lth-reinit"):
        sparse.lottery_ticket(net, data, sparsity=sparsity, epochs=EPOCHS, seed=seed, rewind_step=23,
                              control=None if method == "lth-rewind" else "reinit", **opts)
    else:  # pragma: no cover - internal names only
        raise ValueError(method)
    with torch.no_grad():
        return float((net(torch.from_numpy(Xte)).argmax(1) == torch.from_numpy(yte)).float().mean())


def _se(pa: float, pb: float) -> float:
    return math.sqrt((pa * (1 - pa) + pb * (1 - pb)) / N_TEST)


if _have_torch():

    @claim("sparse.reshuffle_sanity",
           "Reshuffling a SNIP mask inside each layer before training leaves the digits MLP's accuracy at 90 % "
           "sparsity unchanged within 2 standard errors (pruning at init learns only layer densities)",
           "Frankle et al., ICLR 2021 (the lectures' sanity check); quick version of ratedist repro sparse")
    def _reshuffle() -> Check:
        a, b = _run("snip", 0.9), _run("snip-reshuffled", 0.9)
        return Check(measured=abs(a - b), tolerance=2 * _se(a, b),
                     detail=f"SNIP {a:.4f}, reshuffled {b:.4f}")

    @claim("sparse.gmp_hard_to_beat",
           "Gradual magnitude pruning is within 2 standard errors of (or above) the best of SNIP, SET and RigL on "
           "the digits MLP at 90 % sparsity with the same budget",
           "Gale et al. 2019 (the state of sparsity); quick version of ratedist repro sparse")
    def _gmp() -> Check:
        g = _run("gmp", 0.9)
        others = {m: _run(m, 0.9) for m in ("snip", "set", "rigl")}
        best = max(others, key=others.get)
        gap = others[best] - g
        return Check(measured=gap, tolerance=2 * _se(g, others[best]),
                     detail=f"GMP {g:.4f}; " + ", ".join(f"{m} {v:.4f}" for m, v in others.items()))

    @claim("sparse.rigl_ge_set",
           "RigL is at least SET's accuracy less 2 standard errors on the digits MLP at 90 % sparsity "
           "(equal sparsity, budget and update schedule)",
           "Evci et al. 2020 (RigL); quick version of ratedist repro sparse")
    def _rigl() -> Check:
        r, s = _run("rigl", 0.9), _run("set", 0.9)
        return Check(measured=s - r, tolerance=2 * _se(r, s), detail=f"RigL {r:.4f}, SET {s:.4f}")

    @claim("sparse.lottery_rewind_beats_reinit",
           "At 95 % sparsity the lottery ticket rewound to epoch 1 beats the same mask with random "
           "reinitialization on the digits MLP by more than 2 standard errors",
           "Frankle & Carbin 2019; Frankle et al. 2020 (rewinding); quick version of ratedist repro sparse")
    def _lth() -> Check:
        a, b = _run("lth-rewind", 0.95), _run("lth-reinit", 0.95)
        return Check(measured=a - b, tolerance=2 * _se(a, b), passed=bool(a - b > 2 * _se(a, b)),
                     detail=f"rewound {a:.4f}, reinitialized {b:.4f} (measured: advantage; must exceed tolerance)")
