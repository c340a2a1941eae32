"""Data-parallel SuRP: a whole threshold level per round (docs/theory.md §4, issue 4).

The sequential SuRP (:mod:`ratedist.surp.encoder`) selects one eligible index
per iteration.  The parallel variant selects them all at once:

* round t: ``E_t = {i : r_i > τ_t}`` (strict), ``r_i -= τ_t`` and
  ``â_i += τ_t`` for every i in ``E_t``; then ``τ_{t+1} = γ · τ_t``;
* ``τ_1 = lam_inv · sf`` with ``lam_inv = mean(a)`` (the maximum-likelihood
  1/λ of the magnitudes) and ``sf = ln(n / ln n)`` — the sequential
  algorithm's initial threshold with α = sf (docs/theory.md §4b.3).

No shared randomness is needed: the stream codes each ``E_t`` as a set, split
into the indices that become non-zero (their ranks among the indices still
zero, gap-coded under the geometric law of an i.i.d. Bernoulli(k/m) set, plus
one sign bit each) and the indices already non-zero (their ranks among the
non-zero indices, gap-coded the same way).  The set sizes are sent first.  The
gap model is exact (a geometric gap is split into base-256 digits, which are
independent truncated-geometric variables), so the coded size of a set is
``log2 C(m, k)`` plus a few bits; the report prints the measured bits beside
``Σ_t log2 C(m_t, k_t)``.

Every backend (``"numpy"`` reference, ``"numba"`` CPU, ``"cuda"``) decides
the sets by the same float64 comparisons against the same thresholds
(computed once on the host by repeated multiplication), so the same input
gives the same bytes everywhere.

Examples
--------
>>> import numpy as np
>>> from ratedist.surp import decode
>>> from ratedist.surp.parallel import encode_parallel
>>> w = {"w": np.random.default_rng(0).laplace(size=(40, 50))}
>>> enc = encode_parallel(w, [0.9, 0.7], backend="numpy")
>>> [round(c.sparsity, 3) for c in enc.report.checkpoints]
[0.899, 0.683]
>>> out = decode(enc.stream, checkpoint=1)
>>> float(np.mean(out["w"] == 0)) <= 0.7
True
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .._backend import cuda_simulated, has_cupy, resolve_backend
from .._validation import check_choice, check_finite_scalar, check_int
from ..coding.container import pack_container, prefix_length
from ..coding.entropy import bytes_to_words, decode_failure, words_to_bytes
from ..coding.header import read_float, read_object
from ..errors import CorruptStreamError, InvalidArgumentError, UnreachableTargetError
from ._common import check_sparsities, flatten, needed_nonzeros, unflatten
from .report import SurpCheckpoint, SurpEncoding, SurpReport, rd_bits_per_param

__all__ = [
    "DEFAULT_GAMMA",
    "MAX_ROUNDS",
    "encode_parallel",
    "decode_parallel",
    "initial_threshold",
    "thresholds",
    "RoundPlan",
    "plan_rounds",
    "ideal_set_bits",
]

#: Default decay of the threshold per round, chosen by measurement (figures/surp_rd.py,
#: benchmarks/bench_surp_parallel.py): see :func:`encode_parallel`.
DEFAULT_GAMMA = 0.95
#: Largest number of rounds a stream may hold (a header declaring more is corrupt).
MAX_ROUNDS = 100_000
_DIGIT = 256  # base of the gap digits
_QMAX = 32  # quotient symbols 0..31, then an escape
_NEG_EXACT_ESCAPE = 2**16


# --------------------------------------------------------------------------- thresholds


def initial_threshold(magnitudes: np.ndarray, total: float | None = None) -> tuple[float, float, float]:
    """``(tau1, lam_inv, sf)``: ``tau1 = lam_inv · sf``, ``lam_inv = mean(a)``, ``sf = ln(n / ln n)``.

    ``sf`` is 1 for n < 3, where ``ln(n / ln n)`` is undefined or below 1.  ``total``, when the
    caller has it, is ``np.sum(a)`` (``np.mean(a)`` is exactly ``np.sum(a) / n``).

    >>> initial_threshold(np.ones(100))[2] == math.log(100 / math.log(100))
    True
    """
    n = int(magnitudes.size)
    sf = math.log(n / math.log(n)) if n >= 3 else 1.0
    lam_inv = float(np.mean(magnitudes)) if total is None else float(np.float64(total) / n)
    return lam_inv * sf, lam_inv, sf


def thresholds(tau1: float, gamma: float, n_rounds: int | None = None, *, floor: float | None = None) -> np.ndarray:
    """τ_t for t = 0, 1, ...: ``τ_0 = tau1``, ``τ_{t+1} = γ · τ_t`` by repeated float64 multiplication.

    With ``n_rounds`` the first ``n_rounds`` values; with ``floor`` the values up
    to and including the first one strictly below ``floor`` (every magnitude
    ≥ floor is eligible by then), at most :data:`MAX_ROUNDS`.  Encoder and
    decoder call this same function, so they agree bit for bit.

    >>> thresholds(1.0, 0.5, 3).tolist()
    [1.0, 0.5, 0.25]
    >>> thresholds(1.0, 0.5, floor=0.3).tolist()
    [1.0, 0.5, 0.25]
    """
    out = []
    tau = float(tau1)
    limit = MAX_ROUNDS if n_rounds is None else int(n_rounds)
    while len(out) < limit:
        out.append(tau)
        if floor is not None and tau < floor:
            break
        tau = tau * gamma
        if tau <= 0.0:
            break
    return np.asarray(out, dtype=np.float64)


# --------------------------------------------------------------------------- the plan


@dataclass(frozen=True)
class RoundPlan:
    """The sets of every round, as the stream codes them.

    Attributes
    ----------
    n : int
        Number of parameters.
    n_rounds : int
        Rounds run (the last checkpoint's).
    checkpoints : ndarray of int64, shape (n_ck,)
        Rounds completed at each checkpoint (non-decreasing).
    new_off, ref_off : ndarray of int64, shape (n_rounds + 1,)
        Round t's entries are ``new_pos[new_off[t]:new_off[t+1]]`` (and likewise ``ref``).
    new_pos : ndarray of int64
        Ranks of the indices entering at round t among the indices still zero, ascending.
    new_neg : ndarray of uint8
        1 where the entering weight is negative.
    ref_pos : ndarray of int64
        Ranks of the refined indices among the indices already non-zero, ascending.
    residual_sums : ndarray of float64, shape (n_ck,)
        ``Σ_i r_i`` after each checkpoint (so ``d(u, û)`` is this over n).
    nnz_tensor : ndarray of int64, shape (n_ck, n_tensors)
        Non-zeros of each tensor at each checkpoint.
    reconstructions : tuple of ndarray or None
        ``â`` (float64, shape (n,)) at each checkpoint, when asked for.
    """

    n: int
    n_rounds: int
    checkpoints: np.ndarray
    new_off: np.ndarray
    new_pos: np.ndarray
    new_neg: np.ndarray
    ref_off: np.ndarray
    ref_pos: np.ndarray
    residual_sums: np.ndarray
    nnz_tensor: np.ndarray
    reconstructions: tuple | None = None


def _checkpoint_rounds(nnz_after: np.ndarray, n: int, targets) -> np.ndarray:
    """Rounds needed (1-based counts) for each target, from ``nnz_after[t]`` = non-zeros after t+1 rounds."""
    out = []
    reach = int(nnz_after[-1]) if nnz_after.size else 0
    for s in targets:
        k = needed_nonzeros(s, n)
        if reach < k:
            raise UnreachableTargetError(
                f"`sparsity` {s!r} needs {k} non-zero weights but the parallel SuRP reaches at most {reach} "
                f"(sparsity {1 - reach / n:.6g}; exact zeros are never selected); ask for a sparsity >= {1 - reach / n:.6g}."
            )
        out.append(int(np.searchsorted(nnz_after, k, side="left")) + 1)
    return np.asarray(out, dtype=np.int64)


def _tensor_bounds(sizes) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(np.asarray(sizes, dtype=np.int64))]).astype(np.int64)


def _plan_reference(a, neg, taus, targets, sizes, keep) -> RoundPlan:
    """The slow, obviously right plan: scan every residual each round (NumPy)."""
    n = a.size
    r = a.copy()
    ahat = np.zeros(n, dtype=np.float64)
    need = [needed_nonzeros(s, n) for s in targets]
    new_parts, neg_parts, ref_parts = [], [], []
    ck, res, recs, nnz_t = [], [], [], []
    bounds = _tensor_bounds(sizes)
    t = 0
    nnz = 0
    while len(ck) < len(targets):
        if t >= taus.size:
            reach = nnz
            raise UnreachableTargetError(
                f"`sparsity` {targets[len(ck)]!r} cannot be reached: the parallel SuRP reaches at most "
                f"{reach} non-zeros (sparsity {1 - reach / n:.6g})."
            )
        tau = taus[t]
        nonzero = ahat != 0
        eligible = r > tau
        new = eligible & ~nonzero
        ref = eligible & nonzero
        new_parts.append(np.cumsum(~nonzero)[new] - 1)
        neg_parts.append(neg[new].astype(np.uint8))
        ref_parts.append(np.cumsum(nonzero)[ref] - 1)
        r[eligible] -= tau
        ahat[eligible] += tau
        nnz += int(new.sum())
        t += 1
        while len(ck) < len(targets) and nnz >= need[len(ck)]:
            ck.append(t)
            res.append(float(np.sum(r)))
            nz = ahat != 0
            nnz_t.append([int(np.count_nonzero(nz[bounds[j]:bounds[j + 1]])) for j in range(len(sizes))])
            if keep:
                recs.append(ahat.copy())
    off = lambda parts: np.concatenate([[0], np.cumsum([p.size for p in parts])]).astype(np.int64)  # noqa: E731
    cat = lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.zeros(0, dt)  # noqa: E731
    return RoundPlan(n=n, n_rounds=t, checkpoints=np.asarray(ck, np.int64),
                     new_off=off(new_parts), new_pos=cat(new_parts, np.int64), new_neg=cat(neg_parts, np.uint8),
                     ref_off=off(ref_parts), ref_pos=cat(ref_parts, np.int64),
                     residual_sums=np.asarray(res), nnz_tensor=np.asarray(nnz_t, np.int64).reshape(len(ck), len(sizes)),
                     reconstructions=tuple(recs) if keep else None)


def _plan_from_entries(a, neg, taus, targets, sizes, keep, t_first_hist, compact, total) -> RoundPlan:
    """Shared tail of the numba and CUDA plans: the trajectory passes on the compacted indices (CPU)."""
    from ..kernels import _surp_parallel_cpu as K

    n = a.size
    nnz_after = np.cumsum(t_first_hist)
    ck = _checkpoint_rounds(nnz_after, n, targets)
    T = int(ck[-1])
    comp_idx, comp_t, comp_a = compact(T)
    n_comp = comp_idx.size
    n_chunks = max(1, min(256, n_comp // 16384 + 1))
    bounds = np.linspace(0, n_comp, n_chunks + 1).astype(np.int64)
    taus_T = np.ascontiguousarray(taus[:T])
    cnt_new, cnt_ref, res_chunks = K.trajectory_counts(comp_t, comp_a, taus_T, T, ck, bounds)

    def offsets(cnt):
        per_round = cnt.sum(axis=0)
        round_off = np.concatenate([[0], np.cumsum(per_round)]).astype(np.int64)
        within = np.cumsum(cnt, axis=0) - cnt
        return round_off, np.ascontiguousarray(round_off[:-1][None, :] + within)

    new_off, off_new = offsets(cnt_new)
    ref_off, off_ref = offsets(cnt_ref)
    lt = np.cumsum(cnt_new, axis=1) - cnt_new  # entries of chunk c before round t
    base_lt = np.ascontiguousarray(np.cumsum(lt, axis=0) - lt)
    new_pos = np.empty(int(new_off[-1]), dtype=np.int64)
    new_src = np.empty(int(new_off[-1]), dtype=np.int64)
    ref_pos = np.empty(int(ref_off[-1]), dtype=np.int64)
    K.trajectory_positions(comp_idx, comp_t, comp_a, taus_T, T, bounds, base_lt, off_new, off_ref,
                           new_pos, new_src, ref_pos)
    new_neg = neg[comp_idx[new_src]].astype(np.uint8)
    # residual sums: entered indices (from the kernel) + untouched magnitudes
    entered_a = np.bincount(comp_t, weights=comp_a, minlength=T)[:T]
    entered_cum = np.concatenate([[0.0], np.cumsum(entered_a)])
    residual = np.array([total - entered_cum[c] + res_chunks[:, j].sum() for j, c in enumerate(ck)])
    tb = _tensor_bounds(sizes)
    cuts = np.searchsorted(comp_idx, tb)
    nnz_tensor = np.array([[int(np.count_nonzero(comp_t[cuts[j]:cuts[j + 1]] < c)) for j in range(len(sizes))]
                           for c in ck], dtype=np.int64).reshape(len(ck), len(sizes))
    recs = None
    if keep:
        recs = []
        buf = np.empty(n_comp, dtype=np.float64)
        for c in ck:
            K.trajectory_reconstruct(comp_t, comp_a, taus_T, int(c), buf)
            full = np.zeros(n, dtype=np.float64)
            full[comp_idx] = buf
            recs.append(full)
        recs = tuple(recs)
    return RoundPlan(n=n, n_rounds=T, checkpoints=ck, new_off=new_off, new_pos=new_pos, new_neg=new_neg,
                     ref_off=ref_off, ref_pos=ref_pos, residual_sums=residual, nnz_tensor=nnz_tensor,
                     reconstructions=recs)


def _round_cap(a: np.ndarray, taus: np.ndarray, k: int, margin: int = 8) -> int:
    """A round count after which at least ``k`` entries have probably entered: the round of the
    k-th largest entry of a strided sample of ``a``, plus ``margin`` rounds (speed only)."""
    step = max(1, a.size // 65536)
    sample = a[::step]
    rank = min(sample.size - 1, int(k * sample.size / a.size))
    est = np.partition(sample, sample.size - 1 - rank)[sample.size - 1 - rank]
    t = int(np.searchsorted(-taus, -est, side="left"))  # first round whose threshold is <= est
    return int(min(taus.size, t + margin))


def _plan_numba(a, neg, taus, targets, sizes, keep, total) -> RoundPlan:
    from ..kernels import _surp_parallel_cpu as K

    t_first = np.empty(a.size, dtype=np.int32)
    n_chunks = 16
    # Most weights enter long after the last checkpoint: resolve entry rounds only up to a cap
    # estimated from a strided sample (later ones read as `cap`), and redo the pass with every
    # round when the cap turns out too low.  Rounds below the cap are exact either way.
    cap = _round_cap(a, taus, needed_nonzeros(min(targets), a.size))
    K.first_rounds(a, taus[:cap], t_first)
    hist = K.round_histogram(t_first, cap, n_chunks)
    if cap < taus.size and int(hist.sum()) < needed_nonzeros(min(targets), a.size):
        K.first_rounds(a, taus, t_first)
        hist = K.round_histogram(t_first, taus.size, n_chunks)

    def compact(T):
        return K.compact_entering(t_first, a, T, n_chunks)

    return _plan_from_entries(a, neg, taus, targets, sizes, keep, hist, compact, total)


def _plan_cuda(a, neg, taus, targets, sizes, keep, total) -> RoundPlan:
    from ..kernels import _surp_parallel_cuda as KC

    use_cupy = has_cupy() and not cuda_simulated()
    api = KC.device_api(use_cupy)
    to_device, empty, _to_host = api
    a_dev = to_device(a)
    taus_dev = to_device(taus)
    t_dev = empty(a.size, np.int32)
    KC.first_rounds_cuda(a_dev, taus_dev, t_dev)
    hist = KC.round_histogram_cuda(t_dev, taus.size, api)

    def compact(T):
        return KC.compact_entering_cuda(t_dev, a_dev, T, api)

    return _plan_from_entries(a, neg, taus, targets, sizes, keep, hist, compact, total)


def plan_rounds(magnitudes, negative, sparsity, *, gamma: float = DEFAULT_GAMMA, backend: str = "numpy",
                sizes=None, keep_reconstructions: bool = False, total: float | None = None,
                floor: float | None = None) -> tuple[RoundPlan, np.ndarray]:
    """Run the parallel SuRP rounds on magnitudes ``a`` and return ``(plan, taus)``.

    Parameters
    ----------
    magnitudes : ndarray of float64, shape (n,)
        ``a = |u|`` (finite, ≥ 0).
    negative : ndarray of bool, shape (n,)
        Signs of ``u`` (True where negative).
    sparsity : float or sequence of float
        Target sparsities, each in (0, 1).
    gamma : float
        Threshold decay per round, in (0, 1).
    backend : {"auto", "numpy", "numba", "cuda"}
    sizes : sequence of int, optional
        Tensor sizes (for per-tensor sparsity); one tensor by default.
    keep_reconstructions : bool
        Also return ``â`` at every checkpoint.
    total, floor : float, optional
        ``np.sum(a)`` and the smallest positive entry of ``a``, when the caller has them
        (computed here otherwise).

    Returns
    -------
    plan : RoundPlan
    taus : ndarray of float64
        The thresholds of the rounds run.
    """
    backend = resolve_backend(backend, simulator_ok=True)
    a = np.ascontiguousarray(magnitudes, dtype=np.float64)
    neg = np.ascontiguousarray(negative, dtype=bool)
    targets = check_sparsities(sparsity)
    sizes = [a.size] if sizes is None else list(sizes)
    total = float(np.sum(a)) if total is None else float(total)
    tau1, _lam_inv, _sf = initial_threshold(a, total)
    if not tau1 > 0:
        raise UnreachableTargetError("every weight is zero: no sparsity below 1 can be reached; nothing to encode.")
    if floor is None and backend == "numpy":
        floor = float(a[a > 0].min())
    elif floor is None:
        from ..kernels._surp_parallel_cpu import min_positive

        floor = float(min_positive(a))
    taus = thresholds(tau1, gamma, floor=floor)
    if backend == "numpy":
        plan = _plan_reference(a, neg, taus, targets, sizes, keep_reconstructions)
    elif backend == "numba":
        plan = _plan_numba(a, neg, taus, targets, sizes, keep_reconstructions, total)
    else:
        plan = _plan_cuda(a, neg, taus, targets, sizes, keep_reconstructions, total)
    return plan, taus[:plan.n_rounds]


# --------------------------------------------------------------------------- set coding

_MODEL_CACHE: dict = {}


def _constriction():
    import constriction

    return constriction


def _uniform(size: int):
    m = _MODEL_CACHE.get(("u", size))
    if m is None:
        m = _constriction().stream.model.Uniform(int(size))
        _MODEL_CACHE[("u", size)] = m
    return m


def _powers(q: float, count: int) -> np.ndarray:
    """``[1, q, q², ...]`` by sequential float64 multiplication (deterministic everywhere)."""
    v = np.full(count, q, dtype=np.float64)
    v[0] = 1.0
    return np.cumprod(v)


def _gap_models(k: int, m: int):
    """Digit models of a geometric gap with q = 1 − k/m: ``(digit_models, quotient_model, n_digits)``."""
    q = 1.0 - k / m
    model = _constriction().stream.model
    digit_models = []
    qq = q
    while qq > 0.5:
        digit_models.append(model.Categorical(_powers(qq, _DIGIT), perfect=False))
        for _ in range(8):
            qq = qq * qq
    p = _powers(qq, _QMAX + 1)
    p[_QMAX] = p[_QMAX] / (1.0 - qq) if qq < 1.0 else 1.0
    return digit_models, model.Categorical(p, perfect=False), len(digit_models)


def _encode_count(enc, k: int, m: int) -> None:
    """``k ∈ [0, m]``: its bit length (uniform over [0, bitlen(m)]), then its lower bits."""
    if m == 0:
        return
    L = int(k).bit_length()
    enc.encode(np.array([L], dtype=np.int32), _uniform(int(m).bit_length() + 1))
    rem = L - 1
    mant = k - (1 << (L - 1)) if L >= 1 else 0
    while rem > 0:
        c = min(16, rem)
        rem -= c
        enc.encode(np.array([(mant >> rem) & ((1 << c) - 1)], dtype=np.int32), _uniform(1 << c))


def _decode_count(dec, m: int) -> int:
    if m == 0:
        return 0
    B = int(m).bit_length()
    L = int(dec.decode(_uniform(B + 1), 1)[0])
    if not 0 <= L <= B:
        raise CorruptStreamError(f"decoded set-size bit length {L} exceeds {B}.")
    if L == 0:
        return 0
    k = 1
    rem = L - 1
    while rem > 0:
        c = min(16, rem)
        rem -= c
        k = (k << c) | int(dec.decode(_uniform(1 << c), 1)[0])
    if k > m:
        raise CorruptStreamError(f"decoded set size {k} exceeds the {m} candidates.")
    return k


def _encode_set(enc, pos: np.ndarray, m: int) -> None:
    """Code ascending positions in ``[0, m)`` (their count is already known to the decoder)."""
    k = pos.size
    if k == 0 or k == m:
        return
    gaps = np.diff(pos, prepend=-1) - 1
    digit_models, qmodel, D = _gap_models(k, m)
    for j, dm in enumerate(digit_models):
        enc.encode(((gaps >> (8 * j)) & 255).astype(np.int32), dm)
    quot = gaps >> (8 * D)
    enc.encode(np.minimum(quot, _QMAX).astype(np.int32), qmodel)
    esc = quot[quot >= _QMAX] - _QMAX
    if esc.size:
        syms = np.empty(2 * esc.size, dtype=np.int32)
        syms[0::2] = esc >> 16
        syms[1::2] = esc & 0xFFFF
        enc.encode(syms, _uniform(1 << 16))


def _decode_set(dec, k: int, m: int) -> np.ndarray:
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k == m:
        return np.arange(m, dtype=np.int64)
    digit_models, qmodel, D = _gap_models(k, m)
    low = np.zeros(k, dtype=np.int64)
    for j, dm in enumerate(digit_models):
        low |= np.asarray(dec.decode(dm, k), dtype=np.int64) << (8 * j)
    quot = np.asarray(dec.decode(qmodel, k), dtype=np.int64)
    n_esc = int(np.count_nonzero(quot == _QMAX))
    if n_esc:
        syms = np.asarray(dec.decode(_uniform(1 << 16), 2 * n_esc), dtype=np.int64)
        quot[quot == _QMAX] = _QMAX + ((syms[0::2] << 16) | syms[1::2])
    if np.any(quot > (m - 1) >> (8 * D)):
        raise CorruptStreamError(f"decoded a gap beyond the {m} candidates.")
    gaps = (quot << (8 * D)) | low
    pos = np.cumsum(gaps + 1) - 1
    if pos[-1] >= m:
        raise CorruptStreamError(f"decoded position {int(pos[-1])} outside [0, {m}).")
    return pos


def ideal_set_bits(k, m) -> np.ndarray:
    """``log2 C(m, k)``: the information content of a k-subset of m, elementwise.

    >>> float(ideal_set_bits(2, 4)) == math.log2(6)
    True
    """
    from scipy.special import gammaln

    k = np.asarray(k, dtype=np.float64)
    m = np.asarray(m, dtype=np.float64)
    return (gammaln(m + 1) - gammaln(k + 1) - gammaln(m - k + 1)) / math.log(2)


def _code_segments(plan: RoundPlan):
    """One range-coded segment per checkpoint interval; returns (segments, parts, per-round sizes)."""
    rc = _constriction().stream.queue
    segments, parts = [], []
    nnz = 0
    t = 0
    k_new_all = np.diff(plan.new_off)
    k_ref_all = np.diff(plan.ref_off)
    for c in plan.checkpoints:
        enc = rc.RangeEncoder()
        bits = {"counts": 0, "positions": 0, "signs": 0}
        while t < c:
            kn, kr = int(k_new_all[t]), int(k_ref_all[t])
            z = plan.n - nnz
            b0 = enc.num_bits()
            _encode_count(enc, kn, z)
            _encode_count(enc, kr, nnz)
            b1 = enc.num_bits()
            _encode_set(enc, plan.new_pos[plan.new_off[t]:plan.new_off[t + 1]], z)
            _encode_set(enc, plan.ref_pos[plan.ref_off[t]:plan.ref_off[t + 1]], nnz)
            b2 = enc.num_bits()
            if kn:
                enc.encode(plan.new_neg[plan.new_off[t]:plan.new_off[t + 1]].astype(np.int32), _uniform(2))
            b3 = enc.num_bits()
            bits["counts"] += b1 - b0
            bits["positions"] += b2 - b1
            bits["signs"] += b3 - b2
            nnz += kn
            t += 1
        segments.append(words_to_bytes(enc.get_compressed()))
        parts.append(bits)
    return segments, parts


def _pack(header: dict, segments: list[bytes]) -> tuple[bytes, list[int]]:
    """Pack with each checkpoint's prefix size in the header (a monotone fixed point)."""
    guesses = [0] * len(segments)
    for _ in range(16):
        for cp, g in zip(header["checkpoints"], guesses):
            cp["n_bytes"], cp["n_bits"] = g, 8 * g
        blob = pack_container(header, segments)
        actual = [prefix_length(blob, k + 1) for k in range(len(segments))]
        if actual == guesses:
            return blob, actual
        guesses = actual
    raise RuntimeError("container prefix sizes did not settle")  # pragma: no cover - monotone, converges


# --------------------------------------------------------------------------- public API


def encode_parallel(weights: Mapping, sparsity, *, gamma: float = DEFAULT_GAMMA, normalize: str = "l2",
                    backend: str = "auto", device: str | None = None, seed: int = 0, progress: bool = False,
                    keep_reconstructions: bool = False, include_buffers: bool = False) -> SurpEncoding:
    """Encode ``weights`` with the data-parallel SuRP into a progressive stream.

    Parameters
    ----------
    weights : Mapping[str, array_like]
        The model (state_dict, .safetensors or .npz contents).
    sparsity : float or sequence of float
        Target sparsities in (0, 1); each gets a checkpoint after the first
        round whose sparsity ``1 − nnz/n`` is ≤ the target (the report says
        what was reached).
    gamma : float
        Threshold decay per round, ``τ_{t+1} = γ τ_t``, in (0, 1).  The default
        0.95 was chosen by measurement (``figures/surp_rd.py``): at equal
        normalized L1 distortion it costs 0.83–0.92× the bits of the
        sequential SuRP's paper-style estimate on 10⁶ Laplacian weights and
        0.88–0.91× on the embedded default model (sparsities 0.7–0.99), while
        each round grows the non-zeros by only ~12 % near 90 % sparsity (the
        granularity of the checkpoints).  γ = 0.99 exceeds the 1.02× budget
        (more rounds, more side information); smaller γ costs fewer bits but
        overshoots the targets more.
    normalize : {"l2", "l1"}
        Per-tensor normalization (docs/theory.md §4b.1 / §2).
    backend : {"auto", "numpy", "numba", "cuda"}
        ``"numpy"`` is the slow reference; ``"auto"`` picks numba.  Every
        backend writes the same bytes.
    device : {"cpu", "cuda"}, optional
        CLI spelling: ``"cpu"`` means ``backend="numba"``, ``"cuda"`` means ``"cuda"``.
    seed : int
        Recorded in the header; the parallel variant uses no randomness.
    progress : bool
        Accepted for symmetry with the sequential encoder (the parallel one is fast; no bar).
    keep_reconstructions : bool
        Also return the encoder's reconstruction at every checkpoint.

    Returns
    -------
    SurpEncoding
        ``stream`` and ``report`` (measured bits per part beside ``Σ_t log2 C(m_t, k_t)``).

    Raises
    ------
    InvalidArgumentError
        Bad ``gamma``, ``sparsity``, ``backend``; NaN/inf weights (naming the tensor).
    UnreachableTargetError
        A target needs more non-zeros than there are non-zero weights.
    BackendUnavailableError
        ``backend="cuda"`` without a GPU (and outside the CUDA simulator).
    """
    t0 = time.perf_counter()
    gamma = check_finite_scalar("gamma", gamma)
    if not 0.0 < gamma < 1.0:
        raise InvalidArgumentError(f"`gamma` must lie strictly between 0 and 1 (threshold decay per round), got {gamma!r}; the default is {DEFAULT_GAMMA}.")
    seed = check_int("seed", seed, minimum=0)
    if device is not None:
        check_choice("device", device, ("cpu", "cuda"))
        backend = "numba" if device == "cpu" else "cuda"
    backend = resolve_backend(backend, simulator_ok=True)
    targets = check_sparsities(sparsity)
    flat = flatten(weights, normalize, include_buffers=include_buffers)
    a = flat.magnitudes
    neg = flat.signs < 0
    sizes = [t["size"] for t in flat.table]
    total = float(np.sum(a))
    plan, taus = plan_rounds(a, neg, targets, gamma=gamma, backend=backend, sizes=sizes,
                             keep_reconstructions=keep_reconstructions, total=total, floor=flat.min_positive)
    tau1, lam_inv, sf = initial_threshold(a, total)
    segments, parts = _code_segments(plan)
    n = plan.n
    nnz_after = np.cumsum(np.diff(plan.new_off))
    nnz_before = np.concatenate([[0], nnz_after[:-1]])
    k_new, k_ref = np.diff(plan.new_off), np.diff(plan.ref_off)
    ideal_round = ideal_set_bits(k_new, n - nnz_before) + ideal_set_bits(k_ref, nnz_before)
    ideal_binom_n = ideal_set_bits(k_new + k_ref, n)
    header = {
        "format": "surp", "algorithm": "parallel", "tensors": [dict(t) for t in flat.table],
        "normalize": normalize, "seed": seed, "n_params": n,
        "params": {"gamma": gamma, "tau1": tau1, "lam_inv": lam_inv, "sf": sf, "n_rounds": plan.n_rounds},
        "checkpoints": [{"target": s, "sparsity": 1.0 - int(nnz_after[c - 1]) / n, "iteration": int(c),
                         "segment": k + 1} for k, (s, c) in enumerate(zip(targets, plan.checkpoints))],
    }
    stream, prefix = _pack(header, segments)
    hdr_bytes = prefix_length(stream, 0)
    lam_hat = 1.0 / lam_inv if lam_inv > 0 else math.inf  # laplace_lam_hat(a), from the sum already taken
    cps = []
    cum = {"counts": 0, "positions": 0, "signs": 0}
    for k, c in enumerate(plan.checkpoints):
        for key in cum:
            cum[key] += parts[k][key]
        n_bits = 8 * prefix[k]
        est = float(ideal_round[:c].sum())
        side = n_bits - cum["positions"]
        dist = float(plan.residual_sums[k]) / n
        rd = rd_bits_per_param(dist, lam_hat)
        per_tensor = {t["name"]: (1.0 - plan.nnz_tensor[k, j] / t["size"]) if t["size"] else 1.0
                      for j, t in enumerate(flat.table)}
        bits = {"header": 8 * hdr_bytes, "positions": int(cum["positions"]), "signs": int(cum["signs"]),
                "counts": int(cum["counts"]),
                "framing": int(n_bits - 8 * hdr_bytes - cum["positions"] - cum["signs"] - cum["counts"]),
                "positions_estimate": est, "binom_n_estimate": float(ideal_binom_n[:c].sum())}
        cps.append(SurpCheckpoint(target=targets[k], sparsity=header["checkpoints"][k]["sparsity"],
                                  sparsity_per_tensor=per_tensor, iteration=int(c), n_bits=n_bits,
                                  bpp=n_bits / n, ideal_bpp=(est + side) / n, distortion=dist, rd_bpp=rd,
                                  gap_bpp=n_bits / n - rd, bits=bits, segment=k + 1, n_bytes=prefix[k]))
    recs = None
    if keep_reconstructions:
        recs = tuple(unflatten(np.where(neg, -r, r), flat.table) for r in plan.reconstructions)
    seconds = time.perf_counter() - t0
    report = SurpReport(algorithm="parallel", n_params=n, n_bits=8 * len(stream), bpp=8 * len(stream) / n,
                        ideal_bpp=cps[-1].ideal_bpp, seconds=seconds, checkpoints=tuple(cps),
                        extra={"gamma": gamma, "rounds": plan.n_rounds, "tau1": tau1, "backend": backend,
                               "set_sizes": (k_new + k_ref).tolist()})
    return SurpEncoding(stream=stream, report=report, reconstructions=recs)


def _header_params(header: dict, k: int) -> tuple[float, float, int]:
    p = read_object(header, "params")
    gamma = read_float(p, "gamma", lo=0.0, hi=1.0, lo_open=True, hi_open=True, path="params")
    tau1 = read_float(p, "tau1", lo=0.0, lo_open=True, path="params")
    rounds = [cp.get("iteration") for cp in header["checkpoints"][:k + 1]]
    if any(not isinstance(r, int) or isinstance(r, bool) for r in rounds) or rounds != sorted(rounds) \
            or rounds[-1] > MAX_ROUNDS or rounds[0] < 0:
        raise CorruptStreamError(f"stream header: checkpoint rounds {rounds!r} are not a non-decreasing list in [0, {MAX_ROUNDS}].")
    return float(gamma), float(tau1), rounds


def decode_parallel(header: dict, segments, checkpoint_index: int) -> np.ndarray:
    """Decode a parallel SuRP stream's first segments to ``û = sign ⊙ â`` (float64, shape (n,)).

    Called by :func:`ratedist.surp.decode` with the validated header, the
    segment payloads of the checkpoint's prefix, and the checkpoint index.

    Raises
    ------
    CorruptStreamError
        Anything inconsistent: every decoded position is range-checked before use.
    """
    from ..kernels import _surp_parallel_cpu as K

    n = int(header["n_params"])
    k = int(checkpoint_index)
    gamma, tau1, rounds = _header_params(header, k)
    if len(segments) < k + 1:
        raise CorruptStreamError(f"checkpoint {k} needs {k + 1} segments, got {len(segments)}.")
    taus = thresholds(tau1, gamma, rounds[-1])
    if taus.size < rounds[-1]:
        raise CorruptStreamError("stream header: thresholds underflow before the declared number of rounds.")
    rc = _constriction().stream.queue
    cap = 1024
    nz_idx = np.empty(cap, np.int64)
    nz_ahat = np.empty(cap, np.float64)
    nz_neg = np.empty(cap, np.uint8)
    out_idx, out_ahat, out_neg = nz_idx.copy(), nz_ahat.copy(), nz_neg.copy()
    nnz = 0
    t = 0
    for s in range(k + 1):
        try:
            dec = rc.RangeDecoder(bytes_to_words(segments[s]))
        except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
            raise decode_failure(exc, f"segment {s}") from None
        while t < rounds[s]:
            try:
                z = n - nnz
                kn = _decode_count(dec, z)
                kr = _decode_count(dec, nnz)
                new_ranks = _decode_set(dec, kn, z)
                ref_pos = _decode_set(dec, kr, nnz)
                new_neg = (np.asarray(dec.decode(_uniform(2), kn), dtype=np.uint8) if kn
                           else np.zeros(0, np.uint8))
            except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
                raise decode_failure(exc, f"round {t}: payload") from None
            need = nnz + kn
            if need > out_idx.size:
                size = max(need, int(out_idx.size * 1.5))
                out_idx, out_ahat, out_neg = np.empty(size, np.int64), np.empty(size, np.float64), np.empty(size, np.uint8)
            w = K.decode_round(nz_idx, nz_ahat, nz_neg, nnz, new_ranks, new_neg, ref_pos, float(taus[t]), n,
                               out_idx, out_ahat, out_neg)
            if w < 0:
                raise CorruptStreamError(f"round {t}: a decoded index is out of range; the stream is corrupted.")
            nz_idx, out_idx = out_idx, nz_idx
            nz_ahat, out_ahat = out_ahat, nz_ahat
            nz_neg, out_neg = out_neg, nz_neg
            nnz = w
            t += 1
    u_hat = np.zeros(n, dtype=np.float64)
    mag = nz_ahat[:nnz]
    u_hat[nz_idx[:nnz]] = np.where(nz_neg[:nnz] != 0, -mag, mag)
    return u_hat
