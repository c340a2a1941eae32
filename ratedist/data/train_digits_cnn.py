"""Train the embedded digits CNN: two 3×3 convolutions, a 2×2 max-pool and two linear layers.

Run ``python -m ratedist.data.train_digits_cnn`` (needs the ``torch`` extra) to
regenerate ``digits_cnn.safetensors`` deterministically on the CPU (a few seconds).

The network, on the 8×8 digits images (one channel)::

    conv1 1→16, 3×3, pad 1, bias  → ReLU      (16×8×8)
    conv2 16→32, 3×3, pad 1, bias → ReLU      (32×8×8)
    max-pool 2×2, stride 2                    (32×4×4 = 512)
    fc1 512→48, bias → ReLU
    fc2 48→10, bias                           (logits)

29,914 parameters in 8 tensors; the NumPy twin is :func:`ratedist.data.cnn_forward`.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

CONV = ((1, 16), (16, 32))  # (in, out) channels of the 3×3 convolutions
FC = (512, 48, 10)
NAMES = ("conv1", "conv2", "fc1", "fc2")


def build(torch):
    """The untrained network, as a ``torch.nn.Sequential`` whose parametrised layers follow :data:`NAMES`."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(CONV[0][0], CONV[0][1], 3, padding=1), nn.ReLU(),
        nn.Conv2d(CONV[1][0], CONV[1][1], 3, padding=1), nn.ReLU(),
        nn.MaxPool2d(2), nn.Flatten(),
        nn.Linear(FC[0], FC[1]), nn.ReLU(),
        nn.Linear(FC[1], FC[2]),
    )


def weights_of(net) -> dict[str, np.ndarray]:
    """``{"conv1.weight", "conv1.bias", ..., "fc2.bias"}`` as float32 arrays, in layer order (torch layouts)."""
    import torch

    layers = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    out = {}
    for name, m in zip(NAMES, layers):
        out[f"{name}.weight"] = m.weight.detach().numpy().astype(np.float32)
        out[f"{name}.bias"] = m.bias.detach().numpy().astype(np.float32)
    return out


def load_into(net, weights) -> None:
    """Copy a weights mapping (as :func:`weights_of` returns) into ``net`` in place."""
    import torch

    layers = [m for m in net if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear))]
    with torch.no_grad():
        for name, m in zip(NAMES, layers):
            m.weight.copy_(torch.from_numpy(np.asarray(weights[f"{name}.weight"], dtype=np.float32)))
            m.bias.copy_(torch.from_numpy(np.asarray(weights[f"{name}.bias"], dtype=np.float32)))


def train(seed: int = 0, epochs: int = 40):
    """Train on ``digits_split()``'s training part; return ``(weights, test accuracy)``."""
    import torch

    from . import cnn_accuracy, digits_split

    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    Xtr, Xte, ytr, yte = digits_split()
    net = build(torch)
    opt = torch.optim.Adam(net.parameters(), lr=2e-3, weight_decay=1e-4)
    X, y = torch.from_numpy(Xtr).reshape(-1, 1, 8, 8), torch.from_numpy(ytr)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(X), generator=g)
        for i in range(0, len(X), 64):
            idx = perm[i:i + 64]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            opt.step()
    weights = weights_of(net)
    return weights, cnn_accuracy(weights, Xte, yte)


def main(argv=None) -> int:
    import torch

    from ..io import save_weights

    torch.set_num_threads(1)  # same bytes on any machine: no thread-count-dependent reductions
    weights, acc = train()
    out = Path(__file__).with_name("digits_cnn.safetensors")
    save_weights(out, weights)
    print(f"wrote {out} ({sum(w.size for w in weights.values())} parameters), test accuracy {acc:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
