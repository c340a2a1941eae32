"""``ratedist surp encode|decode|inspect``: the SuRP codec from the command line."""

from __future__ import annotations

from pathlib import Path

from ..errors import InvalidArgumentError

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    from ..cli import add_json_flag

    p = sub.add_parser("surp", help="SuRP: encode a model into a progressive bitstream, decode any checkpoint")
    ssub = p.add_subparsers(dest="surp_verb", metavar="{encode,decode,inspect}")
    ssub.required = True

    e = ssub.add_parser("encode", help="encode weights (.safetensors, .npz, torch state_dict) to a .rdst stream")
    e.add_argument("input", metavar="IN", help="weights file (.safetensors, .npz, .pt/.pth/.bin)")
    e.add_argument("-o", "--output", required=True, metavar="OUT.rdst", help="stream file to write")
    e.add_argument("--sparsity", type=float, action="append", required=True,
                   help="target sparsity in (0, 1); repeat for several checkpoints")
    e.add_argument("--seed", type=int, default=0, help="key of the shared permutations (default 0)")
    e.add_argument("--alpha", type=float, default=None, help="initial threshold factor α (default ln(n/ln n))")
    e.add_argument("--normalize", choices=["l2", "l1"], default="l2", help="per-tensor normalization (default l2)")
    e.add_argument("--algorithm", choices=["sequential", "parallel"], default="sequential")
    e.add_argument("--device", choices=["cpu", "cuda"], default=None, help="parallel algorithm only")
    e.add_argument("--gamma", type=float, default=None, help="parallel algorithm only: threshold decay per round")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(e)
    e.set_defaults(func=run_encode)

    d = ssub.add_parser("decode", help="decode a .rdst stream (or a prefix of it) to weights")
    d.add_argument("input", metavar="IN.rdst")
    d.add_argument("-o", "--output", required=True, metavar="OUT", help=".safetensors or .npz")
    d.add_argument("--sparsity", type=float, default=None, help="checkpoint to decode (default: the densest)")
    add_json_flag(d)
    d.set_defaults(func=run_decode)

    i = ssub.add_parser("inspect", help="describe a .rdst stream from its header")
    i.add_argument("input", metavar="IN.rdst")
    add_json_flag(i)
    i.set_defaults(func=run_inspect)


def run_encode(args):
    from .. import surp
    from ..io import load_weights

    weights = load_weights(args.input)
    params = {}
    if args.algorithm == "parallel":
        if args.device is not None:
            params["device"] = args.device
        if args.gamma is not None:
            params["gamma"] = args.gamma
    elif args.device is not None or args.gamma is not None:
        raise InvalidArgumentError("`--device` and `--gamma` belong to `--algorithm parallel`.")
    kwargs = {"normalize": args.normalize, "algorithm": args.algorithm,
              "progress": not (args.json or args.quiet)}
    if args.algorithm == "sequential":
        kwargs.update(seed=args.seed, alpha=args.alpha)
    elif args.alpha is not None:
        raise InvalidArgumentError("`--alpha` belongs to the sequential algorithm.")
    enc = surp.encode(weights, args.sparsity, **kwargs, **params)
    surp.save(enc, args.output)
    payload = enc.report.to_dict()
    payload["output"] = str(args.output)
    return payload, surp.format_report(enc.report) + f"\nwrote {args.output} ({len(enc.stream)} bytes)"


def run_decode(args):
    from .. import surp
    from ..io import save_weights

    stream = surp.load(args.input)
    suffix = Path(args.output).suffix.lower()
    if suffix not in (".safetensors", ".npz"):
        raise InvalidArgumentError(f"`-o` {args.output!r} must end in .safetensors or .npz.")
    info = surp.inspect(stream)
    weights = surp.decode(stream, sparsity=args.sparsity)
    save_weights(args.output, weights)
    n = sum(int(w.size) for w in weights.values())
    nnz = sum(int((w != 0).sum()) for w in weights.values())
    payload = {"output": str(args.output), "n_params": n, "nnz": nnz, "sparsity": 1 - nnz / n,
               "algorithm": info["algorithm"], "tensors": list(weights)}
    return payload, f"wrote {args.output}: {len(weights)} tensors, {n} parameters, sparsity {1 - nnz / n:.6f}"


def run_inspect(args):
    from .. import surp

    info = surp.inspect(surp.load(args.input))
    lines = [f"SuRP stream ({info['algorithm']}), {info['n_params']} parameters, {info['n_bytes']} bytes, "
             f"normalize={info['normalize']}, seed={info['seed']}",
             f"{'target':>8} {'sparsity':>10} {'iteration':>10} {'bytes':>10}"]
    for cp in info["checkpoints"]:
        lines.append(f"{cp['target']:>8.4f} {cp['sparsity']:>10.6f} {cp['iteration']:>10d} {cp['n_bytes']:>10d}")
    lines.append("tensors: " + ", ".join(f"{t['name']}{tuple(t['shape'])}" for t in info["tensors"]))
    return info, "\n".join(lines)
