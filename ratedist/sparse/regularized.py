"""Training-based pruning: L0 regularization with hard-concrete gates and sparse variational dropout.

Both learn, next to every weight of the selected tensors, a parameter that decides whether the
weight survives; the penalty's weight ``λ`` sets how many do, but not exactly, so a requested
sparsity is reached by a search over ``λ`` (:func:`search_lambda`; the lectures note that these
methods cannot preset their sparsity).

* **L0** (Louizos, Welling & Kingma 2018): gates ``z = min(1, max(0, s (ζ − γ) + γ))`` with
  ``s = sigmoid((log u − log(1 − u) + log α) / β)``, ``u ~ U(0, 1)``, β = 2/3, γ = −0.1, ζ = 1.1;
  penalty ``λ · mean_i sigmoid(log α_i − β log(−γ/ζ))`` (the expected fraction of open gates);
  at test time ``ẑ = min(1, max(0, sigmoid(log α)(ζ − γ) + γ))`` and a weight survives when ``ẑ > 0``.
* **Sparse variational dropout** (Molchanov, Ashukha & Vetrov 2017): weights ``θ + σ ε`` in training,
  ``log α = log σ² − log θ²``; penalty ``λ · KL / N_train`` with the paper's approximation
  ``−KL ≈ k₁ sigmoid(k₂ + k₃ log α) − ½ log(1 + 1/α) − k₁``; a weight survives when ``log α < 3``.

Any ``nn.Module`` works: the gated weights are substituted with :func:`torch.func.functional_call`.
The *natural* sparsity is the fraction the rule above removes.  The returned masks meet the
requested sparsity exactly by keeping the ``round((1 − S) N)`` weights most likely to survive
(largest ``log α`` for L0, smallest for VD) — the search makes that differ from the natural
sparsity by at most ``tolerance`` (default 0.02) when it converges, and warns
(:class:`~ratedist.errors.ConvergenceWarning`) when it does not.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable

import numpy as np

from .._validation import check_choice, check_finite_scalar, check_int
from ..errors import ConvergenceWarning, InvalidArgumentError
from ..pruning.allocation import prune, select_layers
from .imp import SparseResult, _load, _sparsity_over
from .masks import _torch, check_sparsity, module_weights

__all__ = ["REGULARIZERS", "train_regularized", "search_lambda"]

REGULARIZERS = ("l0", "vd")
HC_BETA, HC_GAMMA, HC_ZETA = 2.0 / 3.0, -0.1, 1.1
VD_K1, VD_K2, VD_K3 = 0.63576, 1.87320, 1.48695
VD_THRESHOLD = 3.0
LOG_ALPHA_CLIP = 10.0


def train_regularized(module, data, *, method: str, lam: float, epochs: int, seed: int, sparsity: float | None = None,
                      layers=None, lr: float = 2e-3, gate_lr: float = 0.1, batch_size: int = 64,
                      init_log_alpha: float | None = None,
                      loss_fn: Callable | None = None) -> SparseResult:
    """Train ``module`` with the L0 (``"l0"``) or variational-dropout (``"vd"``) penalty of weight ``lam``.

    Parameters
    ----------
    module : torch.nn.Module
    data : tuple (X, y)
    method : {"l0", "vd"}
    lam : float
        Penalty weight (``>= 0``).
    epochs, seed, lr, batch_size
        Adam on the weights (``lr``) and the gate parameters (``gate_lr``, default 0.1: a gate must
        cross a few units of ``log α`` within a short training).
    sparsity : float, optional
        When given, the returned masks keep exactly ``round((1 - S) N)`` weights (most likely to
        survive first); otherwise the masks are the natural ones.
    layers : str or list of str, optional
        Gated tensors (default ``ndim >= 2``).
    init_log_alpha : float, optional
        L0: initial ``log α`` (default 1, test-time gates ẑ ≈ 0.78); VD: initial ``log σ²``
        (default −10).
    loss_fn : callable, optional
        ``loss_fn(outputs, y) -> scalar``; default cross-entropy.

    Returns
    -------
    SparseResult
        Weights with pruned entries zero (L0: the test-time gate folded into the weight where it is
        open);
        ``extra["natural_sparsity"]`` and ``extra["lam"]``.
    """
    torch = _torch()
    check_choice("method", method, REGULARIZERS)
    lam = check_finite_scalar("lam", lam)
    if lam < 0:
        raise InvalidArgumentError(f"`lam` must be >= 0, got {lam!r}.")
    epochs = check_int("epochs", epochs, minimum=1)
    seed = check_int("seed", seed, minimum=0)
    s_target = None if sparsity is None else check_sparsity(sparsity)
    w0 = module_weights(module)
    keys = select_layers(w0, layers)
    params = dict(module.named_parameters())
    init = (1.0 if method == "l0" else -10.0) if init_log_alpha is None else float(init_log_alpha)
    extra_p = {k: torch.full_like(params[k], init, requires_grad=True) for k in keys}
    opt = torch.optim.Adam([{"params": list(module.parameters()), "lr": lr},
                            {"params": list(extra_p.values()), "lr": check_finite_scalar("gate_lr", gate_lr)}])
    loss_fn = loss_fn or torch.nn.functional.cross_entropy
    X, y = data
    n = int(X.shape[0])
    n_gated = sum(params[k].numel() for k in keys)
    gen = torch.Generator().manual_seed(seed)
    shift = HC_BETA * math.log(-HC_GAMMA / HC_ZETA)

    def log_alpha_vd(k):
        return torch.clamp(extra_p[k] - torch.log(params[k] ** 2 + 1e-8), -LOG_ALPHA_CLIP, LOG_ALPHA_CLIP)

    module.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=gen)
        for i in range(0, n, batch_size):
            idx = perm[i:i + batch_size]
            subst, penalty = {}, 0.0
            for k in keys:
                p = params[k]
                if method == "l0":
                    u = torch.rand(p.shape, generator=gen).clamp(1e-6, 1 - 1e-6)
                    s = torch.sigmoid((torch.log(u) - torch.log1p(-u) + extra_p[k]) / HC_BETA)
                    z = torch.clamp(s * (HC_ZETA - HC_GAMMA) + HC_GAMMA, 0.0, 1.0)
                    subst[k] = p * z
                    penalty = penalty + torch.sigmoid(extra_p[k] - shift).sum() / n_gated
                else:
                    eps = torch.randn(p.shape, generator=gen)
                    subst[k] = p + torch.exp(0.5 * extra_p[k]) * eps
                    la = log_alpha_vd(k)
                    neg_kl = VD_K1 * torch.sigmoid(VD_K2 + VD_K3 * la) - 0.5 * torch.log1p(torch.exp(-la)) - VD_K1
                    penalty = penalty - neg_kl.sum() / n
            out = torch.func.functional_call(module, subst, (X[idx],))
            loss = loss_fn(out, y[idx]) + lam * penalty
            opt.zero_grad()
            loss.backward()
            opt.step()
    module.eval()
    with torch.no_grad():
        if method == "l0":
            keep_score = {k: extra_p[k].detach().double().numpy() for k in keys}
            zhat = {k: torch.clamp(torch.sigmoid(extra_p[k]) * (HC_ZETA - HC_GAMMA) + HC_GAMMA, 0, 1) for k in keys}
            natural = {k: (zhat[k] > 0).numpy() for k in keys}
            # the test-time gate folded into the weight; a weight the exact target keeps although its
            # gate is closed (natural sparsity above the target) keeps its raw value
            folded = {k: torch.where(zhat[k] > 0, params[k] * zhat[k], params[k]).numpy() for k in keys}
        else:
            la = {k: log_alpha_vd(k) for k in keys}
            keep_score = {k: -la[k].double().numpy() for k in keys}
            natural = {k: (la[k] < VD_THRESHOLD).numpy() for k in keys}
            folded = {k: params[k].detach().numpy().copy() for k in keys}
    natural_s = _sparsity_over(natural, keys)
    if s_target is None:
        masks = natural
    else:
        masks = prune({k: w0[k] for k in keys}, method="global", sparsity=s_target, scores=keep_score).masks
        masks = {k: masks[k] for k in keys}
    final = module_weights(module)
    for k in keys:
        final[k] = np.where(masks[k], folded[k], 0).astype(final[k].dtype)
    _load(torch, module, final)
    return SparseResult(masks=masks, weights=final, sparsity=_sparsity_over(masks, keys),
                        extra={"natural_sparsity": natural_s, "lam": lam, "method": method})


def search_lambda(make_module: Callable[[], object], data, *, method: str, sparsity: float, epochs: int, seed: int,
                  lam_low: float = 1e-3, lam_high: float = 1e2, n_trials: int = 8, tolerance: float = 0.02,
                  **options) -> SparseResult:
    """Find ``λ`` whose natural sparsity is within ``tolerance`` of ``sparsity``; return that run's result.

    Bisection on ``log λ`` between ``lam_low`` and ``lam_high`` (the natural sparsity grows with
    ``λ``): each trial trains a fresh ``make_module()`` for ``epochs``; the search stops at the first
    trial within ``tolerance`` or after ``n_trials``, keeping the closest trial (a
    :class:`~ratedist.errors.ConvergenceWarning` says when none was within ``tolerance``).  The
    returned masks meet ``sparsity`` exactly (see the module docstring); ``extra["search"]`` lists
    every trial's ``(λ, natural sparsity)``.
    """
    s = check_sparsity(sparsity)
    n_trials = check_int("n_trials", n_trials, minimum=1)
    tol = check_finite_scalar("tolerance", tolerance)
    lo, hi = check_finite_scalar("lam_low", lam_low), check_finite_scalar("lam_high", lam_high)
    if not 0 < lo < hi:
        raise InvalidArgumentError(f"the search interval must satisfy 0 < `lam_low` < `lam_high`, got {lam_low!r}, "
                                   f"{lam_high!r}.")
    best, trials = None, []
    a, b = math.log(lo), math.log(hi)
    for _ in range(n_trials):
        lam = math.exp(0.5 * (a + b))
        res = train_regularized(make_module(), data, method=method, lam=lam, epochs=epochs, seed=seed,
                                sparsity=s, **options)
        nat = res.extra["natural_sparsity"]
        trials.append({"lam": lam, "natural_sparsity": nat})
        if best is None or abs(nat - s) < abs(best.extra["natural_sparsity"] - s):
            best = res
        if abs(nat - s) <= tol:
            break
        if nat < s:
            a = math.log(lam)
        else:
            b = math.log(lam)
    best.extra["search"] = trials
    best.extra["converged"] = abs(best.extra["natural_sparsity"] - s) <= tol
    if not best.extra["converged"]:
        warnings.warn(f"λ search for {method} did not reach natural sparsity {s} within {tol} in {n_trials} trials "
                      f"(closest {best.extra['natural_sparsity']:.4f} at λ = {best.extra['lam']:.4g}); the masks "
                      "still meet the target by ranking.", ConvergenceWarning, stacklevel=2)
    return best
