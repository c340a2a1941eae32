"""Local differential privacy of a FedPM mask bit (docs/theory.md §5, privacy remark)."""

from __future__ import annotations

import math

import numpy as np

from .._units import from_nats
from .._validation import check_finite_scalar
from ..errors import InvalidArgumentError
from .masks import check_theta

__all__ = ["ldp_epsilon", "clip_for_ldp"]


def _check_theta_min(theta_min) -> float:
    t = check_finite_scalar("theta_min", theta_min)
    if not 0.0 < t <= 0.5:
        raise InvalidArgumentError(
            f"`theta_min` must lie in (0, 0.5], got {theta_min!r}; θ_min = 0 gives no privacy (ε = ∞)."
        )
    return t


def ldp_epsilon(theta_min, *, units: str = "nats") -> float:
    """ε of the local-DP guarantee of one mask bit sampled from θ ∈ [θ_min, 1 − θ_min].

    Parameters
    ----------
    theta_min : float in (0, 0.5]
    units : {"nats", "bits"}
        ε is a log-likelihood ratio; in nats it is the usual ε.

    Returns
    -------
    float
        ε = ln((1 − θ_min)/θ_min).

    Notes
    -----
    Randomized-response argument: for any two values θ, θ' in [θ_min, 1 − θ_min]
    and either output bit, P(m | θ)/P(m | θ') ≤ (1 − θ_min)/θ_min.  This is a
    per-coordinate guarantee; it is our remark in docs/theory.md §5, not a claim of
    the FedPM paper.

    Examples
    --------
    >>> round(ldp_epsilon(0.25), 6)
    1.098612
    >>> ldp_epsilon(0.5)
    0.0
    """
    t = _check_theta_min(theta_min)
    return float(from_nats(math.log((1.0 - t) / t), units))


def clip_for_ldp(theta, theta_min):
    """θ clipped to [θ_min, 1 − θ_min] (a new array), so each sampled bit is ``ldp_epsilon(θ_min)``-LDP."""
    t = _check_theta_min(theta_min)
    theta = check_theta(theta)
    return np.clip(theta, t, 1.0 - t) if isinstance(theta, np.ndarray) else theta.clip(t, 1.0 - t)
