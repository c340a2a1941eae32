"""The shared randomness of a sequential SuRP stream: the keyed pseudorandom permutations that encoder
and decoder both replay (docs/theory.md §4c).

π_t(k) = σ((a_t k + b_t) mod P): P the smallest prime ≥ n, σ a fixed keyed Feistel permutation of
[0, P), (a_t, b_t) derived from the seed and the iteration t. Plain NumPy and Python integers: the
numba kernels (:mod:`ratedist.kernels._surp_cpu`) compute the same values and are tested against this.
"""

from __future__ import annotations

import numpy as np

from ..kernels._mix import mix64_int

__all__ = ["permutation_domain", "key_base", "next_prime", "Permutations", "N_KEYS", "N_STRIDES"]

_MASK = (1 << 64) - 1
_C2 = 0x94D049BB133111EB
_H1, _H2 = 0xD6E8FEB86659FD93, 0xA3B195354A39B70D
_GOLD, _TSTEP = 0x9E3779B97F4A7C15, 0xD1B54A32D192ED03
N_KEYS = 4
N_STRIDES = 4096


def _h_np(x: np.ndarray) -> np.ndarray:
    x = x * np.uint64(_H1)
    x = (x ^ (x >> np.uint64(32))) * np.uint64(_H2)
    return x ^ (x >> np.uint64(29))


def key_base(seed: int) -> int:
    """64-bit key of the permutations for ``seed``."""
    return mix64_int((int(seed) & _MASK) ^ _GOLD)


def permutation_domain(n: int) -> tuple[int, int]:
    """(A, b): the permutations act on [0, A·2**b) with A·2**b ≥ n, A·2**b − n < 2**b."""
    nbits = max(2, (n - 1).bit_length())
    b = nbits // 2
    return -(-n // (1 << b)), b


def _feistel(x, keys, big_a, bbits, inverse=False):
    mb = np.uint64((1 << bbits) - 1)
    ua = np.uint64(big_a)
    x = np.asarray(x, dtype=np.int64).astype(np.uint64)
    left, right = x >> np.uint64(bbits), x & mb

    rounds = range(N_KEYS - 2, -1, -2) if inverse else range(0, N_KEYS, 2)
    for rr in rounds:
        k0, k1 = np.uint64(keys[rr]), np.uint64(keys[rr + 1])
        if inverse:
            right = right ^ (_h_np(left ^ k1) & mb)
            d = ((_h_np(right ^ k0) >> np.uint64(32)) * ua) >> np.uint64(32)
            left = np.where(left >= d, left - d, left + ua - d)
        else:
            d = ((_h_np(right ^ k0) >> np.uint64(32)) * ua) >> np.uint64(32)
            left = left + d
            left = np.where(left >= ua, left - ua, left)
            right = right ^ (_h_np(left ^ k1) & mb)
    return ((left << np.uint64(bbits)) | right).astype(np.int64)


def _is_prime(m: int) -> bool:
    if m < 2:
        return False
    for q in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):
        if m % q == 0:
            return m == q
    d, s = m - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for a in (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37):  # deterministic below 3.3e24
        x = pow(a, d, m)
        if x in (1, m - 1):
            continue
        for _ in range(s - 1):
            x = x * x % m
            if x == m - 1:
                break
        else:
            return False
    return True


def next_prime(n: int) -> int:
    """Smallest prime ≥ max(n, 2): the modulus of the affine maps."""
    m = max(int(n), 2)
    while not _is_prime(m):
        m += 1
    return m


class Permutations:
    """The shared pseudorandom permutations of one stream: π_t(k) = σ((a_t k + b_t) mod P).

    P is the smallest prime ≥ n; σ is a fixed keyed Feistel permutation of
    [0, P) (cycle walking on the mixed-radix domain of :func:`permutation_domain`);
    (a_t, b_t) ∈ [1, P) × [0, P) are derived from the seed and t.  Positions
    whose image is ≥ n are never eligible.
    """

    def __init__(self, n: int, seed: int):
        self.n = int(n)
        self.prime = next_prime(n)
        self.base = key_base(seed)
        self.sigma_keys = [mix64_int(self.base + (r + 1) * _GOLD) for r in range(N_KEYS)]
        self.big_a, self.bbits = permutation_domain(self.prime)

    def affine(self, t: int) -> tuple[int, int]:
        """(a_t, b_t): a_t from a keyed table of N_STRIDES strides, b_t uniform in [0, P)."""
        kt = mix64_int(self.base + t * _TSTEP)
        q = mix64_int(kt ^ _GOLD) & (N_STRIDES - 1)
        b = mix64_int((kt + _GOLD) & _MASK) % self.prime
        return self.stride(q), b

    def stride(self, q: int) -> int:
        return mix64_int(self.base ^ (((q + 1) * _C2) & _MASK)) % (self.prime - 1) + 1

    def stride_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """The stride table and its inverses mod P (int64), as the kernels take them."""
        a = np.array([self.stride(q) for q in range(N_STRIDES)], dtype=np.int64)
        inv = np.array([pow(int(x), -1, self.prime) for x in a], dtype=np.int64)
        return a, inv

    def _walk(self, x, inverse):
        out = _feistel(x, self.sigma_keys, self.big_a, self.bbits, inverse)
        todo = out >= self.prime
        while np.any(todo):
            out[todo] = _feistel(out[todo], self.sigma_keys, self.big_a, self.bbits, inverse)
            todo = out >= self.prime
        return out

    def sigma(self, y):
        return self._walk(np.asarray(y, dtype=np.int64), False)

    def sigma_inv(self, i):
        return self._walk(np.asarray(i, dtype=np.int64), True)

    def forward(self, t: int, k) -> np.ndarray:
        """π_t(k) for positions ``k``."""
        a, b = self.affine(t)
        return self.sigma((a * np.asarray(k, dtype=np.int64) + b) % self.prime)

    def inverse(self, t: int, i) -> np.ndarray:
        """π_t^{-1}(i) for indices ``i``."""
        a, b = self.affine(t)
        ainv = pow(a, -1, self.prime)
        return ((self.sigma_inv(i) - b) % self.prime) * ainv % self.prime
