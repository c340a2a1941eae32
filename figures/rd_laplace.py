"""Figure: the Laplacian R(D), Blahut–Arimoto points with their certificates, and the Shannon lower
bound of a non-Laplacian source (Gaussian under absolute error) beside its BA curve (docs/theory.md §1)."""

from __future__ import annotations

import sys

import numpy as np

NAME = "rd_laplace"
DESCRIPTION = ("Laplace(λ=1) R(D) under absolute error: closed form, Blahut–Arimoto points with certified "
               "[R_L, R], and for a Gaussian(σ²=1) source under absolute error its BA curve and Shannon lower bound")
UNITS = {"rate": "nats per symbol", "distortion": "mean absolute error"}


def compute(cfg: dict) -> dict:
    from ratedist.rd import (blahut_arimoto_grid, discretize_gaussian, discretize_laplace, rate_laplace,
                             shannon_lower_bound)

    quick = cfg.get("quick", False)
    step = 0.04 if quick else 0.01
    tol = 1e-4 if quick else 1e-5
    slopes = [-20.0, -10.0, -5.0, -3.0, -2.0, -1.5, -1.2] if quick else \
        [-20.0, -14.0, -10.0, -7.0, -5.0, -4.0, -3.0, -2.5, -2.0, -1.6, -1.3, -1.15]
    lap = discretize_laplace(1.0, step, 14.0)
    ba = []
    for s in slopes:
        r = blahut_arimoto_grid(lap.points, lap.pmf, s, tol=tol)
        ba.append({"slope": s, "distortion": r.distortion, "rate": r.rate, "rate_lower": r.rate_lower,
                   "iterations": r.iterations, "converged": r.converged})
    d = np.linspace(0.03, 1.1, 200)
    gau = discretize_gaussian(1.0, step, 7.0)
    gba = []
    for s in slopes:
        r = blahut_arimoto_grid(gau.points, gau.pmf, s, tol=tol)
        gba.append({"slope": s, "distortion": r.distortion, "rate": r.rate, "rate_lower": r.rate_lower,
                    "slb": shannon_lower_bound(r.distortion, pmf=gau.pmf, step=gau.step)})
    h_gauss = 0.5 * np.log(2 * np.pi * np.e)
    return {"step": step, "tol": tol, "closed_d": d.tolist(), "closed_r": rate_laplace(d).tolist(),
            "laplace_ba": ba, "gaussian_ba": gba,
            "gaussian_slb_r": shannon_lower_bound(d, entropy=h_gauss).tolist()}


def plot(data):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    ax.plot(data["closed_d"], data["closed_r"], "k-", lw=1.5, label="Laplace: closed form −ln(λD)")
    lb = data["laplace_ba"]
    ax.plot([p["distortion"] for p in lb], [p["rate"] for p in lb], "o", color="C0", ms=5,
            label=f"Laplace: BA rate R (grid Δ={data['step']})")
    ax.plot([p["distortion"] for p in lb], [p["rate_lower"] for p in lb], "_", color="C3", ms=12, mew=2,
            label="Laplace: BA certificate R_L")
    gb = data["gaussian_ba"]
    ax.plot([p["distortion"] for p in gb], [p["rate"] for p in gb], "s--", color="C2", ms=4,
            label="Gaussian(σ²=1), |·| error: BA")
    ax.plot(data["closed_d"], data["gaussian_slb_r"], ":", color="C2", lw=1.5,
            label="Gaussian, |·| error: Shannon lower bound")
    ax.set_xlabel("distortion D (mean absolute error)")
    ax.set_ylabel("rate R (nats per symbol)")
    ax.set_title("Rate–distortion: closed form, Blahut–Arimoto with certificates, SLB")
    ax.set_xlim(0, 1.15)
    ax.set_ylim(0, 3.6)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return fig


def main(argv=None):
    from ratedist.scripts import figure_main

    return figure_main(NAME, DESCRIPTION, UNITS, compute, plot, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
