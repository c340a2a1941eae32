"""Claims of docs/theory.md §2 (output-perturbation bounds) for ``ratedist verify``."""


from __future__ import annotations

SECTION = 2

import warnings

import numpy as np

from ..bounds import Layer, measured_perturbation, normalized_distortion, perturbation_bounds
from ..errors import RatedistWarning
from . import Check, claim

__all__: list[str] = []

_REL = 1e-9  # slack for float64 sums of O(depth·width) terms


def _nets(seed, count=6):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        widths = rng.integers(1, 33, size=rng.integers(2, 6))
        ws = [rng.laplace(size=(widths[i + 1], widths[i])) / np.sqrt(widths[i]) for i in range(len(widths) - 1)]
        yield rng, ws


def _bounds(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RatedistWarning)
        return perturbation_bounds(*a, **k)


@claim("bounds.pruning.measured_le_induced_le_slide",
       "For pruning-type compressions (masks, magnitude pruning, scaling down) of bias-free ReLU MLPs: "
       "measured sup ≤ induced-norm bound ≤ slide bound", "docs/theory.md §2 checks (a), (b)")
def _pruning() -> Check:
    worst = 0.0
    for rng, ws in _nets(11):
        for kind in ("mask", "magnitude", "scale"):
            if kind == "mask":
                wh = [w * (rng.random(w.shape) < 0.5) for w in ws]
            elif kind == "magnitude":
                wh = [np.where(np.abs(w) > np.quantile(np.abs(w), 0.7), w, 0.0) for w in ws]
            else:
                wh = [w * rng.uniform(0, 1) for w in ws]
            b = perturbation_bounds(ws, wh)
            m = measured_perturbation(ws, wh, restarts=3, steps=40, seed=0).value
            worst = max(worst, m / max(b.induced, 1e-300) if b.induced else 0.0,
                        b.induced / b.slide if b.slide else 0.0)
    return Check(measured=worst, tolerance=1 + _REL, detail="max of measured/induced and induced/slide")


@claim("bounds.safe.any_compression",
       "For arbitrary compressed weights (noise, inflation, sign flips) measured sup ≤ induced ≤ safe bound",
       "docs/theory.md §2 (telescoping bound with mixed products)")
def _safe() -> Check:
    worst = 0.0
    for rng, ws in _nets(12):
        for wh in ([w + rng.normal(scale=0.5, size=w.shape) for w in ws], [w * 2.5 for w in ws], [-w for w in ws]):
            b = _bounds(ws, wh)
            m = measured_perturbation(ws, wh, restarts=3, steps=40, seed=0).value
            worst = max(worst, m / b.induced, b.induced / b.safe)
    return Check(measured=worst, tolerance=1 + _REL, detail="max of measured/induced and induced/safe")


@claim("bounds.slide.counterexample",
       "The two-layer scalar net w=(1,1), ŵ=(2,2) has sup 3 > slide form 2, and the failed precondition "
       "‖ŵ_k‖₁ ≤ ‖w_k‖₁ is reported", "docs/theory.md §2 (hidden assumption)")
def _counter() -> Check:
    w, wh = [np.ones((1, 1))] * 2, [2 * np.ones((1, 1))] * 2
    b = _bounds(w, wh)
    m = measured_perturbation(w, wh).value
    ok = m == 3.0 and b.slide == 2.0 and not b.precondition_holds and m <= b.safe
    return Check(measured=m - b.slide, tolerance=1.0, passed=ok,
                 detail=f"measured {m}, slide {b.slide}, safe {b.safe}, precondition {b.precondition_holds}")


@claim("bounds.identity.distortion",
       "Σ_l ‖w_l − ŵ_l‖₁/‖w_l‖₁ = n·d(u, û) for the per-layer L1-normalized weights",
       "docs/theory.md §2 check (d)")
def _identity() -> Check:
    worst = 0.0
    for rng, ws in _nets(13):
        wh = [w + rng.normal(size=w.shape) * (rng.random(w.shape) < 0.5) for w in ws]
        b = _bounds(ws, wh)
        d, n = normalized_distortion(ws, wh)
        worst = max(worst, abs(b.relative_sum - n * d) / b.relative_sum)
    return Check(measured=worst, tolerance=1e-12, detail="relative error of the identity")


@claim("bounds.zero_iff_equal", "Every bound is 0 when ŵ = w and positive when one weight differs",
       "docs/theory.md §2 check (c)")
def _zero() -> Check:
    ok = True
    for rng, ws in _nets(14):
        b0 = perturbation_bounds(ws, [w.copy() for w in ws])
        wh = [w.copy() for w in ws]
        wh[-1].flat[0] += 1e-3
        b1 = _bounds(ws, wh)
        ok &= b0.slide == b0.safe == b0.induced == 0.0 and min(b1.slide, b1.safe, b1.induced) > 0
    return Check(measured=0.0 if ok else 1.0, tolerance=0.0, passed=ok)


@claim("bounds.biases.extended",
       "With biases, measured sup ≤ the extended telescoping bound Σ(‖ΔW_l‖M̂_{l−1} + ‖Δb_l‖₁)Π_{k>l}‖W_k‖",
       "derived in ratedist.bounds.perturbation_bounds (Notes); not in the paper")
def _biases() -> Check:
    worst = 0.0
    for rng, ws in _nets(15):
        orig = [Layer(w, bias=rng.normal(size=w.shape[0])) for w in ws]
        comp = [Layer(lay.weight + rng.normal(scale=0.3, size=lay.weight.shape),
                      bias=lay.bias + rng.normal(scale=0.3, size=lay.bias.shape)) for lay in orig]
        b = _bounds(orig, comp, include_biases=True)
        m = measured_perturbation(orig, comp, include_biases=True, restarts=3, steps=40, seed=0).value
        worst = max(worst, m / b.induced, b.induced / b.safe)
    return Check(measured=worst, tolerance=1 + _REL, detail="max of measured/induced and induced/safe")
