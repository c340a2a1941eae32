"""Iterative magnitude pruning and the lottery ticket procedure, with rewinding and controls (docs/theory.md §7).

Framework-free: :func:`magnitude_step` (one nested magnitude pruning step on NumPy weights)
and :func:`rewind` semantics (:func:`rewound_weights`).  Torch loops (the ``torch`` extra):

* :func:`gradual_magnitude_pruning` — Zhu & Gupta's cubic schedule *during* training: the
  sparsity follows ``cubic_schedule`` between ``begin`` and ``end`` (fractions of the training
  steps), pruning every ``every`` steps (Gale et al. 2019 use 10 %–75 % of training);
* :func:`iterative_magnitude_pruning` — rounds of train → prune → retrain with the
  20 %-per-round sequence (or any increasing list of sparsities);
* :func:`lottery_ticket` — Frankle & Carbin (2019): train, prune, rewind the kept weights to
  their values at initialization (``rewind_step=0``) or after ``k`` optimizer steps (Frankle
  et al. 2020's rewinding), retrain; iterated over rounds.  Controls: ``control="reinit"`` (the
  same mask, fresh random weights) and ``control="random_mask"`` (the rewound weights under a
  layer-wise reshuffled mask with the same per-layer counts).

Masks are nested: a later round never revives a pruned weight, and each step keeps exactly
``round((1 - S) N)`` weights (:func:`ratedist.pruning.prune`'s contract).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_choice, check_finite_scalar, check_int, check_weights
from ..errors import InvalidArgumentError
from ..pruning.allocation import prune
from ..pruning.schedules import cubic_schedule, geometric_schedule
from .masks import _torch, check_masks, check_sparsity, module_weights, reshuffle_masks, train_masked

__all__ = [
    "magnitude_step",
    "rewound_weights",
    "check_schedule",
    "SparseResult",
    "gradual_magnitude_pruning",
    "iterative_magnitude_pruning",
    "lottery_ticket",
]


def magnitude_step(weights: Mapping[str, Any], masks: Mapping[str, Any] | None, sparsity: float, *,
                   method: str = "global", layers=None) -> dict[str, np.ndarray]:
    """One nested magnitude-pruning step: the largest ``|w|`` among the kept weights survive.

    Parameters
    ----------
    weights : Mapping[str, array]
    masks : Mapping[str, array of bool] or None
        The current masks (``None``: dense).  Pruned weights are never revived.
    sparsity : float
        The new global sparsity in [0, 1) over the selected tensors; must not be below the
        current one.
    method : str
        Allocation of :func:`ratedist.pruning.prune` (``"global"``, ``"uniform"``, ``"erk"``, ...).
    layers : str or list of str, optional

    Returns
    -------
    dict of str to ndarray of bool

    Examples
    --------
    >>> w = {"a": np.array([[4.0, -1.0], [0.5, 3.0]])}
    >>> m1 = magnitude_step(w, None, 0.5)
    >>> magnitude_step(w, m1, 0.75)["a"].tolist()
    [[True, False], [False, False]]
    """
    s = check_sparsity(sparsity)
    w = check_weights("weights", weights)
    if masks is None:
        return prune(w, method=method, sparsity=s, layers=layers).masks
    m = check_masks(masks, w)
    scores = {}
    for k, a in w.items():
        sc = np.abs(a.astype(np.float64))
        if k in m:
            sc = np.where(m[k], sc, -1.0)  # pruned weights rank below every kept one
        scores[k] = sc
    res = prune(w, method=method, sparsity=s, layers=layers, scores=scores)
    out = {}
    for k, a in res.masks.items():
        out[k] = a & m[k] if k in m else a
    kept_before = sum(int(m[k].sum()) for k in res.report if k in m)
    if kept_before < res.n_kept:
        raise InvalidArgumentError(
            f"`sparsity`={s!r} keeps {res.n_kept} weights, more than the {kept_before} the current `masks` "
            "keep; magnitude pruning never revives weights, so pass a sparsity at least the current one."
        )
    return out


def rewound_weights(stored: Mapping[str, Any], masks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The stored (initial or early) weights with the pruned ones zeroed: the rewound network.

    Kept entries are the stored values bit for bit.

    >>> rewound_weights({"a": np.array([0.5, -0.25])}, {"a": np.array([True, False])})["a"].tolist()
    [0.5, 0.0]
    """
    w = check_weights("stored", stored)
    m = check_masks(masks, w)
    return {k: (np.where(m[k], a, np.zeros((), a.dtype)) if k in m else a.copy()) for k, a in w.items()}


def check_schedule(sparsities: Sequence[float]) -> np.ndarray:
    """Validate a pruning schedule: a non-empty, non-decreasing sequence of sparsities in [0, 1).

    >>> check_schedule([0.2, 0.36]).tolist()
    [0.2, 0.36]
    """
    s = np.asarray(sparsities, dtype=np.float64).reshape(-1)
    if s.size == 0:
        raise InvalidArgumentError("`schedule` is empty; give at least one sparsity.")
    for v in s:
        check_sparsity(float(v))
    if np.any(np.diff(s) < 0):
        raise InvalidArgumentError(f"`schedule` must be non-decreasing (pruning never revives weights), got {s.tolist()}.")
    return s


@dataclass
class SparseResult:
    """What a sparse training run returns.

    Attributes
    ----------
    masks : dict of str to ndarray of bool
        Final masks, keyed by parameter name.
    weights : dict of str to ndarray
        Final weights (pruned entries exactly zero).
    sparsity : float
        Achieved sparsity over the masked tensors.
    history : list of dict
        One record per pruning event or round.
    extra : dict
        Method-specific data (e.g. the rewind point of a lottery ticket).
    """

    masks: dict
    weights: dict
    sparsity: float
    history: list = field(default_factory=list)
    extra: dict = field(default_factory=dict)


def _sparsity_over(masks: Mapping[str, np.ndarray], keys) -> float:
    n = sum(masks[k].size for k in keys)
    return 1.0 - sum(int(masks[k].sum()) for k in keys) / n


def _selected(module, layers) -> list[str]:
    from ..pruning.allocation import select_layers

    return select_layers(module_weights(module), layers)


def gradual_magnitude_pruning(module, data, *, sparsity: float, epochs: int, seed: int, begin: float = 0.1,
                              end: float = 0.75, every: int = 10, method: str = "global", layers=None,
                              **train_options) -> SparseResult:
    """Gradual magnitude pruning during training with the cubic schedule (Zhu & Gupta 2017).

    Parameters
    ----------
    module : torch.nn.Module
        Trained from its current weights.
    data : tuple (X, y)
    sparsity : float
        Final sparsity in [0, 1).
    epochs : int
        Training epochs in all (the budget).
    seed : int
    begin, end : float
        The pruning window as fractions of the total steps, ``0 <= begin < end <= 1``
        (Gale et al. 2019 prune from 10 % to 75 % of training; the final sparsity holds from ``end`` on).
    every : int
        Steps between pruning events (``>= 1``).
    method, layers
        Allocation and tensors of :func:`magnitude_step`.
    **train_options
        Passed to :func:`~ratedist.sparse.masks.train_masked` (``lr``, ``batch_size``, ...).

    Returns
    -------
    SparseResult
    """
    s_f = check_sparsity(sparsity)
    begin = check_finite_scalar("begin", begin)
    end = check_finite_scalar("end", end)
    if not 0.0 <= begin < end <= 1.0:
        raise InvalidArgumentError(f"the pruning window must satisfy 0 <= `begin` < `end` <= 1 (a schedule that ends "
                                   f"after it starts), got begin={begin!r}, end={end!r}.")
    every = check_int("every", every, minimum=1)
    epochs = check_int("epochs", epochs, minimum=1)
    X = data[0]
    bs = int(train_options.get("batch_size", 64))
    steps_total = epochs * -(-int(X.shape[0]) // bs)
    t0, t1 = int(round(begin * steps_total)), max(int(round(end * steps_total)), int(round(begin * steps_total)) + 1)
    n_events = max(1, (t1 - t0) // every)
    keys = _selected(module, layers)
    masks0 = {k: np.ones(tuple(p.shape), dtype=bool) for k, p in module.named_parameters() if k in keys}
    history: list = []

    def cb(step, masked, opt):
        if step < t0 + every or step > t0 + n_events * every or (step - t0) % every:
            return
        s_t = float(cubic_schedule(step, s_i=0.0, s_f=s_f, t0=t0, n=n_events, dt=every))
        cur = masked.numpy_masks()
        if s_t <= _sparsity_over(cur, keys) + 0.5 / sum(cur[k].size for k in keys):
            return
        new = magnitude_step(module_weights(module), cur, s_t, method=method, layers=keys)
        masked.set_masks({k: new[k] for k in cur}, opt)
        history.append({"step": step, "target": s_t, "sparsity": _sparsity_over(masked.numpy_masks(), keys)})

    out = train_masked(module, masks0, data, epochs=epochs, seed=seed, callback=cb, **train_options)
    m = out["masked"].numpy_masks()
    if _sparsity_over(m, keys) + 1e-12 < s_f - 1.0 / sum(m[k].size for k in keys):  # too few steps: finish now
        new = magnitude_step(module_weights(module), m, s_f, method=method, layers=keys)
        out["masked"].set_masks({k: new[k] for k in m})
        m = out["masked"].numpy_masks()
        history.append({"step": out["steps"], "target": s_f, "sparsity": _sparsity_over(m, keys)})
    return SparseResult(masks=m, weights=module_weights(module), sparsity=_sparsity_over(m, keys), history=history,
                        extra={"steps": out["steps"], "window": (t0, t0 + n_events * every)})


def iterative_magnitude_pruning(module, data, *, schedule: Sequence[float] | None = None, sparsity: float | None = None,
                                rate: float = 0.2, epochs_first: int, epochs_per_round: int, seed: int,
                                method: str = "global", layers=None, **train_options) -> SparseResult:
    """Rounds of train → prune → retrain (Han et al. 2015; the 20 %-per-round protocol).

    Parameters
    ----------
    module : torch.nn.Module
    data : tuple (X, y)
    schedule : sequence of float, optional
        The sparsity after each round (non-decreasing, in [0, 1)).  Default: the
        ``rate``-per-round sequence ``1 - (1 - rate)^k`` up to the first level reaching
        ``sparsity``, whose last entry is replaced by ``sparsity`` itself.
    sparsity : float, optional
        Final sparsity (needed when ``schedule`` is not given).
    rate : float
        Fraction of the remaining weights pruned per round (default 0.2).
    epochs_first, epochs_per_round : int
        Dense training before the first round; masked retraining after each round.
    seed : int
    method, layers, **train_options
        As in :func:`gradual_magnitude_pruning`.

    Returns
    -------
    SparseResult
    """
    if schedule is None:
        if sparsity is None:
            raise InvalidArgumentError("pass `schedule` (sparsities per round) or `sparsity` (the final target).")
        schedule = _rounds_to(check_sparsity(sparsity), rate)
    sched = check_schedule(schedule)
    keys = _selected(module, layers)
    train_masked(module, None, data, epochs=epochs_first, seed=seed, **train_options)
    masks = None
    history = []
    for r, s in enumerate(sched):
        masks = magnitude_step(module_weights(module), masks, float(s), method=method, layers=keys)
        train_masked(module, masks, data, epochs=epochs_per_round, seed=seed + 7919 * (r + 1), **train_options)
        history.append({"round": r + 1, "target": float(s), "sparsity": _sparsity_over(masks, keys)})
    masks = {k: masks[k] for k in keys}
    return SparseResult(masks=masks, weights=module_weights(module), sparsity=_sparsity_over(masks, keys),
                        history=history)


def _rounds_to(s: float, rate: float) -> list[float]:
    if s == 0.0:
        return [0.0]
    k = 1
    while 1.0 - (1.0 - rate) ** k < s - 1e-12:
        k += 1
    levels = geometric_schedule(k, rate).tolist()
    levels[-1] = s
    return levels


def lottery_ticket(module, data, *, sparsity: float, epochs: int, seed: int, rounds: int = 1,
                   rewind_step: int = 0, control: str | None = None, method: str = "global", layers=None,
                   reinit: Callable[[Any], None] | None = None, **train_options) -> SparseResult:
    """The lottery ticket procedure (Frankle & Carbin 2019), with rewinding and the two controls.

    1. Store the weights after ``rewind_step`` optimizer steps (0: the initialization);
    2. train for ``epochs`` (densely, or under the current mask);
    3. prune by magnitude to the round's sparsity (``rounds`` rounds on the geometric path
       ``1 - (1 - S)^(r / rounds)``, nested masks);
    4. rewind: kept weights back to the stored values, bit for bit; go to 2 for the next round;
    5. after the last prune and rewind, train the ticket for ``epochs``.

    Parameters
    ----------
    module : torch.nn.Module
        Its current weights are the initialization.
    data : tuple (X, y)
    sparsity : float
        Final sparsity in [0, 1).
    epochs : int
        Epochs of every training (the procedure trains ``rounds + 1`` times).
    seed : int
    rounds : int
        Prune–rewind rounds (1: one-shot).
    rewind_step : int
        Optimizer steps of the first training after which the rewind point is stored
        (``0``: rewind to initialization; Frankle et al. 2020 rewind to an early ``k``).
    control : {None, "reinit", "random_mask"}
        ``"reinit"``: the final mask with freshly initialized weights (``reinit(module)``,
        default: every submodule's ``reset_parameters`` under ``seed + 1``), the random
        reinitialization control; ``"random_mask"``: the rewound weights under a layer-wise
        reshuffle of the final mask (same per-layer counts), the random-mask control.
    method, layers, **train_options
        As in :func:`gradual_magnitude_pruning`.

    Returns
    -------
    SparseResult
        ``extra["rewind_weights"]``: the stored rewind point (NumPy copies);
        ``extra["ticket_init"]``: the weights the final training started from.
    """
    torch = _torch()
    s = check_sparsity(sparsity)
    rounds = check_int("rounds", rounds, minimum=1)
    rewind_step = check_int("rewind_step", rewind_step, minimum=0)
    check_choice("control", control, (None, "reinit", "random_mask"))
    keys = _selected(module, layers)
    stored: dict = {}
    if rewind_step == 0:
        stored.update(module_weights(module))

    def keep(step, masked, opt):
        if step == rewind_step:
            stored.update(module_weights(module))

    masks = None
    history = []
    for r in range(1, rounds + 1):
        train_masked(module, masks, data, epochs=epochs, seed=seed + 104729 * r,
                     callback=keep if (r == 1 and rewind_step > 0) else None, **train_options)
        if not stored:
            raise InvalidArgumentError(f"`rewind_step`={rewind_step} is past the end of the first training "
                                       "(fewer optimizer steps); lower it or train longer.")
        s_r = 1.0 - (1.0 - s) ** (r / rounds) if r < rounds else s
        masks = magnitude_step(module_weights(module), masks, s_r, method=method, layers=keys)
        history.append({"round": r, "target": s_r, "sparsity": _sparsity_over(masks, keys)})
        _load(torch, module, rewound_weights(stored, masks))
    final_masks = {k: masks[k] for k in keys}
    if control == "random_mask":
        final_masks = reshuffle_masks(final_masks, seed=seed + 2)
        _load(torch, module, rewound_weights(stored, final_masks))
    elif control == "reinit":
        if reinit is None:
            torch.manual_seed(seed + 1)
            for sub in module.modules():
                if hasattr(sub, "reset_parameters"):
                    sub.reset_parameters()
        else:
            reinit(module)
        _load(torch, module, rewound_weights(module_weights(module), final_masks))
    ticket_init = module_weights(module)
    train_masked(module, final_masks, data, epochs=epochs, seed=seed + 104729 * (rounds + 1), **train_options)
    return SparseResult(masks=final_masks, weights=module_weights(module), sparsity=_sparsity_over(final_masks, keys),
                        history=history, extra={"rewind_weights": dict(stored), "ticket_init": ticket_init,
                                                "rewind_step": rewind_step, "control": control})


def _load(torch, module, weights: Mapping[str, np.ndarray]) -> None:
    with torch.no_grad():
        for k, p in module.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(weights[k])).to(p.dtype).reshape(p.shape))
