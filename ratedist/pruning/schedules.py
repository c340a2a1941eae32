"""Sparsity schedules: one-shot, the 20 %-per-round sequence, and the cubic gradual schedule (docs/theory.md §7)."""

from __future__ import annotations

import numpy as np

from .._validation import check_finite_array, check_finite_scalar, check_int
from ..errors import InvalidArgumentError

__all__ = ["one_shot", "geometric_schedule", "cubic_schedule"]


def _unit(name: str, value) -> float:
    v = check_finite_scalar(name, value)
    if not 0.0 <= v < 1.0:
        raise InvalidArgumentError(f"`{name}` must lie in [0, 1), got {value!r}.")
    return v


def one_shot(sparsity: float) -> np.ndarray:
    """The one-shot schedule: a single step straight to ``sparsity``.

    >>> one_shot(0.9).tolist()
    [0.9]
    """
    return np.array([_unit("sparsity", sparsity)])


def geometric_schedule(k_max: int, rate: float = 0.2) -> np.ndarray:
    """Iterative pruning removing a fraction ``rate`` of the remaining weights per round.

    Returns the sparsities after rounds ``k = 1..k_max``: ``1 - (1 - rate)^k``.
    With ``rate = 0.2`` these are the levels of the published tables
    (docs/theory.md §4d: k = 14 gives 95.60 %).

    >>> geometric_schedule(3).round(4).tolist()
    [0.2, 0.36, 0.488]
    """
    k_max = check_int("k_max", k_max, minimum=1)
    r = check_finite_scalar("rate", rate)
    if not 0.0 < r < 1.0:
        raise InvalidArgumentError(f"`rate` must lie strictly between 0 and 1 (fraction pruned per round), got {rate!r}.")
    k = np.arange(1, k_max + 1, dtype=np.float64)
    return 1.0 - (1.0 - r) ** k


def cubic_schedule(t, *, s_i: float = 0.0, s_f: float, t0: float = 0.0, n: int, dt: float = 1.0):
    """Zhu & Gupta's cubic gradual schedule ``s_t = s_f + (s_i - s_f)(1 - (t - t0)/(n dt))^3``.

    Parameters
    ----------
    t : float or array_like
        Training step(s).  Before ``t0`` the value is ``s_i``; after
        ``t0 + n dt`` it is ``s_f``.
    s_i, s_f : float
        Initial and final sparsity in [0, 1).
    t0 : float
        First pruning step.
    n : int
        Number of pruning steps (>= 1).
    dt : float
        Steps between pruning events (> 0).

    Returns
    -------
    float or ndarray
        Sparsity at ``t`` (same shape as ``t``).  Monotone from ``s_i`` to ``s_f``,
        front-loaded (largest changes early).

    >>> [round(float(cubic_schedule(t, s_f=0.9, n=4)), 4) for t in range(5)]
    [0.0, 0.5203, 0.7875, 0.8859, 0.9]
    """
    s_i = _unit("s_i", s_i)
    s_f = _unit("s_f", s_f)
    t0 = check_finite_scalar("t0", t0)
    n = check_int("n", n, minimum=1)
    dt = check_finite_scalar("dt", dt)
    if dt <= 0:
        raise InvalidArgumentError(f"`dt` must be > 0 (steps between pruning events), got {dt!r}.")
    scalar = np.ndim(t) == 0
    tt = check_finite_array("t", np.atleast_1d(np.asarray(t, dtype=np.float64)))
    frac = np.clip((tt - t0) / (n * dt), 0.0, 1.0)
    s = s_f + (s_i - s_f) * (1.0 - frac) ** 3
    s = np.where(frac >= 1.0, s_f, s)
    return float(s[0]) if scalar else s.reshape(np.shape(t))
