"""Claims of THEORY.md §4 (sequential SuRP) for ``ratedist verify``."""

from __future__ import annotations

import math

import numpy as np

from ..verify import Check, claim

__all__: list[str] = []


def _laplace_model(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"w1": rng.laplace(size=(n // 2 // 20, 20)).astype(np.float32), "w2": rng.laplace(size=n - n // 2) * 0.1}


@claim("surp.decode_bit_exact", "decode(encode(w)) equals the encoder's own reconstruction bit for bit at every "
       "checkpoint (sequential SuRP, prefix decoding)", "THEORY.md §4c (exact decoder); issue 3")
def _decode_exact() -> Check:
    from . import decode, encode

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
    from . import encode
    from .reference import encode_reference

    w = _laplace_model(4000, seed=2)
    a = encode(w, [0.95, 0.8], seed=9).stream
    b = encode_reference(w, [0.95, 0.8], seed=9).stream
    return Check(measured=0.0 if a == b else 1.0, tolerance=0.0, detail=f"{len(a)} vs {len(b)} bytes")


@claim("surp.distortion_drops_by_tau", "Each SuRP iteration lowers the L1 distortion Σ|a − â| by exactly τ_t",
       "THEORY.md §4b invariants")
def _drop() -> Check:
    from ._common import flatten, needed_nonzeros
    from .encoder import sequential_params
    from .reference import run_reference

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
       "per layer (precondition of the output-perturbation bound)", "THEORY.md §2, §4b invariants")
def _shrink() -> Check:
    from ..data import default_model
    from . import decode, encode

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
       "Σ_t H(Geom(|E_t|/n)) (Laplacian, n = 200,000, 90% sparsity)", "THEORY.md §4c; issue 3")
def _bits() -> Check:
    from . import encode

    w = {"w": np.random.default_rng(4).laplace(size=200_000)}
    rep = encode(w, 0.9, seed=1).report
    ratio = rep.extra["positions_bits"] / rep.extra["positions_estimate_bits"]
    return Check(measured=ratio, tolerance=1.05, detail=f"{rep.extra['positions_bits']} measured bits vs "
                 f"{rep.extra['positions_estimate_bits']:.0f} estimated")
