"""Claims of docs/theory.md §4: SuRP, the sequential encoder and the data-parallel variant."""


from __future__ import annotations

SECTION = 4

import math

import numpy as np

from . import Check, claim

__all__: list[str] = []


def _laplace_model(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"w1": rng.laplace(size=(n // 2 // 20, 20)).astype(np.float32), "w2": rng.laplace(size=n - n // 2) * 0.1}


@claim("surp.decode_bit_exact", "decode(encode(w)) equals the encoder's own reconstruction bit for bit at every "
       "checkpoint (sequential SuRP, prefix decoding)", "docs/theory.md §4c (exact decoder); issue 3")
def _decode_exact() -> Check:
    from ..surp import decode, encode

    w = _laplace_model(6000)
    enc = encode(w, [0.98, 0.9, 0.7], seed=5, keep_reconstructions=True)
    bad = 0
    for k, cp in enumerate(enc.report.checkpoints):
        dec = decode(enc.stream[:cp.n_bytes], checkpoint=k)
        bad += sum(int(np.count_nonzero(dec[name].view(np.uint8) != enc.reconstructions[k][name].view(np.uint8)))
                   for name in w)
    return Check(measured=float(bad), tolerance=0.0, detail="differing bytes over all checkpoints")


@claim("surp.fast_equals_reference", "The fast encoder produces the same stream as the slow reference "
       "(same seed, same bytes)", "issue 3 (reference.py)")
def _fast_ref() -> Check:
    from ..surp import encode
    from ..surp.encoder import encode_reference

    w = _laplace_model(4000, seed=2)
    a = encode(w, [0.95, 0.8], seed=9).stream
    b = encode_reference(w, [0.95, 0.8], seed=9).stream
    return Check(measured=0.0 if a == b else 1.0, tolerance=0.0, detail=f"{len(a)} vs {len(b)} bytes")


@claim("surp.distortion_drops_by_tau", "Each SuRP iteration lowers the L1 distortion Σ|a − â| by exactly τ_t",
       "docs/theory.md §4b invariants")
def _drop() -> Check:
    from ..surp._common import flatten, needed_nonzeros
    from ..surp.encoder import sequential_params
    from ..surp.reference import run_reference

    flat = flatten(_laplace_model(2000, seed=3))
    a = flat.magnitudes
    p = sequential_params(a)
    tr = run_reference(a, p, [needed_nonzeros(0.6, a.size)], max_iterations=10**6, max_retries=10**6)
    ahat = np.zeros_like(a)
    prev = math.fsum(np.abs(a - ahat))
    worst = 0.0
    for t in range(tr.j.size):
        ahat[tr.m[t]] += tr.tau[t]
        cur = math.fsum(np.abs(a - ahat))
        worst = max(worst, abs((prev - cur) - tr.tau[t]) / tr.tau[t])
        prev = cur
    return Check(measured=worst, tolerance=1e-9, detail=f"{tr.j.size} iterations; max relative deviation")


@claim("surp.shrinks_weights", "SuRP's reconstruction satisfies 0 ≤ |ŵ| ≤ |w| with signs kept, so ‖ŵ_l‖ ≤ ‖w_l‖ "
       "per layer (precondition of the output-perturbation bound)", "docs/theory.md §2, §4b invariants")
def _shrink() -> Check:
    from ..data import default_model
    from ..surp import decode, encode

    w = default_model()
    enc = encode(w, [0.9, 0.5], seed=0)
    worst = 0.0
    for k in range(2):
        d = decode(enc.stream, checkpoint=k)
        for name, x in w.items():
            x64, y64 = x.astype(np.float64), d[name].astype(np.float64)
            over = np.abs(y64) - np.abs(x64) * (1 + 1e-6)  # float32 output rounding
            wrong_sign = np.count_nonzero((y64 != 0) & (np.sign(y64) != np.sign(x64)))
            worst = max(worst, float(over.max()), float(wrong_sign),
                        float(np.abs(y64).sum() - np.abs(x64).sum() * (1 + 1e-6)))
    return Check(measured=max(worst, 0.0), tolerance=0.0, detail="max violation (0 = none)")


@claim("surp.index_bits_near_estimate", "Measured position bits are within 5% of the paper-style estimate "
       "Σ_t H(Geom(|E_t|/n)) (Laplacian, n = 200,000, 90% sparsity)", "docs/theory.md §4c; issue 3")
def _bits() -> Check:
    from ..surp import encode

    w = {"w": np.random.default_rng(4).laplace(size=200_000)}
    rep = encode(w, 0.9, seed=1).report
    ratio = rep.extra["positions_bits"] / rep.extra["positions_estimate_bits"]
    return Check(measured=ratio, tolerance=1.05, detail=f"{rep.extra['positions_bits']} measured bits vs "
                 f"{rep.extra['positions_estimate_bits']:.0f} estimated")


# --- the data-parallel variant ---


def _parallel_weights(n: int, seed: int):
    rng = np.random.default_rng(seed)
    return {"w": rng.laplace(size=n), "b": rng.standard_t(3, size=n // 4).astype(np.float32)}


@claim("surp.parallel.bit_exact", "The parallel SuRP stream decodes, at every checkpoint, to the encoder's "
       "reconstruction bit for bit (numpy.array_equal)", "issue 4; docs/theory.md §4c (exact decoder)")
def _bit_exact() -> Check:
    from ..surp import decode
    from ..surp.parallel import encode_parallel

    w = _parallel_weights(20_000, 1)
    enc = encode_parallel(w, [0.95, 0.9, 0.7], backend="auto", keep_reconstructions=True)
    mismatches = 0
    for k in range(len(enc.report.checkpoints)):
        out = decode(enc.stream, checkpoint=k)
        mismatches += sum(int(not np.array_equal(out[name], enc.reconstructions[k][name])) for name in w)
    return Check(measured=float(mismatches), tolerance=0.0, detail="tensors differing over 3 checkpoints")


@claim("surp.parallel.distortion_identity", "After every round t, the L1 distortion n·d(u,û) tracked by the "
       "encoder (Σ_i a_i − Σ_s τ_s |E_s|) equals the sum of the residuals computed independently by a full scan",
       "issue 4; docs/theory.md §4b invariants (Σ|a − â| drops by τ per selection)")
def _distortion_identity() -> Check:
    from ..surp._common import flatten
    from ..surp.parallel import DEFAULT_GAMMA, plan_rounds

    flat = flatten(_parallel_weights(20_000, 2))
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
        code = "from ratedist.claims.surp import _compare; print(_compare())"
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
    from ..surp.parallel import encode_parallel

    rng = np.random.default_rng(3)
    w = {"w": rng.laplace(size=400)}
    cpu = encode_parallel(w, [0.9, 0.6], backend="numba").stream
    dev = encode_parallel(w, [0.9, 0.6], backend="cuda").stream
    return f"{cpu == dev} {len(cpu)}"
