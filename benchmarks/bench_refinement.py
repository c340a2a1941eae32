"""Nearest-codeword search of successive refinement: numba CPU vs vectorized NumPy, and GPU throughput.

Targets (issue 5): numba CPU at least 20× the vectorized NumPy search measured
in the same run (the usual broadcast form ``|x[:, None] − C[None]|.sum(-1).argmin(-1)``;
same indices required).  The ratio against ratedist's own, faster NumPy backend
(distances accumulated coordinate by coordinate) is reported beside it; on a GPU at least 1e10 distance
evaluations per second (one evaluation = one block-codeword L1 distance).

Run: ``python benchmarks/bench_refinement.py [--quick]`` or ``python benchmarks/run.py --only refinement``.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def _time(fn, repeat=3):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(quick: bool = False) -> list[dict]:
    from ratedist._backend import has_cuda
    from ratedist.refinement import make_refinement_code, nearest_codeword

    rows = []
    n, k_bits, n_blocks = (12, 10, 300) if quick else (12, 12, 2000)
    code = make_refinement_code(n, k_bits / n, seed=0)
    book = code.codebooks[0]
    x = np.random.default_rng(1).laplace(size=(n_blocks, n))
    nearest_codeword(x[:4], book, backend="numba")  # compile (or load the cache) outside the timing
    t_np, (i_np, d_np) = _time(lambda: nearest_codeword(x, book, backend="numpy"), repeat=2)
    t_nb, (i_nb, d_nb) = _time(lambda: nearest_codeword(x, book, backend="numba"))

    def broadcast_search():  # the usual vectorized NumPy search: (chunk, K, n) temporaries
        return np.concatenate([np.abs(x[s:s + 64, None, :] - book[None]).sum(axis=2).argmin(axis=1)
                               for s in range(0, n_blocks, 64)])

    t_bc, i_bc = _time(broadcast_search, repeat=2)
    same = bool(np.array_equal(i_np, i_nb) and np.array_equal(d_np, d_nb))
    agree_bc = float(np.mean(i_bc == i_nb))
    evals = n_blocks * book.shape[0]
    size = f"n={n}, K={book.shape[0]}, B={n_blocks}"
    rows.append({
        "name": "refinement.search numba CPU vs NumPy broadcast search",
        "ratio": t_bc / t_nb,
        "target": ">= 20x",
        "passed": bool(t_bc / t_nb >= 20 and agree_bc == 1.0),
        "detail": f"{size}: broadcast numpy {t_bc:.3f} s ({evals / t_bc:.3g} eval/s), numba {t_nb:.4f} s "
                  f"({evals / t_nb:.3g} eval/s); same indices: {agree_bc:.4f}; "
                  f"mean L1 distortion {d_nb.mean() / n:.4f}/symbol",
    })
    rows.append({
        "name": "refinement.search numba CPU vs ratedist NumPy backend",
        "ratio": t_np / t_nb,
        "target": "info (coordinate-accumulated NumPy, the library's reference backend)",
        "passed": same,
        "detail": f"{size}: numpy backend {t_np:.3f} s ({evals / t_np:.3g} eval/s); indices and distances "
                  f"bitwise identical: {same}",
    })
    if has_cuda():
        from numba import cuda

        from ratedist.kernels._refine_cuda import nearest_l1_cuda

        n_g, k_g, b_g = (16, 14, 2**14) if quick else (16, 16, 2**16)
        book_g = make_refinement_code(n_g, k_g / n_g, seed=0).codebooks[0]
        xg = np.random.default_rng(2).laplace(size=(b_g, n_g))
        d_x, d_c = cuda.to_device(xg), cuda.to_device(book_g)
        idx, dist = nearest_l1_cuda(d_x, d_c)  # compile
        cuda.synchronize()

        def run():
            nearest_l1_cuda(d_x, d_c, idx, dist)
            cuda.synchronize()

        t_g, _ = _time(run)
        evals_g = b_g * book_g.shape[0]
        rate = evals_g / t_g
        sub = slice(0, 256)
        i_ref, _ = nearest_codeword(xg[sub], book_g, backend="numba")
        same_g = bool(np.array_equal(idx.copy_to_host()[sub], i_ref))
        rows.append({
            "name": "refinement.search GPU distance evaluations/s",
            "ratio": rate / 1e10,
            "target": ">= 1e10 eval/s (ratio = rate / 1e10)",
            "passed": bool(rate >= 1e10 and same_g),
            "detail": f"n={n_g}, K={book_g.shape[0]}, B={b_g}: {t_g:.4f} s, {rate:.3g} eval/s; "
                      f"first 256 indices equal the CPU kernel's: {same_g}",
        })
    else:
        rows.append({"name": "refinement.search GPU (skipped: no CUDA device)", "ratio": float("nan"),
                     "target": ">= 1e10 eval/s", "passed": True, "detail": "no GPU on this machine"})
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(row)
