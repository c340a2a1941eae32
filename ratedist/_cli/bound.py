"""``ratedist bound ORIGINAL COMPRESSED``: output-perturbation bounds of a compressed model (docs/theory.md §2)."""

from __future__ import annotations

from ._common import check_seed

__all__ = ["add_parser", "run"]

# Each restart holds two input vectors and the activations of both networks; each step is one forward and
# backward pass of both: beyond these the measured value gains nothing a user would wait for.
MAX_RESTARTS = 10_000
MAX_STEPS = 1_000_000


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser(
        "bound",
        help="output-perturbation bounds (slide, safe, induced) and the measured perturbation",
        description="Bounds on sup_{|x|_1<=1} |f(x;w) - f(x;w_hat)|_1 for the 2-D weight tensors of two "
                    "weights files, read in file order as a bias-free ReLU MLP (input layer first).",
    )
    p.add_argument("original", help="weights: a file (.safetensors, .npz, .pt/.pth/.bin), a sharded checkpoint's "
                                    "*.safetensors.index.json, or a checkpoint directory")
    p.add_argument("compressed", help="the compressed twin (same tensor names and shapes; same kinds of path)")
    p.add_argument("--layers", default=None, help="glob pattern(s) of the weight matrices, comma-separated "
                                                 "(default: every 2-D tensor)")
    p.add_argument("--include-biases", action="store_true",
                   help="use the extended bound for h = relu(W h + b) (biases named like '<layer>.bias')")
    p.add_argument("--strict", action="store_true", help="fail when the slide form's precondition fails")
    p.add_argument("--restarts", type=int, default=8,
                   help=f"ascent restarts of the measured perturbation, 0..{MAX_RESTARTS}")
    p.add_argument("--steps", type=int, default=200, help=f"ascent steps of the measured perturbation, 0..{MAX_STEPS}")
    p.add_argument("--seed", type=int, default=0, help="seed of the random restarts, 0..2^63-1")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    import warnings

    from ..bounds import measured_perturbation, perturbation_bounds
    from ..errors import RatedistWarning
    from ..io import load_weights

    from .._validation import check_int
    from ..errors import InvalidArgumentError

    restarts = check_int("--restarts", args.restarts, minimum=0, maximum=MAX_RESTARTS)
    steps = check_int("--steps", args.steps, minimum=0, maximum=MAX_STEPS)
    seed = check_seed("--seed", args.seed)
    w = load_weights(args.original)
    wh = load_weights(args.compressed)
    only_w = [k for k in w if k not in wh]
    only_wh = [k for k in wh if k not in w]
    if only_w or only_wh:
        def few(keys):
            return ", ".join(repr(k) for k in keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")

        parts = ([f"only in `original`: {few(only_w)}"] if only_w else []) + \
                ([f"only in `compressed`: {few(only_wh)}"] if only_wh else [])
        raise InvalidArgumentError(
            f"`original` and `compressed` have different tensor names ({'; '.join(parts)}); compare a model with "
            "its own compressed twin.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RatedistWarning)
        b = perturbation_bounds(w, wh, layers=args.layers, include_biases=args.include_biases, strict=args.strict)
    m = measured_perturbation(w, wh, layers=args.layers, include_biases=args.include_biases,
                              restarts=restarts, steps=steps, seed=seed)
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
