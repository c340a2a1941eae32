"""EDEN (Vargaftik et al., ICML 2022): rotation + Lloyd–Max quantization at b bits (docs/theory.md §6).

After DRIVE's rotation, z = √n·Rx/‖x‖ is close to N(0, 1) per coordinate.
Each z_i is quantized with the Lloyd–Max quantizer of N(0, 1) at w_i bits,
where w_i = ⌊b⌋ + Bern(b − ⌊b⌋) from the shared seed (so fractional b and
b < 1 — random subsampling, w_i ∈ {0, 1} — cost b bits per coordinate on
average).  Coordinates with w_i = 0 reconstruct to 0.  The scale
S = ‖x‖²/⟨Rx, y⟩ (y the quantized values) makes ⟨x, x̂⟩ = ‖x‖², the condition
that gives unbiasedness under uniformly random rotations; x̂ = R⁻¹(S·y).
``rotation="uniform"`` uses a dense Haar rotation (exactly unbiased, d ≤ 4096).
"""

from __future__ import annotations

import functools
import math
import warnings

import numpy as np
from scipy.special import ndtr

from .._validation import check_positive
from ..errors import ConvergenceWarning, CorruptStreamError, InvalidArgumentError
from .base import (
    PURPOSE_BITS,
    ROTATIONS,
    Compressor,
    check_rotated_decode,
    check_rotation,
    pack_f32,
    rotate,
    stream_rng,
    unpack_f32,
    unrotate,
)

__all__ = ["EDEN", "lloyd_max_gaussian", "eden_vnmse_asymptotic", "MAX_BITS"]

MAX_BITS = 8


@functools.lru_cache(maxsize=None)
def lloyd_max_gaussian(bits: int, *, tol: float = 1e-11, max_iter: int = 200_000):
    """Lloyd–Max quantizer of N(0, 1) with 2^bits levels, by Lloyd's iteration.

    Parameters
    ----------
    bits : int in 1..8

    Returns
    -------
    centroids : float64 array (2^bits,), ascending
    thresholds : float64 array (2^bits − 1,), the cell boundaries (midpoints)
    mse : float
        E(Z − Q(Z))² = 1 − Σ_j P_j c_j² (centroid condition).

    Notes
    -----
    Starts from the quantiles of N(0, 3) (the high-resolution optimal point
    density ∝ φ^{1/3}) and alternates midpoint thresholds and conditional
    means c_j = (φ(t_j) − φ(t_{j+1}))/(Φ(t_{j+1}) − Φ(t_j)).  Known values:
    mse = 0.3634, 0.1175, 0.03455, 0.009501 for 1..4 bits (Max's 1960 table prints
    0.009497 for 4 bits; the fixed point of the iteration is 0.0095010).

    Examples
    --------
    >>> round(lloyd_max_gaussian(1)[2], 4), round(lloyd_max_gaussian(2)[2], 4)
    (0.3634, 0.1175)
    """
    if bits < 1 or bits > MAX_BITS:
        raise InvalidArgumentError(f"`bits` must be in 1..{MAX_BITS}, got {bits}.")
    from scipy.special import ndtri

    L = 1 << bits
    c = math.sqrt(3.0) * ndtri((np.arange(L) + 0.5) / L)
    phi = lambda t: np.exp(-0.5 * t * t) / math.sqrt(2 * math.pi)  # noqa: E731
    for _ in range(max_iter):
        t = 0.5 * (c[1:] + c[:-1])
        edges = np.concatenate(([-np.inf], t, [np.inf]))
        # P of each cell, computed on the side that keeps precision (symmetry)
        p = ndtr(edges[1:]) - ndtr(edges[:-1])
        dens = np.concatenate(([0.0], phi(t), [0.0]))
        new = (dens[:-1] - dens[1:]) / p
        new = 0.5 * (new - new[::-1])  # enforce exact symmetry
        if np.max(np.abs(new - c)) < tol:
            c = new
            break
        c = new
    else:
        warnings.warn(f"Lloyd-Max iteration for {bits} bits did not reach {tol}", ConvergenceWarning, stacklevel=2)
    t = 0.5 * (c[1:] + c[:-1])
    edges = np.concatenate(([-np.inf], t, [np.inf]))
    p = ndtr(edges[1:]) - ndtr(edges[:-1])
    mse = float(1.0 - np.sum(p * c * c))
    c.setflags(write=False)
    t.setflags(write=False)
    return c, t, mse


def eden_vnmse_asymptotic(bits: int) -> float:
    """Large-d vNMSE of unbiased EDEN at an integer number of bits: σ_b²/(1 − σ_b²) (docs/theory.md §6).

    >>> round(eden_vnmse_asymptotic(1), 3)
    0.571
    """
    s2 = lloyd_max_gaussian(int(bits))[2]
    return s2 / (1.0 - s2)


def _widths(seed: int, n: int, b: float) -> np.ndarray:
    lo = math.floor(b)
    frac = b - lo
    w = np.full(n, lo, dtype=np.int64)
    if frac > 0:
        w += stream_rng(seed, PURPOSE_BITS).random(n) < frac
    return w


# Bernstein's inequality for the Binomial(n, f) count of extra bits: P(|X − nf| ≥ t) ≤ 2 exp(−t²/(2(nf + t/3)));
# with c = 64 ln 2 the bound is 2·2⁻⁶⁴ at t = c/3 + sqrt(c²/9 + 2c·nf), so a genuine payload is never refused.
_TAIL_C = 64 * math.log(2)


def _check_body_size(n_body: int, n: int, b: float) -> None:
    """Refuse, in O(1), a body whose size the widths of n coordinates at b bits could not produce."""
    lo = math.floor(b)
    frac = b - lo
    mean = n * b
    t = _TAIL_C / 3 + math.sqrt(_TAIL_C**2 / 9 + 2 * _TAIL_C * n * frac) if frac > 0 else 0.0
    least, most = max(lo * n, mean - t), min((lo + 1) * n if frac > 0 else lo * n, mean + t)
    # the body holds ceil(total / 8) bytes: total lies in [8 n_body − 7, 8 n_body]
    if 8 * n_body < least or 8 * n_body - 7 > most:
        raise CorruptStreamError(f"EDEN payload holds {n_body} bytes; {n} coordinates at {b:g} bits need about "
                                 f"{mean / 8:.0f}. The payload is truncated or corrupted.")


class EDEN(Compressor):
    """EDEN at ``bits`` bits per coordinate (fractional and < 1 allowed).

    Parameters
    ----------
    bits : float in (0, 8]
        Average bits per (padded) coordinate; stored as float32 in the payload.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(64)
    >>> e = EDEN(bits=2)
    >>> xh = e.decode(e.encode(x, seed=0))
    >>> bool(abs(float(x @ xh) - float(x @ x)) < 1e-4 * float(x @ x))
    True
    """

    name = "eden"

    def __init__(self, bits: float = 1.0, rotation: str = "hadamard"):
        self.rotation = check_rotation(rotation)
        b = check_positive("bits", bits)
        if b > MAX_BITS:
            raise InvalidArgumentError(f"`bits` must be <= {MAX_BITS}, got {bits!r}.")
        self.bits = float(np.float32(b))

    def params(self) -> dict:
        return {"bits": self.bits, "rotation": self.rotation}

    def _encode(self, x, seed):
        from ..kernels._fedpm_cpu import write_fields

        check_rotation(self.rotation, x.size)
        rx = rotate(x, seed, self.rotation)
        n = rx.size
        norm = float(np.linalg.norm(x))
        w = _widths(seed, n, self.bits)
        idx = np.zeros(n, dtype=np.int64)
        y = np.zeros(n)
        if norm > 0:
            z = rx * (math.sqrt(n) / norm)
            for b in np.unique(w):
                if b == 0:
                    continue
                cen, thr, _ = lloyd_max_gaussian(int(b))
                sel = w == b
                idx[sel] = np.searchsorted(thr, z[sel])
                y[sel] = cen[idx[sel]]
        ip = float(rx @ y)
        s = (norm * norm) / ip if ip > 0 else 0.0
        out = np.zeros((int(w.sum()) + 7) // 8, dtype=np.uint8)
        write_fields(idx.astype(np.uint64), w, out)
        return bytes([ROTATIONS.index(self.rotation)]) + pack_f32(self.bits) + pack_f32(s), out.tobytes()

    @classmethod
    def _decode(cls, d, seed, buf, pos):
        if pos >= len(buf) or buf[pos] > 1:
            raise CorruptStreamError("EDEN payload has no valid rotation flag.")
        rotation = ROTATIONS[buf[pos]]
        b, pos = unpack_f32(buf, pos + 1)
        if not 0 < b <= MAX_BITS:
            raise CorruptStreamError(f"EDEN payload declares {b} bits per coordinate, outside (0, {MAX_BITS}].")
        s, pos = unpack_f32(buf, pos)
        n = check_rotated_decode("eden", d, rotation)
        body = np.frombuffer(buf, dtype=np.uint8, offset=pos)
        _check_body_size(body.size, n, b)  # before the O(n) draw of the widths
        w = _widths(seed, n, b)
        total = int(w.sum())
        if body.size != (total + 7) // 8:
            raise CorruptStreamError(f"EDEN payload holds {body.size} bytes, expected {(total + 7) // 8}.")
        bits = np.unpackbits(body)
        start = np.cumsum(w) - w
        idx = np.zeros(n, dtype=np.int64)
        for k in range(int(w.max()) if n else 0):
            sel = w > k
            idx[sel] = 2 * idx[sel] + bits[start[sel] + k]
        y = np.zeros(n)
        for bb in np.unique(w):
            if bb == 0:
                continue
            cen = lloyd_max_gaussian(int(bb))[0]
            sel = w == bb
            y[sel] = cen[idx[sel]]
        return unrotate(s * y, seed, d, rotation)
