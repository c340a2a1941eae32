"""Trellis-coded quantization with entropy-coded indices (dependent quantization, 4 to 256 states).

The method is the dependent quantization (DQ) of VVC and of the NNC / DeepCABAC neural-network
codec, generalized from 4 to ``2^ν`` states along the lines of Marcellin and Fischer's
trellis-coded quantization (TCQ), of which DQ is the 4-state case.

Quantizers.  Two scalar quantizers share the step ``Δ``: ``Q0`` has the levels ``2kΔ`` and
``Q1`` the levels ``(2k − sgn k)Δ`` (``0, ±Δ, ±3Δ, ...``); the index ``k`` is what is coded.
Their union is the lattice ``ΔZ``: ``Q0`` is the even cosets of Ungerboeck's four-way
partition, ``Q1`` the odd ones, each split again by the parity of ``k``.  The zero level of
``Q1`` is DQ's addition (it keeps runs of zeros cheap in every state); without it (``zero=
False``) ``Q1`` is the odd multiples of ``Δ``, the union codebook of classical TCQ.  Each
quantizer's non-zero levels are moved toward zero by its own offset: level magnitudes
``(2m − s0)Δ`` in ``Q0`` and ``(2m − 1 − s1)Δ`` in ``Q1`` (``m = |k| ≥ 1``).

Trellis.  The state is the ν-bit register of the systematic feedback (observer form) encoder of
a rate-1/2 Ungerboeck code with parity-check polynomials ``(h0, h1)``, driven by the parity of
the chosen index: with ``w_1 … w_ν`` the register bits (``w_1`` the most significant bit of the
state number), the quantizer is ``y = w_1`` and, for the input parity ``x``,

    w_j ← (h1_j · x) ⊕ (h0_j · y) ⊕ w_{j+1}     (j = 1 … ν, w_{ν+1} = 0).

This realizes the parity-check equation ``h0(D) y(D) ⊕ h1(D) x(D) = 0``: the sequences of
(quantizer, parity) pairs a chain can produce are the codewords of the convolutional code —
the union-of-cosets structure of TCQ.  Each state has one successor and one predecessor per
parity.  The polynomials are Ungerboeck's codes for one-dimensional (amplitude) signal sets
(Ungerboeck 1987, Table I; :data:`UNGERBOECK_CODES`); with ν = 2, ``(h0, h1) = (5, 2)`` gives
exactly the VVC machine ``next = [[0, 2], [2, 0], [1, 3], [3, 1]]``, states 0, 1 → Q0 and
2, 3 → Q1.  (An exhaustive search over the twelve valid 8-state pairs, 4·10⁴ samples at 0.5–2
bits, put ``(13, 04)`` among the three best, which were within 1 % of each other's rate.)

Coding.  The indices go through :func:`ratedist.quant._symbols.encode_indices` with the
quantizer as the FSM context.  The tensor is cut into ``B = max(1, n // L)`` chains
(:func:`n_chains_for`, ``L = chain_length``, 256 by default: a chain holds ``L`` to ``2L − 1``
indices once ``n ≥ L``), each running the machine from state 0; the decoder loops over chain
positions in Python, so ``L`` bounds its iterations.  Contexts by state (4, 8 or all of them)
were measured and lost: the sharper laws did not pay for their extra learning/tables.

Encoder.  A Viterbi search per chain (:mod:`ratedist.kernels._tcq_cpu`) minimizes
``Σ ρ(u_i − level_i) + λ · bits_i`` with ``ρ = |·|`` (``"l1"``) or ``(·)²`` (``"mse"``) and
``bits`` (magnitude plus sign) from :func:`~ratedist.quant._symbols.rate_table` of the current
model; the candidates at a weight are, per quantizer, the nearest levels on either side of it
and zero.  The model has the coder's contexts: one law per (quantizer, neighbourhood class
``min(|k_{i−1}| + |k_{i−2}|, N − 1)``) with ``N = _symbols.N_NEIGHBOUR``, the neighbourhood
taken along each state's surviving path (the survivor approximation of VVC's RDOQ; with
``N = 1`` the search is an exact Viterbi).  On i.i.d. data the neighbourhood changes nothing
(±0.02 dB); on the digits models' weight matrices it gains up to 0.5 dB at equal rate.  The model is iterated: the counts of a
greedy walk (nearest level of the current quantizer) seed the first Viterbi pass and the
counts of each pass's path give the model of the next, ``passes`` passes in all (2 by
default; 4 changed the rate at equal distortion by under 1 %).  After every pass the offsets
are refitted to the path — per quantizer, the median (L1) or mean (MSE) of
``(|level| − |u|) / Δ`` over its non-zero indices, clipped to ``[−1/2, 1]`` and rounded to
1/64 — and used by the next pass; the payload codes the last path and ``params`` carry the
last offsets (as integers, in 1/64).

Slope.  ``λ = c · Δ²`` for MSE and ``λ = c · Δ`` for L1 (distortion per bit), ``c`` from
:data:`LAMBDA_FACTORS` (per metric and quantizer set) unless overridden: the factor whose
(rate, distortion) curve over the step ladder was lowest on i.i.d. Gaussian/MSE and
Laplace/L1 data (0.5–3 bits, 8 states).

Which quantizer set.  DQ (``zero=True``) is the better one on peaked data at low rates
(Laplace/L1 below about 1.5 bits); classical TCQ (``zero=False``) on Gaussian data and at
high rates.  With ``zero="both"`` (the default) :meth:`~TrellisCodedQuantizer.candidates`
offers every step with both, and the allocator's convex hull picks per tensor.

Rates are in bits per weight at this edge; :mod:`ratedist.quant._symbols` owns the payload.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from .._validation import check_choice, check_finite_array, check_int, check_nonnegative, check_positive
from ..errors import CorruptStreamError, InvalidArgumentError
from ._base import TensorCode
from ._symbols import MAX_MAGNITUDE, StateMachine, chain_starts, decode_indices, encode_indices, rate_table

__all__ = ["TrellisCodedQuantizer", "trellis_fsm", "n_chains_for", "UNGERBOECK_CODES", "LAMBDA_FACTORS",
           "MAX_CHAIN_LENGTH", "SHRINK_UNIT"]

#: Ungerboeck's rate-1/2 codes for one-dimensional signal sets, ``states: (h0, h1)`` (octal as printed)
UNGERBOECK_CODES = {
    4: (0o5, 0o2),
    8: (0o13, 0o04),
    16: (0o23, 0o04),
    32: (0o45, 0o10),
    64: (0o103, 0o024),
    128: (0o235, 0o126),
    256: (0o515, 0o362),
}

#: slope factor ``c`` of ``λ = c·Δ²`` (MSE) and ``λ = c·Δ`` (L1), in distortion per bit, by (metric, zero)
LAMBDA_FACTORS = {("mse", True): 0.3, ("mse", False): 0.3, ("l1", True): 0.2, ("l1", False): 0.3}

#: tensors of at least this many weights run the parallel kernels; smaller ones the serial twins (same output)
PARALLEL_MIN = 1 << 15

#: the decoder refuses chains longer than this (its Python loop runs once per chain position)
MAX_CHAIN_LENGTH = 4096

#: the level offsets are integers in this unit of Δ (exact in binary), within [_SHRINK_MIN, _SHRINK_MAX]
SHRINK_UNIT = 1.0 / 64
_SHRINK_MIN, _SHRINK_MAX = -32, 64

#: relative steps Δ / rms(u) of the candidate ladder: geometric, 2^(1/6) apart, 2^(4/3) ≈ 2.5 down to 2^(-15/2)
_LADDER = 2.0 ** (np.arange(8, -46, -1) / 6.0)

_PARAM_KEYS = ("lam", "n_chains", "shrink0", "shrink1", "states", "step", "zero")


@dataclass(frozen=True)
class _Trellis:
    fsm: StateMachine
    quant: np.ndarray      # (S,) quantizer of every state
    pred: np.ndarray       # (S, 2) predecessor of every state per input parity
    ctx_quant: np.ndarray  # (C,) quantizer of every context


def trellis_fsm(states: int) -> StateMachine:
    """The dependent-quantization machine with ``states`` states (4 … 256, a power of two).

    Returns a :class:`~ratedist.quant._symbols.StateMachine` whose ``next_state[s, parity]``
    is the register update of the module docstring and whose context is the quantizer (the
    most significant state bit), two contexts in all.

    >>> trellis_fsm(4).next_state.tolist()
    [[0, 2], [2, 0], [1, 3], [3, 1]]
    """
    return _trellis(_check_states(states)).fsm


def _check_states(states) -> int:
    states = check_int("states", states, minimum=4, maximum=256)
    if states not in UNGERBOECK_CODES:
        raise InvalidArgumentError(f"`states` must be a power of two between 4 and 256, got {states}.")
    return states


@functools.lru_cache(maxsize=None)
def _trellis(states: int) -> _Trellis:
    nu = states.bit_length() - 1
    h0, h1 = UNGERBOECK_CODES[states]
    nxt = np.empty((states, 2), dtype=np.int64)
    for s in range(states):
        w = [(s >> (nu - j)) & 1 for j in range(1, nu + 1)]  # w[0] = w_1, the most significant bit
        y = w[0]
        for x in range(2):
            t = 0
            for j in range(1, nu + 1):
                bit = (((h1 >> j) & 1) & x) ^ (((h0 >> j) & 1) & y) ^ (w[j] if j < nu else 0)
                t |= bit << (nu - j)
            nxt[s, x] = t
    pred = np.full((states, 2), -1, dtype=np.int64)
    for s in range(states):
        for x in range(2):
            pred[nxt[s, x], x] = s
    if (pred < 0).any():  # cannot happen: h0 has its lowest and highest taps, so (t, x) fixes the predecessor
        raise AssertionError(f"trellis of {states} states has a state without a predecessor")
    quant = np.arange(states, dtype=np.int64) >> (nu - 1)
    for a in (nxt, pred, quant):
        a.setflags(write=False)
    fsm = StateMachine(next_state=nxt, context=quant, n_contexts=2)
    return _Trellis(fsm=fsm, quant=quant, pred=pred, ctx_quant=np.array([0, 1], dtype=np.int64))


def n_chains_for(n: int, chain_length: int = 256) -> int:
    """Number of chains of an ``n``-weight tensor: ``max(1, n // chain_length)``."""
    return max(1, int(n) // int(chain_length))


def _reconstruct(q: np.ndarray, st: np.ndarray, tr: _Trellis, step: float, shrink: np.ndarray) -> np.ndarray:
    from ..kernels import _tcq_cpu as K

    out = np.empty(q.shape[0])
    (K.reconstruct_cpu if q.shape[0] >= PARALLEL_MIN else K.reconstruct_serial)(q, st, tr.quant, step, shrink, out)
    return out


def _rate_bits(q: np.ndarray, st: np.ndarray, tr: _Trellis, m_max: int, starts=None, n_nb: int = 1) -> np.ndarray:
    """Rate table (bits, sign included) of the model fitted to the path ``q``/``st``: (2·n_nb, m_max + 1)."""
    from ..kernels._tcq_cpu import counts_cpu, counts_nb_cpu

    counts = np.zeros((tr.fsm.n_contexts * n_nb, m_max + 1), dtype=np.int64)
    if n_nb == 1:
        counts_cpu(q, st, tr.fsm.context, counts)
    else:
        counts_nb_cpu(q, st, starts, tr.fsm.context, n_nb, counts)
    top = np.flatnonzero(counts.any(axis=0))
    used = int(top[-1]) + 1 if top.shape[0] else 1
    return np.ascontiguousarray(rate_table(counts[:, :used], m_max))


def _neighbour_classes() -> int:
    """Neighbourhood classes of the coder's contexts (:data:`ratedist.quant._symbols.N_NEIGHBOUR`; 1 if none)."""
    from . import _symbols

    return max(1, int(getattr(_symbols, "N_NEIGHBOUR", 1)))


def _fit_shrink(u: np.ndarray, q: np.ndarray, st: np.ndarray, tr: _Trellis, step: float, metric: str) -> np.ndarray:
    """Per-quantizer offsets (in units of 1/64) that fit the path best: median (L1) or mean (MSE) of the gaps."""
    from ..kernels._tcq_cpu import level_gaps_cpu

    gaps = np.empty(q.shape[0])
    which = np.empty(q.shape[0], dtype=np.int64)
    j = level_gaps_cpu(u, q, st, tr.quant, 1.0 / step, gaps, which)
    gaps, which = gaps[:j], which[:j]
    out = np.zeros(2)
    for k in (0, 1):
        g = gaps[which == k]
        if g.shape[0]:
            d = float(np.median(g)) if metric == "l1" else float(np.mean(g))
            out[k] = min(_SHRINK_MAX, max(_SHRINK_MIN, round(d / SHRINK_UNIT))) * SHRINK_UNIT
    return out


class TrellisCodedQuantizer:
    """Dependent (trellis-coded) quantization of one tensor with context-coded indices.

    Parameters
    ----------
    states : int
        Trellis states, a power of two from 4 to 256 (4 is VVC's dependent quantization).
    lam : float, optional
        Slope factor ``c`` overriding :data:`LAMBDA_FACTORS` (``λ = c·Δ²`` for MSE, ``c·Δ``
        for L1, in distortion per bit); 0 is the distortion-only search.
    passes : int
        Viterbi passes, each under the rate model of the previous path (the first under the
        greedy walk's), 1 … 8.
    chain_length : int
        Target chain length ``L`` (64 … :data:`MAX_CHAIN_LENGTH`): ``max(1, n // L)`` chains.
    zero : {"both", True, False}
        Whether ``Q1`` has the zero level (DQ, True) or not (classical TCQ, False);
        ``"both"`` offers both in :meth:`candidates` and codes with DQ when
        :meth:`encode_tensor` is not told.
    """

    name = "tcq"

    def __init__(self, states: int = 8, *, lam: float | None = None, passes: int = 2, chain_length: int = 256,
                 zero="both"):
        self.states = _check_states(states)
        self.lam = None if lam is None else check_nonnegative("lam", lam)
        self.passes = check_int("passes", passes, minimum=1, maximum=8)
        self.chain_length = check_int("chain_length", chain_length, minimum=64, maximum=MAX_CHAIN_LENGTH)
        self.zero = _check_zero(zero, True)

    @property
    def fsm(self) -> StateMachine:
        """The coder's state machine (:func:`trellis_fsm` of ``states``)."""
        return _trellis(self.states).fsm

    # ------------------------------------------------------------------ protocol

    def candidates(self, u: np.ndarray, metric: str) -> list[dict]:
        """Steps ``Δ = r · rms(u)`` for ``r`` from 2^(4/3) ≈ 2.5 down to 2^(-15/2), 2^(1/6) apart (54 steps).

        On Gaussian and Laplace data they span about 0.01 to 8.5 bits per weight, about 0.17 bit
        apart above 1 bit (closer below, but the rate of one fixed slope factor drops to zero
        within two steps under about 0.3 bit).  With ``zero="both"`` each step comes with
        ``zero=False`` then ``zero=True`` (108 candidates).  An all-zero tensor gets the single
        candidate ``Δ = 1`` (every step codes it alike).
        """
        u = _check_u(u)
        check_choice("metric", metric, ("l1", "mse"))
        rms = math.sqrt(float(np.dot(u, u)) / u.shape[0])
        zeros = (False, True) if self.zero == "both" else (self.zero,)
        if rms == 0.0:
            return [{"step": 1.0, "zero": zeros[-1]}]
        return [{"step": float(rms * r), "zero": z} for r in _LADDER for z in zeros]

    def encode_tensor(self, u: np.ndarray, metric: str, *, step: float, zero=None, lam: float | None = None,
                      n_chains: int | None = None) -> TensorCode:
        """Code ``u`` with step ``step`` (absolute, in the units of ``u``).

        Parameters
        ----------
        u : ndarray, shape (n,)
        metric : {"l1", "mse"}
        step : float
            Δ, > 0.
        zero : bool, optional
            Whether ``Q1`` has the zero level; default the constructor's (DQ under ``"both"``).
        lam : float, optional
            Slope factor for this call (overrides the constructor's and the default).
        n_chains : int, optional
            Chains, 1 … n with at most :data:`MAX_CHAIN_LENGTH` indices each; default
            :func:`n_chains_for` of the constructor's ``chain_length``.

        Returns
        -------
        TensorCode
            ``params`` = ``{"step", "states", "n_chains", "lam", "zero", "shrink0", "shrink1"}``
            (the offsets as integers in units of :data:`SHRINK_UNIT`).
        """
        from ..kernels import _tcq_cpu as K

        u = _check_u(u)
        metric = check_choice("metric", metric, ("l1", "mse"))
        step = check_positive("step", step)
        n = u.shape[0]
        zero = (True if self.zero == "both" else self.zero) if zero is None else _check_zero(zero, False)
        c = self.lam if lam is None else check_nonnegative("lam", lam)
        c = LAMBDA_FACTORS[(metric, zero)] if c is None else float(c)
        b = n_chains_for(n, self.chain_length) if n_chains is None else check_int("n_chains", n_chains, minimum=1,
                                                                                    maximum=n)
        if -(-n // b) > MAX_CHAIN_LENGTH:
            raise InvalidArgumentError(f"`n_chains` = {b} makes chains of {-(-n // b)} indices, above the "
                                       f"decoder's limit {MAX_CHAIN_LENGTH}; pass at least {-(-n // MAX_CHAIN_LENGTH)}.")
        a_max = float(np.max(np.abs(u)))
        # every candidate magnitude is ≤ floor((|u|/Δ + quant + shrink) / 2) + 1, quant + shrink ≤ 2
        m_max = int(math.floor((a_max / step + 2.0) * 0.5)) + 2
        if m_max > MAX_MAGNITUDE:
            raise InvalidArgumentError(f"`step` = {step!r} is too fine for weights up to {a_max!r}: indices would "
                                       f"reach {m_max}, above the format's {MAX_MAGNITUDE}; pass a larger step.")
        lam_abs = c * (step * step if metric == "mse" else step)
        tr = _trellis(self.states)
        starts = chain_starts(n, b)
        q = np.empty(n, dtype=np.int64)
        st = np.empty(n, dtype=np.int64)
        par = n >= PARALLEL_MIN
        (K.greedy_cpu if par else K.greedy_serial)(u, starts, step, tr.quant, tr.fsm.next_state, zero, q, st)
        cost = np.empty(starts.shape[0] - 1)
        shrink = np.zeros(2)
        n_nb = _neighbour_classes()
        for _ in range(self.passes):
            bits = _rate_bits(q, st, tr, m_max, starts, n_nb)
            if n_nb == 1:
                (K.viterbi_cpu if par else K.viterbi_serial)(u, starts, step, shrink, lam_abs, bits, tr.fsm.context,
                                                              tr.ctx_quant, tr.pred, metric == "l1", zero, q, st, cost)
            else:
                (K.viterbi_nb_cpu if par else K.viterbi_nb_serial)(
                    u, starts, step, shrink, lam_abs, bits, tr.fsm.context, tr.ctx_quant, tr.pred, n_nb,
                    metric == "l1", zero, q, st, cost)
            shrink = _fit_shrink(u, q, st, tr, step, metric)
        payload = encode_indices(q, st, tr.fsm, b)
        params = {"step": step, "states": self.states, "n_chains": b, "lam": c, "zero": zero,
                  "shrink0": int(round(shrink[0] / SHRINK_UNIT)), "shrink1": int(round(shrink[1] / SHRINK_UNIT))}
        return TensorCode(params=params, payload=payload, recon=_reconstruct(q, st, tr, step, shrink))

    def decode_tensor(self, payload: bytes, params: dict, n: int, metric: str) -> np.ndarray:
        """Rebuild the reconstruction from ``payload`` and ``params``.

        Every parameter's type and range is checked before any work; a payload or parameters
        that do not decode raise :class:`~ratedist.errors.CorruptStreamError`.
        """
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise CorruptStreamError(f"tcq payload must be bytes, got {type(payload).__name__}.")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 0:
            raise CorruptStreamError(f"tcq tensor length must be a non-negative integer, got {n!r}.")
        n = int(n)
        step, states, b, shrink = _check_params(params, n)
        tr = _trellis(states)
        try:
            q, st = decode_indices(bytes(payload), n, tr.fsm, b)
        except CorruptStreamError:
            raise
        except (ValueError, IndexError, OverflowError, TypeError, MemoryError) as exc:
            raise CorruptStreamError(f"tcq payload does not decode: {exc}") from None
        return _reconstruct(q, st, tr, step, shrink)  # finite: |level| ≤ (2^21 + 1)·1e200


def _check_u(u) -> np.ndarray:
    u = check_finite_array("u", u, ndim=1)
    return np.ascontiguousarray(u, dtype=np.float64)


def _check_zero(zero, allow_both: bool):
    if isinstance(zero, np.bool_):
        zero = bool(zero)
    if zero is True or zero is False or (allow_both and isinstance(zero, str) and zero == "both"):
        return zero
    allowed = "'both', True or False" if allow_both else "True or False"
    raise InvalidArgumentError(f"`zero` must be {allowed}; got {zero!r}.")


def _check_params(params, n: int) -> tuple[float, int, int, np.ndarray]:
    """Validate a decoder's parameters: (step, states, n_chains, offsets); CorruptStreamError otherwise."""
    if not isinstance(params, dict):
        raise CorruptStreamError(f"tcq parameters must be a dict, got {type(params).__name__}.")
    keys = sorted(str(k) for k in params)
    if keys != list(_PARAM_KEYS):
        raise CorruptStreamError(f"tcq parameters must have the keys {list(_PARAM_KEYS)}, got {keys}.")

    def real(key, lo, hi, lo_open=False):
        v = params[key]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not math.isfinite(v) or (v <= lo if lo_open else v < lo) or v > hi:
            raise CorruptStreamError(f"tcq parameter `{key}` = {v!r} is not a number in "
                                     f"{'(' if lo_open else '['}{lo}, {hi}]; the stream is corrupted.")
        return float(v)

    def integer(key, lo, hi):
        v = params[key]
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, np.integer)) or not lo <= v <= hi:
            raise CorruptStreamError(f"tcq parameter `{key}` = {v!r} is not an integer in [{lo}, {hi}]; "
                                     "the stream is corrupted.")
        return int(v)

    step = real("step", 0.0, 1e200, lo_open=True)
    real("lam", 0.0, 1e6)
    if not isinstance(params["zero"], (bool, np.bool_)):
        raise CorruptStreamError(f"tcq parameter `zero` = {params['zero']!r} is not a bool; the stream is corrupted.")
    shrink = np.array([integer("shrink0", _SHRINK_MIN, _SHRINK_MAX),
                       integer("shrink1", _SHRINK_MIN, _SHRINK_MAX)], dtype=np.float64) * SHRINK_UNIT
    states = integer("states", 4, 256)
    if states not in UNGERBOECK_CODES:
        raise CorruptStreamError(f"tcq parameter `states` = {states} is not a power of two in [4, 256]; "
                                 "the stream is corrupted.")
    b = integer("n_chains", 1, max(1, n))
    if -(-n // b) > MAX_CHAIN_LENGTH:
        raise CorruptStreamError(f"tcq parameter `n_chains` = {b} gives chains of {-(-n // b)} indices, above the "
                                 f"limit {MAX_CHAIN_LENGTH}; the stream is corrupted.")
    return step, states, b, shrink
