"""Claims of docs/theory.md §6 (mean-estimation baselines) for ``ratedist verify``."""


from __future__ import annotations

SECTION = 6

import math

import numpy as np

from . import Check, claim
from ..compressors import decode, get_compressor, hadamard, rotate, unrotate
from ..compressors.eden import lloyd_max_gaussian

K_SE = 5.0


def _mc_unbiased(name, params, trials, d=16, seed=3):
    rng = np.random.default_rng(seed)
    x = rng.random(d) if name == "fedpm" else rng.standard_normal(d) * np.linspace(0.2, 3, d)
    c = get_compressor(name, **params)
    xs = np.array([c.decode(c.encode(x, seed=s)) for s in range(trials)])
    z = np.abs(xs.mean(0) - x) / (xs.std(0, ddof=1) / math.sqrt(trials) + 1e-15)
    return Check(float(z.max()), K_SE, detail=f"max |z| over {d} coordinates, {trials} seeds")


@claim("compressors.qsgd.unbiased", "QSGD (s = 2) is unbiased: E x̂ = x (Monte Carlo, standard errors)", "docs/theory.md §6 (QSGD)")
def _qsgd() -> Check:
    return _mc_unbiased("qsgd", {"s": 2}, 2500)


@claim("compressors.drive.unbiased", "DRIVE with S = ‖x‖²/‖Rx‖₁ and a uniformly random rotation is unbiased "
       "(Monte Carlo, standard errors)", "docs/theory.md §6 (DRIVE)")
def _drive() -> Check:
    return _mc_unbiased("drive", {"rotation": "uniform"}, 1500)


@claim("compressors.eden.unbiased", "EDEN at 1.5 bits with a uniformly random rotation is unbiased "
       "(Monte Carlo, standard errors)", "docs/theory.md §6 (EDEN)")
def _eden() -> Check:
    return _mc_unbiased("eden", {"bits": 1.5, "rotation": "uniform"}, 1200)


@claim("compressors.fedpm.unbiased", "The FedPM compressor (one Bernoulli sample) is unbiased for θ", "docs/theory.md §5")
def _fedpm() -> Check:
    return _mc_unbiased("fedpm", {}, 2500)


@claim("compressors.drive.identity", "DRIVE (unbiased S): ‖x − x̂‖² = ‖x‖²(d‖x‖²/‖Rx‖₁² − 1) for d a power of two "
       "(relative error, float32 scale)", "docs/theory.md §6 (DRIVE)")
def _identity() -> Check:
    worst = 0.0
    for seed, d in enumerate((1, 2, 16, 256, 4096)):
        x = np.random.default_rng(seed).standard_normal(d)
        xh = decode(get_compressor("drive").encode(x, seed=seed))
        nx = x @ x
        pred = nx * (d * nx / np.abs(rotate(x, seed)).sum() ** 2 - 1)
        worst = max(worst, abs(np.sum((x - xh) ** 2) - pred) / nx)
    return Check(float(worst), 4e-6)


@claim("compressors.rotation.orthogonal", "The randomized Hadamard rotation R = H·D/√n is orthogonal: ‖Rx‖ = ‖x‖ "
       "and R⁻¹Rx = x; the numba WHT equals the NumPy reference", "docs/theory.md §6 checks")
def _orth() -> Check:
    worst = 0.0
    for d in (1, 3, 64, 1000):
        x = np.random.default_rng(d).standard_normal(d)
        rx = rotate(x, d)
        worst = max(worst, abs(np.linalg.norm(rx) / np.linalg.norm(x) - 1),
                    float(np.max(np.abs(unrotate(rx, d, d) - x))) / np.linalg.norm(x))
    y = np.random.default_rng(0).standard_normal((2, 1024))
    worst = max(worst, float(np.max(np.abs(hadamard(y, backend="numba") - hadamard(y, backend="numpy")))) / 1024)
    return Check(worst, 1e-12)


@claim("compressors.bits_are_bytes", "For every compressor the reported bits equal 8 × the length of bytes that "
       "decode (decoding needs only the bytes)", "ARCHITECTURE 'real bits'")
def _bits() -> Check:
    bad = 0
    for name, params in [("qsgd", {"s": 4}), ("drive", {}), ("eden", {"bits": 0.5}), ("eden", {"bits": 3}),
                         ("fedmask", {}), ("fedpm", {})]:
        c = get_compressor(name, **params)
        for d in (1, 100, 3000):
            rng = np.random.default_rng(d)
            x = rng.random(d) if name in ("fedmask", "fedpm") else rng.standard_normal(d)
            data = c.encode(x, seed=d)
            bad += int(c.n_bits(data) != 8 * len(data)) + int(decode(data).shape != (d,))
    return Check(float(bad), 0.0)


@claim("compressors.vnmse", "Large-d vNMSE: DRIVE unbiased → π/2 − 1, DRIVE MSE-scale → 1 − 2/π, EDEN 2 bits → "
       "σ₂²/(1 − σ₂²) with σ₂² the Lloyd–Max MSE (d = 2^14, 20 draws; max relative gap)", "docs/theory.md §6")
def _vnmse() -> Check:
    x = np.random.default_rng(0).standard_normal(1 << 14)
    s2 = lloyd_max_gaussian(2)[2]
    gaps = []
    for name, params, target in [("drive", {}, math.pi / 2 - 1), ("drive", {"scale": "mse"}, 1 - 2 / math.pi),
                                 ("eden", {"bits": 2}, s2 / (1 - s2))]:
        c = get_compressor(name, **params)
        v = np.mean([np.sum((decode(c.encode(x, seed=s)) - x) ** 2) / (x @ x) for s in range(20)])
        gaps.append(abs(v / target - 1))
    return Check(float(max(gaps)), 0.02, detail="relative gaps " + ", ".join(f"{g:.4f}" for g in gaps))


@claim("compressors.lloyd_max", "Lloyd–Max MSE of N(0,1): 0.3634, 0.1175, 0.03455 at 1..3 bits", "docs/theory.md §6 (EDEN)")
def _lloyd() -> Check:
    gap = max(abs(lloyd_max_gaussian(b)[2] - v) for b, v in [(1, 0.36338), (2, 0.11748), (3, 0.034548)])
    return Check(float(gap), 1e-4)
