"""Output-perturbation bounds vs the measured perturbation on the default model, pruned by magnitude and SuRP.

The embedded bias-free ReLU MLP 64-256-128-10 is pruned to a range of
sparsities by global magnitude pruning and (when available) decoded from a
SuRP stream; for each compressed model the slide, safe and induced-norm
bounds (docs/theory.md §2) are drawn on a log scale next to the measured
perturbation, a lower estimate of sup_{‖x‖₁≤1} ‖f(x; w) − f(x; ŵ)‖₁.
"""

from __future__ import annotations

import sys

NAME = "bounds"
DESCRIPTION = __doc__.splitlines()[0]
UNITS = {"x": "sparsity (fraction of zero weights)", "y": "ℓ1 output perturbation on the ℓ1 unit ball"}


def compute(cfg: dict) -> dict:
    from ratedist.data import default_model
    from ratedist.scripts import load_script, repo_root

    report = load_script(repo_root() / "analysis" / "bound_report.py")
    quick = cfg.get("quick", False)
    sparsities = [0.5, 0.7, 0.9, 0.95] if quick else [0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.98]
    return report.sparsity_sweep(default_model(), sparsities, restarts=2 if quick else 8,
                                 steps=30 if quick else 200)


def plot(data: dict):
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    colors = {"slide": "tab:red", "safe": "tab:orange", "induced": "tab:blue", "measured": "black"}
    labels = {"slide": "slide form (entrywise)", "safe": "safe form (mixed products)",
              "induced": "induced ℓ1→ℓ1 form", "measured": "measured (lower estimate)"}
    styles = {"magnitude": ("-", "o"), "surp": ("--", "s")}
    for method, rows in data["methods"].items():
        ls, mk = styles.get(method, (":", "^"))
        x = [r["achieved_sparsity"] for r in rows]
        for key in ("slide", "safe", "induced", "measured"):
            ax.plot(x, [r[key] for r in rows], ls=ls, marker=mk, ms=4, color=colors[key],
                    label=f"{labels[key]} — {method}")
    ax.set_yscale("log")
    ax.set_xlabel(UNITS["x"])
    ax.set_ylabel("sup ‖f(x;w) − f(x;ŵ)‖₁ over ‖x‖₁ ≤ 1")
    ax.set_title("Output-perturbation bounds, default MLP 64-256-128-10")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, ncol=2, loc="center right")
    if data.get("notes"):
        fig.text(0.01, -0.02, "; ".join(data["notes"]), fontsize=7, ha="left", va="top")
    fig.tight_layout()
    return fig


def main(argv=None):
    from ratedist.scripts import figure_main

    return figure_main(NAME, DESCRIPTION, UNITS, compute, plot, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
