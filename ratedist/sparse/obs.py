"""Layer-wise optimal brain surgeon (Hassibi & Stork 1993, per layer as in Dong et al. 2017).

For a linear map ``y = W x`` with inputs of second moment ``H = E[x xᵀ]`` (the exact Hessian of
the layer's squared output error, ``½ E‖(W' − W) x‖²``), removing weight ``q`` of a row costs
``w_q² / (2 [H⁻¹]_qq)`` and the surviving weights of that row move by
``δw = −(w_q / [H⁻¹]_qq) H⁻¹ e_q``.  :func:`obs_layer` removes weights greedily one at a time
(or ``block`` at a time) in every row, downdating ``H⁻¹`` after each removal
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


def obs_layer(weight, hessian, *, sparsity: float, damp: float = 1e-4, block: int = 1) -> tuple[np.ndarray, np.ndarray]:
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
    block : int
        Weights removed per step in a row (``1``: the exact greedy OBS).  A step removes the
        ``block`` weights of smallest saliency together with the exact multi-weight update
        ``δw = −H⁻¹[:, Q] (H⁻¹[Q, Q])⁻¹ w_Q``, so the survivors stay the least-squares optimum
        of their support; only the choice of support becomes coarser.

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
    from .._validation import check_int
    from .dst import smallest_k

    s = check_sparsity(sparsity)
    damp = check_finite_scalar("damp", damp)
    if damp < 0:
        raise InvalidArgumentError(f"`damp` must be >= 0, got {damp!r}.")
    block = check_int("block", block, minimum=1)
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
    alive = np.ones((out_dim, d), dtype=bool)
    for r in range(out_dim):
        w, Hi, al = W[r], Hinv.copy(), alive[r]
        left = int(per_row[r])
        while left > 0:
            b = min(block, left)
            idx = np.flatnonzero(al)
            sal = w[idx] ** 2 / np.diagonal(Hi)[idx]
            Q = idx[smallest_k(sal, b)]            # ties: the smaller index
            HQ = Hi[:, Q]                          # (d, b)
            S = HQ[Q]                              # (b, b) = H⁻¹[Q, Q]
            w -= HQ @ np.linalg.solve(S, w[Q])
            Hi -= HQ @ np.linalg.solve(S, HQ.T)
            w[Q] = 0.0
            al[Q] = False
            left -= b
    W[~alive] = 0.0
    return W, alive


def obs_prune(weights: Mapping[str, Any], hessians: Mapping[str, Any], *, sparsity: float,
              damp: float = 1e-4, block: int = 1) -> tuple[dict, dict]:
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
            w2, m = obs_layer(a.reshape(a.shape[0], -1), hessians[k], sparsity=sparsity, damp=damp, block=block)
            out[k] = w2.reshape(a.shape).astype(a.dtype)
            masks[k] = m.reshape(a.shape)
        else:
            out[k] = a.copy()
    return out, masks


def input_hessians(module, X) -> dict[str, np.ndarray]:
    """Second moments ``Xᵀ X / n`` of the inputs of every ``nn.Linear`` and ``nn.Conv2d`` of ``module``.

    A convolution's input is unfolded into its receptive fields (``torch.nn.functional.unfold``,
    channel-major like ``weight.reshape(out, -1)``), one row per output position.  Keys are the
    layers' weight parameter names (``"<module name>.weight"``); float64.
    """
    torch = _torch()
    if not isinstance(module, torch.nn.Module):
        raise InvalidArgumentError(f"`module` must be a torch.nn.Module, got {type(module).__name__}.")
    F = torch.nn.functional
    acc: dict = {}
    hooks = []
    for name, sub in module.named_modules():
        key = f"{name}.weight" if name else "weight"
        if isinstance(sub, torch.nn.Linear):
            def hook(mod, inp, _out, key=key):
                x = inp[0].detach().reshape(-1, inp[0].shape[-1]).double()
                acc[key] = (x.T @ x / x.shape[0]).cpu().numpy()
        elif isinstance(sub, torch.nn.Conv2d) and sub.groups == 1 and isinstance(sub.padding, tuple):
            def hook(mod, inp, _out, key=key):
                cols = F.unfold(inp[0].detach().double(), mod.kernel_size, dilation=mod.dilation,
                                padding=mod.padding, stride=mod.stride)          # (N, C·kh·kw, L)
                x = cols.transpose(1, 2).reshape(-1, cols.shape[1])
                acc[key] = (x.T @ x / x.shape[0]).cpu().numpy()
        else:
            continue
        hooks.append(sub.register_forward_hook(hook))
    if not hooks:
        raise InvalidArgumentError("`module` has no nn.Linear or nn.Conv2d layer (groups=1) for layer-wise OBS.")
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
