"""Sparse training methods compared on accuracy and measured bits, in miniature on digits (issue 15).

Every method of :mod:`ratedist.sparse` trains the digits networks of the other tables (the
bias-free MLP 64-256-128-10 and, in the full run, the bias-free CNN) to sparsities 80/90/95/98 %
with the same budget of ``epochs`` training epochs (the lottery-ticket rows train ``rounds + 1``
times that budget, as the procedure does; stated in the output):

* **GMP**: gradual magnitude pruning during training, cubic schedule from 10 % to 75 % of the steps
  (Zhu & Gupta 2017; Gale et al. 2019), global magnitude allocation;
* **LTH-rewind**: lottery ticket, ``rounds`` prune–rewind rounds, rewinding to the weights after
  ``rewind_epochs`` epoch(s) (Frankle et al. 2020); **LTH-reinit** and **LTH-random-mask**: its
  random-reinitialization and random-mask (layer-wise reshuffle) controls;
* **SNIP**, **GraSP**, **SynFlow** (iterative, data-free), **FORCE**, **Random** (uniform per layer):
  pruning at initialization, then training with the mask fixed; **SNIP-reshuffled**: the SNIP mask
  reshuffled inside each layer before training (the sanity check of Frankle et al. 2021);
* **SET** (ER init, ζ = 0.3 constant, random regrowth) and **RigL** (ERK init, α = 0.3 cosine,
  gradient regrowth): dynamic sparse training, an update every ``dst_update_every`` steps until
  75 % of training; **DSR** (adaptive global threshold, regrowth reallocated across layers by their
  surviving weights) and **SNFS** (magnitude pruning, regrowth redistributed and placed by the
  momentum of the dense gradient), both from uniform random masks;
* **OBD** (Hessian diagonal by Hutchinson's estimator, global cut) and **OBS** (layer-wise optimal brain
  surgeon with the weight update, each layer at the target; full run only): one shot after half the
  budget of dense training, then masked fine-tuning for the other half;
* **L0** (hard-concrete gates) and **VD** (sparse variational dropout), full run only: a bisection on
  log λ over at most ``reg_trials`` trainings of the full budget each, keeping the trial whose natural
  sparsity is closest to the target; its masks meet the target exactly by ranking the gates.

Bits per parameter: the final model's mask and kept values coded by
:func:`ratedist.pruning.cost` (Bernoulli range-coded mask, kept values quantized to ``b`` bits
and range-coded), decoded by :func:`ratedist.pruning.decode_cost`; ``b`` is the smallest of
``value_bits`` whose *decoded* model is within ``decode_tolerance`` of the float model's
accuracy, and the accuracy reported is the decoded model's.  That coder is the one in ratedist
that codes a mask exactly; the quantizers of :mod:`ratedist.quant` code dense tensors and do not
keep the zeros' positions exact.

Published: the ResNet-50/ImageNet rows of the slides (``expected/sparse.json``) at 80 % and 90 %;
their pairwise orderings among the methods run here are checked against ours at the same
sparsities.  The lectures' claims are checked too (reshuffle within noise; GMP within noise of
the best at 90 %; RigL ≥ SET; LTH with rewinding > random reinit at 95/98 %).

Run ``ratedist repro sparse [--quick] [--seeds N] --out DIR`` or
``python paper_repro/sparse_table.py --quick --out DIR``.
"""

# no `from __future__ import annotations`: see surp_table.py

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
    if "_ratedist_repro_common" in sys.modules:
        C = sys.modules["_ratedist_repro_common"]
    else:
        import importlib.util as _ilu

        _spec = _ilu.spec_from_file_location("_ratedist_repro_common", Path(__file__).with_name("_common.py"))
        C = _ilu.module_from_spec(_spec)
        sys.modules["_ratedist_repro_common"] = C
        _spec.loader.exec_module(C)

__all__ = ["NAME", "METHODS", "Config", "config", "run_method", "compute", "make_table", "plot", "run", "main"]

NAME = "sparse"
METHODS = ("GMP", "LTH-rewind", "LTH-reinit", "LTH-random-mask", "SNIP", "SNIP-reshuffled", "GraSP", "SynFlow",
           "FORCE", "Random", "SET", "RigL", "DSR", "SNFS", "OBD", "OBS", "L0", "VD")
#: quick mode leaves out layer-wise OBS (seconds per layer on one core at the MLP's 256 inputs) and the
#: λ searches of L0 and VD (``reg_trials`` trainings per cell)
QUICK_METHODS = tuple(m for m in METHODS if m not in ("OBS", "L0", "VD"))
#: λ search intervals (bisection on log λ)
LAMBDA_RANGE = {"L0": (1e-2, 1e3), "VD": (1e-4, 10.0)}
#: our method name -> the published row it is compared with
PUBLISHED_NAME = {"SNIP": "SNIP", "RigL": "RigL", "DSR": "DSR", "SNFS": "SNFS"}
N_TEST = 450


@dataclass(frozen=True)
class Config:
    """One table run: models × seeds × sparsities × methods, every method with ``epochs`` epochs."""

    quick: bool
    models: tuple = ("mlp", "cnn")
    seeds: tuple = (0, 1, 2)
    sparsities: tuple = (0.8, 0.9, 0.95, 0.98)
    methods: tuple = METHODS
    epochs: int = 30
    lr: float = 2e-3
    weight_decay: float = 1e-4
    batch: int = 64
    lth_rounds: int = 3
    rewind_epochs: int = 1
    pai_batch: int = 256
    synflow_iterations: int = 100
    force_iterations: int = 10
    gmp_every: int = 10
    dst_update_every: int = 10
    obs_block: int = 16
    hutchinson_samples: int = 16
    reg_trials: int = 5
    value_bits: tuple = (2, 3, 4, 5, 6, 8)
    decode_tolerance: float = 0.005


def config(quick: bool = False, seeds: int | None = None, **overrides) -> Config:
    """The full configuration, or the quick one (MLP only, 1 seed, 6 epochs, one LTH round)."""
    from ratedist._validation import check_int

    if quick:
        cfg = Config(quick=True, models=("mlp",), seeds=(0,), methods=QUICK_METHODS, epochs=6, lth_rounds=1,
                     synflow_iterations=20, force_iterations=5, value_bits=(3, 4, 6, 8))
    else:
        cfg = Config(quick=False)
    if seeds is not None:
        n = check_int("seeds", seeds, minimum=1)
        cfg = replace(cfg, seeds=tuple(range(n)))
    return replace(cfg, **overrides)


# ----------------------------------------------------------------------------- one run


def _pai_batch(data, cfg: Config, seed: int):
    torch = C._torch()
    g = torch.Generator().manual_seed(10007 + seed)
    idx = torch.randperm(data.n_train, generator=g)[:cfg.pai_batch]
    return data.X_train[idx], data.y_train[idx]


def run_method(method: str, model: str, seed: int, s: float, cfg: Config, data) -> dict:
    """Train ``model`` with ``method`` to sparsity ``s``; return the float accuracy, masks and weights."""
    from ratedist import sparse

    net = C.make_model(model, seed)
    tr = {"lr": cfg.lr, "weight_decay": cfg.weight_decay, "batch_size": cfg.batch}
    xy = (data.X_train, data.y_train)
    steps_per_epoch = -(-data.n_train // cfg.batch)
    epochs_used = cfg.epochs
    if method == "GMP":
        res = sparse.gradual_magnitude_pruning(net, xy, sparsity=s, epochs=cfg.epochs, seed=seed, every=cfg.gmp_every,
                                               **tr)
    elif method.startswith("LTH"):
        control = {"LTH-rewind": None, "LTH-reinit": "reinit", "LTH-random-mask": "random_mask"}[method]
        res = sparse.lottery_ticket(net, xy, sparsity=s, epochs=cfg.epochs, seed=seed, rounds=cfg.lth_rounds,
                                    rewind_step=cfg.rewind_epochs * steps_per_epoch, control=control, **tr)
        epochs_used = cfg.epochs * (cfg.lth_rounds + 1)
    elif method in ("SNIP", "SNIP-reshuffled", "GraSP", "SynFlow", "FORCE", "Random"):
        base = "snip" if method == "SNIP-reshuffled" else method.lower()
        masks = sparse.pai_masks(net, base, sparsity=s, seed=seed, batch=_pai_batch(data, cfg, seed),
                                 input_shape=tuple(data.X_train.shape[1:]),
                                 iterations=cfg.synflow_iterations if base == "synflow" else cfg.force_iterations)
        if method == "SNIP-reshuffled":
            masks = sparse.reshuffle_masks(masks, seed=seed + 17)
        res = sparse.train_fixed_mask(net, masks, xy, epochs=cfg.epochs, seed=seed, **tr)
    elif method in ("SET", "RigL", "DSR", "SNFS"):
        res = sparse.train_dst(net, xy, method=method.lower(), sparsity=s, epochs=cfg.epochs, seed=seed,
                               update_every=cfg.dst_update_every, **tr)
    elif method in ("OBD", "OBS"):  # one-shot after half the budget, masked fine-tuning for the other half
        from ratedist import pruning
        from ratedist.pruning import torch_adapter

        first = cfg.epochs // 2
        sparse.train_masked(net, None, xy, epochs=first, seed=seed, **tr)
        w = sparse.module_weights(net)
        if method == "OBD":
            batch = _pai_batch(data, cfg, seed)
            h = torch_adapter.hessian_diagonal(net, lambda m, b: C._torch().nn.functional.cross_entropy(m(b[0]), b[1]),
                                               batch, n_samples=cfg.hutchinson_samples, seed=seed)
            masks = pruning.prune(w, method="global", sparsity=s, scores=pruning.obd(w, h)).masks
            new = pruning.apply_masks(w, masks)
        else:
            import contextlib

            from ratedist.sparse.obs import input_hessians, obs_prune

            try:  # threadpoolctl comes with scikit-learn (the torch extra); without it BLAS keeps its threads
                from threadpoolctl import threadpool_limits
            except ImportError:  # pragma: no cover
                threadpool_limits = lambda n: contextlib.nullcontext()  # noqa: E731
            with threadpool_limits(1):  # small matrices: BLAS threads only contend
                new, masks = obs_prune(w, input_hessians(net, data.X_train), sparsity=s, block=cfg.obs_block)
        C.set_weights(net, new)
        res = sparse.train_fixed_mask(net, masks, xy, epochs=cfg.epochs - first, seed=seed + 1, **tr)
    elif method in ("L0", "VD"):
        import warnings

        lo, hi = LAMBDA_RANGE[method]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # convergence is recorded in the cell
            res = sparse.search_lambda(lambda: C.make_model(model, seed), xy, method=method.lower(), sparsity=s,
                                       epochs=cfg.epochs, seed=seed, lam_low=lo, lam_high=hi, n_trials=cfg.reg_trials,
                                       lr=cfg.lr, batch_size=cfg.batch)
        C.set_weights(net, res.weights)
        epochs_used = cfg.epochs * len(res.extra["search"])
        extra = {"lambda": res.extra["lam"], "natural_sparsity": res.extra["natural_sparsity"],
                 "lambda_search_converged": res.extra["converged"]}
    else:
        from ratedist.errors import InvalidArgumentError

        raise InvalidArgumentError(f"`method` {method!r} is not one of {', '.join(METHODS)}.")
    return {"extra": extra if method in ("L0", "VD") else {},"net": net, "masks": res.masks, "weights": res.weights, "accuracy_float": C.accuracy(net, data.X_test, data.y_test),
            "epochs": epochs_used}


def _measured_bits(net, weights, masks, acc_float: float, cfg: Config, data) -> dict:
    """Code mask + values at the fewest value bits that keep the decoded accuracy; decode and measure."""
    from ratedist import pruning

    best = None
    for b in cfg.value_bits:
        c = pruning.cost(weights, masks, value_bits=b)
        dec = pruning.decode_cost(c.stream)
        if not all(np.array_equal(dec.masks[k], masks[k]) for k in masks):
            raise AssertionError("decoded masks differ from the coded ones")  # the stream's contract
        C.set_weights(net, dec.weights)
        acc = C.accuracy(net, data.X_test, data.y_test)
        best = {"value_bits": b, "n_bits": int(c.n_bits), "bpp": float(c.bpp), "mask_bits": int(c.mask_bits),
                "stream_bytes": len(c.stream), "accuracy": acc}
        if acc >= acc_float - cfg.decode_tolerance:
            break
    C.set_weights(net, weights)
    return best


def run_one(model: str, seed: int, cfg: Config) -> dict:
    """Every method × sparsity for one model and seed."""
    data = C.digits_tensors(model)
    out = {"model": model, "seed": seed, "cells": []}
    for s in cfg.sparsities:
        for method in cfg.methods:
            C.seed_everything(seed)
            t0 = time.perf_counter()
            r = run_method(method, model, seed, s, cfg, data)
            n = sum(int(w.size) for w in r["weights"].values())
            zeros = sum(int(np.count_nonzero(w == 0)) for w in r["weights"].values())
            kept = sum(int(m.sum()) for m in r["masks"].values())
            rec = {"method": method, "target_sparsity": s, "sparsity": 1.0 - kept / n, "zero_fraction": zeros / n,
                   "n_params": n, "accuracy_float": r["accuracy_float"], "epochs": r["epochs"]}
            rec.update(r["extra"])
            rec.update(_measured_bits(r["net"], r["weights"], r["masks"], r["accuracy_float"], cfg, data))
            rec["seconds"] = time.perf_counter() - t0
            out["cells"].append(rec)
    return out


# ----------------------------------------------------------------------------- aggregate


def _aggregate(runs: list, cfg: Config) -> dict:
    agg = {}
    for model in cfg.models:
        cells = [c for r in runs if r["model"] == model for c in r["cells"]]
        table = {}
        for m in cfg.methods:
            cols = {}
            for s in cfg.sparsities:
                cs = [c for c in cells if c["method"] == m and c["target_sparsity"] == s]
                acc = C.mean_std([c["accuracy"] for c in cs])
                accf = C.mean_std([c["accuracy_float"] for c in cs])
                bpp = C.mean_std([c["bpp"] for c in cs])
                cols[f"{s:g}"] = {"sparsity": s, "accuracy_mean": acc[0], "accuracy_std": acc[1],
                                  "accuracy_float_mean": accf[0], "bpp_mean": bpp[0], "bpp_std": bpp[1],
                                  "value_bits": sorted({c["value_bits"] for c in cs}),
                                  "sparsity_mean": C.mean_std([c["sparsity"] for c in cs])[0],
                                  "epochs": cs[0]["epochs"] if cs else None, "n_seeds": len(cs)}
            table[m] = cols
        agg[model] = {"n_params": cells[0]["n_params"] if cells else None, "table": table}
    return agg


def _margin(a: dict, b: dict) -> float:
    """max(combined seed std, binomial standard error of a difference of accuracies on the test set)."""
    sa, sb = a["accuracy_std"], b["accuracy_std"]
    comb = math.hypot(sa if math.isfinite(sa) else 0.0, sb if math.isfinite(sb) else 0.0)
    pa, pb = a["accuracy_mean"], b["accuracy_mean"]
    return max(comb, math.sqrt((pa * (1 - pa) + pb * (1 - pb)) / N_TEST))


def _lecture_claims(agg: dict, cfg: Config) -> dict:
    """The lectures' claims, each with its measured margin per model (positive = the claim holds by that much)."""
    out = {}
    for model, a in agg.items():
        t = a["table"]
        checks = []

        def have(*ms):
            return all(m in t for m in ms)

        if have("SNIP", "SNIP-reshuffled"):
            for s in cfg.sparsities:
                x, y = t["SNIP"][f"{s:g}"], t["SNIP-reshuffled"][f"{s:g}"]
                d = x["accuracy_mean"] - y["accuracy_mean"]
                checks.append({"claim": "reshuffling a PaI (SNIP) mask inside each layer leaves accuracy unchanged "
                               "within noise (Frankle et al. 2021)", "sparsity": s, "difference": d,
                               "margin": _margin(x, y), "holds": abs(d) <= 2 * _margin(x, y)})
        if "GMP" in t and 0.9 in cfg.sparsities:
            col = "0.9"
            others = [m for m in t if m != "GMP" and not m.startswith("LTH")]  # LTH trains rounds + 1 budgets
            best = max(others, key=lambda m: t[m][col]["accuracy_mean"])
            d = t["GMP"][col]["accuracy_mean"] - t[best][col]["accuracy_mean"]
            mg = _margin(t["GMP"][col], t[best][col])
            checks.append({"claim": f"gradual magnitude pruning is within noise of the best method at 90 % "
                           f"(Gale et al. 2019; best other method with the same budget: {best})", "sparsity": 0.9, "difference": d,
                           "margin": mg, "holds": d >= -2 * mg})
        if have("RigL", "SET"):
            for s in cfg.sparsities:
                x, y = t["RigL"][f"{s:g}"], t["SET"][f"{s:g}"]
                d = x["accuracy_mean"] - y["accuracy_mean"]
                checks.append({"claim": "RigL >= SET at equal sparsity and budget (Evci et al. 2020)", "sparsity": s,
                               "difference": d, "margin": _margin(x, y), "holds": d >= -2 * _margin(x, y)})
        if have("LTH-rewind", "LTH-reinit"):
            for s in [v for v in cfg.sparsities if v >= 0.95]:
                x, y = t["LTH-rewind"][f"{s:g}"], t["LTH-reinit"][f"{s:g}"]
                d = x["accuracy_mean"] - y["accuracy_mean"]
                checks.append({"claim": "the lottery ticket with rewinding beats random reinitialization at high "
                               "sparsity (Frankle & Carbin 2019)", "sparsity": s, "difference": d,
                               "margin": _margin(x, y), "holds": d > _margin(x, y)})
        out[model] = checks
    return out


def _ordering_check(agg: dict, cfg: Config, expected: dict) -> dict:
    pub = {ours: expected["accuracy_pct"][p] for ours, p in PUBLISHED_NAME.items() if ours in cfg.methods}
    pairs = sorted(C.pairwise_orderings(pub))
    cols = [f"{s / 100:g}" for s in expected["sparsity_pct"]]
    checks = {}
    for model, a in agg.items():
        ours = {m: [(a["table"][m][c]["accuracy_mean"], a["table"][m][c]["accuracy_std"]) if c in a["table"][m]
                    else (math.nan, math.nan) for c in cols] for m in pub}
        checks[model] = C.compare_orderings(pairs, ours, k_sigma=1.0, n_test=N_TEST)
    return {"published_pairs": [f"{x} > {y}" for x, y in pairs], "columns": cols,
            "rule": "a published ordering 'a > b' holds at both 80 % and 90 % on ResNet-50/ImageNet; ours agrees in "
                    "a column when mean_a - mean_b exceeds the margin, disagrees when mean_b - mean_a exceeds it, "
                    "ties otherwise; margin = max(1 combined std over seeds, binomial standard error of the "
                    f"difference on the {N_TEST} test images)",
            "by_model": checks}


def compute(cfg: Config) -> dict:
    """Run every model × seed and aggregate; plain data (no matplotlib)."""
    t0 = time.perf_counter()
    runs = []
    for model in cfg.models:
        for seed in cfg.seeds:
            t1 = time.perf_counter()
            runs.append(run_one(model, seed, cfg))
            print(f"[sparse] {model} seed {seed}: {time.perf_counter() - t1:.1f} s", file=sys.stderr, flush=True)
    agg = _aggregate(runs, cfg)
    expected = C.load_expected(NAME)
    return {"name": NAME, "config": asdict(cfg), "aggregate": agg, "orderings": _ordering_check(agg, cfg, expected),
            "lecture_claims": _lecture_claims(agg, cfg), "expected": expected, "runs": runs,
            "compute_s": time.perf_counter() - t0}


# ----------------------------------------------------------------------------- presentation


def make_table(data: dict) -> str:
    """The markdown report: our table (accuracy and measured bpp), the published rows, the checks."""
    cfg = data["config"]
    sp = cfg["sparsities"]
    lines = [f"# Sparse training methods on digits ({'QUICK mode' if cfg['quick'] else 'full run'})", ""]
    if cfg["quick"]:
        lines += [f"Quick mode: models {list(cfg['models'])}, {len(cfg['seeds'])} seed(s), {cfg['epochs']} epochs, "
                  f"{cfg['lth_rounds']} lottery round(s). A smoke test, not a reproduction.", ""]
    lines += [f"Budget: {cfg['epochs']} training epochs per method (Adam, lr {cfg['lr']}, batch {cfg['batch']}); "
              f"the LTH rows train {cfg['lth_rounds'] + 1}× that ({cfg['lth_rounds']} prune–rewind round(s) + the "
              f"ticket), rewinding to epoch {cfg['rewind_epochs']}. DST: an update every {cfg['dst_update_every']} "
              "steps until 75 % of training. Cells: test accuracy (%) of the *decoded* model, mean ± std over seeds "
              f"{list(cfg['seeds'])}; below, measured bits per parameter of its stream (ratedist.pruning.cost: "
              "Bernoulli-coded mask + kept values quantized to the fewest bits in "
              f"{list(cfg['value_bits'])} within {100 * cfg['decode_tolerance']:.1f} points of the float model).", ""]
    for model, a in data["aggregate"].items():
        head = ["Method"] + [f"{100 * s:g} %" for s in sp]
        rows = []
        for m in cfg["methods"]:
            row, brow = [m], [f"{m} bpp (b)"]
            for s in sp:
                c = a["table"][m][f"{s:g}"]
                row.append(C.fmt_mean_std(100 * c["accuracy_mean"], 100 * c["accuracy_std"], 2, c["n_seeds"]))
                brow.append(f"{c['bpp_mean']:.3f} ({'/'.join(str(b) for b in c['value_bits'])})")
            rows += [row, brow]
        lines += [f"## {model}: {a['n_params']} weights", "", C.markdown_table(head, rows), ""]
    e = data["expected"]
    lines += ["## Published: ResNet-50 on ImageNet (slides; expected/sparse.json)", "",
              C.markdown_table(["Method"] + [f"{v:g} %" for v in e["sparsity_pct"]],
                               [[m] + [f"{v:.2f}" for v in vals] for m, vals in e["accuracy_pct"].items()]), ""]
    o = data["orderings"]
    lines += ["## Do the published orderings hold here?", "", o["rule"] + ".", ""]
    if o["published_pairs"]:
        for model, checks in o["by_model"].items():
            lines += C.orderings_markdown(model, checks)
    else:
        lines += ["(no two published methods are run here)", ""]
    lines += ["## The lectures' claims", ""]
    for model, checks in data["lecture_claims"].items():
        rows = [[c["claim"], f"{100 * c['sparsity']:g} %", f"{100 * c['difference']:+.2f}", f"{100 * c['margin']:.2f}",
                 "holds" if c["holds"] else "does not hold"] for c in checks]
        lines += [f"### {model}", "", C.markdown_table(["claim", "sparsity", "difference (points)",
                                                         "noise margin (points)", "here"], rows), ""]
    lines += ["## Notes", "",
              "- Sparsity counts every parameter (the networks are bias-free); every method meets its target "
              "within one weight (layer-wise OBS: one weight per layer).",
              "- The published rows are ResNet-50 on ImageNet (25 M weights); these are digits networks of a few "
              "10^4 weights, so only orderings are comparable.",
              "- Claims: 'within noise' is |difference| <= 2 margins; 'beats' is difference > 1 margin; "
              "'>=' is difference >= -2 margins.",
              f"- Wall time of the computation: {data['compute_s']:.1f} s."]
    return "\n".join(lines) + "\n"


def plot(data: dict):
    """Accuracy against measured bits per parameter (log x), one curve per method, one panel per model."""
    import matplotlib.pyplot as plt

    agg, cfg = data["aggregate"], data["config"]
    fig, axes = plt.subplots(1, len(agg), figsize=(6.0 * len(agg), 4.4), squeeze=False)
    cmap = plt.get_cmap("tab20")
    for ax, (model, a) in zip(axes[0], agg.items()):
        for i, m in enumerate(cfg["methods"]):
            pts = sorted(a["table"][m].values(), key=lambda c: c["bpp_mean"])
            x = np.array([c["bpp_mean"] for c in pts])
            y = np.array([100 * c["accuracy_mean"] for c in pts])
            e = np.array([100 * c["accuracy_std"] for c in pts])
            ax.errorbar(x, y, yerr=e if len(cfg["seeds"]) > 1 else None, marker="os^vD<>ph*xP"[i % 12], ms=4,
                        capsize=2, lw=1.0, color=cmap(i), label=m)
        ax.set_xscale("log")
        ax.set_xlabel("measured bits per parameter (mask + values), log scale")
        ax.set_ylabel("test accuracy of the decoded model (%)")
        ax.set_title(f"{model} on digits ({a['n_params']} weights), sparsity {', '.join(f'{100 * s:g}' for s in cfg['sparsities'])} %",
                     fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7, ncol=2, loc="lower right")
    seeds = len(cfg["seeds"])
    fig.suptitle(f"Sparse training: accuracy against bits ({'mean ± std over %d seeds' % seeds if seeds > 1 else '1 seed'}"
                 f"{', QUICK mode' if cfg['quick'] else ''})", fontsize=10)
    fig.tight_layout()
    return fig


def _text_summary(data: dict, files: list) -> str:
    lines = []
    for model, a in data["aggregate"].items():
        lines.append(f"{model}:")
        for m in data["config"]["methods"]:
            cells = [f"{100 * c['accuracy_mean']:6.2f} % {c['bpp_mean']:5.3f} bpp" for c in a["table"][m].values()]
            lines.append(f"  {m:<16}" + " | ".join(cells))
        lines.append("  published orderings: " + "; ".join(f"{c['paper']}: {c['verdict']}"
                                                           for c in data["orderings"]["by_model"][model]))
    lines.append("wrote " + ", ".join(files))
    return "\n".join(lines)


def run(quick: bool = False, seeds: int | None = None, out="paper_repro/out", **overrides):
    """Compute the table, write json/md/png/pdf/manifest to ``out``; return (payload, text)."""
    t0 = time.perf_counter()
    cfg = config(quick, seeds, **overrides)
    data = compute(cfg)
    files, wall = C.write_table(out, NAME, data, make_table(data), plot,
                                args={"quick": quick, "seeds": seeds, "out": str(out), **overrides},
                                seeds=cfg.seeds, t0=t0)
    payload = {"name": NAME, "quick": quick, "out": str(out), "files": files, "wall_time_s": wall,
               "aggregate": data["aggregate"], "orderings": data["orderings"], "lecture_claims": data["lecture_claims"]}
    return payload, make_table(data) + "\n" + _text_summary(data, files)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="sparse_table", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--seeds", type=int, default=None)
    p.add_argument("--out", default="paper_repro/out")
    args = p.parse_args(argv)
    _, text = run(args.quick, args.seeds, args.out)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
