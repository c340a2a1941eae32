"""Framework-free reference of DWNP's primitives (docs/theory.md §8): FLOPs of gated networks, the
FLOPs regularizer ``R`` and the straight-through Gumbel–sigmoid.

The FLOPs counter is :func:`ratedist.pruning.conv_flops` (bilinear in adjacent gates); this module
adds its gradient, the regularizer and the gate sampler, in NumPy.  The torch twins in
:mod:`ratedist.dwnp.torch_gates` are tested against these.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import check_positive
from ..errors import InvalidArgumentError, InvalidShapeError
from ..pruning.structured import ConvLayer, _check_gates, _check_layers

__all__ = ["flops_gradient", "flops_regularizer", "GumbelSigmoidSample", "gumbel_sigmoid", "combine_gates"]


def flops_gradient(layers: Sequence[ConvLayer], gates: Sequence[Any] | None = None) -> list[np.ndarray]:
    """Gradient of the gated FLOPs ``T(a)`` with respect to every gate.

    Parameters
    ----------
    layers : list of ConvLayer
    gates : list of array, optional
        One vector in [0, 1]^out per layer; default all ones.

    Returns
    -------
    list of ndarray
        ``dT/da_{l,c} = u_l S_{l-1} + u_{l+1} S_{l+1}`` with ``u_l`` the layer's FLOPs per channel
        pair and ``S_l = sum_c a_{l,c}`` (``S_0`` the fixed input channels); non-negative, so ``T``
        is monotone in every gate.

    >>> net = [ConvLayer(2, 3, 1, 1, 1, 1), ConvLayer(4, 2, 1, 1, 1, 1)]
    >>> [g.tolist() for g in flops_gradient(net)]
    [[7.0, 7.0], [2.0, 2.0, 2.0, 2.0]]
    """
    layers = _check_layers(layers)
    gates = _check_gates(gates, layers)
    sums = [float(layers[0].in_)] + [float(g.sum()) for g in gates]
    out = []
    for i, (l, g) in enumerate(zip(layers, gates)):
        d = l.unit_flops * sums[i]
        if i + 1 < len(layers):
            d += layers[i + 1].unit_flops * sums[i + 2]
        out.append(np.full(g.shape, d))
    return out


def flops_regularizer(flops: float, target: float) -> float:
    """``R(x, y) = ln(max(x, y) / min(x, y)) = |ln x - ln y|`` (nats).

    The DWNP papers do not give ``R``; this symmetric log-ratio is ratedist's assumption: it is
    zero exactly on target, penalises being a factor ``k`` too large as much as a factor ``k`` too
    small, and its gradient ``sign(x - y) / x`` does not vanish near the target.

    Parameters
    ----------
    flops, target : float
        Positive FLOPs counts ``x`` (of the gated network) and ``y`` (the target ``p T_total``).

    >>> flops_regularizer(50.0, 100.0) == flops_regularizer(200.0, 100.0), flops_regularizer(3.0, 3.0)
    (True, 0.0)
    """
    x = check_positive("flops", flops)
    y = check_positive("target", target)
    return float(np.log(max(x, y) / min(x, y)))


@dataclass(frozen=True)
class GumbelSigmoidSample:
    """One straight-through Gumbel–sigmoid draw.

    Attributes
    ----------
    hard : ndarray of float
        Gates in {0, 1} used by the forward pass, ``1[soft >= 1/2]``.
    soft : ndarray
        ``sigmoid((logits + g1 - g2) / tau)``.
    grad : ndarray
        ``d soft / d logits = soft (1 - soft) / tau``, the gradient the backward pass uses for ``hard``.
    noise : ndarray
        ``g1 - g2`` (a logistic variable: the difference of two standard Gumbel draws).
    """

    hard: np.ndarray
    soft: np.ndarray
    grad: np.ndarray
    noise: np.ndarray


def gumbel_sigmoid(logits: Any, *, tau: float = 1.0, rng: np.random.Generator | int | None = None,
                   noise: Any = None) -> GumbelSigmoidSample:
    """Straight-through Gumbel–sigmoid gates (hard forward, soft gradient).

    Parameters
    ----------
    logits : array
        Gate logits ``o``.
    tau : float
        Temperature > 0.
    rng : numpy Generator or int, optional
        Source of the Gumbel noises (ignored when ``noise`` is given).
    noise : array, optional
        ``g1 - g2`` given explicitly (same shape as ``logits``); ``0`` gives the deterministic
        gates ``1[o >= 0]`` used for pruning.

    Returns
    -------
    GumbelSigmoidSample

    >>> s = gumbel_sigmoid(np.array([-2.0, 0.5]), noise=np.zeros(2))
    >>> s.hard.tolist(), bool(np.all(s.grad > 0))
    ([0.0, 1.0], True)
    """
    o = np.asarray(logits, dtype=np.float64)
    if not np.all(np.isfinite(o)):
        raise InvalidArgumentError("`logits` contains NaN or infinite values.")
    t = check_positive("tau", tau)
    if noise is None:
        gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        noise = gen.gumbel(size=o.shape) - gen.gumbel(size=o.shape)
    noise = np.asarray(noise, dtype=np.float64)
    if noise.shape != o.shape:
        raise InvalidShapeError(f"`noise` has shape {noise.shape}; `logits` has {o.shape}.")
    z = (o + noise) / t
    soft = 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow
    hard = (soft >= 0.5).astype(np.float64)
    return GumbelSigmoidSample(hard=hard, soft=soft, grad=soft * (1.0 - soft) / t, noise=noise)


def combine_gates(server: Sequence[Any], device: Sequence[Any]) -> list[np.ndarray]:
    """Device sub-network gates ``a⁰ ⊙ aⁿ`` (elementwise product, layer by layer).

    >>> [g.tolist() for g in combine_gates([np.array([1., 1, 0])], [np.array([1., 0, 1])])]
    [[1.0, 0.0, 0.0]]
    """
    server, device = list(server), list(device)
    if len(server) != len(device):
        raise InvalidShapeError(f"`server` has {len(server)} gate vectors and `device` {len(device)}; give one per layer.")
    out = []
    for i, (a, b) in enumerate(zip(server, device)):
        a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
        if a.shape != b.shape:
            raise InvalidShapeError(f"`device`[{i}] has shape {b.shape}; `server`[{i}] has {a.shape}.")
        out.append(a * b)
    return out

