"""Measured bit rates of FedPM masks, coded with constriction (docs/theory.md §5, bitrate).

Two codes, both producing bytes that decode:

* **paper** (the paper's accounting): the count of ones ``n₁`` first (uniform
  over ``0..N``, ≈ log2 N bits), then the N bits under one Bernoulli(f),
  f = n₁/N.  Formula: ``h_b(f) + log2(N)/N`` bits per entry.  For speed, the
  first ``8⌊N/8⌋`` bits travel as ``⌊N/8⌋`` byte symbols (MSB first) under the
  256-symbol categorical model ``P(b) = f^{popcount b} (1 − f)^{8 − popcount b}``,
  which is exactly the law of 8 i.i.d. Bernoulli(f) bits (the same information
  content); the ``N mod 8`` tail bits are coded under Bernoulli(f) itself.
  constriction quantizes the model to 24-bit probabilities and gives every byte
  at least 2^-24, so f = 0 and f = 1 code (at ≈ 2·10^-6 bits per entry).
* **per-coordinate**: bit i under Bernoulli(θ^g_i), where θ^g are the server's
  broadcast probabilities that both sides know.  Formula: the cross-entropy
  ``−(1/N) Σ_i log2 p(m_i | θ^g_i)``.

Payload: one tag byte, N as a LEB128 varint, the range coder's 32-bit words,
and a CRC32 of everything before it (``overhead_bits`` = 8·(5 + len(varint)) plus
at most 64 bits of range-coder flush).  ``n_bits`` is always ``8 * len(data)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .._backend import to_host
from ..coding.entropy import binary_entropy_bits, bytes_to_words, decode_failure, words_to_bytes
from ..coding.limits import check_fits
from ..coding.varint import get_varint, put_varint, seal, unseal
from ..errors import CorruptStreamError, InvalidArgumentError, InvalidShapeError

__all__ = [
    "MaskCode",
    "bitrate_paper",
    "bitrate_per_coordinate",
    "decode_mask_paper",
    "decode_mask_per_coordinate",
    "bpp_paper_formula",
    "P_MIN",
]

#: Probabilities of the per-coordinate model are clipped to [P_MIN, 1 − P_MIN].
P_MIN = 2.0**-20
_TAG_PAPER = 0xA3  # byte-symbol layout (0xA1 was the bit-by-bit layout, no longer written or read)
_TAG_COORD = 0xA2
_SPLIT = 1 << 23  # constriction's Uniform needs size < 2^24
_LOW = 4096
MAX_ENTRIES = _SPLIT * _LOW  # 2^35: the count of ones, split in hi/lo, stays within Uniform's range


# ---------------------------------------------------------------- results
@dataclass(frozen=True)
class MaskCode:
    """A coded mask and its measured rate.

    Attributes
    ----------
    data : bytes
        The payload (decodes with :func:`decode_mask_paper` or
        :func:`decode_mask_per_coordinate`).
    n_entries : int
        N, the number of mask entries.
    n_ones : int
    n_bits : int
        Measured size, ``8 * len(data)``.
    bpp : float
        Measured bits per entry, ``n_bits / n_entries``.
    bpp_formula : float
        The formula's bits per entry (see the module docstring).
    overhead_bits : int
        Header and CRC bits included in ``n_bits`` (not in the formula).
    mode : str
        "paper" or "per_coordinate".
    units : str
        Always "bits".
    """

    data: bytes
    n_entries: int
    n_ones: int
    n_bits: int
    bpp: float
    bpp_formula: float
    overhead_bits: int
    mode: str
    units: str = "bits"


def _check_mask(mask) -> np.ndarray:
    """A 1-D uint8 view or copy of a 0/1 mask (bool and uint8 inputs are not copied)."""
    m = np.asarray(to_host(mask))
    if m.ndim != 1:
        raise InvalidShapeError(f"`mask` must be 1-D (one client's N entries), got shape {m.shape}; code clients one by one.")
    if m.size == 0:
        raise InvalidArgumentError("`mask` is empty; pass at least one entry.")
    if m.size > MAX_ENTRIES:
        raise InvalidArgumentError(f"`mask` has {m.size} entries; one payload codes at most {MAX_ENTRIES}: split it.")
    if m.dtype.kind not in "biuf":
        raise InvalidArgumentError(f"`mask` must be a 0/1 array, got dtype {m.dtype}.")
    if m.dtype == np.bool_:
        return m.view(np.uint8)
    if m.dtype == np.uint8:
        if int(m.max()) > 1:
            raise InvalidArgumentError(f"`mask` must contain only 0 and 1; {int(np.count_nonzero(m > 1))} entries are neither.")
        return m
    bad = int(np.count_nonzero((m != 0) & (m != 1)))
    if bad:
        raise InvalidArgumentError(f"`mask` must contain only 0 and 1; {bad} entries are neither.")
    return m.astype(np.uint8)


def bpp_paper_formula(n_ones: int, n_entries: int) -> float:
    """h_b(f) + log2(N)/N with f = n_ones/N (docs/theory.md §5; the reference code's accounting).

    Lies in [log2(N)/N, 1 + log2(N)/N].

    >>> bpp_paper_formula(5, 10) == 1 + math.log2(10) / 10
    True
    """
    n = int(n_entries)
    return float(binary_entropy_bits(n_ones / n)) + math.log2(n) / n


def _count_models(n: int):
    import constriction

    U = constriction.stream.model.Uniform
    if n + 1 <= _SPLIT:
        return [(U(n + 1), None)]
    return [(U(n // _LOW + 1), "hi"), (U(_LOW), "lo")]


_POPCOUNT = np.unpackbits(np.arange(256, dtype=np.uint8)[:, None], axis=1).sum(1)


def _byte_model(f: float):
    """The law of 8 i.i.d. Bernoulli(f) bits as one byte symbol (constriction Categorical)."""
    import constriction

    if f <= 0.0 or f >= 1.0:
        p = (_POPCOUNT == (0 if f <= 0.0 else 8)).astype(np.float64)  # constriction leaks 2^-24 to the rest
    else:
        p = np.exp(_POPCOUNT * math.log(f) + (8 - _POPCOUNT) * math.log1p(-f))
    return constriction.stream.model.Categorical(p, perfect=False)


def bitrate_paper(mask) -> MaskCode:
    """Code one client's mask with the paper's accounting and measure its bits.

    Parameters
    ----------
    mask : array of shape (N,)
        0/1 entries (bool or integer; NumPy or CuPy).

    Returns
    -------
    MaskCode
        ``bpp`` measured from the bytes, ``bpp_formula = h_b(f) + log2(N)/N``.

    Notes
    -----
    Bits travel eight at a time as byte symbols under the product of 8
    Bernoulli(f) laws (module docstring): the same model, about 8× fewer coder
    steps.

    Examples
    --------
    >>> m = (np.arange(1000) % 4 == 0).astype(np.uint8)
    >>> code = bitrate_paper(m)
    >>> np.array_equal(decode_mask_paper(code.data), m), code.n_bits == 8 * len(code.data)
    (True, True)
    >>> round(code.bpp_formula, 4)
    0.8213
    """
    import constriction

    bits = _check_mask(mask)
    n = bits.size
    n1 = int(np.count_nonzero(bits))
    f = n1 / n
    enc = constriction.stream.queue.RangeEncoder()
    models = _count_models(n)
    if len(models) == 1:
        enc.encode(n1, models[0][0])
    else:
        enc.encode(n1 // _LOW, models[0][0])
        enc.encode(n1 % _LOW, models[1][0])
    n8 = n - n % 8
    if n8:
        enc.encode(np.packbits(bits[:n8]).astype(np.int32), _byte_model(f))
    if n8 < n:
        enc.encode(bits[n8:].astype(np.int32), constriction.stream.model.Bernoulli(f, perfect=False))
    head = bytes([_TAG_PAPER]) + put_varint(n)
    data = seal(head + words_to_bytes(enc.get_compressed()))
    n_bits = 8 * len(data)
    return MaskCode(data, n, n1, n_bits, n_bits / n, bpp_paper_formula(n1, n), 8 * (len(head) + 4), "paper")


def _read_head(data: bytes, tag: int, what: str, peak_per_entry: int) -> tuple[int, np.ndarray]:
    body = unseal(data, what)
    if body[0] != tag:
        raise CorruptStreamError(f"payload tag {body[0]:#x} is not a {what} payload (expected {tag:#x}).")
    n, pos = get_varint(body, 1)
    if n < 1 or n > MAX_ENTRIES:
        raise CorruptStreamError(f"payload declares N = {n} entries, outside [1, 2^35].")
    check_fits(peak_per_entry * n, f"{n} mask entries")
    return n, bytes_to_words(body[pos:])


def decode_mask_paper(data: bytes) -> np.ndarray:
    """Decode a :func:`bitrate_paper` payload; returns the uint8 mask of shape (N,)."""
    import constriction

    # peak measured with tracemalloc (2**18 entries): 2.3 bytes per entry (byte symbols, unpacked bits, mask)
    n, words = _read_head(data, _TAG_PAPER, "FedPM mask (paper accounting)", 3)
    try:
        dec = constriction.stream.queue.RangeDecoder(words)
        models = _count_models(n)
        if len(models) == 1:
            n1 = int(dec.decode(models[0][0]))
        else:
            n1 = int(dec.decode(models[0][0])) * _LOW + int(dec.decode(models[1][0]))
        if n1 > n:
            raise CorruptStreamError(f"payload declares {n1} ones among {n} entries.")
        f = n1 / n
        n8 = n - n % 8
        out = np.empty(n, dtype=np.uint8)
        if n8:
            sym = np.asarray(dec.decode(_byte_model(f), n8 // 8))
            if sym.min() < 0 or sym.max() > 255:
                raise CorruptStreamError("mask payload decodes to a symbol outside 0..255.")
            out[:n8] = np.unpackbits(sym.astype(np.uint8))
        if n8 < n:
            out[n8:] = np.asarray(dec.decode(constriction.stream.model.Bernoulli(f, perfect=False), n - n8))
    except CorruptStreamError:
        raise
    except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
        raise decode_failure(exc, "mask payload") from None
    if int(np.count_nonzero(out)) != n1:
        raise CorruptStreamError(f"decoded mask has {int(np.count_nonzero(out))} ones but the payload declares {n1}.")
    return out


def _coord_probs(theta_g, n: int | None = None) -> np.ndarray:
    from .masks import check_theta

    p = np.asarray(to_host(check_theta(theta_g, "theta_g", ndims=(1,))), dtype=np.float64)
    if n is not None and p.size != n:
        raise InvalidShapeError(f"`theta_g` has {p.size} entries but the mask has {n}; pass the broadcast θ^g of the same model.")
    return np.clip(p, P_MIN, 1.0 - P_MIN)


def bitrate_per_coordinate(mask, theta_g) -> MaskCode:
    """Code one client's mask bit by bit under Bernoulli(θ^g_i) and measure its bits.

    Parameters
    ----------
    mask : array of shape (N,)
        0/1 entries.
    theta_g : array of shape (N,)
        The server's broadcast probabilities (known to the decoder), in [0, 1];
        clipped to [P_MIN, 1 − P_MIN] so every mask is codable.

    Returns
    -------
    MaskCode
        ``bpp_formula`` is the cross-entropy −(1/N) Σ log2 p(m_i | θ^g_i).

    Examples
    --------
    >>> th = np.linspace(0.05, 0.95, 500)
    >>> m = (np.random.default_rng(0).random(500) < th).astype(np.uint8)
    >>> code = bitrate_per_coordinate(m, th)
    >>> np.array_equal(decode_mask_per_coordinate(code.data, th), m)
    True
    """
    import constriction

    bits = _check_mask(mask)
    p = _coord_probs(theta_g, bits.size)
    enc = constriction.stream.queue.RangeEncoder()
    enc.encode(bits.astype(np.int32), constriction.stream.model.Bernoulli(perfect=False), p)
    head = bytes([_TAG_COORD]) + put_varint(bits.size)
    data = seal(head + words_to_bytes(enc.get_compressed()))
    n = bits.size
    ce = float(-np.sum(np.log2(np.where(bits.view(bool), p, 1.0 - p)))) / n  # one log per entry
    n_bits = 8 * len(data)
    return MaskCode(data, n, int(np.count_nonzero(bits)), n_bits, n_bits / n, ce, 8 * (len(head) + 4), "per_coordinate")


def decode_mask_per_coordinate(data: bytes, theta_g) -> np.ndarray:
    """Decode a :func:`bitrate_per_coordinate` payload with the same θ^g; returns uint8 (N,)."""
    import constriction

    # peak measured with tracemalloc (2**18 entries): 9.1 bytes per entry (clipped θ, decoded bits, mask)
    n, words = _read_head(data, _TAG_COORD, "FedPM mask (per-coordinate)", 10)
    size = int(np.size(theta_g))
    if np.ndim(theta_g) == 1 and size != n:  # the payload's declared length is the untrusted side
        raise CorruptStreamError(f"mask payload declares {n} entries but `theta_g` has {size}: the payload is "
                                 "corrupted, or was coded against another model's θ^g.")
    p = _coord_probs(theta_g, n)
    try:
        dec = constriction.stream.queue.RangeDecoder(words)
        out = dec.decode(constriction.stream.model.Bernoulli(perfect=False), p)
    except BaseException as exc:  # noqa: BLE001 - constriction's errors and panics
        raise decode_failure(exc, "mask payload") from None
    return np.asarray(out).astype(np.uint8)
