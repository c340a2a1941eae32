"""Numba kernels of the Blahut–Arimoto solver (private; called by :mod:`ratedist.rd.blahut_arimoto`).

Two families:

* **dense** — one BA half-step on an explicit ``(m_x, m_y)`` kernel.  The
  kernel is stored *row-stabilized*: ``K[i, j] = exp(S[i, j] - rowmax[i])``
  with ``S = s·d`` (so every row has an entry equal to 1) and the vector is
  shifted by its maximum before exponentiation; a sum that falls below
  ``TINY`` is recomputed exactly in the log domain from ``S``.  The results
  are logarithms, so no slope makes them NaN or a silent 0.
* **Toeplitz, absolute error** — the convolution with ``r^{|i-j|}`` (and with
  ``|i-j|·r^{|i-j|}`` for the mean distortion) by two first-order recursions
  (a causal and an anti-causal pass), exact and O(m); a log-domain twin is
  used where the linear recursion underflows.

Inputs are validated by the caller; nothing here checks shapes.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "dense_log_z",
    "dense_log_c",
    "abs_conv",
    "abs_log_conv",
    "abs_ba_z",
    "abs_ba_c",
    "abs_ba_next",
    "TINY",
]

TINY = 1e-280


@njit(cache=True)
def _max(x):
    m = -np.inf
    for v in x:
        if v > m:
            m = v
    return m


@njit(cache=True)
def dense_log_z(theta, S, K, rowmax, out):
    """out[i] = log Σ_j exp(theta[j] + S[i, j]), using the stabilized kernel K."""
    mx, my = K.shape
    tmax = _max(theta)
    qt = np.exp(theta - tmax)
    z = np.dot(K, qt)
    for i in range(mx):
        if z[i] > TINY:
            out[i] = rowmax[i] + tmax + np.log(z[i])
        else:
            m = -np.inf
            for j in range(my):
                v = S[i, j] + theta[j]
                if v > m:
                    m = v
            acc = 0.0
            for j in range(my):
                acc += np.exp(S[i, j] + theta[j] - m)
            out[i] = m + np.log(acc)


@njit(cache=True)
def dense_log_c(u, S, K, rowmax, out):
    """out[j] = log Σ_i exp(u[i] + S[i, j]); ``u`` may hold -inf (rows without mass)."""
    mx, my = K.shape
    w = u + rowmax
    wmax = _max(w)
    wt = np.exp(w - wmax)
    c = np.dot(wt, K)
    for j in range(my):
        if c[j] > TINY:
            out[j] = wmax + np.log(c[j])
        else:
            m = -np.inf
            for i in range(mx):
                if u[i] > -np.inf:
                    v = u[i] + S[i, j]
                    if v > m:
                        m = v
            if m == -np.inf:
                out[j] = -np.inf
                continue
            acc = 0.0
            for i in range(mx):
                if u[i] > -np.inf:
                    acc += np.exp(u[i] + S[i, j] - m)
            out[j] = m + np.log(acc)


@njit(cache=True)
def abs_conv(v, r, out_z, out_d, with_d):
    """Linear recursions: out_z[i] = Σ_j r^|i-j| v[j]; out_d[i] = Σ_j |i-j| r^|i-j| v[j] (if with_d).

    ``v >= 0`` and ``0 <= r < 1``; every operation adds non-negative numbers,
    so the relative error is a few ulps per step.
    """
    m = v.shape[0]
    f = 0.0  # causal part Σ_{j<=i} r^{i-j} v_j
    t = 0.0  # causal part Σ_{j<=i} (i-j) r^{i-j} v_j
    for i in range(m):
        t = r * (t + f)
        f = v[i] + r * f
        out_z[i] = f
        if with_d:
            out_d[i] = t
    g = 0.0  # anti-causal part Σ_{j>i} r^{j-i} v_j
    h = 0.0  # anti-causal part Σ_{j>i} (j-i) r^{j-i} v_j
    for i in range(m - 1, -1, -1):
        out_z[i] += g
        if with_d:
            out_d[i] += h
        # move to i-1: terms j > i-1 = {i} ∪ {j > i}
        h = r * (h + g + v[i])
        g = r * (g + v[i])


@njit(cache=True)
def _logaddexp(a, b):
    if a == -np.inf:
        return b
    if b == -np.inf:
        return a
    if a > b:
        return a + np.log1p(np.exp(b - a))
    return b + np.log1p(np.exp(a - b))


@njit(cache=True)
def abs_log_conv(logv, logr, out):
    """Log-domain twin of :func:`abs_conv` (z only): out[i] = log Σ_j exp(logv[j] + |i-j|·logr)."""
    m = logv.shape[0]
    f = -np.inf
    for i in range(m):
        f = _logaddexp(logv[i], logr + f)
        out[i] = f
    g = -np.inf
    for i in range(m - 1, -1, -1):
        out[i] = _logaddexp(out[i], g)
        g = logr + _logaddexp(g, logv[i])



# ---- fused BA-map evaluation for absolute error (the transcendental functions are left to NumPy's
# vectorized exp/log between these calls: numba's scalar libm calls would cost ~20 ns each)


@njit(cache=True)
def _scan(x, r, out):
    """out[i] = Σ_{j<=i} r^{i-j} x[j], by a blocked scan (pass reversed views for the other direction).

    The array is cut into four blocks scanned side by side (four independent dependency chains
    hide the latency of the serial recursion), then each block gets its carry-in
    ``carry·r^{k+1}``.  Every term is non-negative, so the relative error stays a few ulps.
    """
    m = x.shape[0]
    L = m // 4
    if L < 16:
        f = 0.0
        for i in range(m):
            f = x[i] + r * f
            out[i] = f
        return
    f0 = 0.0
    f1 = 0.0
    f2 = 0.0
    f3 = 0.0
    for k in range(L):
        f0 = x[k] + r * f0
        f1 = x[L + k] + r * f1
        f2 = x[2 * L + k] + r * f2
        f3 = x[3 * L + k] + r * f3
        out[k] = f0
        out[L + k] = f1
        out[2 * L + k] = f2
        out[3 * L + k] = f3
    for i in range(4 * L, m):
        f3 = x[i] + r * f3
        out[i] = f3
    rl = r ** L
    c1 = f0
    c2 = f1 + rl * c1
    c3 = f2 + rl * c2
    pw = r
    for k in range(L):
        out[L + k] += c1 * pw
        out[2 * L + k] += c2 * pw
        out[3 * L + k] += c3 * pw
        pw *= r
    for i in range(4 * L, m):
        out[i] += c3 * pw
        pw *= r


@njit(cache=True)
def abs_ba_z(qt, r, z, work):
    """z[i] = Σ_j r^|i-j| qt[j] (forward and backward blocked scans); returns min z."""
    m = qt.shape[0]
    _scan(qt, r, z)
    _scan(qt[::-1], r, work[::-1])
    zmin = np.inf
    for i in range(m):
        zi = z[i] + work[i] - qt[i]
        z[i] = zi
        if zi < zmin:
            zmin = zi
    return zmin


@njit(cache=True)
def abs_ba_c(p, z, log_z, r, w, c, work):
    """From z = A q̃ and ln z: L̃ = Σ_{p_i>0} p_i ln z_i, w = (p / z) / wmax, c = A w.

    Returns ``(L̃, wmax, cmin)``; the caller adds the shifts back.  ``c`` may alias ``z``.
    """
    m = p.shape[0]
    L = 0.0
    wmax = 0.0
    for i in range(m):
        pi = p[i]
        if pi > 0.0:
            L += pi * log_z[i]
            wi = pi / z[i]
            w[i] = wi
            if wi > wmax:
                wmax = wi
        else:
            w[i] = 0.0
    inv = 1.0 / wmax
    for i in range(m):
        w[i] *= inv
    cmin = abs_ba_z(w, r, c, work)
    return L, wmax, cmin


@njit(cache=True)
def abs_ba_next(theta, qt, c, log_c, shift, wmax, floor, nxt):
    """Finish one evaluation: ln c = ln c̃ + shift (in place), the next iterate and the certificate terms.

    ``q_j c_j = qt_j · c̃_j · wmax``; ``nxt = θ + ln c − ln Σ q c`` (Σ q c = 1 in
    exact arithmetic), floored at ``max − floor``.  Returns ``(lmax, kl)`` with
    ``kl = Σ q_j c_j ln c_j``.
    """
    m = theta.shape[0]
    lmax = -np.inf
    kl = 0.0
    tot = 0.0
    nmax = -np.inf
    for j in range(m):
        lc = log_c[j] + shift
        log_c[j] = lc
        qc = qt[j] * c[j] * wmax
        if lc > lmax:
            lmax = lc
        tot += qc
        kl += qc * lc
        t = theta[j] + lc
        nxt[j] = t
        if t > nmax:
            nmax = t
    lt = np.log(tot)
    lo = nmax - lt - floor
    for j in range(m):
        t = nxt[j] - lt
        nxt[j] = t if t > lo else lo
    return lmax, kl
