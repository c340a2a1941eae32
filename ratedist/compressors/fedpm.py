"""FedPM as a compressor: one Bernoulli sample of θ, coded by the paper's accounting (docs/theory.md §5).

The mask m ~ Bern(θ) is drawn from the seed (counter-based generator keyed by the
seed's mask stream), then coded as the count of ones followed by the bits under one
Bernoulli(f) model, eight at a time as byte symbols (:func:`ratedist.fedpm.bitrate_paper`).
The decoder returns m (float64), an unbiased estimate of θ.
"""

from __future__ import annotations

import numpy as np

from ..coding.limits import check_fits
from ..errors import CorruptStreamError
from ..fedpm.bitrate import bitrate_paper, decode_mask_paper
from ..fedpm.masks import sample_masks
from .base import PURPOSE_MASK, Compressor, stream_rng

__all__ = ["FedPMCompressor"]


class FedPMCompressor(Compressor):
    """FedPM's uplink: sample m ~ Bern(θ), code it with the paper's accounting.

    Examples
    --------
    >>> c = FedPMCompressor()
    >>> c.decode(c.encode(np.array([0.0, 1.0, 1.0]), seed=0)).tolist()
    [0.0, 1.0, 1.0]
    """

    name = "fedpm"
    unit_interval = True

    def _encode(self, x, seed):
        m = sample_masks(x, rng=stream_rng(seed, PURPOSE_MASK))
        return b"", bitrate_paper(m).data

    @classmethod
    def _decode(cls, d, seed, buf, pos):
        check_fits(11 * d, f"dimension {d}")  # measured peak 9.1 bytes/coordinate: the mask decode, the float64 copy
        m = decode_mask_paper(bytes(buf[pos:]))
        if m.size != d:
            raise CorruptStreamError(f"FedPM payload holds {m.size} mask entries, expected d={d}.")
        return m.astype(np.float64)
