"""The golden streams: one small, seeded stream of every format ratedist writes.

Each entry of :func:`cases` is ``name -> (encode, decode)``: ``encode()`` returns the stream's
bytes from fixed inputs, ``decode(stream)`` what a user gets back from them.  ``tests/test_golden.py``
checks that encoding reproduces the pinned bytes (the SHA-256 in ``manifest.json``) and that the
stored stream ``<name>.bin`` still decodes to the pinned result.  After a deliberate change of a
format, bump that format's revision and run ``python tests/golden/regenerate.py`` (see ``README.md``
in this folder).
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np


def _weights():
    rng = np.random.default_rng(2026)
    return {"layer.weight": rng.laplace(size=(12, 20)).astype(np.float32),
            "layer.bias": rng.normal(size=12).astype(np.float32),
            "head.weight": (0.1 * rng.laplace(size=(4, 30))).astype(np.float32)}


def _vector():
    return np.random.default_rng(7).standard_normal(300)


def _theta():
    return np.random.default_rng(8).random(300)


def _surp(algorithm):
    from ratedist import surp

    return (lambda: surp.encode(_weights(), [0.5, 0.8], seed=3, algorithm=algorithm).stream, surp.decode)


def _compressor(name, x, **params):
    from ratedist import compressors

    return (lambda: compressors.get_compressor(name, **params).encode(x(), seed=11), compressors.decode)


def _pruning():
    from ratedist.pruning.cost import cost, decode_cost

    def encode():
        w = _weights()
        masks = {k: np.abs(v) >= np.quantile(np.abs(v), 0.6) for k, v in w.items()}
        return cost(w, masks, value_bits=4).stream

    return encode, decode_cost


def _fedpm_mask():
    from ratedist.fedpm import bitrate

    return (lambda: bitrate.bitrate_paper(_theta() < 0.3).data, bitrate.decode_mask_paper)


def _fedpm_mask_coordinate():
    from ratedist.fedpm import bitrate

    theta = np.clip(_theta(), 0.05, 0.95)
    return (lambda: bitrate.bitrate_per_coordinate(_theta() < theta * 0.8, theta).data,
            lambda data: bitrate.decode_mask_per_coordinate(data, theta))


def _refinement():
    from ratedist import refinement

    def encode():
        code = refinement.make_refinement_code(2, [0.5, 0.5], seed=5)
        x = np.random.default_rng(9).laplace(size=(40, 2))
        return refinement.refinement_encode_bytes(code, x, backend="numpy")

    return encode, refinement.refinement_decode_bytes


def _quant_weights():
    rng = np.random.default_rng(2027)
    return {"conv.weight": rng.laplace(size=(16, 8, 3, 3)).astype(np.float32),
            "fc.weight": (0.05 * rng.standard_normal((10, 160))).astype(np.float32),
            "fc.bias": rng.normal(size=10).astype(np.float32)}


def _quant(method, **opts):
    from ratedist import quant

    return (lambda: quant.encode(_quant_weights(), method=method, rate=2.0, **opts).stream, quant.decode)


def cases() -> dict:
    """Every format's golden case, by name."""
    return {
        "surp_sequential": _surp("sequential"),
        "surp_parallel": _surp("parallel"),
        "qsgd": _compressor("qsgd", _vector, s=4),
        "drive": _compressor("drive", _vector),
        "eden": _compressor("eden", _vector, bits=2),
        "fedmask": _compressor("fedmask", _theta),
        "fedpm": _compressor("fedpm", _theta),
        "fedpm_mask": _fedpm_mask(),
        "fedpm_mask_coordinate": _fedpm_mask_coordinate(),
        "pruning_cost": _pruning(),
        "refinement": _refinement(),
        "quant_scalar": _quant("scalar"),
        "quant_tcq": _quant("tcq"),
        "quant_trellis": _quant("trellis"),
    }


def digest(obj) -> str:
    """SHA-256 of a decoded result: arrays by dtype, shape and bytes; mappings in key order; dataclasses
    field by field; numbers and strings by their repr."""
    h = hashlib.sha256()

    def walk(o):
        if isinstance(o, np.ndarray) or np.isscalar(o) and isinstance(o, np.generic):
            a = np.ascontiguousarray(o)
            h.update(f"a{a.dtype.str}{a.shape}".encode())
            h.update(a.tobytes())
        elif isinstance(o, dict):
            h.update(b"d")
            for k in o:
                h.update(repr(k).encode())
                walk(o[k])
        elif dataclasses.is_dataclass(o):
            h.update(type(o).__name__.encode())
            for f in dataclasses.fields(o):
                h.update(f.name.encode())
                walk(getattr(o, f.name))
        elif isinstance(o, (list, tuple)):
            h.update(b"l")
            for v in o:
                walk(v)
        else:
            h.update(repr(o).encode())

    walk(obj)
    return h.hexdigest()


def sha256(data: bytes) -> str:
    return hashlib.sha256(bytes(data)).hexdigest()
