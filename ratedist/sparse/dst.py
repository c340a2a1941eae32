"""Dynamic sparse training: SET, RigL, DSR and SNFS (prune by magnitude, regrow at random, by gradient or momentum).

The mask update is framework-free NumPy on ``Mapping[str, ndarray]`` (:func:`prune_regrow`):
in every layer, drop the ``k`` active weights of smallest magnitude and grow ``k`` inactive
ones — at random (SET, Mocanu et al. 2018) or those of largest gradient magnitude (RigL,
Evci et al. 2020) — so every layer keeps its count and the global sparsity is constant across
updates.  ``k = floor(f · n_active)`` per layer, with ``f`` constant (SET's ζ = 0.3) or
cosine-decayed, ``f_t = α/2 (1 + cos(π t / T_end))`` (RigL's α = 0.3, ``T_end`` = 75 % of
training, an update every ΔT = 100 steps).  Positions are chosen by selection
(:func:`numpy.argpartition`), never by a full sort; ties go to the smaller flat index.
Regrown connections start at zero (RigL's rule; Adam state zero too).

Two methods move capacity between layers while keeping the global count: DSR (Mostafa & Wang
2019; :func:`dsr_update`: a global adaptive magnitude threshold, regrowth spread over layers in
proportion to their surviving weights, at random) and SNFS (Dettmers & Zettlemoyer 2019;
:func:`snfs_update`: per-layer magnitude pruning, regrowth spread in proportion to each layer's
mean momentum and placed at the largest momentum of the dense gradient).

The initial masks are random with Erdős–Rényi (SET), ERK (RigL) or uniform (DSR, SNFS) layer
densities (:func:`ratedist.sparse.masks.random_masks`).  :func:`train_dst` is the torch loop.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validation import _to_numpy, check_choice, check_finite_scalar, check_int
from ..errors import InvalidArgumentError, InvalidShapeError
from .imp import SparseResult, _sparsity_over
from .masks import _torch, check_masks, check_sparsity, module_weights, random_masks, train_masked

__all__ = ["DST_METHODS", "smallest_k", "largest_k", "update_fraction", "prune_regrow", "dsr_update",
           "snfs_update", "train_dst"]

DST_METHODS = ("set", "rigl", "dsr", "snfs")
#: Defaults: (init, fraction, decay) — SET: ER init, ζ = 0.3 constant; RigL: ERK, α = 0.3 cosine;
#: DSR: uniform init, prune target 0.3 of the active weights per update (adaptive threshold);
#: SNFS: uniform init, prune rate 0.5 cosine-decayed.
DEFAULTS = {"set": ("er", 0.3, "constant"), "rigl": ("erk", 0.3, "cosine"), "dsr": ("uniform", 0.3, "constant"),
            "snfs": ("uniform", 0.5, "cosine")}
#: DSR's initial threshold H and its tolerance δ (Mostafa & Wang 2019).
DSR_H0, DSR_DELTA = 1e-3, 0.1
#: Decay of the dense-gradient momentum SNFS regrows by (Dettmers & Zettlemoyer 2019).
SNFS_BETA = 0.9


def smallest_k(values: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the ``k`` smallest entries, ties broken by the smaller index (sorted ascending).

    One :func:`numpy.argpartition` finds the ``k``-th value; everything below it is taken, then
    the first tied entries.

    >>> smallest_k(np.array([3.0, 1.0, 1.0, 0.5, 1.0]), 3).tolist()
    [1, 2, 3]
    """
    v = np.asarray(values).reshape(-1)
    k = int(k)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= v.size:
        return np.arange(v.size, dtype=np.int64)
    t = v[np.argpartition(v, k - 1)[k - 1]]
    below = np.flatnonzero(v < t)
    ties = np.flatnonzero(v == t)[: k - below.size]
    return np.sort(np.concatenate([below, ties]))


def largest_k(values: np.ndarray, k: int) -> np.ndarray:
    """Flat indices of the ``k`` largest entries, ties broken by the smaller index (sorted ascending).

    >>> largest_k(np.array([3.0, 1.0, 3.0, 0.5, 3.0]), 2).tolist()
    [0, 2]
    """
    v = np.asarray(values).reshape(-1)
    k = int(k)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if k >= v.size:
        return np.arange(v.size, dtype=np.int64)
    t = v[np.argpartition(v, v.size - k)[v.size - k]]
    above = np.flatnonzero(v > t)
    ties = np.flatnonzero(v == t)[: k - above.size]
    return np.sort(np.concatenate([above, ties]))


def update_fraction(step: int, *, alpha: float = 0.3, t_end: int, decay: str = "cosine") -> float:
    """The fraction of active weights updated at ``step``: ``α/2 (1 + cos(π t / T_end))`` or constant ``α``.

    Zero from ``t_end`` on (the masks are frozen for the rest of training).

    >>> update_fraction(0, t_end=100), update_fraction(50, t_end=100), update_fraction(100, t_end=100)
    (0.3, 0.15, 0.0)
    """
    check_choice("decay", decay, ("cosine", "constant"))
    a = check_finite_scalar("alpha", alpha)
    if not 0.0 <= a <= 1.0:
        raise InvalidArgumentError(f"`alpha` must lie in [0, 1] (a fraction of the active weights), got {alpha!r}.")
    t_end = check_int("t_end", t_end, minimum=1)
    step = check_int("step", step, minimum=0)
    if step >= t_end:
        return 0.0
    if decay == "constant":
        return a
    return round(a / 2.0 * (1.0 + math.cos(math.pi * step / t_end)), 15)


def prune_regrow(weights: Mapping[str, Any], masks: Mapping[str, Any], *, fraction: float,
                 grow: str | Mapping[str, Any] = "random", seed: int = 0) -> tuple[dict, dict]:
    """One DST mask update: per layer, drop the smallest-magnitude ``k`` active weights, grow ``k``.

    Parameters
    ----------
    weights : Mapping[str, array]
        Current weights (at least the masked tensors).
    masks : Mapping[str, array of bool]
        Current masks; only these tensors are updated.
    fraction : float
        ``k_l = floor(fraction · n_active_l)``, capped by the layer's inactive count.
    grow : "random" or Mapping[str, array]
        ``"random"``: grown positions drawn uniformly among the inactive ones (SET, seeded by
        ``seed``); a mapping: grow the inactive positions of largest ``|score|`` (RigL: the
        dense gradient).  Positions dropped in this update may be regrown.
    seed : int

    Returns
    -------
    (new_masks, grown) : tuple of dict
        ``new_masks``: same keys and per-layer counts as ``masks``; ``grown``: per layer, the
        flat indices switched on (their weights must start at zero).

    Examples
    --------
    >>> w = {"a": np.array([0.1, -2.0, 0.0, 3.0, 0.0, 0.0])}
    >>> m = {"a": np.array([True, True, False, True, False, False])}
    >>> new, grown = prune_regrow(w, m, fraction=0.34, grow={"a": np.array([0, 0, 5.0, 0, 1.0, 0])})
    >>> new["a"].astype(int).tolist(), grown["a"].tolist()
    ([0, 1, 1, 1, 0, 0], [2])
    """
    f = check_finite_scalar("fraction", fraction)
    if not 0.0 <= f <= 1.0:
        raise InvalidArgumentError(f"`fraction` must lie in [0, 1] (of the active weights), got {fraction!r}.")
    m = check_masks(masks)
    if not isinstance(weights, Mapping):
        raise InvalidArgumentError(f"`weights` must be a mapping of tensor names to arrays, got {type(weights).__name__}.")
    missing = [k for k in m if k not in weights]
    if missing:
        raise InvalidArgumentError(f"`weights` has no tensor for masks {missing[:5]!r}.")
    random = isinstance(grow, str)
    if random:
        check_choice("grow", grow, ("random",))
    elif not isinstance(grow, Mapping):
        raise InvalidArgumentError("`grow` must be 'random' or a mapping of scores (e.g. gradients) per tensor.")
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    new, grown = {}, {}
    for key, mk in m.items():
        w = np.asarray(_to_numpy(weights[key])).reshape(-1)
        if w.size != mk.size:
            raise InvalidShapeError(f"`weights`[{key!r}] has {w.size} entries, its mask {mk.size}.")
        flat = mk.reshape(-1).copy()
        active = np.flatnonzero(flat)
        k = min(int(math.floor(f * active.size)), flat.size - active.size)
        if k <= 0:
            new[key], grown[key] = flat.reshape(mk.shape), np.zeros(0, dtype=np.int64)
            continue
        mag = np.abs(w[active])
        flat[active[smallest_k(mag, k)]] = False
        cand = np.flatnonzero(~flat)
        if random:
            pick = np.sort(cand[rng.choice(cand.size, size=k, replace=False)])
        else:
            g = np.asarray(_to_numpy(grow[key])).reshape(-1) if key in grow else None
            if g is None or g.size != flat.size:
                raise InvalidShapeError(f"`grow`[{key!r}] must be a score array with {flat.size} entries.")
            pick = cand[largest_k(np.abs(g[cand]), k)]
        flat[pick] = True
        new[key], grown[key] = flat.reshape(mk.shape), pick
    return new, grown


def _grow_counts(total: int, share: np.ndarray, room: np.ndarray) -> np.ndarray:
    """Integers summing to ``total``, proportional to ``share``, each at most ``room`` (largest remainder)."""
    from ..pruning.allocation import integer_counts

    share = np.asarray(share, dtype=np.float64)
    if share.sum() <= 0:
        share = room.astype(np.float64)
    quota = total * share / share.sum()
    return integer_counts(quota, int(total), np.zeros(room.size, dtype=np.int64), room)


def _grow_in_layers(masks: dict, counts: dict, grow, rng) -> dict:
    grown = {}
    for key, flat in masks.items():
        k = int(counts[key])
        cand = np.flatnonzero(~flat)
        if k <= 0:
            grown[key] = np.zeros(0, dtype=np.int64)
            continue
        if grow is None:
            pick = np.sort(cand[rng.choice(cand.size, size=k, replace=False)])
        else:
            pick = cand[largest_k(np.abs(np.asarray(grow[key]).reshape(-1)[cand]), k)]
        flat[pick] = True
        grown[key] = pick
    return grown


def dsr_update(weights: Mapping[str, Any], masks: Mapping[str, Any], *, threshold: float, n_target: int,
               delta: float = DSR_DELTA, seed: int = 0) -> tuple[dict, dict, float, int]:
    """One DSR update (Mostafa & Wang 2019): global adaptive-threshold pruning, regrowth reallocated across layers.

    Every active weight with ``|w| < threshold`` is pruned (``K`` of them); ``K`` weights are
    regrown at random positions, spread over the layers in proportion to each layer's surviving
    weights (largest-remainder integers, capped by the layer's free positions), so the global
    count is constant while layers trade capacity.  The threshold adapts for the next update:
    doubled when ``K < (1 - δ) n_target``, halved when ``K > (1 + δ) n_target``.

    Returns
    -------
    (new_masks, grown, new_threshold, n_pruned)

    Examples
    --------
    >>> w = {"a": np.array([0.01, 2.0, 0.0, 0.0]), "b": np.array([0.5, 0.02, 3.0, 0.0])}
    >>> m = {"a": np.array([True, True, False, False]), "b": np.array([True, True, True, False])}
    >>> new, grown, h, k = dsr_update(w, m, threshold=0.1, n_target=2)
    >>> k, int(new["a"].sum() + new["b"].sum()), h
    (2, 5, 0.1)
    """
    m = check_masks(masks)
    h = check_finite_scalar("threshold", threshold)
    if h <= 0:
        raise InvalidArgumentError(f"`threshold` must be > 0, got {threshold!r}.")
    n_target = check_int("n_target", n_target, minimum=1)
    rng = np.random.default_rng(check_int("seed", seed, minimum=0))
    flats = {k: v.reshape(-1).copy() for k, v in m.items()}
    n_pruned = 0
    for key, flat in flats.items():
        w = np.abs(np.asarray(_to_numpy(weights[key])).reshape(-1))
        drop = flat & (w < h)
        if drop.sum() >= flat.sum():  # never empty a layer: keep its largest weight
            drop[np.flatnonzero(flat)[np.argmax(w[flat])]] = False
        n_pruned += int(drop.sum())
        flat &= ~drop
    keys = list(flats)
    surv = np.array([flats[k].sum() for k in keys], dtype=np.float64)
    room = np.array([flats[k].size - flats[k].sum() for k in keys], dtype=np.int64)
    counts = dict(zip(keys, _grow_counts(n_pruned, surv, room))) if n_pruned else {k: 0 for k in keys}
    grown = _grow_in_layers(flats, counts, None, rng)
    if n_pruned < (1 - delta) * n_target:
        h *= 2.0
    elif n_pruned > (1 + delta) * n_target:
        h /= 2.0
    return {k: flats[k].reshape(m[k].shape) for k in keys}, grown, h, n_pruned


def snfs_update(weights: Mapping[str, Any], masks: Mapping[str, Any], momentum: Mapping[str, Any], *,
                fraction: float) -> tuple[dict, dict]:
    """One SNFS update (Dettmers & Zettlemoyer 2019): prune by magnitude, redistribute and regrow by momentum.

    Every layer drops ``floor(fraction · n_active)`` of its smallest-magnitude weights (``K`` in
    all); the ``K`` regrown weights are spread over the layers in proportion to each layer's mean
    ``|momentum|`` over its active weights (capped by free positions), and inside a layer the
    inactive positions of largest ``|momentum|`` (of the dense gradient) grow.

    Returns
    -------
    (new_masks, grown)

    Examples
    --------
    >>> w = {"a": np.array([0.01, 2.0, 0.0, 0.0])}
    >>> m = {"a": np.array([True, True, False, False])}
    >>> new, grown = snfs_update(w, m, {"a": np.array([0.0, 1.0, 0.2, 0.9])}, fraction=0.5)
    >>> new["a"].tolist(), grown["a"].tolist()
    ([False, True, False, True], [3])
    """
    f = check_finite_scalar("fraction", fraction)
    if not 0.0 <= f <= 1.0:
        raise InvalidArgumentError(f"`fraction` must lie in [0, 1] (of the active weights), got {fraction!r}.")
    m = check_masks(masks)
    flats, share = {}, {}
    total = 0
    for key, mk in m.items():
        flat = mk.reshape(-1).copy()
        w = np.abs(np.asarray(_to_numpy(weights[key])).reshape(-1))
        mom = np.abs(np.asarray(_to_numpy(momentum[key])).reshape(-1))
        active = np.flatnonzero(flat)
        share[key] = float(mom[active].mean()) if active.size else 0.0
        k = min(int(math.floor(f * active.size)), flat.size - active.size)
        if k > 0:
            flat[active[smallest_k(w[active], k)]] = False
            total += k
        flats[key] = flat
    keys = list(flats)
    room = np.array([flats[k].size - flats[k].sum() for k in keys], dtype=np.int64)
    counts = dict(zip(keys, _grow_counts(total, np.array([share[k] for k in keys]), room))) if total else \
        {k: 0 for k in keys}
    grown = _grow_in_layers(flats, counts, {k: momentum[k] for k in keys}, None)
    return {k: flats[k].reshape(m[k].shape) for k in keys}, grown


def train_dst(module, data, *, method: str, sparsity: float | None = None, masks: Mapping[str, Any] | None = None,
              epochs: int, seed: int, update_every: int = 100, fraction: float | None = None,
              decay: str | None = None, end: float = 0.75, layers=None, **train_options) -> SparseResult:
    """Train with SET, RigL, DSR or SNFS: a fixed number of weights, the topology updated every ``update_every`` steps.

    Parameters
    ----------
    module : torch.nn.Module
    data : tuple (X, y)
    method : {"set", "rigl", "dsr", "snfs"}
        SET and RigL keep every layer's count; DSR and SNFS keep the global count and move
        capacity between layers.
    sparsity : float, optional
        Global sparsity of the initial random masks (ER for SET, ERK for RigL, uniform for DSR
        and SNFS); or give ``masks``.
    masks : Mapping[str, array of bool], optional
        Initial masks keyed by parameter names.
    epochs, seed
        Training budget and seed.
    update_every : int
        ΔT, steps between topology updates (published: 100).
    fraction : float, optional
        ζ (SET), α (RigL), the prune target as a fraction of the active weights (DSR) or the
        prune rate (SNFS); defaults in :data:`DEFAULTS`.
    decay : {"constant", "cosine"}, optional
        Default: constant for SET and DSR, cosine for RigL and SNFS.
    end : float
        Updates stop after this fraction of the training steps (RigL's ``T_end`` = 0.75).
    layers : str or list of str, optional
        Tensors of the initial masks (default ``ndim >= 2``).
    **train_options
        Passed to :func:`~ratedist.sparse.masks.train_masked`.

    Returns
    -------
    SparseResult
        ``history``: one record per update with the per-layer kept counts and the swapped count.
    """
    torch = _torch()
    check_choice("method", method, DST_METHODS)
    init, f0, d0 = DEFAULTS[method]
    fraction = f0 if fraction is None else fraction
    decay = d0 if decay is None else decay
    update_every = check_int("update_every", update_every, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    end = check_finite_scalar("end", end)
    if not 0.0 < end <= 1.0:
        raise InvalidArgumentError(f"`end` must lie in (0, 1] (a fraction of the training steps), got {end!r}.")
    w0 = module_weights(module)
    if masks is None:
        if sparsity is None:
            raise InvalidArgumentError("pass `sparsity` (random initial masks) or `masks`.")
        s = check_sparsity(sparsity)
        from ..pruning.allocation import select_layers

        keys = select_layers(w0, layers)
        m0 = random_masks({k: w0[k] for k in keys}, sparsity=s, seed=seed, method=init)
        masks = {k: m0[k] for k in keys}
    masks = check_masks(masks, w0)
    bs = int(train_options.get("batch_size", 64))
    X, y = data
    t_end = max(1, int(end * epochs * -(-int(X.shape[0]) // bs)))
    gen = torch.Generator().manual_seed(seed + 31337)
    loss_fn = train_options.get("loss_fn") or (lambda mod, xb, yb: torch.nn.functional.cross_entropy(mod(xb), yb))
    params = dict(module.named_parameters())
    history: list = []
    state = {"h": DSR_H0, "momentum": {k: torch.zeros_like(params[k]) for k in masks} if method == "snfs" else None}

    if method == "snfs":  # momentum of the dense gradient, before the masks zero it
        def _acc(p_name):
            def hook(grad):
                mom = state["momentum"][p_name]
                mom.mul_(SNFS_BETA).add_(grad.detach(), alpha=1.0 - SNFS_BETA)
                return grad
            return hook

        handles = [params[k].register_hook(_acc(k)) for k in masks]
    else:
        handles = []

    def cb(step, masked, opt):
        if step % update_every or step >= t_end:
            return
        f = update_fraction(step, alpha=fraction, t_end=t_end, decay=decay)
        cur = masked.numpy_masks()
        w = {k: params[k].detach().cpu().numpy() for k in cur}
        if method == "dsr":
            n_active = sum(int(v.sum()) for v in cur.values())
            new, grown, state["h"], k_pruned = dsr_update(w, cur, threshold=state["h"],
                                                          n_target=max(1, int(f * n_active)),
                                                          seed=seed * 100003 + step)
            masked.set_masks(new, opt)
            history.append({"step": step, "fraction": f, "swapped": k_pruned, "threshold": state["h"],
                            "kept": {k: int(v.sum()) for k, v in new.items()}})
            return
        if method == "snfs":
            mom = {k: state["momentum"][k].cpu().numpy() for k in cur}
            new, grown = snfs_update(w, cur, mom, fraction=f)
            masked.set_masks(new, opt)
            history.append({"step": step, "fraction": f, "swapped": int(sum(g.size for g in grown.values())),
                            "kept": {k: int(v.sum()) for k, v in new.items()}})
            return
        if method == "rigl":
            idx = torch.randint(0, int(X.shape[0]), (bs,), generator=gen)
            module.zero_grad(set_to_none=False)
            loss_fn(module, X[idx], y[idx]).backward()
            grow = {k: params[k].grad.detach().cpu().numpy().copy() for k in cur}
            module.zero_grad(set_to_none=False)
        else:
            grow = "random"
        new, grown = prune_regrow(w, cur, fraction=f, grow=grow, seed=seed * 100003 + step)
        masked.set_masks(new, opt)  # dropped weights and their optimizer state -> 0; grown ones are 0 already
        history.append({"step": step, "fraction": f, "swapped": int(sum(g.size for g in grown.values())),
                        "kept": {k: int(v.sum()) for k, v in new.items()}})

    try:
        out = train_masked(module, masks, data, epochs=epochs, seed=seed, callback=cb, **train_options)
    finally:
        for hd in handles:
            hd.remove()
    m = out["masked"].numpy_masks()
    return SparseResult(masks=m, weights=module_weights(module), sparsity=_sparsity_over(m, list(m)), history=history,
                        extra={"steps": out["steps"], "t_end": t_end, "init": init, "fraction": fraction, "decay": decay})
