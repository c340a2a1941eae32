"""``ratedist surp encode|decode|inspect``: the SuRP codec from the command line."""

from __future__ import annotations

from ..errors import InvalidArgumentError
from ._common import (WEIGHTS_HELP, add_json_flag, check_output, check_seed, input_paths, read_input,
                      stored_dtype_note)

__all__ = ["add_parser"]

STREAM_SUFFIXES = (".rdst",)
WEIGHT_OUTPUTS = (".safetensors", ".npz")
OUTPUT_HELP = ("decoded weights, written atomically: FILE.safetensors or FILE.npz for one file, a directory (or a "
               "path ending in .index.json) for shards plus index")


def add_parser(sub) -> None:
    p = sub.add_parser("surp", help="SuRP: encode a model into a progressive bitstream, decode any checkpoint")
    ssub = p.add_subparsers(dest="surp_verb", metavar="{encode,decode,inspect}")
    ssub.required = True

    e = ssub.add_parser("encode", help="encode weights (.safetensors, .npz, torch state_dict, shards) to a .rdst stream")
    e.add_argument("input", metavar="IN", help=WEIGHTS_HELP)
    e.add_argument("-o", "--output", required=True, metavar="OUT.rdst", help="stream file to write (.rdst)")
    e.add_argument("--sparsity", type=float, action="append", required=True,
                   help="target sparsity in (0, 1); repeat for several checkpoints")
    e.add_argument("--seed", type=int, default=0, help="key of the shared permutations, 0..2^63-1 (default 0)")
    e.add_argument("--alpha", type=float, default=None, help="initial threshold factor α > 0 (default ln(n/ln n))")
    e.add_argument("--normalize", choices=["l2", "l1"], default="l2", help="per-tensor normalization (default l2)")
    e.add_argument("--algorithm", choices=["sequential", "parallel"], default="sequential")
    e.add_argument("--include-buffers", action="store_true",
                   help="code BatchNorm running statistics like weights (default: carried losslessly, not counted)")
    e.add_argument("--no-bound", action="store_true",
                   help="skip the model's own rate-distortion bound in the report (a Blahut-Arimoto sweep)")
    e.add_argument("--device", choices=["cpu", "cuda"], default=None, help="parallel algorithm only")
    e.add_argument("--gamma", type=float, default=None,
                   help="parallel algorithm only: threshold decay per round, in (0, 1)")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    add_json_flag(e)
    e.set_defaults(func=run_encode)

    d = ssub.add_parser("decode", help="decode a .rdst stream (or a prefix of it) to weights")
    d.add_argument("input", metavar="IN.rdst")
    d.add_argument("-o", "--output", required=True, metavar="OUT", help=OUTPUT_HELP)
    d.add_argument("--sparsity", type=float, default=None, help="checkpoint to decode (default: the densest)")
    d.add_argument("--like", default=None, metavar="CKPT",
                   help="the encoded checkpoint (file, *.index.json or directory): write in its dtypes, key order "
                        "and shard layout (default: float32 as decoded)")
    add_json_flag(d)
    d.set_defaults(func=run_decode)

    i = ssub.add_parser("inspect", help="describe a .rdst stream from its header")
    i.add_argument("input", metavar="IN.rdst")
    add_json_flag(i)
    i.set_defaults(func=run_inspect)


def _check_sparsity(name, value):
    from .._validation import check_open_unit

    return check_open_unit(name, value)


def run_encode(args):
    from .. import surp
    from .._validation import check_positive
    from ..io import open_weights
    from ._common import write_output

    sparsities = [_check_sparsity("--sparsity", s) for s in args.sparsity]
    seed = check_seed("--seed", args.seed)
    alpha = None if args.alpha is None else check_positive("--alpha", args.alpha)
    params = {}
    if args.algorithm == "parallel":
        if args.device is not None:
            params["device"] = args.device
        if args.gamma is not None:
            params["gamma"] = _check_sparsity("--gamma", args.gamma)
    elif args.device is not None or args.gamma is not None:
        raise InvalidArgumentError("`--device` and `--gamma` belong to `--algorithm parallel`.")
    kwargs = {"normalize": args.normalize, "algorithm": args.algorithm,
              "progress": not (args.json or args.quiet), "include_buffers": args.include_buffers,
              "bound": not args.no_bound}
    if args.algorithm == "sequential":
        kwargs.update(seed=seed, alpha=alpha)
    elif alpha is not None:
        raise InvalidArgumentError("`--alpha` belongs to the sequential algorithm.")
    with open_weights(args.input) as src:
        out = check_output(args.output, input_paths(src), suffixes=STREAM_SUFFIXES)
        weights = {n: src.value(n, copy=True) for n in src}
        dtypes = stored_dtype_note(src, list(src))
    enc = surp.encode(weights, sparsities, **kwargs, **params)
    del weights
    write_output(out, enc.stream)
    payload = enc.report.to_dict()
    payload["output"] = str(out)
    payload["stored_dtypes"] = dtypes
    coded = ", ".join(f"{k} ({v} parameters)" for k, v in dtypes.items())
    return payload, (surp.format_report(enc.report) + f"\ncoded from {coded}"
                     f"\nwrote {out} ({len(enc.stream)} bytes)")


def decoded_output(args, weights, stream_path):
    """Write decoded ``weights`` to ``-o`` (file or shards) in the dtypes of ``--like``; return (path, dtypes)."""
    from ..io import open_weights
    from ._common import save_weights_output

    like = open_weights(args.like) if args.like is not None else None
    try:
        inputs = [stream_path] + (input_paths(like) if like is not None else [])
        out = check_output(args.output, inputs, suffixes=WEIGHT_OUTPUTS, shards=True)
        if weights is None:
            return out, None
        written = save_weights_output(out, weights, like=like)
        dtypes: dict[str, int] = {}
        for n, w in weights.items():
            dt = like.stored_dtype(n).name if like is not None and n in like else w.dtype.name
            dtypes[dt] = dtypes.get(dt, 0) + int(w.size)
        return written, dtypes
    finally:
        if like is not None:
            like.close()


def run_decode(args):
    from .. import surp

    sparsity = None if args.sparsity is None else _check_sparsity("--sparsity", args.sparsity)
    stream = read_input(args.input)
    decoded_output(args, None, args.input)  # refuse a bad -o/--like before decoding
    info = surp.inspect(stream)
    weights = surp.decode(stream, sparsity=sparsity)
    out, dtypes = decoded_output(args, weights, args.input)
    n = sum(int(w.size) for w in weights.values())
    nnz = sum(int((w != 0).sum()) for w in weights.values())
    payload = {"output": str(out), "n_params": n, "nnz": nnz, "sparsity": 1 - nnz / n,
               "algorithm": info["algorithm"], "tensors": list(weights), "written_dtypes": dtypes}
    return payload, (f"wrote {out}: {len(weights)} tensors, {n} parameters, sparsity {1 - nnz / n:.6f}, as "
                     + ", ".join(dtypes))


def run_inspect(args):
    from .. import surp

    info = surp.inspect(read_input(args.input))
    lines = [f"SuRP stream ({info['algorithm']}), {info['n_params']} parameters, {info['n_bytes']} bytes, "
             f"normalize={info['normalize']}, seed={info['seed']}",
             f"{'target':>8} {'sparsity':>10} {'iteration':>10} {'bytes':>10}"]
    for cp in info["checkpoints"]:
        lines.append(f"{cp['target']:>8.4f} {cp['sparsity']:>10.6f} {cp['iteration']:>10d} {cp['n_bytes']:>10d}")
    lines.append("tensors: " + ", ".join(f"{t['name']}{tuple(t['shape'])}" for t in info["tensors"]))
    return info, "\n".join(lines)
