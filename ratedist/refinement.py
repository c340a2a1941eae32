"""Successive refinement of the Laplacian source with random codebooks (docs/theory.md §3).

L stages at block length n.  Stage t codes the residual U⁽ᵗ⁾ (≈ Laplace(λ_t))
with a random codebook of 2^{k_t} codewords, k_t = round(n·R_t), drawn i.i.d.
from the optimal reproduction law of a Laplace(λ_t) source at distortion
D_t = 1/λ_{t+1}, λ_{t+1} = λ_t·2^{k_t/n}: an atom (λ_t/λ_{t+1})² at 0 plus a
Laplace(λ_t) part.  The encoder picks the L1-nearest codeword (exhaustive
search), subtracts it, and passes the residual on; decoder t outputs the
cumulative reconstruction Σ_{τ≤t} V⁽τ⁾.  Since the Laplace/L1 pair is
successively refinable, ideal stages lose no rate: Σ_t log2(λ_{t+1}/λ_t) =
R(D_L).  Exhaustive search costs Σ_t 2^{k_t} distance evaluations per block
instead of 2^{Σ k_t} for one stage at the same total rate.

The indices are written as fixed-length k_t-bit fields, one container segment
per stage, so every prefix of the stream decodes to a coarser reconstruction
and every reported rate is measured from those bytes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ._backend import resolve_backend
from ._units import check_units, from_nats, to_nats
from ._validation import check_finite_array, check_int, check_nonnegative, check_positive
from .coding.container import _MAX_INT_DIGITS, pack_container, unpack_container
from .coding.header import read_float, read_int, read_int_list
from .coding.limits import check_fits
from .errors import CorruptStreamError, InvalidArgumentError, InvalidShapeError, UnreachableTargetError
from .rd.channel import laplace_reproduction_law

__all__ = [
    "MAX_BLOCK",
    "RefinementCode",
    "StageReport",
    "SingleStageReport",
    "RefinementReport",
    "IdealStage",
    "make_refinement_code",
    "split_rate",
    "nearest_codeword",
    "refinement_encode",
    "refinement_decode",
    "refinement_encode_bytes",
    "refinement_decode_bytes",
    "measure_refinement",
    "ideal_refinement_stage",
]

MAX_BLOCK = 24
_FORMAT = "ratedist.refinement"
_DEFAULT_MAX_ENTRIES = 2**24  # codebook entries (K·n float64 = 128 MiB)


@dataclass(frozen=True, eq=False)
class RefinementCode:
    """The random codebooks of an L-stage successive-refinement code.

    Attributes
    ----------
    block : int
        Block length n.
    index_bits : tuple of int
        k_t: stage t's codebook has 2^{k_t} codewords, its rate is k_t/n bits/symbol.
    lam : float
        λ₁ of the Laplacian source.
    lams : tuple of float
        λ₁ … λ_{L+1}, λ_{t+1} = λ_t·2^{k_t/n}.
    seed : int
    codebooks : tuple of ndarray, shape (2^{k_t}, n)
    """

    block: int
    index_bits: tuple[int, ...]
    lam: float
    lams: tuple[float, ...]
    seed: int
    codebooks: tuple[np.ndarray, ...] = field(repr=False)

    @property
    def stages(self) -> int:
        return len(self.index_bits)

    def stage_rates(self, units: str = "bits") -> tuple[float, ...]:
        """Per-stage rates k_t/n in ``units`` per symbol."""
        return tuple(float(from_nats(to_nats(k / self.block, "bits"), units)) for k in self.index_bits)

    def distortions(self) -> tuple[float, ...]:
        """Target distortions D_t = 1/λ_{t+1} (= D(R) at the cumulative rate)."""
        return tuple(1.0 / lam for lam in self.lams[1:])

    @property
    def evaluations_per_block(self) -> int:
        """Σ_t 2^{k_t}: distance evaluations of the exhaustive search per block."""
        return int(sum(2**k for k in self.index_bits))


def _stage_rng(seed: int, stage: int):
    return np.random.default_rng(np.random.SeedSequence([int(seed) & (2**63 - 1), stage, 0x5EF1]))


def _check_bits(block, index_bits, max_codebook_entries):
    for t, k in enumerate(index_bits):
        if k > 40 or (2**k) * block > max_codebook_entries:
            raise UnreachableTargetError(
                f"stage {t + 1} needs 2^{k} codewords of length {block} ({(2**k) * block:,} entries), over "
                f"`max_codebook_entries` = {max_codebook_entries:,}; lower the rate, the block length, "
                "or use more stages."
            )


def make_refinement_code(block, rates, *, lam=1.0, seed=0, units="bits",
                         max_codebook_entries=_DEFAULT_MAX_ENTRIES) -> RefinementCode:
    """Draw the random codebooks of a successive-refinement code for a Laplace(λ) source.

    Parameters
    ----------
    block : int
        Block length n, 1 ≤ n ≤ 24.
    rates : float or sequence of float
        Per-stage rates R_t ≥ 0 in ``units`` per symbol; stage t gets
        k_t = round(n·R_t) index bits (its actual rate is k_t/n bits).
    lam : float
        λ₁ of the source density (λ/2)e^{−λ|u|}.
    seed : int
        Same seed, same codebooks (each stage draws from its own SeedSequence).
    units : {"bits", "nats"}
    max_codebook_entries : int
        Refuse codebooks with more than this many entries K·n.

    Returns
    -------
    RefinementCode

    Examples
    --------
    >>> code = make_refinement_code(4, [0.5, 0.5], seed=1)
    >>> code.index_bits, [round(d, 4) for d in code.distortions()]
    ((2, 2), [0.7071, 0.5])
    """
    block = check_int("block", block, minimum=1, maximum=MAX_BLOCK)
    lam = check_positive("lam", lam)
    seed = check_int("seed", seed, minimum=0)
    check_units(units)
    max_codebook_entries = check_int("max_codebook_entries", max_codebook_entries, minimum=1)
    rates = [rates] if np.ndim(rates) == 0 else list(np.asarray(rates, dtype=object).ravel())
    if not rates:
        raise InvalidArgumentError("`rates` is empty; pass at least one stage rate.")
    bits = []
    for t, r in enumerate(rates):
        r = check_nonnegative(f"rates[{t}]", r)
        bits.append(int(round(block * float(from_nats(to_nats(r, units), "bits")))))
    return _build_code(block, tuple(bits), lam, seed, max_codebook_entries)


def _build_code(block, bits, lam, seed, max_codebook_entries=_DEFAULT_MAX_ENTRIES) -> RefinementCode:
    _check_bits(block, bits, max_codebook_entries)
    lams = [lam]
    books = []
    for t, k in enumerate(bits):
        lam_next = lams[-1] * 2.0 ** (k / block)
        law = laplace_reproduction_law(min(1.0 / lam_next, 1.0 / lams[-1]), lams[-1])
        books.append(np.ascontiguousarray(law.sample((2**k, block), _stage_rng(seed, t)), dtype=np.float64))
        lams.append(lam_next)
    return RefinementCode(block=block, index_bits=tuple(bits), lam=float(lam), lams=tuple(lams), seed=seed,
                          codebooks=tuple(books))


def split_rate(block, rate, stages, *, units="bits") -> tuple[float, ...]:
    """Split a total rate into ``stages`` per-stage rates whose index bits add up to round(n·R).

    The total k = round(n·R) bits are spread as evenly as possible (earlier
    stages get the extra bit), so the L-stage and one-stage codes have exactly
    the same total rate.

    >>> split_rate(8, 1.0, 3)
    (0.375, 0.375, 0.25)
    """
    block = check_int("block", block, minimum=1, maximum=MAX_BLOCK)
    stages = check_int("stages", stages, minimum=1, maximum=64)
    rate = check_nonnegative("rate", rate)
    check_units(units)
    total = int(round(block * float(from_nats(to_nats(rate, units), "bits"))))
    base, extra = divmod(total, stages)
    bits = [base + (1 if t < extra else 0) for t in range(stages)]
    return tuple(float(from_nats(to_nats(k / block, "bits"), units)) for k in bits)


# --------------------------------------------------------------------------- search


def _nearest_numpy(blocks: np.ndarray, codebook: np.ndarray):
    """Vectorized reference: L1 distances accumulated coordinate by coordinate, first minimum wins."""
    n_blocks, n = blocks.shape
    n_codewords = codebook.shape[0]
    index = np.empty(n_blocks, dtype=np.int64)
    distance = np.empty(n_blocks, dtype=np.float64)
    chunk = max(1, 2**21 // max(n_codewords, 1))
    cb_t = np.ascontiguousarray(codebook.T)
    for s in range(0, n_blocks, chunk):
        x = blocks[s:s + chunk]
        acc = np.zeros((x.shape[0], n_codewords))
        tmp = np.empty_like(acc)
        for j in range(n):
            np.subtract(x[:, j, None], cb_t[j][None, :], out=tmp)
            np.abs(tmp, out=tmp)
            acc += tmp
        i = np.argmin(acc, axis=1)
        index[s:s + chunk] = i
        distance[s:s + chunk] = acc[np.arange(x.shape[0]), i]
    return index, distance


def _nearest(blocks, codebook, backend):
    if backend == "numpy":
        return _nearest_numpy(blocks, codebook)
    if backend == "numba":
        from .kernels._refine_cpu import nearest_l1_cpu

        index = np.empty(blocks.shape[0], dtype=np.int64)
        distance = np.empty(blocks.shape[0], dtype=np.float64)
        nearest_l1_cpu(blocks, np.ascontiguousarray(codebook.T), index, distance)
        return index, distance
    from .kernels._refine_cuda import nearest_l1_cuda

    d_index, d_distance = nearest_l1_cuda(blocks, codebook)
    return np.asarray(d_index.copy_to_host()), np.asarray(d_distance.copy_to_host())


def nearest_codeword(blocks, codebook, *, backend="auto"):
    """Exhaustive L1 nearest-codeword search.

    Parameters
    ----------
    blocks : array_like, shape (B, n)
    codebook : array_like, shape (K, n)
    backend : {"auto", "numpy", "numba", "cuda"}
        All three give the same indices: distances are float64 sums in
        coordinate order and ties go to the smallest index.

    Returns
    -------
    index : ndarray of int64, shape (B,)
    distance : ndarray of float64, shape (B,)
        Σ_j |blocks[b, j] − codebook[index[b], j]|.

    >>> idx, dist = nearest_codeword([[0.9, 0.1]], [[0.0, 0.0], [1.0, 0.0]], backend="numpy")
    >>> idx.tolist(), dist.round(6).tolist()
    ([1], [0.2])
    """
    backend = resolve_backend(backend, simulator_ok=True)
    x = np.ascontiguousarray(check_finite_array("blocks", blocks, ndim=2), dtype=np.float64)
    c = np.ascontiguousarray(check_finite_array("codebook", codebook, ndim=2), dtype=np.float64)
    if x.shape[1] != c.shape[1]:
        raise InvalidShapeError(
            f"`blocks` have length {x.shape[1]} but `codebook` codewords have length {c.shape[1]}; they must match."
        )
    if backend == "cuda" and x.shape[1] > MAX_BLOCK:
        raise InvalidShapeError(f"`blocks` length {x.shape[1]} exceeds the CUDA kernel's limit {MAX_BLOCK}.")
    return _nearest(x, c, backend)


def _as_blocks(code: RefinementCode, source) -> np.ndarray:
    u = check_finite_array("source", source)
    if u.ndim == 1:
        if u.size % code.block:
            raise InvalidShapeError(
                f"`source` has {u.size} symbols, not a multiple of the block length {code.block}; "
                "pad or trim it."
            )
        u = u.reshape(-1, code.block)
    if u.ndim != 2 or u.shape[1] != code.block:
        raise InvalidShapeError(f"`source` must have shape (B, {code.block}) or be 1-D; got {u.shape}.")
    return np.ascontiguousarray(u, dtype=np.float64)


def refinement_encode(code: RefinementCode, source, *, backend="auto") -> np.ndarray:
    """Stage-by-stage nearest-codeword indices of ``source``.

    Parameters
    ----------
    code : RefinementCode
    source : array_like, shape (B, n) or (B·n,)
    backend : {"auto", "numpy", "numba", "cuda"}

    Returns
    -------
    indices : ndarray of int64, shape (B, L)
    """
    if not isinstance(code, RefinementCode):
        raise InvalidArgumentError(f"`code` must be a RefinementCode (make_refinement_code), got {type(code).__name__}.")
    backend = resolve_backend(backend, simulator_ok=True)
    residual = _as_blocks(code, source).copy()
    out = np.empty((residual.shape[0], code.stages), dtype=np.int64)
    for t, book in enumerate(code.codebooks):
        idx, _ = _nearest(residual, book, backend)
        out[:, t] = idx
        residual -= book[idx]
    return out


def refinement_decode(code: RefinementCode, indices, *, stages: int | None = None) -> np.ndarray:
    """Cumulative reconstructions Û⁽ᵗ⁾ = Σ_{τ≤t} V⁽τ⁾ after each stage.

    Parameters
    ----------
    code : RefinementCode
    indices : array_like of int, shape (B, L') with L' ≤ L
        The first L' stages' indices (a prefix of the message decodes).
    stages : int, optional
        Decode only the first ``stages`` stages.

    Returns
    -------
    ndarray, shape (L', B, n)
    """
    if not isinstance(code, RefinementCode):
        raise InvalidArgumentError(f"`code` must be a RefinementCode, got {type(code).__name__}.")
    idx = np.asarray(indices)
    if idx.ndim != 2 or idx.shape[1] > code.stages or idx.shape[1] == 0:
        raise InvalidShapeError(f"`indices` must have shape (B, L') with 1 ≤ L' ≤ {code.stages}; got {idx.shape}.")
    if idx.dtype.kind not in "iu":
        raise InvalidArgumentError(f"`indices` must be integers, got dtype {idx.dtype}.")
    n_st = idx.shape[1] if stages is None else check_int("stages", stages, minimum=1, maximum=idx.shape[1])
    out = np.empty((n_st, idx.shape[0], code.block))
    acc = np.zeros((idx.shape[0], code.block))
    for t in range(n_st):
        k = idx[:, t]
        size = code.codebooks[t].shape[0]
        if k.size and (k.min() < 0 or k.max() >= size):
            raise InvalidArgumentError(
                f"`indices` of stage {t + 1} must lie in [0, {size}); got range [{k.min()}, {k.max()}]."
            )
        acc = acc + code.codebooks[t][k]
        out[t] = acc
    return out


# --------------------------------------------------------------------------- bytes


def _pack_indices(idx: np.ndarray, k: int) -> bytes:
    if k == 0:
        return b""
    bits = ((idx[:, None].astype(np.uint64) >> np.arange(k - 1, -1, -1, dtype=np.uint64)) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.ravel()).tobytes()


def _unpack_indices(payload: bytes, k: int, n_blocks: int, stage: int) -> np.ndarray:
    if k == 0:
        if payload:
            raise CorruptStreamError(f"stage {stage}: zero-bit indices but a {len(payload)}-byte payload.")
        return np.zeros(n_blocks, dtype=np.int64)
    need = (k * n_blocks + 7) // 8
    if len(payload) != need:
        raise CorruptStreamError(
            f"stage {stage}: payload is {len(payload)} bytes, expected {need} for {n_blocks} indices of {k} bits."
        )
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8))[: k * n_blocks].reshape(n_blocks, k)
    return (bits.astype(np.int64) << np.arange(k - 1, -1, -1, dtype=np.int64)).sum(axis=1)


def refinement_encode_bytes(code: RefinementCode, source, *, backend="auto") -> bytes:
    """Encode ``source`` to a container: header (n, k_t, λ, seed, B) and one segment of k_t-bit indices per stage.

    The decoder regenerates the codebooks from the header; the first t
    segments (``coding.prefix_length(blob, t)`` bytes) decode to stage t.

    >>> code = make_refinement_code(2, [1.0, 1.0], seed=3)
    >>> u = np.random.default_rng(0).laplace(size=(5, 2))
    >>> blob = refinement_encode_bytes(code, u)
    >>> bool(np.array_equal(refinement_decode_bytes(blob), refinement_decode(code, refinement_encode(code, u))))
    True
    """
    blocks = _as_blocks(code, source)
    idx = refinement_encode(code, blocks, backend=backend)
    header = {"format": _FORMAT, "block": code.block, "index_bits": list(code.index_bits), "lam": code.lam,
              "seed": code.seed, "n_blocks": int(blocks.shape[0])}
    return pack_container(header, [_pack_indices(idx[:, t], k) for t, k in enumerate(code.index_bits)])


def refinement_decode_bytes(blob: bytes, *, stages: int | None = None) -> np.ndarray:
    """Decode a stream of :func:`refinement_encode_bytes` (or a prefix of its first stages).

    Returns
    -------
    ndarray, shape (L', B, n)
        Cumulative reconstructions after each decoded stage.
    """
    c = unpack_container(blob, max_segments=stages)
    h = c.header
    if h.get("format") != _FORMAT:
        raise CorruptStreamError(f"stream format {h.get('format')!r} is not {_FORMAT!r}.")
    block = read_int(h, "block", lo=1, hi=MAX_BLOCK)
    bits = tuple(read_int_list(h, "index_bits", lo=0, hi=40, min_len=1, max_len=max(1, h["n_segments"])))
    lam = read_float(h, "lam", lo=0.0, lo_open=True, hi=1e300)
    seed = read_int(h, "seed", lo=0, hi=10**_MAX_INT_DIGITS)  # the encoder takes any non-negative seed
    n_blocks = read_int(h, "n_blocks", lo=0, hi=2**62)
    if len(bits) != h["n_segments"]:
        raise CorruptStreamError(f"stream header field `index_bits` lists {len(bits)} stages but the stream has "
                                 f"{h['n_segments']} segments.")
    if not c.segments:
        raise CorruptStreamError("the stream holds no stage; decode at least one segment.")
    # indices (int64) and cumulative reconstructions (float64), per stage and block
    check_fits(8 * n_blocks * len(bits) * (1 + block), f"{n_blocks} blocks of {block} symbols")
    try:
        code = _build_code(block, bits[: len(c.segments)], lam, seed)
    except UnreachableTargetError as exc:
        raise CorruptStreamError(f"refinement header asks for codebooks that are too large: {exc}") from None
    idx = np.stack([_unpack_indices(p, bits[t], n_blocks, t + 1) for t, p in enumerate(c.segments)], axis=1)
    return refinement_decode(code, idx)


# --------------------------------------------------------------------------- measurement


@dataclass(frozen=True)
class StageReport:
    """One stage of a measured successive-refinement code.

    ``rate`` is the stage rate k_t/n, ``cumulative_rate`` Σ_{τ≤t} k_τ/n,
    ``measured_rate`` the stream's bits of segments 1..t per symbol (all in
    ``units``); ``distortion`` the mean |u − û⁽ᵗ⁾| over all symbols and
    ``rd_distortion`` D(R) = 2^{−R}/λ at the cumulative rate.
    """

    rate: float
    cumulative_rate: float
    measured_rate: float
    distortion: float
    rd_distortion: float
    index_bits: int


@dataclass(frozen=True)
class SingleStageReport:
    """One stage at the same total rate: distortion, evaluations per block, or why it was skipped."""

    rate: float
    distortion: float
    rd_distortion: float
    evaluations: int
    skipped: str = ""


@dataclass(frozen=True)
class RefinementReport:
    """Operational rate-distortion of an L-stage code over many Laplacian blocks.

    Attributes
    ----------
    block, n_blocks : int
    stages : tuple of StageReport
    single_stage : SingleStageReport
    evaluations : int
        Σ_t 2^{k_t} distance evaluations per block (vs ``single_stage.evaluations`` = 2^{Σ k_t}).
    stream_bytes : int
        Size of the encoded container (header included).
    units : str
    """

    block: int
    n_blocks: int
    lam: float
    seed: int
    stages: tuple[StageReport, ...]
    single_stage: SingleStageReport
    evaluations: int
    stream_bytes: int
    units: str

    def to_dict(self) -> dict:
        return {
            "block": self.block, "n_blocks": self.n_blocks, "lam": self.lam, "seed": self.seed, "units": self.units,
            "stages": [dict(vars(s)) for s in self.stages],
            "single_stage": dict(vars(self.single_stage)),
            "evaluations": self.evaluations, "stream_bytes": self.stream_bytes,
        }


def measure_refinement(block, rates, *, blocks=2000, lam=1.0, seed=0, backend="auto", units="bits",
                       compare_single=True, max_single_evaluations=2**32,
                       max_codebook_entries=_DEFAULT_MAX_ENTRIES) -> RefinementReport:
    """Encode i.i.d. Laplace(λ) blocks stage by stage and measure rate and distortion against R(D).

    Parameters
    ----------
    block : int
        Block length n (1 … 24).
    rates : float or sequence of float
        Per-stage rates (see :func:`make_refinement_code`; :func:`split_rate`
        splits a total rate).
    blocks : int
        Number of source blocks B.
    lam, seed, backend, units
        As in :func:`make_refinement_code` and :func:`nearest_codeword`.  The
        source sample uses its own stream of ``seed``.
    compare_single : bool
        Also code the source with one stage at the same total rate.
    max_single_evaluations : int
        Skip the one-stage comparison (reason in the report) when it needs more
        than this many distance evaluations in total (B·2^{Σk_t}).

    Returns
    -------
    RefinementReport

    Examples
    --------
    >>> rep = measure_refinement(4, [0.5, 0.5], blocks=500, seed=0, backend="numpy")
    >>> [s.index_bits for s in rep.stages], rep.evaluations, rep.single_stage.evaluations
    ([2, 2], 8, 16)
    >>> rep.stages[-1].measured_rate
    1.0
    """
    check_units(units)
    n_blocks = check_int("blocks", blocks, minimum=1)
    code = make_refinement_code(block, rates, lam=lam, seed=seed, units=units,
                                max_codebook_entries=max_codebook_entries)
    backend = resolve_backend(backend, simulator_ok=True)
    rng = np.random.default_rng(np.random.SeedSequence([code.seed, 0x50C3]))
    u = rng.laplace(0.0, 1.0 / code.lam, size=(n_blocks, code.block))
    blob = refinement_encode_bytes(code, u, backend=backend)
    recon = refinement_decode_bytes(blob)
    c = unpack_container(blob)
    n_sym = n_blocks * code.block
    reports = []
    cum_bits = 0
    seg_bits = 0
    for t, k in enumerate(code.index_bits):
        cum_bits += k
        seg_bits += 8 * len(c.segments[t])
        rate_cum_bits = cum_bits / code.block
        reports.append(StageReport(
            rate=float(from_nats(to_nats(k / code.block, "bits"), units)),
            cumulative_rate=float(from_nats(to_nats(rate_cum_bits, "bits"), units)),
            measured_rate=float(from_nats(to_nats(seg_bits / n_sym, "bits"), units)),
            distortion=float(np.mean(np.abs(u - recon[t]))),
            rd_distortion=float(2.0 ** (-rate_cum_bits) / code.lam),
            index_bits=int(k),
        ))
    total = sum(code.index_bits)
    rate_total = float(from_nats(to_nats(total / code.block, "bits"), units))
    rd_total = float(2.0 ** (-total / code.block) / code.lam)
    single_eval = 2**total
    if not compare_single:
        single = SingleStageReport(rate_total, math.nan, rd_total, single_eval, skipped="not requested")
    elif n_blocks * single_eval > max_single_evaluations or total > 40 \
            or single_eval * code.block > max_codebook_entries:
        single = SingleStageReport(
            rate_total, math.nan, rd_total, single_eval,
            skipped=f"one stage needs {single_eval:,} codewords ({n_blocks * single_eval:,} evaluations), over the "
                    f"limits (max_single_evaluations={max_single_evaluations:,}, "
                    f"max_codebook_entries={max_codebook_entries:,})",
        )
    else:
        one = _build_code(code.block, (total,), code.lam, code.seed, max_codebook_entries)
        rec1 = refinement_decode(one, refinement_encode(one, u, backend=backend))[0]
        single = SingleStageReport(rate_total, float(np.mean(np.abs(u - rec1))), rd_total, single_eval)
    return RefinementReport(block=code.block, n_blocks=n_blocks, lam=code.lam, seed=code.seed,
                            stages=tuple(reports), single_stage=single, evaluations=code.evaluations_per_block,
                            stream_bytes=len(blob), units=units)


# --------------------------------------------------------------------------- ideal stage


@dataclass(frozen=True)
class IdealStage:
    """One ideal refinement stage: V drawn from the optimal forward channel P(V | U).

    Attributes
    ----------
    reproduction : ndarray
        V, with the law of :func:`~ratedist.rd.laplace_reproduction_law`.
    residual : ndarray
        U − V: Laplace(λ_next) and independent of V when U ~ Laplace(λ).
    lam_next : float
        λ·2^{R} (R in bits).
    distortion : float
        D = 1/λ_next.
    """

    reproduction: np.ndarray
    residual: np.ndarray
    lam_next: float
    distortion: float


def ideal_refinement_stage(u, lam, rate, *, units="bits", seed=None) -> IdealStage:
    """Sample V ~ P(V | U = u) of the optimal Laplace test channel at rate R (an "ideal" stage).

    Parameters
    ----------
    u : array_like
        Source samples (a Laplace(λ) source for the theory to apply).
    lam : float
        λ of the source.
    rate : float
        Stage rate R ≥ 0 in ``units``; D = e^{−R}/λ (nats).
    seed : int, optional

    Returns
    -------
    IdealStage

    Notes
    -----
    Joint law (docs/theory.md §1): U = V + Z, Z ~ Laplace(scale D) ⟂ V, V = 0 w.p.
    a = (λD)², else V ~ Laplace(λ).  For u ≥ 0 (u < 0 by symmetry), with
    α = λ and β = 1/D, the posterior puts weight ∝ a(β/2)e^{−βu} on V = 0 and
    density ∝ (1−a)(αβ/4)e^{−α|v| − β|u−v|} on v, whose three pieces have masses
    e^{−βu}/(α+β) (v < 0), (e^{−αu} − e^{−βu})/(β−α) (0 ≤ v ≤ u) and
    e^{−αu}/(α+β) (v > u); each piece is a (truncated) exponential sampled by
    inversion.  The residual U − V is then exactly Laplace(1/D) and independent
    of V — the constructive proof that Laplace/L1 is successively refinable.

    >>> u = np.random.default_rng(0).laplace(size=100_000)
    >>> st = ideal_refinement_stage(u, 1.0, 1.0, seed=1)
    >>> round(float(np.mean(np.abs(st.residual))), 2), st.distortion
    (0.5, 0.5)
    """
    x = check_finite_array("u", u)
    lam = check_positive("lam", lam)
    r_nats = to_nats(check_nonnegative("rate", rate), units)
    d = math.exp(-r_nats) / lam
    rng = np.random.default_rng(seed)
    a = (lam * d) ** 2
    alpha, beta = lam, 1.0 / d
    s = np.sign(x)
    y = np.abs(x).astype(np.float64)
    v = np.zeros_like(y)
    if a < 1.0:
        with np.errstate(divide="ignore"):
            log_c = math.log1p(-a) + math.log(alpha * beta / 4.0)
            logs = np.stack([
                math.log(a) + math.log(beta / 2.0) - beta * y if a > 0 else np.full_like(y, -np.inf),
                log_c - beta * y - math.log(alpha + beta),
                (log_c - alpha * y + np.log(-np.expm1(-(beta - alpha) * y)) - math.log(beta - alpha))
                if beta > alpha else np.full_like(y, -np.inf),
                log_c - alpha * y - math.log(alpha + beta),
            ])
        logs -= logs.max(axis=0)
        p = np.exp(logs)
        p /= p.sum(axis=0)
        piece = (rng.random(y.shape)[None] > np.cumsum(p, axis=0)).sum(axis=0)
        piece = np.minimum(piece, 3)
        e = rng.exponential(size=y.shape) / (alpha + beta)
        w = rng.random(y.shape)
        gamma = beta - alpha
        with np.errstate(divide="ignore", invalid="ignore"):
            mid = y + np.log1p(w * np.expm1(-gamma * y)) / gamma if gamma > 0 else y * w
        v = np.select([piece == 0, piece == 1, piece == 2, piece == 3], [0.0, -e, mid, y + e])
        v = s * v
    return IdealStage(reproduction=v, residual=x - v, lam_next=float(1.0 / d), distortion=float(d))
