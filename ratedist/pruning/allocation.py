"""Layer-wise sparsity allocation: global, uniform, adaptive, LAMP, ER and ERK (docs/theory.md §7).

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
    "STREAM_CHUNK",
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
    return _take_ties(gt, eq, n_keep), tau


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
    (Mocanu et al. 2018; Evci et al. 2020; docs/theory.md §7).

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
    """LAMP scores of one layer, in the layer's shape (Lee et al. 2021; docs/theory.md §7).

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


def _lamp_counts(sizes: np.ndarray, top_of, n_keep: int, cut=None):
    """Per-layer kept counts of LAMP and each layer's magnitude threshold.

    ``top_of(i, m)`` returns the ``m`` largest magnitudes of layer ``i`` sorted ascending;
    ``cut`` replaces :func:`_cut_counts` (the streaming path's selection, without concatenating).
    Computes LAMP scores only on a candidate set of each layer's largest
    magnitudes (found by partition, then sorted): a weight's score depends only
    on the weights above it, so candidate scores are exact.  The global cut is
    valid when every truncated layer prunes at least one candidate (then all
    non-candidates, whose scores are no larger, are pruned too); otherwise the
    offending layers' candidate sets grow and the cut is redone.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    density = n_keep / float(sizes.sum())
    m = np.minimum(sizes, np.maximum(LAMP_MIN_CANDIDATES,
                                     np.ceil(LAMP_CANDIDATE_FACTOR * density * sizes).astype(np.int64)))
    tops: list = [None] * sizes.size
    lamps: list = [None] * sizes.size
    todo = np.arange(sizes.size)
    while True:
        for i in todo:
            top = top_of(int(i), int(m[i]))  # the m[i] largest magnitudes of layer i, ascending
            tops[i] = top
            lamps[i] = _lamp_sorted(top)
        counts, _ = (cut or _cut_counts)(lamps, n_keep, presorted=True)
        bad = np.flatnonzero((m < sizes) & (counts >= m))
        if bad.size == 0:
            break
        m[bad] = np.minimum(sizes[bad], 4 * m[bad])
        todo = bad
    thresholds = [top[top.size - c] if 0 < c <= top.size else None for top, c in zip(tops, counts)]
    return counts, thresholds


# ----------------------------------------------------------------------------- streaming (bounded memory)
#
# The streaming path reads each tensor in chunks of STREAM_CHUNK elements and never holds more than
# one chunk's scores at a time.  Exact k-th values come from a radix selection written here (numpy
# has no out-of-core selection): a histogram of the top bits of an order-preserving integer key of
# every score brackets the k-th value; the bracket is narrowed by further histograms until it holds
# at most STREAM_CHUNK values, which are then gathered and partitioned (or until every bit is fixed,
# when the bracket is one value: heavy ties).  The value found is the value np.partition finds, so
# the masks are those of the in-memory path, bit for bit.

#: Elements per chunk of the streaming passes (and the most values one exact selection gathers).
STREAM_CHUNK = 1 << 20
_RADIX_BITS = 16


def _shape_of(weights: Mapping, name: str) -> tuple[int, ...]:
    from ..io import WeightsSource

    if isinstance(weights, WeightsSource):
        return tuple(int(d) for d in weights.shape(name))
    return tuple(int(d) for d in np.shape(_to_numpy(weights[name])))


def _flat_stored(weights: Mapping, name: str) -> np.ndarray:
    """Tensor ``name`` flattened, without converting it: memory-mapped and in its stored dtype for a WeightsSource."""
    from ..io import WeightsSource

    a = weights.raw(name) if isinstance(weights, WeightsSource) else _to_numpy(weights[name])
    return a.reshape(-1)


def _phantoms(weights: Mapping, names) -> dict[str, np.ndarray]:
    """Zero-stride stand-ins with the tensors' shapes (no memory), for shape-only logic such as :func:`select_layers`."""
    return {k: np.lib.stride_tricks.as_strided(np.zeros(1, dtype=np.uint8), shape=_shape_of(weights, k),
                                               strides=(0,) * len(_shape_of(weights, k)), writeable=False)
            for k in names}


def _chunks(flat: np.ndarray, chunk: int):
    n = flat.shape[0]
    for i in range(0, n, chunk):
        yield i, flat[i:i + chunk]


def _check_stream_tensors(weights: Mapping, what: str = "weights", names=None) -> None:
    """The checks of :func:`check_weights` (string keys, numeric dtype, finite values), one chunk at a time."""
    from ..io import WeightsSource
    from ..io._dtypes import compute_dtype, to_compute

    if not isinstance(weights, Mapping):
        raise InvalidArgumentError(
            f"`{what}` must be a mapping of tensor names to arrays (a state_dict), got {type(weights).__name__}.")
    if len(weights) == 0:
        raise InvalidArgumentError(f"`{what}` is an empty mapping; pass at least one tensor.")
    src = isinstance(weights, WeightsSource)
    for key in (weights if names is None else names):
        if not isinstance(key, str):
            raise InvalidArgumentError(f"`{what}` keys must be strings, got {key!r}.")
        flat = _flat_stored(weights, key)
        dt = compute_dtype(weights.stored_dtype(key)) if src else flat.dtype
        if dt.kind not in "fiub":
            raise InvalidArgumentError(f"tensor {key!r} of `{what}` has non-numeric dtype {dt}.")
        if dt.kind == "f":
            bad = 0
            for _, c in _chunks(flat, STREAM_CHUNK):
                bad += int(np.count_nonzero(~np.isfinite(to_compute(c))))
            if bad:
                raise InvalidArgumentError(
                    f"tensor {key!r} of `{what}` contains {bad} NaN or infinite value(s) out of {flat.size}; "
                    "fix the model (or drop that tensor) before compressing."
                )


class _StreamScores:
    """The scores :func:`prune` ranks by, produced chunk by chunk (``|w|``, or the given ``scores``)."""

    def __init__(self, weights: Mapping, names: list[str], scores: Mapping | None, absolute: bool):
        from ..io._dtypes import to_compute

        self._to_compute = to_compute
        self.weights, self.scores, self.absolute = weights, scores, absolute
        self.sizes = {k: int(math.prod(_shape_of(weights, k))) for k in names}
        self.check(names)
        self.dtypes = {}
        for k in names:
            if scores is None:
                self.dtypes[k] = _abs_scores(to_compute(_flat_stored(weights, k)[:0])).dtype
            else:
                self.dtypes[k] = self._score_chunk(k, _flat_stored(scores, k)[:0]).dtype

    def _score_chunk(self, k, c):
        if self.scores is None:
            return _abs_scores(self._to_compute(c))
        s = c if c.dtype.kind == "f" and c.dtype.itemsize >= 4 else c.astype(np.float64)
        return np.abs(s) if self.absolute else s

    def check(self, names) -> None:
        """The checks of ``_check_scores`` for given ``scores``, chunk by chunk."""
        if self.scores is None:
            return
        if not isinstance(self.scores, Mapping):
            raise InvalidArgumentError(
                f"`scores` must be a mapping of tensor names to arrays, got {type(self.scores).__name__}.")
        for k in names:
            if k not in self.scores:
                raise InvalidArgumentError(
                    f"`scores` has no entry for selected tensor {k!r}; give a score for every selected tensor.")
            shp, wshp = _shape_of(self.scores, k), _shape_of(self.weights, k)
            if shp != wshp:
                raise InvalidShapeError(f"`scores`[{k!r}] has shape {shp}, but the weight has shape {wshp}.")
            flat = _flat_stored(self.scores, k)
            if flat.dtype.kind not in "fiub":
                raise InvalidArgumentError(f"`scores`[{k!r}] has non-numeric dtype {flat.dtype}.")
            for _, c in _chunks(flat, STREAM_CHUNK):
                if not np.all(np.isfinite(self._score_chunk(k, c))):
                    raise InvalidArgumentError(
                        f"`scores`[{k!r}] contains NaN or infinite values; scores must be finite.")

    def chunks(self, k, dtype=None):
        flat = _flat_stored(self.weights if self.scores is None else self.scores, k)
        for i, c in _chunks(flat, STREAM_CHUNK):
            s = self._score_chunk(k, c)
            yield i, (s if dtype is None else s.astype(dtype, copy=False))


def _pick_bin(hist: np.ndarray, k: int) -> tuple[int, int]:
    """The bin holding the ``k``-th smallest (0-based) value of a histogram, and ``k``'s rank inside that bin.

    Counts are int64 throughout, so totals beyond 2^31 are exact.
    """
    cum = np.cumsum(hist, dtype=np.int64)
    b = int(np.searchsorted(cum, np.int64(k), side="right"))
    return b, int(k) - int(cum[b] - hist[b])


def _order_keys(v: np.ndarray) -> np.ndarray:
    """Unsigned integer keys in the order of the float values ``v`` (−0 and +0 get one key, as they compare equal)."""
    udt = np.uint32 if v.dtype.itemsize == 4 else np.uint64
    sign = udt(1) << udt(8 * v.dtype.itemsize - 1)
    b = (v + v.dtype.type(0)).view(udt)
    return np.where(b & sign, ~b, b | sign)


def _key_bits(dtype) -> tuple[int, type]:
    nbits = 8 * np.dtype(dtype).itemsize
    return nbits, (np.uint32 if nbits == 32 else np.uint64)


def _chunk_hist(chunks, dtype, prefix: int, known: int, width: int) -> np.ndarray:
    """Histogram of the next ``width`` key bits of the values (over ``chunks``) whose top ``known`` bits are ``prefix``."""
    nbits, udt = _key_bits(dtype)
    shift = udt(nbits - known - width)
    hist = np.zeros(1 << width, dtype=np.int64)
    for c in chunks:
        keys = _order_keys(c.astype(dtype, copy=False))
        if known:
            keys = keys[(keys >> udt(nbits - known)) == udt(prefix)]
        hist += np.bincount(((keys >> shift) & udt((1 << width) - 1)).astype(np.intp), minlength=1 << width)
    return hist


def _chunk_gather(chunks, dtype, prefix: int, known: int) -> np.ndarray:
    """The values (over ``chunks``) whose top ``known`` key bits are ``prefix``."""
    nbits, udt = _key_bits(dtype)
    got = [np.zeros(0, dtype=dtype)]
    for c in chunks:
        c = c.astype(dtype, copy=False)
        got.append(c[(_order_keys(c) >> udt(nbits - known)) == udt(prefix)])
    return np.concatenate(got)


def _radix_kth(histogram, gather, kth: int, dtype) -> np.generic:
    """The ``kth`` smallest (0-based) value, as ``np.partition`` gives it, from histogram passes.

    ``histogram(prefix, known, width)`` and ``gather(prefix, known)`` are :func:`_chunk_hist` and
    :func:`_chunk_gather` over all values (summed / concatenated over any split of them: the
    counts are exact integers and the gathered multiset does not depend on the order).
    """
    dtype = np.dtype(dtype)
    nbits, udt = _key_bits(dtype)
    prefix, known, k = 0, 0, int(kth)
    while True:
        width = min(_RADIX_BITS, nbits - known)
        hist = histogram(prefix, known, width)
        b, k = _pick_bin(hist, k)
        prefix, known = (prefix << width) | b, known + width
        if known == nbits:  # every bit fixed: the bracket is one value
            key = udt(prefix)
            sign = udt(1) << udt(nbits - 1)
            bits = key ^ sign if key & sign else ~key
            return np.array([bits], dtype=udt).view(dtype)[0]
        if hist[b] <= STREAM_CHUNK:
            vals = gather(prefix, known)
            return np.partition(vals, k)[k]


def _stream_kth(chunk_iters, kth: int, dtype) -> np.generic:
    """The ``kth`` smallest (0-based) value over all chunks (``chunk_iters()`` yields arrays), as ``np.partition`` gives it.

    Radix selection: each pass histograms the next ``_RADIX_BITS`` bits of the order keys of the
    values whose higher bits match the bracket found so far.
    """
    return _radix_kth(lambda p, kn, w: _chunk_hist(chunk_iters(), dtype, p, kn, w),
                      lambda p, kn: _chunk_gather(chunk_iters(), dtype, p, kn), kth, dtype)


def _stream_kth_of(scores: _StreamScores, names, kth: int, dtype):
    return _stream_kth(lambda: (c for k in names for _, c in scores.chunks(k, dtype)), kth, dtype)


def _stream_gt_eq(scores: _StreamScores, k: str, tau) -> tuple[int, int]:
    gt = eq = 0
    for _, c in scores.chunks(k):
        gt += int(np.count_nonzero(c > tau))
        eq += int(np.count_nonzero(c == tau))
    return gt, eq


def _stream_mask(scores: _StreamScores, k: str, count: int, tau) -> np.ndarray:
    """Flat mask keeping ``count`` entries of tensor ``k``: every score above ``tau``, then the first ties."""
    n = scores.sizes[k]
    if count <= 0:
        return np.zeros(n, dtype=bool)
    if count >= n:
        return np.ones(n, dtype=bool)
    out = np.empty(n, dtype=bool)
    gt, _ = _stream_gt_eq(scores, k, tau)
    need = int(count) - gt
    for i, c in scores.chunks(k):
        m = c > tau
        if need > 0:
            ties = np.flatnonzero(c == tau)[:need]
            m[ties] = True
            need -= ties.size
        out[i:i + c.size] = m
    return out


def _stream_topk(scores: _StreamScores, k: str, count: int) -> np.ndarray:
    n = scores.sizes[k]
    if count <= 0 or count >= n:
        return _stream_mask(scores, k, count, None)
    tau = _stream_kth_of(scores, [k], n - int(count), scores.dtypes[k])
    return _stream_mask(scores, k, count, tau)


def _stream_top_values(scores: _StreamScores, k: str, m: int) -> np.ndarray:
    """The ``m`` largest scores of tensor ``k``, sorted ascending (the multiset ``np.partition`` gives)."""
    n, dt = scores.sizes[k], scores.dtypes[k]
    if m >= n:
        return np.sort(np.concatenate([c for _, c in scores.chunks(k)]))
    t = _stream_kth_of(scores, [k], n - m, dt)
    above = np.concatenate([c[c > t] for _, c in scores.chunks(k)])
    return np.sort(np.concatenate([above, np.full(m - above.size, t, dtype=dt)]))


def _stream_cut_counts(scores_by_layer: list[np.ndarray], n_keep: int, *, presorted: bool):
    """:func:`_cut_counts` without concatenating the layers: the cut by radix selection over chunks."""
    sizes = np.array([s.size for s in scores_by_layer], dtype=np.int64)
    n = int(sizes.sum())
    if n_keep <= 0:
        return np.zeros(len(sizes), dtype=np.int64), None
    if n_keep >= n:
        return sizes.copy(), None
    dtype = np.result_type(*[s.dtype for s in scores_by_layer])
    ch = STREAM_CHUNK
    tau = _stream_kth(lambda: (s[i:i + ch] for s in scores_by_layer for i in range(0, s.size, ch)), n - n_keep, dtype)
    gt = np.empty(len(sizes), dtype=np.int64)
    eq = np.empty(len(sizes), dtype=np.int64)
    for i, s in enumerate(scores_by_layer):
        if presorted:
            lo, hi = np.searchsorted(s, tau, side="left"), np.searchsorted(s, tau, side="right")
            gt[i], eq[i] = s.size - hi, hi - lo
        else:
            gt[i], eq[i] = np.count_nonzero(s > tau), np.count_nonzero(s == tau)
    return _take_ties(gt, eq, n_keep), tau


def _take_ties(gt: np.ndarray, eq: np.ndarray, n_keep: int) -> np.ndarray:
    """Per-layer kept counts: all above the cut, then the ties at the cut to the earlier layers (int64)."""
    gt = np.asarray(gt, dtype=np.int64)
    eq = np.asarray(eq, dtype=np.int64)
    need = int(n_keep) - int(gt.sum())
    return gt + np.minimum(eq, np.maximum(0, need - (np.cumsum(eq) - eq)))


def _prune_stream(weights: Mapping, method: str, s: float, layers, scores) -> PruneResult:
    """:func:`prune` with O(chunk + output) memory: the same masks, bit for bit."""
    _check_stream_tensors(weights)
    all_names = list(weights)
    names = select_layers(_phantoms(weights, all_names), layers)
    sc = _StreamScores(weights, names, scores, absolute=(method == "lamp"))
    sizes = np.array([sc.sizes[k] for k in names], dtype=np.int64)
    n_total = int(sizes.sum())
    n_keep = n_keep_for(s, n_total)
    L = len(names)
    densities: dict = {}
    _check_reachable(method, s, n_keep, n_total, L)
    flat_masks: dict[str, np.ndarray] = {}
    if method == "global":
        if 0 < n_keep < n_total:
            dtype = np.result_type(*[sc.dtypes[k] for k in names])
            tau = _stream_kth_of(sc, names, n_total - n_keep, dtype)
            ge = [_stream_gt_eq(sc, k, tau) for k in names]
            counts = _take_ties([g for g, _ in ge], [e for _, e in ge], n_keep)
        else:
            tau, counts = None, (sizes if n_keep >= n_total else np.zeros(L, dtype=np.int64))
        for k, c in zip(names, counts):
            flat_masks[k] = _stream_mask(sc, k, int(c), tau)
    elif method == "lamp":
        counts, thresholds = _lamp_counts(sizes, lambda i, m: _stream_top_values(sc, names[i], m), n_keep,
                                          cut=_stream_cut_counts)
        for k, c, t in zip(names, counts, thresholds):
            flat_masks[k] = _stream_mask(sc, k, int(c), t)
    else:
        shapes = {k: _shape_of(weights, k) for k in names}
        quota, lower, densities = _method_quota(method, s, sizes, n_keep, n_total, [shapes[k] for k in names], names)
        counts = integer_counts(quota, n_keep, lower, sizes)
        for k, c in zip(names, counts):
            flat_masks[k] = _stream_topk(sc, k, int(c))
    return _assemble_result(all_names, lambda k: _shape_of(weights, k), flat_masks, n_keep, n_total, s, method,
                            densities)


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
          scores: Mapping[str, Any] | None = None, stream: bool | None = None) -> PruneResult:
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
    stream : bool, optional
        Work in chunks of :data:`STREAM_CHUNK` elements, never holding more than one chunk of
        scores (working set O(chunk + masks); LAMP also holds its candidate magnitudes, about
        ``2 (1 - S) N`` values).  Default: on for a :class:`~ratedist.io.WeightsSource`
        (:func:`ratedist.open_weights`), off for other mappings.  The masks are identical either way.

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
    if stream is None:
        from ..io import WeightsSource

        stream = isinstance(weights, WeightsSource)
    if stream:
        return _prune_stream(weights, method, s, layers, scores)
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
    _check_reachable(method, s, n_keep, n_total, L)

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
        def top_of(i, mi):
            a, n = score[names[i]], int(sizes[i])
            return np.sort(a) if mi >= n else np.sort(np.partition(a, n - mi)[n - mi:])

        counts, thresholds = _lamp_counts(sizes, top_of, n_keep)
        for k, c, t in zip(names, counts, thresholds):
            flat_masks[k] = topk_mask(score[k], c, threshold=t)
    else:
        quota, lower, densities = _method_quota(method, s, sizes, n_keep, n_total, [arrays[k].shape for k in names],
                                                names)
        counts = integer_counts(quota, n_keep, lower, sizes)
        for k, c in zip(names, counts):
            flat_masks[k] = topk_mask(score[k], c)
    return _assemble_result(list(arrays), lambda k: arrays[k].shape, flat_masks, n_keep, n_total, s, method,
                            densities)


def _check_reachable(method, s, n_keep, n_total, L) -> None:
    if method != "global" and n_keep < L:
        raise UnreachableTargetError(
            f"`sparsity`={s!r} keeps {n_keep} of {n_total} weights, fewer than the {L} selected layers, "
            f"but method {method!r} keeps at least one weight per layer; the largest reachable sparsity is "
            f"{1 - L / n_total:.6g} (or use method='global')."
        )


def _method_quota(method, s, sizes, n_keep, n_total, shapes, names):
    """Per-layer quotas, lower bounds and (ER/ERK) densities of the count-based methods."""
    L = len(names)
    densities: dict = {}
    if method == "uniform":
        quota = (1.0 - s) * sizes
        lower = np.ones(L, dtype=np.int64)
    elif method == "adaptive":
        quota, lower = _adaptive_quota(s, sizes, n_keep)
    else:  # er / erk
        p = er_densities(shapes, max(n_keep, 1) / n_total, kind=method)
        quota = p * sizes
        lower = np.ones(L, dtype=np.int64)
        densities = {k: float(v) for k, v in zip(names, p)}
    return quota, lower, densities


def _assemble_result(all_names, shape_of, flat_masks, n_keep, n_total, s, method, densities) -> PruneResult:
    masks = {}
    report = {}
    kept_total = 0
    for k in all_names:
        shape = tuple(shape_of(k))
        if k in flat_masks:
            m = flat_masks[k].reshape(shape)
            kept = int(np.count_nonzero(m))
            kept_total += kept
            size = int(m.size)
            report[k] = {"size": size, "kept": kept, "sparsity": 1.0 - kept / size}
            masks[k] = m
        else:
            masks[k] = np.ones(shape, dtype=bool)
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

    Tensors without a mask are returned unchanged (as NumPy arrays).  A
    :class:`~ratedist.io.WeightsSource` is read one tensor at a time (working set: one tensor
    plus the output).

    >>> apply_masks({"w": np.array([1.0, 2.0])}, {"w": np.array([True, False])})["w"].tolist()
    [1.0, 0.0]
    """
    arrays = _lazy_arrays(weights)
    if not isinstance(masks, Mapping):
        raise InvalidArgumentError(f"`masks` must be a mapping of tensor names to boolean arrays, got {type(masks).__name__}.")
    extra = [k for k in masks if k not in arrays]
    if extra:
        raise InvalidArgumentError(f"`masks` has tensors {_preview(extra)} that are not in `weights`.")
    out = {}
    for k in arrays:
        a = arrays[k]  # one tensor at a time (a WeightsSource reads it only now)
        if k in masks:
            m = _to_numpy(masks[k])
            if m.shape != a.shape:
                raise InvalidShapeError(f"`masks`[{k!r}] has shape {m.shape}, but the weight has shape {a.shape}.")
            out[k] = np.where(m.astype(bool), a, np.zeros((), dtype=a.dtype)).astype(a.dtype, copy=False)
        else:
            out[k] = np.array(a)
    return out


def _lazy_arrays(weights) -> Mapping:
    """``check_weights`` for a plain mapping; for a :class:`~ratedist.io.WeightsSource` the same checks in
    chunks, and the source itself (tensors are then read one at a time by the caller)."""
    from ..io import WeightsSource

    if isinstance(weights, WeightsSource):
        _check_stream_tensors(weights)
        return weights
    return check_weights("weights", weights)
