"""Blahut–Arimoto in the log domain, with a certificate and an accelerated iteration (docs/theory.md §1).

Problem: a source pmf ``p_i`` on points ``x_i``, reproduction points ``y_j``,
distortion ``d_ij`` and a slope ``s < 0``.  With ``A_ij = exp(s·d_ij)`` and a
reproduction law ``q``:

* ``Z_i = Σ_j q_j A_ij``, ``Q(j|i) = q_j A_ij / Z_i``, ``c_j = Σ_i p_i A_ij / Z_i``;
* the BA map is ``q ← q ⊙ c`` (it sums to 1 automatically);
* read-out from (q, Q): ``D = Σ p_i Q(j|i) d_ij`` and the achievable rate
  ``R = I(p; Q) = sD − Σ_i p_i ln Z_i − Σ_j q_j c_j ln c_j``;
* the lower bound ``R_L = sD − Σ_i p_i ln Z_i − ln max_j c_j`` holds for *any*
  q (it is the dual bound of Blahut 1972, Thm 8, with λ_i = 1/(Z_i max c)), so
  ``R_L ≤ R(D) ≤ R`` and the solver stops when ``R − R_L < tol``.

The iteration is carried on ``θ = ln q`` and every sum is a log-sum-exp (or a
stabilized sum whose underflow is repaired in the log domain), so slopes of
any magnitude give finite numbers.

Acceleration: BA is the EM iteration for the weights of a mixture, i.e. a
monotone ascent of the concave ``L(q) = Σ_i p_i ln Z_i``.  ``accelerate=True``
applies SQUAREM (Varadhan & Roland 2008, scheme S3) to the map ``θ ↦ θ + ln c``:
from θ₀, θ₁ = F(θ₀), θ₂ = F(θ₁), r = θ₁ − θ₀, v = θ₂ − 2θ₁ + θ₀ and
α = ‖r‖/‖v‖ clipped to [1, α_max], the extrapolated point is
θ' = θ₀ + 2αr + α²v (α = 1 gives θ₂ exactly).  θ' is accepted only if
L(θ') ≥ L(θ₁) (the monotone safeguard); otherwise the plain point θ₂ is kept
and α_max shrinks.  Because ``R_L`` is valid for any q, acceleration cannot
fake convergence: the certificate is computed at the very point read out.
``iterations`` counts evaluations of the BA map (each costs one plain BA
iteration).

Two further accelerations (both keep L monotone and the certificate honest):

* cluster collapse (every ``_COLLAPSE_EVERY`` SQUAREM cycles, :func:`_collapse`):
  BA smears a point mass of the optimal law (the atom at 0 of the Laplacian
  reproduction law) into a narrow bump that it sharpens only at a 1/n rate;
  an exact line search of L along "move the mass of a window around
  j* = argmax c_j into j*", over windows of 1, 2, 4, … points, removes it.
* coarse-to-fine start (:func:`blahut_arimoto_grid` on grids whose every-4th
  or 2nd point still gives ≥ ``_MIN_COARSE`` points, no ``q_init``): the
  source is restricted to the coarse grid with hat weights, the coarse problem
  solved (recursively) to ``_COARSE_TOL·tol``, and its law spread back as the
  starting point; the fine problem is then solved and certified on its own.
  ``iterations`` then adds the coarse evaluations weighted by grid size
  (fine-grid equivalents).
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._backend import BACKENDS, has_numba, namespace, resolve_backend, to_host
from .._units import check_units, from_nats, to_nats
from .._validation import check_choice, check_finite_array, check_int, check_pmf, check_positive
from ..errors import (
    BackendUnavailableError,
    ConvergenceWarning,
    InvalidArgumentError,
    InvalidShapeError,
    UnreachableTargetError,
)

__all__ = [
    "BAResult",
    "blahut_arimoto",
    "blahut_arimoto_grid",
    "rate_at_distortion",
    "rate_at_distortion_grid",
]

_FLOOR = 700.0          # ln q is kept >= max ln q − 700 (e^{−700} ≈ 1e-304: zero for every sum)
_FFT_GUARD = 1e-7       # FFT outputs below this fraction of the maximum are recomputed exactly
_COLLAPSE_EVERY = 80     # SQUAREM cycles (about 3 map evaluations each) between cluster-collapse steps
_COARSE_TOL = 0.5        # coarse levels aim at this fraction of tol
_COARSE_SHARE = 2        # each coarse level gets at most max_iter / this many map evaluations
_MIN_COARSE = 1025       # coarse-to-fine start on grids whose every-4th (or 2nd) point gives at least this many
_BAND_DIRECT = 32       # kernels with at most this many non-underflowing taps per side: direct sums


@dataclass(frozen=True)
class BAResult:
    """One point of a rate–distortion curve computed by Blahut–Arimoto, with its certificate.

    Attributes
    ----------
    rate : float
        Achievable rate R = I(p; Q) of the returned test channel, in ``units``
        (an upper bound on R(distortion)).
    rate_lower : float
        Certified lower bound R_L ≤ R(distortion), in ``units``.
    distortion : float
        Mean distortion D of the returned test channel (for
        :func:`rate_at_distortion`: the requested D).
    slope : float
        Slope s (nats per unit distortion; ``units`` per unit distortion when
        ``units="bits"``) at which the point was computed.
    iterations : int
        Evaluations of the BA map (coarse-to-fine levels counted in fine-grid
        equivalents: evaluations × coarse size / fine size).
    converged : bool
        Whether ``rate − rate_lower < tol`` was reached.
    q_xhat : ndarray, shape (m_y,)
        Reproduction law q at the read-out point (on the caller's device).
    units : str
        ``"nats"`` or ``"bits"``.
    """

    rate: float
    rate_lower: float
    distortion: float
    slope: float
    iterations: int
    converged: bool
    q_xhat: Any
    units: str = "nats"

    @property
    def gap(self) -> float:
        """Certificate gap ``rate − rate_lower`` (in ``units``)."""
        return self.rate - self.rate_lower

    def to_dict(self) -> dict:
        """The scalar fields (the CLI's JSON keys)."""
        return {"rate": self.rate, "rate_lower": self.rate_lower, "distortion": self.distortion,
                "slope": self.slope, "iterations": self.iterations, "converged": self.converged,
                "units": self.units}


# --------------------------------------------------------------------------------------------
# array helpers (NumPy or CuPy through ``xp``)


def _lse(xp, a, axis=None):
    """log Σ exp(a) along ``axis``; all −inf gives −inf."""
    m = xp.max(a, axis=axis, keepdims=True)
    m = xp.where(xp.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        out = xp.log(xp.sum(xp.exp(a - m), axis=axis, keepdims=True)) + m
    return out.reshape(()) if axis is None else xp.squeeze(out, axis=axis)


def _normalize(xp, theta):
    theta = theta - _lse(xp, theta)
    return xp.maximum(theta, xp.max(theta) - _FLOOR)


# --------------------------------------------------------------------------------------------
# operators: each computes ln Z = ln(A e^θ), ln c = ln(Aᵀ e^u) and the read-out distortion


class _DenseLog:
    """Reference path: dense log-sum-exp over ``S = s·d`` (NumPy or CuPy)."""

    def __init__(self, xp, S, d):
        self.xp, self.S, self.d = xp, S, d

    def log_z(self, theta):
        return _lse(self.xp, self.S + theta[None, :], axis=1)

    def log_c(self, u):
        return _lse(self.xp, u[:, None] + self.S, axis=0)

    def mean_distortion(self, theta, log_z, p):
        xp = self.xp
        Q = xp.exp(theta[None, :] + self.S - log_z[:, None])
        return float(xp.sum(p * xp.sum(Q * self.d, axis=1)))


class _DenseNumba(_DenseLog):
    """Dense path in numba: row-stabilized kernel, underflow repaired in the log domain."""

    def __init__(self, S, d):
        super().__init__(np, S, d)
        from ..kernels import _ba_cpu

        self._k = _ba_cpu
        self.rowmax = np.ascontiguousarray(S.max(axis=1))
        self.K = np.ascontiguousarray(np.exp(S - self.rowmax[:, None]))
        self.S = np.ascontiguousarray(S)

    def log_z(self, theta):
        out = np.empty(self.S.shape[0])
        self._k.dense_log_z(np.ascontiguousarray(theta), self.S, self.K, self.rowmax, out)
        return out

    def log_c(self, u):
        out = np.empty(self.S.shape[1])
        self._k.dense_log_c(np.ascontiguousarray(u), self.S, self.K, self.rowmax, out)
        return out


class _Toeplitz:
    """Grid path: symmetric Toeplitz kernel ``a_k = exp(s·ρ(kΔ))`` on a uniform grid.

    ``method``: ``"recursive"`` (absolute error only; exact O(m) recursions in
    numba), ``"fft"`` (O(m log m); outputs below ``_FFT_GUARD`` of the maximum,
    where the FFT's absolute error could matter, are recomputed exactly) or
    ``"direct"`` (banded log-sum-exp, used automatically for narrow kernels).
    """

    def __init__(self, xp, m, step, slope, distortion_type, method):
        self.xp, self.m, self.step, self.s = xp, m, step, slope
        self.kind = distortion_type
        k = np.arange(m, dtype=np.float64)
        rho = k * step if distortion_type == "absolute" else (k * step) ** 2
        self.rho = rho
        self.logker = slope * rho                      # ln a_k, k = 0..m-1
        with np.errstate(divide="ignore"):
            self.logker_d = self.logker + np.log(rho)  # ln(a_k ρ_k), −inf at k = 0
        band = int(np.count_nonzero(self.logker > -745.0))  # taps that do not underflow
        self.band = band
        if method == "auto":
            if band - 1 <= _BAND_DIRECT:
                method = "direct"
            elif distortion_type == "absolute" and xp is np and has_numba():
                method = "recursive"
            else:
                method = "fft"
        if method == "recursive" and distortion_type != "absolute":
            raise InvalidArgumentError("`method='recursive'` needs `distortion_type='absolute'`; use 'fft'.")
        if method == "recursive" and not has_numba():
            raise BackendUnavailableError("`method='recursive'` needs numba: pip install numba.")
        self.method = method
        if method == "recursive":
            from ..kernels import _ba_cpu

            self._k = _ba_cpu
            self.logr = slope * step
            self.r = math.exp(self.logr)
            self._qt = np.empty(m)
            self._w = np.empty(m)
            self._work = np.empty(m)
        elif method == "fft":
            self._setup_fft()

    # -- FFT -------------------------------------------------------------------------------
    def _setup_fft(self):
        xp, m = self.xp, self.m
        if xp is np:
            import scipy.fft as sfft

            self._rfft, self._irfft = sfft.rfft, sfft.irfft
            n = sfft.next_fast_len(2 * m - 1, real=True)
        else:
            self._rfft, self._irfft = xp.fft.rfft, xp.fft.irfft
            n = 1 << int(math.ceil(math.log2(2 * m - 1)))
        self.n = n

        def spectrum(logker):
            b = np.zeros(n)
            a = np.exp(logker)
            b[:m] = a
            b[n - m + 1:] = a[1:][::-1]
            return self._rfft(xp.asarray(b))

        self.B = spectrum(self.logker)
        self.BD = spectrum(self.logker_d)

    def _fft_log_conv(self, logv, spec, logker):
        xp = self.xp
        vmax = xp.max(logv)
        vt = xp.exp(logv - vmax)
        z = self._irfft(self._rfft(vt, self.n) * spec, self.n)[: self.m]
        zmax = float(xp.max(z))
        bad = z <= _FFT_GUARD * zmax
        with np.errstate(divide="ignore", invalid="ignore"):
            out = xp.log(xp.where(bad, 1.0, z)) + vmax
        if bool(xp.any(bad)):
            rows = xp.nonzero(bad)[0]
            out[rows] = self._direct_rows(logv, logker, rows)
        return out

    # -- exact direct sums ------------------------------------------------------------------
    def _direct_rows(self, logv, logker, rows):
        """log Σ_j exp(logv[j] + logker[|i-j|]) for i in rows, over the non-underflowing band."""
        xp = self.xp
        band = max(self.band, 1)
        offs = np.arange(-(band - 1), band)
        lk = xp.asarray(logker[np.abs(offs)])
        out = xp.empty(rows.shape[0])
        chunk = max(1, 4_000_000 // offs.size)
        for a in range(0, rows.shape[0], chunk):
            r = rows[a:a + chunk]
            j = r[:, None] + xp.asarray(offs)[None, :]
            ok = (j >= 0) & (j < self.m)
            vals = xp.where(ok, logv[xp.clip(j, 0, self.m - 1)] + lk[None, :], -xp.inf)
            out[a:a + chunk] = _lse(xp, vals, axis=1)
        return out

    def _log_conv(self, logv, which):
        xp = self.xp
        logker = self.logker if which == "z" else self.logker_d
        if self.method == "direct":
            return self._direct_rows(logv, logker, xp.arange(self.m))
        if self.method == "fft":
            return self._fft_log_conv(logv, self.B if which == "z" else self.BD, logker)
        # recursive (absolute error, NumPy, numba)
        vmax = float(np.max(logv))
        vt = np.exp(logv - vmax)
        z = np.empty(self.m)
        dd = np.empty(self.m)
        self._k.abs_conv(vt, self.r, z, dd, which == "d")
        res = z if which == "z" else dd
        bad = res <= self._k.TINY
        with np.errstate(divide="ignore"):
            out = np.log(np.where(bad, 1.0, res)) + vmax
        if which == "d":
            out += math.log(self.step)
        if bad.any():
            rows = np.nonzero(bad)[0]
            if which == "z":
                full = np.empty(self.m)
                self._k.abs_log_conv(np.ascontiguousarray(logv), self.logr, full)
                out[rows] = full[rows]
            else:
                out[rows] = self._direct_rows(logv, self.logker_d, rows)
        return out

    def log_z(self, theta):
        return self._log_conv(theta, "z")

    def log_c(self, u):
        return self._log_conv(u, "z")  # symmetric kernel: Aᵀ = A

    def fused_eval(self, theta, p):
        """One BA-map evaluation of the recursive path: three numba passes between NumPy's vectorized exp/log.

        Returns None (use the general log-domain path) when a linear sum would underflow.
        """
        if self.method != "recursive":
            return None
        k, m, qt, w = self._k, self.m, self._qt, self._w
        log_z, c, log_c, nxt = np.empty(m), np.empty(m), np.empty(m), np.empty(m)
        tmax = float(theta.max())
        np.subtract(theta, tmax, out=qt)
        np.exp(qt, out=qt)
        if not k.abs_ba_z(qt, self.r, c, self._work) > k.TINY:   # c holds z for now
            return None
        np.log(c, out=log_z)
        L, wmax, cmin = k.abs_ba_c(p, c, log_z, self.r, w, c, self._work)
        if not (cmin > k.TINY and wmax > 0):
            return None
        np.log(c, out=log_c)
        lmax, kl = k.abs_ba_next(theta, qt, c, log_c, math.log(wmax) - tmax, wmax, _FLOOR, nxt)
        log_z += tmax
        return _Eval(theta, log_z, log_c, L + tmax, kl, lmax, lmax - kl, nxt)

    def mean_distortion(self, theta, log_z, p):
        xp = self.xp
        logt = self._log_conv(theta, "d")
        with np.errstate(invalid="ignore"):
            terms = xp.where(p > 0, p * xp.exp(logt - log_z), 0.0)
        return float(xp.sum(terms))


# --------------------------------------------------------------------------------------------
# the solver


@dataclass
class _Eval:
    theta: Any
    log_z: Any
    log_c: Any
    L: float
    kl: float
    lmax: float
    gap: float
    next: Any


def _evaluate(xp, op, log_p, p, theta) -> _Eval:
    fused = getattr(op, "fused_eval", None)
    if fused is not None:
        e = fused(theta, p)
        if e is not None:
            return e
    log_z = op.log_z(theta)
    with np.errstate(invalid="ignore"):
        u = xp.where(p > 0, log_p - log_z, -xp.inf)
        L = float(xp.sum(xp.where(p > 0, p * log_z, 0.0)))
    log_c = op.log_c(u)
    lmax = float(xp.max(log_c))
    with np.errstate(invalid="ignore", over="ignore"):
        qn = xp.exp(theta + log_c)
        kl = float(xp.sum(xp.where(qn > 0, qn * log_c, 0.0)))
    nxt = _normalize(xp, xp.maximum(theta + log_c, -1e300))
    return _Eval(theta, log_z, log_c, L, kl, lmax, lmax - kl, nxt)


def _line_search(xp, p, rho):
    """max over t in [0, 1] of g(t) = Σ_i p_i ln(1 + t ρ_i) (concave) by safeguarded Newton; returns (t, g(t)).

    ``p`` and ``rho`` are restricted to the source points with p_i > 0 by the caller.
    """
    if float(xp.dot(p, rho)) <= 0:  # g'(0) <= 0: no ascent
        return 0.0, 0.0
    t = 0.0
    for _ in range(30):
        u = rho / (1.0 + t * rho)
        pu = p * u
        d1, d2 = float(xp.sum(pu)), float(xp.dot(pu, u))
        if d1 >= 0 and t >= 1.0:
            break
        tn = min(max(t + d1 / d2, 0.0), 1.0) if d2 > 0 else 1.0
        done = abs(tn - t) <= 1e-10 * tn
        t = tn
        if done:
            break
    return t, float(xp.dot(p, xp.log1p(t * rho)))


def _collapse(xp, op, p, e):
    """Cluster-collapse step: move a fraction t of the mass around j* = argmax c_j into j* itself.

    BA spreads a point mass of the optimal law (e.g. the atom at 0 of the Laplacian reproduction
    law) into a narrow bump that it collapses only at a 1/n rate: the objective L(q) = Σ p_i ln Z_i
    barely distinguishes a bump from an atom.  For windows of 1, 2, 4, … points on either side of
    j*, the exact line search of L along "window mass → j*" is cheap (Z moves linearly in t), and
    the best window is applied.  L never decreases, so the iteration stays monotone; the
    certificate is recomputed at the new point.  Returns the new θ, or None without a gain.
    """
    m = e.theta.shape[0]
    js = int(xp.argmax(e.log_c))
    theta = e.theta
    zero = float(xp.max(theta)) - 2.0 * _FLOOR  # e^{zero} is 0 beside every kept term
    onehot = xp.full(m, zero)
    onehot[js] = 0.0
    pos = p > 0
    pp = p[pos]
    lcol = (op.log_z(onehot) - e.log_z)[pos]        # ln(A_{:, j*} / Z)
    best_gain, best = 0.0, None
    k = 1
    while k <= max(1, m // 4):
        lo, hi = max(0, js - k), min(m, js + k + 1)
        tw = xp.full(m, zero)
        tw[lo:hi] = theta[lo:hi]
        tw[js] = zero
        lmw = float(_lse(xp, tw[lo:hi]))           # ln of the window's mass (j* excluded)
        with np.errstate(over="ignore"):
            rho = xp.exp(lmw + lcol) - xp.exp((op.log_z(tw) - e.log_z)[pos])
        t, gain = _line_search(xp, pp, rho)
        if gain > best_gain:
            best_gain, best = gain, (t, lo, hi)
        if hi - lo >= m:
            break
        k *= 2
    if best is None:
        return None
    t, lo, hi = best
    q = xp.exp(theta - float(xp.max(theta)))
    move = t * q[lo:hi]
    move[js - lo] = 0.0
    q[lo:hi] -= move
    q[js] += float(xp.sum(move))
    with np.errstate(divide="ignore"):
        return _normalize(xp, xp.log(q))


def _solve(xp, op, p, theta0, tol, max_iter, accelerate, collapse=True):
    """Iterate until the certificate gap is below ``tol``; return (best eval, n_evals, converged).

    ``collapse=False`` skips the cluster-collapse steps (for sources without smeared atoms, where
    their line searches cost more than they save).
    """
    with np.errstate(divide="ignore"):
        log_p = xp.log(p)
    n = 0
    best = None

    def ev(theta):
        nonlocal n, best
        n += 1
        e = _evaluate(xp, op, log_p, p, theta)
        if not (math.isfinite(e.gap) and math.isfinite(e.L)):
            raise FloatingPointError("non-finite BA evaluation")  # pragma: no cover - guarded by design
        if best is None or e.gap < best.gap:
            best = e
        return e

    e0 = ev(_normalize(xp, theta0))
    if e0.gap < tol:
        return best, n, True
    if not accelerate:
        while n < max_iter:
            e0 = ev(e0.next)
            if e0.gap < tol:
                return e0, n, True
        return best, n, False
    step_max, mstep = 1.0, 4.0
    cycles = 0
    while n < max_iter:
        e1 = ev(e0.next)
        if e1.gap < tol:
            return e1, n, True
        t0, t1, t2 = e0.theta, e1.theta, e1.next
        r = t1 - t0
        v = t2 - 2.0 * t1 + t0
        nr, nv = float(xp.sqrt(xp.sum(r * r))), float(xp.sqrt(xp.sum(v * v)))
        alpha = nr / nv if nv > 0 else step_max
        alpha = min(max(alpha, 1.0), step_max)
        if alpha > 1.0 and n < max_iter:
            tp = _normalize(xp, t0 + (2.0 * alpha) * r + (alpha * alpha) * v)
            ep = ev(tp)
            if ep.gap < tol:
                return ep, n, True
            if ep.L >= e1.L:
                nxt = ep.next
                if alpha >= step_max:
                    step_max *= mstep
            else:
                nxt = t2
                step_max = max(1.0, step_max / mstep)
        else:
            nxt = t2
            if alpha >= step_max:
                step_max *= mstep
        if n >= max_iter:
            break
        e0 = ev(nxt)
        if e0.gap < tol:
            return e0, n, True
        cycles += 1
        if collapse and cycles % _COLLAPSE_EVERY == 0 and n < max_iter:
            tc = _collapse(xp, op, p, e0)
            if tc is not None:
                e0 = ev(tc)
                if e0.gap < tol:
                    return e0, n, True
    return best, n, False


def _law(xp, theta):
    """q = e^θ normalized, with the floored entries (below e^{-700} of the maximum) set to exactly 0."""
    q = xp.where(theta <= xp.max(theta) - _FLOOR + 1e-6, 0.0, xp.exp(theta))
    return q / xp.sum(q)


def _readout(xp, op, p, e, slope, n, converged, units, tol, who):
    d = op.mean_distortion(e.theta, e.log_z, p)
    sd = slope * d
    rate = sd - e.L - e.kl
    rate_lower = sd - e.L - e.lmax
    rate = max(rate, 0.0)  # I(p;Q) >= 0; the kl term can round a hair below
    if not converged:
        warnings.warn(
            f"{who}: stopped after {n} iterations with certificate gap {e.gap:.3g} nats > tol {tol:.3g}; "
            "raise `max_iter`, loosen `tol`, or keep `accelerate=True`.", ConvergenceWarning, stacklevel=3)
    q = _law(xp, e.theta)
    return BAResult(rate=float(from_nats(rate, units)), rate_lower=float(from_nats(rate_lower, units)),
                    distortion=float(d), slope=float(from_nats(slope, units)), iterations=int(n),
                    converged=bool(converged), q_xhat=q, units=units)


# --------------------------------------------------------------------------------------------
# validation


def _check_common(tol, max_iter, units, slope=None):
    check_units(units)
    tol_n = to_nats(check_positive("tol", tol), units)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    s = None
    if slope is not None:
        try:
            s = float(slope)
        except (TypeError, ValueError):
            raise InvalidArgumentError(f"`slope` must be a negative real number, got {slope!r}.") from None
        if not math.isfinite(s) or s >= 0:
            raise InvalidArgumentError(
                f"`slope` must be finite and < 0 (nats per unit distortion), got {slope!r}; "
                "R(D) is traced by slopes s in (-inf, 0).")
        s = to_nats(s, units)
    return tol_n, max_iter, s


def _check_p(p_x):
    xp = namespace(p_x)
    host = to_host(p_x)
    check_pmf("p_x", host)
    return xp, xp.asarray(p_x, dtype=xp.float64)


def _dense_setup(p_x, distortion_matrix, backend):
    xp, p = _check_p(p_x)
    check_choice("backend", backend, BACKENDS)
    dh = to_host(distortion_matrix)
    dh = check_finite_array("distortion_matrix", dh)
    if dh.ndim != 2:
        raise InvalidShapeError(
            f"`distortion_matrix` must be 2-D (m_x, m_y), got shape {tuple(dh.shape)}.")
    if dh.shape[0] != p.shape[0]:
        raise InvalidShapeError(
            f"`distortion_matrix` has {dh.shape[0]} rows but `p_x` has {p.shape[0]} entries; "
            "row i must hold the distortions of source point i.")
    if np.any(dh < 0):
        raise InvalidArgumentError(
            f"`distortion_matrix` has negative entries (min {dh.min():.3g}); distortions are >= 0.")
    if backend == "cuda":
        resolve_backend("cuda")
        import cupy

        xp = cupy
        p = cupy.asarray(to_host(p))
    elif backend in ("numpy", "numba") and xp is not np:
        p = to_host(p)
        xp = np
    if xp is not np:
        d = xp.asarray(distortion_matrix, dtype=xp.float64)
        kind = "xp"
    else:
        d = np.asarray(dh, dtype=np.float64)
        kind = resolve_backend(backend if backend != "cuda" else "numba", allow_cuda=False)
    return xp, p, d, kind


def _check_theta0(xp, q_init, m):
    if q_init is None:
        return xp.full(m, -math.log(m))
    q = check_finite_array("q_init", to_host(q_init), ndim=1)
    if q.shape[0] != m or np.any(q < 0) or not q.sum() > 0:
        raise InvalidArgumentError(
            f"`q_init` must be a non-negative vector of length {m} with positive sum, got shape {q.shape}.")
    with np.errstate(divide="ignore"):
        th = np.log(q / q.sum())
    th = np.maximum(th, th.max() - _FLOOR)
    return xp.asarray(th)


def _make_dense_op(xp, d, s, kind):
    with np.errstate(over="ignore", invalid="ignore"):
        S = s * d
    if not bool(xp.all(xp.isfinite(S))):
        raise InvalidArgumentError(
            f"`slope` ({s!r}) times `distortion_matrix` overflows; use a smaller |slope| "
            "or rescale the distortion.")
    if kind == "numba":
        return _DenseNumba(S, d)
    return _DenseLog(xp, S, d)


# --------------------------------------------------------------------------------------------
# public API


def blahut_arimoto(p_x, distortion_matrix, slope, *, tol=1e-6, max_iter=100_000, accelerate=True,
                   backend="auto", q_init=None, units="nats") -> BAResult:
    """Blahut–Arimoto at slope s for a discrete source, with a certified gap.

    Parameters
    ----------
    p_x : array_like, shape (m_x,)
        Source pmf (non-negative, sums to 1).  A CuPy array keeps the whole
        computation on its GPU.
    distortion_matrix : array_like, shape (m_x, m_y)
        d(x_i, y_j) >= 0.
    slope : float
        s < 0, in nats (or ``units``) per unit distortion.  Any magnitude
        (1e-6 to 1e6 and beyond) gives finite results.
    tol : float
        Stop when the certificate gap R − R_L (in ``units``) is below ``tol``.
    max_iter : int
        Maximum number of BA-map evaluations; reaching it warns
        (:class:`~ratedist.errors.ConvergenceWarning`) and sets ``converged=False``.
    accelerate : bool
        SQUAREM extrapolation with a monotone safeguard (module docstring);
        ``False`` runs the plain BA iteration.
    backend : {"auto", "numpy", "numba", "cuda"}
        ``"numpy"`` is the log-sum-exp reference; ``"numba"`` (the ``"auto"``
        choice on the CPU) uses a stabilized kernel with log-domain repair;
        ``"cuda"`` runs the reference path on CuPy.
    q_init : array_like, shape (m_y,), optional
        Starting reproduction law (default uniform).
    units : {"nats", "bits"}

    Returns
    -------
    BAResult

    Notes
    -----
    docs/theory.md §1 (Blahut–Arimoto, read-out and lower bound).  R is the mutual
    information of the returned channel (achievable), R_L is Blahut's dual
    bound; both are computed from the same (q, Q).

    Examples
    --------
    Bernoulli(0.3) under Hamming distortion, where R(D) = h(p) − h(D):

    >>> import numpy as np
    >>> res = blahut_arimoto([0.7, 0.3], [[0.0, 1.0], [1.0, 0.0]], slope=-2.0, tol=1e-10)
    >>> from ratedist.rd import rate_bernoulli
    >>> bool(abs(res.rate - rate_bernoulli(res.distortion, 0.3)) < 1e-8), res.converged
    (True, True)
    """
    tol_n, max_iter, s = _check_common(tol, max_iter, units, slope)
    xp, p, d, kind = _dense_setup(p_x, distortion_matrix, backend)
    op = _make_dense_op(xp, d, s, kind)
    theta0 = _check_theta0(xp, q_init, d.shape[1])
    e, n, conv = _solve(xp, op, p, theta0, tol_n, max_iter, bool(accelerate))
    return _readout(xp, op, p, e, s, n, conv, units, tol_n, "blahut_arimoto")


def _grid_setup(points, p_x, distortion_type, method):
    xp, p = _check_p(p_x)
    x = check_finite_array("points", to_host(points), ndim=1)
    x = np.asarray(x, dtype=np.float64)
    if x.shape[0] != p.shape[0]:
        raise InvalidShapeError(
            f"`points` has {x.shape[0]} entries but `p_x` has {p.shape[0]}; give one probability per point.")
    if x.shape[0] < 2:
        raise InvalidArgumentError("`points` must hold at least 2 grid points.")
    check_choice("distortion_type", distortion_type, ("absolute", "squared"))
    check_choice("method", method, ("auto", "recursive", "fft", "direct"))
    steps = np.diff(x)
    step = float(steps.mean())
    if not step > 0 or np.max(np.abs(steps - step)) > 1e-6 * step:
        raise InvalidArgumentError(
            "`points` must be increasing and uniformly spaced (a grid iΔ); "
            f"got spacings between {steps.min():.6g} and {steps.max():.6g}. Use blahut_arimoto() "
            "with a dense distortion matrix for other grids.")
    return xp, p, x, step


def blahut_arimoto_grid(points, p_x, slope, *, distortion_type="absolute", tol=1e-6, max_iter=100_000,
                        accelerate=True, method="auto", q_init=None, units="nats") -> BAResult:
    """Blahut–Arimoto for a difference distortion on a uniform grid (fast path).

    Source and reproduction share the grid ``points``; ``d_ij = ρ(x_i − x_j)``
    with ρ = |·| or (·)², so ``A = exp(s·ρ)`` is a symmetric Toeplitz matrix and
    each BA step is a convolution.

    Parameters
    ----------
    points : array_like, shape (m,)
        Uniform grid (e.g. ``Discretization.points``).
    p_x : array_like, shape (m,)
        Source pmf on the grid (NumPy or CuPy).
    slope : float
        s < 0 (nats, or ``units``, per unit distortion).
    distortion_type : {"absolute", "squared"}
    tol, max_iter, accelerate, q_init, units
        As in :func:`blahut_arimoto`.
    method : {"auto", "recursive", "fft", "direct"}
        ``"recursive"``: absolute error only, two exact first-order recursions
        per convolution, O(m), in numba.  ``"fft"``: O(m log m) FFT
        convolution of the max-shifted kernel; outputs below 1e-7 of the
        maximum (where the FFT's absolute error would matter) are recomputed
        exactly.  ``"direct"``: banded log-sum-exp, exact, O(m·band).
        ``"auto"`` takes direct for kernels with ≤ 32 non-underflowing taps per
        side, recursive for absolute error on NumPy, FFT otherwise.

    Returns
    -------
    BAResult

    Examples
    --------
    docs/theory.md §1 target (λ = 1, Δ = 0.02, A = 14, s = −2: D ≈ 0.4999, R ≈ 0.6933):

    >>> from ratedist.rd import discretize_laplace
    >>> g = discretize_laplace(1.0, 0.02, 14.0)
    >>> res = blahut_arimoto_grid(g.points, g.pmf, -2.0, tol=1e-5)
    >>> round(res.distortion, 4), round(res.rate, 4), res.converged
    (0.4999, 0.6933, True)
    """
    tol_n, max_iter, s = _check_common(tol, max_iter, units, slope)
    xp, p, x, step = _grid_setup(points, p_x, distortion_type, method)
    m = x.shape[0]
    op = _Toeplitz(xp, m, step, s, distortion_type, method)
    n_coarse = 0
    if q_init is None and accelerate and _coarsening(m) is not None:
        theta0, work = _coarse_start(xp, p, step, s, distortion_type, method, tol_n, max_iter)
        n_coarse = int(round(work / m))
    else:
        theta0 = _check_theta0(xp, q_init, m)
    e, n, conv = _solve(xp, op, p, theta0, tol_n, max_iter, bool(accelerate))
    return _readout(xp, op, p, e, s, n + n_coarse, conv, units, tol_n, "blahut_arimoto_grid")


def _coarsening(m):
    """Coarsening factor (4 or 2) for an m-point grid, or None when the coarse grid would be too small."""
    for f in (4, 2):
        if (m - 1) % f == 0 and (m - 1) // f + 1 >= _MIN_COARSE:
            return f
    return None


def _hat(m, f):
    """Hat weights between an m-point grid and its every-f-th-point coarse grid: (fine i, coarse J, w)."""
    i = np.arange(m)
    j0, a = i // f, (i % f) / f
    J = np.concatenate([j0, np.minimum(j0 + 1, (m - 1) // f)])
    w = np.concatenate([1.0 - a, a])
    return np.concatenate([i, i]), J, w


def _coarse_start(xp, p, step, s, distortion_type, method, tol_n, max_iter):
    """Starting law from the same problem on the every-f-th-point grid (coarse-to-fine continuation).

    The source is restricted to the coarse grid with hat (linear-interpolation) weights, which
    preserve its mass; the coarse problem is solved (itself coarse-to-fine, down to
    ``_MIN_COARSE`` points) and its law spread back with the same hats, each coarse mass
    renormalized over its fine points.  Only the starting point changes: the fine problem is
    then solved and certified on its own.  Each level is solved to ``tol/2`` with at most
    ``max_iter`` evaluations.  Returns (θ₀, work on coarse levels in point-evaluations, i.e. the
    sum over levels of evaluations × grid size).
    """
    ph = np.asarray(to_host(p), dtype=np.float64)
    m = ph.shape[0]
    f = _coarsening(m)
    mc = (m - 1) // f + 1
    i, J, w = _hat(m, f)
    pc = np.bincount(J, weights=w * ph[i], minlength=mc)
    pc = pc / pc.sum()
    opc = _Toeplitz(xp, mc, step * f, s, distortion_type, method)
    pcx = xp.asarray(pc)
    n = 0
    if _coarsening(mc) is not None:
        th, n = _coarse_start(xp, pcx, step * f, s, distortion_type, method, tol_n, max_iter)
    else:
        th = xp.full(mc, -math.log(mc))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        e, nc, _conv = _solve(xp, opc, pcx, th, _COARSE_TOL * tol_n, max(1, max_iter // _COARSE_SHARE), True)
    qc = to_host(_law(xp, e.theta))
    colsum = np.bincount(J, weights=w, minlength=mc)
    q = np.bincount(i, weights=w * (qc / colsum)[J], minlength=m)
    q = q / q.sum()
    with np.errstate(divide="ignore"):
        th = np.log(q)
    th = np.maximum(th, th.max() - _FLOOR)
    return xp.asarray(th), n + nc * mc


# --------------------------------------------------------------------------------------------
# target-distortion mode


def _target_search(xp, p, op_factory, col_mean_d, d_min, target, tol_n, max_iter, max_solves, accelerate,
                   units, who, max_total_iter=None):
    """Find R(target) by solving BA at several slopes.

    Every solved point k gives an achievable pair (D_k, R_k) and a supporting
    line R(D) ≥ R_L,k + s_k (D − D_k) valid for all D.  The answer's upper
    bound is the best chord between achievable points on either side of the
    target (time sharing), its lower bound the best supporting line at the
    target; the search stops when they are within ``tol``.
    """
    j0 = int(np.argmin(col_mean_d))
    d_max = float(col_mean_d[j0])
    m_y = col_mean_d.shape[0]
    if target >= d_max:
        q = xp.zeros(m_y)
        q[j0] = 1.0
        return BAResult(rate=0.0, rate_lower=0.0, distortion=float(target), slope=0.0, iterations=0,
                        converged=True, q_xhat=q, units=units)
    if target <= d_min * (1 + 1e-12):
        raise UnreachableTargetError(
            f"`distortion` {target!r} is at or below the smallest achievable mean distortion {d_min:.6g} "
            "of this source and reproduction grid; ask for a larger distortion.")
    # achievable points (D, R, q, slope); supporting lines (s, intercept) with R(D) >= s*D + b
    pts = [(d_max, 0.0, None, 0.0)]
    lines = [(0.0, 0.0)]
    total = 0
    s = -1.0 / target
    theta = None
    lo_s, hi_s = None, None  # slopes giving D < target (lo) and D > target (hi)

    def certificate():
        below = [pt for pt in pts if pt[0] <= target]
        above = [pt for pt in pts if pt[0] >= target]
        best_u, pair = math.inf, None
        for a in below:
            for b in above:
                if b[0] - a[0] <= 0:
                    u, w = a[1], 1.0
                else:
                    w = (b[0] - target) / (b[0] - a[0])
                    u = w * a[1] + (1 - w) * b[1]
                if u < best_u:
                    best_u, pair = u, (a, b, w)
        lower = max(sl * target + b for sl, b in lines)
        return best_u, lower, pair

    sub_tol = tol_n / 4
    converged = False
    for _ in range(max_solves):
        if max_total_iter is not None and total >= max_total_iter:
            break
        op = op_factory(s)
        theta0 = theta if theta is not None else xp.full(m_y, -math.log(m_y))
        n_max = max_iter if max_total_iter is None else min(max_iter, max_total_iter - total)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            e, n, _conv = _solve(xp, op, p, theta0, sub_tol, n_max, accelerate)
        total += n
        dk = op.mean_distortion(e.theta, e.log_z, p)
        rk = max(s * dk - e.L - e.kl, 0.0)
        pts.append((dk, rk, _law(xp, e.theta), s))
        lines.append((s, -e.L - e.lmax))
        theta = e.theta
        if dk > target:
            hi_s = s if hi_s is None else min(hi_s, s)  # hi_s: the most negative slope still above target
        else:
            lo_s = s if lo_s is None else max(lo_s, s)
        upper, lower, _pair = certificate()
        if upper - lower < tol_n:
            converged = True
            break
        # next slope: secant on (ln|s|, ln D) inside the bracket, bisection as a safeguard
        if lo_s is None or hi_s is None:
            # not bracketed yet: scale as if D ∝ 1/|s| (exact for Laplace/L1 and Gaussian/MSE), overshooting
            # by 0.5 % so that the next point lands on the other side, at most a factor 4 per step
            factor = min(4.0, max(0.25, dk / target * (1.005 if dk > target else 1 / 1.005)))
            s = s * factor
            if abs(s) > 1e15:
                break
            continue
        ua, ub = math.log(-hi_s), math.log(-lo_s)  # ua < ub
        da = [pt for pt in pts if pt[3] == hi_s][0][0]
        db = [pt for pt in pts if pt[3] == lo_s][0][0]
        lt = math.log(target)
        fa, fb = math.log(da) - lt, math.log(db) - lt
        u = ua + (ub - ua) * fa / (fa - fb) if fa != fb else 0.5 * (ua + ub)
        if not (ua + 0.02 * (ub - ua) < u < ub - 0.02 * (ub - ua)):
            u = 0.5 * (ua + ub)
        if ub - ua < 1e-14:
            break
        s = -math.exp(u)
    upper, lower, pair = certificate()
    if pair is None:  # every solved slope lies above the target: no achievable point brackets it
        raise UnreachableTargetError(
            f"{who}: after {total} iterations no slope reached D <= {target:.6g} (the search stopped at the "
            "iteration or slope budget); raise `max_iter`/`max_total_iter` or `max_solves`.")
    if not converged:
        warnings.warn(
            f"{who}: after {total} iterations the certificate at D = {target:.6g} is [{lower:.6g}, {upper:.6g}] "
            f"nats (gap {upper - lower:.3g} > tol {tol_n:.3g}); raise `max_iter` or loosen `tol`.",
            ConvergenceWarning, stacklevel=3)
    a, b, w = pair
    qa = a[2] if a[2] is not None else None
    qb = b[2] if b[2] is not None else None
    if qb is None:
        qb = xp.zeros(m_y)
        qb[j0] = 1.0
    q = qa * w + qb * (1 - w) if qa is not None else qb
    slope = (b[1] - a[1]) / (b[0] - a[0]) if b[0] > a[0] else a[3]
    return BAResult(rate=float(from_nats(upper, units)), rate_lower=float(from_nats(lower, units)),
                    distortion=float(target), slope=float(from_nats(slope, units)), iterations=int(total),
                    converged=bool(converged), q_xhat=q, units=units)


def rate_at_distortion(p_x, distortion_matrix, distortion, *, tol=1e-6, max_iter=100_000, max_solves=60,
                       accelerate=True, backend="auto", units="nats", max_total_iter=None) -> BAResult:
    """R at a target distortion D, by searching the slope (certified).

    Solves Blahut–Arimoto at a sequence of slopes (secant steps on
    (ln|s|, ln D), bisection as a safeguard, each warm-started) until the
    certificate *at D itself* is tight: the upper bound is the time-sharing
    chord between two computed points on either side of D, the lower bound
    the best supporting line R_L,k + s_k (D − D_k) (each is valid for all D).

    Parameters
    ----------
    p_x, distortion_matrix, backend, accelerate, units
        As in :func:`blahut_arimoto`.
    distortion : float
        Target mean distortion D > min achievable.  For D ≥ D_max =
        min_j Σ_i p_i d_ij the answer is R = 0 exactly (slope 0).
    tol : float
        Required gap ``rate − rate_lower`` at D (in ``units``).
    max_iter : int
        Maximum BA-map evaluations per slope.
    max_solves : int
        Maximum number of slopes tried.
    max_total_iter : int, optional
        Maximum BA-map evaluations over the whole slope search (default: no
        limit beyond ``max_iter × max_solves``).

    Returns
    -------
    BAResult
        ``distortion`` is the requested D; ``rate``/``rate_lower`` bracket R(D);
        ``slope`` is the chord slope at D; ``q_xhat`` the time-shared law.

    Raises
    ------
    UnreachableTargetError
        D at or below the smallest achievable distortion Σ_i p_i min_j d_ij.

    Examples
    --------
    >>> from ratedist.rd import rate_bernoulli
    >>> res = rate_at_distortion([0.8, 0.2], [[0, 1], [1, 0]], 0.1, tol=1e-8)
    >>> bool(res.rate_lower - 1e-8 <= rate_bernoulli(0.1, 0.2) <= res.rate + 1e-8), res.converged
    (True, True)
    """
    tol_n, max_iter, _ = _check_common(tol, max_iter, units)
    max_solves = check_int("max_solves", max_solves, minimum=1)
    target = check_positive("distortion", distortion)
    xp, p, d, kind = _dense_setup(p_x, distortion_matrix, backend)
    ph, dh = to_host(p), to_host(d)
    col = ph @ dh
    d_min = float(ph @ dh.min(axis=1))
    budget = None if max_total_iter is None else check_int("max_total_iter", max_total_iter, minimum=1)
    return _target_search(xp, p, lambda s: _make_dense_op(xp, d, s, kind), col, d_min, target, tol_n,
                          max_iter, max_solves, bool(accelerate), units, "rate_at_distortion", budget)


def rate_at_distortion_grid(points, p_x, distortion, *, distortion_type="absolute", tol=1e-6,
                            max_iter=100_000, max_solves=60, accelerate=True, method="auto",
                            units="nats", max_total_iter=None) -> BAResult:
    """R at a target distortion D on a uniform grid (fast path of :func:`rate_at_distortion`).

    Parameters are those of :func:`blahut_arimoto_grid` and
    :func:`rate_at_distortion`.

    Examples
    --------
    >>> from ratedist.rd import discretize_laplace, rate_laplace
    >>> g = discretize_laplace(1.0, 0.05, 14.0)
    >>> res = rate_at_distortion_grid(g.points, g.pmf, 0.5, tol=1e-4)
    >>> round(res.rate, 2), round(rate_laplace(0.5), 2)
    (0.69, 0.69)
    """
    tol_n, max_iter, _ = _check_common(tol, max_iter, units)
    max_solves = check_int("max_solves", max_solves, minimum=1)
    target = check_positive("distortion", distortion)
    budget = None if max_total_iter is None else check_int("max_total_iter", max_total_iter, minimum=1)
    xp, p, x, step = _grid_setup(points, p_x, distortion_type, method)
    m = x.shape[0]
    ph = to_host(p)
    k = np.arange(m)
    rho = k * step if distortion_type == "absolute" else (k * step) ** 2
    # column means Σ_i p_i ρ(x_i − x_j): a convolution (once, FFT on the host)
    import scipy.signal

    full = scipy.signal.fftconvolve(ph, np.concatenate([rho[::-1], rho[1:]]), mode="full")
    col = np.maximum(full[m - 1:2 * m - 1], 0.0)
    return _target_search(xp, p, lambda s: _Toeplitz(xp, m, step, s, distortion_type, method), col, 0.0,
                          target, tol_n, max_iter, max_solves, bool(accelerate), units,
                          "rate_at_distortion_grid", budget)

