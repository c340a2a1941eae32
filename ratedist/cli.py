"""``ratedist <verb>``: the argparse front end.

Thin by design: each verb lives in ``ratedist/_cli/<verb>.py`` with
``add_parser(subparsers)`` that sets ``func(args) -> (payload: dict, text: str)``.
With ``--json`` the payload is printed as one JSON object on stdout; otherwise
the text.  A :class:`~ratedist.errors.RatedistError` becomes a one-line message
on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import math
import os
import sys

from .errors import RatedistError

__all__ = ["main", "build_parser"]

# Each name is a module in ratedist/_cli/ that adds one verb.
VERBS = ["info", "rd", "verify", "figures", "repro", "prune", "bound", "refine", "fedpm", "mean_estimate", "surp", "quant", "frontier"]


def _jsonable(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:
        return _jsonable(obj.item())
    if hasattr(obj, "tolist"):
        return _jsonable(obj.tolist())
    return obj


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ratedist",
        description="Information theory of neural-network compression: rate-distortion, SuRP, FedPM, bounds.",
    )
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        importlib.import_module(f"ratedist._cli.{verb}").add_parser(sub)
    return parser


def add_json_flag(p: argparse.ArgumentParser) -> None:
    """Every verb takes ``--json``."""
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")




def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        payload, text = args.func(args)
    except RatedistError as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        print(f"ratedist {args.verb}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("ratedist: interrupted", file=sys.stderr)
        return 130
    code = payload.pop("_exit_code", 0) if isinstance(payload, dict) else 0
    try:
        if getattr(args, "json", False):
            print(json.dumps(_jsonable(payload)))
        elif text:
            print(text)
        sys.stdout.flush()
    except BrokenPipeError:  # output piped into `head` and the like
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    return int(code)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
