"""Fixed-rate bitshift trellis quantization (QTIP-style trellis-coded quantization).

After Tseng et al. 2024, "QTIP: Quantization with Trellises and Incoherence Processing".
The trellis has ``2^L`` states (``L`` from 2 to 16, the coder's ``L``).  The weights are
taken in groups of ``V`` consecutive values; each group consumes ``k`` bits ``b`` and moves
the state to

    s' = ((s << k) | b) mod 2^L,

and the group is reproduced by the codebook column ``c(s') ∈ ℝ^V``.  The rate is exactly
``k / V`` bits per weight.  The encoder is a Viterbi search for the bit sequence of least
total distortion (Σ|u − û| for ``"l1"``, Σ(u − û)² for ``"mse"``).

Operating points (:data:`RATES`, the ``(k, V)`` pairs offered by :meth:`~BitshiftTrellisCoder.candidates`,
those with ``k < L``)::

    bits/weight  0     1/8   1/4   3/8   1/2   5/8   3/4   1     5/4   3/2   2     5/2   3     7/2   4     5     6
    (k, V)       (0,1) (1,8) (1,4) (3,8) (1,2) (5,8) (3,4) (1,1) (5,4) (3,2) (2,1) (5,2) (3,1) (7,2) (4,1) (5,1) (6,1)

For each rate the smallest ``V`` (V = 1 codes match or beat V = 2 and 4 at the same rate; a group's
``k`` bits leave ``L − k`` bits of memory, so large ``k`` at ``V > 1`` is weak: 7/8 and 7/4
bits per weight, and 1/16, were measured off the lower convex hull of distortion against
rate at L = 12 on Laplace and Gaussian data, and are not offered).
``k = 0`` is the empty code: every weight reproduced as 0, no payload.

Blocks.  The groups are cut into blocks of :data:`BLOCK_WEIGHTS` ``/ V`` groups (256
weights; the last block may be shorter).  A block is coded *tail-biting*: the state before
its first group is the state after its last group, so the decoder rebuilds it from the
block's own last bits and no start state is sent — a block costs exactly (groups)·k bits.
The encoder uses QTIP's two-pass approximation (:mod:`ratedist.kernels._trellis_cpu`): a
free Viterbi pass over the block rotated by half its length gives the state at the block
boundary; a second pass forces its low ``L − k`` bits (the only ones that reach the next
state) at both ends.  A block of fewer than ``L − k`` bits (only a short last block, or a
tiny tensor) starts from state 0 instead.

Payload: the k-bit codes of all groups in order, most significant bit first, packed
without gaps (``np.packbits`` order), the last byte padded with zero bits:
``ceil(ceil(n / V) · k / 8)`` bytes.  Nothing else: the rate is fixed, no entropy coding.

Codebook.  Generated, never stored: component ``j`` of ``c(s)`` is a fixed 64-bit integer
hash of ``(s, j)`` mapped to a uniform ``w ∈ (0, 1)`` (an odd multiple of 2^-53) and pushed
through the inverse CDF of the reproduction law — an atom at 0 of mass ``p0`` plus a
Laplace (``"l1"``) or Gaussian (``"mse"``) part of scale ``scale`` and mass ``1 − p0``.
That is the rate–distortion-achieving reproduction law of the source at the code's
distortion: for a Laplace(λ) source under absolute error an atom ``(λD)²`` at 0 plus
Laplace(λ) (:func:`ratedist.rd.laplace_reproduction_law`), for a Gaussian N(0, σ²) under
squared error N(0, σ² − D).  Per tensor the encoder fits the scale (mean |u|, or the RMS
times √(1 − 4^{−R}); widened with the rate, see ``_fit``), then tries a few multiples of it
and of the atom predicted at rate R on a subsample of the tensor and keeps the least
distortion; ``params`` stores the chosen ``k``, ``V``, ``scale`` and ``p0`` (Python floats:
exact through JSON).  The inverse CDFs
are evaluated with additions, multiplications, divisions, square roots and ``frexp``
only (a series logarithm; P. J. Acklam's rational approximation of the normal quantile,
relative error below 1.2·10⁻⁹): every such operation is correctly rounded in IEEE
arithmetic, so the codebook, hence the reconstruction, is the same bits on every machine.

Measured (2·10⁵ i.i.d. samples, D/D(R) with D(R) = 2^{−R}/λ for Laplace(λ) under absolute
error and σ²·4^{−R} for N(0, σ²) under squared error)::

    L     Laplace/L1 0.5  1      2 bits    Gaussian/MSE 1  2 bits
    12    1.034           1.065  1.117     1.100           1.172
    16    1.024           1.038  1.065     1.064           1.094

Cost.  A trellis step is O(2^L·(1 + V)) (the bitshift structure: the K predecessors of a
state differ in their top k bits only), two passes per block.  The numba Viterbi codes
about 2·10⁶, 5·10⁵, 1.7·10⁵, 4.6·10⁴ and 10⁴ weights per second at L = 8, 10, 12, 14, 16
(k = 1, V = 1, two threads; V = 2 is about twice as fast per weight); ``encode_tensor`` adds
the law search (3 to 6 runs on at most 16384 weights).  Decoding is a state scan and a
table lookup: above 10⁸ weights per second.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from .._backend import cuda_simulated, has_cuda, has_numba
from .._validation import check_choice, check_int
from ..errors import BackendUnavailableError, CorruptStreamError, InvalidArgumentError
from ..kernels._mix import mix64_array
from ._base import TensorCode, tensor_distortion

__all__ = ["BitshiftTrellisCoder", "RATES", "BLOCK_WEIGHTS", "MAX_K", "MAX_V", "codebook", "pack_codes",
           "unpack_codes", "payload_bytes"]

#: the (k, V) operating points, coarsest first (rate k/V bits per weight; k = 0: all zeros)
RATES = ((0, 1), (1, 8), (1, 4), (3, 8), (1, 2), (5, 8), (3, 4), (1, 1), (5, 4), (3, 2), (2, 1), (5, 2), (3, 1),
         (7, 2), (4, 1), (5, 1), (6, 1))
#: weights per tail-biting block (a block holds BLOCK_WEIGHTS / V groups)
BLOCK_WEIGHTS = 256
#: largest bits per group (codes and back-pointers are bytes)
MAX_K = 8
#: largest group length (a power of two dividing BLOCK_WEIGHTS)
MAX_V = 16
_VS = (1, 2, 4, 8, 16)
#: the law search of encode_tensor runs on at most this many weights (whole blocks, evenly spaced)
TUNE_WEIGHTS = 1 << 14
#: estimate (the allocator's measurement) codes at most this many weights (whole blocks, evenly spaced)
ESTIMATE_WEIGHTS = 1 << 13
#: pattern search of the codebook law per tensor: scale steps (factors) and atom multipliers tried
_SCALE_STEP = 1.1
_ATOM_TRIES = (0.6, 1.5)
_MAX_SCALE = 1e300 / 64  # |codebook| < 40·scale stays finite


# ----------------------------------------------------------------------------- codebook


def _log(x: np.ndarray) -> np.ndarray:
    """Natural logarithm of positive normal floats from +, −, ×, ÷ and frexp only (error ≲ 2 ulp).

    ln x = e·ln 2 + ln m with x = m·2^e, m ∈ [√½, √2), and ln m = 2 atanh(s),
    s = (m − 1)/(m + 1), |s| ≤ 0.172, summed as an odd series to s^23.
    """
    m, e = np.frexp(x)
    low = m < math.sqrt(0.5)
    m = np.where(low, 2.0 * m, m)
    e = np.where(low, e - 1, e).astype(np.float64)
    s = (m - 1.0) / (m + 1.0)
    z = s * s
    p = np.full_like(z, 1.0 / 23.0)
    for j in range(21, 0, -2):
        p = p * z
        p = p + 1.0 / j
    return e * math.log(2.0) + 2.0 * s * p


# P. J. Acklam's rational approximation of the standard normal quantile (central and tail parts)
_A = (-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02, 1.383577518672690e+02,
      -3.066479806614716e+01, 2.506628277459239e+00)
_B = (-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02, 6.680131188771972e+01,
      -1.328068155288572e+01)
_C = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00, -2.549732539343734e+00,
      4.374664141464968e+00, 2.938163982698783e+00)
_D = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00, 3.754408661907416e+00)
_Y_TAIL = 0.02425


def _horner(coefs, x):
    acc = np.full_like(x, coefs[0])
    for c in coefs[1:]:
        acc = acc * x
        acc = acc + c
    return acc


def _normal_lower_quantile(y: np.ndarray) -> np.ndarray:
    """−Φ⁻¹(y) ≥ 0 for y ∈ (0, ½] (the magnitude of the lower-tail normal quantile)."""
    tail = y < _Y_TAIL
    yt = np.where(tail, y, _Y_TAIL)
    q = np.sqrt(-2.0 * _log(yt))
    xt = _horner(_C, q) / (_horner(_D, q) * q + 1.0)
    yc = np.where(tail, 0.5, y) - 0.5
    r = yc * yc
    xc = _horner(_A, r) * yc / (_horner(_B, r) * r + 1.0)
    return -np.where(tail, xt, xc)


@functools.lru_cache(maxsize=8)
def _uniforms(L: int, v: int) -> np.ndarray:
    """w[j, s] ∈ (0, 1), an odd multiple of 2^-53 hashed from (s, j); read-only, shape (V, 2^L)."""
    s = np.arange(1 << L, dtype=np.uint64)
    j = np.arange(v, dtype=np.uint64)[:, None]
    z = (s[None, :] << np.uint64(4)) | j
    with np.errstate(over="ignore"):
        h = mix64_array(z * np.uint64(0x9E3779B97F4A7C15) + np.uint64(0x5851F42D4C957F2D))
    w = ((h >> np.uint64(12)).astype(np.float64) * 2.0 + 1.0) * 2.0 ** -53
    w.setflags(write=False)
    return w


def codebook(L: int, v: int, metric: str, scale: float, p0: float) -> np.ndarray:
    """The generated codebook ``c[j, s]``, shape (V, 2^L), float64 (the encoder's and decoder's one function).

    Component ``j`` of state ``s`` is the quantile at the hashed uniform ``w[j, s]`` of the law
    "0 with probability ``p0``, else Laplace(scale) (``"l1"``) or N(0, scale²) (``"mse"``)".

    >>> c = codebook(16, 1, "l1", 1.0, 0.25)          # E|c| = (1 − p0)·scale = 0.75
    >>> c.shape, round(float(np.mean(c == 0)), 2), round(float(np.mean(np.abs(c))), 2)
    ((1, 65536), 0.25, 0.75)
    """
    w = _uniforms(L, v)
    a = np.minimum(w, 1.0 - w)             # exact: w is an odd multiple of 2^-53
    q = 1.0 - p0
    inside = 2.0 * a < q
    y = np.where(inside, a, 0.25 * q) / q  # y ∈ (0, ½) where inside
    if metric == "l1":
        mag = -_log(2.0 * y)
    else:
        mag = _normal_lower_quantile(y)
    mag = mag * scale
    return np.ascontiguousarray(np.where(inside, np.where(w < 0.5, -mag, mag), 0.0))


# ----------------------------------------------------------------------------- payload


def payload_bytes(n: int, k: int, v: int) -> int:
    """Bytes of the payload of ``n`` weights at ``(k, V)``: ceil(ceil(n / V)·k / 8)."""
    return (-(-n // v) * k + 7) // 8


def pack_codes(codes: np.ndarray, k: int) -> bytes:
    """The k-bit codes (uint8), most significant bit first, packed without gaps; zero padding bits."""
    if k == 0:
        return b""
    shifts = np.arange(k - 1, -1, -1, dtype=np.uint8)
    bits = (codes[:, None] >> shifts) & 1
    return np.packbits(bits.astype(np.uint8).ravel()).tobytes()


def unpack_codes(payload: bytes, n_groups: int, k: int) -> np.ndarray:
    """Inverse of :func:`pack_codes` (the caller checked the length): the codes as uint8."""
    bits = np.unpackbits(np.frombuffer(payload, dtype=np.uint8), count=n_groups * k).reshape(n_groups, k)
    return (bits.astype(np.uint8) << np.arange(k - 1, -1, -1, dtype=np.uint8)).sum(axis=1).astype(np.uint8)


# ----------------------------------------------------------------------------- the coder


def _resolve(backend: str) -> str:
    check_choice("backend", backend, ("auto", "numba", "cuda"))
    if backend == "auto":
        backend = "cuda" if has_cuda() else "numba"
    if not has_numba():
        raise BackendUnavailableError("the trellis coder needs numba: pip install numba.")
    if backend == "cuda" and not (has_cuda() or cuda_simulated()):
        raise BackendUnavailableError("`backend='cuda'` needs a CUDA device usable by numba.cuda (or "
                                      "NUMBA_ENABLE_CUDASIM=1 for the simulator); use 'numba'.")
    return backend


def _groups(u: np.ndarray, v: int) -> tuple[np.ndarray, int]:
    """``u`` as (ceil(n/V), V) groups, the last zero-padded, and the real length of the last group."""
    n = u.shape[0]
    g = -(-n // v)
    x = np.zeros(g * v)
    x[:n] = u
    return x.reshape(g, v), n - (g - 1) * v


def _block_sample(n: int, limit: int) -> np.ndarray | None:
    """Indices of whole blocks, evenly spaced, covering at most ``limit`` weights (None: all of them)."""
    if n <= limit:
        return None
    n_blocks = -(-n // BLOCK_WEIGHTS)
    take = max(1, limit // BLOCK_WEIGHTS)
    starts = (np.arange(take, dtype=np.int64) * n_blocks // take) * BLOCK_WEIGHTS
    idx = (starts[:, None] + np.arange(BLOCK_WEIGHTS, dtype=np.int64)[None, :]).ravel()
    return idx[idx < n]


class BitshiftTrellisCoder:
    """Fixed-rate bitshift trellis quantizer (see the module docstring).

    Implements :class:`ratedist.quant._base.TensorCoder`.

    Parameters
    ----------
    L : int
        State bits, 2 to 16 (``2^L`` states; encoding costs about ``2^L·(2 + V)``
        operations per group and pass, decoding is a table lookup).
    backend : {"auto", "numba", "cuda"}
        Where the Viterbi search and the decode run; ``"auto"`` is ``"cuda"`` with a real
        GPU and ``"numba"`` otherwise.  Both give the same bytes and reconstructions.

    Examples
    --------
    >>> u = np.random.default_rng(0).laplace(size=4096)
    >>> coder = BitshiftTrellisCoder(L=8)
    >>> code = coder.encode_tensor(u, "l1", k=1, V=1)
    >>> len(code.payload), sorted(code.params)
    (512, ['V', 'k', 'p0', 'scale'])
    >>> bool(np.array_equal(coder.decode_tensor(code.payload, code.params, 4096, "l1"), code.recon))
    True
    """

    name = "trellis"
    #: fixed rate, no context modelling: :meth:`estimate` predicts the stream (exact bits)
    context_free = True

    def __init__(self, L: int = 12, backend: str = "auto"):
        self.L = check_int("L", L, minimum=2, maximum=16)
        self.backend = _resolve(backend)

    def options(self) -> dict:
        """The constructor options the decoder needs (the backend does not change the bytes)."""
        return {"L": self.L}

    # ------------------------------------------------------------------ operating points

    def candidates(self, u: np.ndarray, metric: str) -> list[dict]:
        """The :data:`RATES` points with ``k < L``, coarsest first; only ``k = 0`` for an all-zero ``u``."""
        if not np.any(u):
            return [{"k": 0, "V": 1}]
        return [{"k": k, "V": v} for k, v in RATES if k < self.L]

    def prepare(self, u: np.ndarray, metric: str):
        """The tensor and its evenly spaced block subsample used by :meth:`estimate`."""
        idx = _block_sample(u.shape[0], ESTIMATE_WEIGHTS)
        return u, (u if idx is None else np.ascontiguousarray(u[idx]))

    def estimate(self, prepared, metric: str, *, k: int, V: int) -> tuple[float, float]:
        """(payload bits, Σ distortion) of one operating point: exact bits; the distortion of the
        tuned code on the subsample of :meth:`prepare`, scaled to the tensor's length."""
        u, sub = prepared
        bits = 8.0 * payload_bytes(u.shape[0], int(k), int(V))
        if k == 0:
            return bits, tensor_distortion(u, np.zeros_like(u), metric)
        _params, _codes, recon = self._tune(sub, metric, int(k), int(V))
        return bits, tensor_distortion(sub, recon, metric) * (u.shape[0] / sub.shape[0])

    # ------------------------------------------------------------------ encoding

    def _check_point(self, k, v) -> tuple[int, int]:
        k = check_int("k", k, minimum=0, maximum=min(MAX_K, self.L - 1))
        v = check_int("V", v, minimum=1, maximum=MAX_V)
        if v not in _VS:
            raise InvalidArgumentError(f"`V` must be one of {_VS} (a power of two dividing {BLOCK_WEIGHTS}), got {v}.")
        return k, v

    def _fit(self, u: np.ndarray, metric: str, k: int, v: int) -> tuple[float, float]:
        """Starting point of the law search at R = k/V: (scale, atom).

        Rate–distortion theory's law (atom 4^{−R} and the fitted Laplace scale mean|u| for
        ``"l1"``; no atom and the RMS times √(1 − 4^{−R}) for ``"mse"``), the scale widened by
        10 % (``"l1"``) or 5 % (``"mse"``) per bit above 1, up to 3 bits: the best scale of a
        finite random trellis code on Laplace and Gaussian data grows with the rate (measured,
        L = 12).
        """
        r = k / v
        wide = min(2.0, max(0.0, r - 1.0))
        if metric == "l1":
            b = float(np.mean(np.abs(u)))
            return (b if b > 0 else 1.0) * (1.0 + 0.1 * wide), 4.0 ** -r
        rms = float(np.sqrt(np.mean(np.square(u))))
        return (rms if rms > 0 else 1.0) * math.sqrt(1.0 - 4.0 ** -r) * (1.0 + 0.05 * wide), 0.0

    def _viterbi(self, x: np.ndarray, nv_last: int, cb: np.ndarray, k: int, l1: bool) -> np.ndarray:
        block = BLOCK_WEIGHTS // x.shape[1]
        codes = np.zeros(x.shape[0], dtype=np.uint8)
        if self.backend == "cuda":
            from ..kernels._trellis_cuda import viterbi_blocks_cuda

            viterbi_blocks_cuda(x, block, nv_last, cb, self.L, k, l1, codes)
        else:
            from ..kernels._trellis_cpu import viterbi_blocks

            dist = np.zeros(-(-x.shape[0] // block))
            viterbi_blocks(x, block, nv_last, cb, self.L, k, l1, codes, dist)
        return codes

    def _decode_codes(self, buf: np.ndarray, n_groups: int, k: int, cb: np.ndarray, n: int) -> np.ndarray:
        block = BLOCK_WEIGHTS // cb.shape[0]
        out = np.empty(n)
        if self.backend == "cuda":
            from ..kernels._trellis_cuda import decode_blocks_cuda

            decode_blocks_cuda(buf, n_groups, block, k, self.L, cb, n, out)
        else:
            from ..kernels._trellis_cpu import decode_blocks

            decode_blocks(buf, n_groups, block, k, self.L, cb, n, out)
        return out

    def _code(self, u, metric, k, v, scale, p0) -> tuple[np.ndarray, np.ndarray]:
        """(codes, reconstruction) of ``u`` with one codebook."""
        cb = codebook(self.L, v, metric, scale, p0)
        x, nv_last = _groups(u, v)
        codes = self._viterbi(x, nv_last, cb, k, metric == "l1")
        recon = self._decode_codes(_spare(pack_codes(codes, k)), x.shape[0], k, cb, u.shape[0])
        return codes, recon

    def _tune(self, u, metric, k, v) -> tuple[dict, np.ndarray, np.ndarray]:
        """Pattern search of the codebook law on ``u``: (params, codes, recon) of the least distortion.

        From :meth:`_fit`'s point, the scale times 1, 1.1 and 1/1.1, one more step of 1.1
        past the best when it is an end point; then (``"l1"``) the atom times 0.6 and 1.5 at
        the best scale.  Ties keep the earlier point.  3 to 6 Viterbi runs.
        """
        scale0, atom0 = self._fit(u, metric, k, v)
        tried: dict = {}

        def run(scale, p0):
            key = (float(scale), float(min(0.95, p0)))
            if key not in tried:
                codes, recon = self._code(u, metric, k, v, key[0], key[1])
                tried[key] = (tensor_distortion(u, recon, metric), len(tried), codes, recon)
            return tried[key][0]

        steps = (0, 1, -1)
        dists = [run(scale0 * _SCALE_STEP ** e, atom0) for e in steps]
        best = steps[int(np.argmin(dists))]
        if best != 0:
            run(scale0 * _SCALE_STEP ** (2 * best), atom0)
        (scale, p0), _ = min(tried.items(), key=lambda kv: (kv[1][0], kv[1][1]))
        if metric == "l1":
            for fa in _ATOM_TRIES:
                run(scale, p0 * fa)
        (scale, p0), (_d, _i, codes, recon) = min(tried.items(), key=lambda kv: (kv[1][0], kv[1][1]))
        return {"k": k, "V": v, "scale": scale, "p0": p0}, codes, recon

    def encode_tensor(self, u: np.ndarray, metric: str, *, k: int, V: int) -> TensorCode:
        """Code ``u`` at ``k`` bits per group of ``V`` weights (rate k/V), with tuned codebook parameters."""
        k, v = self._check_point(k, V)
        check_choice("metric", metric, ("l1", "mse"))
        u = np.ascontiguousarray(u, dtype=np.float64)
        n = u.shape[0]
        if k == 0:
            return TensorCode(params={"k": 0, "V": 1}, payload=b"", recon=np.zeros(n))
        idx = _block_sample(n, TUNE_WEIGHTS)
        params, codes, recon = self._tune(u if idx is None else np.ascontiguousarray(u[idx]), metric, k, v)
        if idx is not None:  # the law was searched on a subsample: code the whole tensor with it
            codes, recon = self._code(u, metric, k, v, params["scale"], params["p0"])
        return TensorCode(params=params, payload=pack_codes(codes, k), recon=recon)

    # ------------------------------------------------------------------ decoding

    def _check_params(self, params) -> tuple[int, int, float, float]:
        if not isinstance(params, dict):
            raise CorruptStreamError(f"trellis tensor parameters are {type(params).__name__}, not an object.")
        k, v = params.get("k"), params.get("V")
        for name, val, hi in (("k", k, min(MAX_K, self.L - 1)), ("V", v, MAX_V)):
            if isinstance(val, bool) or not isinstance(val, int) or not 0 <= val <= hi:
                raise CorruptStreamError(f"trellis tensor header has `{name}` {val!r}; expected an integer in "
                                         f"[0, {hi}] (L = {self.L}).")
        if v not in _VS:
            raise CorruptStreamError(f"trellis tensor header has `V` {v!r}; expected one of {_VS}.")
        if k == 0:
            if set(params) != {"k", "V"} or v != 1:
                raise CorruptStreamError(f"trellis tensor header {params!r} is not the empty code {{'k': 0, 'V': 1}}.")
            return 0, 1, 0.0, 0.0
        if set(params) != {"k", "V", "scale", "p0"}:
            raise CorruptStreamError(f"trellis tensor header has the keys {sorted(params)}; expected "
                                     "['V', 'k', 'p0', 'scale'].")
        scale, p0 = params["scale"], params["p0"]
        if not (isinstance(scale, float) and math.isfinite(scale) and 0.0 < scale <= _MAX_SCALE):
            raise CorruptStreamError(f"trellis tensor header has `scale` {scale!r}; expected a positive finite float "
                                     f"at most {_MAX_SCALE:.3g}.")
        if not (isinstance(p0, float) and 0.0 <= p0 < 1.0):
            raise CorruptStreamError(f"trellis tensor header has `p0` {p0!r}; expected a float in [0, 1).")
        return k, v, scale, p0

    def decode_tensor(self, payload: bytes, params: dict, n: int, metric: str) -> np.ndarray:
        """The reconstruction (n,) float64 of a payload of :meth:`encode_tensor`; CorruptStreamError otherwise."""
        if metric not in ("l1", "mse"):
            raise CorruptStreamError(f"trellis tensor has metric {metric!r}; expected 'l1' or 'mse'.")
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise CorruptStreamError(f"trellis tensor has length {n!r}; expected a positive integer.")
        n = int(n)
        k, v, scale, p0 = self._check_params(params)
        if not isinstance(payload, (bytes, bytearray, memoryview)):
            raise CorruptStreamError(f"trellis payload is {type(payload).__name__}, not bytes.")
        payload = bytes(payload)
        want = payload_bytes(n, k, v)
        if len(payload) != want:
            raise CorruptStreamError(f"trellis payload has {len(payload)} bytes; {n} weights at k = {k}, V = {v} "
                                     f"need {want}. It is truncated or corrupted.")
        if k == 0:
            return np.zeros(n)
        n_groups = -(-n // v)
        pad = 8 * want - n_groups * k
        if pad and payload[-1] & ((1 << pad) - 1):
            raise CorruptStreamError("trellis payload's padding bits are not zero; it is corrupted.")
        cb = codebook(self.L, v, metric, scale, p0)
        if not np.all(np.isfinite(cb)):
            raise CorruptStreamError(f"trellis tensor header's `scale` {scale!r} gives a non-finite codebook.")
        return self._decode_codes(_spare(payload), n_groups, k, cb, n)


def _spare(payload: bytes) -> np.ndarray:
    """The payload as uint8 with one spare zero byte (the decode kernels read two bytes at a time)."""
    buf = np.zeros(len(payload) + 1, dtype=np.uint8)
    buf[:len(payload)] = np.frombuffer(payload, dtype=np.uint8)
    return buf
