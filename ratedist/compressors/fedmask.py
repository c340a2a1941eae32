"""FedMask (Li et al., 2021) as a FedPM baseline: deterministic thresholded masks (docs/theory.md §6).

m_i = 1[θ_i > τ] (or 1[sigmoid(s_i) > τ] for scores), sent as one bit per
coordinate (packed).  As an estimator of θ it is biased: the threshold is not
the expectation.
"""

from __future__ import annotations

import math

import numpy as np

from .._validation import check_choice, check_open_unit
from ..coding.limits import check_fits
from ..errors import CorruptStreamError
from .base import Compressor, check_vector, pack_f32, unpack_f32

__all__ = ["FedMask"]


class FedMask(Compressor):
    """Deterministic mask m = 1[θ > threshold], 1 bit per coordinate.

    Parameters
    ----------
    threshold : float in (0, 1)
        τ (0.5 in the paper).
    input : {"theta", "scores"}
        Whether :meth:`encode` receives probabilities θ or real scores s (θ = sigmoid(s)).

    Examples
    --------
    >>> c = FedMask()
    >>> c.decode(c.encode(np.array([0.2, 0.7, 0.5]), seed=0)).tolist()
    [0.0, 1.0, 0.0]
    """

    name = "fedmask"

    def __init__(self, threshold: float = 0.5, input: str = "theta"):
        self.threshold = float(np.float32(check_open_unit("threshold", threshold)))
        self.input = check_choice("input", input, ("theta", "scores"))
        self.unit_interval = self.input == "theta"

    def params(self) -> dict:
        return {"threshold": self.threshold, "input": self.input}

    def _encode(self, x, seed):
        if self.input == "theta":
            m = x > self.threshold
        else:
            m = x > math.log(self.threshold / (1.0 - self.threshold))
        return pack_f32(self.threshold), np.packbits(m).tobytes()

    @classmethod
    def _decode(cls, d, seed, buf, pos):
        _, pos = unpack_f32(buf, pos)
        body = np.frombuffer(buf, dtype=np.uint8, offset=pos)
        if body.size != (d + 7) // 8:
            raise CorruptStreamError(f"FedMask payload holds {body.size} bytes, expected {(d + 7) // 8} for d={d}.")
        check_fits(10 * d, f"dimension {d}")  # measured peak 9.1 bytes/coordinate: unpacked bits, float64 mask
        return np.unpackbits(body)[:d].astype(np.float64)


_ = check_vector  # re-exported helper used by the interface
