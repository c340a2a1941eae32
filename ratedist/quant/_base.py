"""The per-tensor coder protocol that every quantizer of :mod:`ratedist.quant` implements.

The model-level machinery (normalization, rate allocation across tensors at a common
slope, the stream format, the report) lives in :mod:`ratedist.quant.codec`; a coder only
sees one tensor at a time, already flattened and normalized:

* ``u`` — a 1-D, C-contiguous float64 array (the tensor's normalized weights ``w / ‖w‖``),
  finite, possibly all zero, length ≥ 1;
* ``metric`` — ``"l1"`` (mean absolute error) or ``"mse"`` (mean squared error).

A coder is deterministic: the same ``(u, params, metric)`` gives the same bytes and the same
reconstruction on every run and with any thread count, and ``decode_tensor`` reproduces
``recon`` bit for bit from the bytes and the parameters alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = ["TensorCode", "TensorCoder", "tensor_distortion"]


@dataclass(frozen=True)
class TensorCode:
    """One tensor, coded.

    Attributes
    ----------
    params : dict
        JSON-able parameters the decoder needs besides the payload (step, model choice,
        codebook parameters...).  Plain ``int``/``float``/``str``/``bool`` values and lists of
        them; floats must round-trip through JSON exactly (Python's ``repr`` does).  Kept
        small: they are stored in the stream header and counted in its rate.
    payload : bytes
        The tensor's coded data (one container segment).
    recon : ndarray, shape (n,), float64
        The reconstruction the decoder will produce, bit for bit.
    """

    params: dict
    payload: bytes
    recon: np.ndarray


class TensorCoder(Protocol):
    """What :mod:`ratedist.quant.codec` needs from a quantizer."""

    #: method name as the CLI and the stream header spell it ("scalar", "tcq", "trellis")
    name: str

    def candidates(self, u: np.ndarray, metric: str) -> list[dict]:
        """Operating points to choose from for this tensor, as keyword dicts for :meth:`encode_tensor`.

        Ordered from the coarsest (fewest bits) to the finest; together they should span
        rates from about 0.05 to about 8 bits per weight densely enough (steps in rate of
        about 0.1–0.25 bit) that the allocator at a common slope can hit any target.
        """

    def encode_tensor(self, u: np.ndarray, metric: str, **options) -> TensorCode:
        """Code ``u`` at one operating point (the keywords of one candidate)."""

    def decode_tensor(self, payload: bytes, params: dict, n: int, metric: str) -> np.ndarray:
        """Inverse of :meth:`encode_tensor`: the float64 reconstruction of length ``n``.

        Must raise :class:`~ratedist.errors.CorruptStreamError` (never another exception,
        never a hang or an allocation larger than a small multiple of ``n``) on a payload or
        parameters that do not decode.
        """


def tensor_distortion(u: np.ndarray, recon: np.ndarray, metric: str) -> float:
    """Sum (not mean) of the per-weight distortion: Σ|u − û| for ``"l1"``, Σ(u − û)² for ``"mse"``."""
    e = np.asarray(u, dtype=np.float64) - np.asarray(recon, dtype=np.float64)
    return float(np.sum(np.abs(e))) if metric == "l1" else float(np.dot(e, e))
