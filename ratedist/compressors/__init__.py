"""Mean-estimation compressors behind one interface (THEORY.md §5–§6).

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
>>> xh.shape, 8 * len(data) / x.size < 1.1
((1024,), True)
"""

from __future__ import annotations

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
