"""Normalized mean-estimation error against measured bits per coordinate: FedPM, QSGD, DRIVE, EDEN, FedMask.

K clients each hold a vector (standard Gaussian for QSGD/DRIVE/EDEN; probabilities
θ ~ U[0, 1] for FedPM/FedMask, which compress probabilities).  Every method
encodes to bytes, the server decodes and averages; the y-axis is
NMSE = ‖x̄̂ − x̄‖² / ((1/K) Σ‖x_k‖²), the x-axis the measured bits per coordinate
8·Σ len(payload)/(K·d).  Theory beside the measurements: FedPM's exact error and
its bound d/(4K) (same normalization), DRIVE's (π/2 − 1)/K, EDEN's
σ_b²/(1 − σ_b²)/K from the Lloyd–Max MSE, and QSGD's min(d/s², √d/s)/K.
"""

from __future__ import annotations

import math
import sys

import numpy as np

NAME = "mean_estimation"
DESCRIPTION = __doc__.splitlines()[0]
UNITS = {"bpp": "bits per coordinate (measured from bytes)", "nmse": "dimensionless"}


def compute(cfg: dict) -> dict:
    from ratedist.compressors import eden_vnmse_asymptotic, estimate_mean, get_compressor
    from ratedist.fedpm import error_bound, estimator_error

    quick = bool(cfg.get("quick"))
    d = 1 << (14 if quick else 20)
    k = 10
    rng = np.random.default_rng(2024)
    gauss = rng.standard_normal((k, d))
    theta = rng.random((k, d))
    configs = [("fedpm", {}), ("fedmask", {}), ("drive", {"scale": "unbiased"}), ("drive", {"scale": "mse"})]
    configs += [("eden", {"bits": b}) for b in (0.5, 1.0, 1.5, 2.0, 3.0, 4.0)]
    configs += [("qsgd", {"s": s}) for s in (1, 4, 16, 64, 256)]
    points = []
    for name, params in configs:
        xs = theta if name in ("fedpm", "fedmask") else gauss
        r = estimate_mean(get_compressor(name, **params), xs, seed=7)
        points.append({"method": name, "params": params, "bpp": r.bpp, "nmse": r.nmse, "bias": r.bias})
    energy_theta = float(np.mean(np.sum(theta**2, axis=1)))
    theory = {
        "fedpm_exact": estimator_error(theta) / energy_theta,
        "fedpm_bound": error_bound(d, k) / energy_theta,
        "drive_unbiased": (math.pi / 2 - 1) / k,
        "eden": {str(b): eden_vnmse_asymptotic(b) / k for b in (1, 2, 3, 4)},
        "qsgd": {str(s): min(d / s**2, math.sqrt(d) / s) / k for s in (1, 4, 16, 64, 256)},
    }
    return {"d": d, "K": k, "points": points, "theory": theory}


def plot(data: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5))
    colors = {"fedpm": "C3", "fedmask": "C4", "drive": "C0", "eden": "C2", "qsgd": "C1"}
    pts = data["points"]
    for method in ("qsgd", "eden"):
        sel = [p for p in pts if p["method"] == method]
        label = "QSGD (s = 1…256), measured" if method == "qsgd" else "EDEN (b = 0.5…4), measured"
        ax.plot([p["bpp"] for p in sel], [p["nmse"] for p in sel], "o-", color=colors[method], label=label)
    for p in pts:
        if p["method"] == "drive":
            mk = "s" if p["params"]["scale"] == "unbiased" else "D"
            ax.plot(p["bpp"], p["nmse"], mk, color=colors["drive"], ms=8,
                    label=f"DRIVE ({p['params']['scale']} scale), measured")
        elif p["method"] in ("fedpm", "fedmask"):
            ax.plot(p["bpp"], p["nmse"], "*" if p["method"] == "fedpm" else "X", color=colors[p["method"]], ms=12, zorder=5,
                    label=("FedPM" if p["method"] == "fedpm" else "FedMask (biased)") + ", measured (θ ~ U[0,1])")
    th = data["theory"]
    fed = next(p for p in pts if p["method"] == "fedpm")
    ax.hlines([th["fedpm_bound"]], fed["bpp"] - 0.25, fed["bpp"] + 0.25, colors=colors["fedpm"], linestyles="--",
              label="FedPM bound d/(4K), normalized")
    ax.hlines([th["fedpm_exact"]], fed["bpp"] - 0.25, fed["bpp"] + 0.25, colors=colors["fedpm"], linestyles=":",
              label="FedPM exact error, normalized")
    ax.axhline(th["drive_unbiased"], color=colors["drive"], ls=":", lw=1, label="DRIVE theory (π/2 − 1)/K")
    eb = sorted((float(b), v) for b, v in th["eden"].items())
    ax.plot([b for b, _ in eb], [v for _, v in eb], "x--", color=colors["eden"], ms=9,
            label="EDEN theory σ_b²/(1 − σ_b²)/K at b bits")
    qs = [p for p in pts if p["method"] == "qsgd"]
    ax.plot([p["bpp"] for p in qs], [th["qsgd"][str(p["params"]["s"])] for p in qs], "+:", color=colors["qsgd"],
            ms=9, label="QSGD bound min(d/s², √d/s)/K")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("measured bits per coordinate (bits, from bytes)")
    ax.set_ylabel("NMSE of the mean estimate (error² / mean client energy)")
    ax.set_title(f"Mean estimation, d = {data['d']:,}, K = {data['K']} clients")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def main(argv=None):
    from ratedist.scripts import figure_main

    return figure_main(NAME, DESCRIPTION, UNITS, compute, plot, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
