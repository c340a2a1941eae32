"""The rate–distortion bound of a real model: every tensor's normalized weights as an i.i.d. source.

Setting
-------
Every float tensor ``t`` of a state_dict is flattened and normalized, ``u_t = w_t / ‖w_t‖``
(``normalize="l2"``: Frobenius norm; ``"l1"``: entrywise L1 norm; ``None``: ``u_t = w_t``).
The distortion is the mean over all ``n = Σ_t n_t`` weights,
``d(u, û) = (1/n) Σ_t Σ_i ρ(u_ti − û_ti)`` with ρ = |·| (``metric="l1"``) or (·)² (``"mse"``).
A coder that treats each tensor's normalized weights as i.i.d. draws from that tensor's own
empirical law ``P_t`` cannot beat

    R(D) = min { Σ_t w_t R_t(D_t) : Σ_t w_t D_t ≤ D },   w_t = n_t / n,

per parameter, ``R_t`` the rate–distortion function of ``P_t``.  At a slope ``s < 0`` each
tensor's point of slope ``s`` (Blahut–Arimoto at that slope) minimizes ``R_t − s·D_t``; a common
slope is the Lagrange condition of the allocation, so ``(Σ w_t D_t(s), Σ w_t R_t(s))`` lies on
``R(D)``.

Certificates: true bounds on the unquantized empirical law
----------------------------------------------------------
Each slope ``s_k`` gives an *achievable point* ``(D_k, R_k)`` (a test channel whose mutual
information and distortion are evaluated on the empirical law itself: an upper bound on
``R(D_k)``) and a *supporting curve* ``R(D) ≥ b_k + s_k·h_k(D)`` valid for every ``D``
(``h_k(D) = D`` for L1, ``(√D + A_k)²`` for MSE).  ``rate_lower[k]`` is that curve at ``D_k``.

``metric="l1"`` — exact, no grid slack.  Take the sorted distinct values ``x_i`` (probabilities
``p_i``) of one tensor.  Blahut's dual bound (Blahut 1972, Thm 8) reads, for any positive
``Z_i``, ``R(D) ≥ s·D − Σ p_i ln Z_i − ln sup_y c(y)`` with ``c(y) = Σ_i (p_i/Z_i)·e^{s|x_i − y|}``.
Between two consecutive atoms ``c(y) = α e^{s y} + β e^{−s y}`` is convex, and beyond the
extreme atoms it decreases, so the supremum over the real line is the maximum over the atoms.
Hence reproductions on the atoms lose nothing, and Blahut–Arimoto with source = reproduction
alphabet = the atoms solves the continuous-reproduction problem with an exact certificate.  The
kernel ``e^{s|x_i − x_j|}`` factors along the sorted line (``Π`` of ``r_k = e^{s(x_k − x_{k−1})}``),
so each step is two first-order recursions, O(m) (:mod:`ratedist.kernels._rd_model_cpu`).

Speed (L1): atoms in the same cell of width ``κ/|s|`` (``κ = grid_fraction``, default 1 %;
``1/|s|`` is the L1 distortion at slope ``s`` at high resolution) are merged into their centroid
and Blahut–Arimoto runs on the merged points (to ``0.85·tol``).  The law found is then evaluated
*exactly on the original atoms*: achievable point of the channel ``Q(y_j | x) ∝ q_j e^{s|x − y_j|}``
and dual bound with the maximum over the original atoms.  The lower curve is the better of that
and the data-processing line ``R(D) ≥ R'_L + s·(D + e − D')`` (``(D', R'_L)`` the merged problem's
certificate, ``e`` the mean distance from an atom to its centroid: ``E|X' − Y| ≤ E|X − Y| + e``).
Merging changes which law is certified, never the validity.  Where the exact gap still exceeds
``tol``, the unmerged problem is solved from the merged law spread over each cell's atoms (a
polish, typically 10–100 steps).  Each slope starts from the source law itself (warm starts from
the neighbouring slope measured slower: the support has to grow or shrink by births/deaths).

``metric="mse"`` — uniform grid with a stated slack.  The tensor is rounded to a grid ``iΔ``
spanning its range (``X_Δ``; measured ``e₂ = E(X − X_Δ)² ≤ Δ²/4``) and Blahut–Arimoto runs on the
grid (FFT/banded Toeplitz path of :func:`ratedist.rd.blahut_arimoto_grid`).  With ``(D_k, R_k,
R_L,k)`` the grid solution:

* achievable: the channel ``X → X_Δ → Y`` has ``I(X;Y) ≤ I(X_Δ;Y) = R_k`` and, by Minkowski,
  ``E(X − Y)² ≤ (√D_k + √e₂)²``;
* lower: for any channel ``X → Y`` with ``E(X − Y)² ≤ D``, rounding ``Y`` to the grid (clamped to
  its range) gives ``|X_Δ − Y_Δ| ≤ |X_Δ − X| + |X − Y| + Δ/2`` pointwise, so
  ``E(X_Δ − Y_Δ)² ≤ (√D + A)²`` with ``A = √e₂ + Δ/2``, while ``I(X_Δ; Y_Δ) ≤ I(X; Y)`` (data
  processing).  Hence ``R(D) ≥ R_grid((√D + A)²) ≥ R_L,k + s·((√D + A)² − D_k)``.

Grid rule (MSE): ``Δ = (√(1 + f) − 1)·√D̂`` with ``f = grid_fraction`` (default 1 %) and
``D̂ = 1/(2|s|)`` (the MSE distortion at slope ``s`` at high resolution), so that
``(√D̂ + A)² ≤ (1 + f)·D̂``: the lower curve is shifted by at most ``f`` of the distortion, which
costs about ``|s|·f·D̂ = f/2`` nats on the certified gap (so the MSE gap is ≈ tol + f/2 nats).
Grids are capped at ``_MAX_GRID`` points (a coarser step then widens the reported certificate).
MSE is much slower than L1 (FFT convolutions on fine grids; minutes for 50k weights).
Across tensors the shifts combine by Cauchy–Schwarz: ``Σ w_t (√D_t + A_t)² ≤ (√D + A)²`` with
``A² = Σ w_t A_t²``.

Default slopes: 16 slopes, geometrically spaced, spanning the slopes at which a per-tensor
Laplace fit predicts 0.05 and 8 bits per parameter (L1: ``R_t = ln(|s|/λ_t)`` nats with
``λ_t = 1/mean|u_t|``; MSE: ``R_t = ½ ln(2|s|·σ_t²)`` with ``σ_t²`` the tensor's variance), each
clipped at 0.  ``slopes=`` overrides.

Secondary references (labelled, not bounds on the empirical law): the Laplacian-fit line
``R(D) = log2(1/(λD))`` with ``λ = 1/mean|u|`` pooled over all weights (:meth:`ModelRD.laplace_reference`,
the older ``rd_bpp``; for MSE the Shannon lower bound of that Laplace law), and the pooled empirical
curve, all normalized weights in one law (:func:`pooled_rate_distortion`).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from .._units import check_units, from_nats, to_nats
from .._validation import check_choice, check_finite_array, check_int, check_positive, check_weights
from ..errors import ConvergenceWarning, InvalidArgumentError, InvalidShapeError
from .blahut_arimoto import _FLOOR, _Eval, _evaluate, _solve, _Toeplitz

__all__ = ["ModelRD", "model_rate_distortion", "model_bound_at", "pooled_rate_distortion"]

METRICS = ("l1", "mse")
NORMALIZATIONS = ("l2", "l1", None)

_BA_SHARE = 0.85        # the merged (or grid) problem is solved to this fraction of tol
_DEFAULT_FRACTION = 0.01  # grid_fraction default for both metrics
_W_RESCALE = 1e280       # p/z above this is rescaled before the second scan
_MAX_GRID = (1 << 16) + 1  # MSE grid cap (points); a coarser step widens the certificate
_RATE_SPAN_BITS = (0.05, 8.0)  # default slopes span these predicted rates per parameter


# --------------------------------------------------------------------------------------------
# result


@dataclass(frozen=True, eq=False)
class ModelRD:
    """Certified rate–distortion curve of a model (one point per slope, flattest slope first).

    Attributes
    ----------
    slopes : ndarray, shape (k,)
        Slopes s < 0, in ``units`` per unit distortion.
    distortion : ndarray, shape (k,)
        Achievable mean distortion ``D_k`` per weight (of the normalized weights).
    rate : ndarray, shape (k,)
        Achievable rate at ``distortion`` (an upper bound on R(D_k)), in ``units`` per parameter.
    rate_lower : ndarray, shape (k,)
        Certified lower bound on R(D_k), in ``units`` per parameter.
    intercept, shift : ndarray, shape (k,)
        Supporting curves: ``R(D) ≥ intercept_k + slope_k·h_k(D)`` for every D, with
        ``h_k(D) = D`` (L1; ``shift = 0``) or ``(√D + shift_k)²`` (MSE); ``intercept`` in ``units``.
    tensor_rate, tensor_distortion : ndarray, shape (n_tensors, k)
        Each tensor's achievable point at each slope (rate in ``units`` per weight of that tensor,
        distortion per weight of that tensor).
    tensor_names : tuple of str
    tensor_sizes : tuple of int
        Weights per tensor (the rates are weighted by these).
    zero_rate_distortion : float
        ``D_max = Σ_t w_t D_max,t``: the distortion of the best constant reproduction per
        tensor (median for L1, mean for MSE); R(D) = 0 for D ≥ D_max.
    laplace_lam : float
        λ = 1/mean|u| of all normalized weights pooled (for :meth:`laplace_reference`).
    support : ndarray of int, shape (n_tensors, k)
        Points Blahut–Arimoto ran on (merged atoms for L1, grid points for MSE).
    iterations : ndarray of int, shape (k,)
        BA-map evaluations per slope, all tensors together.
    converged : ndarray of bool, shape (k,)
        Whether every tensor reached its stopping rule at that slope.
    metric, normalize, units : str (normalize may be None)
    tol : float
        Requested certified gap ``rate − rate_lower`` per slope, in ``units`` per parameter.
    grid_fraction : float
        L1: merge-cell width as a fraction of 1/|s|; MSE: bound on the grid shift of the lower
        curve as a fraction of the distortion (module docstring).
    what : str
        What the curve bounds.
    seconds : float
        Wall time of the computation.
    """

    slopes: np.ndarray
    distortion: np.ndarray
    rate: np.ndarray
    rate_lower: np.ndarray
    intercept: np.ndarray
    shift: np.ndarray
    tensor_rate: np.ndarray
    tensor_distortion: np.ndarray
    tensor_names: tuple
    tensor_sizes: tuple
    zero_rate_distortion: float
    laplace_lam: float
    support: np.ndarray
    iterations: np.ndarray
    converged: np.ndarray
    metric: str
    normalize: str | None
    units: str
    tol: float
    grid_fraction: float
    what: str
    seconds: float = field(default=0.0)

    @property
    def gap(self) -> np.ndarray:
        """Certified gap ``rate − rate_lower`` per slope (``units`` per parameter)."""
        return self.rate - self.rate_lower

    @property
    def n_params(self) -> int:
        """Total number of weights n."""
        return int(sum(self.tensor_sizes))

    def laplace_reference(self, distortion):
        """Secondary reference, not a bound: the Laplacian-fit rate at ``distortion``.

        L1: ``max(0, log(1/(λD)))`` (the older ``rd_bpp``); MSE: the Shannon lower bound of that
        Laplace law, ``max(0, log(2e/λ) − ½ log(2πeD))``; λ = :attr:`laplace_lam`.  In ``units``
        per parameter.
        """
        d = _check_distortions(distortion)
        with np.errstate(divide="ignore"):
            if not math.isfinite(self.laplace_lam):
                r = np.zeros_like(d)
            elif self.metric == "l1":
                r = np.maximum(0.0, -np.log(self.laplace_lam * d))
            else:
                r = np.maximum(0.0, math.log(2 * math.e / self.laplace_lam) - 0.5 * np.log(2 * math.pi * math.e * d))
        r = from_nats(r, self.units)
        return float(r) if np.ndim(distortion) == 0 else r

    def to_dict(self) -> dict:
        """Plain-Python fields (lists and scalars) for JSON."""
        out = {}
        for key in ("slopes", "distortion", "rate", "rate_lower", "intercept", "shift", "iterations", "converged"):
            out[key] = np.asarray(getattr(self, key)).tolist()
        out["gap"] = self.gap.tolist()
        out["tensors"] = [
            {"name": name, "size": int(size), "rate": self.tensor_rate[i].tolist(),
             "distortion": self.tensor_distortion[i].tolist(), "support": self.support[i].tolist()}
            for i, (name, size) in enumerate(zip(self.tensor_names, self.tensor_sizes))]
        out.update({"zero_rate_distortion": self.zero_rate_distortion, "laplace_lam": self.laplace_lam,
                    "metric": self.metric, "normalize": self.normalize, "units": self.units, "tol": self.tol,
                    "grid_fraction": self.grid_fraction, "what": self.what, "seconds": self.seconds,
                    "n_params": self.n_params})
        return out


# --------------------------------------------------------------------------------------------
# per-tensor data


@dataclass
class _Tensor:
    name: str
    n: int
    x: np.ndarray          # sorted distinct values of u_t
    p: np.ndarray          # their probabilities
    d_max: float           # zero-rate distortion (metric-dependent)
    lam: float             # Laplace fit 1/mean|u| (inf when all zero)
    var: float             # variance of u_t
    mean_abs: float = 0.0  # mean |u_t|
    m: int = 0             # number of distinct values (len(x)); kept when x is dropped

    def summary(self) -> _Tensor:
        """The scalars the model-level combination needs, without the (large) law: what an engine ships back."""
        return _Tensor(name=self.name, n=self.n, x=None, p=None, d_max=self.d_max, lam=self.lam, var=self.var,
                       mean_abs=self.mean_abs, m=self.m)


def _dot(p, v) -> float:
    """Σ p_i v_i over p_i > 0 in a fixed order (deterministic for any BLAS or thread count)."""
    from ..kernels._rd_model_cpu import wsum

    return float(wsum(np.ascontiguousarray(p, dtype=np.float64), np.ascontiguousarray(v, dtype=np.float64)))


def _norm(x: np.ndarray, normalize) -> float:
    from ..kernels._flatten_cpu import chunked_norm

    s, _low = chunked_norm(np.ascontiguousarray(x), normalize == "l2")
    return float(math.sqrt(s)) if normalize == "l2" else float(s)


def _prepare_one(name: str, arr: np.ndarray, normalize, metric) -> _Tensor:
    """The empirical law and summary scalars of one float tensor (the per-tensor work an engine maps)."""
    u = np.ascontiguousarray(arr, dtype=np.float64).ravel()
    if normalize is not None:
        nrm = _norm(u, normalize)
        u = u / nrm if nrm > 0 else np.zeros_like(u)
    x, counts = np.unique(u, return_counts=True)
    p = counts / float(u.size)
    mean_abs = float(_dot(p, np.abs(x)))
    mean = float(_dot(p, x))
    var = float(_dot(p, (x - mean) ** 2))
    if metric == "l1":
        med = x[min(int(np.searchsorted(np.cumsum(p), 0.5)), x.size - 1)]
        d_max = float(_dot(p, np.abs(x - med)))
    else:
        d_max = var
    return _Tensor(name=name, n=int(u.size), x=x, p=p, d_max=d_max,
                   lam=1.0 / mean_abs if mean_abs > 0 else math.inf, var=var, mean_abs=mean_abs, m=int(x.size))


def _float_tensors(weights) -> tuple[list[str], dict | None]:
    """Names of the tensors the bound is computed on, after the checks of ``check_weights``, and the
    checked arrays.  A :class:`~ratedist.io.WeightsSource` is checked one tensor at a time and nothing
    is kept (the arrays are then ``None``: read them again by name)."""
    from ..io import WeightsSource

    if not isinstance(weights, WeightsSource):
        arrays = check_weights("weights", weights, allow_empty_tensors=False)
        names = [k for k, a in arrays.items() if a.dtype.kind == "f"]
        dtypes = {str(a.dtype) for a in arrays.values()}
    else:
        if len(weights) == 0:
            raise InvalidArgumentError("`weights` is an empty mapping; pass at least one tensor.")
        arrays, names, dtypes = None, [], set()
        for k in weights:
            dt = check_weights("weights", {k: weights[k]}, allow_empty_tensors=False)[k].dtype
            dtypes.add(str(dt))
            if dt.kind == "f":
                names.append(k)
    if not names:
        raise InvalidArgumentError(
            "`weights` has no floating-point tensor; the bound is defined on float weights "
            f"(got dtypes {sorted(dtypes)}).")
    return names, arrays


def _prepare(weights, normalize, metric) -> list[_Tensor]:
    names, arrays = _float_tensors(weights)
    get = weights.__getitem__ if arrays is None else arrays.__getitem__
    return [_prepare_one(k, get(k), normalize, metric) for k in names]


def _default_slopes(tensors, metric, n_slopes) -> np.ndarray:
    """Slopes (nats per unit distortion, flattest first) spanning the predicted 0.05 … 8 bits."""
    w = np.array([t.n for t in tensors], dtype=np.float64)
    w /= w.sum()
    if metric == "l1":
        scale = np.array([t.lam for t in tensors])           # R_t = ln(a / λ_t)
    else:
        scale = np.array([1.0 / (2.0 * t.var) if t.var > 0 else math.inf for t in tensors])  # ½ ln(a / scale)
    half = 1.0 if metric == "l1" else 0.5
    ok = np.isfinite(scale)
    if not ok.any():
        return -np.geomspace(1.0, 256.0, n_slopes)

    def predicted(log_a):
        return float(np.sum(w[ok] * half * np.maximum(0.0, log_a - np.log(scale[ok]))))

    def solve(target_bits):
        target = target_bits * math.log(2)
        lo = float(np.log(scale[ok]).min())
        hi = float(np.log(scale[ok]).max()) + target / (half * w[ok].sum()) + 1.0
        for _ in range(200):
            mid = 0.5 * (lo + hi)
            if predicted(mid) < target:
                lo = mid
            else:
                hi = mid
        return 0.5 * (lo + hi)

    a0, a1 = solve(_RATE_SPAN_BITS[0]), solve(_RATE_SPAN_BITS[1])
    if n_slopes == 1:
        return -np.array([math.exp(a1)])
    return -np.exp(np.linspace(a0, a1, n_slopes))


# --------------------------------------------------------------------------------------------
# L1: Blahut–Arimoto on sorted points


class _PointsL1:
    """BA operator for ρ = |·| on sorted points (source = reproduction alphabet), O(m) per step."""

    def __init__(self, y, s):
        from ..kernels import _rd_model_cpu

        self._k = _rd_model_cpu
        m = y.shape[0]
        self.m = m
        gap = np.empty(m)
        gap[0] = 0.0
        np.subtract(y[1:], y[:-1], out=gap[1:])
        self.gap = gap
        self.logr = s * gap
        self.logr[0] = -np.inf
        self.r = np.exp(self.logr)
        self._qt, self._z, self._w, self._c, self._work = (np.empty(m) for _ in range(5))

    def _log_conv(self, logv):
        out = np.empty(self.m)
        self._k.sym_log_scan(np.ascontiguousarray(logv, dtype=np.float64), self.logr, out,
                             np.empty(self.m), np.empty(self.m))
        return out

    def log_z(self, theta):
        return self._log_conv(theta)

    def log_c(self, u):
        return self._log_conv(u)

    def fused_eval(self, theta, p):
        k, qt, z, w = self._k, self._qt, self._z, self._w
        tmax = float(theta.max())
        np.subtract(theta, tmax, out=qt)
        np.exp(qt, out=qt)
        zmin, wmax = k.sym_scan_w(qt, self.r, p, z, w, self._work)
        if not (zmin > 0.0 and 0.0 < wmax < math.inf):
            return None
        if wmax > _W_RESCALE:  # keep the sums of the second scan far from overflow
            w *= 1.0 / wmax
            scale = wmax
        else:
            scale = 1.0
        log_z = np.log(z)
        L = float(_dot(p, log_z))
        k.sym_scan(w, self.r, self._c, self._work)
        log_c = np.log(self._c)
        nxt = np.empty(self.m)
        lmax, kl = k.ba_next(theta, qt, self._c, log_c, math.log(scale) - tmax, scale, _FLOOR, nxt)
        log_z += tmax
        return _Eval(theta, log_z, log_c, L + tmax, kl, lmax, lmax - kl, nxt)

    def mean_distortion(self, theta, log_z, p):
        qt = np.exp(theta - float(theta.max()))
        m = self.m
        oz, od = np.empty(m), np.empty(m)
        self._k.sym_scan_d(qt, self.r, self.gap, oz, od, np.empty(m), np.empty(m))
        return float(_dot(p, od / oz))


def _merge(x, p, width):
    """Atoms in the same cell ``floor(x / width)`` merged into their centroid.

    Returns ``(y, mass, gid, e)`` (points, masses, group of each atom, mean |x − y_gid|), or None
    when no cell holds two atoms.
    """
    cell = np.floor(x / width)
    new = np.empty(x.shape[0], dtype=bool)
    new[0] = True
    np.not_equal(cell[1:], cell[:-1], out=new[1:])
    if new.all():
        return None
    gid = np.cumsum(new) - 1
    mass = np.bincount(gid, weights=p)
    y = np.bincount(gid, weights=p * x) / mass
    first = np.flatnonzero(new)
    last = np.r_[first[1:] - 1, x.shape[0] - 1]
    y = np.clip(y, x[first], x[last])  # rounding cannot leave the cell: points stay increasing
    e = float(_dot(p, np.abs(x - y[gid])))
    return y, mass, gid, e


def _exact_l1(x, p, y, theta, s):
    """Evaluate the law q ∝ e^θ on the points y exactly on the atoms (x, p) at slope s (nats).

    Returns ``(D, R, b)``: the achievable point of the channel Q(y_j|x) ∝ q_j e^{s|x − y_j|} and the
    intercept of Blahut's dual bound ``R(D') ≥ s·D' + b`` (sup over the line = max over the atoms).
    """
    from ..kernels import _rd_model_cpu as k

    n, m = x.shape[0], y.shape[0]
    qt = np.exp(theta - float(theta.max()))
    log_sum_q = math.log(float(qt.sum()))
    zt, dt = np.empty(n), np.empty(n)
    k.cross_scan(y, qt, x, s, zt, dt, True)
    d = float(_dot(p, dt / zt))
    log_z = np.log(zt) - log_sum_q
    L = float(_dot(p, log_z))
    wt = p / zt
    wmax = float(wt.max())
    wt /= wmax
    r = np.empty(n)
    r[0] = 0.0
    np.exp(s * np.diff(x), out=r[1:])
    cx = np.empty(n)
    k.sym_scan(wt, r, cx, np.empty(n))
    cy = np.empty(m)
    k.cross_scan(x, wt, y, s, cy, cy, False)
    shift = log_sum_q + math.log(wmax)
    with np.errstate(divide="ignore"):
        lcy = np.log(cy) + shift
    lmax = max(math.log(float(cx.max())) + shift, float(lcy.max()))
    out = qt * wmax * cy  # output law q_j c_j
    kl = _dot(out, lcy)   # terms with q_j c_j = 0 skipped
    rate = max(s * d - L - kl, 0.0)
    return d, rate, -L - lmax


@dataclass
class _Point:
    d: float         # achievable distortion (per weight of the tensor)
    r: float         # achievable rate (nats per weight)
    b: float         # intercept of the supporting curve (nats)
    a: float         # MSE shift A_t (0 for L1)
    support: int
    iterations: int
    converged: bool


def _l1_point(t: _Tensor, s, tol_n, kappa, max_iter) -> _Point:
    x, p = t.x, t.p
    if x.shape[0] == 1:
        return _Point(0.0, 0.0, 0.0, 0.0, 1, 0, True)
    merged = _merge(x, p, kappa / abs(s))
    if merged is not None:
        y, mass, gid, e = merged
        op = _PointsL1(y, s)
        with np.errstate(divide="ignore"):
            theta0 = np.log(mass)
        ev, n_ev, conv = _solve(np, op, mass, theta0, _BA_SHARE * tol_n, max_iter, True, collapse=False)
        dm = op.mean_distortion(ev.theta, ev.log_z, mass)
        bm = -ev.L - ev.lmax                      # R'(D) >= s D + bm on the merged source
        d, rate, bx = _exact_l1(x, p, y, ev.theta, s)
        b = max(bx, bm + s * e)                   # exact dual bound, or data processing + triangle
        if rate - (b + s * d) <= tol_n or not conv:
            return _Point(d, rate, b, 0.0, y.shape[0], n_ev, conv)
        # polish: the unmerged problem, from the merged law spread over each cell's atoms
        q = np.exp(ev.theta - float(ev.theta.max()))
        with np.errstate(divide="ignore"):
            theta0 = np.log(q[gid] * p / mass[gid])
        support = x.shape[0]
    else:
        with np.errstate(divide="ignore"):
            theta0 = np.log(p)
        n_ev, support = 0, x.shape[0]
    op = _PointsL1(x, s)
    ev, n_x, conv = _solve(np, op, p, theta0, tol_n, max_iter, True, collapse=False)
    d = op.mean_distortion(ev.theta, ev.log_z, p)
    rate = max(s * d - ev.L - ev.kl, 0.0)
    return _Point(d, rate, -ev.L - ev.lmax, 0.0, support, n_ev + n_x, conv)


# --------------------------------------------------------------------------------------------
# MSE: uniform grid (FFT / banded Toeplitz path of blahut_arimoto.py)


class _GridSquared(_Toeplitz):
    """Squared-error Toeplitz operator for the iterations: FFT outputs repaired only where they matter.

    The exact operator (:class:`~ratedist.rd.blahut_arimoto._Toeplitz`) recomputes every FFT output
    below ``1e-7`` of the maximum; on an empirical law most grid points carry no mass and that
    repair dominates.  Here ``ln Z`` is repaired only at points with ``p > 0`` (so ``L = Σ p ln Z`` is
    exact) and an unreliable ``ln c`` (below ``ln(1e-7·max c)``) is treated as 0, which kills q there
    as the exact iteration would within a few steps.  This only steers the iteration: the returned
    point is re-evaluated with the exact operator, and the certificate is computed there.
    """

    def __init__(self, m, step, slope, p):
        super().__init__(np, m, step, slope, "squared", "auto")
        self._p_pos = p > 0

    def _fast(self, logv, repair):
        vmax = float(np.max(logv))
        z = self._irfft(self._rfft(np.exp(logv - vmax), self.n) * self.B, self.n)[: self.m]
        zmax = float(np.max(z))
        bad = z <= _FFT_GUARD_FAST * zmax
        with np.errstate(divide="ignore", invalid="ignore"):
            out = np.log(np.where(bad, 1.0, z)) + vmax
        out[bad] = math.log(zmax) + vmax - 2.0 * _FLOOR  # unreliable tail: treated as 0
        if repair:
            rows = np.flatnonzero(bad & self._p_pos)
            if rows.size:
                out[rows] = self._direct_rows(logv, self.logker, rows)
        return out

    def log_z(self, theta):
        return super().log_z(theta) if self.method != "fft" else self._fast(theta, True)

    def log_c(self, u):
        return super().log_c(u) if self.method != "fft" else self._fast(u, False)


_FFT_GUARD_FAST = 1e-7


def _mse_point(t: _Tensor, s, tol_n, frac, max_iter) -> _Point:
    x, p = t.x, t.p
    if x.shape[0] == 1:
        return _Point(0.0, 0.0, 0.0, 0.0, 1, 0, True)
    d_hat = 1.0 / (2.0 * abs(s))
    step = (math.sqrt(1.0 + frac) - 1.0) * math.sqrt(d_hat)
    lo, hi = math.floor(x[0] / step), math.ceil(x[-1] / step)
    if hi - lo + 1 > _MAX_GRID:
        step = (x[-1] - x[0]) / (_MAX_GRID - 3)
        lo, hi = math.floor(x[0] / step), math.ceil(x[-1] / step)
    m = hi - lo + 1
    idx = np.clip(np.rint(x / step).astype(np.int64) - lo, 0, m - 1)
    pmf = np.bincount(idx, weights=p, minlength=m)
    pmf /= pmf.sum()
    e2 = float(_dot(p, (x - (idx + lo) * step) ** 2))
    fast = _GridSquared(m, step, s, pmf)
    # start: the source law blurred by the kernel (mass near the data, none far from it), half-mixed
    # with the source law itself
    with np.errstate(divide="ignore"):
        blur = np.exp(fast.log_z(np.log(pmf)))
    q0 = 0.5 * pmf + 0.5 * blur / blur.sum()
    with np.errstate(divide="ignore"):
        theta0 = np.log(q0)
    ev, n_ev, conv = _solve(np, fast, pmf, theta0, _BA_SHARE * tol_n, max_iter, True, collapse=False)
    exact = _Toeplitz(np, m, step, s, "squared", "auto")
    with np.errstate(divide="ignore"):
        ev = _evaluate(np, exact, np.log(pmf), pmf, ev.theta)
    dk = exact.mean_distortion(ev.theta, ev.log_z, pmf)
    rk = max(s * dk - ev.L - ev.kl, 0.0)
    rl = s * dk - ev.L - ev.lmax
    d = (math.sqrt(dk) + math.sqrt(e2)) ** 2
    conv = conv and rk - rl <= tol_n
    return _Point(d, rk, rl - s * dk, math.sqrt(e2) + step / 2, m, n_ev + 1, conv)


# --------------------------------------------------------------------------------------------
# validation helpers


def _check_distortions(distortion):
    try:
        d = np.asarray(distortion, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`distortion` must be a real number or array, got {distortion!r}.") from None
    check_finite_array("distortion", np.atleast_1d(d))
    if np.any(d < 0):
        raise InvalidArgumentError(f"`distortion` must be >= 0, got min {float(d.min())!r}.")
    return d


def _check_slopes(slopes, units) -> np.ndarray:
    try:
        arr = np.asarray(slopes, dtype=np.float64)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`slopes` must be an array of negative numbers, got {slopes!r}.") from None
    arr = check_finite_array("slopes", np.atleast_1d(arr))
    if arr.ndim != 1:
        raise InvalidShapeError(f"`slopes` must be 1-dimensional, got shape {arr.shape}.")
    if np.any(arr >= 0):
        raise InvalidArgumentError(
            f"`slopes` must all be < 0 ({units} per unit distortion), got max {float(arr.max())!r}; "
            "R(D) is traced by slopes s in (-inf, 0).")
    arr = np.unique(to_nats(arr, units))[::-1]  # flattest (closest to 0) first
    return arr


# --------------------------------------------------------------------------------------------
# public API


def model_rate_distortion(weights: Mapping, *, metric: str = "l1", normalize: str | None = "l2", slopes=None,
                          n_slopes: int = 16, tol: float = 1e-3, units: str = "bits", grid_fraction=None,
                          max_iter: int = 20_000, workers: int | None = None) -> ModelRD:
    """Certified R(D) of a model whose tensors are coded as i.i.d. draws from their empirical laws.

    Parameters
    ----------
    weights : Mapping[str, array_like]
        A state_dict (NumPy, torch or CuPy arrays).  Every floating-point tensor is a source;
        other dtypes are skipped.  Empty tensors and NaN/inf raise.
    metric : {"l1", "mse"}
        ρ = |·| or (·)² per weight.
    normalize : {"l2", "l1", None}
        Each tensor divided by its Frobenius norm, its entrywise L1 norm, or left as is.  An
        all-zero tensor stays zero.
    slopes : array_like of float, optional
        Slopes s < 0 in ``units`` per unit distortion (default: ``n_slopes`` slopes from the rule
        in the module docstring, spanning about 0.05 … 8 bits per parameter).
    n_slopes : int
        Number of default slopes.
    tol : float
        Certified gap ``rate − rate_lower`` to reach at every slope, in ``units`` per parameter
        (each tensor is certified to ``tol``; for MSE the grid shift comes on top, see
        ``grid_fraction``).
    units : {"bits", "nats"}
    grid_fraction : float, optional
        L1: width of the cells whose atoms are merged for speed, as a fraction of 1/|s| (the
        unmerged problem is polished where the exact certificate needs it); MSE: the grid's shift of the lower
        curve as a fraction of the distortion.  Default 0.01.
    max_iter : int
        Maximum BA-map evaluations per tensor and slope; reaching it warns
        (:class:`~ratedist.errors.ConvergenceWarning`) and keeps the (valid, wider) certificate.
    workers : int, optional
        Threads over (tensor, slope) pairs (default ``numba.get_num_threads()``); the result does
        not depend on it.

    Returns
    -------
    ModelRD

    Raises
    ------
    InvalidArgumentError
        Bad ``weights`` (not a mapping, empty, empty tensor, NaN/inf, no float tensor), unknown
        ``metric``/``normalize``/``units``, ``slopes`` not all finite and < 0, bad ``tol``,
        ``n_slopes``, ``grid_fraction``, ``max_iter`` or ``workers``.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> curve = model_rate_distortion({"w": rng.laplace(size=2000)}, n_slopes=3)
    >>> bool(np.all(curve.rate_lower <= curve.rate)), bool(np.all(curve.gap <= 1e-3))
    (True, True)
    """
    return _model_rd(lambda: _prepare(weights, normalize, metric), None, metric=metric, normalize=normalize,
                     slopes=slopes, n_slopes=n_slopes, tol=tol, units=units, grid_fraction=grid_fraction,
                     max_iter=max_iter, workers=workers)


def _model_rd(prepare, points, *, metric, normalize, slopes, n_slopes, tol, units, grid_fraction, max_iter,
              workers) -> ModelRD:
    """:func:`model_rate_distortion` with the per-tensor work supplied: ``prepare()`` gives the tensors
    (:class:`_Tensor`, possibly :meth:`_Tensor.summary` only) and ``points(tasks, slopes, tol_n, frac,
    max_iter)`` the :class:`_Point` of every ``(tensor index, slope index)`` task (``None``: threads here)."""
    t0 = time.perf_counter()
    check_choice("metric", metric, METRICS)
    check_choice("normalize", normalize, NORMALIZATIONS)
    check_units(units)
    tol_n = to_nats(check_positive("tol", tol), units)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    frac = _DEFAULT_FRACTION if grid_fraction is None else check_positive("grid_fraction", grid_fraction)
    if frac >= 1:
        raise InvalidArgumentError(
            f"`grid_fraction` must be < 1 (a fraction of the distortion), got {grid_fraction!r}.")
    if workers is None:
        import numba

        workers = int(numba.get_num_threads())
    workers = check_int("workers", workers, minimum=1)
    if slopes is None:
        n_slopes = check_int("n_slopes", n_slopes, minimum=1, maximum=10_000)
    else:
        s_n = _check_slopes(slopes, units)
    tensors = prepare()
    if slopes is None:
        s_n = _default_slopes(tensors, metric, n_slopes)
    return _curve(tensors, s_n, metric, normalize, units, tol_n, frac, max_iter, workers, t0,
                  "any coder that treats each tensor's normalized weights as i.i.d. draws from its "
                  "empirical law (tensors coded separately, distortion averaged over all weights)", points=points)


def _point_of(metric):
    return _l1_point if metric == "l1" else _mse_point


def _curve(tensors, s_n, metric, normalize, units, tol_n, frac, max_iter, workers, t0, what, points=None) -> ModelRD:
    n_t, n_s = len(tensors), s_n.shape[0]
    point = _point_of(metric)
    tasks = sorted(((ti, si) for ti in range(n_t) for si in range(n_s)),
                   key=lambda ts: (-tensors[ts[0]].m * (1 + ts[1]), ts))

    def run(ts):
        ti, si = ts
        return point(tensors[ti], float(s_n[si]), tol_n, frac, max_iter)

    if points is not None:
        found = points(tasks, s_n, tol_n, frac, max_iter)
    elif workers == 1 or len(tasks) == 1:
        found = [run(ts) for ts in tasks]
    else:
        with ThreadPoolExecutor(max_workers=min(workers, len(tasks))) as pool:
            found = list(pool.map(run, tasks))
    pts = [[None] * n_s for _ in range(n_t)]
    for (ti, si), pt in zip(tasks, found):
        pts[ti][si] = pt
    w = np.array([t.n for t in tensors], dtype=np.float64)
    w /= w.sum()
    td = np.array([[pts[ti][si].d for si in range(n_s)] for ti in range(n_t)])
    tr = np.array([[pts[ti][si].r for si in range(n_s)] for ti in range(n_t)])
    tb = np.array([[pts[ti][si].b for si in range(n_s)] for ti in range(n_t)])
    ta = np.array([[pts[ti][si].a for si in range(n_s)] for ti in range(n_t)])
    sup = np.array([[pts[ti][si].support for si in range(n_s)] for ti in range(n_t)], dtype=np.int64)
    its = np.array([sum(pts[ti][si].iterations for ti in range(n_t)) for si in range(n_s)], dtype=np.int64)
    conv = np.array([all(pts[ti][si].converged for ti in range(n_t)) for si in range(n_s)])
    d, r, b = (np.sum(w[:, None] * arr, axis=0) for arr in (td, tr, tb))
    a = np.sqrt(np.sum(w[:, None] * ta * ta, axis=0))
    h = d if metric == "l1" else (np.sqrt(d) + a) ** 2
    r_low = b + s_n * h
    if not conv.all():
        bad = [f"{from_nats(s_n[k], units):.4g}" for k in np.flatnonzero(~conv)]
        warnings.warn(
            f"model_rate_distortion: at slope(s) {', '.join(bad)} some tensor did not reach the certified gap "
            f"{from_nats(tol_n, units):.3g} {units} within `max_iter` = {max_iter}; the bounds hold but are wider "
            "(raise `max_iter` or `tol`).", ConvergenceWarning, stacklevel=3)
    mean_abs = float(sum(t.mean_abs * wt for t, wt in zip(tensors, w)))

    def ro(arr):
        arr = np.ascontiguousarray(arr)
        arr.setflags(write=False)
        return arr

    return ModelRD(
        slopes=ro(from_nats(s_n, units)), distortion=ro(d), rate=ro(from_nats(r, units)),
        rate_lower=ro(from_nats(r_low, units)), intercept=ro(from_nats(b, units)), shift=ro(a),
        tensor_rate=ro(from_nats(tr, units)), tensor_distortion=ro(td),
        tensor_names=tuple(t.name for t in tensors), tensor_sizes=tuple(t.n for t in tensors),
        zero_rate_distortion=_dot(w, np.array([t.d_max for t in tensors])),
        laplace_lam=1.0 / mean_abs if mean_abs > 0 else math.inf, support=ro(sup), iterations=ro(its),
        converged=ro(conv), metric=metric, normalize=normalize, units=units,
        tol=float(from_nats(tol_n, units)), grid_fraction=float(frac), what=what,
        seconds=time.perf_counter() - t0)


def pooled_rate_distortion(weights: Mapping, *, metric: str = "l1", normalize: str | None = "l2", slopes=None,
                           n_slopes: int = 16, tol: float = 1e-3, units: str = "bits", grid_fraction=None,
                           max_iter: int = 20_000, workers: int | None = None) -> ModelRD:
    """Secondary reference: the certified R(D) of all normalized weights pooled into one empirical law.

    Each tensor is normalized as in :func:`model_rate_distortion`, then every weight is treated
    as a draw from the single pooled law (one "tensor" named ``"pooled"``).  This bounds a coder
    that ignores which tensor a weight comes from; it is not the per-tensor bound.  Parameters
    and result as in :func:`model_rate_distortion`.
    """
    t0 = time.perf_counter()
    check_choice("metric", metric, METRICS)
    check_choice("normalize", normalize, NORMALIZATIONS)
    tensors = _prepare(weights, normalize, metric)
    pooled = np.concatenate([np.repeat(t.x, np.rint(t.p * t.n).astype(np.int64)) for t in tensors])
    curve = model_rate_distortion({"pooled": pooled}, metric=metric, normalize=None, slopes=slopes,
                                  n_slopes=n_slopes, tol=tol, units=units, grid_fraction=grid_fraction,
                                  max_iter=max_iter, workers=workers)
    return ModelRD(**{**{f: getattr(curve, f) for f in curve.__dataclass_fields__},
                      "normalize": normalize, "seconds": time.perf_counter() - t0,
                      "what": "any coder that treats all normalized weights as i.i.d. draws from one pooled "
                              "empirical law (secondary reference)"})


def model_bound_at(curve: ModelRD, distortion):
    """The certified bracket ``(rate_lower, rate_upper)`` of R(D) at a distortion D.

    * lower: the maximum over slopes of the supporting curves ``intercept_k + slope_k·h_k(D)``
      (already shifted for the grid), and 0;
    * upper: the lower convex envelope (time sharing) of the achievable points and the zero-rate
      point ``(zero_rate_distortion, 0)``; ``inf`` below the smallest certified distortion.

    For D ≥ ``zero_rate_distortion`` both are 0.

    Parameters
    ----------
    curve : ModelRD
    distortion : float or array_like
        D ≥ 0 (mean distortion per weight, the curve's metric).

    Returns
    -------
    (rate_lower, rate_upper) : floats or ndarrays (shape of ``distortion``), in ``curve.units`` per parameter.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> curve = model_rate_distortion({"w": rng.laplace(size=2000)}, n_slopes=4)
    >>> lo, hi = model_bound_at(curve, curve.distortion[2])
    >>> bool(lo <= hi <= curve.rate[2] + 1e-12)
    True
    """
    if not isinstance(curve, ModelRD):
        raise InvalidArgumentError(
            f"`curve` must be a ModelRD (from model_rate_distortion), got {type(curve).__name__}.")
    d = _check_distortions(distortion)
    flat = np.atleast_1d(d).ravel()
    s = np.asarray(curve.slopes)[:, None]
    b = np.asarray(curve.intercept)[:, None]
    if curve.metric == "l1":
        h = flat[None, :]
    else:
        h = (np.sqrt(flat)[None, :] + np.asarray(curve.shift)[:, None]) ** 2
    lower = np.maximum(0.0, np.max(b + s * h, axis=0))
    upper = _hull_upper(np.asarray(curve.distortion), np.asarray(curve.rate), curve.zero_rate_distortion, flat)
    dmax = curve.zero_rate_distortion
    lower = np.where(flat >= dmax, 0.0, np.minimum(lower, upper))
    upper = np.where(flat >= dmax, 0.0, upper)
    if np.ndim(distortion) == 0:
        return float(lower[0]), float(upper[0])
    return lower.reshape(np.shape(distortion)), upper.reshape(np.shape(distortion))


def _hull_upper(dk, rk, dmax, query):
    """Lower convex envelope of the points (dk, rk) and (dmax, 0), evaluated at ``query`` (inf left of them)."""
    pts = sorted(set(zip(dk.tolist(), rk.tolist())) | {(float(dmax), 0.0)})
    hull: list[tuple[float, float]] = []
    for px, py in pts:
        while len(hull) >= 2:
            (x1, y1), (x2, y2) = hull[-2], hull[-1]
            if (x2 - x1) * (py - y1) - (y2 - y1) * (px - x1) <= 0:  # hull[-1] on or above the chord
                hull.pop()
            else:
                break
        hull.append((px, py))
    # keep the non-increasing part (time sharing never needs points right of the minimum rate)
    k = int(np.argmin([y for _, y in hull]))
    hull = hull[:k + 1]
    hx = np.array([p[0] for p in hull])
    hy = np.array([p[1] for p in hull])
    out = np.interp(query, hx, hy)
    out = np.where(query < hx[0], np.inf, out)
    return np.where(query > hx[-1], hy[-1], out)
