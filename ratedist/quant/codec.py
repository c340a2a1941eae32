"""Weights to bytes with any quantizer of :mod:`ratedist.quant`: normalization, allocation, stream, report.

One interface for every method::

    enc = encode(weights, method="tcq", rate=2.0)          # or distortion=D
    enc.stream, enc.report                                  # bytes, and what they cost
    decode(enc.stream)                                      # same keys, shapes and dtypes

Each tensor ``w_t`` is flattened and normalized, ``u_t = w_t / ‖w_t‖`` (``normalize="l2"``,
the Frobenius norm, SuRP's convention; ``"l1"`` the entrywise L1 norm of the
output-perturbation bound; ``None`` leaves the weights as they are).  The distortion is the
mean over all n weights, ``d(u, û) = (1/n) Σ_t Σ_i ρ(u_ti − û_ti)`` with ρ = |·| (``"l1"``) or
(·)² (``"mse"``).

Allocation.  Every tensor offers a ladder of operating points (its coder's
``candidates``); each is measured (bits, Σρ) — exactly where the coder has a fast
``estimate``, otherwise by coding an evenly strided subsample of at most
:data:`SUBSAMPLE` weights and scaling.  A sum of distortions under a total-rate budget is
minimized by giving every tensor the operating point that minimizes Σρ + μ·bits for one
common multiplier μ (Everett's theorem; the discrete form of equal slopes), so
:func:`allocate` searches μ.  The chosen points are then coded in full; the stream's real
length is checked against the target and μ tightened when the header or the estimates made
it overshoot.

Stream (the ratedist container, :mod:`ratedist.coding.container`): a JSON header
``{"format": "ratedist.quant.2", "method", "metric", "normalize", "coder": {options},
"tensors": [[name, dtype, shape, norm, params], ...]}`` and one CRC-protected segment per
tensor.  Every rate reported is ``8 · len(stream)``: header, tables and CRCs included.
"""

from __future__ import annotations

import math
import struct
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._validation import check_choice, check_positive, check_weights
from ..coding.container import pack_container, unpack_container
from ..coding.limits import check_fits
from ..coding.varint import get_varint, put_varint
from ..errors import CorruptStreamError, InvalidArgumentError, RatedistError, UnreachableTargetError
from ._base import TensorCode, tensor_distortion

__all__ = ["METHODS", "METRICS", "NORMALIZATIONS", "QuantEncoding", "QuantReport", "TensorReport",
           "encode", "decode", "inspect", "allocate", "bound_at", "get_coder", "SUBSAMPLE"]

#: the format's name and revision (revision 2: laws rebuilt on a schedule, not at every chain position;
#: bump the suffix whenever the bytes of a stream change, and pin the new bytes in tests/golden/)
FORMAT = "ratedist.quant.2"
_OLD_FORMATS = ("ratedist.quant",)
METHODS = ("scalar", "tcq", "trellis")
METRICS = ("l1", "mse")
NORMALIZATIONS = ("l2", "l1", None)
#: coders without a fast estimate are measured on at most this many weights per tensor
SUBSAMPLE = 1 << 16
_ROUGH = 1 << 12          # coders without an estimate: the first ladder is measured on this many weights
_FLOAT_DTYPES = ("float16", "float32", "float64")
_MAX_PARAMS = 1 << 40


def get_coder(method: str, **options):
    """The per-tensor coder of ``method`` ("scalar", "tcq", "trellis") built with ``options``."""
    check_choice("method", method, METHODS)
    if method == "scalar":
        from .scalar import ScalarQuantizer

        if options:
            raise InvalidArgumentError(f"method 'scalar' takes no options; got {sorted(options)}.")
        return ScalarQuantizer()
    if method == "tcq":
        from .tcq import TrellisCodedQuantizer

        return TrellisCodedQuantizer(**options)
    from .trellis import BitshiftTrellisCoder

    return BitshiftTrellisCoder(**options)


def _coder_options(coder) -> dict:
    opts = getattr(coder, "options", None)
    return dict(opts() if callable(opts) else (opts or {}))


# ----------------------------------------------------------------------------- reports


@dataclass(frozen=True)
class TensorReport:
    """One tensor of a quantized model: ``n_bits`` of its segment, ``bpp``, mean ``distortion``, the chosen ``params``."""

    name: str
    n_params: int
    n_bits: int
    bpp: float
    distortion: float
    params: dict

    def to_dict(self) -> dict:
        return {"n_params": self.n_params, "n_bits": self.n_bits, "bpp": self.bpp, "distortion": self.distortion,
                "params": dict(self.params)}


@dataclass(frozen=True)
class QuantReport:
    """What a quantized stream costs and how far it is from the limit.

    Attributes
    ----------
    n_bits, bpp : int, float
        ``8 · len(stream)`` and bits per parameter (header, tables, CRCs included).
    distortion : float
        d(u, û), mean over all parameters in the normalized domain, for ``metric``.
    zero_fraction : float
        Fraction of reconstructed weights that are exactly 0.
    zero_fraction_laplace : float
        What rate–distortion theory predicts for a Laplacian source under absolute error at
        each tensor's measured distortion, (λ_t D_t)² averaged by size (λ_t = 1/mean|u_t|);
        the seeds' claim that pruning is part of optimal compression.  Only meaningful for
        ``metric="l1"``.
    bound_bpp, bound_bpp_upper : float or None
        The model's own rate–distortion bound (:func:`ratedist.rd.model_rate_distortion`:
        any coder that treats each tensor's normalized weights as i.i.d. draws from its
        empirical law) at ``distortion``: its certified lower and upper values.
    gap : float or None
        ``bpp / bound_bpp − 1``, the relative rate overhead against the certified lower bound.
    laplace_bpp : float or None
        R(D) of one Laplacian fitted to all normalized weights (a secondary reference, not a
        bound for real weights).
    """

    method: str
    metric: str
    normalize: str | None
    n_params: int
    n_bits: int
    bpp: float
    distortion: float
    zero_fraction: float
    zero_fraction_laplace: float
    seconds: float
    tensors: dict = field(default_factory=dict)
    coder: dict = field(default_factory=dict)
    bound_bpp: float | None = None
    bound_bpp_upper: float | None = None
    gap: float | None = None
    laplace_bpp: float | None = None

    def to_dict(self) -> dict:
        return {"method": self.method, "n_params": self.n_params, "n_bits": self.n_bits, "bpp": self.bpp,
                "distortion": self.distortion, "metric": self.metric, "normalize": self.normalize,
                "bound_bpp": self.bound_bpp, "bound_bpp_upper": self.bound_bpp_upper, "gap": self.gap,
                "laplace_bpp": self.laplace_bpp, "zero_fraction": self.zero_fraction,
                "zero_fraction_laplace": self.zero_fraction_laplace, "seconds": self.seconds,
                "coder": dict(self.coder),
                "tensors": {k: {"bpp": t.bpp, "distortion": t.distortion} for k, t in self.tensors.items()}}


@dataclass(frozen=True)
class QuantEncoding:
    """The result of :func:`encode`: ``stream`` (bytes), ``report`` and the decoded ``weights``."""

    stream: bytes
    report: QuantReport
    weights: dict


# ----------------------------------------------------------------------------- normalization


def _safe_norm(x: np.ndarray, kind: str | None) -> float:
    """‖x‖₂ or ‖x‖₁ without overflow (scaled by max|x|); 1.0 for ``kind=None``."""
    if kind is None:
        return 1.0
    scale = float(np.max(np.abs(x))) if x.size else 0.0
    if scale == 0.0:
        return 0.0
    y = x / scale
    return scale * (float(np.sqrt(np.dot(y, y))) if kind == "l2" else float(np.sum(np.abs(y))))


def _prepare(weights, normalize):
    arrays = check_weights("weights", weights, allow_empty_tensors=False)
    out = []
    for name, arr in arrays.items():
        if arr.dtype.kind != "f" or arr.dtype.name not in _FLOAT_DTYPES:
            raise InvalidArgumentError(
                f"tensor {name!r} of `weights` has dtype {arr.dtype}; the quantizers code float16/32/64 tensors "
                "only (drop integer buffers such as `num_batches_tracked` or cast them first).")
        x = np.ascontiguousarray(arr, dtype=np.float64).ravel()
        norm = _safe_norm(x, normalize)
        if not math.isfinite(norm):
            raise InvalidArgumentError(f"tensor {name!r} of `weights` has a norm that overflows float64.")
        u = x / norm if norm > 0 else np.zeros_like(x)
        out.append((name, arr, u, norm))
    return out


# ----------------------------------------------------------------------------- allocation


def _hull(bits: np.ndarray, dist: np.ndarray) -> np.ndarray:
    """Indices of the lower convex hull of points (bits, dist), by increasing bits."""
    order = np.lexsort((dist, bits))
    keep: list[int] = []
    best = math.inf
    for i in order:  # drop dominated points
        if dist[i] < best:
            keep.append(int(i))
            best = dist[i]
    hull: list[int] = []
    for i in keep:
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            # b is above the segment a–i: not on the lower hull
            if (dist[b] - dist[a]) * (bits[i] - bits[a]) >= (dist[i] - dist[a]) * (bits[b] - bits[a]):
                hull.pop()
            else:
                break
        hull.append(i)
    return np.asarray(hull, dtype=np.int64)


def _choose(hulls, mu: float) -> list[int]:
    """Per tensor, the hull point minimizing dist + μ·bits (μ = ∞: the fewest bits)."""
    if not math.isfinite(mu):
        return [int(h[0]) for h, _b, _d in hulls]
    return [int(h[np.argmin(d + mu * b)]) for h, b, d in hulls]


def allocate(points: list[tuple[np.ndarray, np.ndarray]], *, bits: float | None = None,
             distortion: float | None = None) -> tuple[list[int], float]:
    """Choose one operating point per tensor at a common slope.

    Parameters
    ----------
    points : list of (bits, dist) array pairs
        Per tensor, the bits and the *summed* distortion of each operating point.
    bits : float, optional
        Total bit budget: the allocation with the least total distortion whose total bits
        do not exceed it (among the common-slope allocations).
    distortion : float, optional
        Total (summed) distortion allowed: the common-slope allocation with the fewest bits
        that meets it.

    Returns
    -------
    (choices, mu)
        Index of the chosen point per tensor, and the multiplier μ (distortion per bit).

    Raises
    ------
    UnreachableTargetError
        When even the finest (for ``distortion``) or the coarsest (for ``bits``) allocation
        misses the target; the message says what is reachable.

    Examples
    --------
    Two tensors, each with three points; with 2 bits the steeper second tensor gets them, with 4 bits
    the first tensor's first step (2 bits for 2 less distortion) ties the second's last:

    >>> pts = [(np.array([0., 2, 4]), np.array([10., 8, 7])), (np.array([0., 2, 4]), np.array([10., 4, 2]))]
    >>> allocate(pts, bits=2)[0], allocate(pts, bits=4)[0]
    ([0, 1], [1, 1])
    """
    if (bits is None) == (distortion is None):
        raise InvalidArgumentError("give exactly one of `bits` and `distortion`.")
    hulls = []
    for b, d in points:
        b, d = np.asarray(b, dtype=np.float64), np.asarray(d, dtype=np.float64)
        h = _hull(b, d)
        hulls.append((h, b[h], d[h]))
    # candidate multipliers: every hull breakpoint slope, plus 0 and ∞; totals are monotone in μ
    slopes = {0.0, math.inf}
    for _h, b, d in hulls:
        db, dd = np.diff(b), -np.diff(d)
        slopes.update((dd[db > 0] / db[db > 0]).tolist())
    mus = np.array(sorted(slopes), dtype=np.float64)          # increasing μ: fewer bits, more distortion

    def totals(k):
        ch = _choose(hulls, float(mus[k]))
        return (sum(float(p[0][c]) for p, c in zip(points, ch)), sum(float(p[1][c]) for p, c in zip(points, ch)), ch)

    def search(ok):  # smallest (bits) or largest (distortion) index k whose totals satisfy ok; monotone
        lo, hi = 0, len(mus) - 1
        if bits is not None:  # ok(k) is False for small k, True from some k on
            if not ok(totals(hi)):
                return None
            while lo < hi:
                mid = (lo + hi) // 2
                if ok(totals(mid)):
                    hi = mid
                else:
                    lo = mid + 1
            return lo
        if not ok(totals(lo)):  # ok(k) True for small k, False from some k on
            return None
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if ok(totals(mid)):
                lo = mid
            else:
                hi = mid - 1
        return lo

    if bits is not None:
        k = search(lambda t: t[0] <= bits)
        if k is None:
            raise UnreachableTargetError(
                f"the coarsest allocation already needs {totals(len(mus) - 1)[0]:.6g} bits, above the budget "
                f"{bits:.6g}; ask for a higher rate.")
    else:
        k = search(lambda t: t[1] <= distortion)
        if k is None:
            raise UnreachableTargetError(
                f"the finest allocation reaches a summed distortion of {totals(0)[1]:.6g}, above the target "
                f"{distortion:.6g}; ask for a larger distortion.")
    choice = totals(k)[2]
    if bits is not None:
        choice = _fill(hulls, points, choice, bits)
    return choice, float(mus[k])


def _fill(hulls, points, choice, budget):
    """Spend what the common slope left of the budget: step tensors up their hulls, best gain per bit first."""
    choice = list(choice)
    pos = [int(np.flatnonzero(h == c)[0]) for (h, _b, _d), c in zip(hulls, choice)]
    left = budget - sum(float(p[0][c]) for p, c in zip(points, choice))
    while True:
        best, arg = 0.0, -1
        for t, ((h, b, d), k) in enumerate(zip(hulls, pos)):
            if k + 1 < h.shape[0] and b[k + 1] - b[k] <= left:
                gain = (d[k] - d[k + 1]) / max(b[k + 1] - b[k], 1e-12)
                if gain > best:
                    best, arg = gain, t
        if arg < 0:
            return choice
        h, b, _d = hulls[arg]
        left -= b[pos[arg] + 1] - b[pos[arg]]
        pos[arg] += 1
        choice[arg] = int(h[pos[arg]])


def _subsample(v: np.ndarray, size: int = SUBSAMPLE) -> np.ndarray:
    """At most ``size`` values of ``v``: 16 evenly spaced contiguous runs (contexts stay intact)."""
    n = v.shape[0]
    if n <= size:
        return v
    run = max(1, size // 16)
    starts = np.linspace(0, n - run, 16).astype(np.int64)
    return np.concatenate([v[s0:s0 + run] for s0 in starts])


def _coded(coder, v, metric, c, n):
    """(bits, Σρ) of candidate ``c`` coded on ``v``, scaled to ``n`` weights."""
    code = coder.encode_tensor(v, metric, **c)
    scale = n / v.shape[0]
    return 8.0 * len(code.payload) * scale, tensor_distortion(v, code.recon, metric) * scale


def _measure(coder, u: np.ndarray, shape, metric: str, cands: list[dict]):
    """Operating points of one tensor: ((options, scan) pairs, bits, Σρ, whether they are exact).

    A first estimate of every candidate comes from the coder's fast ``estimate`` or, without one,
    from coding a :data:`_ROUGH`-weight subsample.  Coders without context modelling
    (``context_free``: a fixed-rate code) stop there.  For the others, what the neighbour
    contexts find depends on the scan order, so each order (row-major and, for tensors with two
    or more axes, the first two axes swapped) is calibrated: three points of the estimated lower
    hull are coded on a :func:`_subsample` of the tensor in that order, and the order's ladder is
    scaled by the median measured/estimated ratios.  The encoder then codes the points it
    chooses in full and re-allocates until those are exact.
    """
    n = u.shape[0]
    if hasattr(coder, "estimate"):
        prepared = coder.prepare(u, metric) if hasattr(coder, "prepare") else u
        res = [coder.estimate(prepared, metric, **c) for c in cands]
    else:
        rough = _subsample(u, _ROUGH)
        res = [_coded(coder, rough, metric, c, n) for c in cands]
    bits = np.array([r[0] for r in res])
    dist = np.array([r[1] for r in res])
    if getattr(coder, "context_free", False):
        return [(c, "c") for c in cands], bits, dist, False
    h = _hull(bits, dist)
    scans = ("c", "t") if _can_transpose(shape) else ("c",)
    if n <= _ROUGH:  # small: code the estimated hull and its neighbours exactly, in every order
        keep = sorted(set(h.tolist()))
        pairs = [(cands[j], scan) for scan in scans for j in keep]
        res = [_coded(coder, _scan(u, shape, scan), metric, c, n) for c, scan in pairs]
        return pairs, np.array([r[0] for r in res]), np.array([r[1] for r in res]), True
    probes = sorted({int(h[k]) for k in (len(h) // 4, len(h) // 2, (3 * len(h)) // 4)})
    pairs, all_b, all_d = [], [], []
    for scan in scans:
        sub = _subsample(_scan(u, shape, scan))
        rb, rd = [], []
        for j in probes:
            b_j, d_j = _coded(coder, sub, metric, cands[j], n)
            if bits[j] > 0:
                rb.append(b_j / bits[j])
            if dist[j] > 0:
                rd.append(d_j / dist[j])
        pairs += [(c, scan) for c in cands]
        all_b.append(bits * (float(np.median(rb)) if rb else 1.0))
        all_d.append(dist * (float(np.median(rd)) if rd else 1.0))
    return pairs, np.concatenate(all_b), np.concatenate(all_d), False


# ----------------------------------------------------------------------------- stream


def _entry(name, arr, norm, params) -> list:
    return [name, arr.dtype.name, list(arr.shape), float(norm), dict(params)]


def _pack(method, metric, normalize, coder_opts, entries, payloads) -> bytes:
    """The container: a JSON header naming the format, the binary table (segment 0), one segment per tensor."""
    return pack_container({"format": FORMAT},
                          [_pack_table(method, metric, normalize, coder_opts, entries)] + list(payloads))


# The table is binary rather than JSON because on a small model the header is a visible part of
# the rate (a 30 k-parameter model at 1 bit per parameter is 3.7 kB):
#   u8 method | u8 metric | u8 normalize | params (the coder's options) | varint n_tensors, then per tensor
#   varint len, name (UTF-8) | u8 dtype | varint ndim, dims | f64 norm | params (the tensor's)
# where params = varint count, then per entry: varint len, key (UTF-8), u8 tag (f: f64, i: zigzag
# varint, b: bool, s: string), value.

def _put_str(s: str) -> bytes:
    b = s.encode("utf-8")
    return put_varint(len(b)) + b


def _put_params(params: dict) -> bytes:
    out = [put_varint(len(params))]
    for key in sorted(params):
        v = params[key]
        out.append(_put_str(key))
        if isinstance(v, bool):
            out.append(b"b" + bytes([int(v)]))
        elif isinstance(v, (int, np.integer)):
            v = int(v)
            out.append(b"i" + put_varint((v << 1) if v >= 0 else ((-v << 1) - 1)))
        elif isinstance(v, (float, np.floating)):
            out.append(b"f" + struct.pack("<d", float(v)))
        elif isinstance(v, str):
            out.append(b"s" + _put_str(v))
        else:
            raise TypeError(f"parameter {key!r} has type {type(v).__name__}")
    return b"".join(out)


def _pack_table(method, metric, normalize, coder_opts, entries) -> bytes:
    out = [bytes([METHODS.index(method), METRICS.index(metric), NORMALIZATIONS.index(normalize)]),
           _put_params(coder_opts), put_varint(len(entries))]
    for name, dtype, shape, norm, params in entries:
        out += [_put_str(name), bytes([_FLOAT_DTYPES.index(dtype)]), put_varint(len(shape))]
        out += [put_varint(d) for d in shape]
        out += [struct.pack("<d", norm), _put_params(params)]
    return b"".join(out)


class _Reader:
    """Bounds-checked reads from the table; every failure is a CorruptStreamError."""

    def __init__(self, buf: bytes):
        self.buf, self.pos = buf, 0

    def varint(self) -> int:
        v, self.pos = get_varint(self.buf, self.pos)
        return v

    def take(self, k: int) -> bytes:
        if self.pos + k > len(self.buf):
            raise CorruptStreamError("the stream's table is truncated.")
        out = self.buf[self.pos:self.pos + k]
        self.pos += k
        return out

    def string(self) -> str:
        raw = self.take(self.varint())
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise CorruptStreamError("the stream's table holds a string that is not UTF-8.") from None

    def params(self) -> dict:
        n_par = self.varint()
        if n_par > 64:
            raise CorruptStreamError(f"the stream's table declares {n_par} parameters in one entry (at most 64).")
        out = {}
        for _p in range(n_par):
            key = self.string()
            tag = self.take(1)
            if tag == b"b":
                raw = self.take(1)
                if raw[0] > 1:
                    raise CorruptStreamError("the stream's table holds a boolean that is neither 0 nor 1.")
                out[key] = bool(raw[0])
            elif tag == b"i":
                z = self.varint()
                out[key] = (z >> 1) if not z & 1 else -((z + 1) >> 1)
            elif tag == b"f":
                out[key] = struct.unpack("<d", self.take(8))[0]
            elif tag == b"s":
                out[key] = self.string()
            else:
                raise CorruptStreamError(f"the stream's table holds an unknown parameter tag {tag!r}.")
        return out


def _unpack_table(buf: bytes):
    r = _Reader(buf)
    codes = r.take(3)
    if codes[0] >= len(METHODS) or codes[1] >= len(METRICS) or codes[2] >= len(NORMALIZATIONS):
        raise CorruptStreamError(f"the stream's table has method/metric/normalize codes {list(codes)}; "
                                 f"expected codes below {len(METHODS)}, {len(METRICS)}, {len(NORMALIZATIONS)}.")
    method, metric, normalize = METHODS[codes[0]], METRICS[codes[1]], NORMALIZATIONS[codes[2]]
    opts = r.params()
    n = r.varint()
    if n > len(buf):
        raise CorruptStreamError(f"the stream's table declares {n} tensors in {len(buf)} bytes.")
    entries = []
    for _ in range(n):
        name = r.string()
        code = r.take(1)[0]
        if code >= len(_FLOAT_DTYPES):
            raise CorruptStreamError(f"the stream's table gives tensor {name!r} an unknown dtype code {code}.")
        ndim = r.varint()
        if ndim > 32:
            raise CorruptStreamError(f"the stream's table gives tensor {name!r} {ndim} dimensions (at most 32).")
        shape = [r.varint() for _d in range(ndim)]
        (norm,) = struct.unpack("<d", r.take(8))
        entries.append([name, _FLOAT_DTYPES[code], shape, norm, r.params()])
    if r.pos != len(buf):
        raise CorruptStreamError(f"the stream's table has {len(buf) - r.pos} trailing bytes.")
    return method, metric, normalize, opts, entries


def _check_target(rate, distortion, d_max):
    if (rate is None) == (distortion is None):
        raise InvalidArgumentError("give exactly one of `rate` (bits per parameter) and `distortion` (d(u, û)).")
    if rate is not None:
        rate = check_positive("rate", rate)
        if rate > 32:
            raise InvalidArgumentError(f"`rate` {rate!r} bits per parameter is above 32 (more than the float32 "
                                       "weights themselves); ask for at most 32.")
        return rate, None
    distortion = check_positive("distortion", distortion)
    if distortion > d_max:
        raise InvalidArgumentError(
            f"`distortion` {distortion!r} is above the zero-rate distortion {d_max:.6g} of these weights (all "
            "weights reproduced as 0); ask for a distortion in (0, that value].")
    return None, distortion


def encode(weights: Mapping[str, Any], *, method: str = "tcq", rate: float | None = None,
           distortion: float | None = None, metric: str = "l1", normalize: str | None = "l2",
           bound: bool = False, **coder_options) -> QuantEncoding:
    """Quantize and entropy-code a model at a target rate or distortion.

    Parameters
    ----------
    weights : Mapping[str, array]
        Float tensors (a state_dict); each is coded on its own.
    method : {"scalar", "tcq", "trellis"}
        ``"scalar"``: deadzone scalar quantizer + entropy coder (:mod:`ratedist.quant.scalar`);
        ``"tcq"``: entropy-coded trellis (dependent) quantization (:mod:`ratedist.quant.tcq`);
        ``"trellis"``: fixed-rate bitshift trellis (:mod:`ratedist.quant.trellis`).
    rate : float, optional
        Target bits per parameter, counting every byte of the stream: the allocation with
        the least distortion whose stream fits.
    distortion : float, optional
        Target d(u, û) in (0, zero-rate distortion]: the fewest bits that meet it.
    metric : {"l1", "mse"}
    normalize : {"l2", "l1", None}
    bound : bool
        Also compute the model's rate–distortion bound at the reached distortion
        (``report.bound_bpp``, ``report.gap``); costs a Blahut–Arimoto sweep.
    **coder_options
        Passed to the coder (``states=`` for tcq; ``L=``, ``backend=`` for trellis).

    Returns
    -------
    QuantEncoding

    Examples
    --------
    >>> import numpy as np
    >>> w = {"a": np.random.default_rng(0).laplace(size=(64, 64)).astype(np.float32)}
    >>> enc = encode(w, method="scalar", rate=2.0)
    >>> enc.report.n_bits == 8 * len(enc.stream), enc.report.bpp <= 2.0
    (True, True)
    >>> all(np.array_equal(decode(enc.stream)[k], enc.weights[k]) for k in w)
    True
    """
    t0 = time.perf_counter()
    check_choice("metric", metric, METRICS)
    check_choice("normalize", normalize, NORMALIZATIONS)
    coder = get_coder(method, **coder_options)
    tensors = _prepare(weights, normalize)
    n = sum(u.shape[0] for _n, _a, u, _s in tensors)
    d_max = sum(float(np.sum(np.abs(u))) if metric == "l1" else float(np.dot(u, u)) for *_x, u, _s in tensors) / n
    rate, distortion = _check_target(rate, distortion, d_max)
    opts = _coder_options(coder)

    cands, points, exact = [], [], []     # exact: points whose (bits, Σρ) are those of the full tensor
    for _name, _arr, u, norm in tensors:
        if norm == 0.0:
            cands.append([None])
            points.append((np.zeros(1), np.zeros(1)))
            exact.append({0})
            continue
        pairs, bits, dist, is_exact = _measure(coder, u, _arr.shape, metric, coder.candidates(u, metric))
        cands.append(pairs)
        points.append((bits, dist))
        exact.append(set(range(len(pairs))) if is_exact else set())

    def header_bits(choice_params):
        entries = [_entry(name, arr, norm, p) for (name, arr, _u, norm), p in zip(tensors, choice_params)]
        return 8 * len(_pack(method, metric, normalize, opts, entries, [b""] * len(entries)))

    overhead = header_bits([c[0][0] if c[0] else {} for c in cands])
    budget = None if rate is None else rate * n - overhead
    target_d = None if distortion is None else distortion * n
    codes: list[TensorCode | None] = []
    scans = ["c"] * len(tensors)
    # ladder points whose (bits, distortion) are those of the full tensor already
    cache: dict = {}
    best = None
    for _attempt in range(24):
        if budget is not None and budget <= 0:
            raise UnreachableTargetError(
                f"`rate` {rate!r} bits per parameter does not even pay for the stream's header ({overhead} bits "
                f"for {n} parameters); ask for at least {overhead / n:.4g}.")
        choice, _mu = allocate(points, bits=budget, distortion=target_d)
        codes = []
        for t, ((_name, arr, u, _norm), c, j) in enumerate(zip(tensors, cands, choice)):
            if c[j] is None:
                codes.append(None)
                continue
            opts_j, scans[t] = c[j]
            if (t, j) not in cache:
                cache[(t, j)] = coder.encode_tensor(_scan(u, arr.shape, scans[t]), metric, **opts_j)
            codes.append(cache[(t, j)])
        entries = [_entry(name, arr, norm, _with_scan(code.params, scans[t]) if code else {})
                   for t, ((name, arr, _u, norm), code) in enumerate(zip(tensors, codes))]
        stream = _pack(method, metric, normalize, opts, entries, [code.payload if code else b"" for code in codes])
        dists = [tensor_distortion(_scan(u, arr.shape, scans[t]), code.recon, metric) if code else 0.0
                 for t, ((_n, arr, u, _s), code) in enumerate(zip(tensors, codes))]
        total_d = sum(dists)
        ok_rate = rate is None or 8 * len(stream) <= rate * n
        ok_dist = distortion is None or total_d <= distortion * n * (1 + 1e-12)
        if ok_rate and ok_dist:   # a valid stream: keep the best seen (least distortion, or fewest bits)
            key = total_d if rate is not None else len(stream)
            if best is None or key < best[0]:
                best = (key, stream, codes, dists, list(scans))
        # points measured on a subsample become exact once coded in full
        stale = False
        tot_b = max(64.0, sum(8.0 * len(c.payload) for c in codes if c is not None))
        tot_d = max(1e-300, total_d)
        for t, (code, j) in enumerate(zip(codes, choice)):
            if code is None or j in exact[t]:
                continue
            eb, ed = points[t][0][j], points[t][1][j]
            rb, rd = 8.0 * len(code.payload), dists[t]
            points[t][0][j], points[t][1][j] = rb, rd
            exact[t].add(j)
            # redo the allocation only for a mismatch that matters to the whole model
            stale = stale or abs(rb - eb) > 2e-3 * tot_b or abs(rd - ed) > 2e-3 * tot_d
        if rate is not None and 8 * len(stream) > rate * n:
            # over the target (the header grew with the parameters, or estimates were low): tighten, redo
            budget -= (8 * len(stream) - rate * n) / (2 if stale else 1) + 8
            continue
        if distortion is not None and total_d > distortion * n * (1 + 1e-12) and not stale:
            target_d -= (total_d - distortion * n) + 1e-3 * distortion * n
            if target_d <= 0:
                break
            continue
        if not stale:
            break
    if best is None:
        raise UnreachableTargetError("the allocation could not meet the target after 24 corrections; "
                                     "ask for a slightly different rate or distortion.")
    _key, stream, codes, dists, scans = best
    total_d = sum(dists)

    out_weights, treports = {}, {}
    zeros = 0
    zl = 0.0
    for t, ((name, arr, u, norm), code) in enumerate(zip(tensors, codes)):
        recon = _unscan(code.recon, arr.shape, scans[t]) if code else np.zeros_like(u)
        out_weights[name] = _denormalize(recon, norm, arr.dtype, arr.shape)
        zeros += int(np.count_nonzero(recon == 0))
        d_t = tensor_distortion(u, recon, metric) / u.shape[0]
        mean_abs = float(np.mean(np.abs(u)))
        zl += u.shape[0] * (min(1.0, (d_t / mean_abs) ** 2) if mean_abs > 0 else 1.0)
        nb = 8 * len(code.payload) if code else 0
        treports[name] = TensorReport(name=name, n_params=int(u.shape[0]), n_bits=nb, bpp=nb / u.shape[0],
                                      distortion=d_t, params=code.params if code else {})
    n_bits = 8 * len(stream)
    dist = total_d / n
    rep = dict(method=method, metric=metric, normalize=normalize, n_params=n, n_bits=n_bits, bpp=n_bits / n,
               distortion=dist, zero_fraction=zeros / n, zero_fraction_laplace=zl / n, tensors=treports, coder=opts)
    rep.update(_laplace_reference(tensors, metric, dist))
    if bound:
        rep.update(bound_at(weights, dist, bpp=n_bits / n, metric=metric, normalize=normalize))
    report = QuantReport(seconds=time.perf_counter() - t0, **rep)
    return QuantEncoding(stream=stream, report=report, weights=out_weights)


def _laplace_reference(tensors, metric, dist) -> dict:
    """R(D) of one Laplacian (L1) or Gaussian (MSE) fitted to all normalized weights pooled, in bits."""
    u = np.concatenate([t[2] for t in tensors])
    if metric == "l1":
        b = float(np.mean(np.abs(u)))
        r = max(0.0, math.log2(b / dist)) if b > 0 and dist > 0 else 0.0
    else:
        v = float(np.dot(u, u) / u.shape[0])
        r = max(0.0, 0.5 * math.log2(v / dist)) if v > 0 and dist > 0 else 0.0
    return {"laplace_bpp": r}


def bound_at(weights, distortion: float, *, bpp: float | None = None, metric: str = "l1",
             normalize: str | None = "l2", curve=None) -> dict:
    """The model's rate–distortion bound at ``distortion``: ``bound_bpp`` (certified lower), ``bound_bpp_upper``, ``gap``.

    ``gap = bpp / bound_bpp − 1`` when ``bpp`` is given.  ``curve`` reuses a computed
    :func:`ratedist.rd.model_rate_distortion` result.
    """
    from ..rd.model import model_bound_at, model_rate_distortion

    if curve is None:
        curve = model_rate_distortion(weights, metric=metric, normalize=normalize, units="bits")
    lo, hi = model_bound_at(curve, distortion)
    gap = (bpp / lo - 1.0) if (bpp is not None and lo > 0) else None
    return {"bound_bpp": float(lo), "bound_bpp_upper": float(hi), "gap": gap}


def _can_transpose(shape) -> bool:
    return len(shape) >= 2 and shape[0] > 1 and math.prod(shape[1:]) > 1


def _scan(u: np.ndarray, shape, scan: str) -> np.ndarray:
    """The tensor's values in coding order: ``"c"`` row-major, ``"t"`` with the first two axes swapped
    (a linear layer by input feature, a convolution by input channel)."""
    if scan == "c":
        return u
    return np.ascontiguousarray(np.swapaxes(u.reshape(shape), 0, 1)).ravel()


def _unscan(v: np.ndarray, shape, scan: str) -> np.ndarray:
    if scan == "c":
        return v
    swapped = (shape[1], shape[0]) + tuple(shape[2:])
    return np.ascontiguousarray(np.swapaxes(v.reshape(swapped), 0, 1)).ravel()


def _with_scan(params: dict, scan: str) -> dict:
    return {**params, "scan": scan} if scan != "c" else dict(params)


def _denormalize(recon: np.ndarray, norm: float, dtype, shape) -> np.ndarray:
    return (recon * norm).astype(dtype, copy=False).reshape(shape)


# ----------------------------------------------------------------------------- decode


def _parse(stream: bytes):
    if not isinstance(stream, (bytes, bytearray, memoryview)):
        raise InvalidArgumentError(f"`stream` must be bytes, got {type(stream).__name__}.")
    c = unpack_container(stream)
    h = c.header
    if h.get("format") in _OLD_FORMATS:
        raise CorruptStreamError(f"stream format {h.get('format')!r} is an earlier revision of the quantized-model "
                                 f"format that this ratedist no longer reads ({FORMAT!r}); re-encode the model.")
    if h.get("format") != FORMAT:
        raise CorruptStreamError(f"stream format is {h.get('format')!r}, not {FORMAT!r}: not a quantized model "
                                 "(decode SuRP streams with `ratedist surp decode`).")
    if len(c.segments) < 1:
        raise CorruptStreamError("stream has no table (segment 0).")
    method, metric, normalize, opts, entries = _unpack_table(c.segments[0])
    if len(entries) != len(c.segments) - 1:
        raise CorruptStreamError(f"stream's table lists {len(entries)} tensors but it holds "
                                 f"{len(c.segments) - 1} tensor segments.")
    h = {"method": method, "metric": metric, "normalize": normalize, "coder": opts}
    try:
        coder = get_coder(method, **opts)
    except (RatedistError, TypeError) as exc:
        raise CorruptStreamError(f"stream header's coder options {opts!r} are invalid: {exc}") from None
    total = 0
    parsed = []
    seen = set()
    for e in entries:
        if not (isinstance(e, list) and len(e) == 5 and isinstance(e[0], str) and e[1] in _FLOAT_DTYPES
                and isinstance(e[2], list) and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s
                                                   for s in e[2])
                and isinstance(e[3], (int, float)) and not isinstance(e[3], bool) and isinstance(e[4], dict)):
            raise CorruptStreamError(f"stream header has a malformed tensor entry {str(e)[:80]!r}.")
        if e[0] in seen:
            raise CorruptStreamError(f"stream header lists tensor {e[0]!r} twice.")
        seen.add(e[0])
        size = math.prod(e[2])
        norm = float(e[3])
        if size == 0 or size > _MAX_PARAMS or not (math.isfinite(norm) and norm >= 0):
            raise CorruptStreamError(f"stream header's tensor {e[0]!r} has shape {e[2]} and norm {e[3]!r}; "
                                     "expected a non-empty shape and a finite non-negative norm.")
        total += size
        parsed.append((e[0], np.dtype(e[1]), tuple(e[2]), norm, e[4], size))
    check_fits(24 * total, f"{total} parameters")
    return h, c, coder, parsed


def decode(stream: bytes) -> dict[str, np.ndarray]:
    """Decode a :func:`encode` stream: the weights with their names, shapes and dtypes.

    Raises :class:`~ratedist.errors.CorruptStreamError` on anything that does not decode.
    """
    h, c, coder, parsed = _parse(stream)
    out = {}
    for (name, dtype, shape, norm, params, size), payload in zip(parsed, c.segments[1:]):
        if norm == 0.0:
            if payload:
                raise CorruptStreamError(f"tensor {name!r} has norm 0 but a non-empty payload.")
            out[name] = np.zeros(shape, dtype=dtype)
            continue
        params = dict(params)
        scan = params.pop("scan", "c")
        if scan not in ("c", "t") or (scan == "t" and not _can_transpose(shape)):
            raise CorruptStreamError(f"tensor {name!r} has scan order {scan!r}; expected 'c', or 't' for a tensor "
                                     "with at least two dimensions.")
        recon = coder.decode_tensor(payload, params, size, h["metric"])
        if recon.shape != (size,):
            raise CorruptStreamError(f"tensor {name!r} decodes to {recon.shape[0]} values, not {size}.")
        recon = _unscan(recon, shape, scan)
        with np.errstate(over="ignore"):
            w = _denormalize(recon, norm, dtype, shape)
        if not np.all(np.isfinite(w)):
            raise CorruptStreamError(f"tensor {name!r} decodes to non-finite weights in {dtype}; the header's "
                                     "norm is corrupted.")
        out[name] = w
    return out


def inspect(stream: bytes) -> dict:
    """The stream's header as plain data: method, metric, normalization, coder options, and per tensor its
    shape, dtype, norm, parameters and segment bits (nothing is decoded)."""
    h, c, _coder, parsed = _parse(stream)
    n = sum(p[5] for p in parsed)
    return {"format": FORMAT, "method": h["method"], "metric": h["metric"], "normalize": h["normalize"],
            "coder": h["coder"], "n_params": n, "n_bits": 8 * len(stream), "bpp": 8 * len(stream) / n,
            "tensors": {name: {"shape": list(shape), "dtype": dtype.name, "norm": norm, "params": params,
                               "n_bits": 8 * len(seg)}
                        for (name, dtype, shape, norm, params, _s), seg in zip(parsed, c.segments[1:])}}
