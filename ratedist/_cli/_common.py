"""Plumbing shared by the CLI verbs: common flags, JSON payloads, input and output path checks, safe output.

Every check raises :class:`~ratedist.errors.InvalidArgumentError` with one line
that names the argument (``-o``, ``IN``, ``--out``...) and the path, and says
what to do; :func:`ratedist.cli.main` prints it and exits with code 2.  The
output checks run before any work, so a refused command writes nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import stat
import sys
from pathlib import Path

from ..errors import InvalidArgumentError

__all__ = [
    "add_json_flag",
    "add_weights_input",
    "jsonable",
    "check_input_file",
    "read_input",
    "input_paths",
    "check_output",
    "check_output_dir",
    "write_output",
    "save_weights_output",
    "write_stdout",
    "SEED_MAX",
    "check_seed",
    "stored_dtype_note",
]

SEED_MAX = 2**63 - 1  # the widest seed every generator and stream header of the package accepts

# atomic_write's temporary file is ".<name>.<8 random chars>.tmp" beside the target.
_TMP_OVERHEAD = 14

WEIGHTS_HELP = ("weights: a file (.safetensors, .npz, .pt/.pth/.bin), a sharded checkpoint's *.safetensors.index.json, "
                "or a checkpoint directory")


def add_json_flag(p: argparse.ArgumentParser) -> None:
    """Every verb takes ``--json`` (and ``--debug``, also accepted before the verb)."""
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    # SUPPRESS: an absent sub-verb flag must not reset a `ratedist --debug VERB` given before the verb.
    p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                   help="show the traceback of an unexpected error")


def add_weights_input(p: argparse.ArgumentParser, dest: str = "input", metavar: str = "IN", help: str | None = None):
    """A positional argument that reads weights: a file, an ``*.index.json`` or a directory."""
    p.add_argument(dest, metavar=metavar, help=help or WEIGHTS_HELP)


def jsonable(obj):
    """``obj`` with NumPy scalars/arrays as Python values and non-finite floats as strings (strict JSON).

    >>> import numpy as np
    >>> jsonable({"rate": float("inf"), "n": np.int64(3), "w": np.array([0.5, 1.0])})
    {'rate': 'inf', 'n': 3, 'w': [0.5, 1.0]}
    """
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and hasattr(obj, "dtype") and getattr(obj, "ndim", 1) == 0:
        return jsonable(obj.item())
    if hasattr(obj, "tolist"):
        return jsonable(obj.tolist())
    return obj


def check_seed(name: str, value) -> int:
    """A seed in [0, 2^63 − 1], the range every generator of the package takes.

    >>> check_seed("--seed", 7)
    7
    """
    from .._validation import check_int

    return check_int(name, value, minimum=0, maximum=SEED_MAX)


# --------------------------------------------------------------------------- inputs


def check_input_file(path: str, arg: str = "IN") -> Path:
    """An existing, readable regular file (not a directory, FIFO or device: reading those could block or lie)."""
    if not str(path):
        raise InvalidArgumentError(f"`{arg}` is empty; give the path of the file to read.")
    p = Path(path)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InvalidArgumentError(f"`{arg}` {str(path)!r} does not exist; check the path.") from None
    except OSError as exc:
        raise InvalidArgumentError(f"`{arg}` {str(path)!r} cannot be opened: {exc.strerror or exc}.") from None
    if not stat.S_ISREG(st.st_mode):
        raise InvalidArgumentError(f"`{arg}` {str(path)!r} is not a regular file; give the path of a file.")
    if not os.access(p, os.R_OK):
        raise InvalidArgumentError(f"`{arg}` {str(path)!r} is not readable (permission denied); fix its permissions.")
    return p


def read_input(path: str, arg: str = "IN") -> bytes:
    """The bytes of an input file, with every failure one line naming ``arg`` and the path."""
    p = check_input_file(path, arg)
    try:
        return p.read_bytes()
    except OSError as exc:
        raise InvalidArgumentError(f"`{arg}` {str(path)!r} cannot be read: {exc.strerror or exc}.") from None


def input_paths(source) -> list[Path]:
    """Every file an opened checkpoint reads (its shards, its index), for the output-equals-input check."""
    paths = [Path(f.path) for f in getattr(source, "files", ())]
    root = getattr(source, "path", None)
    if root is not None:
        paths.append(Path(root))
    return paths


# --------------------------------------------------------------------------- outputs


def _same(a: Path, b: Path) -> bool:
    try:
        if a.exists() and b.exists() and os.path.samefile(a, b):
            return True
    except OSError:
        pass
    try:
        return a.resolve() == b.resolve()
    except (OSError, RuntimeError):
        return os.path.abspath(a) == os.path.abspath(b)


def _check_parent(out: Path, arg: str, shown: str) -> None:
    """The nearest existing ancestor of ``out`` is a writable directory (the atomic writer makes the rest)."""
    anc = out.parent if str(out.parent) else Path(".")
    while True:
        try:
            st = os.stat(anc)
        except FileNotFoundError:
            if anc == anc.parent:
                break
            anc = anc.parent
            continue
        except NotADirectoryError:
            st = None
        except OSError as exc:
            raise InvalidArgumentError(f"`{arg}` {shown}: {str(anc)!r} cannot be reached: {exc.strerror or exc}.") \
                from None
        if st is None or not stat.S_ISDIR(st.st_mode):
            raise InvalidArgumentError(
                f"`{arg}` {shown} lies under {str(anc)!r}, which is not a directory; choose a path in a folder."
            )
        if not os.access(anc, os.W_OK | os.X_OK):
            raise InvalidArgumentError(
                f"`{arg}` {shown}: the folder {str(anc)!r} is not writable; choose another output folder."
            )
        break
    try:
        name_max = os.pathconf(anc, "PC_NAME_MAX")
    except (OSError, ValueError):
        name_max = 255
    # The last name also carries the atomic writer's temporary-file decoration; folders made on the way do not.
    for k, part in enumerate(out.parts):
        limit = name_max - (_TMP_OVERHEAD if k == len(out.parts) - 1 else 0)
        if len(os.fsencode(part)) > limit:
            raise InvalidArgumentError(
                f"`{arg}` {shown[:60]}...: the name {part[:40]!r}... is too long for the file system (at most "
                f"{limit} bytes here); choose a shorter name."
            )


def check_output(output: str, inputs=(), *, arg: str = "-o", suffixes: tuple[str, ...] = (),
                 shards: bool = False) -> Path:
    """Refuse an output path that would destroy data or cannot be written; return it as a Path.

    Refused: an empty path; a path equal to (or the same file as) any of
    ``inputs``; an existing path that is not a regular file (a FIFO, a device
    node, a directory, except a directory when ``shards`` allows shard output);
    a path under a file; a folder that is not writable; a name the file system
    cannot hold; a suffix not in ``suffixes``.  With ``shards=True`` a directory,
    a path without a suffix or a path ending in ``.index.json`` means a shard set
    plus its index (see :func:`ratedist.io.save_weights`).
    """
    from ..io import INDEX_SUFFIX

    if output is None or not str(output):
        raise InvalidArgumentError(f"`{arg}` is empty; give the path to write.")
    out = Path(output)
    shown = repr(str(output))
    suffix = out.suffix.lower()
    try:
        st = os.stat(out)
    except FileNotFoundError:
        st = None
    except NotADirectoryError:
        st = None  # reported by the parent check below
    except OSError as exc:
        raise InvalidArgumentError(f"`{arg}` {shown} cannot be checked: {exc.strerror or exc}.") from None
    is_dir = st is not None and stat.S_ISDIR(st.st_mode)
    shard_out = shards and (out.name.endswith(INDEX_SUFFIX) or is_dir or (suffix == "" and st is None))
    if not shard_out:
        if suffixes and suffix not in suffixes:
            more = ", a directory or a path ending in .index.json" if shards else ""
            raise InvalidArgumentError(f"`{arg}` {shown} must end in {' or '.join(suffixes)}{more}.")
        if st is not None and not stat.S_ISREG(st.st_mode):
            kind = "a directory" if is_dir else "not a regular file (a FIFO, socket or device)"
            raise InvalidArgumentError(f"`{arg}` {shown} exists and is {kind}; give the path of a new or regular file.")
    elif st is not None and not is_dir and not stat.S_ISREG(st.st_mode):
        raise InvalidArgumentError(f"`{arg}` {shown} exists and is not a regular file or a directory; give a new path.")
    targets = [out]
    if shard_out:
        folder = out.parent if out.name.endswith(INDEX_SUFFIX) else out
        targets.append(folder)
    for src in inputs:
        src = Path(src)
        for t in targets:
            if _same(src, t):
                raise InvalidArgumentError(
                    f"`{arg}` {shown} is the input {str(src)!r}; writing there would destroy it: choose another path."
                )
        if shard_out and src.parent.exists() and _same(src.parent, targets[-1]):
            raise InvalidArgumentError(
                f"`{arg}` {shown} is the folder of the input {str(src)!r}; shards written there could replace it: "
                "choose another folder."
            )
    _check_parent(out if not (shard_out and is_dir) else out / "x", arg, shown)
    return out


def check_output_dir(output: str, inputs=(), *, arg: str = "--out") -> Path:
    """An output folder: an existing writable directory or a new path whose nearest existing parent is writable."""
    if output is None or not str(output):
        raise InvalidArgumentError(f"`{arg}` is empty; give the folder to write into.")
    out = Path(output)
    shown = repr(str(output))
    if out.exists() and not out.is_dir():
        raise InvalidArgumentError(f"`{arg}` {shown} exists and is not a directory; give a folder path.")
    for src in inputs:
        if _same(Path(src), out):
            raise InvalidArgumentError(f"`{arg}` {shown} is the input {str(src)!r}; choose another folder.")
    _check_parent(out / "x", arg, shown)
    return out


def write_output(path: Path, data: bytes, arg: str = "-o") -> Path:
    """Write ``data`` atomically (temporary file, fsync, rename): the target is whole or untouched."""
    from ..coding.container import atomic_write

    try:
        return atomic_write(path, data)
    except OSError as exc:
        raise InvalidArgumentError(f"`{arg}` {str(path)!r} cannot be written: {exc.strerror or exc}.") from None


def save_weights_output(path: Path, weights, *, like=None, arg: str = "-o") -> Path:
    """:func:`ratedist.io.save_weights` (atomic: one file, or a shard set that appears whole) naming ``arg`` on failure."""
    from ..io import save_weights

    try:
        return save_weights(path, weights, like=like)
    except OSError as exc:
        raise InvalidArgumentError(f"`{arg}` {str(path)!r} cannot be written: {exc.strerror or exc}.") from None


def stored_dtype_note(source, names) -> dict[str, int]:
    """``{stored dtype name: parameter count}`` of the tensors ``names`` of an opened checkpoint, for reports."""
    counts: dict[str, int] = {}
    for n in names:
        dt = source.stored_dtype(n).name
        counts[dt] = counts.get(dt, 0) + int(math.prod(source.shape(n)))
    return counts


# --------------------------------------------------------------------------- stdout / stderr


class _BestEffort:
    """A text stream that drops what it cannot write (closed or broken pipe) instead of raising.

    Progress bars and reports write to the terminal; a closed terminal must not
    abort the work (the stream is written whatever happens to stderr).
    """

    def __init__(self, stream):
        self._stream = stream
        self.broken = stream is None

    def write(self, s):
        if not self.broken:
            try:
                return self._stream.write(s)
            except (OSError, ValueError, AttributeError):
                self.broken = True
        return len(s)

    def flush(self):
        if not self.broken:
            try:
                self._stream.flush()
            except (OSError, ValueError, AttributeError):
                self.broken = True

    def isatty(self):
        try:
            return not self.broken and self._stream.isatty()
        except (OSError, ValueError, AttributeError):
            return False

    def fileno(self):
        if self._stream is None:
            raise OSError("stream is closed")
        return self._stream.fileno()

    def __getattr__(self, name):
        return getattr(self._stream, name)


def best_effort(stream):
    return stream if isinstance(stream, _BestEffort) else _BestEffort(stream)


def write_stdout(text: str) -> bool:
    """Print ``text`` and a newline on stdout; False (and nothing raised) when stdout is closed or broken."""
    out = sys.stdout
    if out is None:
        return False
    try:
        out.write(text + "\n")
        out.flush()
        return True
    except (BrokenPipeError, ValueError):
        pass
    except OSError:
        pass
    # Keep the interpreter's final flush from failing again on the broken pipe.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, out.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
    return False
