"""``ratedist frontier IN --out DIR``: the model's bound and every coder's measured points, as JSON and a figure."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ..errors import InvalidArgumentError

__all__ = ["add_parser"]


def add_parser(sub) -> None:
    from ..cli import add_json_flag
    from ..frontier import METHODS

    p = sub.add_parser("frontier", help="the model's rate-distortion bound beside every coder, from decoded bytes")
    p.add_argument("input", metavar="IN", help="weights file (.safetensors, .npz, .pt/.pth/.bin)")
    p.add_argument("--out", required=True, metavar="DIR", help="folder for frontier.json, frontier.png/.pdf")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    p.add_argument("--rates", default=None, help="comma-separated bits per parameter for the quantizers")
    p.add_argument("--metric", choices=["l1", "mse"], default="l1")
    p.add_argument("--normalize", choices=["l2", "l1", "none"], default="l2")
    p.add_argument("--evaluate", default=None, metavar="MODULE:FUNCTION",
                   help="a function evaluate(weights) -> float (e.g. test accuracy) called on every decoded model")
    p.add_argument("--quiet", action="store_true", help="no progress messages")
    add_json_flag(p)
    p.set_defaults(func=run)


def _hook(spec: str):
    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise InvalidArgumentError(f"`--evaluate` {spec!r} must look like MODULE:FUNCTION.")
    try:
        f = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as exc:
        raise InvalidArgumentError(f"`--evaluate` {spec!r} cannot be imported: {exc}.") from None
    if not callable(f):
        raise InvalidArgumentError(f"`--evaluate` {spec!r} is not callable.")
    return f


def write_frontier(result, out: Path) -> list[str]:
    """frontier.json, frontier.png and frontier.pdf in ``out`` (atomically each); returns the paths."""
    import io

    from ..coding.container import atomic_write
    from ..frontier import plot_frontier

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InvalidArgumentError(f"`--out` {str(out)!r} cannot be created: {exc.strerror or exc}.") from None
    if not out.is_dir():
        raise InvalidArgumentError(f"`--out` {str(out)!r} is not a folder.")
    from ..cli import _jsonable

    paths = [out / "frontier.json", out / "frontier.png", out / "frontier.pdf"]
    fig = plot_frontier(result)
    blobs = [json.dumps(_jsonable(result.to_dict()), indent=1).encode()]
    for fmt in ("png", "pdf"):
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, dpi=130)
        blobs.append(buf.getvalue())
    import matplotlib.pyplot as plt

    plt.close(fig)
    try:
        for path, blob in zip(paths, blobs):
            atomic_write(path, blob)
    except OSError as exc:
        raise InvalidArgumentError(f"`--out` {str(out)!r} cannot be written: {exc.strerror or exc}.") from None
    return [str(p) for p in paths]


def run(args):
    from ..frontier import frontier
    from ..io import load_weights

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    rates = {}
    if args.rates:
        try:
            rates["rates"] = [float(r) for r in args.rates.split(",")]
        except ValueError:
            raise InvalidArgumentError(f"`--rates` {args.rates!r} must be comma-separated numbers.") from None
    evaluate = _hook(args.evaluate) if args.evaluate else None
    weights = load_weights(args.input)
    res = frontier(weights, metric=args.metric, normalize=None if args.normalize == "none" else args.normalize,
                   methods=methods, evaluate=evaluate, progress=not (args.quiet or args.json), **rates)
    paths = write_frontier(res, Path(args.out))
    payload = res.to_dict()
    payload["files"] = paths
    lines = [f"frontier of {args.input}: {res.n_params} parameters, metric {res.metric}"]
    for p in sorted(res.points, key=lambda p: (p.method, p.bpp)):
        acc = f"  acc {p.accuracy:.4f}" if p.accuracy is not None else ""
        lines.append(f"  {p.method:<14} {p.bpp:7.3f} bpp  d={p.distortion:.4g}{acc}")
    for m, e in res.errors.items():
        lines.append(f"  {m:<14} skipped: {e}")
    lines.append("wrote " + ", ".join(paths))
    return payload, "\n".join(lines)
