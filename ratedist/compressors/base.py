"""One interface for the mean-estimation compressors, the payload header, and rotations.

Payload layout (little-endian), shared by every compressor::

    magic   2 bytes  b"RC"
    kind    u8       1 qsgd, 2 drive, 3 eden, 4 fedmask, 5 fedpm
    d       varint   the vector's dimension
    seed    varint   the shared-randomness seed (0 <= seed < 2^64)
    params  method-specific (a few bytes)
    body    method-specific bits
    crc32   u32      of everything before it

The header is deliberately compact (typically 8-12 bytes plus the 4-byte CRC) so
that measured bits per coordinate stay close to the methods' own accounting;
it is not the ratedist file container (these are per-round messages, not files).
Every reported bit count is ``8 * len(payload)``.
"""

from __future__ import annotations

import math
import struct
from abc import ABC, abstractmethod

import numpy as np

from .._backend import resolve_backend, to_host
from .._validation import check_choice
from ..coding.limits import check_fits
from ..coding.varint import get_varint, put_varint, seal, unseal
from ..errors import CorruptStreamError, InvalidArgumentError, InvalidShapeError

__all__ = [
    "Compressor",
    "MAGIC",
    "KINDS",
    "check_vector",
    "check_seed",
    "hadamard",
    "rotate",
    "unrotate",
    "rotation_signs",
    "haar_orthogonal",
    "rotated_length",
    "check_rotation",
    "check_rotated_decode",
    "ROTATIONS",
    "next_power_of_two",
    "stream_rng",
    "pack_f32",
    "unpack_f32",
]

MAGIC = b"RC"
KINDS = {"qsgd": 1, "drive": 2, "eden": 3, "fedmask": 4, "fedpm": 5}

# Purposes of the seed's independent streams.
PURPOSE_ROTATION = 0
PURPOSE_ROUNDING = 1
PURPOSE_BITS = 2
PURPOSE_MASK = 3


def check_vector(name: str, x, *, unit_interval: bool = False) -> np.ndarray:
    """A finite, non-empty 1-D real vector, returned as a new float64 array."""
    a = np.asarray(to_host(x))
    if a.dtype.kind not in "fiub":
        raise InvalidArgumentError(f"`{name}` must be a real numeric vector, got dtype {a.dtype}.")
    if a.ndim != 1:
        raise InvalidShapeError(f"`{name}` must be a 1-D vector (flatten it first), got shape {a.shape}.")
    if a.size == 0:
        raise InvalidArgumentError(f"`{name}` is empty; pass a vector with at least one coordinate.")
    a = a.astype(np.float64, copy=True)
    bad = int(np.count_nonzero(~np.isfinite(a)))
    if bad:
        raise InvalidArgumentError(f"`{name}` contains {bad} NaN or infinite value(s) out of {a.size}; replace them first.")
    if unit_interval and (a.min() < 0 or a.max() > 1):
        raise InvalidArgumentError(
            f"`{name}` must lie in [0, 1] (mask probabilities), got values in [{a.min():.6g}, {a.max():.6g}]."
        )
    return a


def check_seed(seed) -> int:
    """A seed in [0, 2^64); ``None`` draws one from the OS (it is recorded in the payload)."""
    if seed is None:
        return int(np.random.SeedSequence().entropy) % (1 << 64)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise InvalidArgumentError(f"`seed` must be a non-negative integer, got {seed!r}.")
    seed = int(seed)
    if not 0 <= seed < 1 << 64:
        raise InvalidArgumentError(f"`seed` must lie in [0, 2^64), got {seed}.")
    return seed


def stream_rng(seed: int, purpose: int) -> np.random.Generator:
    """Independent generator for one purpose of the shared seed."""
    return np.random.default_rng([int(seed), int(purpose)])


def pack_f32(v: float) -> bytes:
    return struct.pack("<f", v)


def unpack_f32(buf: bytes, pos: int) -> tuple[float, int]:
    if pos + 4 > len(buf):
        raise CorruptStreamError("payload ends inside a float32 field; it is truncated.")
    (v,) = struct.unpack_from("<f", buf, pos)
    if not math.isfinite(v):
        raise CorruptStreamError(f"payload holds a non-finite scale {v!r}.")
    return float(v), pos + 4


def next_power_of_two(d: int) -> int:
    return 1 << max(0, int(d - 1).bit_length())


# ------------------------------------------------------------------ Hadamard
def hadamard(x, *, normalized: bool = False, backend: str = "auto") -> np.ndarray:
    """Walsh–Hadamard transform ``H x`` along the last axis (Sylvester order).

    Parameters
    ----------
    x : array (n,) or (rows, n), n a power of two
        Not modified.
    normalized : bool
        Return ``H x / √n`` (an orthogonal, self-inverse map) instead of ``H x``.
    backend : {"auto", "numpy", "numba", "cuda"}
        "numpy" is the slow reference; "cuda" runs the numba.cuda kernel (also
        under ``NUMBA_ENABLE_CUDASIM=1``).

    Returns
    -------
    float64 array of the same shape.

    Examples
    --------
    >>> hadamard(np.array([1.0, 0.0, 0.0, 0.0])).tolist()
    [1.0, 1.0, 1.0, 1.0]
    """
    check_choice("backend", backend, ("auto", "numpy", "numba", "cuda"))
    a = np.array(to_host(x), dtype=np.float64, copy=True, order="C")
    if a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise InvalidShapeError(f"`x` must be 1-D or 2-D with a non-empty last axis, got shape {a.shape}.")
    n = a.shape[-1]
    if n & (n - 1):
        raise InvalidShapeError(f"`x` has last-axis length {n}, not a power of two; pad it (rotate() pads for you).")
    if not np.all(np.isfinite(a)):
        raise InvalidArgumentError("`x` contains NaN or infinite values.")
    be = resolve_backend(backend, simulator_ok=True)
    if be == "numpy":
        from ..kernels._hadamard_cpu import fwht_reference

        a = fwht_reference(a)
    elif be == "numba":
        from ..kernels._hadamard_cpu import fwht_inplace, fwht_rows_inplace

        (fwht_inplace if a.ndim == 1 else fwht_rows_inplace)(a)
    else:
        from ..kernels._hadamard_cuda import fwht_cuda

        a = fwht_cuda(a)
    if normalized:
        a /= math.sqrt(n)
    return a


def rotation_signs(seed: int, n: int) -> np.ndarray:
    """The random diagonal D (±1, float64) of the shared rotation R = H·D/√n."""
    return stream_rng(seed, PURPOSE_ROTATION).integers(0, 2, n).astype(np.float64) * 2.0 - 1.0


ROTATIONS = ("hadamard", "uniform")
#: Largest dimension for the dense uniform (Haar) rotation (a d × d matrix).
MAX_UNIFORM_DIM = 4096


def haar_orthogonal(seed: int, d: int) -> np.ndarray:
    """A uniformly random (Haar) d × d orthogonal matrix from the seed (QR of a Gaussian matrix)."""
    g = stream_rng(seed, PURPOSE_ROTATION).standard_normal((d, d))
    q, r = np.linalg.qr(g)
    return q * np.where(np.diag(r) < 0, -1.0, 1.0)


def rotated_length(d: int, rotation: str = "hadamard") -> int:
    """Length of R x: d padded to a power of two (Hadamard) or d (uniform)."""
    return next_power_of_two(d) if rotation == "hadamard" else d


def check_rotation(rotation: str, d: int | None = None) -> str:
    check_choice("rotation", rotation, ROTATIONS)
    if rotation == "uniform" and d is not None and d > MAX_UNIFORM_DIM:
        raise InvalidArgumentError(
            f"`rotation='uniform'` builds a dense d × d matrix; d={d} exceeds {MAX_UNIFORM_DIM}. Use 'hadamard'."
        )
    return rotation


def rotate(x: np.ndarray, seed: int, rotation: str = "hadamard") -> np.ndarray:
    """R x with R = H·D/√n (x zero-padded to n = next power of two ≥ d), or a Haar rotation."""
    d = x.shape[0]
    if rotation == "uniform":
        return haar_orthogonal(seed, d) @ x
    n = next_power_of_two(d)
    y = np.zeros(n)
    y[:d] = x
    y *= rotation_signs(seed, n)
    return hadamard(y, normalized=True)


def unrotate(y: np.ndarray, seed: int, d: int, rotation: str = "hadamard") -> np.ndarray:
    """R⁻¹ y = D·H y/√n, truncated to the first d coordinates (or Qᵀ y for a Haar rotation)."""
    if rotation == "uniform":
        return haar_orthogonal(seed, d).T @ y
    n = y.shape[0]
    z = hadamard(y, normalized=True)
    z *= rotation_signs(seed, n)
    return z[:d].copy()


# ------------------------------------------------------------------ interface
class Compressor(ABC):
    """A vector compressor: ``encode(x, seed=...) -> bytes`` and ``decode(bytes) -> x̂``.

    The payload carries the dimension, the seed and the parameters, so
    :meth:`decode` needs nothing else.  Inputs are never modified.
    """

    name: str = ""
    #: whether the input must be probabilities in [0, 1]
    unit_interval: bool = False

    def encode(self, x, *, seed=None) -> bytes:
        """Compress the 1-D vector ``x``; shared randomness comes from ``seed``."""
        x = check_vector("x", x, unit_interval=self.unit_interval)
        seed = check_seed(seed)
        params, body = self._encode(x, seed)
        head = MAGIC + bytes([KINDS[self.name]]) + put_varint(x.size) + put_varint(seed)
        return seal(head + params + body)

    def decode(self, data: bytes) -> np.ndarray:
        """Reconstruct x̂ (float64, shape (d,)) from a payload of this compressor."""
        kind, d, seed, buf, pos = parse_header(data)
        if kind != self.name:
            raise CorruptStreamError(f"payload was written by {kind!r}, not {self.name!r}; use ratedist.compressors.decode().")
        return self._decode(d, seed, buf, pos)

    def n_bits(self, data: bytes) -> int:
        """Measured size of a payload: ``8 * len(data)``."""
        return 8 * len(data)

    @abstractmethod
    def _encode(self, x: np.ndarray, seed: int) -> tuple[bytes, bytes]: ...

    @classmethod
    @abstractmethod
    def _decode(cls, d: int, seed: int, buf: bytes, pos: int) -> np.ndarray: ...

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{type(self).__name__}({params})"

    def params(self) -> dict:
        return {}


def parse_header(data: bytes):
    """Check the CRC and magic; return (kind name, d, seed, body bytes, position after the header)."""
    body = unseal(data, "compressor")
    if body[:2] != MAGIC or len(body) < 3:
        raise CorruptStreamError(f"payload starts with {bytes(body[:2])!r}, not {MAGIC!r}: not a ratedist compressor payload.")
    names = {v: k for k, v in KINDS.items()}
    if body[2] not in names:
        raise CorruptStreamError(f"unknown compressor kind {body[2]} in the payload.")
    d, pos = get_varint(body, 3)
    seed, pos = get_varint(body, pos)
    if not 1 <= d <= 1 << 40:
        raise CorruptStreamError(f"payload declares dimension {d}, outside [1, 2^40].")
    check_fits(8 * d, f"dimension {d}")  # x̂ (float64), the least any decoder holds; each adds its own
    return names[body[2]], d, seed, body, pos


# Peak bytes of the rotation-based decoders, measured with tracemalloc on real decodes (d = 2**17 + 1,
# so n = 2**18): DRIVE 40 bytes per rotated coordinate (signs, the Hadamard copy, the ±1 diagonal,
# the unpacked bits), EDEN 66-74 (also the widths, bit offsets and indices, int64 each); a dense
# Haar rotation adds 33 d² (the Gaussian matrix, its QR factors and the product).  We charge a
# little more than measured.
PEAK_PER_ROTATED = {"drive": 42, "eden": 76}
PEAK_PER_DENSE_ENTRY = 34


def check_rotated_decode(method: str, d: int, rotation: str) -> int:
    """Before any O(d) work: refuse a dense rotation beyond the encoder's limit, and a rotated decode
    that does not fit in memory.  Returns the rotated length n."""
    if rotation == "uniform" and d > MAX_UNIFORM_DIM:
        raise CorruptStreamError(
            f"{method} payload asks for a dense uniform rotation of dimension {d}; the encoder never writes one "
            f"above {MAX_UNIFORM_DIM} (it would need a {d} × {d} matrix). The payload is corrupted or forged.")
    n = rotated_length(d, rotation)
    need = PEAK_PER_ROTATED[method] * n + (PEAK_PER_DENSE_ENTRY * d * d if rotation == "uniform" else 0)
    check_fits(need, f"dimension {d}")
    return n
