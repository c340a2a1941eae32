"""``ratedist bound ORIGINAL COMPRESSED``: output-perturbation bounds of a compressed model (THEORY.md §2)."""

from __future__ import annotations

__all__ = ["add_parser", "run"]


def add_parser(sub) -> None:
    from ..cli import add_json_flag

    p = sub.add_parser(
        "bound",
        help="output-perturbation bounds (slide, safe, induced) and the measured perturbation",
        description="Bounds on sup_{|x|_1<=1} |f(x;w) - f(x;w_hat)|_1 for the 2-D weight tensors of two "
                    "weights files, read in file order as a bias-free ReLU MLP (input layer first).",
    )
    p.add_argument("original", help="weights file (.npz, .safetensors, .pt)")
    p.add_argument("compressed", help="the compressed twin (same tensor names and shapes)")
    p.add_argument("--layers", default=None, help="glob pattern(s) of the weight matrices, comma-separated "
                                                 "(default: every 2-D tensor)")
    p.add_argument("--include-biases", action="store_true",
                   help="use the extended bound for h = relu(W h + b) (biases named like '<layer>.bias')")
    p.add_argument("--strict", action="store_true", help="fail when the slide form's precondition fails")
    p.add_argument("--restarts", type=int, default=8, help="ascent restarts of the measured perturbation")
    p.add_argument("--steps", type=int, default=200, help="ascent steps of the measured perturbation")
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    import warnings

    from ..bounds import measured_perturbation, perturbation_bounds
    from ..errors import RatedistWarning
    from ..io import load_weights

    w = load_weights(args.original)
    wh = load_weights(args.compressed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RatedistWarning)
        b = perturbation_bounds(w, wh, layers=args.layers, include_biases=args.include_biases, strict=args.strict)
    m = measured_perturbation(w, wh, layers=args.layers, include_biases=args.include_biases,
                              restarts=args.restarts, steps=args.steps, seed=args.seed)
    payload = {
        "slide": b.slide, "safe": b.safe, "induced": b.induced, "measured": m.value,
        "distortion": b.distortion, "precondition_holds": b.precondition_holds,
        "failing_layers": list(b.failing_layers), "n_weights": b.n_weights, "biases_excluded": b.biases_excluded,
        "per_layer": [{"name": c.name, "relative_delta": c.relative_delta, "slide_term": c.slide_term,
                       "safe_term": c.safe_term, "induced_term": c.induced_term} for c in b.per_layer],
        "note": b.note,
    }
    lines = [f"layers: {', '.join(c.name for c in b.per_layer)} ({b.n_weights} weights)",
             f"slide    {b.slide:.6g}" + ("" if b.precondition_holds else
                                          f"   (NOT a valid bound: ‖ŵ‖₁ > ‖w‖₁ in {', '.join(b.failing_layers)})"),
             f"safe     {b.safe:.6g}",
             f"induced  {b.induced:.6g}",
             f"measured {m.value:.6g}   (lower estimate of the supremum)",
             f"d(u,û)   {b.distortion:.6g}   (n·d = {b.relative_sum:.6g})",
             b.note]
    return payload, "\n".join(lines)
