"""Masks shared by every sparse training method: checks, random masks, reshuffles, and the torch binding.

A mask set is a ``Mapping[str, ndarray of bool]`` (``True`` = kept) keyed like the weights
(``module.named_parameters()`` names for a torch model).  The framework-free helpers
(:func:`check_masks`, :func:`mask_sparsity`, :func:`random_masks`, :func:`reshuffle_masks`)
work on NumPy.  :class:`MaskedModule` binds a mask set to an ``nn.Module`` and keeps the
pruned weights at exactly zero through training: it zeroes the weights, their gradients and
every per-parameter optimizer state tensor (Adam's moments, SGD's momentum) at the pruned
positions; :func:`train_masked` is the training loop every method of :mod:`ratedist.sparse`
uses (the ``torch`` extra).

Pruned weights stay zero because, with the gradient and the optimizer state zero at a
position, neither Adam (with L2 or decoupled weight decay) nor SGD with momentum moves a
zero weight; the weights are re-zeroed after every step anyway, so that a custom optimizer
cannot revive them either.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._validation import _to_numpy, check_choice, check_int
from ..errors import BackendUnavailableError, InvalidArgumentError, InvalidShapeError
from ..pruning.allocation import _check_sparsity, _preview, prune

__all__ = [
    "check_sparsity",
    "check_masks",
    "mask_sparsity",
    "layer_kept",
    "random_masks",
    "reshuffle_masks",
    "MaskedModule",
    "train_masked",
    "module_weights",
]


def check_sparsity(sparsity) -> float:
    """Validate a sparsity (the fraction of weights removed) in [0, 1).

    >>> check_sparsity(0.9)
    0.9
    """
    return _check_sparsity(sparsity)


def check_masks(masks: Mapping[str, Any], weights: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Validate a mask set (binary arrays; with ``weights``: known keys and matching shapes).

    Returns a dict of NumPy ``bool`` arrays.

    >>> check_masks({"w": np.array([1, 0, 1])})["w"].tolist()
    [True, False, True]
    """
    if not isinstance(masks, Mapping) or not masks:
        raise InvalidArgumentError(
            f"`masks` must be a non-empty mapping of tensor names to boolean arrays, got {type(masks).__name__}."
        )
    out = {}
    for k, m in masks.items():
        a = np.asarray(_to_numpy(m))
        if a.dtype != bool:
            if a.dtype.kind not in "fiub" or not np.all((a == 0) | (a == 1)):
                raise InvalidArgumentError(f"`masks`[{k!r}] must be binary (bool or 0/1), got dtype {a.dtype}.")
            a = a.astype(bool)
        out[k] = a
    if weights is not None:
        extra = [k for k in out if k not in weights]
        if extra:
            raise InvalidArgumentError(
                f"`masks` has keys {_preview(extra)} that are not weights (weights: {_preview(list(weights))})."
            )
        for k, a in out.items():
            if a.shape != tuple(np.shape(weights[k])):
                raise InvalidShapeError(f"`masks`[{k!r}] has shape {a.shape}, but the weight has shape "
                                        f"{tuple(np.shape(weights[k]))}.")
    return out


def mask_sparsity(masks: Mapping[str, Any]) -> float:
    """Fraction of pruned entries over every tensor of the mask set.

    >>> mask_sparsity({"a": np.array([True, False]), "b": np.array([False, False])})
    0.75
    """
    m = check_masks(masks)
    n = sum(a.size for a in m.values())
    return 1.0 - sum(int(np.count_nonzero(a)) for a in m.values()) / n


def layer_kept(masks: Mapping[str, Any]) -> dict[str, int]:
    """Kept count per tensor.

    >>> layer_kept({"a": np.array([True, False, True])})
    {'a': 2}
    """
    return {k: int(np.count_nonzero(a)) for k, a in check_masks(masks).items()}


def random_masks(weights: Mapping[str, Any], *, sparsity: float, seed: int, method: str = "uniform",
                 layers=None) -> dict[str, np.ndarray]:
    """Random masks at a global sparsity, with the per-layer counts of an allocation.

    Parameters
    ----------
    weights : Mapping[str, array]
        Only the shapes are used.
    sparsity : float
        Global sparsity in [0, 1) over the selected tensors.
    seed : int
        Seed of the positions (same seed, same masks).
    method : {"uniform", "er", "erk", "global"}
        Per-layer counts: every layer at ``sparsity`` (``"uniform"``), Erdős–Rényi(-Kernel)
        densities (``"er"``, ``"erk"``, the SET and RigL initializations), or one random
        global draw (``"global"``).
    layers : str or list of str, optional
        Tensors to prune (patterns as in :func:`ratedist.pruning.prune`); default: ``ndim >= 2``.

    Returns
    -------
    dict of str to ndarray of bool
        One mask per tensor of ``weights`` (unselected tensors all True); exactly
        ``round((1 - S) N)`` kept among the ``N`` selected weights.

    Examples
    --------
    >>> w = {"fc1": np.zeros((30, 20)), "fc2": np.zeros((10, 30))}
    >>> m = random_masks(w, sparsity=0.9, seed=0, method="erk")
    >>> int(m["fc1"].sum() + m["fc2"].sum())
    90
    """
    check_choice("method", method, ("uniform", "er", "erk", "global"))
    s = check_sparsity(sparsity)
    seed = check_int("seed", seed, minimum=0)
    shapes = {k: tuple(np.shape(v)) for k, v in weights.items()} if isinstance(weights, Mapping) else None
    if not shapes:
        raise InvalidArgumentError("`weights` must be a non-empty mapping of tensor names to arrays.")
    rng = np.random.default_rng(seed)
    fake = {k: np.zeros(sh, dtype=np.float32) for k, sh in shapes.items()}
    scores = {k: rng.random(sh) for k, sh in shapes.items()}
    return prune(fake, method=method, sparsity=s, layers=layers, scores=scores).masks


def reshuffle_masks(masks: Mapping[str, Any], *, seed: int, keys=None) -> dict[str, np.ndarray]:
    """Permute every mask's entries at random inside its own tensor (the layer-wise reshuffle).

    Keeps each layer's kept count and forgets which weights were kept: the sanity check of
    Frankle et al. (ICLR 2021) that pruning-at-initialization masks carry only their per-layer
    densities.  ``keys`` (default: every tensor that prunes something) are the tensors reshuffled.

    >>> m = {"a": np.array([True, True, False, False, False]), "b": np.ones(3, bool)}
    >>> r = reshuffle_masks(m, seed=1)
    >>> int(r["a"].sum()), r["b"].tolist()
    (2, [True, True, True])
    """
    m = check_masks(masks)
    seed = check_int("seed", seed, minimum=0)
    rng = np.random.default_rng(seed)
    keys = [k for k, a in m.items() if not a.all()] if keys is None else list(keys)
    out = {k: a.copy() for k, a in m.items()}
    for k in keys:
        if k not in m:
            raise InvalidArgumentError(f"`keys` names {k!r}, which is not in `masks` ({_preview(list(m))}).")
        out[k] = rng.permutation(m[k].reshape(-1)).reshape(m[k].shape)
    return out


# ----------------------------------------------------------------------------- torch


def _torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailableError("ratedist.sparse training needs torch: pip install 'ratedist[torch]'.") from None
    return torch


def module_weights(module) -> dict[str, np.ndarray]:
    """The module's parameters as NumPy copies (their own dtype), keyed by ``named_parameters()``."""
    _torch()
    return {k: p.detach().cpu().numpy().copy() for k, p in module.named_parameters()}


class MaskedModule:
    """A mask set bound to an ``nn.Module``: keeps pruned weights, gradients and optimizer state at zero.

    Parameters
    ----------
    module : torch.nn.Module
    masks : Mapping[str, array of bool]
        Keys are parameter names of ``module`` (``module.named_parameters()``); parameters
        without a mask are dense.  A key that is not a parameter, or a shape that differs,
        raises :class:`~ratedist.errors.InvalidArgumentError` naming the keys.

    Examples
    --------
    >>> import torch
    >>> net = torch.nn.Linear(3, 2, bias=False)
    >>> mm = MaskedModule(net, {"weight": np.array([[1, 0, 0], [0, 1, 1]], bool)})
    >>> int((net.weight == 0).sum())
    3
    """

    def __init__(self, module, masks: Mapping[str, Any]):
        torch = _torch()
        if not isinstance(module, torch.nn.Module):
            raise InvalidArgumentError(f"`module` must be a torch.nn.Module, got {type(module).__name__}.")
        self.module = module
        self.params = dict(module.named_parameters())
        self.masks: dict = {}
        self.set_masks(masks)

    def set_masks(self, masks: Mapping[str, Any], optimizer=None) -> None:
        """Replace the masks; zero newly pruned weights (and their optimizer state, when given)."""
        torch = _torch()
        m = check_masks(masks)
        extra = [k for k in m if k not in self.params]
        if extra:
            raise InvalidArgumentError(
                f"`masks` keys {_preview(extra)} are not parameters of `module`; its parameters are "
                f"{_preview(list(self.params))}. Key the masks by module.named_parameters() names."
            )
        tm = {}
        for k, a in m.items():
            p = self.params[k]
            if a.shape != tuple(p.shape):
                raise InvalidArgumentError(f"`masks`[{k!r}] has shape {a.shape}, but parameter {k!r} of `module` "
                                           f"has shape {tuple(p.shape)}.")
            tm[k] = torch.from_numpy(np.ascontiguousarray(a)).to(p.device)
        self.masks = tm
        self.apply()
        if optimizer is not None:
            self.mask_optimizer_state(optimizer)

    def numpy_masks(self) -> dict[str, np.ndarray]:
        """The current masks as NumPy ``bool`` arrays."""
        return {k: v.cpu().numpy().copy() for k, v in self.masks.items()}

    def apply(self) -> None:
        """Zero the pruned weights in place."""
        torch = _torch()
        with torch.no_grad():
            for k, m in self.masks.items():
                self.params[k].mul_(m)

    def mask_grads(self) -> None:
        """Zero the gradients of pruned weights in place."""
        for k, m in self.masks.items():
            g = self.params[k].grad
            if g is not None:
                g.mul_(m)

    def mask_optimizer_state(self, optimizer) -> None:
        """Zero every optimizer state tensor shaped like its parameter at the pruned positions."""
        torch = _torch()
        with torch.no_grad():
            for k, m in self.masks.items():
                st = optimizer.state.get(self.params[k], {})
                for v in st.values():
                    if torch.is_tensor(v) and tuple(v.shape) == tuple(m.shape):
                        v.mul_(m)

    def sparsity(self) -> float:
        """Fraction of zeros among the masked parameters' masks."""
        n = sum(int(m.numel()) for m in self.masks.values())
        return 1.0 - sum(int(m.sum()) for m in self.masks.values()) / n


def _make_optimizer(torch, module, optimizer: str, lr: float, weight_decay: float, momentum: float):
    check_choice("optimizer", optimizer, ("adam", "sgd"))
    if optimizer == "adam":
        return torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    return torch.optim.SGD(module.parameters(), lr=lr, weight_decay=weight_decay, momentum=momentum)


def train_masked(module, masks: Mapping[str, Any] | None, data, *, epochs: int, seed: int, lr: float = 2e-3,
                 batch_size: int = 64, optimizer: str = "adam", weight_decay: float = 1e-4, momentum: float = 0.9,
                 loss_fn: Callable | None = None,
                 callback: Callable[[int, MaskedModule | None, Any], None] | None = None) -> dict:
    """Train ``module`` on ``data`` with the pruned weights held at zero.

    Parameters
    ----------
    module : torch.nn.Module
    masks : Mapping[str, array of bool] or None
        ``None`` trains densely.
    data : tuple (X, y) of torch tensors
        Inputs and integer labels; minibatches are drawn by a seeded permutation every epoch.
    epochs : int
        Passes over ``data`` (``>= 0``).
    seed : int
        Seed of the minibatch order (same seed, same run).
    lr, batch_size, optimizer, weight_decay, momentum
        The optimizer (``"adam"`` or ``"sgd"``) and its settings.
    loss_fn : callable, optional
        ``loss_fn(module, X_batch, y_batch) -> scalar``; default cross-entropy of ``module(X)``.
    callback : callable, optional
        ``callback(step, masked, optimizer)`` after every optimizer step (``step`` counts from 1);
        the dynamic methods update the masks here through ``masked.set_masks(..., optimizer)``.

    Returns
    -------
    dict
        ``{"steps": int, "masked": MaskedModule or None, "optimizer": the optimizer}``.
    """
    torch = _torch()
    epochs = check_int("epochs", epochs, minimum=0)
    seed = check_int("seed", seed, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    X, y = data
    masked = MaskedModule(module, masks) if masks is not None else None
    opt = _make_optimizer(torch, module, optimizer, lr, weight_decay, momentum)
    if loss_fn is None:
        def loss_fn(mod, xb, yb):
            return torch.nn.functional.cross_entropy(mod(xb), yb)
    gen = torch.Generator().manual_seed(seed)
    n = int(X.shape[0])
    step = 0
    module.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            opt.zero_grad(set_to_none=False)
            loss_fn(module, X[idx], y[idx]).backward()
            if masked is not None:
                masked.mask_grads()
            opt.step()
            if masked is not None:
                masked.apply()
                masked.mask_optimizer_state(opt)
            step += 1
            if callback is not None:
                callback(step, masked, opt)
    module.eval()
    return {"steps": step, "masked": masked, "optimizer": opt}
