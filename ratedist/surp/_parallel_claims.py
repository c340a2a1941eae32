"""Claims of the data-parallel SuRP (issue 4; THEORY.md §4) for ``ratedist verify``."""

from __future__ import annotations

import numpy as np

from ..verify import Check, claim

__all__: list[str] = []


def _weights(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return {"w": rng.laplace(size=n), "b": rng.standard_t(3, size=n // 4).astype(np.float32)}


@claim("surp.parallel.bit_exact", "The parallel SuRP stream decodes, at every checkpoint, to the encoder's "
       "reconstruction bit for bit (numpy.array_equal)", "issue 4; THEORY.md §4c (exact decoder)")
def _bit_exact() -> Check:
    from . import decode
    from .parallel import encode_parallel

    w = _weights(20_000, 1)
    enc = encode_parallel(w, [0.95, 0.9, 0.7], backend="auto", keep_reconstructions=True)
    mismatches = 0
    for k in range(len(enc.report.checkpoints)):
        out = decode(enc.stream, checkpoint=k)
        mismatches += sum(int(not np.array_equal(out[name], enc.reconstructions[k][name])) for name in w)
    return Check(measured=float(mismatches), tolerance=0.0, detail="tensors differing over 3 checkpoints")


@claim("surp.parallel.distortion_identity", "After every round t, the L1 distortion n·d(u,û) tracked by the "
       "encoder (Σ_i a_i − Σ_s τ_s |E_s|) equals the sum of the residuals computed independently by a full scan",
       "issue 4; THEORY.md §4b invariants (Σ|a − â| drops by τ per selection)")
def _distortion_identity() -> Check:
    from ._common import flatten
    from .parallel import DEFAULT_GAMMA, plan_rounds

    flat = flatten(_weights(20_000, 2))
    a = flat.magnitudes
    plan, taus = plan_rounds(a, flat.signs < 0, [0.9, 0.5], gamma=DEFAULT_GAMMA, backend="auto")
    tracked = float(np.sum(a))
    r = a.copy()
    worst = 0.0
    for t in range(plan.n_rounds):
        size = int(plan.new_off[t + 1] - plan.new_off[t] + plan.ref_off[t + 1] - plan.ref_off[t])
        tracked -= taus[t] * size
        e = r > taus[t]
        r[e] -= taus[t]
        worst = max(worst, abs(tracked - float(np.sum(r))) / float(np.sum(a)))
    last = abs(plan.residual_sums[-1] - float(np.sum(r))) / float(np.sum(a))
    # relative error of two float64 summation orders over 25,000 terms
    return Check(measured=max(worst, last), tolerance=1e-9,
                 detail=f"max relative difference over {plan.n_rounds} rounds")


@claim("surp.parallel.cpu_equals_cuda", "The numba CPU and the numba.cuda kernels (CUDA simulator when no GPU) "
       "write the identical stream for a fixed input", "issue 4 (same input, same bytes on every backend)")
def _cpu_cuda() -> Check:
    from .._backend import cuda_simulated, has_cuda

    if not (has_cuda() or cuda_simulated()):
        # numba reads NUMBA_ENABLE_CUDASIM at import: run the comparison in a child process.
        import os
        import subprocess
        import sys

        env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
        code = "from ratedist.surp._parallel_claims import _compare; print(_compare())"
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            return Check(measured=1.0, tolerance=0.0, detail=f"simulator run failed: {out.stderr[-400:]}")
        same, n_bytes = out.stdout.split()[-2:]
        return Check(measured=float(same != "True"), tolerance=0.0,
                     detail=f"{n_bytes} bytes compared (CUDA simulator, child process)")
    same, n_bytes = _compare().split()
    where = "CUDA simulator" if cuda_simulated() else "GPU"
    return Check(measured=float(same != "True"), tolerance=0.0, detail=f"{n_bytes} bytes compared ({where})")


def _compare() -> str:
    """``"<streams equal> <n_bytes>"`` for the numba and cuda backends on a fixed 400-weight input."""
    from .parallel import encode_parallel

    rng = np.random.default_rng(3)
    w = {"w": rng.laplace(size=400)}
    cpu = encode_parallel(w, [0.9, 0.6], backend="numba").stream
    dev = encode_parallel(w, [0.9, 0.6], backend="cuda").stream
    return f"{cpu == dev} {len(cpu)}"
