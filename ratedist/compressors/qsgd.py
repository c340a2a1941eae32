"""QSGD (Alistarh et al., NeurIPS 2017) with Elias-gamma coding (docs/theory.md §6).

Stochastic quantization to ``s`` levels: with u_i = s|x_i|/‖x‖, send
ξ_i = ⌊u_i⌋ + Bern(u_i − ⌊u_i⌋), so E[‖x‖ sign(x_i) ξ_i/s] = x_i (unbiased).
The message is ‖x‖ as float32 (32 bits, rounded *up* so u_i ≤ s) and, per
non-zero coordinate, γ(gap to the previous non-zero index), one sign bit and
γ(ξ_i), where γ is the Elias-gamma code (2⌊log2 v⌋ + 1 bits for v ≥ 1).  The
paper uses the recursive Elias (omega) code; gamma is within a constant factor
and its bits are counted exactly here.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int
from ..errors import CorruptStreamError
from ..coding.limits import check_fits
from ..coding.varint import get_varint, put_varint
from .base import PURPOSE_ROUNDING, Compressor, pack_f32, stream_rng, unpack_f32

__all__ = ["QSGD", "elias_gamma_lengths"]


def elias_gamma_lengths(v: np.ndarray) -> np.ndarray:
    """Length 2⌊log2 v⌋ + 1 of the Elias-gamma code of each integer v ≥ 1.

    >>> elias_gamma_lengths(np.array([1, 2, 3, 4, 255])).tolist()
    [1, 3, 3, 5, 15]
    """
    _, e = np.frexp(np.asarray(v, dtype=np.float64))
    return 2 * (e.astype(np.int64) - 1) + 1


class QSGD(Compressor):
    """QSGD with ``s`` quantization levels, Elias-gamma coded.

    Parameters
    ----------
    s : int >= 1
        Number of levels (the paper's s); more levels, more bits, less error.

    Examples
    --------
    >>> q = QSGD(s=4)
    >>> x = np.array([0.5, -1.0, 0.0, 2.0])
    >>> xh = q.decode(q.encode(x, seed=3))
    >>> xh.shape, float(xh[2])
    ((4,), 0.0)
    """

    name = "qsgd"

    def __init__(self, s: int = 1):
        self.s = check_int("s", s, minimum=1, maximum=1 << 30)

    def params(self) -> dict:
        return {"s": self.s}

    def _encode(self, x, seed):
        from ..kernels._fedpm_cpu import write_fields

        s = self.s
        norm = float(np.linalg.norm(x))
        norm32 = np.float32(norm)
        if float(norm32) < norm:
            norm32 = np.nextafter(norm32, np.float32(np.inf))
        nf = float(norm32)
        if nf == 0.0:
            return put_varint(s) + pack_f32(0.0) + put_varint(0), b""
        u = s * np.abs(x) / nf
        lev = np.floor(u)
        lev += stream_rng(seed, PURPOSE_ROUNDING).random(x.size) < (u - lev)
        lev = np.minimum(lev, s).astype(np.int64)
        idx = np.flatnonzero(lev)
        gaps = np.diff(idx, prepend=-1)
        q = lev[idx]
        sign = (x[idx] < 0).astype(np.uint64)
        nnz = idx.size
        values = np.empty(3 * nnz, dtype=np.uint64)
        widths = np.empty(3 * nnz, dtype=np.int64)
        values[0::3], widths[0::3] = gaps, elias_gamma_lengths(gaps)
        values[1::3], widths[1::3] = sign, 1
        values[2::3], widths[2::3] = q, elias_gamma_lengths(q)
        total = int(widths.sum())
        out = np.zeros((total + 7) // 8, dtype=np.uint8)
        write_fields(values, widths, out)
        return put_varint(s) + pack_f32(nf) + put_varint(nnz), out.tobytes()

    @classmethod
    def _decode(cls, d, seed, buf, pos):
        from ..kernels._fedpm_cpu import read_qsgd_tokens

        s, pos = get_varint(buf, pos)
        norm, pos = unpack_f32(buf, pos)
        nnz, pos = get_varint(buf, pos)
        if s < 1 or nnz > d or norm < 0:
            raise CorruptStreamError(f"QSGD payload declares s={s}, nnz={nnz}, norm={norm} for d={d}.")
        body = np.frombuffer(buf, dtype=np.uint8, offset=pos)
        if nnz and 3 * nnz > 8 * body.size:
            raise CorruptStreamError(f"QSGD payload declares {nnz} non-zeros but holds only {8 * body.size} bits.")
        check_fits(8 * d + 17 * nnz, f"dimension {d}")  # x̂, then index (int64), sign (u8), level (int64) per non-zero
        index = np.zeros(nnz, dtype=np.int64)
        sign = np.zeros(nnz, dtype=np.uint8)
        level = np.zeros(nnz, dtype=np.int64)
        status = read_qsgd_tokens(body, 8 * body.size, nnz, d, s, index, sign, level) if nnz else (1 if body.size else 0)
        if nnz == 0 and body.size:
            status = 4
        if status:
            what = {1: "it ends early", 2: "an index exceeds the dimension", 3: "a level exceeds s",
                    4: "bytes are left over"}[int(status)]
            raise CorruptStreamError(f"QSGD payload does not parse: {what}.")
        out = np.zeros(d)
        out[index] = norm * np.where(sign == 1, -1.0, 1.0) * level / s
        return out
