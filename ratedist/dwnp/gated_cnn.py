"""The gated digits CNN of DWNP (``torch`` extra) and its permanent pruning by channel gates.

conv 3×3 (1→c1), BatchNorm, ReLU, gate; conv 3×3 (c1→c2), BatchNorm, ReLU, gate; max-pool 2;
linear (16·c2→h), ReLU, gate; linear (h→10).  The gates act after normalization and activation
(docs/theory.md §8), so a closed gate removes an output channel of its layer and an input channel of
the next.  For FLOPs the linear layers are convolutions too: ``fc1`` is a 4×4 kernel over the
pooled 4×4 map (one output position) and ``fc2`` a 1×1 one; ``fc2``'s outputs (the classes) are
never gated.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from .._validation import check_int
from ..errors import InvalidArgumentError, InvalidShapeError
from ..pruning.structured import ConvLayer

__all__ = ["GatedCNN", "prune_by_gates"]


class GatedCNN(nn.Module):
    """Digits CNN (1×8×8 inputs, 10 classes) with channel gates after each normalization + activation.

    Parameters
    ----------
    channels : (int, int, int)
        ``(c1, c2, h)``: channels of the two convolutions and width of the hidden linear layer.
    n_classes : int
    """

    def __init__(self, channels: Sequence[int] = (16, 32, 64), *, n_classes: int = 10):
        super().__init__()
        chans = list(channels)
        if len(chans) != 3:
            raise InvalidArgumentError(f"`channels` must be (c1, c2, h), got {channels!r}.")
        c1, c2, h = (check_int(f"channels[{i}]", c, minimum=1) for i, c in enumerate(chans))
        self.channels = (c1, c2, h)
        self.n_classes = check_int("n_classes", n_classes, minimum=1)
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c2)
        self.fc1 = nn.Linear(16 * c2, h)
        self.fc2 = nn.Linear(h, n_classes)

    def layers(self) -> list[ConvLayer]:
        """The FLOPs description of the network (four layers; the last, ``fc2``, is not gated)."""
        c1, c2, h = self.channels
        return [ConvLayer(c1, 1, 3, 3, 8, 8), ConvLayer(c2, c1, 3, 3, 8, 8), ConvLayer(h, c2, 4, 4, 1, 1),
                ConvLayer(self.n_classes, h, 1, 1, 1, 1)]

    def forward(self, x: torch.Tensor, gates: Sequence[torch.Tensor] | None = None) -> torch.Tensor:
        if x.ndim == 2:
            x = x.reshape(-1, 1, 8, 8)
        g = [None, None, None] if gates is None else list(gates)
        if len(g) != 3:
            raise InvalidShapeError(f"`gates` has {len(g)} tensors; give 3 (conv1, conv2, fc1).")
        z = torch.relu(self.bn1(self.conv1(x)))
        if g[0] is not None:
            z = z * g[0][None, :, None, None]
        z = torch.relu(self.bn2(self.conv2(z)))
        if g[1] is not None:
            z = z * g[1][None, :, None, None]
        z = torch.flatten(torch.max_pool2d(z, 2), 1)
        z = torch.relu(self.fc1(z))
        if g[2] is not None:
            z = z * g[2][None, :]
        return self.fc2(z)


def prune_by_gates(net: GatedCNN, gates: Sequence) -> tuple[GatedCNN, list[np.ndarray]]:
    """Permanently remove the channels whose gate is 0: a smaller :class:`GatedCNN` with the kept
    weights, BatchNorm parameters and statistics, computing the same function as ``net`` under the
    (binary) ``gates``.

    Returns the pruned network and, per gated layer, the indices of the kept channels.  A layer
    whose gates are all 0 would disconnect the network: it raises ``InvalidArgumentError``.
    """
    keep = []
    for i, (g, c) in enumerate(zip(gates, net.channels)):
        g = np.asarray(g.detach().cpu().numpy() if isinstance(g, torch.Tensor) else g, dtype=np.float64)
        if g.shape != (c,):
            raise InvalidShapeError(f"`gates`[{i}] has shape {g.shape}; layer {i} has {c} channels.")
        if not np.all((g == 0) | (g == 1)):
            raise InvalidArgumentError(f"`gates`[{i}] must be binary (0 or 1) to prune permanently.")
        k = np.flatnonzero(g)
        if k.size == 0:
            raise InvalidArgumentError(f"`gates`[{i}] closes every channel of layer {i}; keep at least one.")
        keep.append(k)
    if len(keep) != 3:
        raise InvalidShapeError(f"`gates` has {len(keep)} vectors; give 3 (conv1, conv2, fc1).")
    k1, k2, k3 = (torch.from_numpy(k) for k in keep)
    out = GatedCNN((len(k1), len(k2), len(k3)), n_classes=net.n_classes)
    c2 = net.channels[1]
    with torch.no_grad():
        out.conv1.weight.copy_(net.conv1.weight[k1])
        out.conv2.weight.copy_(net.conv2.weight[k2][:, k1])
        for src, dst, k in ((net.bn1, out.bn1, k1), (net.bn2, out.bn2, k2)):
            dst.weight.copy_(src.weight[k])
            dst.bias.copy_(src.bias[k])
            dst.running_mean.copy_(src.running_mean[k])
            dst.running_var.copy_(src.running_var[k])
            dst.num_batches_tracked.copy_(src.num_batches_tracked)
        w1 = net.fc1.weight.reshape(net.fc1.out_features, c2, 16)[k3][:, k2]
        out.fc1.weight.copy_(w1.reshape(len(k3), -1))
        out.fc1.bias.copy_(net.fc1.bias[k3])
        out.fc2.weight.copy_(net.fc2.weight[:, k3])
        out.fc2.bias.copy_(net.fc2.bias)
    out.train(net.training)
    return out, keep
