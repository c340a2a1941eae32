"""The model rate–distortion bound (ratedist.rd.model_rate_distortion): the issue's speed target.

1. A synthetic 1,000,000-weight "model" (five tensors: Student-t(3), a two-scale Gaussian mixture,
   Student-t(5), a Gaussian and a bimodal mixture; seeded), L1, normalize="l2", 16 default slopes
   (about 0.05 … 8 bits per parameter), certified gap 1e-3 bit per parameter at every slope, within
   20 s.  Reference in the same run: the same curve on the unmerged exact problem (every distinct
   weight a BA point; ``grid_fraction`` too small to merge anything).
2. The embedded model (``ratedist.data.default_model()``, 50,432 weights), same settings.
   Reference: its smallest tensor (fc3, 1,280 weights) solved with the dense numba Blahut–Arimoto
   (``blahut_arimoto`` with the |x_i − x_j| matrix on the atoms: the same problem, O(m²) per step)
   at the same 16 slopes, against the O(m) points solver on that tensor.
Run: ``python -m benchmarks.run --only model_bound``.
"""

from __future__ import annotations

import time
import warnings

import numpy as np

from ratedist.data import default_model
from ratedist.errors import ConvergenceWarning
from ratedist.rd import blahut_arimoto, model_rate_distortion

TARGET_S = 20.0
TOL_BITS = 1e-3


def synthetic_model(n_total: int = 1_000_000, seed: int = 0) -> dict:
    """Five tensors of mixed, non-Laplacian laws and different sizes (40/30/20/9/1 % of ``n_total``)."""
    rng = np.random.default_rng(seed)
    n = [int(n_total * f) for f in (0.4, 0.3, 0.2, 0.09)]
    n.append(n_total - sum(n))
    mix = rng.random(n[1]) < 0.8
    return {
        "attn.weight": (rng.standard_t(3, n[0]) * 0.02).astype(np.float32),
        "mlp.fc1.weight": (np.where(mix, rng.normal(0, 1, n[1]), rng.normal(0, 3, n[1])) * 0.01).astype(np.float32),
        "mlp.fc2.weight": (rng.standard_t(5, n[2]) * 0.03).astype(np.float32),
        "embed.weight": rng.normal(0, 0.05, n[3]).astype(np.float32),
        "head.weight": ((rng.choice([-1.0, 1.0], n[4]) + 0.3 * rng.normal(size=n[4])) * 0.1).astype(np.float32),
    }


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def main(quick: bool = False) -> list[dict]:
    rows = []
    model_rate_distortion({"warm": np.random.default_rng(1).laplace(size=2000)}, n_slopes=2)  # compile
    n_total = 100_000 if quick else 1_000_000
    w = synthetic_model(n_total)
    curve, t_new, cpu_new = _timed(lambda: model_rate_distortion(w, tol=TOL_BITS))
    ref, t_ref, _ = _timed(lambda: model_rate_distortion(w, tol=TOL_BITS, slopes=curve.slopes, grid_fraction=1e-12))
    gap = float(curve.gap.max())
    rows.append({
        "name": f"model bound {n_total:,} weights L1 16 slopes", "ratio": t_ref / t_new,
        "target": f"<= {TARGET_S:.0f} s, gap <= {TOL_BITS:g} bit",
        "passed": bool(t_new <= TARGET_S and gap <= TOL_BITS and curve.converged.all()),
        "detail": f"{t_new:.1f} s wall ({cpu_new:.1f} s CPU), max gap {gap:.2e} bit, R {curve.rate[0]:.3f}…"
                  f"{curve.rate[-1]:.3f} bit/param, {int(curve.iterations.sum())} BA steps, "
                  f"{int(curve.support.sum()):,} points; unmerged exact: {t_ref:.1f} s, max gap {ref.gap.max():.2e}"})

    dm = default_model()
    curve, t_new, cpu_new = _timed(lambda: model_rate_distortion(dm, tol=TOL_BITS))
    gap = float(curve.gap.max())
    fc3 = {"fc3.weight": dm["fc3.weight"]}
    mine, t_mine, _ = _timed(lambda: model_rate_distortion(fc3, tol=TOL_BITS, slopes=curve.slopes, grid_fraction=1e-12))
    u = np.asarray(dm["fc3.weight"], dtype=np.float64).ravel()
    u = u / np.sqrt(np.sum(u * u))
    x, counts = np.unique(u, return_counts=True)
    p = counts / counts.sum()
    dist = np.abs(x[:, None] - x[None, :])

    def dense():
        out = []
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            for s in curve.slopes:
                out.append(blahut_arimoto(p, dist, float(s), tol=0.85 * TOL_BITS, units="bits", backend="numba"))
        return out

    dres, t_dense, _ = _timed(dense)
    agree = max(abs(r.rate - mine.rate[k]) for k, r in enumerate(dres))
    rows.append({
        "name": f"model bound embedded model ({sum(v.size for v in dm.values()):,} w) L1", "ratio": t_dense / t_mine,
        "target": f"<= {TARGET_S:.0f} s, gap <= {TOL_BITS:g} bit; vs dense BA",
        "passed": bool(t_new <= TARGET_S and gap <= TOL_BITS and curve.converged.all() and agree <= 2 * TOL_BITS),
        "detail": f"{t_new:.1f} s wall ({cpu_new:.1f} s CPU), max gap {gap:.2e} bit; fc3 ({x.size} atoms) "
                  f"points solver {t_mine:.2f} s vs dense numba BA {t_dense:.2f} s, rates agree to {agree:.1e} bit"})
    return rows


if __name__ == "__main__":
    for row in main():
        print(row)
