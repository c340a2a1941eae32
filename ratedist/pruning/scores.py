"""Saliency scores from arrays the caller provides (framework-free).

Every function takes weight mappings (and gradients, Hessian diagonals or
Hessian-vector products under the same keys) and returns a mapping of scores
under the same keys and shapes, ready for ``prune(..., scores=...)`` where a
larger score means "keep".  The torch adapter
(:mod:`ratedist.pruning.torch_adapter`) computes the gradients and Hessian
products for an ``nn.Module``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from .._validation import _to_numpy, check_int, check_weights
from ..errors import InvalidArgumentError, InvalidShapeError
from .allocation import _check_sparsity, prune

__all__ = ["magnitude", "obd", "snip", "grasp", "force"]


def _pair(weights, other, other_name: str) -> tuple[dict, dict]:
    w = check_weights("weights", weights)
    o = check_weights(other_name, other)
    missing = [k for k in w if k not in o]
    if missing:
        raise InvalidArgumentError(f"`{other_name}` has no entry for tensors {missing[:5]!r}; give one per weight tensor.")
    for k in w:
        if np.shape(o[k]) != w[k].shape:
            raise InvalidShapeError(f"`{other_name}`[{k!r}] has shape {np.shape(o[k])}, but the weight has shape {w[k].shape}.")
    return w, {k: np.asarray(o[k]) for k in w}


def magnitude(weights: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Magnitude saliency ``|w|``.

    >>> magnitude({"w": np.array([-2.0, 0.5])})["w"].tolist()
    [2.0, 0.5]
    """
    return {k: np.abs(v) for k, v in check_weights("weights", weights).items()}


def obd(weights: Mapping[str, Any], hessian_diag: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Optimal brain damage saliency ``w^2 H_ii / 2`` (LeCun et al. 1990).

    ``hessian_diag`` holds the diagonal of the loss Hessian (exact or an
    estimate such as Hutchinson's, see the torch adapter), one array per tensor.
    The saliency is the second-order increase of the loss when ``w_i`` is set to zero.

    >>> obd({"w": np.array([2.0, -1.0])}, {"w": np.array([0.5, 4.0])})["w"].tolist()
    [1.0, 2.0]
    """
    w, h = _pair(weights, hessian_diag, "hessian_diag")
    return {k: 0.5 * np.square(w[k].astype(np.float64)) * h[k] for k in w}


def snip(weights: Mapping[str, Any], grads: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """SNIP connection sensitivity ``|g ⊙ w|`` (Lee et al. 2019).

    ``grads`` is the loss gradient with respect to the weights on one batch.

    >>> snip({"w": np.array([2.0, -1.0])}, {"w": np.array([0.5, 3.0])})["w"].tolist()
    [1.0, 3.0]
    """
    w, g = _pair(weights, grads, "grads")
    return {k: np.abs(g[k] * w[k]) for k in w}


def grasp(weights: Mapping[str, Any], hessian_grad: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """GraSP score ``S = -(H g) ⊙ w`` (Wang et al. 2020).

    ``hessian_grad`` is the Hessian-vector product ``H g`` with the gradient
    ``g``.  GraSP *removes the weights with the largest S* (their removal
    reduces gradient flow least); to keep by "larger is better" as
    :func:`~ratedist.pruning.prune` does, pass ``scores={k: -v for k, v in s.items()}``.

    >>> grasp({"w": np.array([2.0, -1.0])}, {"w": np.array([0.5, 3.0])})["w"].tolist()
    [-1.0, 3.0]
    """
    w, hg = _pair(weights, hessian_grad, "hessian_grad")
    return {k: -(hg[k] * w[k]) for k in w}


def force(weights: Mapping[str, Any], grad_fn: Callable[[dict], Mapping[str, Any]], sparsity: float, *,
          n_steps: int = 10, layers=None) -> dict[str, np.ndarray]:
    """FORCE: iterated SNIP with a gradually shrinking kept fraction (de Jorge et al. 2021).

    Parameters
    ----------
    weights : Mapping[str, array]
        Dense weights ``w``.
    grad_fn : callable
        ``grad_fn(masked_weights) -> gradients`` (a mapping under the same keys):
        the loss gradient with respect to the effective weights ``w ⊙ m``.
    sparsity : float
        Final sparsity in [0, 1).
    n_steps : int
        Number of iterations; the kept fraction decays geometrically from 1 to ``1 - sparsity``.
    layers : str or list of str, optional
        Tensors to prune (as in :func:`~ratedist.pruning.prune`).

    Returns
    -------
    dict of str to ndarray
        The connection sensitivities ``|g(w ⊙ m) ⊙ w|`` of the last iteration, for
        every tensor of ``weights``.  Pruning globally by them at ``sparsity``
        gives the FORCE mask.  Pruned weights keep a score, so they can come back.

    Examples
    --------
    >>> w = {"w": np.array([[3.0, -1.0], [0.5, 2.0]])}
    >>> s = force(w, lambda m: {"w": np.ones((2, 2))}, 0.5, n_steps=3)
    >>> s["w"].tolist()
    [[3.0, 1.0], [0.5, 2.0]]
    """
    s = _check_sparsity(sparsity)
    n_steps = check_int("n_steps", n_steps, minimum=1)
    if not callable(grad_fn):
        raise InvalidArgumentError(f"`grad_fn` must be callable (masked weights -> gradients), got {type(grad_fn).__name__}.")
    w = check_weights("weights", weights)
    masks = {k: np.ones(v.shape, dtype=bool) for k, v in w.items()}
    density_final = 1.0 - s
    scores: dict[str, np.ndarray] = {}
    for step in range(1, n_steps + 1):
        masked = {k: np.where(masks[k], v, np.zeros((), v.dtype)) for k, v in w.items()}
        g = grad_fn(masked)
        if not isinstance(g, Mapping):
            raise InvalidArgumentError(f"`grad_fn` must return a mapping of gradients, got {type(g).__name__}.")
        _, g = _pair(w, {k: _to_numpy(v) for k, v in g.items()}, "grad_fn(...)")
        scores = {k: np.abs(g[k] * w[k]) for k in w}
        step_sparsity = 1.0 - density_final ** (step / n_steps)
        if step < n_steps:
            masks = prune(w, method="global", sparsity=min(step_sparsity, s), layers=layers, scores=scores).masks
    return scores
