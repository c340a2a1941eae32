"""Pruning at initialization: SNIP, GraSP, SynFlow (iterative, data-free), FORCE and random masks.

Each method scores the weights of an untrained ``nn.Module`` (the ``torch`` extra) with the
framework-free scores of :mod:`ratedist.pruning.scores` and the gradients and Hessian products
of :mod:`ratedist.pruning.torch_adapter`, then keeps the top ``round((1 - S) N)`` by one global
cut (:func:`ratedist.pruning.prune`, exact counts, ties by position).  The network is then
trained with the mask fixed (:func:`train_fixed_mask`).

* ``snip``    ``|g ⊙ w|`` on one batch (Lee et al. 2019);
* ``grasp``   removes the largest ``-(H g) ⊙ w`` (Wang et al. 2020);
* ``synflow`` ``|θ ⊙ ∂R/∂θ|`` with ``R = 1ᵀ f(1; |θ|)``, recomputed over ``iterations`` rounds
  on the exponential path ``1 - (1 - S)^(i / iterations)`` (Tanaka et al. 2020; data-free);
* ``force``   iterated SNIP on the pruned network over ``iterations`` steps (de Jorge et al. 2021);
* ``random``  positions drawn at random with the per-layer counts of ``allocation``.

The sanity check of Frankle et al. (ICLR 2021) is :func:`ratedist.sparse.masks.reshuffle_masks`
applied to any of these masks before training.  The module's weights are left unchanged by
scoring.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._validation import check_choice, check_int
from ..errors import InvalidArgumentError
from ..pruning import scores as _scores
from ..pruning import torch_adapter as _ta
from ..pruning.allocation import prune, select_layers
from .imp import SparseResult, _load, _sparsity_over
from .masks import _torch, check_sparsity, module_weights, random_masks, train_masked

__all__ = ["PAI_METHODS", "pai_scores", "pai_masks", "train_fixed_mask"]

PAI_METHODS = ("snip", "grasp", "synflow", "force", "random")


def _default_loss(module, batch):
    import torch

    return torch.nn.functional.cross_entropy(module(batch[0]), batch[1])


def pai_scores(module, method: str, *, batch=None, loss_fn: Callable | None = None,
               input_shape: tuple | None = None) -> dict[str, np.ndarray]:
    """One-shot saliency of every parameter at the module's current weights (larger is kept).

    Parameters
    ----------
    module : torch.nn.Module
    method : {"snip", "grasp", "synflow"}
    batch : tuple (X, y), optional
        The data batch of SNIP and GraSP.
    loss_fn : callable, optional
        ``loss_fn(module, batch) -> scalar``; default cross-entropy.
    input_shape : tuple, optional
        One sample's shape, for SynFlow; default ``batch[0].shape[1:]``.

    Returns
    -------
    dict of str to ndarray (float64)
        Keyed by ``named_parameters()``; GraSP's are negated so that "larger is kept" holds.
    """
    check_choice("method", method, ("snip", "grasp", "synflow"))
    loss_fn = loss_fn or _default_loss
    w = {k: v.astype(np.float64) for k, v in module_weights(module).items()}
    if method == "synflow":
        if input_shape is None:
            if batch is None:
                raise InvalidArgumentError("SynFlow needs `input_shape` (one sample's shape) or a `batch` to read it from.")
            input_shape = tuple(batch[0].shape[1:])
        return _ta.synflow(module, input_shape)
    if batch is None:
        raise InvalidArgumentError(f"method {method!r} needs a data `batch` (X, y).")
    if method == "snip":
        return _scores.snip(w, _ta.gradients(module, loss_fn, batch))
    s = _scores.grasp(w, _ta.grasp_hessian_gradient(module, loss_fn, batch))
    return {k: -v for k, v in s.items()}


def pai_masks(module, method: str, *, sparsity: float, seed: int = 0, batch=None, loss_fn: Callable | None = None,
              input_shape: tuple | None = None, iterations: int | None = None, layers=None,
              allocation: str = "uniform") -> dict[str, np.ndarray]:
    """Masks chosen at initialization by SNIP, GraSP, SynFlow, FORCE or at random.

    Parameters
    ----------
    module : torch.nn.Module
        Untrained (its weights are the initialization); left unchanged.
    method : {"snip", "grasp", "synflow", "force", "random"}
    sparsity : float
        Global sparsity in [0, 1) over the selected tensors.
    seed : int
        Seed of the random masks (the other methods are deterministic given the batch).
    batch : tuple (X, y), optional
        Data for SNIP, GraSP and FORCE.
    loss_fn : callable, optional
        ``loss_fn(module, batch) -> scalar``; default cross-entropy.
    input_shape : tuple, optional
        One sample's shape for SynFlow (default read from ``batch``).
    iterations : int, optional
        SynFlow's pruning rounds (default 100, Tanaka et al.) and FORCE's steps (default 10).
    layers : str or list of str, optional
        Tensors to prune; default every parameter with ``ndim >= 2``.
    allocation : str
        Per-layer counts of ``"random"`` (``"uniform"``, ``"er"``, ``"erk"``, ``"global"``).

    Returns
    -------
    dict of str to ndarray of bool
        Keyed by the selected parameter names; exactly ``round((1 - S) N)`` kept.
    """
    torch = _torch()
    check_choice("method", method, PAI_METHODS)
    s = check_sparsity(sparsity)
    w0 = module_weights(module)
    keys = select_layers(w0, layers)
    loss_fn = loss_fn or _default_loss
    if method == "random":
        m = random_masks({k: w0[k] for k in keys}, sparsity=s, seed=seed, method=allocation)
        return {k: m[k] for k in keys}
    try:
        if method in ("snip", "grasp"):
            sc = pai_scores(module, method, batch=batch, loss_fn=loss_fn)
            res = prune({k: w0[k] for k in keys}, method="global", sparsity=s, scores={k: sc[k] for k in keys})
            return {k: res.masks[k] for k in keys}
        if method == "synflow":
            n_it = check_int("iterations", 100 if iterations is None else iterations, minimum=1)
            masks = {k: np.ones(w0[k].shape, dtype=bool) for k in keys}
            for i in range(1, n_it + 1):
                _load(torch, module, {k: (np.where(masks[k], v, 0) if k in masks else v).astype(v.dtype)
                                      for k, v in w0.items()})
                sc = pai_scores(module, "synflow", batch=batch, input_shape=input_shape)
                s_i = 1.0 - (1.0 - s) ** (i / n_it) if i < n_it else s
                sc = {k: np.where(masks[k], sc[k], -1.0) for k in keys}  # nested: pruned stay pruned
                res = prune({k: w0[k] for k in keys}, method="global", sparsity=s_i, scores=sc)
                masks = {k: res.masks[k] & masks[k] for k in keys}
            return masks
        # force
        n_it = check_int("iterations", 10 if iterations is None else iterations, minimum=1)
        if batch is None:
            raise InvalidArgumentError("method 'force' needs a data `batch` (X, y).")

        def grad_fn(masked):
            _load(torch, module, {k: (masked[k] if k in masked else v) for k, v in w0.items()})
            return _ta.gradients(module, loss_fn, batch)

        sc = _scores.force({k: w0[k] for k in keys}, lambda m: {k: v for k, v in grad_fn(m).items() if k in keys},
                           s, n_steps=n_it)
        res = prune({k: w0[k] for k in keys}, method="global", sparsity=s, scores=sc)
        return {k: res.masks[k] for k in keys}
    finally:
        _load(torch, module, w0)


def train_fixed_mask(module, masks: Mapping[str, Any], data, *, epochs: int, seed: int,
                     **train_options) -> SparseResult:
    """Train the pruned network with its mask fixed (pruned weights held at zero).

    Returns a :class:`~ratedist.sparse.imp.SparseResult` with the masks and final weights.
    """
    out = train_masked(module, masks, data, epochs=epochs, seed=seed, **train_options)
    m = out["masked"].numpy_masks()
    return SparseResult(masks=m, weights=module_weights(module), sparsity=_sparsity_over(m, list(m)),
                        extra={"steps": out["steps"]})
