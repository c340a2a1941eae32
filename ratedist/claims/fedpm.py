"""Claims of docs/theory.md §5 (FedPM) for ``ratedist verify``."""


from __future__ import annotations

SECTION = 5

import math

import numpy as np

from ..coding.entropy import binary_entropy_bits
from . import Check, claim
from ..fedpm.aggregation import BetaAggregator
from ..fedpm.bitrate import bitrate_paper, bitrate_per_coordinate, decode_mask_paper, decode_mask_per_coordinate
from ..fedpm.estimator import error_bound, estimator_error, mean_estimate
from ..fedpm.masks import sample_masks
from ..fedpm.privacy import clip_for_ldp, ldp_epsilon

K_SE = 5.0


@claim("fedpm.estimator.unbiased", "FedPM's mean estimator θ̂ = (1/K)Σ m^k is unbiased: E θ̂ = θ̄ "
       "(Monte Carlo, max deviation in standard errors)", "docs/theory.md §5 (mean estimator)")
def _unbiased() -> Check:
    rng = np.random.default_rng(5)
    theta = rng.random((5, 40))
    t = 4000
    acc = np.zeros(40)
    for _ in range(t):
        acc += mean_estimate(sample_masks(theta, rng=rng))
    acc /= t
    se = np.sqrt(np.sum(theta * (1 - theta), 0) / 25 / t)
    return Check(float(np.max(np.abs(acc - theta.mean(0)) / se)), K_SE, detail="max |z| over 40 coordinates")


@claim("fedpm.estimator.error_formula", "E‖θ̂ − θ̄‖² = (1/K²) Σ_k Σ_i θ_i^k(1 − θ_i^k) (Monte Carlo, in standard errors)",
       "docs/theory.md §5 (mean estimator)")
def _error_formula() -> Check:
    rng = np.random.default_rng(6)
    theta = rng.random((4, 30))
    t = 4000
    errs = np.array([np.sum((mean_estimate(sample_masks(theta, rng=rng)) - theta.mean(0)) ** 2) for _ in range(t)])
    z = abs(errs.mean() - estimator_error(theta)) / (errs.std(ddof=1) / math.sqrt(t))
    return Check(float(z), K_SE, detail=f"measured {errs.mean():.5g}, exact {estimator_error(theta):.5g}")


@claim("fedpm.estimator.bound", "estimator_error ≤ d/(4K), with equality iff all θ = ½", "docs/theory.md §5 (mean estimator)")
def _bound() -> Check:
    rng = np.random.default_rng(7)
    worst = -np.inf
    for _ in range(200):
        k, d = rng.integers(1, 8), rng.integers(1, 50)
        theta = rng.random((k, d))
        worst = max(worst, estimator_error(theta) / error_bound(d, k) - 1)
    eq = abs(estimator_error(np.full((3, 7), 0.5)) / error_bound(7, 3) - 1)
    ok = worst < 0 and eq < 1e-15
    return Check(float(max(worst, 0.0) + eq), 1e-15, passed=ok, detail=f"max ratio−1 on random θ {worst:.3g}; at ½: {eq:.1e}")


@claim("fedpm.aggregation.mode_is_average", "Beta aggregation with per-round reset and λ₀ = 1 returns exactly the "
       "plain average of the masks; θ^g ∈ [0, 1] and finite scores for unanimous clients", "docs/theory.md §5 (Bayesian aggregation)")
def _mode_average() -> Check:
    rng = np.random.default_rng(8)
    agg = BetaAggregator(500)
    diff = 0.0
    for r in range(5):
        m = (rng.random((7, 500)) < rng.random(500)).astype(np.uint8)
        m[:, :10] = 1
        m[:, 10:20] = 0
        g = agg.update(m)
        diff = max(diff, float(np.max(np.abs(g - mean_estimate(m)))))
        if not np.all(np.isfinite(agg.scores())) or g.min() < 0 or g.max() > 1:
            return Check(math.inf, 0.0, passed=False, detail="non-finite scores or θ^g outside [0, 1]")
    return Check(diff, 0.0, detail="max |mode − average| over 5 rounds")


@claim("fedpm.bitrate.measured_bytes", "Every reported FedPM bit count is 8 × the length of bytes that decode to the "
       "mask (paper accounting and per-coordinate models)", "docs/theory.md §5 (bitrate); ARCHITECTURE 'real bits'")
def _bytes() -> Check:
    rng = np.random.default_rng(9)
    bad = 0
    for n in (1, 7, 100, 5000, 100_000):
        th = rng.random(n)
        m = (rng.random(n) < th).astype(np.uint8)
        a, b = bitrate_paper(m), bitrate_per_coordinate(m, th)
        bad += int(not np.array_equal(decode_mask_paper(a.data), m)) + int(a.n_bits != 8 * len(a.data))
        bad += int(not np.array_equal(decode_mask_per_coordinate(b.data, th), m)) + int(b.n_bits != 8 * len(b.data))
    return Check(float(bad), 0.0, detail="failed round trips or bit counts")


@claim("fedpm.bitrate.bounds", "Paper accounting: log2(N)/N ≤ h_b(f) + log2(N)/N ≤ 1 + log2(N)/N; measured bits per "
       "entry ≤ formula + (header + CRC + 64 range-coder bits + 1)/N + 1e-3; h_b(f) = h_b(1 − f)", "docs/theory.md §5 (bitrate)")
def _bounds() -> Check:
    rng = np.random.default_rng(10)
    worst = -np.inf
    for n in (10, 1000, 200_000):
        for f in (0.0, 0.01, 0.3, 0.5, 0.9, 1.0):
            m = (rng.random(n) < f).astype(np.uint8)
            c = bitrate_paper(m)
            lo = math.log2(n) / n
            worst = max(worst, lo - c.bpp_formula, c.bpp_formula - 1 - lo,
                        c.bpp - c.bpp_formula - (c.overhead_bits + 65) / n - 1e-3)
    p = np.linspace(0, 1, 1001)
    sym = float(np.max(np.abs(binary_entropy_bits(p) - binary_entropy_bits(1 - p))))
    return Check(max(worst, 0.0) + sym, 1e-12, detail=f"worst bound violation {worst:.3g} bits; symmetry {sym:.1e}")


@claim("fedpm.privacy.ldp", "A bit sampled from θ clipped to [θ_min, 1 − θ_min] has likelihood ratios ≤ "
       "exp(ε), ε = ln((1 − θ_min)/θ_min)", "docs/theory.md §5 (privacy remark)")
def _ldp() -> Check:
    worst = 0.0
    for tmin in (0.01, 0.1, 0.3, 0.5):
        t = clip_for_ldp(np.linspace(0, 1, 101), tmin)
        ratio = max(t.max() / t.min(), (1 - t.min()) / (1 - t.max()))
        worst = max(worst, math.log(ratio) - ldp_epsilon(tmin))
    return Check(worst, 1e-12, detail="max ln(likelihood ratio) − ε")
