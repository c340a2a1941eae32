"""Mean-estimation compressors behind one interface (docs/theory.md §5–§6).

``encode(x, *, seed) -> bytes`` and ``decode(bytes) -> x̂`` for QSGD, DRIVE,
EDEN, FedMask and FedPM.  The payload carries dimension, seed and parameters;
every bit count is ``8 * len(payload)``.

Examples
--------
>>> import numpy as np
>>> c = get_compressor("drive", scale="mse")
>>> x = np.random.default_rng(0).standard_normal(1024)
>>> data = c.encode(x, seed=7)
>>> xh = decode(data)
>>> xh.shape, 8 * len(data) / x.size < 1.2
((1024,), True)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_choice
from .base import KINDS, Compressor, hadamard, parse_header, rotate, unrotate
from .drive import DRIVE
from .eden import EDEN, eden_vnmse_asymptotic, lloyd_max_gaussian
from .fedmask import FedMask
from .fedpm import FedPMCompressor
from .qsgd import QSGD, elias_gamma_lengths

__all__ = [
    "Compressor",
    "QSGD",
    "DRIVE",
    "EDEN",
    "FedMask",
    "FedPMCompressor",
    "get_compressor",
    "decode",
    "COMPRESSORS",
    "hadamard",
    "rotate",
    "unrotate",
    "lloyd_max_gaussian",
    "eden_vnmse_asymptotic",
    "elias_gamma_lengths",
    "MeanEstimate",
    "estimate_mean",
]

COMPRESSORS = {"qsgd": QSGD, "drive": DRIVE, "eden": EDEN, "fedmask": FedMask, "fedpm": FedPMCompressor}


def get_compressor(name: str, **params) -> Compressor:
    """The compressor called ``name`` with its parameters.

    Parameters
    ----------
    name : {"qsgd", "drive", "eden", "fedmask", "fedpm"}
    **params
        ``s`` (qsgd), ``scale`` (drive), ``bits`` (eden), ``threshold``,
        ``input`` (fedmask); fedpm takes none.
    """
    check_choice("name", name, tuple(COMPRESSORS))
    try:
        return COMPRESSORS[name](**params)
    except TypeError as exc:
        from ..errors import InvalidArgumentError

        raise InvalidArgumentError(f"bad parameters {params!r} for compressor {name!r}: {exc}.") from None


def decode(data: bytes):
    """Decode any compressor payload (the kind is read from the payload)."""
    kind = parse_header(data)[0]
    return COMPRESSORS[kind]._decode(*parse_header(data)[1:])


@dataclass(frozen=True)
class MeanEstimate:
    """Distributed mean estimation with one compressor, measured from the bytes.

    Attributes
    ----------
    method : str
    nmse : float
        ‖x̄̂ − x̄‖² / ((1/K) Σ_k ‖x_k‖²) (DRIVE/EDEN's normalization; ≈ vNMSE/K).
    bias : float
        ⟨x̄̂ − x̄, x̄⟩ / ‖x̄‖², the relative error along the true mean (0 in
        expectation for unbiased methods).
    bpp : float
        Measured bits per coordinate, 8·Σ len(payload) / (K·d).
    n_bits : int
    estimate : ndarray (d,)
    units : str
    """

    method: str
    nmse: float
    bias: float
    bpp: float
    n_bits: int
    estimate: np.ndarray
    units: str = "bits"


def client_seed(seed: int, k: int) -> int:
    """32-bit seed of client ``k`` derived from a round's ``seed`` (independent rotations per client)."""
    return int(np.random.SeedSequence([int(seed), int(k)]).generate_state(1, np.uint32)[0])


def estimate_mean(compressor: Compressor, xs, *, seed: int = 0) -> MeanEstimate:
    """Compress each client's vector, decode every payload, average, and measure.

    Parameters
    ----------
    compressor : Compressor
    xs : array (K, d)
        One row per client (probabilities θ_k for fedpm and fedmask).
    seed : int
        Round seed; client k uses :func:`client_seed` (seed, k).

    Examples
    --------
    >>> xs = np.random.default_rng(0).standard_normal((4, 1024))
    >>> r = estimate_mean(get_compressor("eden", bits=2), xs, seed=1)
    >>> 2.0 < r.bpp < 2.2, r.nmse < 0.1
    (True, True)
    """
    from ..errors import InvalidArgumentError, InvalidShapeError

    xs = np.asarray(xs)
    if xs.ndim != 2:
        raise InvalidShapeError(f"`xs` must be 2-D (K clients, d coordinates), got shape {xs.shape}.")
    if xs.shape[0] == 0:
        raise InvalidArgumentError("`xs` has no client (K = 0); pass at least one row.")
    k, d = xs.shape
    total = np.zeros(d)
    n_bits = 0
    for i in range(k):
        data = compressor.encode(xs[i], seed=client_seed(seed, i))
        n_bits += 8 * len(data)
        total += decode(data)
    est = total / k
    mean = xs.mean(0)
    err = est - mean
    energy = float(np.mean(np.sum(xs.astype(np.float64) ** 2, axis=1)))
    mm = float(mean @ mean)
    return MeanEstimate(compressor.name, float(err @ err) / energy if energy > 0 else 0.0,
                        float(err @ mean) / mm if mm > 0 else 0.0, n_bits / (k * d), n_bits, est)
