"""Train the embedded default model: a bias-free ReLU MLP 64-256-128-10 on scikit-learn's digits.

Run ``python -m ratedist.data.train_digits_mlp`` (needs the ``torch`` extra) to
regenerate ``digits_mlp.safetensors`` deterministically on the CPU.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

SIZES = (64, 256, 128, 10)


def train(seed: int = 0, epochs: int = 60):
    import torch

    from . import digits_split, mlp_accuracy

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    Xtr, Xte, ytr, yte = digits_split()
    layers = []
    for i, (a, b) in enumerate(zip(SIZES[:-1], SIZES[1:])):
        layers.append(torch.nn.Linear(a, b, bias=False))
        if i < len(SIZES) - 2:
            layers.append(torch.nn.ReLU())
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    X, y = torch.from_numpy(Xtr), torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    names = [f"fc{i + 1}.weight" for i in range(len(SIZES) - 1)]
    lin = [m for m in net if isinstance(m, torch.nn.Linear)]
    weights = {n: m.weight.detach().numpy().astype(np.float32) for n, m in zip(names, lin)}
    return weights, mlp_accuracy(weights, Xte, yte)


def main(argv=None) -> int:
    from ..io import save_weights

    weights, acc = train()
    out = Path(__file__).with_name("digits_mlp.safetensors")
    save_weights(out, weights)
    print(f"wrote {out} ({sum(w.size for w in weights.values())} weights), test accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
