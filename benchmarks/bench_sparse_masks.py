"""Benchmark: dynamic-sparse-training mask updates on ResNet-50-sized weights vs a full-sort reference.

Issue 15 target: one mask update (ERK densities, then prune + regrow in every layer) on 25 M
weights in at most 1 s, quoted as a ratio against a full-sort reference measured in the same
run.  The reference ranks with stable ``np.argsort`` (active magnitudes to drop, candidate
gradients to grow; SET draws the same random positions from the same generator), so its masks
are defined exactly and must equal ratedist's bit for bit — the answer is checked with the speed.

Run: ``python benchmarks/bench_sparse_masks.py [--quick]`` (or ``python benchmarks/run.py --only sparse``).
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path

import numpy as np

from ratedist.pruning import erk_densities
from ratedist.sparse import prune_regrow, random_masks

sys.path.insert(0, str(Path(__file__).parent))
from bench_pruning import _weights, resnet50_shapes  # noqa: E402

TARGET_SECONDS = 1.0
SPARSITY = 0.9
FRACTION = 0.3


def _reference(weights, masks, grow, seed):
    """prune_regrow by full stable sorts (and SET's random draws from the same generator)."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, mk in masks.items():
        flat = mk.reshape(-1).copy()
        active = np.flatnonzero(flat)
        k = min(int(math.floor(FRACTION * active.size)), flat.size - active.size)
        if k > 0:
            mag = np.abs(weights[key].reshape(-1)[active])
            flat[active[np.argsort(mag, kind="stable")[:k]]] = False
            cand = np.flatnonzero(~flat)
            if isinstance(grow, str):
                pick = cand[rng.choice(cand.size, size=k, replace=False)]
            else:
                g = np.abs(grow[key].reshape(-1)[cand])
                pick = cand[np.lexsort((np.arange(cand.size), -g))[:k]]
            flat[pick] = True
        out[key] = flat.reshape(mk.shape)
    return out


def _time(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(quick: bool = False) -> list[dict]:
    shapes = resnet50_shapes(4 if quick else 1)
    w = _weights(shapes)
    n = sum(v.size for v in w.values())
    masks = random_masks(w, sparsity=SPARSITY, seed=0, method="erk")
    w = {k: np.where(masks[k], v, np.float32(0)) for k, v in w.items()}
    rng = np.random.default_rng(1)
    grads = {k: rng.standard_normal(v.shape, dtype=np.float32) for k, v in w.items()}
    rows = []
    for name, grow in (("SET (random regrowth)", "random"), ("RigL (gradient regrowth)", grads)):
        def fast():
            erk_densities([v.shape for v in w.values()], 1.0 - SPARSITY)
            return prune_regrow(w, masks, fraction=FRACTION, grow=grow, seed=3)[0]

        t_fast, got = _time(fast)
        t_ref, ref = _time(lambda: _reference(w, masks, grow, 3))
        diff = sum(int(np.count_nonzero(got[k] != ref[k])) for k in w)
        kept = sum(int(got[k].sum()) for k in w) - sum(int(masks[k].sum()) for k in w)
        ratio = t_ref / t_fast
        passed = diff == 0 and kept == 0 and (quick or t_fast <= TARGET_SECONDS)
        rows.append({
            "name": f"sparse.{name.split()[0].lower()} update ({n / 1e6:.1f} M weights, S={SPARSITY}, f={FRACTION})",
            "ratio": ratio,
            "target": f"<= {TARGET_SECONDS} s on 25 M weights; masks equal to the full-sort reference",
            "passed": bool(passed),
            "detail": (f"{name}: ratedist {t_fast:.3f} s, full-sort reference {t_ref:.3f} s; mask differences {diff}, "
                       f"kept-count change {kept}"),
        })
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(("ok  " if row["passed"] else "MISS"), row["name"], f"ratio {row['ratio']:.2f}", row["detail"])
