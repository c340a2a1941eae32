"""SuRP against Global, Uniform, Adaptive and LAMP pruning, in miniature on digits.

The published protocol (docs/theory.md §4d, the LAMP protocol): train a network, then rounds of
20 % pruning — after round k the sparsity is 1 − 0.8^k — with retraining under masked
gradients between rounds.  SuRP runs iteratively (docs/theory.md §4b.8): the current, already
sparse weights are encoded by :func:`ratedist.surp.encode` to the next sparsity, the stream is
decoded by :func:`ratedist.surp.decode`, and the decoded network is retrained with the
gradients of its zeros masked.  The baselines prune with :func:`ratedist.pruning.prune`.

Output (in ``--out``): ``surp.json`` (every round of every run, the aggregated table, the
published numbers and the ordering check), ``surp.md`` (the tables), ``surp.png``/``.pdf``
(accuracy against sparsity) and ``surp.manifest.json``.

Accounting notes, stated in the output too:

* sparsity counts every parameter; the networks are bias-free, so every parameter is a
  conv/linear weight and the LAMP-vs-SuRP counting mismatch of the paper does not arise;
* SuRP's bits are the measured length of the round's stream (the decoded model *before* its
  retraining); a baseline's bits are :func:`ratedist.pruning.cost` of the reported (retrained)
  model, mask and values;
* retraining keeps the last epoch (the reference code keeps the best *test* epoch).

Run ``ratedist repro surp [--quick] [--seeds N] --out DIR`` or
``python paper_repro/surp_table.py --quick --out DIR``.
"""

# no `from __future__ import annotations`: ratedist.scripts.load_script does not register the
# module in sys.modules, which dataclasses needs to resolve string annotations

import argparse
import math
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

try:
    from . import _common as C
except ImportError:  # loaded as a file by ratedist.scripts.load_script
    import importlib.util as _ilu

    _spec = _ilu.spec_from_file_location("_ratedist_repro_common", Path(__file__).with_name("_common.py"))
    C = _ilu.module_from_spec(_spec)
    sys.modules.setdefault("_ratedist_repro_common", C)
    _spec.loader.exec_module(C)

__all__ = ["NAME", "METHODS", "Config", "config", "compute", "make_table", "plot", "run", "main"]

NAME = "surp"
METHODS = ("Global", "Uniform", "Adaptive", "LAMP", "SuRP")
_PRUNE = {"Global": "global", "Uniform": "uniform", "Adaptive": "adaptive", "LAMP": "lamp"}
# the published ResNet-20 ratios (k = 9, 13, 15, 17, 19, 23) suit networks of ~10^4-10^5 weights
FULL_REPORT_K = (9, 13, 15, 17, 19, 23)
N_TEST = 450  # test images of the fixed digits split


@dataclass(frozen=True)
class Config:
    """What one table run does.

    ``rounds_k``: the rounds k after which the sparsity is 1 − 0.8^k (consecutive integers in
    the published protocol; quick mode jumps); ``report_k``: the columns of the table.
    """

    quick: bool
    models: tuple = ("mlp", "cnn")
    seeds: tuple = (0, 1, 2)
    rounds_k: tuple = tuple(range(1, 24))
    report_k: tuple = FULL_REPORT_K
    methods: tuple = METHODS
    train_epochs: int = 40
    retrain_epochs: int = 3
    lr: float = 2e-3
    retrain_lr: float = 1e-3

    def sparsity(self, k: int) -> float:
        return 1.0 - 0.8 ** k


def config(quick: bool = False, seeds: int | None = None, **overrides) -> Config:
    """The full configuration, or the quick one (1 seed, 2 pruning levels reached in 2 rounds)."""
    from ratedist._validation import check_int

    if quick:
        cfg = Config(quick=True, models=("mlp", "cnn"), seeds=(0,), rounds_k=(4, 8), report_k=(4, 8),
                     train_epochs=12, retrain_epochs=1)
    else:
        cfg = Config(quick=False)
    if seeds is not None:
        n = check_int("seeds", seeds, minimum=1)
        cfg = replace(cfg, seeds=tuple(range(n)))
    return replace(cfg, **overrides)


# ----------------------------------------------------------------------------- one run


def _sparsity(weights) -> float:
    n = sum(int(w.size) for w in weights.values())
    z = sum(int(np.count_nonzero(w == 0)) for w in weights.values())
    return z / n


def _prune_round(method: str, weights, s: float, prev_masks, seed: int):
    """One round of ``method`` to sparsity ``s``: (masks, pruned weights, bits info)."""
    if method == "SuRP":
        from ratedist import surp

        enc = surp.encode(weights, sparsity=[s], seed=seed)
        decoded = surp.decode(enc.stream)
        cp = enc.report.checkpoints[-1]
        masks = {k: np.asarray(v) != 0 for k, v in decoded.items()}
        bits = {"n_bits": float(cp.n_bits), "bpp": float(cp.bpp), "stream_bytes": len(enc.stream),
                "bits_of": "SuRP stream up to this sparsity (decoded model before retraining)"}
        return masks, {k: np.asarray(v, dtype=np.float32) for k, v in decoded.items()}, bits
    from ratedist import pruning

    res = pruning.prune(weights, method=_PRUNE[method], sparsity=s)
    masks = {k: np.asarray(res.masks[k], dtype=bool) for k in weights}
    if prev_masks is not None:
        masks = {k: masks[k] & prev_masks[k] for k in masks}
    pruned = pruning.apply_masks(weights, masks)
    return masks, {k: np.asarray(v, dtype=np.float32) for k, v in pruned.items()}, None


def _baseline_bits(weights, masks) -> dict:
    from ratedist import pruning

    c = pruning.cost(weights, masks)
    return {"n_bits": float(c.n_bits), "bpp": float(c.bpp),
            "stream_bytes": len(c.stream) if getattr(c, "stream", None) is not None else None,
            "bits_of": "ratedist.pruning.cost: coded mask and values of the retrained model"}


def run_one(model: str, seed: int, cfg: Config) -> dict:
    """Train one baseline network and run every method's pruning rounds from it."""
    from ratedist.errors import RatedistError

    C.seed_everything(seed)
    data = C.digits_tensors(model)
    net = C.make_model(model, seed)
    C.train(net, data.X_train, data.y_train, epochs=cfg.train_epochs, seed=seed, lr=cfg.lr)
    dense = C.get_weights(net)
    base_acc = C.accuracy(net, data.X_test, data.y_test)
    n = sum(w.size for w in dense.values())
    out = {"model": model, "seed": seed, "n_params": int(n), "dense_accuracy": base_acc, "methods": {}}
    for method in cfg.methods:
        w = {k: v.copy() for k, v in dense.items()}
        masks = None
        rounds = []
        for r, k in enumerate(cfg.rounds_k):
            s = cfg.sparsity(k)
            rec = {"k": int(k), "target_sparsity": s}
            try:
                masks, w, bits = _prune_round(method, w, s, masks, seed * 1000 + r)
            except RatedistError as exc:  # e.g. Adaptive cannot reach s with a dense first layer
                rec.update({"error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}", "accuracy": math.nan,
                            "sparsity": math.nan, "bpp": math.nan})
                rounds.append(rec)
                break
            C.set_weights(net, w)
            rec["accuracy_before_retrain"] = C.accuracy(net, data.X_test, data.y_test)
            C.train(net, data.X_train, data.y_train, epochs=cfg.retrain_epochs, seed=seed + 7919 * (r + 1),
                    lr=cfg.retrain_lr, masks=masks)
            w = C.get_weights(net)
            rec["accuracy"] = C.accuracy(net, data.X_test, data.y_test)
            rec["sparsity"] = _sparsity(w)
            if bits is None:
                bits = _baseline_bits(w, masks)
            rec.update(bits)
            rounds.append(rec)
        out["methods"][method] = rounds
    return out


# ----------------------------------------------------------------------------- aggregate


def _aggregate(runs: list[dict], cfg: Config) -> dict:
    agg = {}
    for model in cfg.models:
        mr = [r for r in runs if r["model"] == model]
        dense = C.mean_std([r["dense_accuracy"] for r in mr])
        table = {}
        for method in cfg.methods:
            cols = {}
            for k in cfg.rounds_k:
                recs = [rec for r in mr for rec in r["methods"][method] if rec["k"] == k]
                acc = C.mean_std([rec.get("accuracy", math.nan) for rec in recs])
                sp = C.mean_std([rec.get("sparsity", math.nan) for rec in recs])
                bpp = C.mean_std([rec.get("bpp", math.nan) for rec in recs])
                errs = sorted({rec["error"] for rec in recs if "error" in rec})
                if not recs:  # every seed stopped earlier (unreachable sparsity): carry the reason
                    errs = sorted({rec["error"] for r in mr for rec in r["methods"][method] if "error" in rec})
                cols[str(k)] = {"k": k, "target_sparsity": cfg.sparsity(k), "accuracy_mean": acc[0],
                                "accuracy_std": acc[1], "sparsity_mean": sp[0], "bpp_mean": bpp[0],
                                "bpp_std": bpp[1], "n_seeds": sum(1 for rec in recs if "error" not in rec),
                                "errors": errs}
            table[method] = cols
        agg[model] = {"n_params": mr[0]["n_params"] if mr else None, "dense_accuracy_mean": dense[0],
                      "dense_accuracy_std": dense[1], "table": table}
    return agg


def _ordering_check(agg: dict, cfg: Config, expected: dict) -> dict:
    """Published orderings (a beats b in every column of both CIFAR-10 tables) against ours."""
    pub_pairs = None
    for net in ("VGG-16/CIFAR-10", "ResNet-20/CIFAR-10"):
        p = set(C.pairwise_orderings(expected["tables"][net]["accuracy_pct"]))
        pub_pairs = p if pub_pairs is None else pub_pairs & p
    pub_pairs = sorted(pub_pairs)
    checks = {}
    for model, a in agg.items():
        ours = {m: [(a["table"][m][str(k)]["accuracy_mean"], a["table"][m][str(k)]["accuracy_std"])
                    for k in cfg.report_k] for m in cfg.methods}
        checks[model] = C.compare_orderings(pub_pairs, ours, k_sigma=1.0, n_test=N_TEST)
    return {"published_pairs": [f"{a} > {b}" for a, b in pub_pairs],
            "rule": "a published ordering 'a > b' holds in every column of both CIFAR-10 tables; ours "
                    "agrees in a column when mean_a - mean_b exceeds the margin, disagrees when "
                    "mean_b - mean_a exceeds it, ties otherwise; margin = max(1 combined std over seeds, "
                    f"binomial standard error of the difference on the {N_TEST} test images)",
            "by_model": checks}


def compute(cfg: Config) -> dict:
    """Run every model × seed and aggregate; plain data (no matplotlib)."""
    t0 = time.perf_counter()
    runs = []
    for model in cfg.models:
        for seed in cfg.seeds:
            t1 = time.perf_counter()
            runs.append(run_one(model, seed, cfg))
            print(f"[surp] {model} seed {seed}: {time.perf_counter() - t1:.1f} s", file=sys.stderr, flush=True)
    agg = _aggregate(runs, cfg)
    expected = C.load_expected(NAME)
    return {"name": NAME, "config": asdict(cfg), "aggregate": agg, "orderings": _ordering_check(agg, cfg, expected),
            "expected": expected, "runs": runs, "compute_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- presentation


def make_table(data: dict) -> str:
    """The markdown report: our tables, the published ones, the ordering check, the notes."""
    cfg = data["config"]
    lines = [f"# SuRP table, in miniature on digits ({'QUICK mode' if cfg['quick'] else 'full run'})", ""]
    if cfg["quick"]:
        lines += [f"Quick mode: {len(cfg['seeds'])} seed(s), pruning rounds at k = {list(cfg['rounds_k'])} only "
                  f"(the protocol prunes 20 % per round), {cfg['train_epochs']} training and "
                  f"{cfg['retrain_epochs']} retraining epoch(s). A smoke test, not a reproduction.", ""]
    lines += [f"Protocol: rounds of 20 % pruning at k = {list(cfg['rounds_k'])} (sparsity 1 − 0.8^k), "
              f"{cfg['retrain_epochs']} epoch(s) of masked-gradient retraining after each round; "
              f"seeds {list(cfg['seeds'])}. Cells: test accuracy (%) mean ± std over seeds; "
              "below each, bits per parameter (SuRP: measured stream; baselines: ratedist.pruning.cost).", ""]
    for model, a in data["aggregate"].items():
        head = ["Method"] + [f"k={k} ({100 * (1 - 0.8 ** k):.2f} %)" for k in cfg["report_k"]]
        rows = []
        for m in cfg["methods"]:
            row, brow = [m], [f"{m} bpp"]
            for k in cfg["report_k"]:
                c = a["table"][m][str(k)]
                if c["n_seeds"] == 0:
                    row.append("unreachable" if c["errors"] else "n/a")
                    brow.append("")
                    continue
                row.append(C.fmt_mean_std(100 * c["accuracy_mean"], 100 * c["accuracy_std"], 2, c["n_seeds"])
                           + ("" if abs(c["sparsity_mean"] - c["target_sparsity"]) < 5e-3
                              else f" (s={100 * c['sparsity_mean']:.1f} %)"))
                brow.append(f"{c['bpp_mean']:.3f}")
            rows += [row, brow]
        lines += [f"## {model}: {a['n_params']} weights, dense accuracy "
                  f"{C.fmt_mean_std(100 * a['dense_accuracy_mean'], 100 * a['dense_accuracy_std'], 2, len(cfg['seeds']))} %",
                  "", C.markdown_table(head, rows), ""]
        errs = sorted({e for m in cfg["methods"] for c in a["table"][m].values() for e in c["errors"]})
        lines += [f"- {model}: unreachable cell: {e}" for e in errs] + ([""] if errs else [])
    lines += ["## Published (CIFAR-10, slides; docs/theory.md §4d)", ""]
    for net in ("ResNet-20/CIFAR-10", "VGG-16/CIFAR-10"):
        t = data["expected"]["tables"][net]
        head = ["Method"] + [f"k={k} ({r:.2f} %)" for k, r in zip(t["k"], t["pruning_ratio_pct"])]
        rows = [[m] + [f"{v:.2f}" for v in vals] for m, vals in t["accuracy_pct"].items()]
        lines += [f"### {net}", "", C.markdown_table(head, rows), ""]
    o = data["orderings"]
    lines += ["## Do the paper's orderings hold here?", "", o["rule"] + ".", ""]
    for model, checks in o["by_model"].items():
        lines += C.orderings_markdown(model, checks)
    lines += ["## Notes", "",
              "- Sparsity counts every parameter; the networks are bias-free, so every parameter is a "
              "prunable weight (the paper's LAMP rows count conv/linear weights only, SuRP's code all "
              "parameters).",
              "- SuRP's bits are its measured stream up to the round's sparsity, for the decoded model "
              "before retraining; retraining changes the surviving values, which the next round re-encodes.",
              "- Retraining keeps the last epoch; the reference code keeps the best test epoch.",
              "- The published rows are CIFAR-10 networks of 0.27 M (ResNet-20) and 14.7 M (VGG-16) "
              "parameters; these are digits networks of a few 10^4 weights, so only orderings, not "
              "accuracies, are comparable.",
              f"- Wall time of the computation: {data['compute_s']:.1f} s."]
    return "\n".join(lines) + "\n"


def plot(data: dict):
    """Accuracy against sparsity for every method and model (one panel per model)."""
    import matplotlib.pyplot as plt

    agg = data["aggregate"]
    cfg = data["config"]
    fig, axes = plt.subplots(1, len(agg), figsize=(5.2 * len(agg), 4.0), squeeze=False)
    markers = dict(zip(METHODS, "osD^v"))
    for ax, (model, a) in zip(axes[0], agg.items()):
        for m in cfg["methods"]:
            pts = [c for c in a["table"][m].values() if c["n_seeds"] > 0]
            if not pts:
                continue
            x = np.array([100 * (1 - c["sparsity_mean"]) for c in pts])  # weights remaining, %
            y = np.array([100 * c["accuracy_mean"] for c in pts])
            e = np.array([100 * c["accuracy_std"] for c in pts])
            label = m
            if any(c["errors"] for c in a["table"][m].values()):
                label += f" (stops at {100 - x.min():.1f} %)"
            ax.errorbar(x, y, yerr=e if len(cfg["seeds"]) > 1 else None, marker=markers.get(m, "o"),
                        ms=4, capsize=2, label=label, lw=1.5 if m == "SuRP" else 1.0)
        ax.axhline(100 * a["dense_accuracy_mean"], color="0.5", ls=":", lw=1, label="dense")
        ax.set_title(f"{model} on digits ({a['n_params']} weights)")
        ax.set_xscale("log")
        ax.invert_xaxis()
        lo = min((100 * (1 - c["sparsity_mean"]) for m in cfg["methods"] for c in a["table"][m].values()
                  if c["n_seeds"] > 0), default=1.0)
        ticks = [t for t in (100, 50, 20, 10, 5, 2, 1, 0.5, 0.2, 0.1) if t >= lo / 1.6]
        ax.set_xticks(ticks)
        ax.set_xticklabels([f"{t:g}\n({100 - t:g})" for t in ticks], fontsize=8)
        ax.set_xlabel("weights remaining, % (sparsity, %), log scale")
        ax.set_ylabel("test accuracy (%)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    seeds = len(cfg["seeds"])
    who = f"mean ± std over {seeds} seeds" if seeds > 1 else "1 seed"
    fig.suptitle(f"Iterative pruning with masked retraining ({who}{', QUICK mode' if cfg['quick'] else ''})",
                 fontsize=10)
    fig.tight_layout()
    return fig


def _text_summary(data: dict, files: list[str]) -> str:
    lines = []
    for model, a in data["aggregate"].items():
        lines.append(f"{model}: dense accuracy {100 * a['dense_accuracy_mean']:.2f} %")
        for m in data["config"]["methods"]:
            cells = []
            for k in data["config"]["report_k"]:
                c = a["table"][m][str(k)]
                cells.append("   unreachable   " if c["n_seeds"] == 0 else
                             f"{100 * c['accuracy_mean']:6.2f} % {c['bpp_mean']:5.3f} bpp")
            lines.append(f"  {m:<9}" + " | ".join(cells))
        checks = data["orderings"]["by_model"][model]
        lines.append("  paper orderings: " + "; ".join(f"{c['paper']}: {c['verdict']}" for c in checks))
    lines.append("wrote " + ", ".join(files))
    return "\n".join(lines)


def run(quick: bool = False, seeds: int | None = None, out: str | Path = "paper_repro/out",
        **overrides) -> tuple[dict, str]:
    """Compute the table, write json/md/png/pdf/manifest to ``out``; return (payload, text)."""
    t0 = time.perf_counter()
    cfg = config(quick, seeds, **overrides)
    data = compute(cfg)
    files, wall = C.write_table(out, NAME, data, make_table(data), plot,
                                args={"quick": quick, "seeds": seeds, "out": str(out), **overrides},
                                seeds=cfg.seeds, t0=t0)
    payload = {"name": NAME, "quick": quick, "out": str(out), "files": files, "wall_time_s": wall,
               "aggregate": data["aggregate"], "orderings": data["orderings"]}
    return payload, make_table(data) + "\n" + _text_summary(data, files)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="surp_table", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--out", default="paper_repro/out")
    args = p.parse_args(argv)
    _, text = run(args.quick, args.seeds, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
