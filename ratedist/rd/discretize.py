"""Discretizing a continuous source on a uniform grid that contains 0 (docs/theory.md §1).

A grid ``x_i = iΔ`` for ``i = -K..K`` (``K = floor(A/Δ)``) carries the pmf
``p_i = F(x_i + Δ/2) − F(x_i − Δ/2)``, renormalized to sum to 1 (the tails
beyond ``±(A + Δ/2)`` are dropped).  The reproduction grid is the same grid.
Valid for distortions ``D ≫ Δ``: as ``D → 0`` the discrete R(D) saturates at
``H(X_Δ)`` instead of diverging.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.special import ndtr

from .._validation import check_choice, check_finite_array, check_int, check_positive, check_weights
from ..errors import InvalidArgumentError

__all__ = [
    "Discretization",
    "discretize_laplace",
    "discretize_gaussian",
    "discretize_empirical",
    "uniform_grid",
]


@dataclass(frozen=True)
class Discretization:
    """A source quantized on a uniform grid that contains 0.

    Attributes
    ----------
    points : ndarray, shape (m,)
        Grid points ``iΔ``, ``i = -K..K`` (``m = 2K + 1``).
    pmf : ndarray, shape (m,)
        Probability of each grid cell, summing to 1.
    step : float
        Grid spacing Δ (in the source's unit).
    """

    points: np.ndarray
    pmf: np.ndarray
    step: float

    @property
    def size(self) -> int:
        """Number of grid points m."""
        return int(self.points.shape[0])

    def entropy(self) -> float:
        """Shannon entropy H(X_Δ) of the grid pmf, in nats."""
        p = self.pmf[self.pmf > 0]
        return float(-(p * np.log(p)).sum())

    def distortion_matrix(self, distortion_type: str = "absolute") -> np.ndarray:
        """Dense ``(m, m)`` matrix ρ(x_i − x_j) with ρ = |·| or (·)²."""
        check_choice("distortion_type", distortion_type, ("absolute", "squared"))
        diff = self.points[:, None] - self.points[None, :]
        return np.abs(diff) if distortion_type == "absolute" else diff * diff


def uniform_grid(step: float, half_width: float) -> np.ndarray:
    """Points ``iΔ`` for ``i = -K..K`` with ``K = floor(half_width / step)``.

    >>> uniform_grid(0.5, 1.2).tolist()
    [-1.0, -0.5, 0.0, 0.5, 1.0]
    """
    step = check_positive("step", step)
    half_width = check_positive("half_width", half_width)
    k = int(np.floor(half_width / step * (1 + 1e-12)))
    if k < 1:
        raise InvalidArgumentError(
            f"`half_width` ({half_width!r}) must be at least one `step` ({step!r}); widen the grid.")
    if 2 * k + 1 > 50_000_000:
        raise InvalidArgumentError(
            f"`step` ({step!r}) and `half_width` ({half_width!r}) give {2 * k + 1} grid points; "
            "use a coarser step (at most 5e7 points).")
    return step * np.arange(-k, k + 1, dtype=np.float64)


def _finish(points, mass, step, who):
    total = float(mass.sum())
    if not np.isfinite(total) or total <= 0:
        raise InvalidArgumentError(f"{who}: the grid carries no probability mass; widen `half_width`.")
    return Discretization(points=points, pmf=mass / total, step=float(step))


def discretize_laplace(lam: float = 1.0, step: float | None = None, half_width: float | None = None
                       ) -> Discretization:
    """Laplace(λ) source on the grid ``iΔ`` in ``[−A, A]``.

    Parameters
    ----------
    lam : float
        Rate λ > 0 of the density (λ/2)·exp(−λ|u|).
    step : float, optional
        Grid spacing Δ; default ``0.02/λ``.
    half_width : float, optional
        A; default ``15/λ`` (tail mass beyond it e^{−15}).

    Returns
    -------
    Discretization

    Notes
    -----
    Cell masses use ``0.5·e^{−λa}(1 − e^{−λΔ})`` on the positive side (and
    symmetry), accurate in the far tails.

    Examples
    --------
    >>> g = discretize_laplace(1.0, 0.02, 14.0)
    >>> g.size, bool(abs(g.pmf.sum() - 1) < 1e-12), float(g.points[700])
    (1401, True, 0.0)
    """
    lam = check_positive("lam", lam)
    step = 0.02 / lam if step is None else check_positive("step", step)
    half_width = 15.0 / lam if half_width is None else check_positive("half_width", half_width)
    x = uniform_grid(step, half_width)
    a = np.abs(x) - step / 2  # lower |edge| of each off-centre cell
    mass = 0.5 * np.exp(-lam * a) * -np.expm1(-lam * step)
    k0 = x.shape[0] // 2
    mass[k0] = -np.expm1(-lam * step / 2)  # the cell [-Δ/2, Δ/2]
    return _finish(x, mass, step, "discretize_laplace")


def discretize_gaussian(variance: float = 1.0, step: float | None = None, half_width: float | None = None
                        ) -> Discretization:
    """Gaussian N(0, σ²) source on the grid ``iΔ`` in ``[−A, A]``.

    Parameters
    ----------
    variance : float
        σ² > 0.
    step : float, optional
        Grid spacing Δ; default ``σ/50``.
    half_width : float, optional
        A; default ``8σ``.

    Returns
    -------
    Discretization

    Examples
    --------
    >>> g = discretize_gaussian(1.0, 0.1, 4.0)
    >>> g.size, round(float(g.pmf @ g.points**2), 3)
    (81, 1.001)
    """
    variance = check_positive("variance", variance)
    sigma = float(np.sqrt(variance))
    step = sigma / 50 if step is None else check_positive("step", step)
    half_width = 8 * sigma if half_width is None else check_positive("half_width", half_width)
    x = uniform_grid(step, half_width)
    lo = (np.abs(x) - step / 2) / sigma
    hi = (np.abs(x) + step / 2) / sigma
    mass = ndtr(-lo) - ndtr(-hi)  # upper-tail differences: accurate far out
    k0 = x.shape[0] // 2
    mass[k0] = ndtr(step / 2 / sigma) - ndtr(-step / 2 / sigma)
    return _finish(x, mass, step, "discretize_gaussian")


def discretize_empirical(weights, step: float | None = None, *, bins: int | None = None) -> Discretization:
    """Histogram of a sample (e.g. network weights) on a grid ``iΔ`` that contains 0.

    Each value goes to its nearest grid point; the grid is symmetric and just
    covers ``max|w|``.

    Parameters
    ----------
    weights : array_like or Mapping[str, array_like]
        The sample; a mapping (state_dict) is flattened and concatenated.
    step : float, optional
        Grid spacing Δ.  Give exactly one of ``step`` and ``bins``.
    bins : int, optional
        Number of grid points (rounded up to an odd number ≥ 3); sets
        ``Δ = max|w| / ((bins − 1)/2)``.

    Returns
    -------
    Discretization

    Examples
    --------
    >>> g = discretize_empirical([-1.0, 0.0, 0.1, 1.0], bins=5)
    >>> g.points.tolist(), g.pmf.tolist()
    ([-1.0, -0.5, 0.0, 0.5, 1.0], [0.25, 0.0, 0.5, 0.0, 0.25])
    """
    if isinstance(weights, Mapping):
        arrays = check_weights("weights", weights)
        w = np.concatenate([np.asarray(a, dtype=np.float64).ravel() for a in arrays.values()])
        w = check_finite_array("weights", w)
    else:
        w = check_finite_array("weights", np.asarray(weights, dtype=np.float64).ravel()
                               if np.ndim(weights) != 1 else weights)
        w = np.asarray(w, dtype=np.float64)
    if (step is None) == (bins is None):
        raise InvalidArgumentError("give exactly one of `step` (grid spacing) and `bins` (number of grid points).")
    wmax = float(np.max(np.abs(w)))
    if bins is not None:
        bins = check_int("bins", bins, minimum=3, maximum=50_000_001)
        k = (bins - 1 + 1) // 2
        if wmax == 0:
            raise InvalidArgumentError("`weights` are all zero; pass `step` explicitly to choose a grid.")
        step = wmax / k
    else:
        step = check_positive("step", step)
        k = max(1, int(np.ceil(wmax / step - 1e-9)))
        if 2 * k + 1 > 50_000_001:
            raise InvalidArgumentError(
                f"`step` ({step!r}) gives {2 * k + 1} grid points for max|w| = {wmax:.3g}; use a coarser step.")
    idx = np.clip(np.rint(w / step).astype(np.int64), -k, k) + k
    counts = np.bincount(idx, minlength=2 * k + 1).astype(np.float64)
    x = step * np.arange(-k, k + 1, dtype=np.float64)
    return _finish(x, counts, step, "discretize_empirical")
