"""``ratedist <verb>``: the argparse front end.

Thin by design: each verb lives in ``ratedist/_cli/<verb>.py`` with
``add_parser(subparsers)`` that sets ``func(args) -> (payload: dict, text: str)``;
the helpers they share are in ``ratedist/_cli/_common.py``.  With ``--json`` the
payload is printed as one JSON object on stdout; otherwise the text.

Every failure is one line on stderr, never a traceback: a
:class:`~ratedist.errors.RatedistError`, an ``OSError`` (naming the path) or a
``MemoryError`` exits with code 2; any other exception is reported as an
internal error with exit code 1 (``--debug`` shows its traceback); an interrupt
exits with 130.  A closed or broken stdout/stderr never aborts the work.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from ._cli._common import best_effort, jsonable, write_stdout
from .errors import RatedistError

__all__ = ["main", "build_parser"]

# Each name is a module in ratedist/_cli/ that adds one verb.
VERBS = ["info", "rd", "verify", "figures", "repro", "prune", "decode", "bound", "refine", "fedpm", "mean_estimate", "surp", "quant", "frontier"]


class _Parser(argparse.ArgumentParser):
    """argparse with one-line usage errors (exit 2), like every other failure of the CLI."""

    def error(self, message):
        _say(f"{self.prog}: error: {_one_line(message)} (see `{self.prog} --help`)")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="ratedist",
        description="Information theory of neural-network compression: rate-distortion, SuRP, FedPM, bounds.",
    )
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        importlib.import_module(f"ratedist._cli.{verb}").add_parser(sub)
    return parser


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _os_message(exc: OSError) -> str:
    what = exc.strerror or _one_line(str(exc)) or type(exc).__name__
    paths = [p for p in (exc.filename, getattr(exc, "filename2", None)) if p]
    if paths:
        return f"{' -> '.join(repr(str(p)) for p in paths)}: {what}; check the path, its permissions and the free space."
    return f"{what} (an input or output could not be read or written); check the paths and the free space."


def _say(line: str) -> None:
    try:
        print(line, file=sys.stderr, flush=True)
    except (OSError, ValueError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help (0) or a usage error, already printed on one line (2)
        return exc.code if isinstance(exc.code, int) else 2
    debug = bool(getattr(args, "debug", False))
    name = " ".join(v for v in (args.verb, *(getattr(args, k, None) for k in
                                               ("rd_verb", "surp_verb", "quant_verb", "fedpm_verb"))) if v)
    saved_stderr = sys.stderr
    sys.stderr = best_effort(sys.stderr)  # progress bars into a closed pipe must not abort the work
    try:
        try:
            payload, text = args.func(args)
        except RatedistError as exc:
            if debug:
                raise
            msg = _one_line(exc) if str(exc) else type(exc).__name__
            _say(f"ratedist {name}: error: {msg}")
            return 2
        except KeyboardInterrupt:
            _say("ratedist: interrupted")
            return 130
        except OSError as exc:
            if debug:
                raise
            _say(f"ratedist {name}: error: {_os_message(exc)}")
            return 2
        except MemoryError:
            if debug:
                raise
            _say(f"ratedist {name}: error: out of memory; use a smaller input or smaller options, or a machine "
                 "with more memory.")
            return 2
        except Exception as exc:  # noqa: BLE001 - the boundary: nothing else may escape as a traceback
            if debug:
                raise
            _say(f"ratedist {name}: internal error ({type(exc).__name__}: {_one_line(exc, 200)}); rerun with "
                 "--debug for the traceback and please report it.")
            return 1
        code = payload.pop("_exit_code", 0) if isinstance(payload, dict) else 0
        if getattr(args, "json", False):
            write_stdout(json.dumps(jsonable(payload)))
        elif text:
            write_stdout(text)
        return int(code)
    finally:
        sys.stderr = saved_stderr


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
