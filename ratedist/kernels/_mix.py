"""splitmix64's finalizer: the one 64-bit mixer behind every counter-based random stream of ratedist
(SuRP's shared permutations, FedPM's mask uniforms, the bitshift trellis's codebook).

Three spellings of the same function, for the three places it runs: inside numba kernels
(:func:`mix64`, uint64 scalars), on arrays (:func:`mix64_array`, NumPy or CuPy uint64, wrapping
modulo 2^64), and on Python integers (:func:`mix64_int`, for the slow references and key set-up).
The test suite checks that they agree with each other and with splitmix64's published first output.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["GOLDEN", "mix64", "mix64_array", "mix64_int"]

#: splitmix64's increment (2^64 / golden ratio).
GOLDEN = 0x9E3779B97F4A7C15
_C1, _C2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_MASK = (1 << 64) - 1
_U1, _U2 = np.uint64(_C1), np.uint64(_C2)
_S30, _S27, _S31 = np.uint64(30), np.uint64(27), np.uint64(31)


@njit(cache=True, inline="always")
def mix64(z):
    """splitmix64 finalizer on a uint64 scalar (wrapping arithmetic), for numba kernels."""
    z = (z ^ (z >> _S30)) * _U1
    z = (z ^ (z >> _S27)) * _U2
    return z ^ (z >> _S31)


def mix64_array(z, xp=np):
    """splitmix64 finalizer on a uint64 array (NumPy or CuPy: uint64 arithmetic wraps modulo 2^64)."""
    z = (z ^ (z >> xp.uint64(30))) * xp.uint64(_C1)
    z = (z ^ (z >> xp.uint64(27))) * xp.uint64(_C2)
    return z ^ (z >> xp.uint64(31))


def mix64_int(z: int) -> int:
    """splitmix64 finalizer on a Python integer, reduced modulo 2^64 first."""
    z &= _MASK
    z = ((z ^ (z >> 30)) * _C1) & _MASK
    z = ((z ^ (z >> 27)) * _C2) & _MASK
    return z ^ (z >> 31)
