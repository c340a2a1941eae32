"""Layer-wise optimal brain surgeon (Hassibi & Stork 1993, per layer as in Dong et al. 2017).

For a linear map ``y = W x`` with inputs of second moment ``H = E[x xᵀ]`` (the exact Hessian of
the layer's squared output error, ``½ E‖(W' − W) x‖²``), removing weight ``q`` of a row costs
``w_q² / (2 [H⁻¹]_qq)`` and the surviving weights of that row move by
``δw = −(w_q / [H⁻¹]_qq) H⁻¹ e_q``.  :func:`obs_layer` removes weights greedily one at a time in
every row (all rows in step, vectorized), downdating ``H⁻¹`` after each removal
(``H⁻¹ ← H⁻¹ − H⁻¹ e_q e_qᵀ H⁻¹ / [H⁻¹]_qq``), so that after the last removal the surviving
weights are the least-squares optimum for the chosen support.  Framework-free; the inputs'
second moments of a torch model's linear layers come from :func:`input_hessians`.

Counts are exact: the layer keeps ``round((1 − S) N)`` weights, spread over the rows as evenly
as possible (largest remainder, earlier rows first).  ``H`` is damped by ``damp · mean(diag H)``
on the diagonal so that it is invertible.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validation import _to_numpy, check_finite_scalar
from ..errors import InvalidArgumentError, InvalidShapeError
from ..pruning.allocation import integer_counts, n_keep_for
from .masks import _torch, check_sparsity

__all__ = ["obs_layer", "obs_prune", "input_hessians"]


def obs_layer(weight, hessian, *, sparsity: float, damp: float = 1e-4) -> tuple[np.ndarray, np.ndarray]:
    """Prune one linear layer's rows by greedy OBS with exact inverse-Hessian downdates.

    Parameters
    ----------
    weight : array, shape (out, in)
    hessian : array, shape (in, in)
        Second moment of the layer's inputs, ``Xᵀ X / n`` (symmetric positive semi-definite).
    sparsity : float
        Fraction of the layer's weights to remove, in [0, 1).
    damp : float
        Relative diagonal damping (``>= 0``).

    Returns
    -------
    (new_weight, mask) : tuple of ndarray
        ``new_weight`` (float64, zero where pruned) and the boolean ``mask``.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(200, 6)); W = rng.normal(size=(3, 6))
    >>> W2, m = obs_layer(W, X.T @ X / 200, sparsity=0.5)
    >>> int(m.sum()), bool(np.all(W2[~m] == 0))
    (9, True)
    """
    s = check_sparsity(sparsity)
    damp = check_finite_scalar("damp", damp)
    if damp < 0:
        raise InvalidArgumentError(f"`damp` must be >= 0, got {damp!r}.")
    W = np.array(_to_numpy(weight), dtype=np.float64)
    H = np.array(_to_numpy(hessian), dtype=np.float64)
    if W.ndim != 2:
        raise InvalidShapeError(f"`weight` must be 2-D (out, in), got shape {W.shape}; reshape convolutions first.")
    if H.shape != (W.shape[1], W.shape[1]):
        raise InvalidShapeError(f"`hessian` must have shape {(W.shape[1], W.shape[1])} for `weight` of shape {W.shape}, "
                                f"got {H.shape}.")
    out_dim, d = W.shape
    n_prune = W.size - n_keep_for(s, W.size)
    per_row = integer_counts(np.full(out_dim, n_prune / out_dim), n_prune, np.zeros(out_dim, np.int64),
                             np.full(out_dim, d, np.int64))
    Hd = 0.5 * (H + H.T)
    Hd[np.diag_indices(d)] += damp * max(float(np.mean(np.diag(Hd))), 1e-12)
    Hinv = np.linalg.inv(Hd)
    Hi = np.broadcast_to(Hinv, (out_dim, d, d)).copy()
    alive = np.ones((out_dim, d), dtype=bool)
    rows = np.arange(out_dim)
    for t in range(int(per_row.max(initial=0))):
        r = rows[per_row > t]
        diag = np.diagonal(Hi[r], axis1=1, axis2=2)
        with np.errstate(divide="ignore", invalid="ignore"):
            sal = np.where(alive[r], W[r] ** 2 / diag, np.inf)
        q = np.argmin(sal, axis=1)  # ties: the smaller index
        hq = Hi[r, :, q]                          # (R, d): H⁻¹ e_q
        hqq = hq[np.arange(r.size), q]
        W[r] -= (W[r, q] / hqq)[:, None] * hq
        W[r, q] = 0.0
        Hi[r] -= hq[:, :, None] * hq[:, None, :] / hqq[:, None, None]
        alive[r, q] = False
    W[~alive] = 0.0
    return W, alive


def obs_prune(weights: Mapping[str, Any], hessians: Mapping[str, Any], *, sparsity: float,
              damp: float = 1e-4) -> tuple[dict, dict]:
    """Layer-wise OBS on every tensor that has a Hessian, each layer at ``sparsity`` (uniform allocation).

    Returns ``(new_weights, masks)``: new weights for every tensor of ``weights`` (the pruned
    layers updated, the others unchanged, dtypes kept) and masks for the pruned layers.
    """
    if not isinstance(hessians, Mapping) or not hessians:
        raise InvalidArgumentError("`hessians` must be a non-empty mapping of layer names to input second moments.")
    extra = [k for k in hessians if k not in weights]
    if extra:
        raise InvalidArgumentError(f"`hessians` has keys {extra[:5]!r} that are not in `weights`.")
    out, masks = {}, {}
    for k, v in weights.items():
        a = np.asarray(_to_numpy(v))
        if k in hessians:
            w2, m = obs_layer(a.reshape(a.shape[0], -1), hessians[k], sparsity=sparsity, damp=damp)
            out[k] = w2.reshape(a.shape).astype(a.dtype)
            masks[k] = m.reshape(a.shape)
        else:
            out[k] = a.copy()
    return out, masks


def input_hessians(module, X) -> dict[str, np.ndarray]:
    """``Xᵀ X / n`` of the inputs of every bias-free or biased ``nn.Linear`` of ``module`` on inputs ``X``.

    Keys are the linear layers' weight parameter names (``"<module name>.weight"``); float64.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError(f"`module` must be a torch.nn.Module, got {type(module).__name__}.")
    acc: dict = {}
    hooks = []
    for name, sub in module.named_modules():
        if isinstance(sub, torch.nn.Linear):
            key = f"{name}.weight" if name else "weight"

            def hook(mod, inp, _out, key=key):
                x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()
                acc[key] = (x.T @ x / x.shape[0]).cpu().numpy()

            hooks.append(sub.register_forward_hook(hook))
    if not hooks:
        raise InvalidArgumentError("`module` has no nn.Linear layer; layer-wise OBS here covers linear layers.")
    was = module.training
    try:
        module.eval()
        with torch.no_grad():
            module(X)
    finally:
        for h in hooks:
            h.remove()
        module.train(was)
    return acc
