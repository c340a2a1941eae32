"""Operational rate–distortion of SuRP: sequential vs data-parallel streams, and R(D) of the fitted Laplacian.

For a Laplacian source (10⁶ weights; 10⁵ in quick mode) and the embedded
default model, both SuRP encoders write one progressive stream with a
checkpoint at each sparsity of a grid; every point is the measured size of the
checkpoint's prefix (bits per parameter, the header excluded so that the two
algorithms' fixed costs do not blur the comparison; it is reported apart)
against the normalized L1 distortion d(u, û) of docs/theory.md §2.  The curve
R(D) = max(0, −log2(λ̂ D)) of the Laplacian fitted to u (λ̂ = 1/mean|u|) is
the lower reference.  The parallel curve is drawn for several γ, the default
marked; the JSON lists, at each parallel checkpoint, its bits divided by the
sequential stream's bits at the same distortion (interpolated).
"""

from __future__ import annotations

import numpy as np

NAME = "surp_rd"
DESCRIPTION = "SuRP operational R-D: sequential vs parallel streams (measured bits) and R(D) of the fitted Laplacian"
UNITS = {"rate": "bits per parameter (measured, header excluded)", "distortion": "d(u, û) = mean |u − û| (normalized)"}
TARGETS = [0.995, 0.99, 0.98, 0.97, 0.95, 0.93, 0.9, 0.85, 0.8, 0.7, 0.6]


def _curve(weights, algorithm, **params):
    from ratedist import surp

    enc = surp.encode(weights, TARGETS, algorithm=algorithm, **params)
    cps = enc.report.checkpoints
    header = cps[0].bits.get("header", 0)
    return {"sparsity": [c.sparsity for c in cps], "distortion": [c.distortion for c in cps],
            "bpp": [(c.n_bits - header) / enc.report.n_params for c in cps],
            "rd_bpp": [c.rd_bpp for c in cps], "header_bits": header, "seconds": enc.report.seconds}


def compute(cfg):
    from ratedist.data import default_model
    from ratedist.surp._common import flatten
    from ratedist.surp.parallel import DEFAULT_GAMMA

    quick = cfg.get("quick", False)
    n = 100_000 if quick else 1_000_000
    gammas = [DEFAULT_GAMMA] if quick else sorted({0.9, DEFAULT_GAMMA, 0.98})
    sources = {f"Laplacian, n={n:,}": {"w": np.random.default_rng(1).laplace(size=n)},
               "default model (digits MLP)": default_model()}
    out = {"default_gamma": DEFAULT_GAMMA, "sources": {}}
    for label, w in sources.items():
        a = flatten(w).magnitudes
        lam = 1.0 / float(np.mean(a))
        seq = _curve(w, "sequential")
        par = {}
        for g in gammas:
            c = _curve(w, "parallel", gamma=g)
            sd, sb = np.asarray(seq["distortion"])[::-1], np.asarray(seq["bpp"])[::-1]
            inside = (np.asarray(c["distortion"]) >= sd[0]) & (np.asarray(c["distortion"]) <= sd[-1])
            ratio = np.where(inside, np.asarray(c["bpp"]) / np.interp(c["distortion"], sd, sb), np.nan)
            c["bits_ratio_vs_sequential"] = [None if not np.isfinite(r) else float(r) for r in ratio]
            c["max_ratio"] = float(np.nanmax(ratio)) if np.any(np.isfinite(ratio)) else None
            par[str(g)] = c
        d_grid = np.geomspace(min(min(seq["distortion"]), *(min(p["distortion"]) for p in par.values())),
                              max(max(seq["distortion"]), *(max(p["distortion"]) for p in par.values())), 60)
        rd = np.maximum(0.0, -np.log2(lam * d_grid))
        out["sources"][label] = {"n": int(a.size), "lam_hat": lam, "sequential": seq, "parallel": par,
                                 "rd": {"distortion": d_grid.tolist(), "bpp": rd.tolist()}}
    return out


def plot(data):
    import matplotlib.pyplot as plt

    labels = list(data["sources"])
    fig, axes = plt.subplots(1, len(labels), figsize=(6.2 * len(labels), 4.6))
    axes = np.atleast_1d(axes)
    for ax, label in zip(axes, labels):
        s = data["sources"][label]
        ax.plot(s["rd"]["distortion"], s["rd"]["bpp"], "k--", lw=1.2, label="R(D), fitted Laplacian")
        ax.plot(s["sequential"]["distortion"], s["sequential"]["bpp"], "o-", color="tab:blue", ms=4,
                label="sequential SuRP (measured)")
        colors = iter(["tab:red", "tab:orange", "tab:green", "tab:purple"])
        for g, c in s["parallel"].items():
            default = float(g) == data["default_gamma"]
            worst = c["max_ratio"]
            txt = f", ≤{worst:.2f}× seq." if worst is not None else ""
            ax.plot(c["distortion"], c["bpp"], "s-" if default else "^:", ms=4, color=next(colors),
                    label=f"parallel SuRP γ={g}{' (default)' if default else ''}{txt}")
        ax.set_xscale("log")
        ax.set_xlabel("normalized L1 distortion d(u, û)")
        ax.set_ylabel("rate [bits per parameter, measured]")
        ax.set_title(label if "n=" in label else f"{label}, n={s['n']:,}", fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("SuRP operational rate–distortion (each point: a checkpoint prefix that decodes)", fontsize=11)
    fig.tight_layout()
    return fig


def main(argv=None):
    from ratedist.scripts import figure_main

    return figure_main(NAME, DESCRIPTION, UNITS, compute, plot, argv)


if __name__ == "__main__":
    main()
