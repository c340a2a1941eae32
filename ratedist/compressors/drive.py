"""DRIVE (Vargaftik et al., NeurIPS 2021): one bit per coordinate after a shared rotation (docs/theory.md §6).

R = H·D/√n (Walsh–Hadamard H, random ±1 diagonal D from the seed, x zero-padded
to n = 2^⌈log2 d⌉).  Send sign(Rx) (n bits) and one float32 scale S; decode
x̂ = R⁻¹(S·sign(Rx)).  ``scale="unbiased"``: S = ‖x‖²/‖Rx‖₁, for which
⟨x, x̂⟩ = ‖x‖² and ‖x − x̂‖² = ‖x‖²(n‖x‖²/‖Rx‖₁² − 1) exactly (n = d for a
power of two; truncating the padding can only lower the error).  It is unbiased
for uniformly random rotations; with the randomized Hadamard rotation the bias
is small and measured in the tests.  ``scale="mse"``: S = ‖Rx‖₁/n (biased,
minimizes ‖x − x̂‖² over S).

``rotation="uniform"`` replaces the Hadamard rotation by a dense Haar-random
orthogonal matrix (d ≤ 4096, no padding), under which the unbiased scale is
exactly unbiased — the setting of the theory; the Hadamard rotation is the
practical one (O(n log n)) and is measurably biased for small, structured x.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_choice
from ..errors import CorruptStreamError
from .base import ROTATIONS, Compressor, check_rotated_decode, check_rotation, pack_f32, rotate, unpack_f32, unrotate

__all__ = ["DRIVE"]


class DRIVE(Compressor):
    """DRIVE with the unbiased or the MSE-optimal scale.

    Examples
    --------
    >>> x = np.random.default_rng(0).standard_normal(100)
    >>> c = DRIVE()
    >>> data = c.encode(x, seed=1)
    >>> c.decode(data).shape, len(data) * 8 >= 128
    ((100,), True)
    """

    name = "drive"
    _SCALES = ("unbiased", "mse")

    def __init__(self, scale: str = "unbiased", rotation: str = "hadamard"):
        self.scale = check_choice("scale", scale, self._SCALES)
        self.rotation = check_rotation(rotation)

    def params(self) -> dict:
        return {"scale": self.scale, "rotation": self.rotation}

    def _encode(self, x, seed):
        check_rotation(self.rotation, x.size)
        rx = rotate(x, seed, self.rotation)
        l1 = float(np.abs(rx).sum())
        if l1 == 0.0:
            s = 0.0
        elif self.scale == "unbiased":
            s = float(x @ x) / l1
        else:
            s = l1 / rx.size
        bits = np.packbits(rx >= 0)
        flag = self._SCALES.index(self.scale) | (ROTATIONS.index(self.rotation) << 1)
        return bytes([flag]) + pack_f32(s), bits.tobytes()

    @classmethod
    def _decode(cls, d, seed, buf, pos):
        if pos >= len(buf) or buf[pos] > 3:
            raise CorruptStreamError("DRIVE payload has no valid scale/rotation flag.")
        rotation = ROTATIONS[buf[pos] >> 1]
        s, pos = unpack_f32(buf, pos + 1)
        n = check_rotated_decode("drive", d, rotation)
        body = np.frombuffer(buf, dtype=np.uint8, offset=pos)
        if body.size != (n + 7) // 8:
            raise CorruptStreamError(f"DRIVE payload holds {body.size} sign bytes, expected {(n + 7) // 8} for d={d}.")
        signs = np.unpackbits(body)[:n].astype(np.float64) * 2.0 - 1.0
        return unrotate(s * signs, seed, d, rotation)
