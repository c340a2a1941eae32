"""Successive refinement with random codebooks: operational (rate, distortion) points vs R(D) of the Laplacian.

For block lengths n and L = 1, 2, 4 equal stages at several total rates, a
Laplace(1) source is coded with random codebooks drawn from the optimal
reproduction law of each stage's residual (docs/theory.md §3); every point is the
measured mean absolute error at the measured rate of the stream's bytes.
"""

from __future__ import annotations

import sys

NAME = "refinement"
DESCRIPTION = __doc__.splitlines()[0]
UNITS = {"rate": "bits/symbol", "distortion": "mean absolute error (λ = 1)"}


def compute(cfg: dict) -> dict:
    from ratedist.refinement import measure_refinement, split_rate

    quick = cfg.get("quick", False)
    blocks = 800 if quick else 4000
    ns = [2, 4, 8] if quick else [2, 4, 8, 12, 16]
    rates = [0.5, 1.0, 1.5]
    points = []
    for n in ns:
        for L in (1, 2, 4):
            for r in rates:
                if round(n * r) < L or (L == 1 and (2 ** round(n * r)) * blocks > (2**26 if quick else 2**30)):
                    continue
                try:
                    rep = measure_refinement(n, split_rate(n, r, L), blocks=blocks, seed=0, compare_single=False)
                except Exception:  # noqa: BLE001 - codebook too large for this machine: leave the point out
                    continue
                last = rep.stages[-1]
                points.append({"n": n, "stages": L, "rate": last.measured_rate, "distortion": last.distortion,
                               "rd_distortion": last.rd_distortion, "evaluations": rep.evaluations,
                               "stage_points": [[s.measured_rate, s.distortion] for s in rep.stages]})
    return {"blocks": blocks, "points": points, "lam": 1.0}


def plot(data: dict):
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(7, 4.6))
    r = np.linspace(0.0, 1.7, 200)
    ax.plot(r, 2.0 ** (-r) / data["lam"], color="black", lw=2, label="R(D) of Laplace(1): D = 2^(−R)")
    ns = sorted({p["n"] for p in data["points"]})
    cmap = plt.get_cmap("viridis")
    markers = {1: "o", 2: "s", 4: "^"}
    for i, n in enumerate(ns):
        color = cmap(i / max(1, len(ns) - 1))
        for L in (1, 2, 4):
            pts = sorted((p for p in data["points"] if p["n"] == n and p["stages"] == L), key=lambda p: p["rate"])
            if pts:
                ax.plot([p["rate"] for p in pts], [p["distortion"] for p in pts], marker=markers[L], ls=":",
                        color=color, ms=6, label=f"n = {n}, L = {L}")
    ax.set_xlabel("rate (bits/symbol, measured from the stream)")
    ax.set_ylabel("distortion E|U − Û| (λ = 1)")
    ax.set_title(f"Successive refinement with random codebooks ({data['blocks']} blocks per point)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def main(argv=None):
    from ratedist.scripts import figure_main

    return figure_main(NAME, DESCRIPTION, UNITS, compute, plot, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
