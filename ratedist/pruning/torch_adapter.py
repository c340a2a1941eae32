"""Torch adapter (the ``torch`` extra): SynFlow, gradients, Hessian-vector products, Hessian diagonals.

Everything returns NumPy mappings keyed by ``module.named_parameters()`` names,
ready for the framework-free scores of :mod:`ratedist.pruning.scores` and for
``prune(..., scores=...)``.  ``torch`` is imported lazily; without it every
function raises :class:`~ratedist.errors.BackendUnavailableError`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._validation import check_int
from ..errors import BackendUnavailableError, InvalidArgumentError, InvalidShapeError

__all__ = ["synflow", "gradients", "hessian_vector_product", "hessian_diagonal", "grasp_hessian_gradient"]


def _torch():
    try:
        import torch
    except ImportError:
        raise BackendUnavailableError(
            "the pruning torch adapter needs torch: pip install 'ratedist[torch]'."
        ) from None
    return torch


def _check_module(module):
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError(f"`module` must be a torch.nn.Module, got {type(module).__name__}.")
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not params:
        raise InvalidArgumentError("`module` has no trainable parameters.")
    return torch, params


def _np(t) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def synflow(module, input_shape: tuple, *, dtype=None) -> dict[str, np.ndarray]:
    """SynFlow scores ``|θ ⊙ ∂R/∂θ|`` with ``R = 1ᵀ f(1; |θ|)`` (Tanaka et al. 2020).

    The network is linearized (every parameter replaced by its absolute value,
    batch-norm in eval mode), an all-ones input of shape ``(1, *input_shape)``
    is pushed through, and the summed output is differentiated.  The module's
    parameters and mode are restored afterwards.  Data-free.

    Parameters
    ----------
    module : torch.nn.Module
    input_shape : tuple of int
        Shape of one input sample (without the batch dimension).
    dtype : torch.dtype, optional
        Computation dtype (default float64, which avoids overflow in deep nets).
    """
    torch, params = _check_module(module)
    shape = tuple(int(d) for d in input_shape)
    if not shape or min(shape) <= 0:
        raise InvalidShapeError(f"`input_shape` must be a non-empty tuple of positive ints, got {input_shape!r}.")
    dtype = dtype or torch.float64
    was_training = module.training
    saved = {k: v.detach().clone() for k, v in module.state_dict().items()}
    orig_dtype = next(iter(p for _, p in params)).dtype
    try:
        module.eval()
        module.to(dtype)
        with torch.no_grad():
            for _, p in params:
                p.abs_()
        module.zero_grad(set_to_none=True)
        x = torch.ones((1,) + shape, dtype=dtype)
        r = module(x).sum()
        r.backward()
        out = {n: _np((p.grad * p).abs()) if p.grad is not None else np.zeros(tuple(p.shape)) for n, p in params}
    finally:
        module.to(orig_dtype)
        module.load_state_dict(saved)
        module.zero_grad(set_to_none=True)
        module.train(was_training)
    return out


def _loss_and_params(module, loss_fn, batch):
    torch, params = _check_module(module)
    if not callable(loss_fn):
        raise InvalidArgumentError(f"`loss_fn` must be callable (module, batch) -> scalar loss, got {type(loss_fn).__name__}.")
    loss = loss_fn(module, batch)
    if not torch.is_tensor(loss) or loss.numel() != 1:
        raise InvalidArgumentError("`loss_fn(module, batch)` must return a scalar torch tensor.")
    return torch, params, loss


def gradients(module, loss_fn: Callable[[Any, Any], Any], batch) -> dict[str, np.ndarray]:
    """Loss gradient per parameter, ``∂L/∂θ`` on ``batch`` (for SNIP and FORCE).

    ``loss_fn(module, batch)`` returns a scalar tensor, e.g.
    ``lambda m, b: F.cross_entropy(m(b[0]), b[1])``.
    """
    torch, params, loss = _loss_and_params(module, loss_fn, batch)
    grads = torch.autograd.grad(loss, [p for _, p in params], allow_unused=True)
    return {n: (_np(g) if g is not None else np.zeros(tuple(p.shape))) for (n, p), g in zip(params, grads)}


def hessian_vector_product(module, loss_fn, batch, vector: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Hessian-vector product ``H v`` of the loss on ``batch`` (double backward)."""
    torch, params, loss = _loss_and_params(module, loss_fn, batch)
    vs = []
    for n, p in params:
        if n not in vector:
            raise InvalidArgumentError(f"`vector` has no entry for parameter {n!r}.")
        v = torch.as_tensor(np.asarray(vector[n]), dtype=p.dtype)
        if tuple(v.shape) != tuple(p.shape):
            raise InvalidShapeError(f"`vector`[{n!r}] has shape {tuple(v.shape)}, parameter has {tuple(p.shape)}.")
        vs.append(v)
    return _hvp(torch, loss, params, vs)


def _hvp(torch, loss, params, vs, retain=False):
    ps = [p for _, p in params]
    grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
    dot = sum((g * v).sum() for g, v in zip(grads, vs) if g is not None)
    if not torch.is_tensor(dot) or not dot.requires_grad:
        return {n: np.zeros(tuple(p.shape)) for n, p in params}
    hv = torch.autograd.grad(dot, ps, allow_unused=True, retain_graph=retain)
    return {n: (_np(h) if h is not None else np.zeros(tuple(p.shape))) for (n, p), h in zip(params, hv)}


def grasp_hessian_gradient(module, loss_fn, batch) -> dict[str, np.ndarray]:
    """``H g`` with ``g`` the (detached) gradient on ``batch``: the input of :func:`~ratedist.pruning.scores.grasp`."""
    torch, params, loss = _loss_and_params(module, loss_fn, batch)
    ps = [p for _, p in params]
    grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
    g_det = [g.detach() if g is not None else None for g in grads]
    dot = sum((g * v).sum() for g, v in zip(grads, g_det) if g is not None)
    hv = torch.autograd.grad(dot, ps, allow_unused=True)
    return {n: (_np(h) if h is not None else np.zeros(tuple(p.shape))) for (n, p), h in zip(params, hv)}


def hessian_diagonal(module, loss_fn, batch, *, n_samples: int = 16, seed: int = 0) -> dict[str, np.ndarray]:
    """Hutchinson estimate of ``diag H``: the mean of ``z ⊙ (H z)`` over Rademacher ``z``.

    Unbiased; the standard error shrinks as ``1/sqrt(n_samples)``.  For
    :func:`~ratedist.pruning.scores.obd`.
    """
    n_samples = check_int("n_samples", n_samples, minimum=1)
    torch, params, loss = _loss_and_params(module, loss_fn, batch)
    gen = torch.Generator().manual_seed(int(seed))
    ps = [p for _, p in params]
    grads = torch.autograd.grad(loss, ps, create_graph=True, allow_unused=True)
    acc = {n: np.zeros(tuple(p.shape)) for n, p in params}
    for i in range(n_samples):
        zs = [(torch.randint(0, 2, tuple(p.shape), generator=gen) * 2 - 1).to(p.dtype) for p in ps]
        dot = sum((g * z).sum() for g, z in zip(grads, zs) if g is not None)
        if not torch.is_tensor(dot) or not dot.requires_grad:
            break
        hz = torch.autograd.grad(dot, ps, allow_unused=True, retain_graph=i < n_samples - 1)
        for (n, _), z, h in zip(params, zs, hz):
            if h is not None:
                acc[n] += _np(z * h)
    return {n: v / n_samples for n, v in acc.items()}
