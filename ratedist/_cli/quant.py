"""``ratedist quant encode|decode|inspect``: the quantizers of :mod:`ratedist.quant` from the command line."""

from __future__ import annotations

import os
from pathlib import Path

from ..errors import InvalidArgumentError

__all__ = ["add_parser", "check_output"]


def check_output(output: str, *inputs: str, suffixes: tuple[str, ...]) -> Path:
    """Refuse an output path that is an input, is not a regular file or new path, or has the wrong suffix."""
    out = Path(output)
    if not str(output):
        raise InvalidArgumentError("`-o` is empty; give the path of the file to write.")
    if out.suffix.lower() not in suffixes:
        raise InvalidArgumentError(f"`-o` {output!r} must end in {' or '.join(suffixes)}.")
    if out.exists() and not out.is_file():
        raise InvalidArgumentError(f"`-o` {output!r} exists and is not a regular file; give a new path.")
    for src in inputs:
        if os.path.exists(src) and out.exists() and os.path.samefile(src, out):
            raise InvalidArgumentError(f"`-o` {output!r} is the input file; write to another path.")
    return out


def add_parser(sub) -> None:
    from ..cli import add_json_flag

    p = sub.add_parser("quant", help="quantize a model near its rate-distortion bound (scalar, tcq, trellis)")
    qsub = p.add_subparsers(dest="quant_verb", metavar="{encode,decode,inspect}")
    qsub.required = True

    e = qsub.add_parser("encode", help="quantize and entropy-code weights into a .rdst stream")
    e.add_argument("input", metavar="IN", help="weights file (.safetensors, .npz, .pt/.pth/.bin)")
    e.add_argument("-o", "--output", required=True, metavar="OUT.rdst", help="stream file to write")
    e.add_argument("--method", choices=["scalar", "tcq", "trellis"], default="tcq",
                   help="scalar: deadzone + entropy coder; tcq: entropy-coded trellis; trellis: fixed-rate bitshift "
                        "trellis (default tcq)")
    target = e.add_mutually_exclusive_group(required=True)
    target.add_argument("--rate", type=float, help="bits per parameter, every byte of the stream counted")
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
    d.add_argument("-o", "--output", required=True, metavar="OUT", help=".safetensors or .npz")
    add_json_flag(d)
    d.set_defaults(func=run_decode)

    i = qsub.add_parser("inspect", help="describe a quantized .rdst stream from its header")
    i.add_argument("input", metavar="IN.rdst")
    add_json_flag(i)
    i.set_defaults(func=run_inspect)


def _read(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise InvalidArgumentError(f"`IN` {path!r} does not exist or is not a file.")
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(f"`IN` {path!r} cannot be read: {exc.strerror}.") from None


def _write(path: Path, data: bytes) -> None:
    from ..coding.container import atomic_write

    try:
        atomic_write(path, data)
    except OSError as exc:
        raise InvalidArgumentError(f"`-o` {str(path)!r} cannot be written: {exc.strerror or exc}.") from None


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
    from ..io import load_weights

    out = check_output(args.output, args.input, suffixes=(".rdst",))
    weights = load_weights(args.input)
    opts = {}
    if args.states is not None:
        if args.method != "tcq":
            raise InvalidArgumentError("`--states` belongs to `--method tcq`.")
        opts["states"] = args.states
    if args.trellis_l is not None:
        if args.method != "trellis":
            raise InvalidArgumentError("`--L` belongs to `--method trellis`.")
        opts["L"] = args.trellis_l
    enc = quant.encode(weights, method=args.method, rate=args.rate, distortion=args.distortion, metric=args.metric,
                       normalize=None if args.normalize == "none" else args.normalize, bound=not args.no_bound,
                       **opts)
    _write(out, enc.stream)
    payload = enc.report.to_dict()
    payload["output"] = str(out)
    return payload, format_report(enc.report) + f"\nwrote {out} ({len(enc.stream)} bytes)"


def run_decode(args):
    from .. import quant
    from ..io import save_weights

    out = check_output(args.output, args.input, suffixes=(".safetensors", ".npz"))
    stream = _read(args.input)
    info = quant.inspect(stream)
    weights = quant.decode(stream)
    try:
        save_weights(out, weights)
    except OSError as exc:
        raise InvalidArgumentError(f"`-o` {str(out)!r} cannot be written: {exc.strerror or exc}.") from None
    payload = {"output": str(out), "n_params": info["n_params"], "method": info["method"], "tensors": list(weights)}
    return payload, f"wrote {out}: {len(weights)} tensors, {info['n_params']} parameters ({info['method']})"


def run_inspect(args):
    from .. import quant

    info = quant.inspect(_read(args.input))
    lines = [f"quantized model ({info['method']}, metric {info['metric']}, normalize={info['normalize']}, "
             f"coder {info['coder']}): {info['n_params']} parameters, {info['n_bits']} bits = {info['bpp']:.4f} bpp"]
    for name, t in info["tensors"].items():
        lines.append(f"  {name:<32} {str(tuple(t['shape'])):>14} {t['dtype']:>8} {t['n_bits']:>10} bits  {t['params']}")
    return info, "\n".join(lines)
