"""Numba kernels of the sequential SuRP codec (private; see :mod:`ratedist.surp`).

Shared randomness: for iteration ``t`` the permutation of [0, P) (P the
smallest prime ≥ n) is π_t(k) = σ((a_t·k + b_t) mod P).  σ is a fixed keyed
pseudorandom permutation of [0, P) (a 4-half-round mixed-radix Feistel network
on [0, A·2**b) ⊇ [0, P) with cycle walking), so eligible indices sit at
pseudorandom σ-positions; (a_t, b_t) is a fresh keyed affine map per iteration
(a_t from a keyed table of N_STRIDES strides whose inverses are precomputed).
Positions whose image is ≥ n are never eligible.  The encoder keeps a bitmap of
σ^{-1}(E): walking the permutation costs one addition and one bit test per
step, and scanning E costs one modular multiplication per element.  The slow
NumPy twin is :class:`ratedist.surp.reference.Permutations`.

The encoder kernel keeps the eligible set E = {i : r_i > τ} incrementally:
untouched indices enter from a lazily bucket-sorted order of the magnitudes
(the selection threshold only falls), and touched indices whose residual fell
below τ wait in a max-heap (stored in the consumed prefix of ``order``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "mix64",
    "sigma",
    "sigma_inv",
    "affine_key",
    "mod_inverse",
    "stride_table",
    "perm_forward_many",
    "perm_inverse_many",
    "bucket_sort_init",
    "seq_encode_run",
    "seq_decode_run",
    "N_KEYS",
    "N_STRIDES",
]

N_KEYS = 4
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_H1 = np.uint64(0xD6E8FEB86659FD93)
_H2 = np.uint64(0xA3B195354A39B70D)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_TSTEP = np.uint64(0xD1B54A32D192ED03)
_S30 = np.uint64(30)
_S27 = np.uint64(27)
_S31 = np.uint64(31)
_S32 = np.uint64(32)
_S29 = np.uint64(29)
_KEY_SHIFT = np.uint64(44)
_NB = 1 << 19  # buckets: top 20 bits of a positive float64 (sign 0, exponent, 8 mantissa bits)


@njit(cache=True, inline="always")
def mix64(z):
    """splitmix64 finalizer on uint64 (wrapping arithmetic)."""
    z = (z ^ (z >> _S30)) * _C1
    z = (z ^ (z >> _S27)) * _C2
    return z ^ (z >> _S31)


@njit(cache=True, inline="always")
def _h(x):
    """Cheap 64-bit round hash (two multiply–xorshift steps)."""
    x = x * _H1
    x = (x ^ (x >> _S32)) * _H2
    return x ^ (x >> _S29)


@njit(cache=True, inline="always")
def _feistel(k, keys, big_a, bbits):
    mb = (np.uint64(1) << np.uint64(bbits)) - np.uint64(1)
    ua = np.uint64(big_a)
    left = np.uint64(k) >> np.uint64(bbits)
    right = np.uint64(k) & mb
    for r in range(0, N_KEYS, 2):
        d = ((_h(right ^ keys[r]) >> _S32) * ua) >> _S32
        left = left + d
        if left >= ua:
            left = left - ua
        right = right ^ (_h(left ^ keys[r + 1]) & mb)
    return np.int64((left << np.uint64(bbits)) | right)


@njit(cache=True, inline="always")
def _feistel_inv(i, keys, big_a, bbits):
    mb = (np.uint64(1) << np.uint64(bbits)) - np.uint64(1)
    ua = np.uint64(big_a)
    left = np.uint64(i) >> np.uint64(bbits)
    right = np.uint64(i) & mb
    for r in range(N_KEYS - 2, -1, -2):
        right = right ^ (_h(left ^ keys[r + 1]) & mb)
        d = ((_h(right ^ keys[r]) >> _S32) * ua) >> _S32
        if left >= d:
            left = left - d
        else:
            left = left + ua - d
    return np.int64((left << np.uint64(bbits)) | right)


@njit(cache=True)
def sigma(y, keys, prime, big_a, bbits):
    """The fixed scramble σ: a permutation of [0, prime) (Feistel + cycle walking)."""
    x = _feistel(y, keys, big_a, bbits)
    while x >= prime:
        x = _feistel(x, keys, big_a, bbits)
    return x


@njit(cache=True)
def sigma_inv(i, keys, prime, big_a, bbits):
    """σ^{-1}(i)."""
    x = _feistel_inv(i, keys, big_a, bbits)
    while x >= prime:
        x = _feistel_inv(x, keys, big_a, bbits)
    return x


@njit(cache=True)
def mod_inverse(a, prime):
    """a^{-1} mod prime (extended Euclid)."""
    r0, r1 = prime, a
    s0, s1 = 0, 1
    while r1 != 0:
        q = r0 // r1
        r0, r1 = r1, r0 - q * r1
        s0, s1 = s1, s0 - q * s1
    return s0 % prime


N_STRIDES = 4096


@njit(cache=True)
def stride_table(key_base, prime, strides, inv_strides):
    """The N_STRIDES keyed strides a ∈ [1, prime) and their inverses mod prime."""
    for q in range(strides.size):
        a = np.int64(mix64(key_base ^ (np.uint64(q + 1) * _C2)) % np.uint64(prime - 1)) + 1
        strides[q] = a
        inv_strides[q] = mod_inverse(a, prime)


@njit(cache=True, inline="always")
def affine_key(key_base, t, prime):
    """Stride slot q_t ∈ [0, N_STRIDES) and offset b_t ∈ [0, prime) of iteration t."""
    kt = mix64(key_base + np.uint64(t) * _TSTEP)
    q = np.int64(mix64(kt ^ _GOLD) & np.uint64(N_STRIDES - 1))
    b = np.int64(mix64(kt + _GOLD) % np.uint64(prime))
    return q, b


@njit(cache=True)
def perm_forward_many(ks, key_base, t, prime, sig_keys, big_a, bbits, strides):
    """π_t(k) = σ((a_t k + b_t) mod prime) for an array of positions."""
    q, b = affine_key(key_base, t, prime)
    a = strides[q]
    out = np.empty(ks.size, dtype=np.int64)
    for q in range(ks.size):
        out[q] = sigma((a * ks[q] + b) % prime, sig_keys, prime, big_a, bbits)
    return out


@njit(cache=True)
def perm_inverse_many(idx, key_base, t, prime, sig_keys, big_a, bbits, inv_strides):
    """π_t^{-1}(i) = (σ^{-1}(i) − b_t) a_t^{-1} mod prime."""
    q, b = affine_key(key_base, t, prime)
    ainv = inv_strides[q]
    out = np.empty(idx.size, dtype=np.int64)
    for q in range(idx.size):
        y = sigma_inv(idx[q], sig_keys, prime, big_a, bbits)
        out[q] = (((y - b) % prime) * ainv) % prime
    return out


@njit(cache=True)
def bucket_sort_init(a, order, bstart):
    """Counting sort of the positive entries of ``a`` into buckets of decreasing value.

    ``order[:n_pos]`` receives the indices with ``a > 0`` grouped by bucket
    (bucket q = _NB - 1 - top 19 bits of the float), ``bstart`` (size _NB + 1)
    the bucket boundaries.  Returns ``n_pos``.  Buckets are sorted lazily later.
    """
    bits = a.view(np.uint64)
    counts = bstart  # reuse as counts, then prefix sums
    counts[:] = 0
    n = a.size
    for i in range(n):
        if a[i] > 0.0:
            q = _NB - 1 - np.int64(bits[i] >> _KEY_SHIFT)
            counts[q + 1] += 1
    for q in range(_NB):
        counts[q + 1] += counts[q]
    fill = bstart[:-1].copy()
    for i in range(n):
        if a[i] > 0.0:
            q = _NB - 1 - np.int64(bits[i] >> _KEY_SHIFT)
            order[fill[q]] = i
            fill[q] += 1
    return bstart[_NB]


@njit(cache=True)
def _sort_desc(order, lo, hi, r):
    m = hi - lo
    if m <= 1:
        return
    vals = np.empty(m, dtype=np.float64)
    for q in range(m):
        vals[q] = -r[order[lo + q]]
    idx = np.argsort(vals)
    tmp = np.empty(m, dtype=order.dtype)
    for q in range(m):
        tmp[q] = order[lo + idx[q]]
    for q in range(m):
        order[lo + q] = tmp[q]


@njit(cache=True, inline="always")
def _e_add(i, elist, where, esize, bitmap):
    elist[esize] = i
    where[i] = esize
    bitmap[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
    return esize + 1


@njit(cache=True, inline="always")
def _e_remove(i, elist, where, esize, bitmap):
    bitmap[i >> 6] &= ~(np.uint64(1) << np.uint64(i & 63))
    pos = where[i]
    last = elist[esize - 1]
    elist[pos] = last
    where[last] = pos
    where[i] = -1
    return esize - 1


@njit(cache=True)
def _heap_push(heap, h, idx, r):
    heap[h] = idx
    c = h
    v = r[idx]
    while c > 0:
        par = (c - 1) >> 1
        if r[heap[par]] < v:
            heap[c] = heap[par]
            c = par
        else:
            break
    heap[c] = idx
    return h + 1


@njit(cache=True)
def _heap_pop(heap, h, r):
    top = heap[0]
    h -= 1
    if h > 0:
        x = heap[h]
        v = r[x]
        c = 0
        while True:
            ch = 2 * c + 1
            if ch >= h:
                break
            if ch + 1 < h and r[heap[ch + 1]] > r[heap[ch]]:
                ch += 1
            if r[heap[ch]] > v:
                heap[c] = heap[ch]
                c = ch
            else:
                break
        heap[c] = x
    return top, h


# indices into the integer state vector of the encoder
I_T, I_NNZ, I_P, I_BEND, I_BQ, I_HEAP, I_ESIZE, I_COUNTER, I_NPOS, I_STARTED = range(10)
# indices into the float state vector
F_LAM, F_ALPHA, F_S, F_TAU = range(4)

ST_TARGET, ST_FULL, ST_EXHAUSTED, ST_NONPOSITIVE, ST_RETRIES, ST_MAXITER = range(6)


@njit(cache=True)
def _advance(tau, r, order, bstart, elist, where, bitmap, st_i, sk, prime, big_a, bbits):
    """Move every index with residual > tau into E (untouched ones from the sorted order, touched from the heap)."""
    p = st_i[I_P]
    bend = st_i[I_BEND]
    bq = st_i[I_BQ]
    npos = st_i[I_NPOS]
    esize = st_i[I_ESIZE]
    h = st_i[I_HEAP]
    while p < npos:
        while p >= bend:
            bq += 1
            lo = bstart[bq]
            hi = bstart[bq + 1]
            if hi > lo:
                _sort_desc(order, lo, hi, r)
                bend = hi
        i = order[p]
        if r[i] > tau:
            esize = _e_add(sigma_inv(i, sk, prime, big_a, bbits), elist, where, esize, bitmap)
            p += 1
        else:
            break
    while h > 0 and r[order[0]] > tau:
        i, h = _heap_pop(order, h, r)
        esize = _e_add(sigma_inv(i, sk, prime, big_a, bbits), elist, where, esize, bitmap)
    st_i[I_P] = p
    st_i[I_BEND] = bend
    st_i[I_BQ] = bq
    st_i[I_ESIZE] = esize
    st_i[I_HEAP] = h


@njit(cache=True)
def seq_encode_run(r, ahat, order, bstart, elist, where, bitmap, st_i, st_f, key_base, n, prime, sk, strides,
                   inv_strides, big_a, bbits,
                   sf, decay, n_active, refresh_every, refresh_factor, max_retries, max_iter, stop_nnz,
                   out_j, out_m, out_e, out_tau, out_new, ev_t, ev_c, counts):
    """Run sequential SuRP iterations until nnz reaches ``stop_nnz`` or an output array is full.

    Floating-point operations and their order are exactly those of
    :func:`ratedist.surp.reference.run_reference`.  ``counts`` receives
    (iterations written, refresh events written); returns a status code.
    """
    cap = out_j.size
    ecap = ev_t.size
    k_out = 0
    k_ev = 0
    status = ST_FULL
    if st_i[I_STARTED] == 0:
        st_f[F_TAU] = st_f[F_LAM] * sf
        _advance(st_f[F_TAU], r, order, bstart, elist, where, bitmap, st_i, sk, prime, big_a, bbits)
        st_i[I_STARTED] = 1
    while True:
        if st_i[I_NNZ] >= stop_nnz:
            status = ST_TARGET
            break
        if st_i[I_T] >= max_iter:
            status = ST_MAXITER
            break
        if k_out >= cap or k_ev >= ecap:
            status = ST_FULL
            break
        tau = st_f[F_LAM] * sf
        st_f[F_TAU] = tau
        c = 0
        bad = -1
        while st_i[I_ESIZE] == 0:
            if st_i[I_P] >= st_i[I_NPOS] and st_i[I_HEAP] == 0:
                bad = ST_EXHAUSTED
                break
            if c >= max_retries:
                bad = ST_RETRIES
                break
            st_i[I_COUNTER] += 1
            c += 1
            if st_i[I_COUNTER] % refresh_every == 0:
                st_f[F_ALPHA] = st_f[F_ALPHA] * refresh_factor
            st_f[F_LAM] = st_f[F_ALPHA] * (st_f[F_S] / n_active)
            tau = st_f[F_LAM] * sf
            st_f[F_TAU] = tau
            if not (tau > 0.0):
                bad = ST_NONPOSITIVE
                break
            _advance(tau, r, order, bstart, elist, where, bitmap, st_i, sk, prime, big_a, bbits)
        if bad >= 0:
            status = bad
            break
        t = st_i[I_T]
        if c > 0:
            ev_t[k_ev] = t
            ev_c[k_ev] = c
            k_ev += 1
        esize = st_i[I_ESIZE]
        qs, b = affine_key(key_base, t, prime)
        a = strides[qs]
        if esize * esize <= n // 2:
            ainv = inv_strides[qs]
            finv = float(ainv) / float(prime)
            best = prime
            ym = -1
            for q in range(esize):
                y = elist[q]
                d = y - b
                if d < 0:
                    d += prime
                # (d * ainv) mod prime without a division: float quotient, exact int64 remainder, fix-up
                pos = d * ainv - np.int64(float(d) * finv) * prime
                while pos < 0:
                    pos += prime
                while pos >= prime:
                    pos -= prime
                if pos < best:
                    best = pos
                    ym = y
            j = best
        else:
            j = 0
            y = b
            while not (bitmap[y >> 6] >> np.uint64(y & 63)) & np.uint64(1):
                y += a
                if y >= prime:
                    y -= prime
                j += 1
            ym = y
        m = sigma(ym, sk, prime, big_a, bbits)
        out_j[k_out] = j
        out_m[k_out] = m
        out_e[k_out] = esize
        out_tau[k_out] = tau
        r[m] = r[m] - tau
        if ahat[m] == 0.0:
            out_new[k_out] = 1
            st_i[I_NNZ] += 1
        else:
            out_new[k_out] = 0
        ahat[m] = ahat[m] + tau
        st_f[F_S] = st_f[F_S] - tau
        st_f[F_LAM] = st_f[F_LAM] * decay
        k_out += 1
        st_i[I_T] = t + 1
        tau = st_f[F_LAM] * sf
        st_f[F_TAU] = tau
        if not (r[m] > tau):
            esize = _e_remove(ym, elist, where, st_i[I_ESIZE], bitmap)
            st_i[I_ESIZE] = esize
            if r[m] > 0.0:
                st_i[I_HEAP] = _heap_push(order, st_i[I_HEAP], m, r)
        _advance(tau, r, order, bstart, elist, where, bitmap, st_i, sk, prime, big_a, bbits)
    counts[0] = k_out
    counts[1] = k_ev
    return status


@njit(cache=True)
def seq_decode_run(ahat, sgn, j, new_signs, ev_t, ev_c, key_base, n, prime, sk, strides, big_a, bbits, sf, decay, n_active,
                   refresh_every, refresh_factor, st_f, st_i):
    """Replay the thresholds and selections: ``ahat[π_t(j_t)] += τ_t``.

    ``new_signs`` holds one sign bit (1 = negative) per index that becomes
    non-zero, in order.  ``st_f`` = (lam_inv, alpha_eff, S), ``st_i`` =
    (refresh counter).  Returns 0, or a negative code on inconsistent data
    (never writes out of bounds).
    """
    lam = st_f[0]
    alpha_eff = st_f[1]
    s = st_f[2]
    counter = st_i[0]
    e = 0
    sp = 0
    n_ev = ev_t.size
    for t in range(j.size):
        if e < n_ev and ev_t[e] == t:
            for _ in range(ev_c[e]):
                counter += 1
                if counter % refresh_every == 0:
                    alpha_eff = alpha_eff * refresh_factor
                lam = alpha_eff * (s / n_active)
            e += 1
        tau = lam * sf
        if not (tau > 0.0) or j[t] < 0 or j[t] >= prime:
            return -1
        qs, b = affine_key(key_base, t, prime)
        m = sigma((strides[qs] * j[t] + b) % prime, sk, prime, big_a, bbits)
        if m < 0 or m >= n:
            return -2
        if ahat[m] == 0.0:
            if sp >= new_signs.size:
                return -3
            sgn[m] = -1 if new_signs[sp] else 1
            sp += 1
        ahat[m] = ahat[m] + tau
        s = s - tau
        lam = lam * decay
    if e != n_ev or sp != new_signs.size:
        return -4
    st_f[0] = lam
    st_f[1] = alpha_eff
    st_f[2] = s
    st_i[0] = counter
    return 0
