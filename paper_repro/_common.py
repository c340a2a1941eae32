"""Shared plumbing of the table reproductions: data, models, training, manifests, tables.

Everything here runs on the CPU with PyTorch (the ``torch`` extra) on scikit-learn's
bundled digits (1,797 images of 8×8 pixels, 10 classes) with the fixed, stratified
split of :func:`ratedist.data.digits_split`; nothing is downloaded.

Models
------
``mlp``  the bias-free ReLU MLP 64-256-128-10 of the embedded default model (the setting
         of the output-perturbation theorem, docs/theory.md §2).
``cnn``  a small bias-free CNN on 1×8×8 images: conv 3×3 (1→16), ReLU, conv 3×3 (16→32),
         ReLU, max-pool 2, linear 512→64, ReLU, linear 64→10 (38,160 weights).

Weights travel as ``dict[str, np.ndarray]`` (the state dict's names) between torch and
ratedist, as ARCHITECTURE.md asks.
"""

from __future__ import annotations

import json
import math
import os
import platform
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "MODELS",
    "seed_everything",
    "digits_tensors",
    "make_model",
    "get_weights",
    "set_weights",
    "accuracy",
    "train",
    "mean_std",
    "fmt_mean_std",
    "markdown_table",
    "versions",
    "write_manifest",
    "write_text",
    "write_json",
    "load_expected",
    "pairwise_orderings",
    "compare_orderings",
    "DataSplit",
    "VERDICTS",
]

VERDICTS = ("agrees", "agrees where resolved", "mixed", "disagrees", "within noise", "n/a")

MODELS = ("mlp", "cnn")

_HERE = Path(__file__).resolve().parent


def _torch():
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the torch extra is installed in CI
        from ratedist.errors import BackendUnavailableError

        raise BackendUnavailableError(
            "the table reproductions need PyTorch: install the `torch` extra "
            "(pip install 'ratedist[torch]')."
        ) from exc
    return torch


def seed_everything(seed: int, threads: int = 1) -> None:
    """Seed Python, NumPy and torch, pin torch to ``threads`` CPU threads, deterministic kernels."""
    import random

    torch = _torch()
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)


@dataclass(frozen=True)
class DataSplit:
    """The digits split as torch tensors (float32 features in [0, 1], int64 labels)."""

    X_train: object
    y_train: object
    X_test: object
    y_test: object

    @property
    def n_train(self) -> int:
        return int(self.X_train.shape[0])


def digits_tensors(model: str = "mlp") -> DataSplit:
    """The fixed stratified digits split, shaped for ``model`` (flat 64 or 1×8×8)."""
    from ratedist.data import digits_split

    torch = _torch()
    Xtr, Xte, ytr, yte = digits_split()
    Xtr, Xte = torch.from_numpy(Xtr), torch.from_numpy(Xte)
    if model == "cnn":
        Xtr, Xte = Xtr.reshape(-1, 1, 8, 8), Xte.reshape(-1, 1, 8, 8)
    return DataSplit(Xtr, torch.from_numpy(ytr), Xte, torch.from_numpy(yte))


def make_model(model: str, seed: int):
    """A freshly initialized bias-free ``mlp`` or ``cnn`` (torch's default init, seeded)."""
    from ratedist._validation import check_choice

    check_choice("model", model, MODELS)
    torch = _torch()
    nn = torch.nn
    torch.manual_seed(seed)
    if model == "mlp":
        net = nn.Sequential()
        net.add_module("fc1", nn.Linear(64, 256, bias=False))
        net.add_module("relu1", nn.ReLU())
        net.add_module("fc2", nn.Linear(256, 128, bias=False))
        net.add_module("relu2", nn.ReLU())
        net.add_module("fc3", nn.Linear(128, 10, bias=False))
        return net
    net = nn.Sequential()
    net.add_module("conv1", nn.Conv2d(1, 16, 3, padding=1, bias=False))
    net.add_module("relu1", nn.ReLU())
    net.add_module("conv2", nn.Conv2d(16, 32, 3, padding=1, bias=False))
    net.add_module("relu2", nn.ReLU())
    net.add_module("pool", nn.MaxPool2d(2))
    net.add_module("flat", nn.Flatten())
    net.add_module("fc1", nn.Linear(512, 64, bias=False))
    net.add_module("relu3", nn.ReLU())
    net.add_module("fc2", nn.Linear(64, 10, bias=False))
    return net


def get_weights(net) -> dict[str, np.ndarray]:
    """The network's parameters as float32 NumPy arrays, keyed by state-dict name."""
    return {k: v.detach().cpu().numpy().astype(np.float32, copy=True) for k, v in net.named_parameters()}


def set_weights(net, weights: Mapping[str, np.ndarray]) -> None:
    """Copy ``weights`` (same keys and shapes as :func:`get_weights`) into ``net``."""
    torch = _torch()
    with torch.no_grad():
        for k, p in net.named_parameters():
            p.copy_(torch.from_numpy(np.ascontiguousarray(weights[k], dtype=np.float32)).reshape(p.shape))


def accuracy(net, X, y) -> float:
    """Top-1 accuracy of ``net`` on ``(X, y)``, in [0, 1]."""
    torch = _torch()
    net.eval()
    with torch.no_grad():
        return float((net(X).argmax(1) == y).float().mean())


def train(net, X, y, *, epochs: int, seed: int, lr: float = 2e-3, weight_decay: float = 1e-4,
          batch: int = 64, masks: Mapping[str, np.ndarray] | None = None) -> None:
    """Adam on the cross-entropy; with ``masks``, gradients of pruned weights are zeroed.

    Masked training (the retraining step between pruning rounds, docs/theory.md §4b.8): the gradient
    of every weight whose mask is False is set to zero before the step and the weight is
    re-zeroed after it, so a pruned weight stays exactly zero (Adam's weight decay and moment
    estimates cannot revive it).  The last epoch's weights are kept — unlike the SuRP reference
    code we do not select the best *test* epoch, which would leak the test set.
    """
    torch = _torch()
    g = torch.Generator().manual_seed(seed)
    tmask = None
    if masks is not None:
        tmask = {k: torch.from_numpy(np.asarray(masks[k], dtype=bool)).reshape(p.shape)
                 for k, p in net.named_parameters()}
    params = dict(net.named_parameters())
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    n = X.shape[0]
    net.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(X[idx]), y[idx]).backward()
            if tmask is not None:
                for k, m in tmask.items():
                    params[k].grad.mul_(m)
            opt.step()
            if tmask is not None:
                with torch.no_grad():
                    for k, m in tmask.items():
                        params[k].mul_(m)
    net.eval()


# ----------------------------------------------------------------------------- statistics, tables


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for a single value); NaNs are dropped."""
    v = np.asarray([x for x in values if x is not None and math.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    return float(v.mean()), float(v.std(ddof=1)) if v.size > 1 else 0.0


def fmt_mean_std(mean: float, std: float, digits: int = 3, n: int | None = None) -> str:
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if n is not None and n < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {std:.{digits}f}"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


def pairwise_orderings(table: Mapping[str, Sequence[float]]) -> list[tuple[str, str]]:
    """Pairs ``(a, b)`` such that method ``a`` beats ``b`` in every column of ``table``.

    ``table`` maps a method to its accuracies over the same columns (NaN columns are skipped).
    """
    methods = list(table)
    pairs = []
    for a in methods:
        for b in methods:
            if a == b:
                continue
            cols = [(x, y) for x, y in zip(table[a], table[b])
                    if x is not None and y is not None and math.isfinite(x) and math.isfinite(y)]
            if cols and all(x > y for x, y in cols):
                pairs.append((a, b))
    return pairs


def compare_orderings(pairs: Sequence[tuple[str, str]], ours: Mapping[str, Sequence[tuple[float, float]]],
                      k_sigma: float = 1.0, n_test: int | None = None) -> list[dict]:
    """Check each published ordering ``a > b`` against our (mean, std) columns.

    Accuracies are fractions.  A column *agrees* when mean_a > mean_b by more than the margin,
    *disagrees* when mean_b > mean_a by the margin, and is a *tie* otherwise.  The margin is
    ``k_sigma`` times the combined seed-to-seed standard deviation, and at least the binomial
    standard error of a difference of two accuracies on ``n_test`` test images (so that a single
    seed does not turn one test image into a verdict).  The verdict of a pair over its
    columns (n/a columns, where a method has no result, are left out):

    ``agrees``           every column agrees;
    ``agrees where resolved``  some agree, the others are ties, none disagrees;
    ``mixed``            some columns agree and some disagree;
    ``disagrees``        some disagree, none agrees;
    ``within noise``     every column is a tie;
    ``n/a``              no column has both methods.
    """
    out = []
    for a, b in pairs:
        if a not in ours or b not in ours:
            continue
        cols = []
        for (ma, sa), (mb, sb) in zip(ours[a], ours[b]):
            if not (math.isfinite(ma) and math.isfinite(mb)):
                cols.append("n/a")
                continue
            margin = k_sigma * math.hypot(sa if math.isfinite(sa) else 0.0, sb if math.isfinite(sb) else 0.0)
            if n_test:
                pa, pb = min(max(ma, 0.0), 1.0), min(max(mb, 0.0), 1.0)
                margin = max(margin, math.sqrt((pa * (1 - pa) + pb * (1 - pb)) / n_test))
            if ma - mb > margin:
                cols.append("agree")
            elif mb - ma > margin:
                cols.append("disagree")
            else:
                cols.append("tie")
        n_agree, n_dis = cols.count("agree"), cols.count("disagree")
        n_valid = len(cols) - cols.count("n/a")
        if n_valid == 0:
            verdict = "n/a"
        elif n_agree == n_valid:
            verdict = "agrees"
        elif n_agree and not n_dis:
            verdict = "agrees where resolved"
        elif n_agree and n_dis:
            verdict = "mixed"
        elif n_dis:
            verdict = "disagrees"
        else:
            verdict = "within noise"
        out.append({"paper": f"{a} > {b}", "columns": cols, "verdict": verdict,
                    "n_agree": n_agree, "n_disagree": n_dis, "n_tie": cols.count("tie"), "n_columns": n_valid})
    return out


# ----------------------------------------------------------------------------- files


def orderings_markdown(title: str, checks: Sequence[Mapping]) -> list[str]:
    """Markdown lines for one group of :func:`compare_orderings` results: a table, then the verdicts listed."""
    rows = [[c["paper"], c["verdict"], f"{c['n_agree']}/{c['n_tie']}/{c['n_disagree']}", ", ".join(c["columns"])]
            for c in checks]
    lines = [f"### {title}", "", markdown_table(["published ordering", "ours", "agree/tie/disagree", "per column"],
                                                rows), ""]
    for verdict in VERDICTS:
        hits = [c["paper"] for c in checks if c["verdict"] == verdict]
        if hits:
            lines.append(f"- {verdict}: {', '.join(hits)}")
    lines.append("")
    return lines


def versions() -> dict:
    """Versions of Python, the platform and the libraries a result depends on."""
    import importlib.metadata as md

    v = {"python": sys.version.split()[0], "platform": platform.platform()}
    for pkg in ("ratedist", "numpy", "scipy", "numba", "constriction", "torch", "scikit-learn"):
        try:
            v[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            v[pkg] = None
    try:
        import subprocess

        v["git_commit"] = subprocess.run(["git", "rev-parse", "HEAD"], cwd=_HERE, capture_output=True,
                                         text=True, timeout=5).stdout.strip() or None
    except Exception:  # noqa: BLE001 - a manifest without a commit is still a manifest
        v["git_commit"] = None
    return v


def write_json(path, obj) -> Path:
    from ratedist.scripts import write_json as wj

    return wj(path, obj)


def write_text(path, text: str) -> Path:
    from ratedist.coding.container import atomic_write

    return atomic_write(path, text.encode("utf-8"))


def write_manifest(out: Path, name: str, *, args: Mapping, seeds: Sequence[int], wall_s: float,
                   outputs: Sequence[str]) -> Path:
    """Write ``<name>.manifest.json`` beside the outputs: versions, seeds, arguments, wall time."""
    manifest = {
        "name": name,
        "command": " ".join(sys.argv),
        "arguments": dict(args),
        "seeds": list(seeds),
        "wall_time_s": round(float(wall_s), 3),
        "finished_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "versions": versions(),
        "cpu_count": os.cpu_count(),
        "outputs": list(outputs),
    }
    return write_json(Path(out) / f"{name}.manifest.json", manifest)


def write_table(out, name: str, data: dict, table_text: str, plot, *, args: Mapping, seeds: Sequence[int],
                t0: float) -> tuple[list[str], float]:
    """Write a table's ``<name>.json``, ``.md``, ``.png``/``.pdf`` (from ``plot(data)``) and manifest into
    ``out``, each atomically; return the paths written and the wall time since ``t0``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    files = [str(out / f"{name}.{e}") for e in ("json", "md", "png", "pdf")]
    write_json(out / f"{name}.json", data)
    write_text(out / f"{name}.md", table_text)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot(data)
    for ext in ("png", "pdf"):
        tmp = out / f".{name}.tmp.{ext}"
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
        tmp.replace(out / f"{name}.{ext}")
    plt.close(fig)
    wall = time.perf_counter() - t0
    files.append(str(write_manifest(out, name, args=args, seeds=seeds, wall_s=wall, outputs=files)))
    return files, wall


def load_expected(name: str) -> dict:
    """The published numbers ``paper_repro/expected/<name>.json`` (with their source)."""
    from ratedist.errors import InvalidArgumentError

    path = _HERE / "expected" / f"{name}.json"
    if not path.exists():
        raise InvalidArgumentError(f"`name` {name!r} has no expected file {path}; use 'surp' or 'fedpm'.")
    return json.loads(path.read_text(encoding="utf-8"))
