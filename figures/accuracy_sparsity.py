"""Accuracy against sparsity for SuRP, Global, Uniform, Adaptive and LAMP on digits.

The curve behind the SuRP table (``paper_repro/surp_table.py``): iterative pruning, 20 % per
round with masked-gradient retraining, test accuracy after each round.

* quick mode runs a small table itself (MLP, 1 seed, rounds at k = 3, 6, 9, 12; < 20 s);
* full mode reuses the results of a full ``ratedist repro surp --out paper_repro/out`` when
  ``paper_repro/out/surp.json`` holds one, and otherwise runs the MLP panel of the full protocol
  with one seed (a few minutes).
"""

import json
import sys
from pathlib import Path

from ratedist.scripts import figure_main, load_script, repo_root

NAME = "accuracy_sparsity"
DESCRIPTION = "Test accuracy against sparsity for SuRP and four magnitude-pruning allocations (digits)"
UNITS = {"sparsity": "fraction of weights equal to 0", "accuracy": "fraction of test images", "bpp": "bits per parameter"}


def _table():
    return load_script(repo_root() / "paper_repro" / "surp_table.py")


def compute(cfg: dict) -> dict:
    """Aggregated table (plain data): per model, per method, per round k."""
    mod = _table()
    cached = repo_root() / "paper_repro" / "out" / "surp.json"
    if not cfg.get("quick") and cached.exists():
        data = json.loads(cached.read_text(encoding="utf-8"))
        if not data["config"]["quick"]:
            return {"source": str(cached), "config": data["config"], "aggregate": data["aggregate"]}
    if cfg.get("quick"):
        tc = mod.config(True, models=("mlp",), rounds_k=(3, 6, 9, 12), report_k=(3, 6, 9, 12), train_epochs=10)
    else:
        tc = mod.config(False, seeds=1, models=("mlp",))
    data = mod.compute(tc)
    return {"source": "computed", "config": data["config"], "aggregate": data["aggregate"]}


def plot(data: dict):
    fig = _table().plot(data)
    if data["source"] != "computed":
        fig.text(0.01, 0.005, f"from {Path(data['source']).name} (full run)", fontsize=7, color="0.4")
    return fig


def main(argv=None):
    return figure_main(NAME, DESCRIPTION, UNITS, compute, plot, argv)


if __name__ == "__main__":
    main(sys.argv[1:])
