"""``ratedist prune IN -o OUT --method M --sparsity S``: prune a weight file and report its bits."""

from __future__ import annotations


def add_parser(sub) -> None:
    from ..cli import add_json_flag
    from ..pruning.allocation import METHODS

    p = sub.add_parser("prune", help="prune a weight file (global, uniform, adaptive, LAMP, ER, ERK) and measure its bits")
    p.add_argument("input", metavar="IN", help="weights (.npz, .safetensors, .pt)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="pruned weights (.npz or .safetensors), written atomically")
    p.add_argument("--method", default="global", choices=list(METHODS))
    p.add_argument("--sparsity", type=float, required=True, help="fraction of the selected weights to remove, in [0, 1)")
    p.add_argument("--layers", action="append", default=None, metavar="PATTERN",
                   help="tensor name pattern (shell wildcard, or 're:' + regex); repeatable; default: tensors with ndim >= 2")
    p.add_argument("--value-bits", type=int, default=None, metavar="B",
                   help="quantize kept values to B bits for the bit count (default: float32)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    from ..io import load_weights, save_weights
    from ..pruning import apply_masks, cost, prune

    weights = load_weights(args.input)
    result = prune(weights, method=args.method, sparsity=args.sparsity, layers=args.layers)
    pruned = apply_masks(weights, result.masks)
    c = cost(pruned, result.masks, value_bits=args.value_bits, layers=list(result.report))
    save_weights(args.output, pruned)
    payload = {
        "method": result.method,
        "sparsity": result.sparsity,
        "target": result.target,
        "n_kept": result.n_kept,
        "n_selected": result.n_selected,
        "layers": result.report,
        "bpp": c.bpp,
        "n_bits": c.n_bits,
        "n_params": c.n_params,
        "value_bits": args.value_bits,
        "output": str(args.output),
    }
    width = max(len(k) for k in result.report)
    lines = [f"{result.method}: sparsity {result.sparsity:.6f} (target {result.target}), "
             f"kept {result.n_kept}/{result.n_selected}"]
    for k, v in result.report.items():
        lines.append(f"  {k:<{width}}  {v['kept']:>10}/{v['size']:<10} sparsity {v['sparsity']:.4f}")
    vb = "float32" if args.value_bits is None else f"{args.value_bits}-bit"
    lines.append(f"measured {c.n_bits} bits = {c.bpp:.4f} bits/parameter over {c.n_params} parameters "
                 f"(mask {c.mask_bits}, values {c.value_bits_total} [{vb}], header {c.header_bits}); wrote {args.output}")
    return payload, "\n".join(lines)
