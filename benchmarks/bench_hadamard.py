"""Walsh–Hadamard transform of d = 2^24: numba kernel against the NumPy reference, same run.

Target (issue 6): numba at least 5× the NumPy reference; the answer must match.
"""

from __future__ import annotations

import time

import numpy as np


def main(quick: bool = False) -> list[dict]:
    from ratedist.compressors import hadamard

    n = 1 << (18 if quick else 24)
    x = np.random.default_rng(0).standard_normal(n)
    hadamard(x[:1024], backend="numba")  # compile outside the timing
    t0 = time.perf_counter()
    fast = hadamard(x, backend="numba")
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    ref = hadamard(x, backend="numpy")
    t_ref = time.perf_counter() - t0
    err = float(np.max(np.abs(fast - ref)) / np.max(np.abs(ref)))
    ratio = t_ref / t_fast
    return [{"name": f"WHT d=2^{n.bit_length() - 1} numba vs NumPy", "ratio": ratio, "target": ">= 5x",
             "passed": bool(ratio >= 5 and err < 1e-12),
             "detail": f"numba {t_fast:.3f} s, NumPy {t_ref:.3f} s, max relative difference {err:.1e}"}]


if __name__ == "__main__":
    for row in main():
        print(row)
