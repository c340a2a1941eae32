"""Layer-wise sparsity allocation: global, uniform, adaptive, LAMP, ER and ERK (THEORY.md §7).

Every method works on a plain ``Mapping[str, array]`` and hits the requested
global sparsity exactly: with ``N`` weights in the selected layers it keeps
``n_keep = floor((1 - S) N + 1/2)`` of them, so the achieved sparsity is within
half a weight of the target.  Per-layer counts are integers summing to
``n_keep`` (largest-remainder rounding where a method prescribes per-layer
densities).  Nothing sorts the whole model: thresholds are found by selection
(:func:`numpy.partition`), and ties are broken deterministically.

Tie-breaking rule (the same for every method): weights are ranked by score
(larger is kept first); among equal scores the tensor that comes first in the
mapping wins, and inside one tensor the smaller flat (C-order) index wins.

Layer selection: ``layers=None`` selects every tensor with two or more
dimensions (conv and linear weights, not biases or norm parameters).  Otherwise
``layers`` is a pattern or a list of patterns; a tensor is selected when its
name matches any of them.  A pattern starting with ``"re:"`` is a regular
expression matched with :func:`re.search`; any other pattern is a shell-style
wildcard matched against the whole name with :func:`fnmatch.fnmatchcase`
(``"*.weight"``, ``"features.*"``).  "First" and "last" layer (adaptive) mean
the first and last selected tensors in mapping order.
"""

from __future__ import annotations

import fnmatch
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import _to_numpy, check_choice, check_finite_scalar, check_weights
from ..errors import InvalidArgumentError, InvalidShapeError, UnreachableTargetError

__all__ = [
    "METHODS",
    "PruneResult",
    "prune",
    "apply_masks",
    "select_layers",
    "n_keep_for",
    "integer_counts",
    "er_densities",
    "erk_densities",
    "lamp_scores",
    "topk_mask",
]

METHODS = ("global", "uniform", "adaptive", "lamp", "er", "erk")

#: The most a last layer may be pruned by the adaptive ("Uniform+") heuristic (Gale et al. 2019).
ADAPTIVE_LAST_MAX_SPARSITY = 0.8


@dataclass(frozen=True)
class PruneResult:
    """Masks and per-layer report of one allocation.

    Attributes
    ----------
    masks : dict of str to ndarray of bool
        One mask per tensor of the input, under the same keys and shapes;
        ``True`` means kept.  Tensors that were not selected get all-True masks.
    report : dict of str to dict
        For every selected tensor: ``{"size", "kept", "sparsity"}``.
    sparsity : float
        Achieved sparsity over the selected tensors, ``1 - n_kept / n_selected``.
    target : float
        The requested sparsity ``S``.
    method : str
        One of :data:`METHODS`.
    n_kept, n_selected : int
        Kept and total number of weights in the selected tensors.
    """

    masks: dict
    report: dict
    sparsity: float
    target: float
    method: str
    n_kept: int = 0
    n_selected: int = 0
    densities: dict = field(default_factory=dict)


# ----------------------------------------------------------------------------- selection


def select_layers(weights: Mapping[str, Any], layers=None) -> list[str]:
    """Names of the tensors selected by ``layers`` (see the module docstring), in mapping order.

    >>> w = {"a.weight": np.ones((2, 3)), "a.bias": np.ones(2), "b.weight": np.ones((3, 3))}
    >>> select_layers(w)
    ['a.weight', 'b.weight']
    >>> select_layers(w, "*.bias"), select_layers(w, "re:^b")
    (['a.bias'], ['b.weight'])
    """
    names = list(weights)
    if layers is None:
        chosen = [k for k in names if np.ndim(weights[k]) >= 2 and np.size(weights[k]) > 0]
        if not chosen:
            raise InvalidArgumentError(
                "no tensor of `weights` has 2 or more dimensions, so `layers=None` selects nothing; "
                f"pass `layers` patterns (tensors: {_preview(names)})."
            )
        return chosen
    patterns = [layers] if isinstance(layers, str) else list(layers)
    if not patterns or not all(isinstance(p, str) for p in patterns):
        raise InvalidArgumentError(f"`layers` must be a pattern or a list of patterns (strings), got {layers!r}.")
    matchers = []
    for p in patterns:
        if p.startswith("re:"):
            try:
                rx = re.compile(p[3:])
            except re.error as exc:
                raise InvalidArgumentError(f"`layers` pattern {p!r} is not a valid regular expression: {exc}.") from None
            matchers.append(lambda name, rx=rx: rx.search(name) is not None)
        else:
            matchers.append(lambda name, p=p: fnmatch.fnmatchcase(name, p))
    chosen = [k for k in names if any(m(k) for m in matchers) and np.size(weights[k]) > 0]
    if not chosen:
        raise InvalidArgumentError(
            f"`layers`={layers!r} matches no non-empty tensor of `weights` (tensors: {_preview(names)}); "
            "use shell wildcards like '*.weight' or a regular expression prefixed with 're:'."
        )
    return chosen


def _preview(names: Sequence[str], k: int = 6) -> str:
    shown = ", ".join(repr(n) for n in names[:k])
    return shown + (f", ... ({len(names)} in all)" if len(names) > k else "")


def n_keep_for(sparsity: float, n: int) -> int:
    """The number of weights kept out of ``n`` at sparsity ``S``: ``floor((1 - S) n + 1/2)``.

    >>> n_keep_for(0.9, 1000), n_keep_for(0.0, 7), n_keep_for(0.5, 3)
    (100, 7, 2)
    """
    return int(math.floor((1.0 - float(sparsity)) * int(n) + 0.5))


def _check_sparsity(sparsity) -> float:
    s = check_finite_scalar("sparsity", sparsity)
    if not 0.0 <= s < 1.0:
        raise InvalidArgumentError(
            f"`sparsity` must lie in [0, 1) (the fraction of weights removed), got {sparsity!r}; "
            "for 90 % pruning pass 0.9."
        )
    return s


# ----------------------------------------------------------------------------- integer counts


def integer_counts(quota, total: int, lower, upper) -> np.ndarray:
    """Integers ``c`` with ``lower <= c <= upper``, ``sum(c) == total``, close to ``quota``.

    Largest-remainder rounding: start from ``clip(floor(quota), lower, upper)``,
    then add (or remove) one unit at a time to the layers whose count is
    furthest below (above) its quota; ties go to the earlier layer.

    >>> integer_counts([1.5, 1.5, 1.0], 4, [0, 0, 0], [9, 9, 9]).tolist()
    [2, 1, 1]
    """
    quota = np.asarray(quota, dtype=np.float64)
    lower = np.asarray(lower, dtype=np.int64)
    upper = np.asarray(upper, dtype=np.int64)
    total = int(total)
    if lower.sum() > total or upper.sum() < total:
        raise UnreachableTargetError(
            f"cannot place {total} kept weights with per-layer bounds summing to [{int(lower.sum())}, {int(upper.sum())}]."
        )
    c = np.clip(np.floor(quota).astype(np.int64), lower, upper)
    idx = np.arange(c.size)
    while True:
        deficit = total - int(c.sum())
        if deficit == 0:
            return c
        if deficit > 0:
            room = np.flatnonzero(c < upper)
            gap = quota[room] - c[room]
            order = room[np.lexsort((idx[room], -gap))]
            c[order[:deficit]] += 1
        else:
            room = np.flatnonzero(c > lower)
            gap = c[room] - quota[room]
            order = room[np.lexsort((idx[room], -gap))]
            c[order[:-deficit]] -= 1


# ----------------------------------------------------------------------------- masks from counts


def _abs_scores(arr: np.ndarray) -> np.ndarray:
    a = arr.reshape(-1)
    if a.dtype.kind != "f":
        a = a.astype(np.float64)  # before abs: |int64 min| overflows in integer arithmetic
    elif a.dtype.itemsize < 4:
        a = a.astype(np.float32)
    return np.abs(a)


def topk_mask(score: np.ndarray, k: int, *, threshold=None) -> np.ndarray:
    """Flat boolean mask of the ``k`` largest entries of ``score`` (ties: smaller index kept).

    Uses a partition to find the ``k``-th largest value (or takes it as
    ``threshold`` when the caller knows it), then keeps everything above it and
    the first tied entries.

    >>> topk_mask(np.array([3.0, 1.0, 3.0, 2.0, 3.0]), 2).tolist()
    [True, False, True, False, False]
    """
    score = score.reshape(-1)
    n = score.size
    k = int(k)
    if k <= 0:
        return np.zeros(n, dtype=bool)
    if k >= n:
        return np.ones(n, dtype=bool)
    if threshold is not None:
        t = threshold
    else:
        t = np.partition(score, n - k)[n - k]
    mask = score > t
    need = k - int(np.count_nonzero(mask))
    if need > 0:
        ties = np.flatnonzero(score == t)
        mask[ties[:need]] = True
    return mask


def _cut_counts(scores_by_layer: list[np.ndarray], n_keep: int, *, presorted: bool):
    """Per-layer kept counts of the global top-``n_keep`` over all layers' scores.

    ``presorted`` means every layer's scores are sorted ascending (LAMP);
    then counts come from binary searches.  Ties at the cut go to earlier layers.
    Returns ``(counts, tau)`` with ``tau`` the score of the ``n_keep``-th largest
    (``None`` when everything or nothing is kept).
    """
    sizes = np.array([s.size for s in scores_by_layer], dtype=np.int64)
    n = int(sizes.sum())
    if n_keep <= 0:
        return np.zeros(len(sizes), dtype=np.int64), None
    if n_keep >= n:
        return sizes.copy(), None
    dtype = np.result_type(*[s.dtype for s in scores_by_layer])
    allv = np.concatenate([s.astype(dtype, copy=False) for s in scores_by_layer])
    kth = n - n_keep
    tau = np.partition(allv, kth)[kth]
    del allv
    gt = np.empty(len(sizes), dtype=np.int64)
    eq = np.empty(len(sizes), dtype=np.int64)
    for i, s in enumerate(scores_by_layer):
        if presorted:
            lo = np.searchsorted(s, tau, side="left")
            hi = np.searchsorted(s, tau, side="right")
            gt[i] = s.size - hi
            eq[i] = hi - lo
        else:
            gt[i] = np.count_nonzero(s > tau)
            eq[i] = np.count_nonzero(s == tau)
    need = n_keep - int(gt.sum())
    take = np.minimum(eq, np.maximum(0, need - (np.cumsum(eq) - eq)))
    return gt + take, tau


# ----------------------------------------------------------------------------- densities


def _shape_density_raw(shape: tuple, kind: str) -> float:
    shape = tuple(int(d) for d in shape)
    if kind == "erk" or len(shape) < 2:
        return float(sum(shape)) / float(np.prod(shape, dtype=np.float64))
    return float(shape[0] + shape[1]) / float(shape[0] * shape[1])


def _solve_capped(raw: np.ndarray, sizes: np.ndarray, n_keep_target: float) -> tuple[np.ndarray, float]:
    dense = np.zeros(raw.size, dtype=bool)
    while True:
        rest = ~dense
        budget = n_keep_target - float(sizes[dense].sum())
        denom = float((raw[rest] * sizes[rest]).sum())
        eps = budget / denom if denom > 0 else 0.0
        over = rest & (eps * raw > 1.0)
        if not over.any():
            return np.where(dense, 1.0, np.minimum(1.0, eps * raw)), eps
        dense |= over


def er_densities(shapes: Sequence[tuple], density: float, *, kind: str = "er") -> np.ndarray:
    """Erdős–Rényi (``kind="er"``) or ERK (``kind="erk"``) layer densities with the capacity check.

    Parameters
    ----------
    shapes : sequence of tuple
        Layer weight shapes, ``(out, in)`` for linear layers, ``(out, in, kh, kw)`` for convolutions.
    density : float
        Global density ``1 - S`` in (0, 1].
    kind : {"er", "erk"}
        ER: ``p ∝ (n_in + n_out) / (n_in n_out)``; ERK: ``p ∝ sum(shape) / prod(shape)``.

    Returns
    -------
    ndarray, shape (L,)
        Densities in (0, 1] with ``sum(p * sizes) == density * sum(sizes)`` (to rounding).

    Notes
    -----
    ``p_l = min(1, ε r_l)``; ε solves the budget.  A layer whose ``ε r_l``
    exceeds 1 is made dense and ε re-solved for the others, until none does
    (Mocanu et al. 2018; Evci et al. 2020; THEORY.md §7).

    >>> p = erk_densities([(64, 3, 3, 3), (128, 64, 3, 3), (10, 128)], 0.1)
    >>> bool(np.all((p > 0) & (p <= 1)))
    True
    """
    check_choice("kind", kind, ("er", "erk"))
    d = check_finite_scalar("density", density)
    if not 0.0 < d <= 1.0:
        raise InvalidArgumentError(f"`density` must lie in (0, 1], got {density!r}.")
    shapes = [tuple(s) for s in shapes]
    if not shapes or any(len(s) == 0 or min(s) <= 0 for s in shapes):
        raise InvalidShapeError(f"`shapes` must be non-empty shapes with positive dimensions, got {shapes!r}.")
    sizes = np.array([float(np.prod(s, dtype=np.float64)) for s in shapes])
    raw = np.array([_shape_density_raw(s, kind) for s in shapes])
    p, _ = _solve_capped(raw, sizes, d * sizes.sum())
    return p


def erk_densities(shapes: Sequence[tuple], density: float) -> np.ndarray:
    """ERK densities: :func:`er_densities` with ``kind="erk"``."""
    return er_densities(shapes, density, kind="erk")


# ----------------------------------------------------------------------------- LAMP


def lamp_scores(w) -> np.ndarray:
    """LAMP scores of one layer, in the layer's shape (Lee et al. 2021; THEORY.md §7).

    ``score(u) = W[u]^2 / sum_{v >= u} W[v]^2`` with weights sorted ascending by
    magnitude (ties in that order by flat index).  The largest weight scores 1.

    >>> lamp_scores(np.array([1.0, -2.0, 2.0])).round(4).tolist()
    [0.1111, 0.5, 1.0]
    """
    a = _abs_scores(np.asarray(w, dtype=np.float64))
    order = np.argsort(a, kind="stable")
    s = _lamp_sorted(a[order])
    out = np.empty_like(s)
    out[order] = s
    return out.reshape(np.shape(w))


def _lamp_sorted(a_sorted: np.ndarray) -> np.ndarray:
    """LAMP scores of ascending magnitudes (float64; the last one set to 1).

    Only the weights at or above a position enter its suffix sum, so the scores
    of the top ``m`` magnitudes of a layer need only those ``m`` values.
    """
    sq = a_sorted.astype(np.float64)
    np.multiply(sq, sq, out=sq)
    suffix = np.cumsum(sq[::-1])[::-1]
    s = np.zeros_like(sq)
    np.divide(sq, suffix, out=s, where=suffix > 0)
    s[-1] = 1.0
    return s


#: LAMP candidate set: the top ``ceil(LAMP_CANDIDATE_FACTOR * density * n)`` magnitudes of a layer
#: (at least ``LAMP_MIN_CANDIDATES``), enlarged 4x for a layer whose cut falls outside it.
LAMP_CANDIDATE_FACTOR = 2.0
LAMP_MIN_CANDIDATES = 4096


def _lamp_counts(mags: list[np.ndarray], n_keep: int):
    """Per-layer kept counts of LAMP and each layer's magnitude threshold.

    Computes LAMP scores only on a candidate set of each layer's largest
    magnitudes (found by partition, then sorted): a weight's score depends only
    on the weights above it, so candidate scores are exact.  The global cut is
    valid when every truncated layer prunes at least one candidate (then all
    non-candidates, whose scores are no larger, are pruned too); otherwise the
    offending layers' candidate sets grow and the cut is redone.
    """
    sizes = np.array([a.size for a in mags], dtype=np.int64)
    density = n_keep / float(sizes.sum())
    m = np.minimum(sizes, np.maximum(LAMP_MIN_CANDIDATES,
                                     np.ceil(LAMP_CANDIDATE_FACTOR * density * sizes).astype(np.int64)))
    tops: list = [None] * len(mags)
    lamps: list = [None] * len(mags)
    todo = np.arange(len(mags))
    while True:
        for i in todo:
            a, n, mi = mags[i], int(sizes[i]), int(m[i])
            top = np.sort(a) if mi >= n else np.sort(np.partition(a, n - mi)[n - mi:])
            tops[i] = top
            lamps[i] = _lamp_sorted(top)
        counts, _ = _cut_counts(lamps, n_keep, presorted=True)
        bad = np.flatnonzero((m < sizes) & (counts >= m))
        if bad.size == 0:
            break
        m[bad] = np.minimum(sizes[bad], 4 * m[bad])
        todo = bad
    thresholds = [top[top.size - c] if 0 < c <= top.size else None for top, c in zip(tops, counts)]
    return counts, thresholds


# ----------------------------------------------------------------------------- main entry


def _check_scores(scores, names, arrays) -> dict[str, np.ndarray]:
    if not isinstance(scores, Mapping):
        raise InvalidArgumentError(f"`scores` must be a mapping of tensor names to arrays, got {type(scores).__name__}.")
    out = {}
    for k in names:
        if k not in scores:
            raise InvalidArgumentError(f"`scores` has no entry for selected tensor {k!r}; give a score for every selected tensor.")
        s = _to_numpy(scores[k])
        if s.shape != arrays[k].shape:
            raise InvalidShapeError(f"`scores`[{k!r}] has shape {s.shape}, but the weight has shape {arrays[k].shape}.")
        if s.dtype.kind not in "fiub":
            raise InvalidArgumentError(f"`scores`[{k!r}] has non-numeric dtype {s.dtype}.")
        if s.dtype.kind != "f" or s.dtype.itemsize < 4:
            s = s.astype(np.float64)
        if not np.all(np.isfinite(s)):
            raise InvalidArgumentError(f"`scores`[{k!r}] contains NaN or infinite values; scores must be finite.")
        out[k] = s.reshape(-1)
    return out


def prune(weights: Mapping[str, Any], *, method: str = "global", sparsity: float, layers=None,
          scores: Mapping[str, Any] | None = None) -> PruneResult:
    """Prune a weight mapping to a global sparsity with one of the allocation baselines.

    Parameters
    ----------
    weights : Mapping[str, array]
        A state_dict-like mapping (NumPy, torch or CuPy arrays).  NaN or inf raise.
    method : {"global", "uniform", "adaptive", "lamp", "er", "erk"}
        ``global``: one magnitude threshold over all selected weights (may empty a layer).
        ``uniform``: every layer at sparsity ``S``.  ``adaptive``: first layer
        dense, last layer at most 80 % sparse, the rest uniform at the level that
        meets ``S``.  ``lamp``: LAMP scores, then a global cut.  ``er``/``erk``:
        Erdős–Rényi(-Kernel) densities with the capacity check.  Every method but
        ``global`` keeps at least one weight per layer.
    sparsity : float
        Target fraction ``S`` in [0, 1) of the selected weights to remove.
    layers : str or list of str, optional
        Name patterns (module docstring); default: every tensor with ``ndim >= 2``.
    scores : Mapping[str, array], optional
        Saliency to rank by instead of ``|w|`` (larger is kept), one array per
        selected tensor with the tensor's shape.  LAMP uses ``|scores|`` in place
        of ``|w|``.

    Returns
    -------
    PruneResult
        ``masks`` under the same keys as ``weights``; exactly
        ``floor((1 - S) N + 1/2)`` weights kept among the ``N`` selected.

    Raises
    ------
    InvalidArgumentError
        ``sparsity`` outside [0, 1), unknown ``method``, no tensor matching ``layers``, NaN weights.
    UnreachableTargetError
        The method cannot meet ``S`` (e.g. fewer kept weights than layers for a
        method that never empties a layer, or adaptive with a dense first layer
        larger than the budget).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> w = {"fc1": rng.normal(size=(30, 20)), "fc2": rng.normal(size=(10, 30)), "b": np.zeros(10)}
    >>> r = prune(w, method="lamp", sparsity=0.9)
    >>> r.n_kept, r.n_selected, sorted(r.masks) == sorted(w), bool(r.masks["b"].all())
    (90, 900, True, True)
    """
    check_choice("method", method, METHODS)
    s = _check_sparsity(sparsity)
    arrays = check_weights("weights", weights)
    names = select_layers(arrays, layers)
    if scores is None:
        score = {k: _abs_scores(arrays[k]) for k in names}
    else:
        score = _check_scores(scores, names, arrays)
        if method == "lamp":
            score = {k: np.abs(v) for k, v in score.items()}
    sizes = np.array([arrays[k].size for k in names], dtype=np.int64)
    n_total = int(sizes.sum())
    n_keep = n_keep_for(s, n_total)
    L = len(names)
    densities: dict = {}

    if method != "global" and n_keep < L:
        raise UnreachableTargetError(
            f"`sparsity`={s!r} keeps {n_keep} of {n_total} weights, fewer than the {L} selected layers, "
            f"but method {method!r} keeps at least one weight per layer; the largest reachable sparsity is "
            f"{1 - L / n_total:.6g} (or use method='global')."
        )

    flat_masks: dict[str, np.ndarray] = {}
    if method == "global":
        counts, tau = _cut_counts([score[k] for k in names], n_keep, presorted=False)
        for k, c in zip(names, counts):
            if tau is None or c == 0 or c == score[k].size:
                flat_masks[k] = np.full(score[k].size, bool(c), dtype=bool)
                continue
            m = score[k] > tau  # the global threshold, then this layer's share of the ties
            need = int(c) - int(np.count_nonzero(m))
            if need > 0:
                m[np.flatnonzero(score[k] == tau)[:need]] = True
            flat_masks[k] = m
    elif method == "lamp":
        counts, thresholds = _lamp_counts([score[k] for k in names], n_keep)
        for k, c, t in zip(names, counts, thresholds):
            flat_masks[k] = topk_mask(score[k], c, threshold=t)
    else:
        if method == "uniform":
            quota = (1.0 - s) * sizes
            lower = np.ones(L, dtype=np.int64)
        elif method == "adaptive":
            quota, lower = _adaptive_quota(s, sizes, n_keep)
        else:  # er / erk
            p = er_densities([arrays[k].shape for k in names], max(n_keep, 1) / n_total, kind=method)
            quota = p * sizes
            lower = np.ones(L, dtype=np.int64)
            densities = {k: float(v) for k, v in zip(names, p)}
        counts = integer_counts(quota, n_keep, lower, sizes)
        for k, c in zip(names, counts):
            flat_masks[k] = topk_mask(score[k], c)

    masks = {}
    report = {}
    kept_total = 0
    for k, a in arrays.items():
        if k in flat_masks:
            m = flat_masks[k].reshape(a.shape)
            kept = int(np.count_nonzero(m))
            kept_total += kept
            report[k] = {"size": int(a.size), "kept": kept, "sparsity": 1.0 - kept / a.size}
            masks[k] = m
        else:
            masks[k] = np.ones(a.shape, dtype=bool)
    assert kept_total == n_keep, (kept_total, n_keep)  # exactness is the contract
    return PruneResult(masks=masks, report=report, sparsity=1.0 - kept_total / n_total, target=s,
                       method=method, n_kept=kept_total, n_selected=n_total, densities=densities)


def _adaptive_quota(s: float, sizes: np.ndarray, n_keep: int):
    """Quotas of the adaptive ("Uniform+") heuristic: first dense, last <= 80 % sparse, rest uniform."""
    L = sizes.size
    n_total = int(sizes.sum())
    s_last_max = ADAPTIVE_LAST_MAX_SPARSITY
    n1, nL = float(sizes[0]), float(sizes[-1])
    lower = np.ones(L, dtype=np.int64)
    lower[0] = sizes[0]
    if L == 1:
        if n_keep != sizes[0]:
            raise UnreachableTargetError(
                f"method 'adaptive' keeps the first layer dense; with one selected layer only `sparsity`=0 is reachable, got {s!r}."
            )
        return np.array([n1]), lower
    last_min = int(math.ceil((1.0 - s_last_max) * sizes[-1] - 1e-9))
    lower[-1] = max(1, last_min)
    min_keep = int(lower.sum())
    if n_keep < min_keep:
        raise UnreachableTargetError(
            f"method 'adaptive' keeps the first layer dense ({int(n1)} weights), the last at least "
            f"{int(lower[-1])} weights (<= {s_last_max:.0%} sparse) and one weight per other layer, i.e. "
            f">= {min_keep} of {n_total}; `sparsity`={s!r} keeps only {n_keep}. The largest reachable "
            f"sparsity is {1 - min_keep / n_total:.6g}."
        )
    quota = np.empty(L)
    quota[0] = n1
    rest = float(sizes[1:].sum())
    s_mid = 1.0 - (n_keep - n1) / rest
    if s_mid <= s_last_max or L == 2:
        quota[1:] = (1.0 - s_mid) * sizes[1:]
        if L == 2:
            quota[-1] = n_keep - n1
    else:
        mid = float(sizes[1:-1].sum())
        keep_last = (1.0 - s_last_max) * nL
        s_mid = 1.0 - (n_keep - n1 - keep_last) / mid
        quota[1:-1] = (1.0 - s_mid) * sizes[1:-1]
        quota[-1] = keep_last
    return quota, lower


def apply_masks(weights: Mapping[str, Any], masks: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Zero the pruned weights: same keys, shapes and dtypes as ``weights``.

    Tensors without a mask are returned unchanged (as NumPy arrays).

    >>> apply_masks({"w": np.array([1.0, 2.0])}, {"w": np.array([True, False])})["w"].tolist()
    [1.0, 0.0]
    """
    arrays = check_weights("weights", weights)
    if not isinstance(masks, Mapping):
        raise InvalidArgumentError(f"`masks` must be a mapping of tensor names to boolean arrays, got {type(masks).__name__}.")
    extra = [k for k in masks if k not in arrays]
    if extra:
        raise InvalidArgumentError(f"`masks` has tensors {_preview(extra)} that are not in `weights`.")
    out = {}
    for k, a in arrays.items():
        if k in masks:
            m = _to_numpy(masks[k])
            if m.shape != a.shape:
                raise InvalidShapeError(f"`masks`[{k!r}] has shape {m.shape}, but the weight has shape {a.shape}.")
            out[k] = np.where(m.astype(bool), a, np.zeros((), dtype=a.dtype)).astype(a.dtype, copy=False)
        else:
            out[k] = a.copy()
    return out
