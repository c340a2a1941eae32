"""``ratedist prune IN -o OUT --method M --sparsity S``: prune a checkpoint and report its bits."""

from __future__ import annotations

from ._common import (WEIGHTS_HELP, add_json_flag, check_output, input_paths, save_weights_output,
                      stored_dtype_note, write_output)

WEIGHT_OUTPUTS = (".safetensors", ".npz")
STREAM_SUFFIX = ".rdst"

#: ``ratedist.pruning.METHODS``, spelled out so that ``ratedist --help`` does not import NumPy
#: (tests/test_imports.py checks that the two agree).
METHODS = ("global", "uniform", "adaptive", "lamp", "er", "erk")


def add_parser(sub) -> None:
    p = sub.add_parser("prune", help="prune a weight file (global, uniform, adaptive, LAMP, ER, ERK) and measure its bits")
    p.add_argument("input", metavar="IN", help=WEIGHTS_HELP)
    p.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="FILE.rdst: the coded model (mask and values) whose bits are reported, read back by "
                        "`ratedist decode`; or the weights that stream decodes to, written atomically in the input's "
                        "dtypes: FILE.safetensors or FILE.npz for one file, a directory (or a path ending in "
                        ".index.json) for shards plus index")
    p.add_argument("--method", default="global", choices=list(METHODS))
    p.add_argument("--sparsity", type=float, required=True, help="fraction of the selected weights to remove, in [0, 1)")
    p.add_argument("--layers", action="append", default=None, metavar="PATTERN",
                   help="tensor name pattern (shell wildcard, or 're:' + regex); repeatable; default: tensors with ndim >= 2")
    p.add_argument("--value-bits", type=int, default=None, metavar="B",
                   help="quantize kept values to B bits (1..16) for the bit count (default: float32)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args):
    from .._validation import check_finite_scalar, check_int
    from ..errors import InvalidArgumentError
    from ..io import open_weights
    from ..pruning import apply_masks, cost, prune

    sparsity = check_finite_scalar("--sparsity", args.sparsity)
    if not 0.0 <= sparsity < 1.0:
        raise InvalidArgumentError(f"`--sparsity` must lie in [0, 1), got {args.sparsity!r}.")
    value_bits = None if args.value_bits is None else check_int("--value-bits", args.value_bits, minimum=1, maximum=16)
    with open_weights(args.input) as src:
        out = check_output(args.output, input_paths(src), suffixes=WEIGHT_OUTPUTS + (STREAM_SUFFIX,), shards=True)
        weights = {n: src.value(n, copy=True) for n in src}
        result = prune(weights, method=args.method, sparsity=sparsity, layers=args.layers)
        pruned = apply_masks(weights, result.masks)
        c = cost(pruned, result.masks, value_bits=value_bits, layers=list(result.report))
        dtypes = stored_dtype_note(src, list(result.report))
        if out.suffix.lower() == STREAM_SUFFIX:
            written = write_output(out, c.stream)  # the bytes whose rate is reported
        else:
            # the weights the coded stream decodes to (values quantized as counted), in the input's layout
            from ..pruning import decode_cost

            decoded = decode_cost(c.stream).weights
            written = save_weights_output(out, {n: decoded[n] for n in pruned}, like=src)
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
        "value_bits": value_bits,
        "stored_dtypes": dtypes,
        "output": str(written),
        "output_is_stream": out.suffix.lower() == STREAM_SUFFIX,
    }
    width = max(len(k) for k in result.report)
    lines = [f"{result.method}: sparsity {result.sparsity:.6f} (target {result.target}), "
             f"kept {result.n_kept}/{result.n_selected} (stored as "
             + ", ".join(f"{k}: {v}" for k, v in dtypes.items()) + ")"]
    for k, v in result.report.items():
        lines.append(f"  {k:<{width}}  {v['kept']:>10}/{v['size']:<10} sparsity {v['sparsity']:.4f}")
    vb = "float32" if value_bits is None else f"{value_bits}-bit"
    lines.append(f"measured {c.n_bits} bits = {c.bpp:.4f} bits/parameter over {c.n_params} parameters "
                 f"(mask {c.mask_bits}, values {c.value_bits_total} [{vb}], header {c.header_bits}); wrote {written}")
    return payload, "\n".join(lines)
