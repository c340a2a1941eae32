"""Numba kernels of the sequential SuRP codec (private; see :mod:`ratedist.surp`).

Shared randomness: for iteration ``t`` the permutation of [0, P) (P the
smallest prime ≥ n) is π_t(k) = σ((a_t·k + b_t) mod P).  σ is a fixed keyed
pseudorandom permutation of [0, P) (a 4-half-round mixed-radix Feistel network
on [0, A·2**b) ⊇ [0, P) with cycle walking), so eligible indices sit at
pseudorandom σ-positions; (a_t, b_t) is a fresh keyed affine map per iteration
(a_t from a keyed table of N_STRIDES strides whose inverses are precomputed).
Positions whose image is ≥ n are never eligible.  The slow NumPy twin is
:class:`ratedist.surp.reference.Permutations`.

The encoder kernel keeps the eligible set E = {i : r_i > τ} incrementally, in
σ-preimage space (y = σ^{-1}(i)), with no n-sized index map:

* a bitmap of E followed by a "selected before" bitmap (two halves of one
  array, so that the walk's fine tests touch only the E half), and a coarse
  bitmap (one bit per 4 consecutive y, a few hundred KiB) that the permutation
  walk tests in 8 interleaved lanes without branches: walking costs about one
  addition and one cached bit test per step; a coarse hit's fine word is
  prefetched and checked a few groups later, so the walk does not wait for it;
* while |E| is small, also a plain list of E (rebuilt from the bitmaps when |E|
  falls to the threshold, dropped when it grows 25% past it): the first position
  is then the minimum of (y − b_t) a_t^{-1} mod P over the list, a vectorized
  loop (exact float64 arithmetic below P = 2**26);
* untouched indices enter from a lazily bucket-sorted order of the magnitudes
  (the threshold only falls while E is non-empty), touched ones whose residual
  fell to τ or below wait in a max-heap with inline keys (indices in the
  consumed prefix of ``order``).

The reconstruction â is not updated inside the loop (it would cost a second
random memory access per iteration): :func:`replay_add` replays the selections
afterwards with the decoder's arithmetic.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange
from numba.core import cgutils, types
from numba.extending import intrinsic

from ._mix import mix64

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
    "seq_encode_pipe",
    "replay_add",
    "parallel_probe",
    "integer_symbols_run",
    "chunks_run",
    "chunk_sizes_run",
    "assemble_run",
    "seq_decode_run",
    "N_KEYS",
    "N_STRIDES",
]

N_KEYS = 4
_C2 = np.uint64(0x94D049BB133111EB)
_H1 = np.uint64(0xD6E8FEB86659FD93)
_H2 = np.uint64(0xA3B195354A39B70D)
_GOLD = np.uint64(0x9E3779B97F4A7C15)
_TSTEP = np.uint64(0xD1B54A32D192ED03)
_S32 = np.uint64(32)
_S29 = np.uint64(29)
_KEY_SHIFT = np.uint64(44)
_NB = 1 << 19  # buckets: top 20 bits of a positive float64 (sign 0, exponent, 8 mantissa bits)


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


_BS_CHUNKS = 2  # contiguous parts of ``a`` counted and scattered in parallel


@njit(cache=True, parallel=True)
def bucket_sort_init(a, order, bstart):
    """Counting sort of the positive entries of ``a`` into buckets of decreasing value.

    ``order[:n_pos]`` receives the indices with ``a > 0`` grouped by bucket
    (bucket q = _NB - 1 - top 19 bits of the float), ascending within a bucket, and
    ``bstart`` (size _NB + 1) the bucket boundaries.  Returns ``n_pos``.  Buckets are
    sorted lazily later.  The _BS_CHUNKS contiguous parts of ``a`` are counted and
    scattered in parallel; part c's indices precede part c + 1's in every bucket, so
    the result is that of one sequential pass.
    """
    bits = a.view(np.uint64)
    n = a.size
    nch = _BS_CHUNKS
    cnt = np.zeros((nch, _NB), dtype=np.int64)
    for c in prange(nch):
        lo = c * n // nch
        hi = (c + 1) * n // nch
        for i in range(lo, hi):
            if a[i] > 0.0:
                cnt[c, _NB - 1 - np.int64(bits[i] >> _KEY_SHIFT)] += 1
    run = 0
    for q in range(_NB):
        bstart[q] = run
        for c in range(nch):
            k = cnt[c, q]
            cnt[c, q] = run
            run += k
    bstart[_NB] = run
    for c in prange(nch):
        lo = c * n // nch
        hi = (c + 1) * n // nch
        for i in range(lo, hi):
            if a[i] > 0.0:
                q = _NB - 1 - np.int64(bits[i] >> _KEY_SHIFT)
                order[cnt[c, q]] = i
                cnt[c, q] += 1
    return bstart[_NB]


@njit(cache=True)
def _sort_bucket(order, lo, hi, r, bvals):
    """Sort ``order[lo:hi]`` by decreasing ``r``; the sorted values (as many as fit) go to ``bvals``."""
    m = hi - lo
    vals = np.empty(m, dtype=np.float64)
    for q in range(m):
        vals[q] = -r[order[lo + q]]
    idx = np.argsort(vals)
    tmp = np.empty(m, dtype=order.dtype)
    for q in range(m):
        tmp[q] = order[lo + idx[q]]
    for q in range(m):
        order[lo + q] = tmp[q]
    for q in range(min(m, bvals.size)):
        bvals[q] = -vals[idx[q]]


# The eligible set E lives in σ-preimage space (y = σ^{-1}(i)) as a bitmap and a coarse bitmap
# ``cm`` (one bit per 2**_G consecutive y, set iff any of them is in E), small enough to stay in
# the L2 cache during the walk.  ``bm`` holds two bitmaps of W = bm.size // 2 words each: word w
# holds E for y in [64w, 64w + 64), word W + w "selected at least once" (apart, so that the walk's
# fine tests of E use half the cache lines).
_G = 2
_FLOAT_SCAN_MAX = 1 << 26
_GMASK = np.uint64((1 << (1 << _G)) - 1)


@intrinsic
def _prefetch(typingctx, arr, idx):
    """Hint the CPU to fetch ``arr[idx]`` into the cache (``llvm.prefetch``; never faults, returns nothing)."""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False, boundscheck=False)
        i8p = ir.IntType(8).as_pointer()
        i32 = ir.IntType(32)
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32]),
                                            "llvm.prefetch.p0")
        builder.call(fn, [builder.bitcast(ptr, i8p), i32(0), i32(3), i32(1)])
        return context.get_dummy_value()

    return types.void(arr, idx), codegen


@intrinsic
def _aload(typingctx, arr, idx):
    """``arr[idx]`` (int64) as an atomic load with acquire ordering."""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False, boundscheck=False)
        return builder.load_atomic(ptr, "acquire", 8)

    return types.int64(arr, idx), codegen


@intrinsic
def _astore(typingctx, arr, idx, val):
    """``arr[idx] = val`` (int64) as an atomic store with release ordering."""
    def codegen(context, builder, signature, args):
        aryty = signature.args[0]
        ary = context.make_array(aryty)(context, builder, args[0])
        ptr = cgutils.get_item_pointer(context, builder, aryty, ary, [args[1]], wraparound=False, boundscheck=False)
        v = context.cast(builder, args[2], signature.args[2], types.int64)
        builder.store_atomic(v, ptr, "release", 8)
        return context.get_dummy_value()

    return types.void(arr, idx, val), codegen


@njit(cache=True, inline="always")
def _bit(bm, y):
    return (bm[y >> 6] >> np.uint64(y & 63)) & np.uint64(1)


@njit(cache=True, inline="always")
def _set(bm, y):
    bm[y >> 6] |= np.uint64(1) << np.uint64(y & 63)


@njit(cache=True, inline="always")
def _clear(bm, y):
    bm[y >> 6] &= ~(np.uint64(1) << np.uint64(y & 63))


@njit(cache=True, inline="always")
def _ebit(bm, y):
    """Is y in E (first half of ``bm``)."""
    return (bm[y >> 6] >> np.uint64(y & 63)) & np.uint64(1)


@njit(cache=True, inline="always")
def _sbit(bm, y):
    """Was y selected before (second half of ``bm``)."""
    return (bm[(bm.size >> 1) + (y >> 6)] >> np.uint64(y & 63)) & np.uint64(1)


@njit(cache=True, inline="always")
def _cbit(cm, y):
    z = y >> _G
    return (cm[z >> 6] >> np.uint64(z & 63)) & np.uint64(1)


@njit(cache=True, inline="always")
def _adv(y, am, prime):
    """(y + a) mod prime without a branch, given am = a - prime (negative) and 0 <= y < prime."""
    y = y + am
    return y + (prime & (y >> 63))


# indices into the integer state vector of the encoder
(I_T, I_NNZ, I_P, I_BEND, I_BQ, I_HEAP, I_ESIZE, I_COUNTER, I_NPOS, I_STARTED, I_BLO, I_MODE,
 I_TLO, I_LOG, I_NA, I_NA1, I_SPEC, I_RID, N_STATE) = range(19)
# indices into the float state vector
F_LAM, F_ALPHA, F_S, F_TAU = range(4)

ST_TARGET, ST_FULL, ST_EXHAUSTED, ST_NONPOSITIVE, ST_RETRIES, ST_MAXITER, ST_INTERNAL = range(7)


@njit(cache=True)
def _log_add(y, st_i, alog):
    """Append y to each open log r (bit r of st_i[I_LOG], count st_i[I_NA + r]); a full log closes
    with count ``alog.shape[1] + 1`` (its request's answers can no longer be corrected)."""
    cap = alog.shape[1]
    for r in range(2):
        if (st_i[I_LOG] >> r) & 1:
            na = st_i[I_NA + r]
            if na < cap:
                alog[r, na] = y
                st_i[I_NA + r] = na + 1
            else:
                st_i[I_NA + r] = cap + 1
                st_i[I_LOG] &= ~(1 << r)


@njit(cache=True, inline="always")
def _e_add(y, bm, cm, elist, st_i, alog):
    """Add y to E; in list mode (I_MODE = 1) also append it to ``elist`` (leave list mode when full).

    While a request's log is open (bit r of I_LOG), y is also logged in ``alog[r]`` (see :func:`_log_add`).
    """
    if st_i[I_LOG] != 0:
        _log_add(y, st_i, alog)
    bm[y >> 6] |= np.uint64(1) << np.uint64(y & 63)
    _set(cm, y >> _G)
    esize = st_i[I_ESIZE] + 1
    st_i[I_ESIZE] = esize
    if st_i[I_MODE] == 1:
        if esize > elist.size:
            st_i[I_MODE] = 0
        else:
            elist[esize - 1] = y


@njit(cache=True)
def _find(elist, size, y):
    """Position of ``y`` in ``elist[:size]`` (``size - 1`` if absent); no early exit, so it vectorizes."""
    q = size - 1
    yy = np.int32(y)
    for k in range(size):
        q = k if elist[k] == yy else q
    return q


@njit(cache=True, inline="always")
def _e_remove(y, bm, cm, elist, st_i):
    """Remove y from E (and from ``elist`` in list mode: swap with the last entry)."""
    w = bm[y >> 6] & ~(np.uint64(1) << np.uint64(y & 63))
    bm[y >> 6] = w
    if (w >> np.uint64(((y & 63) >> _G) << _G)) & _GMASK == 0:
        _clear(cm, y >> _G)
    esize = st_i[I_ESIZE] - 1
    st_i[I_ESIZE] = esize
    if st_i[I_MODE] == 1:
        elist[_find(elist, esize + 1, y)] = elist[esize]


@njit(cache=True)
def _build_elist(bm, cm, elist, st_i):
    """Enter list mode: list every y of E into ``elist`` (sweeping the coarse bitmap)."""
    k = 0
    per = 64 >> (6 - _G)  # fine words per coarse word
    for ci in range(cm.size):
        if cm[ci] != 0:
            for wi in range(ci * per, min(ci * per + per, bm.size >> 1)):
                w = bm[wi]
                if w != 0:
                    for bit in range(64):
                        if (w >> np.uint64(bit)) & np.uint64(1):
                            if k < elist.size:
                                elist[k] = wi * 64 + bit
                            k += 1
    if k == st_i[I_ESIZE] and k <= elist.size:
        st_i[I_MODE] = 1


_WDELAY = 64  # positions a coarse hit waits (its fine word being prefetched) before it is checked
_WRING = 64  # capacity of the candidate ring (a power of two, > _WDELAY / 8 groups of 8 lanes)


@njit(cache=True)
def _walk(bm, cm, a, b, prime, cand):
    """First k >= 0 with (b + k a) mod prime in E, and that y; (-1, -1) if none within prime steps.

    Eight interleaved lanes (k, k+1, ..., k+7; each lane steps by 8a) test the coarse bitmap
    without branches.  A coarse hit becomes a candidate: its fine word is prefetched and it is
    checked only _WDELAY positions later (candidates in increasing k, so the first confirmed one
    is the answer), so the walk goes on while the fine bitmap is fetched.  ``cand`` (int64,
    2 * _WRING) holds the ring of candidates (k, y).
    """
    am = a - prime
    am8 = (8 * a) % prime - prime
    y0 = b
    y1 = _adv(y0, am, prime)
    y2 = _adv(y1, am, prime)
    y3 = _adv(y2, am, prime)
    y4 = _adv(y3, am, prime)
    y5 = _adv(y4, am, prime)
    y6 = _adv(y5, am, prime)
    y7 = _adv(y6, am, prime)
    j = 0
    head = 0
    tail = 0
    rm = _WRING - 1
    while j <= prime:
        hit = (_cbit(cm, y0) | _cbit(cm, y1) | _cbit(cm, y2) | _cbit(cm, y3)
               | _cbit(cm, y4) | _cbit(cm, y5) | _cbit(cm, y6) | _cbit(cm, y7))
        if hit != 0:
            y = y0
            for lane in range(8):
                if _cbit(cm, y) != 0:
                    _prefetch(bm, y >> 6)
                    cand[tail & rm] = j + lane
                    cand[_WRING + (tail & rm)] = y
                    tail += 1
                y = _adv(y, am, prime)
        while head < tail and (cand[head & rm] + _WDELAY <= j or tail - head > _WRING - 8):
            y = cand[_WRING + (head & rm)]
            if _ebit(bm, y) != 0:
                return cand[head & rm], y
            head += 1
        y0 = _adv(y0, am8, prime)
        y1 = _adv(y1, am8, prime)
        y2 = _adv(y2, am8, prime)
        y3 = _adv(y3, am8, prime)
        y4 = _adv(y4, am8, prime)
        y5 = _adv(y5, am8, prime)
        y6 = _adv(y6, am8, prime)
        y7 = _adv(y7, am8, prime)
        j += 8
    while head < tail:
        y = cand[_WRING + (head & rm)]
        if _ebit(bm, y) != 0:
            return cand[head & rm], y
        head += 1
    return -1, -1


@njit(cache=True)
def _scan_f(elist, esize, ainv, b, prime):
    """:func:`_scan` in float64 for prime <= 2**26: (y - b) a^{-1} < 2**52 is exact in float64.

    The quotient is estimated in float64 (off by at most one), the remainder computed exactly
    (a difference of integers below 2**53) and corrected into [0, prime) without branches.
    """
    fa = float(ainv)
    fp = float(prime)
    fb = float(b)
    finv = 1.0 / fp
    best = prime
    for q in range(esize):
        d = float(elist[q]) - fb
        d = d + fp if d < 0.0 else d
        prod = d * fa
        pos = prod - float(np.int64(prod * finv)) * fp
        pos = pos + fp if pos < 0.0 else pos
        pos = pos - fp if pos >= fp else pos
        best = min(best, np.int64(pos))
    return best


@njit(cache=True)
def _scan(elist, esize, ainv, b, prime):
    """min over y in elist[:esize] of (y - b) a^{-1} mod prime (branch-free, vectorizable).

    The quotient is estimated in float64 (off by at most one for prime < 2**31) and the exact
    int64 remainder is brought back into [0, prime) by two conditional corrections.
    """
    finv = float(ainv) / float(prime)
    best = prime
    for q in range(esize):
        d = np.int64(elist[q]) - b
        d += prime & (d >> 63)
        pos = d * ainv - np.int64(float(d) * finv) * prime
        pos += prime & (pos >> 63)
        pos -= prime & ~((pos - prime) >> 63)
        best = min(best, pos)
    return best


@njit(cache=True, inline="always")
def _first_eligible(use_list, elist, esize, bm, cm, a, ainv, b, prime, cand):
    """First position k and its y for the affine map (a, b): scan the list of E, or walk the permutation."""
    if use_list:
        if prime <= _FLOAT_SCAN_MAX:
            j = _scan_f(elist, esize, ainv, b, prime)
        else:
            j = _scan(elist, esize, ainv, b, prime)
        return j, (b + j * a) % prime
    return _walk(bm, cm, a, b, prime, cand)


@njit(cache=True)
def _heap_push(heap, hkey, h, idx, v):
    """Push index ``idx`` with key ``v`` on the max-heap (indices ``heap[:h]``, keys ``hkey[:h]``)."""
    c = h
    while c > 0:
        par = (c - 1) >> 1
        if hkey[par] < v:
            heap[c] = heap[par]
            hkey[c] = hkey[par]
            c = par
        else:
            break
    heap[c] = idx
    hkey[c] = v
    return h + 1


@njit(cache=True)
def _heap_pop(heap, hkey, h):
    top = heap[0]
    h -= 1
    if h > 0:
        x = heap[h]
        v = hkey[h]
        c = 0
        while True:
            ch = 2 * c + 1
            if ch >= h:
                break
            if ch + 1 < h and hkey[ch + 1] > hkey[ch]:
                ch += 1
            if hkey[ch] > v:
                heap[c] = heap[ch]
                hkey[c] = hkey[ch]
                c = ch
            else:
                break
        heap[c] = x
        hkey[c] = v
    return top, h


@njit(cache=True)
def _advance(tau, r, order, bstart, bvals, hkey, bm, cm, elist, st_i, sk, prime, big_a, bbits, alog):
    """Move every index with residual > tau into E (untouched ones from the sorted order, touched from the heap)."""
    p = st_i[I_P]
    bend = st_i[I_BEND]
    bq = st_i[I_BQ]
    blo = st_i[I_BLO]
    npos = st_i[I_NPOS]
    while p < npos:
        while p >= bend:
            bq += 1
            lo = bstart[bq]
            hi = bstart[bq + 1]
            if hi > lo:
                _sort_bucket(order, lo, hi, r, bvals)
                blo = lo
                bend = hi
        k = p - blo
        v = bvals[k] if k < bvals.size else r[order[p]]
        if v > tau:
            _e_add(sigma_inv(order[p], sk, prime, big_a, bbits), bm, cm, elist, st_i, alog)
            p += 1
        else:
            break
    h = st_i[I_HEAP]
    while h > 0 and hkey[0] > tau:
        i, h = _heap_pop(order, hkey, h)
        _e_add(sigma_inv(i, sk, prime, big_a, bbits), bm, cm, elist, st_i, alog)
    st_i[I_P] = p
    st_i[I_BEND] = bend
    st_i[I_BQ] = bq
    st_i[I_BLO] = blo
    st_i[I_HEAP] = h


PIPE_B = 64  # iterations per request searched ahead
SPEC_MIN = 1024  # default |E| from which requests are posted (st_i[I_SPEC])
LOG_CAP = 4096  # default row size of ``alog``: additions to E logged per request (more: its answers are dropped)
# shared words of the pipeline (``sh``): latest request id posted, stop flag, main thread started
SH_GEN, SH_STOP, SH_ALIVE, N_SH = range(4)
_ALIVE_SPINS = 1 << 22  # a worker that sees no main thread after this many polls returns (never deadlock)


@njit(cache=True)
def _pipe_worker(bm, cm, sh, req, wlist, sj, sy, rdy, key_base, prime, strides, inv_strides):
    """The search thread: for the latest posted request (id g, buffer g & 1; iterations req[.,0] ..
    + req[.,1] - 1), the first position in E as it reads it (the live bitmaps, or the list copied
    at posting) for each iteration in turn, published in sj, sy with rdy = g; a newer request
    abandons the current one.  Returns when the main thread sets SH_STOP."""
    cand = np.empty(2 * _WRING, dtype=np.int64)
    bsz = sj.shape[1]
    last = _aload(sh, SH_GEN)
    spins = 0
    while True:
        if _aload(sh, SH_STOP) != 0:
            return
        g = _aload(sh, SH_GEN)
        if g == last:
            if _aload(sh, SH_ALIVE) == 0:
                spins += 1
                if spins > _ALIVE_SPINS:
                    return
            continue
        last = g
        bf = g & 1
        t0 = req[bf, 0]
        nb = min(req[bf, 1], bsz)
        use_list = req[bf, 2] == 1
        wn = min(req[bf, 3], wlist.shape[1])
        for i in range(nb):
            if _aload(sh, SH_GEN) != g or _aload(sh, SH_STOP) != 0:
                break
            qs, b = affine_key(key_base, t0 + i, prime)
            j, y = _first_eligible(use_list, wlist[bf], wn, bm, cm, strides[qs], inv_strides[qs], b, prime, cand)
            sj[bf, i] = j
            sy[bf, i] = y
            _astore(rdy, bf * bsz + i, g)


@njit(cache=True, parallel=True)
def parallel_probe(x):
    """A trivial parallel loop: running it once makes numba choose its threading layer."""
    for i in prange(x.size):
        x[i] = i


@njit(cache=True, inline="always")
def _resolve(m, ym, tau, tau_next, k, r, order, hkey, bm, cm, elist, st_i, out_new, alog):
    """Finish the selection of ``m`` (y = ``ym``, output slot ``k``), which left E tentatively.

    First selection of y: out_new[k] = 1, nnz += 1 and (τ ≠ 0) its "selected" bit is set.  Then
    r_m -= τ; if r_m > τ' it goes back into E (returns True), else it waits in the heap when
    r_m > 0 (returns False).
    """
    if _sbit(bm, ym) == 0:
        out_new[k] = 1
        st_i[I_NNZ] += 1
        if tau != 0.0:  # â_m = 0 + τ stays 0 only when τ = 0
            bm[(bm.size >> 1) + (ym >> 6)] |= np.uint64(1) << np.uint64(ym & 63)
    else:
        out_new[k] = 0
    v = r[m] - tau
    r[m] = v
    if v > tau_next:
        _e_add(ym, bm, cm, elist, st_i, alog)
        return True
    if v > 0.0:
        st_i[I_HEAP] = _heap_push(order, hkey, st_i[I_HEAP], m, v)
    return False


@njit(cache=True)
def seq_encode_run(r, order, bstart, bvals, hkey, bm, cm, elist, st_i, st_f, key_base, n, prime, sk, strides,
                   inv_strides, big_a, bbits,
                   sf, decay, n_active, refresh_every, refresh_factor, max_retries, max_iter, stop_nnz,
                   out_j, out_m, out_e, out_tau, out_new, ev_t, ev_c, counts, alog, mode, sh, req, wlist, sj, sy,
                   rdy):
    """Run sequential SuRP iterations until nnz reaches ``stop_nnz`` or an output array is full.

    Floating-point operations on the thresholds and residuals, and their order, are exactly
    those of :func:`ratedist.surp.reference.run_reference`; the reconstruction â is not kept
    here (replay ``out_m``, ``out_tau`` with :func:`replay_add`); the second half of ``bm`` marks
    (in σ-preimage space) the indices selected with τ ≠ 0, i.e. those with â ≠ 0.  ``counts`` receives
    (iterations written, refresh events written); returns a status code (ST_FULL also when
    the heap keys ``hkey`` are full).

    Selection: in list mode (|E| small, ``elist`` holds E) the first position is the minimum
    of (y - b_t) a_t^{-1} mod P over E (:func:`_scan`); otherwise the permutation is walked
    (:func:`_walk`).  List mode is entered when |E| <= st_i[I_TLO] and left when |E| exceeds
    ``elist.size`` (hysteresis), so rebuilding the list is amortized.

    The residual update of a selection is deferred (software pipelining): the selected y leaves
    E at once, r_m is prefetched, and only after the next iteration's search is r_m -= τ applied
    (:func:`_resolve`); if r_m still exceeds the new threshold, y returns to E and the search's
    answer becomes the smaller of the two positions.  Nothing in between reads r_m (the heap keys
    are inline, untouched residuals are read only from unconsumed buckets), so E, the heap's
    contents and every float operation are those of the plain order; every exit resolves first.

    Searches ahead (mode 1: a second thread, :func:`_pipe_worker`, see :func:`seq_encode_pipe`;
    mode 2: this thread, at posting, for tests): while |E| >= st_i[I_SPEC], requests of PIPE_B
    iterations are posted one ahead of the iterations being processed (buffer = id & 1), and every
    entry into E from the posting on is logged in that request's ``alog`` row.  The searcher reads
    E while it changes, but a position it read as not eligible and that is eligible at iteration t
    entered E after the posting, so it is logged: between refreshes indices leave E only when
    selected, hence the true answer is the first of the searcher's y* and the logged entries, when
    that winner is in E now (otherwise, or when the answer is not ready or the log overflowed, the
    iteration searches itself).  The main thread never waits for the searcher.
    """
    cap = out_j.size
    ecap = ev_t.size
    k_out = 0
    k_ev = 0
    status = ST_FULL
    t_lo = st_i[I_TLO]
    cand = np.empty(2 * _WRING, dtype=np.int64)
    bsz = sj.shape[1]
    cur = -1  # id of the request being consumed, and of the one posted after it
    nxt = -1
    st_i[I_LOG] = 0
    pend = False
    pk = 0
    pm = 0
    pym = 0
    ptau = 0.0
    ptn = 0.0
    if st_i[I_STARTED] == 0:
        st_f[F_TAU] = st_f[F_LAM] * sf
        _advance(st_f[F_TAU], r, order, bstart, bvals, hkey, bm, cm, elist, st_i, sk, prime, big_a, bbits, alog)
        st_i[I_STARTED] = 1
    while True:
        if pend and (st_i[I_NNZ] + 1 >= stop_nnz or st_i[I_T] >= max_iter or k_out >= cap or k_ev >= ecap
                     or st_i[I_HEAP] + 1 >= hkey.size or st_i[I_ESIZE] == 0):
            _resolve(pm, pym, ptau, ptn, pk, r, order, hkey, bm, cm, elist, st_i, out_new, alog)
            pend = False
        if st_i[I_NNZ] >= stop_nnz:
            status = ST_TARGET
            break
        if st_i[I_T] >= max_iter:
            status = ST_MAXITER
            break
        if k_out >= cap or k_ev >= ecap or st_i[I_HEAP] >= hkey.size:
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
            _advance(tau, r, order, bstart, bvals, hkey, bm, cm, elist, st_i, sk, prime, big_a, bbits, alog)
        if bad >= 0:
            status = bad
            break
        t = st_i[I_T]
        if c > 0:
            ev_t[k_ev] = t
            ev_c[k_ev] = c
            k_ev += 1
        esize = st_i[I_ESIZE]
        if st_i[I_MODE] == 0 and esize <= t_lo:
            _build_elist(bm, cm, elist, st_i)
        if mode != 0:
            if cur >= 0 and t >= req[cur & 1, 0] + req[cur & 1, 1]:
                st_i[I_LOG] &= ~(1 << (cur & 1))
                cur = -1
            if cur < 0 and nxt >= 0:
                nf = nxt & 1
                if t >= req[nf, 0] + req[nf, 1]:
                    st_i[I_LOG] &= ~(1 << nf)
                    nxt = -1
                elif t >= req[nf, 0]:
                    cur = nxt
                    nxt = -1
            if nxt < 0 and esize >= st_i[I_SPEC]:
                start = req[cur & 1, 0] + req[cur & 1, 1] if cur >= 0 else t
                nb = min(bsz, max_iter - start)
                if nb > 0:
                    rid = st_i[I_RID] + 1
                    st_i[I_RID] = rid
                    bf = rid & 1
                    ul = st_i[I_MODE] == 1 and esize <= t_lo
                    req[bf, 0] = start
                    req[bf, 1] = nb
                    req[bf, 2] = 1 if ul else 0
                    wn = 0
                    if ul:
                        wn = min(esize, wlist.shape[1])
                        wlist[bf, :wn] = elist[:wn]
                    req[bf, 3] = wn
                    st_i[I_NA + bf] = 0
                    st_i[I_LOG] |= 1 << bf
                    nxt = rid
                    if mode == 1:
                        _astore(sh, SH_GEN, rid)
                    else:
                        for i in range(nb):
                            qw, bw = affine_key(key_base, start + i, prime)
                            jw, yw = _first_eligible(ul, wlist[bf], wn, bm, cm, strides[qw], inv_strides[qw], bw,
                                                     prime, cand)
                            sj[bf, i] = jw
                            sy[bf, i] = yw
                            rdy[bf * bsz + i] = rid
                    if cur < 0 and start <= t:
                        cur = nxt
                        nxt = -1
        qs, b = affine_key(key_base, t, prime)
        a = strides[qs]
        spec_ok = False
        if cur >= 0:
            cf = cur & 1
            i = t - req[cf, 0]
            if 0 <= i < req[cf, 1] and (st_i[I_LOG] >> cf) & 1 and _aload(rdy, cf * bsz + i) == cur:
                j = sj[cf, i]
                ym = sy[cf, i]
                if j < 0:
                    j = prime
                na = st_i[I_NA + cf]
                if na > 0:
                    if prime <= _FLOAT_SCAN_MAX:
                        jl = _scan_f(alog[cf], na, inv_strides[qs], b, prime)
                    else:
                        jl = _scan(alog[cf], na, inv_strides[qs], b, prime)
                    if jl < j:
                        j = jl
                        ym = (b + j * a) % prime
                if j < prime and _ebit(bm, ym) != 0:
                    spec_ok = True
        if not spec_ok:
            j, ym = _first_eligible(st_i[I_MODE] == 1 and esize <= t_lo, elist, esize, bm, cm, a, inv_strides[qs], b,
                                    prime, cand)
        if pend:
            pend = False
            if _resolve(pm, pym, ptau, ptn, pk, r, order, hkey, bm, cm, elist, st_i, out_new, alog):
                jp = (((pym - b) % prime) * inv_strides[qs]) % prime
                if j < 0 or jp < j:
                    j = jp
                    ym = pym
            esize = st_i[I_ESIZE]
        if j < 0 or j >= prime:
            status = ST_INTERNAL
            break
        m = sigma(ym, sk, prime, big_a, bbits)
        _prefetch(r, m)
        _prefetch(bm, (bm.size >> 1) + (ym >> 6))
        out_j[k_out] = j
        out_m[k_out] = m
        out_e[k_out] = esize
        out_tau[k_out] = tau
        st_f[F_S] = st_f[F_S] - tau
        st_f[F_LAM] = st_f[F_LAM] * decay
        k_out += 1
        st_i[I_T] = t + 1
        tau_next = st_f[F_LAM] * sf
        st_f[F_TAU] = tau_next
        _e_remove(ym, bm, cm, elist, st_i)
        pend = True
        pk = k_out - 1
        pm = m
        pym = ym
        ptau = tau
        ptn = tau_next
        _advance(tau_next, r, order, bstart, bvals, hkey, bm, cm, elist, st_i, sk, prime, big_a, bbits, alog)
    if pend:
        _resolve(pm, pym, ptau, ptn, pk, r, order, hkey, bm, cm, elist, st_i, out_new, alog)
    st_i[I_LOG] = 0
    counts[0] = k_out
    counts[1] = k_ev
    return status


@njit(cache=True, parallel=True)
def seq_encode_pipe(r, order, bstart, bvals, hkey, bm, cm, elist, st_i, st_f, key_base, n, prime, sk, strides,
                    inv_strides, big_a, bbits,
                    sf, decay, n_active, refresh_every, refresh_factor, max_retries, max_iter, stop_nnz,
                    out_j, out_m, out_e, out_tau, out_new, ev_t, ev_c, counts, alog, sh, req, wlist, sj, sy, rdy):
    """:func:`seq_encode_run` (mode 1) on one thread and :func:`_pipe_worker` on another.

    The main thread never waits for the worker, and the worker returns once the main thread is
    done (or when it never starts), so this also completes when both run on one thread.  Set
    sh[SH_STOP] = sh[SH_ALIVE] = 0 before the call.
    """
    res = np.zeros(1, dtype=np.int64)
    for c in prange(2):
        if c == 0:
            _astore(sh, SH_ALIVE, 1)
            res[0] = seq_encode_run(r, order, bstart, bvals, hkey, bm, cm, elist, st_i, st_f, key_base, n, prime, sk,
                                    strides, inv_strides, big_a, bbits, sf, decay, n_active, refresh_every,
                                    refresh_factor, max_retries, max_iter, stop_nnz, out_j, out_m, out_e, out_tau,
                                    out_new, ev_t, ev_c, counts, alog, 1, sh, req, wlist, sj, sy, rdy)
            _astore(sh, SH_STOP, 1)
        else:
            _pipe_worker(bm, cm, sh, req, wlist, sj, sy, rdy, key_base, prime, strides, inv_strides)
    return res[0]


@njit(cache=True)
def replay_add(ahat, m, tau):
    """â[m_t] += τ_t in iteration order (the reconstruction of a run; the decoder's arithmetic)."""
    for t in range(m.size):
        ahat[m[t]] = ahat[m[t]] + tau[t]


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


@njit(cache=True)
def integer_symbols_run(v, sym, nlow, low):
    """The integer code of :mod:`ratedist.surp.stream` in one pass: w = v + 1; w < 8 is symbol w - 1,
    otherwise e = floor(log2 w), symbol 7 + 4(e - 3) + (the two bits after the leading one) and
    e - 2 low bits.  Returns the number of uniform low-bit chunks (at most 16 bits each)."""
    n_chunks = 0
    for q in range(v.size):
        w = np.int64(v[q]) + 1
        if w < 8:
            sym[q] = w - 1
            nlow[q] = 0
            low[q] = 0
        else:
            e = np.int64(np.log2(float(w)))
            while (np.int64(1) << e) > w:
                e -= 1
            while (np.int64(1) << (e + 1)) <= w:
                e += 1
            sym[q] = 7 + 4 * (e - 3) + ((w >> (e - 2)) & 3)
            nlow[q] = e - 2
            low[q] = w & ((np.int64(1) << (e - 2)) - 1)
            n_chunks += (1 if e - 2 > _CHUNK else 0) + 1
    return n_chunks


_CHUNK = 16


@njit(cache=True)
def chunks_run(nlow, low, vals, sizes):
    """Low bits as uniform symbols of at most 16 bits, high chunk first: (value, alphabet size) per chunk."""
    k = 0
    for q in range(nlow.size):
        nb = nlow[q]
        if nb > _CHUNK:
            vals[k] = low[q] >> _CHUNK
            sizes[k] = np.int64(1) << (nb - _CHUNK)
            k += 1
        if nb > 0:
            lb = min(nb, _CHUNK)
            vals[k] = low[q] & ((np.int64(1) << lb) - 1)
            sizes[k] = np.int64(1) << lb
            k += 1
    return k


@njit(cache=True)
def assemble_run(sym, chunks, out):
    """Inverse of :func:`integer_symbols_run` + :func:`chunks_run`: j = w - 1 from symbols and chunks.

    Returns the number of chunks consumed, or -1 if ``chunks`` is too short (corrupt data)."""
    k = 0
    for q in range(sym.size):
        s = np.int64(sym[q])
        if s < 7:
            out[q] = s
        else:
            e = (s - 7) // 4 + 3
            nb = e - 2
            lowv = np.int64(0)
            if nb > _CHUNK:
                if k >= chunks.size:
                    return -1
                lowv = np.int64(chunks[k]) << _CHUNK
                k += 1
            if k >= chunks.size:
                return -1
            lowv |= np.int64(chunks[k])
            k += 1
            out[q] = ((np.int64(1) << e) | (((s - 7) & 3) << nb) | lowv) - 1
    return k


@njit(cache=True)
def chunk_sizes_run(sym, sizes):
    """Alphabet sizes of the low-bit chunks that the integer-code symbols ``sym`` call for; returns their number."""
    k = 0
    for q in range(sym.size):
        s = np.int64(sym[q])
        if s >= 7:
            nb = (s - 7) // 4 + 1
            if nb > _CHUNK:
                sizes[k] = np.int64(1) << (nb - _CHUNK)
                k += 1
            sizes[k] = np.int64(1) << min(nb, _CHUNK)
            k += 1
    return k
