"""Slow, obviously right sequential SuRP (THEORY.md §4b), the yardstick of the fast encoder.

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

from .encoder import SequentialParams, SequentialTrace, encode_sequential

__all__ = ["mix64_np", "iteration_keys_np", "perm_forward_np", "perm_inverse_np", "run_reference",
           "encode_reference"]

_MASK = (1 << 64) - 1
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_GOLD, _TSTEP = 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03
N_KEYS = 6


def _mix_int(z: int) -> int:
    z &= _MASK
    z = ((z ^ (z >> 30)) * _C1) & _MASK
    z = ((z ^ (z >> 27)) * _C2) & _MASK
    return z ^ (z >> 31)


def mix64_np(z: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer on a uint64 array (wrapping)."""
    z = z.astype(np.uint64)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(_C1)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(_C2)
    return z ^ (z >> np.uint64(31))


def key_base(seed: int) -> int:
    """64-bit key of the permutations for ``seed``."""
    return _mix_int((int(seed) & _MASK) ^ _GOLD)


def iteration_keys_np(base: int, t: int) -> list[int]:
    """The six Feistel round keys of iteration ``t``."""
    kt = _mix_int(base + t * _TSTEP)
    return [_mix_int(kt + (r + 1) * _GOLD) for r in range(N_KEYS)]


def _halves(n: int) -> tuple[int, int]:
    nbits = max(2, (n - 1).bit_length())
    return nbits - nbits // 2, nbits // 2


def _feistel(x, keys, abits, bbits, inverse=False):
    ma, mb = np.uint64((1 << abits) - 1), np.uint64((1 << bbits) - 1)
    x = x.astype(np.uint64)
    left, right = x >> np.uint64(bbits), x & mb
    rounds = range(N_KEYS - 2, -1, -2) if inverse else range(0, N_KEYS, 2)
    for r in rounds:
        k0, k1 = np.uint64(keys[r]), np.uint64(keys[r + 1])
        if inverse:
            right = (right ^ mix64_np(left ^ k1)) & mb
            left = (left ^ mix64_np(right ^ k0)) & ma
        else:
            left = (left ^ mix64_np(right ^ k0)) & ma
            right = (right ^ mix64_np(left ^ k1)) & mb
    return ((left << np.uint64(bbits)) | right).astype(np.int64)


def _cycle_walk(x, keys, n, inverse):
    abits, bbits = _halves(n)
    y = _feistel(np.asarray(x, dtype=np.int64), keys, abits, bbits, inverse)
    out = y.copy()
    todo = out >= n
    while np.any(todo):
        out[todo] = _feistel(out[todo], keys, abits, bbits, inverse)
        todo = out >= n
    return out


def perm_forward_np(k, keys, n: int) -> np.ndarray:
    """π(k) for positions ``k`` (array) of the permutation with round ``keys`` of [0, n)."""
    return _cycle_walk(k, keys, n, inverse=False)


def perm_inverse_np(i, keys, n: int) -> np.ndarray:
    """π^{-1}(i): positions of the indices ``i`` in the permutation."""
    return _cycle_walk(i, keys, n, inverse=True)


def run_reference(a: np.ndarray, p: SequentialParams, stop_nnz: list[int], *, max_iterations: int,
                  max_retries: int) -> SequentialTrace:
    """Sequential SuRP by brute force: THEORY.md §4b steps 2–6 with shared-randomness selection.

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
    base = key_base(p.seed)
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
        pos = perm_inverse_np(elig, iteration_keys_np(base, t), n)
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


def encode_reference(weights, sparsity, **kwargs):
    """:func:`ratedist.surp.encode` (sequential) driven by :func:`run_reference`; same stream, slowly."""
    return encode_sequential(weights, sparsity, _engine="reference", **kwargs)
