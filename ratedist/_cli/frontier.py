"""``ratedist frontier IN --out DIR``: the model's bound and every coder's measured points, as JSON and a figure."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

from ..errors import InvalidArgumentError
from ._common import WEIGHTS_HELP, check_output_dir, input_paths, jsonable, stored_dtype_note

__all__ = ["add_parser"]


#: ``ratedist.frontier.METHODS``, spelled out so that ``ratedist --help`` does not import NumPy
#: (tests/test_imports.py checks that the two agree).
METHODS = ("surp", "surp_parallel", "magnitude", "lamp", "scalar", "tcq", "trellis")


def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("frontier", help="the model's rate-distortion bound beside every coder, from decoded bytes")
    p.add_argument("input", metavar="IN", help=WEIGHTS_HELP)
    p.add_argument("--out", required=True, metavar="DIR", help="folder for frontier.json, frontier.png/.pdf")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (default: all)")
    p.add_argument("--rates", default=None,
                   help="comma-separated bits per parameter for the quantizers, each in (0, 32], at most 64 of them")
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
    paths = [out / "frontier.json", out / "frontier.png", out / "frontier.pdf"]
    fig = plot_frontier(result)
    blobs = [json.dumps(jsonable(result.to_dict()), indent=1).encode()]
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

    from ..frontier import METHODS
    from ..io import open_weights

    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if not methods or unknown:
        raise InvalidArgumentError(f"`--methods` {args.methods!r} must be a comma-separated subset of "
                                   f"{','.join(METHODS)}.")
    rates = {}
    if args.rates is not None:
        try:
            values = [float(r) for r in args.rates.split(",")]
        except ValueError:
            raise InvalidArgumentError(f"`--rates` {args.rates!r} must be comma-separated numbers.") from None
        if not values or len(values) > 64:
            raise InvalidArgumentError(f"`--rates` must list 1 to 64 rates, got {len(values)}.")
        bad = [v for v in values if not (0.0 < v <= 32.0)]
        if bad:
            raise InvalidArgumentError(f"`--rates` entries must lie in (0, 32] bits per parameter; {bad[0]!r} does "
                                       "not.")
        rates["rates"] = values
    evaluate = _hook(args.evaluate) if args.evaluate else None
    with open_weights(args.input) as src:
        out = check_output_dir(args.out, input_paths(src))
        weights = {n: src.value(n, copy=True) for n in src}
        dtypes = stored_dtype_note(src, list(src))
    res = frontier(weights, metric=args.metric, normalize=None if args.normalize == "none" else args.normalize,
                   methods=methods, evaluate=evaluate, progress=not (args.quiet or args.json), **rates)
    paths = write_frontier(res, out)
    payload = res.to_dict()
    payload["files"] = paths
    payload["stored_dtypes"] = dtypes
    lines = [f"frontier of {args.input}: {res.n_params} parameters ("
             + ", ".join(f"{k}: {v}" for k, v in dtypes.items()) + f"), metric {res.metric}"]
    for p in sorted(res.points, key=lambda p: (p.method, p.bpp)):
        acc = f"  acc {p.accuracy:.4f}" if p.accuracy is not None else ""
        lines.append(f"  {p.method:<14} {p.bpp:7.3f} bpp  d={p.distortion:.4g}{acc}")
    for m, e in res.errors.items():
        lines.append(f"  {m:<14} skipped: {e}")
    lines.append("wrote " + ", ".join(paths))
    return payload, "\n".join(lines)
