"""Numba kernels of the model rate–distortion bound (private; called by :mod:`ratedist.rd.model`).

Absolute-error Blahut–Arimoto on an arbitrary sorted point set ``y_0 < y_1 < … < y_{m-1}``
(source and reproduction share the points).  The kernel ``A_ij = exp(s·|y_i − y_j|)`` factors
along the line: with ``r_k = exp(s·(y_k − y_{k−1}))`` (``r_0`` unused),
``A_ij = Π_{k=min(i,j)+1}^{max(i,j)} r_k``, so ``A v`` is two first-order recursions (a causal
and an anti-causal one), O(m) and exact: every term is non-negative, so the relative error is a
few ulps per step.  The two recursions run interleaved in one loop (two independent dependency
chains).  The transcendental functions are left to NumPy's vectorized exp/log between the calls.

:func:`sym_log_scan` is the log-domain twin (any dynamic range: each partial sum is carried as
``f·e^L`` with ``1 ≤ f``), used where a linear sum would underflow.

Inputs are validated by the caller; nothing here checks shapes (numba does not bounds-check:
every array passed must have the length of ``v``/``theta``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["sym_scan", "sym_scan_w", "sym_scan_d", "sym_log_scan", "cross_scan", "ba_next", "wsum"]


@njit(cache=True, nogil=True)
def sym_scan(v, r, out, work):  # pragma: no cover - compiled
    """out[i] = Σ_j v[j]·A_ij with A_ij the product of r over (min(i,j), max(i,j)]; returns min(out).

    ``v ≥ 0``, ``0 ≤ r ≤ 1``; ``work`` is scratch of the same length.
    """
    m = v.shape[0]
    f = 0.0  # causal part Σ_{j<=i} A_ij v_j
    g = 0.0  # anti-causal part Σ_{j>i} A_ij v_j
    for k in range(m):
        f = v[k] + r[k] * f
        out[k] = f
        i = m - 1 - k
        work[i] = g
        g = r[i] * (g + v[i])
    mn = np.inf
    for i in range(m):
        o = out[i] + work[i]
        out[i] = o
        if o < mn:
            mn = o
    return mn


@njit(cache=True, nogil=True)
def sym_scan_w(v, r, p, out, w, work):  # pragma: no cover - compiled
    """z = :func:`sym_scan` of ``v`` into ``out``, and in the same pass ``w = p / z`` (0 where p = 0).

    Returns ``(min z, max w)``.
    """
    m = v.shape[0]
    f = 0.0
    g = 0.0
    for k in range(m):
        f = v[k] + r[k] * f
        out[k] = f
        i = m - 1 - k
        work[i] = g
        g = r[i] * (g + v[i])
    zmin = np.inf
    wmax = 0.0
    for i in range(m):
        z = out[i] + work[i]
        out[i] = z
        if z < zmin:
            zmin = z
        pi = p[i]
        wi = pi / z if pi > 0.0 else 0.0
        w[i] = wi
        if wi > wmax:
            wmax = wi
    return zmin, wmax


@njit(cache=True, nogil=True)
def sym_scan_d(v, r, gap, out_z, out_d, work_z, work_d):  # pragma: no cover - compiled
    """out_z[i] = Σ_j v[j]·A_ij and out_d[i] = Σ_j v[j]·|y_i − y_j|·A_ij (``gap[k] = y_k − y_{k−1}``)."""
    m = v.shape[0]
    f = 0.0
    t = 0.0
    g = 0.0
    h = 0.0
    for k in range(m):
        t = r[k] * (t + gap[k] * f)
        f = v[k] + r[k] * f
        out_z[k] = f
        out_d[k] = t
        i = m - 1 - k
        work_z[i] = g
        work_d[i] = h
        # move to i-1: the terms j > i-1 are {i} ∪ {j > i}, each one gap[i] farther away
        if i > 0:
            h = r[i] * (h + gap[i] * (g + v[i]))
            g = r[i] * (g + v[i])
    for i in range(m):
        out_z[i] += work_z[i]
        out_d[i] += work_d[i]


@njit(cache=True, nogil=True)
def cross_scan(src, v, tgt, s, out_z, out_d, with_d):  # pragma: no cover - compiled
    """out_z[k] = Σ_i v[i]·exp(s·|tgt[k] − src[i]|) and (if ``with_d``) out_d[k] = Σ_i v[i]·|tgt[k] − src[i]|·exp(…).

    ``src`` and ``tgt`` are sorted (ties allowed: a source at a target's position is counted once,
    at distance 0), ``v ≥ 0``, ``s < 0``.  Causal pass over the sources ``≤`` each target, then an
    anti-causal pass over the sources ``>`` it; each pass carries its partial sums at the last
    source passed and moves them to the target with one factor ``exp(s·gap)``.
    """
    n = src.shape[0]
    m = tgt.shape[0]
    i = 0
    f = 0.0
    t = 0.0
    pos = 0.0
    for k in range(m):
        x = tgt[k]
        while i < n and src[i] <= x:
            if f > 0.0:
                d = src[i] - pos
                r = np.exp(s * d)
                if with_d:
                    t = r * (t + d * f)
                f = r * f
            f += v[i]
            pos = src[i]
            i += 1
        if f > 0.0:
            d = x - pos
            r = np.exp(s * d)
            out_z[k] = r * f
            if with_d:
                out_d[k] = r * (t + d * f)
        else:
            out_z[k] = 0.0
            if with_d:
                out_d[k] = 0.0
    i = n - 1
    f = 0.0
    t = 0.0
    pos = 0.0
    for k in range(m - 1, -1, -1):
        x = tgt[k]
        while i >= 0 and src[i] > x:
            if f > 0.0:
                d = pos - src[i]
                r = np.exp(s * d)
                if with_d:
                    t = r * (t + d * f)
                f = r * f
            f += v[i]
            pos = src[i]
            i -= 1
        if f > 0.0:
            d = pos - x
            r = np.exp(s * d)
            out_z[k] += r * f
            if with_d:
                out_d[k] += r * (t + d * f)


@njit(cache=True, nogil=True)
def _add_log(f, L, a):
    """(f, L) representing f·e^L, plus e^a; returns the new (f, L) with f ≥ 1 after the first term."""
    if a == -np.inf:
        return f, L
    if L == -np.inf:
        return 1.0, a
    if a > L:
        return f * np.exp(L - a) + 1.0, a
    return f + np.exp(a - L), L


@njit(cache=True, nogil=True)
def sym_log_scan(logv, logr, out, work_f, work_l):  # pragma: no cover - compiled
    """out[i] = log Σ_j exp(logv[j] + Σ_{k=min+1}^{max} logr[k]) in the log domain (any range).

    ``logr[k] = s·(y_k − y_{k−1}) ≤ 0``; ``logv`` may hold ``-inf``.
    """
    m = logv.shape[0]
    f = 0.0
    L = -np.inf
    for k in range(m):
        if L > -np.inf:
            L += logr[k]
        f, L = _add_log(f, L, logv[k])
        work_f[k] = f
        work_l[k] = L
    for k in range(m):
        out[k] = np.log(work_f[k]) + work_l[k] if work_l[k] > -np.inf else -np.inf
    f = 0.0
    L = -np.inf
    for i in range(m - 1, -1, -1):
        # here (f, L) holds Σ_{j>i}
        if L > -np.inf:
            b = np.log(f) + L
            a = out[i]
            if a == -np.inf:
                out[i] = b
            elif a > b:
                out[i] = a + np.log1p(np.exp(b - a))
            else:
                out[i] = b + np.log1p(np.exp(a - b))
        f, L = _add_log(f, L, logv[i])
        if L > -np.inf:
            L += logr[i]


@njit(cache=True, nogil=True)
def ba_next(theta, qt, c, log_c, shift, wmax, floor, nxt):  # pragma: no cover - compiled
    """Finish one BA-map evaluation from c̃ = A w̃ and ln c̃ (``log_c``, shifted in place to ln c).

    ``q_j c_j = qt_j · c̃_j · wmax``; ``nxt = θ + ln c − ln Σ q c`` floored at ``max − floor``.
    Returns ``(max ln c, Σ q_j c_j ln c_j)``.
    """
    m = theta.shape[0]
    lmax = -np.inf
    kl = 0.0
    tot = 0.0
    nmax = -np.inf
    for j in range(m):
        lc = log_c[j] + shift
        log_c[j] = lc
        if lc > lmax:
            lmax = lc
        qc = qt[j] * c[j] * wmax
        if qc > 0.0:
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


@njit(cache=True, nogil=True)
def wsum(p, v):  # pragma: no cover - compiled
    """Σ_{p_i > 0} p_i·v_i in index order (one thread, a fixed order: no BLAS, whose sum depends on
    its thread count; terms with p_i = 0 are skipped, so v_i may be ±inf there)."""
    acc = 0.0
    for i in range(p.shape[0]):
        if p[i] > 0.0:
            acc += p[i] * v[i]
    return acc
