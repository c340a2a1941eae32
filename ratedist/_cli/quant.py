"""``ratedist quant encode|decode|inspect``: the quantizers of :mod:`ratedist.quant` from the command line."""

from __future__ import annotations

from ..errors import InvalidArgumentError
from ._common import WEIGHTS_HELP, add_json_flag, check_output, input_paths, read_input, stored_dtype_note, write_output

__all__ = ["add_parser"]

MAX_RATE = 32.0  # bits per parameter: a float32 costs 32; the quantizers' alphabets are sized from the rate


def add_parser(sub) -> None:

    p = sub.add_parser("quant", help="quantize a model near its rate-distortion bound (scalar, tcq, trellis)")
    qsub = p.add_subparsers(dest="quant_verb", metavar="{encode,decode,inspect}")
    qsub.required = True

    e = qsub.add_parser("encode", help="quantize and entropy-code weights into a .rdst stream")
    e.add_argument("input", metavar="IN", help=WEIGHTS_HELP)
    e.add_argument("-o", "--output", required=True, metavar="OUT.rdst", help="stream file to write (.rdst)")
    e.add_argument("--method", choices=["scalar", "tcq", "trellis"], default="tcq",
                   help="scalar: deadzone + entropy coder; tcq: entropy-coded trellis; trellis: fixed-rate bitshift "
                        "trellis (default tcq)")
    target = e.add_mutually_exclusive_group(required=True)
    target.add_argument("--rate", type=float, help="bits per parameter in (0, 32], every byte of the stream counted")
    target.add_argument("--distortion", type=float, help="target d(u, û) (mean over all parameters)")
    e.add_argument("--metric", choices=["l1", "mse"], default="l1", help="distortion measure (default l1)")
    e.add_argument("--normalize", choices=["l2", "l1", "none"], default="l2",
                   help="per-tensor normalization u = w/‖w‖ (default l2)")
    e.add_argument("--states", type=int, default=None, help="tcq: trellis states, 4..256 (default 8)")
    e.add_argument("--L", dest="trellis_l", type=int, default=None, help="trellis: state bits L, 2..16")
    e.add_argument("--no-bound", action="store_true", help="skip the model's rate-distortion bound (faster)")
    add_json_flag(e)
    e.set_defaults(func=run_encode)

    d = qsub.add_parser("decode", help="decode a quantized .rdst stream to weights")
    d.add_argument("input", metavar="IN.rdst")
    d.add_argument("-o", "--output", required=True, metavar="OUT",
                   help="decoded weights, written atomically: FILE.safetensors or FILE.npz for one file, a directory "
                        "(or a path ending in .index.json) for shards plus index")
    d.add_argument("--like", default=None, metavar="CKPT",
                   help="the encoded checkpoint (file, *.index.json or directory): write in its dtypes, key order and "
                        "shard layout (default: the dtypes recorded in the stream)")
    add_json_flag(d)
    d.set_defaults(func=run_decode)

    i = qsub.add_parser("inspect", help="describe a quantized .rdst stream from its header")
    i.add_argument("input", metavar="IN.rdst")
    add_json_flag(i)
    i.set_defaults(func=run_inspect)


def format_report(r) -> str:
    lines = [f"{r.method}: {r.n_params} parameters, {r.n_bits} bits = {r.bpp:.4f} bits/parameter, "
             f"d(u,û) = {r.distortion:.4g} ({r.metric}, normalize={r.normalize}), {r.seconds:.2f} s"]
    if r.bound_bpp is not None:
        gap = f", gap {100 * r.gap:+.1f} %" if r.gap is not None else ""
        lines.append(f"  bound (this model's R(D), certified): {r.bound_bpp:.4f} … {r.bound_bpp_upper:.4f} "
                     f"bits/parameter{gap}")
    if r.laplace_bpp is not None:
        lines.append(f"  Laplacian-fit R(D) (reference, not a bound): {r.laplace_bpp:.4f} bits/parameter")
    lines.append(f"  zeros: {r.zero_fraction:.3f} of the weights (Laplacian theory (λD)²: {r.zero_fraction_laplace:.3f})")
    for name, t in r.tensors.items():
        lines.append(f"  {name:<32} {t.bpp:8.4f} bpp  d={t.distortion:.4g}")
    return "\n".join(lines)


def run_encode(args):
    from .. import quant
    from .._validation import check_int, check_positive
    from ..io import codable_weights, open_weights

    rate = distortion = None
    if args.rate is not None:
        rate = check_positive("--rate", args.rate)
        if rate > MAX_RATE:
            raise InvalidArgumentError(
                f"`--rate` must be at most {MAX_RATE:g} bits per parameter (a float32 costs 32; the quantizers' "
                f"alphabets grow as 2^rate), got {args.rate!r}.")
    if args.distortion is not None:
        distortion = check_positive("--distortion", args.distortion)
    opts = {}
    if args.states is not None:
        if args.method != "tcq":
            raise InvalidArgumentError("`--states` belongs to `--method tcq`.")
        opts["states"] = check_int("--states", args.states, minimum=4, maximum=256)
    if args.trellis_l is not None:
        if args.method != "trellis":
            raise InvalidArgumentError("`--L` belongs to `--method trellis`.")
        opts["L"] = check_int("--L", args.trellis_l, minimum=2, maximum=16)
    with open_weights(args.input) as src:
        out = check_output(args.output, input_paths(src), suffixes=(".rdst",))
        kept, notes = codable_weights(src)  # integer buffers (num_batches_tracked...) are not quantized
        if not kept:
            raise InvalidArgumentError(f"`IN` {args.input!r} has no floating-point tensor to quantize.")
        weights = {n: src.value(n, copy=True) for n in kept}
        dtypes = stored_dtype_note(src, list(kept))
    enc = quant.encode(weights, method=args.method, rate=rate, distortion=distortion, metric=args.metric,
                       normalize=None if args.normalize == "none" else args.normalize, bound=not args.no_bound,
                       **opts)
    del weights
    write_output(out, enc.stream)
    payload = enc.report.to_dict()
    payload["output"] = str(out)
    payload["stored_dtypes"] = dtypes
    payload["notes"] = notes
    coded = ", ".join(f"{k} ({v} parameters)" for k, v in dtypes.items())
    text = "\n".join([format_report(enc.report), f"coded from {coded}", *notes,
                      f"wrote {out} ({len(enc.stream)} bytes)"])
    return payload, text


def run_decode(args):
    from .. import quant
    from .surp import decoded_output

    stream = read_input(args.input)
    decoded_output(args, None, args.input)  # refuse a bad -o/--like before decoding
    info = quant.inspect(stream)
    weights = quant.decode(stream)
    out, dtypes = decoded_output(args, weights, args.input)
    payload = {"output": str(out), "n_params": info["n_params"], "method": info["method"], "tensors": list(weights),
               "written_dtypes": dtypes}
    return payload, (f"wrote {out}: {len(weights)} tensors, {info['n_params']} parameters ({info['method']}), as "
                     + ", ".join(dtypes))


def run_inspect(args):
    from .. import quant

    info = quant.inspect(read_input(args.input))
    lines = [f"quantized model ({info['method']}, metric {info['metric']}, normalize={info['normalize']}, "
             f"coder {info['coder']}): {info['n_params']} parameters, {info['n_bits']} bits = {info['bpp']:.4f} bpp"]
    for name, t in info["tensors"].items():
        lines.append(f"  {name:<32} {str(tuple(t['shape'])):>14} {t['dtype']:>8} {t['n_bits']:>10} bits  {t['params']}")
    return info, "\n".join(lines)
