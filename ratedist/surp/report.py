"""What a SuRP encode reports: measured bits per part, the paper-style estimate, d(u, û), R(D).

Units: every rate here is in bits (``units="bits"``); ``bpp`` is bits per
parameter over all n parameters.  ``n_bits`` is always measured from the bytes
of the stream prefix that decodes to the checkpoint (header included); the
paper-style estimate ``Σ_t H(Geom(|E_t|/n))`` (docs/theory.md §4c(i)) is printed
beside it, never instead of it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np

__all__ = [
    "SurpCheckpoint",
    "SurpReport",
    "SurpEncoding",
    "laplace_lam_hat",
    "rd_bits_per_param",
    "geometric_entropy_bits",
    "format_report",
]


@dataclass(frozen=True)
class SurpCheckpoint:
    """One checkpoint of a SuRP stream (a prefix that decodes on its own).

    Attributes
    ----------
    target : float
        Requested sparsity.
    sparsity : float
        Sparsity reached, ``1 - nnz(û)/n`` over all n parameters.
    sparsity_per_tensor : dict[str, float]
        Sparsity reached in each tensor.
    iteration : int
        Number of SuRP iterations (selections) up to this checkpoint.
    n_bits : int
        Measured size of the prefix, header included, in bits.
    bpp : float
        ``n_bits / n``.
    ideal_bpp : float
        Paper-style estimate for the positions (``Σ_t H(Geom(|E_t|/n))``) plus
        the measured sign, refresh and header bits, per parameter.
    distortion : float
        Normalized L1 distortion ``d(u, û) = (1/n) Σ |u_i − û_i|`` (docs/theory.md §2,
        in the stream's normalization).
    rd_bpp : float
        ``R(D)`` in bits of the Laplacian fitted to ``u`` (λ̂ = 1/mean|u|) at ``D = distortion``.
    gap_bpp : float
        ``bpp − rd_bpp``.
    bound_bpp, bound_bpp_upper : float or None
        The model's own rate–distortion bound at ``distortion``
        (:func:`ratedist.rd.model_rate_distortion`, L1, the stream's normalization: any coder
        that treats each tensor's normalized weights as i.i.d. draws from its empirical law):
        its certified lower and upper values, bits per parameter.  ``None`` when the encode
        was asked not to compute it (``bound=False``).
    bound_gap : float or None
        ``bpp / bound_bpp − 1``: the rate overhead over the certified lower bound.
    bits : dict[str, int | float]
        Measured bits per part (``header``, ``positions``, ``signs``,
        ``refreshes``, ``framing``; they sum to ``n_bits``) and, for comparison,
        ``positions_estimate`` (the paper-style estimate, not measured).
    segment : int
        Number of container segments in the prefix.
    n_bytes : int
        Prefix length in bytes.
    """

    target: float
    sparsity: float
    sparsity_per_tensor: dict
    iteration: int
    n_bits: int
    bpp: float
    ideal_bpp: float
    distortion: float
    rd_bpp: float
    gap_bpp: float
    bits: dict
    segment: int = 0
    n_bytes: int = 0
    bound_bpp: float | None = None
    bound_bpp_upper: float | None = None
    bound_gap: float | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SurpReport:
    """Report of one SuRP encode (the CLI's ``--json`` payload comes from :meth:`to_dict`).

    Attributes
    ----------
    algorithm : str
        ``"sequential"`` or ``"parallel"``.
    n_params : int
    n_bits : int
        Measured size of the whole stream in bits.
    bpp : float
    ideal_bpp : float
        Estimate for the positions plus measured side bits, per parameter, for the whole stream.
    seconds : float
        Wall time of the encode.
    checkpoints : tuple of SurpCheckpoint
    units : str
        Always ``"bits"``.
    extra : dict
        Algorithm-specific facts (iterations, refreshes, λ̂, ...).
    """

    algorithm: str
    n_params: int
    n_bits: int
    bpp: float
    ideal_bpp: float
    seconds: float
    checkpoints: tuple
    units: str = "bits"
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The CLI JSON: ``n_params, n_bits, bpp, ideal_bpp, seconds, checkpoints[...]`` plus extra keys."""
        cps = []
        for c in self.checkpoints:
            d = {"sparsity": c.sparsity, "n_bits": c.n_bits, "bpp": c.bpp, "ideal_bpp": c.ideal_bpp,
                 "distortion": c.distortion, "rd_bpp": c.rd_bpp, "bound_bpp": c.bound_bpp,
                 "bound_bpp_upper": c.bound_bpp_upper, "bound_gap": c.bound_gap}
            d.update({"target": c.target, "gap_bpp": c.gap_bpp, "iteration": c.iteration,
                      "n_bytes": c.n_bytes, "bits": dict(c.bits),
                      "sparsity_per_tensor": dict(c.sparsity_per_tensor)})
            cps.append(d)
        return {"n_params": self.n_params, "n_bits": self.n_bits, "bpp": self.bpp,
                "ideal_bpp": self.ideal_bpp, "seconds": self.seconds, "checkpoints": cps,
                "algorithm": self.algorithm, "units": self.units, **dict(self.extra)}


@dataclass(frozen=True)
class SurpEncoding:
    """Result of :func:`ratedist.surp.encode`: the stream bytes and their report.

    ``reconstructions`` holds the encoder's own reconstruction at every
    checkpoint (a tuple of weight mappings) when the encode was asked to keep
    them (``keep_reconstructions=True``), else ``None``.
    """

    stream: bytes
    report: SurpReport
    reconstructions: tuple | None = None


def laplace_lam_hat(magnitudes: np.ndarray) -> float:
    """λ̂ = 1 / mean|u|: the maximum-likelihood Laplace(λ) fit of :func:`ratedist.rd.fit_laplace`.

    >>> laplace_lam_hat(np.array([0.5, 1.5]))
    1.0
    """
    m = float(np.mean(magnitudes)) if magnitudes.size else 0.0
    return 1.0 / m if m > 0 else math.inf


def rd_bits_per_param(distortion: float, lam: float) -> float:
    """R(D) = max(0, −log2(λ D)) bits per parameter (docs/theory.md §1); ``inf`` at D = 0.

    >>> rd_bits_per_param(0.25, 1.0)
    2.0
    """
    if not math.isfinite(lam):
        return 0.0
    if distortion <= 0:
        return math.inf
    return max(0.0, -math.log2(lam * distortion))


def geometric_entropy_bits(p) -> np.ndarray:
    """H(Geom(p)) = h_b(p)/p bits (docs/theory.md §4c), elementwise; 0 at p = 1.

    >>> float(geometric_entropy_bits(0.5))
    2.0
    """
    p = np.asarray(p, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        h = -(p * np.log2(p) + (1 - p) * np.log2(1 - p))
        h = np.where((p <= 0) | (p >= 1), 0.0, h)
        return np.where(p > 0, h / np.where(p > 0, p, 1.0), np.inf)


def format_report(report: SurpReport) -> str:
    """A plain-text table of a report, one row per checkpoint."""
    lines = [f"SuRP ({report.algorithm}): {report.n_params} parameters, {report.n_bits} bits "
             f"({report.bpp:.4f} bits/param, estimate {report.ideal_bpp:.4f}), {report.seconds:.2f} s"]
    lines.append(f"{'target':>8} {'sparsity':>9} {'iter':>9} {'bits':>10} {'bpp':>8} {'ideal':>8} "
                 f"{'d(u,û)':>10} {'R(D)':>8} {'gap':>8} {'bound':>8}")
    for c in report.checkpoints:
        bound = "" if c.bound_bpp is None else f" {c.bound_bpp:>8.4f}"
        lines.append(f"{c.target:>8.4f} {c.sparsity:>9.4f} {c.iteration:>9d} {c.n_bits:>10d} {c.bpp:>8.4f} "
                     f"{c.ideal_bpp:>8.4f} {c.distortion:>10.4g} {c.rd_bpp:>8.4f} {c.gap_bpp:>8.4f}{bound}")
    lines.append("R(D): the Laplacian fit (a reference, not a bound for real weights); bound: the certified lower "
                 "bound of the model's own weights (per tensor, i.i.d.)")
    return "\n".join(lines)
