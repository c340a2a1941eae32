"""Benchmark: global and LAMP allocation over ResNet-50-sized synthetic weights vs a full-sort reference.

Issue 7 target: each allocation in <= 2 s on the 2-core machine and >= 3x faster
than a full-sort reference measured in the same run.  The references rank every
weight with ``np.argsort`` (global: of all |w|; LAMP: per-layer argsort for the
scores, then argsort of all scores).  The answer is checked too: the kept
counts per layer must agree with the reference, and the masks may differ only
inside the tie group at the cut (where the reference's unstable sort has no
defined order).

Run: ``python benchmarks/bench_pruning.py`` (or ``python benchmarks/run.py --only pruning``).
"""

from __future__ import annotations

import sys
import time

import numpy as np

from ratedist.pruning import prune

TARGET_SECONDS = 2.0
TARGET_RATIO = 3.0
SPARSITY = 0.9


def resnet50_shapes(width_div: int = 1) -> list[tuple]:
    """Conv and fc weight shapes of ResNet-50 (25.5 M weights), channels divided by ``width_div``."""
    d = width_div
    shapes = [(64 // d, 3, 7, 7)]
    cin = 64 // d
    for width, blocks in ((64, 3), (128, 4), (256, 6), (512, 3)):
        w = width // d
        for b in range(blocks):
            shapes += [(w, cin, 1, 1), (w, w, 3, 3), (4 * w, w, 1, 1)]
            if b == 0:
                shapes.append((4 * w, cin, 1, 1))
            cin = 4 * w
    shapes.append((1000 // d, cin))
    return shapes


def _weights(shapes, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for i, s in enumerate(shapes):
        fan_in = int(np.prod(s[1:]))
        out[f"layer{i}.weight"] = (rng.standard_normal(s, dtype=np.float32) * np.float32(np.sqrt(2.0 / fan_in)))
    return out


def _ref_global(w, n_keep):
    names = list(w)
    allv = np.concatenate([np.abs(w[k]).ravel() for k in names])
    order = np.argsort(allv)  # full sort of all weights
    keep = np.zeros(allv.size, bool)
    keep[order[allv.size - n_keep:]] = True
    return keep, allv


def _ref_lamp(w, n_keep):
    names = list(w)
    scores = []
    for k in names:
        a = np.abs(w[k]).ravel()
        order = np.argsort(a)  # per-layer full sort
        sq = a[order].astype(np.float64) ** 2
        suffix = np.cumsum(sq[::-1])[::-1]
        s = sq / suffix
        s[-1] = 1.0
        out = np.empty_like(s)
        out[order] = s
        scores.append(out)
    allv = np.concatenate(scores)
    order = np.argsort(allv)  # global full sort
    keep = np.zeros(allv.size, bool)
    keep[order[allv.size - n_keep:]] = True
    return keep, allv


def _check(masks, w, keep_ref, vals):
    """Per-layer count agreement and mismatches outside the tie group at the cut."""
    names = list(w)
    got = np.concatenate([masks[k].ravel() for k in names])
    sizes = [w[k].size for k in names]
    cuts = np.cumsum(sizes)[:-1]
    tau = vals[keep_ref].min() if keep_ref.any() else np.inf
    firm = vals != tau  # outside the tie group at the cut, where the reference's order is defined
    count_diff = sum(abs(int((a & f).sum()) - int((b & f).sum()))
                     for a, b, f in zip(np.split(got, cuts), np.split(keep_ref, cuts), np.split(firm, cuts)))
    mism = got != keep_ref
    outside_ties = int(np.count_nonzero(mism & (vals != tau)))
    return count_diff, outside_ties, int(mism.sum())


def _time(fn, repeat):
    best = np.inf
    out = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def main(quick: bool = False) -> list[dict]:
    shapes = resnet50_shapes(4 if quick else 1)
    w = _weights(shapes)
    n = sum(v.size for v in w.values())
    repeat = 1 if quick else 2
    rows = []
    for method, ref in (("global", _ref_global), ("lamp", _ref_lamp)):
        t_fast, res = _time(lambda: prune(w, method=method, sparsity=SPARSITY), repeat)
        t_ref, (keep_ref, vals) = _time(lambda: ref(w, res.n_kept), 1)
        count_diff, outside, mism = _check(res.masks, w, keep_ref, vals)
        ratio = t_ref / t_fast
        ok = count_diff == 0 and outside == 0
        passed = ok and (quick or (t_fast <= TARGET_SECONDS and ratio >= TARGET_RATIO))
        rows.append({
            "name": f"pruning.{method} ({n / 1e6:.1f} M weights, S={SPARSITY})",
            "ratio": ratio,
            "target": f"<= {TARGET_SECONDS} s and >= {TARGET_RATIO}x vs argsort",
            "passed": bool(passed),
            "detail": (f"ratedist {t_fast:.3f} s, full-sort reference {t_ref:.3f} s; kept {res.n_kept}/{n}; "
                       f"per-layer count differences outside ties {count_diff}, mask differences outside the cut's tie group "
                       f"{outside} (inside: {mism - outside})"),
        })
    return rows


if __name__ == "__main__":
    for row in main(quick="--quick" in sys.argv):
        print(("ok  " if row["passed"] else "MISS"), row["name"], f"ratio {row['ratio']:.2f}", row["detail"])
