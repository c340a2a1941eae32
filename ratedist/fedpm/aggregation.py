"""Bayesian aggregation of FedPM masks with per-coordinate Beta posteriors (docs/theory.md §5).

Per coordinate the server holds Beta(α, β).  Each round it (optionally) resets
α = β = λ₀, adds the number of ones ``M`` and zeros ``K − M`` it received, and
reads out θ^g by the posterior mode (α − 1)/(α + β − 2) or the mean
α/(α + β).  With ``reset="every_round"`` and λ₀ = 1 the mode is *exactly* the
plain average M/K, so Bayesian aggregation then equals :func:`mean_estimate`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np

from .._backend import namespace
from .._validation import check_choice, check_int, check_open_unit, check_positive
from ..errors import InvalidArgumentError, InvalidShapeError

__all__ = ["BetaAggregator", "ResetPolicy", "beta_update_reference", "logit_safe", "REFERENCE_LOW", "REFERENCE_HIGH"]

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


@dataclass(frozen=True)
class ResetPolicy:
    """When a :class:`BetaAggregator` returns to its prior: a name and its parameters (picklable).

    Parameters
    ----------
    name : {"every_round", "never", "rounds", "callable"}
        Every round (the reference code); never after round 0; at round 0 and the
        rounds listed in ``rounds``; at round 0 and where ``fn(t)`` is true.
    rounds : tuple of int
        The rounds ``t = 1, 2, ...`` that reset (``name="rounds"`` only).
    fn : callable or None
        ``fn(t) -> bool`` (``name="callable"`` only).  It is pickled with the
        aggregator, so a module-level function travels between processes and a
        lambda does not; it cannot be written to a record (:meth:`to_config`).

    Examples
    --------
    >>> p = ResetPolicy.from_spec([3, 1])
    >>> p, p(0), p(2), p(3)
    (ResetPolicy(name='rounds', rounds=(1, 3), fn=None), True, False, True)
    >>> ResetPolicy.from_config(p.to_config()) == p
    True
    """

    name: str = "every_round"
    rounds: tuple = ()
    fn: Callable[[int], bool] | None = None

    NAMES = ("every_round", "never", "rounds", "callable")

    def __post_init__(self):
        check_choice("reset", self.name, self.NAMES)
        if self.name == "callable" and not callable(self.fn):
            raise InvalidArgumentError(f"`reset` policy 'callable' needs a callable `fn`, got {self.fn!r}.")
        if self.name != "callable" and self.fn is not None:
            raise InvalidArgumentError(f"`fn` is only used by the 'callable' reset policy, not {self.name!r}.")
        if self.name != "rounds" and self.rounds:
            raise InvalidArgumentError(f"`rounds` is only used by the 'rounds' reset policy, not {self.name!r}.")
        object.__setattr__(self, "rounds", tuple(sorted({check_int("reset[]", r, minimum=0) for r in self.rounds})))

    @classmethod
    def from_spec(cls, reset) -> ResetPolicy:
        """The policy named by ``reset``: a name, a callable, an iterable of rounds, or a policy."""
        if isinstance(reset, ResetPolicy):
            return reset
        if isinstance(reset, str):
            check_choice("reset", reset, ("every_round", "never"))
            return cls(reset)
        if callable(reset):
            return cls("callable", fn=reset)
        if isinstance(reset, Iterable):
            return cls("rounds", rounds=tuple(reset))
        raise InvalidArgumentError(
            f"`reset` must be 'every_round', 'never', a callable t -> bool or a list of rounds; got {reset!r}."
        )

    def __call__(self, t: int) -> bool:
        if self.name == "every_round":
            return True
        if self.name == "never":
            return t == 0
        if self.name == "rounds":
            return t == 0 or t in self.rounds
        return t == 0 or bool(self.fn(t))

    def to_config(self) -> dict:
        """``{"reset": name, "reset_rounds": [...]}``: plain values for a Flower ``ConfigRecord``."""
        if self.name == "callable":
            raise InvalidArgumentError(
                "`reset` is a callable, which cannot be written to a record; use 'every_round', 'never' "
                "or a list of rounds to save the aggregator's state."
            )
        return {"reset": self.name, "reset_rounds": [int(r) for r in self.rounds]}

    @classmethod
    def from_config(cls, config) -> ResetPolicy:
        """Inverse of :meth:`to_config`."""
        name = config.get("reset")
        if name not in ("every_round", "never", "rounds"):
            raise InvalidArgumentError(f"`config['reset']` must be 'every_round', 'never' or 'rounds', got {name!r}.")
        return cls(name, rounds=tuple(int(r) for r in config.get("reset_rounds", ()) or ()))


class BetaAggregator:
    """Server-side Beta(α, β) aggregation of clients' binary masks.

    Parameters
    ----------
    d : int
        Number of mask entries.
    prior : float, default 1.0
        λ₀ > 0, the prior α = β = λ₀ (the reference code uses 1).
    reset : "every_round", "never", callable, iterable of int or ResetPolicy
        When the posterior returns to the prior at the start of a round
        ``t = 0, 1, ...``: every round (the reference code), never (after the
        first), ``reset(t) -> bool``, or the set of rounds listed.  Kept as a
        :class:`ResetPolicy` (a name and parameters), so the aggregator pickles
        (a callable pickles if it is a module-level function).
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
    :meth:`state` and :meth:`from_state` save and restore everything (α, β,
    θ^g, the round, the options); :mod:`ratedist.flower` writes that state to
    Flower records.
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
        self.reset_policy = ResetPolicy.from_spec(reset)
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
        reset = self.alpha is None or self.reset_policy(self.round)
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

    def state(self) -> tuple[dict, dict]:
        """The aggregator's full state: ``(arrays, config)``.

        Returns
        -------
        arrays : dict of str to float64 ndarray (d,)
            ``alpha``, ``beta`` and ``theta`` (absent before the first round).
        config : dict of plain values
            ``d``, ``prior``, ``readout``, ``reference_mapping``, ``eps``,
            ``round`` and the reset policy (:meth:`ResetPolicy.to_config`).

        Examples
        --------
        >>> agg = BetaAggregator(2, reset=[2])
        >>> _ = agg.update(np.array([[1, 0]], dtype=np.uint8))
        >>> back = BetaAggregator.from_state(*agg.state())
        >>> back.round, back.reset_policy.rounds, back.theta.tolist()
        (1, (2,), [1.0, 0.0])
        """
        config = {"d": self.d, "prior": self.prior, "readout": self.readout,
                  "reference_mapping": self.reference_mapping, "eps": self.eps, "round": self.round,
                  **self.reset_policy.to_config()}
        arrays = {}
        if self.alpha is not None:
            arrays = {"alpha": np.array(self.alpha, dtype=np.float64), "beta": np.array(self.beta, dtype=np.float64),
                      "theta": np.array(self.theta, dtype=np.float64)}
        return arrays, config

    @classmethod
    def from_state(cls, arrays, config) -> BetaAggregator:
        """Rebuild an aggregator from :meth:`state`'s ``(arrays, config)`` (host arrays)."""
        for key in ("d", "prior", "readout", "reference_mapping", "eps", "round", "reset"):
            if key not in config:
                raise InvalidArgumentError(f"`config` lacks {key!r}; pass the config that BetaAggregator.state() wrote.")
        agg = cls(int(config["d"]), prior=float(config["prior"]), reset=ResetPolicy.from_config(config),
                  readout=str(config["readout"]), reference_mapping=bool(config["reference_mapping"]),
                  eps=float(config["eps"]))
        agg.round = check_int("config['round']", config["round"], minimum=0)
        have = [k for k in ("alpha", "beta", "theta") if k in arrays]
        if have and len(have) != 3:
            raise InvalidArgumentError(f"`arrays` holds {have}; pass all of 'alpha', 'beta', 'theta' or none.")
        if have:
            for k in have:
                a = np.ascontiguousarray(arrays[k], dtype=np.float64)
                if a.shape != (agg.d,):
                    raise InvalidShapeError(f"`arrays[{k!r}]` has shape {a.shape}, expected ({agg.d},).")
                setattr(agg, k, a.copy())
        elif agg.round:
            raise InvalidArgumentError(f"`config['round']`={agg.round} but `arrays` holds no posterior.")
        return agg
