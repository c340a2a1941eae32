"""Output-perturbation bound report: per-layer contributions and a sparsity sweep (docs/theory.md §2).

Usage::

    python analysis/bound_report.py                       # embedded default model, magnitude + SuRP sweep
    python analysis/bound_report.py ORIGINAL COMPRESSED   # per-layer report of your own pair
    python analysis/bound_report.py ... --json out.json

For a pair of weight files (2-D tensors in file order, a bias-free ReLU MLP) it
prints each layer's norms and its terms in the slide, safe and induced-norm
bounds.  For one model it prunes the weights to a range of sparsities by
magnitude and (when ``ratedist.surp`` can encode) by SuRP and reports the three
bounds next to the measured perturbation (a lower estimate of the supremum).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["layer_report", "magnitude_prune", "surp_prune", "sparsity_sweep", "main"]


def layer_report(original: Mapping, compressed: Mapping, *, layers=None) -> dict:
    """Per-layer norms and bound terms of a compressed model (plain data)."""
    import warnings

    from ratedist.bounds import perturbation_bounds
    from ratedist.errors import RatedistWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RatedistWarning)
        b = perturbation_bounds(original, compressed, layers=layers)
    return b.to_dict()


def magnitude_prune(weights: Mapping, sparsity: float) -> dict:
    """Global magnitude pruning of the 2-D tensors to ``sparsity``.

    Uses ``ratedist.pruning.prune(method="global")`` when available, else a
    local top-k over |w| of all 2-D tensors (ties kept).
    """
    try:
        from ratedist.pruning import prune

        res = prune(weights, method="global", sparsity=sparsity,
                    layers=[k for k, v in weights.items() if np.ndim(v) == 2])
        return {k: np.where(res.masks[k], v, 0.0) if np.ndim(v) == 2 else v for k, v in weights.items()}
    except ImportError:  # pragma: no cover - the pruning package ships with ratedist
        mats = {k: np.asarray(v, dtype=np.float64) for k, v in weights.items() if np.ndim(v) == 2}
        allw = np.concatenate([np.abs(v).ravel() for v in mats.values()])
        n_keep = int(round((1 - sparsity) * allw.size))
        thr = np.inf if n_keep == 0 else np.partition(allw, allw.size - n_keep)[allw.size - n_keep]
        return {k: (np.where(np.abs(v) >= thr, v, 0.0) if k in mats else v) for k, v in weights.items()}


def surp_prune(weights: Mapping, sparsities: Sequence[float], *, seed: int = 0):
    """SuRP reconstructions at each sparsity, or ``(None, reason)`` when SuRP cannot encode here.

    Returns
    -------
    dict or None
        ``{sparsity: weights}`` decoded from the SuRP stream (real bytes).
    str
        Empty, or why SuRP was skipped.
    """
    try:
        from ratedist import surp

        mats = {k: v for k, v in weights.items() if np.ndim(v) == 2}
        enc = surp.encode(mats, list(sparsities), seed=seed, normalize="l1")
        out = {}
        for s in sparsities:
            dec = surp.decode(enc.stream, sparsity=s)
            out[s] = {k: np.asarray(dec[k], dtype=np.float64) for k in mats}
        return out, f"SuRP stream {len(enc.stream)} bytes"
    except Exception as exc:  # noqa: BLE001 - SuRP is optional here; report why it was skipped
        return None, f"SuRP skipped: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


def sparsity_sweep(weights: Mapping, sparsities: Sequence[float], *, methods=("magnitude", "surp"),
                   restarts: int = 4, steps: int = 60, seed: int = 0) -> dict:
    """Slide, safe, induced bounds and the measured perturbation at each sparsity, per method.

    Returns
    -------
    dict
        ``{"sparsities": [...], "methods": {name: [{"sparsity", "achieved_sparsity", "slide", "safe",
        "induced", "measured", "distortion", "precondition_holds"}, ...]}, "notes": [...]}``
    """
    import warnings

    from ratedist.bounds import measured_perturbation, mlp_from_weights, perturbation_bounds
    from ratedist.errors import RatedistWarning

    orig = mlp_from_weights(weights)
    names = [lay.name for lay in orig]
    notes = []
    candidates = {}
    if "magnitude" in methods:
        candidates["magnitude"] = {s: magnitude_prune(weights, s) for s in sparsities}
    if "surp" in methods:
        sp, note = surp_prune(weights, sparsities, seed=seed)
        notes.append(note)
        if sp is not None:
            candidates["surp"] = sp
    out = {}
    for method, by_s in candidates.items():
        rows = []
        for s in sparsities:
            comp = by_s[s]
            comp_list = [np.asarray(comp[k], dtype=np.float64) for k in names]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RatedistWarning)
                b = perturbation_bounds(orig, comp_list)
            m = measured_perturbation(orig, comp_list, restarts=restarts, steps=steps, seed=seed)
            achieved = float(np.mean(np.concatenate([c.ravel() for c in comp_list]) == 0))
            rows.append({"sparsity": float(s), "achieved_sparsity": achieved, "slide": b.slide, "safe": b.safe,
                         "induced": b.induced, "measured": m.value, "distortion": b.distortion,
                         "precondition_holds": b.precondition_holds})
        out[method] = rows
    return {"sparsities": [float(s) for s in sparsities], "methods": out, "notes": notes}


def _print_layers(rep: dict) -> None:
    print(f"{'layer':<20} {'|w|_1':>10} {'|w^|_1':>10} {'rel.Δ':>8} {'slide term':>12} {'safe term':>12} "
          f"{'induced term':>12}")
    for c in rep["per_layer"]:
        print(f"{c['name']:<20} {c['norm']:>10.4g} {c['norm_compressed']:>10.4g} {c['relative_delta']:>8.4f} "
              f"{c['slide_term']:>12.4g} {c['safe_term']:>12.4g} {c['induced_term']:>12.4g}")
    print(f"slide {rep['slide']:.4g}  safe {rep['safe']:.4g}  induced {rep['induced']:.4g}  "
          f"d(u,û) {rep['distortion']:.4g}  precondition {'holds' if rep['precondition_holds'] else 'FAILS'}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("original", nargs="?", help="weights file (default: the embedded default model)")
    parser.add_argument("compressed", nargs="?", help="compressed twin (default: a magnitude/SuRP sweep)")
    parser.add_argument("--layers", default=None, help="glob pattern(s) of the weight matrices")
    parser.add_argument("--sparsities", default="0.3,0.5,0.7,0.8,0.9,0.95",
                        help="comma-separated sparsities of the sweep")
    parser.add_argument("--json", default=None, help="write the report as JSON here")
    args = parser.parse_args(argv)

    from ratedist.errors import RatedistError
    from ratedist.io import load_weights
    from ratedist.scripts import write_json

    try:
        from ratedist.data import default_model

        w = load_weights(args.original) if args.original else default_model()
        report: dict = {}
        if args.compressed:
            report["layers"] = layer_report(w, load_weights(args.compressed), layers=args.layers)
            _print_layers(report["layers"])
        else:
            sp = [float(s) for s in args.sparsities.split(",") if s.strip()]
            t0 = time.perf_counter()
            report["sweep"] = sparsity_sweep(w, sp)
            for method, rows in report["sweep"]["methods"].items():
                print(f"== {method}")
                print(f"{'sparsity':>8} {'slide':>11} {'safe':>11} {'induced':>11} {'measured':>11} {'d(u,û)':>10}")
                for r in rows:
                    print(f"{r['achieved_sparsity']:>8.3f} {r['slide']:>11.4g} {r['safe']:>11.4g} "
                          f"{r['induced']:>11.4g} {r['measured']:>11.4g} {r['distortion']:>10.3g}")
            for note in report["sweep"]["notes"]:
                print(note)
            mid = magnitude_prune(w, sp[len(sp) // 2])
            report["layers"] = layer_report(w, mid, layers=args.layers)
            print(f"\nper-layer contributions, magnitude pruning at {sp[len(sp) // 2]:.2f}:")
            _print_layers(report["layers"])
            print(f"({time.perf_counter() - t0:.1f} s)")
        if args.json:
            write_json(args.json, report)
    except RatedistError as exc:
        print(f"bound_report: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
