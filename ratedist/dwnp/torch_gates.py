"""Torch twins of :mod:`ratedist.dwnp.gates` (the ``torch`` extra): differentiable FLOPs ``T(a)``,
the regularizer ``R`` and the straight-through Gumbel–sigmoid, plus the gate hypernetwork.

Torch is imported when this module is imported; :mod:`ratedist.dwnp` imports it lazily.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .._validation import check_int, check_positive
from ..errors import InvalidArgumentError, InvalidShapeError
from ..pruning.structured import ConvLayer, _check_layers

__all__ = ["flops_torch", "regularizer_torch", "gumbel_sigmoid_st", "GateHypernetwork"]


def flops_torch(layers: Sequence[ConvLayer], gates: Sequence[torch.Tensor]) -> torch.Tensor:
    """``T(a) = sum_l u_l (sum a_{l-1})(sum a_l)`` as a differentiable scalar tensor.

    ``gates`` holds one tensor per layer of ``layers`` (length ``out``); equal to
    :func:`ratedist.pruning.conv_flops` on the same values.

    >>> from ratedist.pruning import ConvLayer, conv_flops
    >>> net = [ConvLayer(2, 3, 1, 1, 1, 1), ConvLayer(4, 2, 1, 1, 1, 1)]
    >>> float(flops_torch(net, [torch.ones(2), torch.ones(4)])) == conv_flops(net)
    True
    """
    layers = _check_layers(layers)
    gates = list(gates)
    if len(gates) != len(layers):
        raise InvalidShapeError(f"`gates` has {len(gates)} tensors for {len(layers)} layers; give one per layer.")
    total = None
    prev = None
    for i, (l, g) in enumerate(zip(layers, gates)):
        if tuple(g.shape) != (l.out,):
            raise InvalidShapeError(f"`gates`[{i}] has shape {tuple(g.shape)}; layer {i} has {l.out} output channels.")
        cur = g.sum()
        term = l.unit_flops * (float(l.in_) if prev is None else prev) * cur
        total = term if total is None else total + term
        prev = cur
    return total


def regularizer_torch(flops: torch.Tensor, target: float) -> torch.Tensor:
    """``R(x, y) = ln(max(x, y) / min(x, y))`` for a tensor ``x`` and a positive number ``y`` (the
    assumption documented in :func:`ratedist.dwnp.flops_regularizer`).  ``x`` is clamped below at 1
    FLOP so that a network with every gate closed gets a finite, large penalty."""
    y = torch.as_tensor(check_positive("target", target), dtype=flops.dtype)
    x = flops.clamp_min(1.0)
    return torch.log(torch.maximum(x, y) / torch.minimum(x, y))


def gumbel_sigmoid_st(logits: torch.Tensor, *, tau: float = 1.0, noise_scale: float = 1.0,
                      generator: torch.Generator | None = None, noise: torch.Tensor | None = None):
    """Straight-through Gumbel–sigmoid: returns ``(hard, soft)``.

    ``soft = sigmoid((o + s (g1 - g2)) / tau)`` with standard Gumbel ``g1, g2`` and noise scale
    ``s``; ``hard = 1[soft >= 1/2]`` in the forward pass, with the gradient of ``soft`` in the
    backward pass (``hard = soft + (1[soft >= 1/2] - soft).detach()``).  ``noise_scale=0`` (or
    ``noise`` = zeros) gives the deterministic gates ``1[o >= 0]``.

    >>> o = torch.tensor([-1.0, 2.0], requires_grad=True)
    >>> hard, soft = gumbel_sigmoid_st(o, noise_scale=0.0)
    >>> hard.tolist(), bool((torch.autograd.grad(hard.sum(), o)[0] > 0).all())
    ([0.0, 1.0], True)
    """
    t = check_positive("tau", tau)
    if not noise_scale >= 0:
        raise InvalidArgumentError(f"`noise_scale` must be >= 0, got {noise_scale!r}.")
    if noise is None:
        if noise_scale > 0:
            u = torch.rand((2,) + tuple(logits.shape), generator=generator, dtype=logits.dtype)
            tiny = torch.finfo(logits.dtype).tiny
            g = -torch.log((-torch.log(u.clamp_min(tiny))).clamp_min(tiny))  # standard Gumbel
            noise = noise_scale * (g[0] - g[1])
        else:
            noise = torch.zeros_like(logits)
    soft = torch.sigmoid((logits + noise) / t)
    hard = soft + ((soft >= 0.5).to(soft.dtype) - soft).detach()
    return hard, soft


class GateHypernetwork(nn.Module):
    """Per-channel gate logits ``o = HN(Emb(n))`` for ``n = 0`` (the server) .. ``n_devices``.

    A learned embedding per network, a shared two-layer tanh MLP trunk and one linear head per gated
    layer.  The heads' biases start at ``init_logit`` (every gate open) and their weights at zero, so
    training starts from the dense network and the regularizer closes gates.

    Parameters
    ----------
    n_devices : int
        ``N``; the embeddings are indexed 0 (server) .. N.
    channels : sequence of int
        Output channels of every gated layer.
    emb_dim, hidden : int
        Embedding and trunk widths.
    init_logit : float
        Initial logit of every gate.
    """

    def __init__(self, n_devices: int, channels: Sequence[int], *, emb_dim: int = 8, hidden: int = 32,
                 init_logit: float = 3.0):
        super().__init__()
        n = check_int("n_devices", n_devices, minimum=1)
        chans = [check_int(f"channels[{i}]", c, minimum=1) for i, c in enumerate(channels)]
        if not chans:
            raise InvalidArgumentError("`channels` must list at least one gated layer.")
        self.n_devices = n
        self.channels = tuple(chans)
        self.embedding = nn.Embedding(n + 1, check_int("emb_dim", emb_dim, minimum=1))
        # tanh, not ReLU: a dead ReLU unit for one embedding would tie that network's gates to the heads'
        # biases (the same for every network) and no gradient would ever separate them
        self.trunk = nn.Sequential(nn.Linear(emb_dim, check_int("hidden", hidden, minimum=1)), nn.Tanh(),
                                   nn.Linear(hidden, hidden), nn.Tanh())
        self.heads = nn.ModuleList(nn.Linear(hidden, c) for c in chans)
        with torch.no_grad():
            for h in self.heads:
                h.weight.zero_()
                h.bias.fill_(float(init_logit))

    def forward(self, n: int) -> list[torch.Tensor]:
        """Gate logits of network ``n`` (0 = server), one tensor per gated layer."""
        if not 0 <= int(n) <= self.n_devices:
            raise InvalidArgumentError(f"`n` must lie in 0..{self.n_devices} (0 is the server), got {n!r}.")
        z = self.trunk(self.embedding(torch.tensor([int(n)]))).squeeze(0)
        return [h(z) for h in self.heads]
