"""Bayesian aggregation of FedPM masks with per-coordinate Beta posteriors (THEORY.md §5).

Per coordinate the server holds Beta(α, β).  Each round it (optionally) resets
α = β = λ₀, adds the number of ones ``M`` and zeros ``K − M`` it received, and
reads out θ^g by the posterior mode (α − 1)/(α + β − 2) or the mean
α/(α + β).  With ``reset="every_round"`` and λ₀ = 1 the mode is *exactly* the
plain average M/K, so Bayesian aggregation then equals :func:`mean_estimate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np

from .._backend import namespace
from .._validation import check_choice, check_int, check_open_unit, check_positive
from ..errors import InvalidArgumentError, InvalidShapeError

__all__ = ["BetaAggregator", "beta_update_reference", "logit_safe", "REFERENCE_LOW", "REFERENCE_HIGH"]

#: The reference code maps received bits 0 → 0.01 and 1 → 0.99 before accumulating.
REFERENCE_LOW = 0.01
REFERENCE_HIGH = 0.99


def logit_safe(theta, eps: float = 1e-6):
    """logit(θ) = ln(θ/(1 − θ)) with θ clipped to [eps, 1 − eps]: finite for θ ∈ {0, 1}.

    Parameters
    ----------
    theta : array
        Probabilities in [0, 1] (NumPy or CuPy).
    eps : float in (0, 0.5)
        Clipping margin; the result lies in ±ln((1 − eps)/eps) (±13.8 for 1e-6).

    Examples
    --------
    >>> import numpy as np
    >>> np.round(logit_safe(np.array([0.0, 0.5, 1.0])), 3).tolist()
    [-13.816, 0.0, 13.816]
    """
    eps = check_open_unit("eps", eps)
    if eps >= 0.5:
        raise InvalidArgumentError(f"`eps` must be < 0.5, got {eps!r}.")
    xp = namespace(theta)
    t = xp.clip(xp.asarray(theta, dtype=xp.float64), eps, 1.0 - eps)
    return xp.log(t) - xp.log1p(-t)


def beta_update_reference(alpha, beta, counts, k, low, high, reset, prior, mode):
    """Array (NumPy/CuPy) form of one aggregation round: returns new (α, β, θ^g).

    The reference of the numba kernel :func:`ratedist.kernels._fedpm_cpu.beta_update`
    (same floating-point operations) and the CuPy path of :class:`BetaAggregator`.
    """
    xp = namespace(counts)
    ones = low * k + (high - low) * counts.astype(xp.float64)
    if reset:
        alpha = xp.full(counts.shape, prior, dtype=xp.float64)
        beta = xp.full(counts.shape, prior, dtype=xp.float64)
    a = alpha + ones
    b = beta + (k - ones)
    if not mode:
        return a, b, a / (a + b)
    den = a + b - 2.0
    ok = den > 0
    t = xp.clip((a - 1.0) / xp.where(ok, den, 1.0), 0.0, 1.0)
    return a, b, xp.where(ok, t, a / (a + b))


class BetaAggregator:
    """Server-side Beta(α, β) aggregation of clients' binary masks.

    Parameters
    ----------
    d : int
        Number of mask entries.
    prior : float, default 1.0
        λ₀ > 0, the prior α = β = λ₀ (the reference code uses 1).
    reset : "every_round", "never", callable or iterable of int
        When the posterior returns to the prior at the start of a round
        ``t = 0, 1, ...``: every round (the reference code), never (after the
        first), ``reset(t) -> bool``, or the set of rounds listed.
    readout : {"mode", "mean"}
        θ^g = (α − 1)/(α + β − 2) (the paper) or α/(α + β).  The mode is
        clipped to [0, 1] (the Beta mode is 0 or 1 when α ≤ 1 or β ≤ 1) and
        replaced by the mean ½ when α + β ≤ 2 (undefined mode).
    reference_mapping : bool, default False
        Reproduce the reference code: received bits count as 0.01/0.99, so
        θ^g stays in [0.01, 0.99] (biased by 0.01 − 0.02·θ̂).
    eps : float, default 1e-6
        Margin of :meth:`scores` (:func:`logit_safe`).

    Notes
    -----
    On the host, α and β are updated in place by one parallel numba pass
    (:func:`ratedist.kernels._fedpm_cpu.beta_update`, the same floating-point
    operations as the NumPy/CuPy path); each round returns a new θ^g array.
    Unanimous clients make the mode exactly 0 or 1; :attr:`theta` keeps that
    value (the true posterior mode) and :meth:`scores` returns finite logits,
    so no ±∞ reaches the clients.  With ``reset="every_round"`` and
    ``prior=1`` the mode equals the plain average M/K.

    Examples
    --------
    >>> import numpy as np
    >>> agg = BetaAggregator(3)
    >>> agg.update(np.array([[1, 0, 1], [1, 0, 0]], dtype=np.uint8)).tolist()
    [1.0, 0.0, 0.5]
    >>> bool(np.all(np.isfinite(agg.scores())))
    True
    """

    def __init__(self, d: int, *, prior: float = 1.0, reset="every_round", readout: str = "mode",
                 reference_mapping: bool = False, eps: float = 1e-6):
        self.d = check_int("d", d, minimum=1)
        self.prior = check_positive("prior", prior)
        self.readout = check_choice("readout", readout, ("mode", "mean"))
        self.reference_mapping = bool(reference_mapping)
        self.eps = check_open_unit("eps", eps)
        if isinstance(reset, str):
            check_choice("reset", reset, ("every_round", "never"))
            self._reset: Callable[[int], bool] = (lambda t: True) if reset == "every_round" else (lambda t: t == 0)
        elif callable(reset):
            self._reset = lambda t, f=reset: t == 0 or bool(f(t))
        elif isinstance(reset, Iterable):
            rounds = {check_int("reset[]", r, minimum=0) for r in reset}
            self._reset = lambda t: t == 0 or t in rounds
        else:
            raise InvalidArgumentError(
                f"`reset` must be 'every_round', 'never', a callable t -> bool or a list of rounds; got {reset!r}."
            )
        self.round = 0
        self.alpha = None
        self.beta = None
        self.theta = None

    def update(self, masks_or_counts, n_clients: int | None = None):
        """Absorb one round of masks and return the new global probabilities θ^g.

        Parameters
        ----------
        masks_or_counts : array (K, d) of 0/1 masks, or (d,) counts M = Σ_k m^k
        n_clients : int
            K; required with counts, optional (checked) with masks.

        Returns
        -------
        theta_g : float64 array (d,) in [0, 1], on the input's device.
        """
        x = masks_or_counts
        xp = namespace(x)
        if xp is np:
            x = np.asarray(x)
        if x.ndim == 2:
            if x.shape[1] != self.d:
                raise InvalidShapeError(f"`masks` has {x.shape[1]} columns but the aggregator has d={self.d}.")
            k = x.shape[0]
            if k == 0:
                raise InvalidArgumentError("`masks` has no row (K = 0); pass at least one client's mask.")
            if n_clients is not None and check_int("n_clients", n_clients) != k:
                raise InvalidShapeError(f"`n_clients`={n_clients} but `masks` has {k} rows.")
            if int(xp.count_nonzero((x != 0) & (x != 1))):
                raise InvalidArgumentError("`masks` must contain only 0 and 1.")
            counts = xp.sum(x, axis=0, dtype=xp.float64)
        elif x.ndim == 1:
            if n_clients is None:
                raise InvalidArgumentError("`n_clients` is required when passing counts M = Σ_k m^k.")
            k = check_int("n_clients", n_clients, minimum=1)
            if x.shape[0] != self.d:
                raise InvalidShapeError(f"`counts` has length {x.shape[0]} but the aggregator has d={self.d}.")
            if x.dtype.kind in "ui":  # integers: the range is all there is to check
                lo, hi = int(x.min()), int(x.max())
                ok = lo >= 0 and hi <= k
                counts = x
            elif x.dtype.kind == "f":
                counts = x
                lo, hi = float(x.min()), float(x.max())
                ok = bool(xp.all(xp.isfinite(x))) and lo >= 0 and hi <= k and not bool(xp.any(x != xp.floor(x)))
            else:
                counts, lo, hi, ok = x, None, None, False
            if not ok:
                raise InvalidArgumentError(
                    f"`counts` must be integers in [0, n_clients={k}], got dtype {x.dtype} with values in [{lo!r}, {hi!r}]."
                )
        else:
            raise InvalidShapeError(f"pass masks (K, d) or counts (d,); got shape {tuple(x.shape)}.")
        low, high = (REFERENCE_LOW, REFERENCE_HIGH) if self.reference_mapping else (0.0, 1.0)
        reset = self.alpha is None or self._reset(self.round)
        if xp is np:
            from ..kernels._fedpm_cpu import beta_update

            if self.alpha is None:
                self.alpha = np.empty(self.d, dtype=np.float64)
                self.beta = np.empty(self.d, dtype=np.float64)
            theta = np.empty(self.d, dtype=np.float64)
            beta_update(self.alpha, self.beta, np.ascontiguousarray(counts), float(k), low, high, reset,
                        float(self.prior), self.readout == "mode", theta)
            self.theta = theta
        else:
            self.alpha, self.beta, self.theta = beta_update_reference(
                self.alpha, self.beta, counts, k, low, high, reset, self.prior, self.readout == "mode")
        self.round += 1
        return self.theta

    def scores(self):
        """Finite global scores s^g = logit(θ^g) (θ^g clipped to [eps, 1 − eps])."""
        if self.theta is None:
            raise InvalidArgumentError("no round aggregated yet; call `update` first.")
        return logit_safe(self.theta, self.eps)
