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
