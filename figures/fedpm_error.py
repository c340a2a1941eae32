"""FedPM's mean-estimation error against the number of clients K: Monte Carlo, exact formula and bound d/(4K).

K clients hold mask probabilities θ^k ∈ [0, 1]^d; each sends one mask
m^k ~ Bern(θ^k) and the server estimates θ̄ = (1/K) Σ_k θ^k by θ̂ = (1/K) Σ_k m^k
(docs/theory.md §5).  For each K the clients' θ is drawn once (fixed seed) and the
squared error ‖θ̂ − θ̄‖² is averaged over independent mask draws (error bars:
95 % confidence intervals, 1.96 standard errors).  Beside it: the exact
expectation (1/K²) Σ_k Σ_i θ_i^k (1 − θ_i^k) and the bound d/(4K), which is
tight iff every θ = ½.  Three θ laws: θ = ½ (the bound), θ ~ U[0, 1]
(exact ≈ d/(6K)), θ ~ Beta(0.2, 0.2) (near-binary clients, far below the bound).
At K = 1 with θ = ½ every draw gives exactly d/4, so that point has no error bar.
"""

from __future__ import annotations

import sys

import numpy as np

NAME = "fedpm_error"
DESCRIPTION = __doc__.splitlines()[0]
UNITS = {"K": "number of clients", "error": "E‖θ̂ − θ̄‖², squared probability summed over d coordinates",
         "ratio": "measured mean error / exact formula (dimensionless)"}

DISTS = {"half": "θ = ½ (bound tight)", "uniform": "θ ~ U[0, 1]", "beta": "θ ~ Beta(0.2, 0.2)"}


def _draw_theta(dist: str, k: int, d: int, rng: np.random.Generator) -> np.ndarray:
    if dist == "half":
        return np.full((k, d), 0.5)
    if dist == "uniform":
        return rng.random((k, d))
    return rng.beta(0.2, 0.2, (k, d))


def compute(cfg: dict) -> dict:
    from ratedist.fedpm import error_bound, estimator_error, sample_masks

    quick = bool(cfg.get("quick"))
    d, trials = (1000, 100) if quick else (10_000, 400)
    ks = [1, 2, 5, 10, 20, 50, 100] if quick else [1, 2, 3, 5, 8, 13, 20, 32, 50, 80, 100]
    rng = np.random.default_rng(606)
    curves = []
    for dist in DISTS:
        pts = []
        for k in ks:
            theta = _draw_theta(dist, k, d, rng)
            theta_bar = theta.mean(0)
            errs = np.empty(trials)
            for t in range(trials):
                est = sample_masks(theta, rng=rng).mean(0, dtype=np.float64)
                errs[t] = float(np.sum((est - theta_bar) ** 2))
            exact = estimator_error(theta)
            mean, se = float(errs.mean()), float(errs.std(ddof=1) / np.sqrt(trials))
            pts.append({"K": k, "error": mean, "ci95": 1.96 * se, "exact": exact, "bound": error_bound(d, k),
                        "z": (mean - exact) / se if se > 0 else 0.0})
        curves.append({"dist": dist, "label": DISTS[dist], "points": pts})
    worst_z = max(abs(p["z"]) for c in curves for p in c["points"])
    return {"d": d, "trials": trials, "seed": 606, "curves": curves, "max_abs_z": worst_z}


def plot(data: dict):
    import matplotlib.pyplot as plt

    fig, (ax, bx) = plt.subplots(1, 2, figsize=(11, 4.6), gridspec_kw={"width_ratios": [1.35, 1]})
    colors = {"half": "C3", "uniform": "C0", "beta": "C2"}
    ks = np.array([p["K"] for p in data["curves"][0]["points"]], dtype=float)
    kk = np.geomspace(ks.min(), ks.max(), 200)
    ax.plot(kk, data["d"] / (4 * kk), "k-", lw=2.2, alpha=0.35, label="bound d/(4K)")
    for c in data["curves"]:
        pts, col = c["points"], colors[c["dist"]]
        k = np.array([p["K"] for p in pts], dtype=float)
        ax.plot(k, [p["exact"] for p in pts], "--", color=col, lw=1.2, label=f"exact (1/K²)ΣΣθ(1−θ), {c['label']}")
        ax.errorbar(k, [p["error"] for p in pts], yerr=[p["ci95"] for p in pts], fmt="o", color=col, ms=4.5,
                    capsize=3, label=f"measured (Monte Carlo), {c['label']}")
        r = np.array([p["error"] / p["exact"] for p in pts])
        re = np.array([p["ci95"] / p["exact"] for p in pts])
        off = {"half": 0.96, "uniform": 1.0, "beta": 1.04}[c["dist"]]
        bx.errorbar(k * off, r, yerr=re, fmt="o", color=col, ms=4.5, capsize=3, label=c["label"])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("number of clients K")
    ax.set_ylabel("E‖θ̂ − θ̄‖²  (squared probability, summed over d)")
    ax.set_title(f"FedPM mean-estimation error, d = {data['d']:,}, {data['trials']} draws per point")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    bx.axhline(1.0, color="k", lw=1)
    bx.set_xscale("log")
    bx.set_xlabel("number of clients K")
    bx.set_ylabel("measured / exact formula (dimensionless)")
    bx.set_title(f"Agreement with the exact formula (95 % CI); max |z| = {data['max_abs_z']:.2f}")
    bx.grid(True, which="both", alpha=0.3)
    lo, hi = bx.get_ylim()
    bx.set_ylim(lo, hi + 0.3 * (hi - lo))  # room for the legend above the points
    bx.legend(fontsize=8, loc="upper center", ncol=3, handletextpad=0.2, columnspacing=0.8)
    fig.tight_layout()
    return fig


def main(argv=None):
    from ratedist.scripts import figure_main

    return figure_main(NAME, DESCRIPTION, UNITS, compute, plot, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
