"""Slow, obviously right sequential SuRP (docs/theory.md §4b), the yardstick of the fast encoder.

Every iteration rescans all residuals for the eligible set E = {i : r_i > τ}
(as the published code does), and picks the element of E that comes first in
the iteration's shared pseudorandom permutation by computing the inverse
permutation of every member of E in NumPy.  No numba: this file is the
independent twin of :mod:`ratedist.kernels._surp_cpu`.  The fast encoder must
reproduce its trace (positions, indices, thresholds, refresh events) exactly,
and hence its stream, for the same seed.
"""

from __future__ import annotations

import numpy as np

from ._randomness import N_KEYS, N_STRIDES, Permutations, key_base, next_prime, permutation_domain
from ._sequential import SequentialParams, SequentialTrace

__all__ = ["permutation_domain", "key_base", "next_prime", "Permutations", "run_reference", "N_KEYS", "N_STRIDES"]

def run_reference(a: np.ndarray, p: SequentialParams, stop_nnz: list[int], *, max_iterations: int,
                  max_retries: int) -> SequentialTrace:
    """Sequential SuRP by brute force: docs/theory.md §4b steps 2–6 with shared-randomness selection.

    Parameters
    ----------
    a : ndarray of float64, shape (n,)
        Magnitudes of the normalized weights.
    p : SequentialParams
        sf, decay, α_eff, lam_inv₀, S₀ (= ``np.sum(a)``) and the refresh rule.
    stop_nnz : list of int
        Non-zero counts of the checkpoints, increasing.
    """
    n = a.size
    r = a.copy()
    ahat = np.zeros(n)
    lam, alpha_eff, s = p.lam_inv0, p.alpha_eff0, p.s0
    counter = 0
    perms = Permutations(n, p.seed)
    js, ms, es, taus, news, ev_t, ev_c, cps = [], [], [], [], [], [], [], []
    nnz, t, status = 0, 0, "target"
    targets = list(stop_nnz)
    while targets:
        if nnz >= targets[0]:
            cps.append((t, nnz, s))
            targets.pop(0)
            continue
        if t >= max_iterations:
            status = "max_iterations"
            break
        tau = lam * p.sf
        elig = np.flatnonzero(r > tau)
        c = 0
        while elig.size == 0:
            if r.max() <= 0.0:
                status = "exhausted"
                break
            if c >= max_retries:
                status = "retries"
                break
            counter += 1
            c += 1
            if counter % p.refresh_every == 0:
                alpha_eff = alpha_eff * p.refresh_factor
            lam = alpha_eff * (s / p.n_active)
            tau = lam * p.sf
            if not tau > 0.0:
                status = "nonpositive"
                break
            elig = np.flatnonzero(r > tau)
        if elig.size == 0:
            break
        if c:
            ev_t.append(t)
            ev_c.append(c)
        pos = perms.inverse(t, elig)
        q = int(np.argmin(pos))
        j, m = int(pos[q]), int(elig[q])
        js.append(j), ms.append(m), es.append(elig.size), taus.append(tau)
        r[m] = r[m] - tau
        new = ahat[m] == 0.0
        news.append(new)
        nnz += int(new)
        ahat[m] = ahat[m] + tau
        s = s - tau
        lam = lam * p.decay
        t += 1
    return SequentialTrace(
        j=np.asarray(js, dtype=np.int64), m=np.asarray(ms, dtype=np.int64), esize=np.asarray(es, dtype=np.int64),
        tau=np.asarray(taus, dtype=np.float64), new=np.asarray(news, dtype=bool),
        ev_t=np.asarray(ev_t, dtype=np.int64), ev_c=np.asarray(ev_c, dtype=np.int64),
        checkpoints=cps, status=status, residual=r, ahat=ahat, final=(t, nnz, s),
    )
