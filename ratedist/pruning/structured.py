"""Structured (channel) pruning of convolutional networks to a FLOPs target (docs/theory.md §8).

A network is described as a list of :class:`ConvLayer` (one per convolution, in
order, each feeding the next).  A gate vector ``a_l`` (one entry per output
channel of layer ``l``) masks the output channels of layer ``l`` and therefore
the input channels of layer ``l + 1``.  The FLOPs counter

``T(a) = sum_l kh_l kw_l H_l W_l (sum a_{l-1}) (sum a_l) / groups_l``

(multiply-accumulates of the gated network, the input channels of layer 1
fixed) is bilinear in adjacent gates, equals ``T_total`` at ``a = 1`` and is
monotone in every gate: the building block of device-wise federated pruning.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._validation import _to_numpy, check_finite_scalar
from ..errors import InvalidArgumentError, InvalidShapeError, UnreachableTargetError

__all__ = ["ConvLayer", "conv_flops", "conv_flops_total", "ChannelPruneResult", "prune_channels"]


@dataclass(frozen=True)
class ConvLayer:
    """One convolution: ``out`` and ``in_`` channels, kernel ``kh × kw``, output map ``h_out × w_out``.

    The weight of the layer has shape ``(out, in_ / groups, kh, kw)``.
    """

    out: int
    in_: int
    kh: int = 1
    kw: int = 1
    h_out: int = 1
    w_out: int = 1
    groups: int = 1

    def __post_init__(self):
        for name in ("out", "in_", "kh", "kw", "h_out", "w_out", "groups"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise InvalidArgumentError(f"ConvLayer `{name}` must be a positive integer, got {v!r}.")

    @property
    def unit_flops(self) -> float:
        """FLOPs per (input channel, output channel) pair: ``kh kw H W / groups``."""
        return self.kh * self.kw * self.h_out * self.w_out / self.groups


def _check_layers(layers) -> list[ConvLayer]:
    layers = list(layers)
    if not layers or not all(isinstance(l, ConvLayer) for l in layers):
        raise InvalidArgumentError("`layers` must be a non-empty list of ConvLayer (out, in_, kh, kw, h_out, w_out, groups).")
    for i in range(1, len(layers)):
        if layers[i].in_ != layers[i - 1].out:
            raise InvalidShapeError(
                f"`layers`[{i}] has {layers[i].in_} input channels but layer {i - 1} outputs {layers[i - 1].out}; "
                "consecutive layers must chain."
            )
    return layers


def _check_gates(gates, layers) -> list[np.ndarray]:
    if gates is None:
        return [np.ones(l.out) for l in layers]
    gates = list(gates)
    if len(gates) != len(layers):
        raise InvalidShapeError(f"`gates` has {len(gates)} vectors for {len(layers)} layers; give one per layer.")
    out = []
    for i, (g, l) in enumerate(zip(gates, layers)):
        g = np.asarray(_to_numpy(g), dtype=np.float64)
        if g.shape != (l.out,):
            raise InvalidShapeError(f"`gates`[{i}] has shape {g.shape}; layer {i} has {l.out} output channels.")
        if not np.all(np.isfinite(g)) or np.any((g < 0) | (g > 1)):
            raise InvalidArgumentError(f"`gates`[{i}] must lie in [0, 1] (channel gates).")
        out.append(g)
    return out


def conv_flops(layers: Sequence[ConvLayer], gates: Sequence[Any] | None = None) -> float:
    """FLOPs (multiply-accumulates) of the gated network ``T(a)``.

    Parameters
    ----------
    layers : list of ConvLayer
    gates : list of array, optional
        One vector in [0, 1]^out per layer (binary for a real sub-network; soft
        values give the bilinear relaxation).  Default: all ones, ``T_total``.

    Returns
    -------
    float
        ``sum_l kh kw H W (sum a_{l-1})(sum a_l) / groups``, with ``sum a_0`` the
        (fixed) input channels of layer 1.

    >>> net = [ConvLayer(8, 3, 3, 3, 4, 4), ConvLayer(16, 8, 3, 3, 2, 2)]
    >>> conv_flops(net), conv_flops(net, [np.r_[np.ones(4), np.zeros(4)], np.ones(16)])
    (8064.0, 4032.0)
    """
    layers = _check_layers(layers)
    gates = _check_gates(gates, layers)
    total = 0.0
    prev = float(layers[0].in_)
    for l, g in zip(layers, gates):
        cur = float(g.sum())
        total += l.unit_flops * prev * cur
        prev = cur
    return total


def conv_flops_total(layers: Sequence[ConvLayer]) -> float:
    """Dense FLOPs ``T_total = T(1)``."""
    return conv_flops(layers)


@dataclass(frozen=True)
class ChannelPruneResult:
    """Channel gates meeting a FLOPs target.

    Attributes
    ----------
    gates : list of ndarray of bool
        Kept output channels of every layer.
    flops, flops_total, target_flops : float
        Kept FLOPs ``T(a)``, dense ``T_total`` and the target ``ratio * T_total``;
        ``flops <= target_flops``.
    slack : float
        ``target_flops - flops >= 0``, how far below the target the greedy stopped
        (at most the FLOPs saved by the last removed channel).
    n_removed : int
        Channels removed.
    """

    gates: list
    flops: float
    flops_total: float
    target_flops: float
    slack: float
    n_removed: int


def prune_channels(layers: Sequence[ConvLayer], weights: Sequence[Any] | Mapping[str, Any], *, flops_ratio: float,
                   protect: Sequence[int] = ()) -> ChannelPruneResult:
    """Greedy channel pruning to a kept-FLOPs ratio.

    Repeatedly removes the output channel with the smallest L1 norm per FLOP
    saved (the FLOPs saved depend on the current gates of the neighbours, so
    they are recomputed each step) until ``T(a) <= flops_ratio * T_total``.
    Every layer keeps at least one channel; layers listed in ``protect`` keep all.

    Parameters
    ----------
    layers : list of ConvLayer
    weights : list of array or mapping
        One weight per layer, shape ``(out, in_ / groups, kh, kw)`` (a mapping is
        taken in its order).
    flops_ratio : float
        Kept-FLOPs ratio ``p`` in (0, 1].
    protect : sequence of int
        Indices of layers whose output channels are never pruned.

    Returns
    -------
    ChannelPruneResult

    Raises
    ------
    UnreachableTargetError
        If even one channel per (unprotected) layer exceeds the target.

    >>> net = [ConvLayer(4, 3, 3, 3, 8, 8), ConvLayer(4, 4, 3, 3, 8, 8)]
    >>> w = [np.arange(1, 5)[:, None, None, None] * np.ones((4, 3, 3, 3)), np.ones((4, 4, 3, 3))]
    >>> r = prune_channels(net, w, flops_ratio=0.5)
    >>> r.flops <= r.target_flops, [g.astype(int).tolist() for g in r.gates]
    (True, [[0, 0, 1, 1], [1, 1, 1, 1]])
    """
    layers = _check_layers(layers)
    p = check_finite_scalar("flops_ratio", flops_ratio)
    if not 0.0 < p <= 1.0:
        raise InvalidArgumentError(f"`flops_ratio` must lie in (0, 1] (kept fraction of FLOPs), got {flops_ratio!r}.")
    ws = list(weights.values()) if isinstance(weights, Mapping) else list(weights)
    if len(ws) != len(layers):
        raise InvalidShapeError(f"`weights` has {len(ws)} tensors for {len(layers)} layers; give one per layer.")
    norms = []
    for i, (w, l) in enumerate(zip(ws, layers)):
        w = np.asarray(_to_numpy(w), dtype=np.float64)
        if w.ndim == 0 or w.shape[0] != l.out:
            raise InvalidShapeError(f"`weights`[{i}] has shape {w.shape}; layer {i} has {l.out} output channels (axis 0).")
        if not np.all(np.isfinite(w)):
            raise InvalidArgumentError(f"`weights`[{i}] contains NaN or infinite values.")
        norms.append(np.abs(w.reshape(l.out, -1)).sum(axis=1))
    protect = set(int(i) for i in protect)
    total = conv_flops(layers)
    target = p * total
    L = len(layers)
    counts = np.array([float(l.out) for l in layers])
    unit = np.array([l.unit_flops for l in layers])
    fixed_in = float(layers[0].in_)
    # per layer: channels in ascending L1 order (ties: lower index first); pointer to the next one
    order = [np.argsort(n, kind="stable") for n in norms]
    ptr = np.zeros(L, dtype=np.int64)
    gates = [np.ones(l.out, dtype=bool) for l in layers]

    def flops_now() -> float:
        prev = np.concatenate([[fixed_in], counts[:-1]])
        return float((unit * prev * counts).sum())

    cur = flops_now()
    removed = 0
    while cur > target:
        best, best_ratio, best_saved = -1, np.inf, 0.0
        for i in range(L):
            if i in protect or counts[i] <= 1:
                continue
            prev = fixed_in if i == 0 else counts[i - 1]
            saved = unit[i] * prev + (unit[i + 1] * counts[i + 1] if i + 1 < L else 0.0)
            if saved <= 0:
                continue
            ratio = norms[i][order[i][ptr[i]]] / saved
            if ratio < best_ratio:
                best, best_ratio, best_saved = i, ratio, saved
        if best < 0:
            raise UnreachableTargetError(
                f"`flops_ratio`={p!r} is unreachable: with one channel per prunable layer the network still "
                f"costs {cur:.6g} FLOPs ({cur / total:.4g} of T_total); the smallest reachable ratio is {cur / total:.6g}."
            )
        gates[best][order[best][ptr[best]]] = False
        ptr[best] += 1
        counts[best] -= 1
        removed += 1
        cur -= best_saved
    cur = conv_flops(layers, gates)  # recount exactly from the gates
    return ChannelPruneResult(gates=gates, flops=cur, flops_total=total, target_flops=target,
                              slack=target - cur, n_removed=removed)
