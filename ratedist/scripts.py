"""Shared plumbing of the figure and reproduction scripts.

A figure script defines ``compute(cfg) -> data`` (plain data, no matplotlib),
``plot(data) -> Figure`` and ``main(argv)``; :func:`figure_main` turns the first
two into the third: it parses ``--quick`` and ``--out``, writes
``<name>.json`` (name, description, units, results), ``<name>.png`` and ``<name>.pdf``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

from .coding.container import atomic_write

__all__ = ["figure_main", "repo_root", "figure_scripts", "load_script", "write_json"]


def repo_root() -> Path:
    """The folder that holds ``figures/`` and ``paper_repro/``.

    In a source checkout that is the checkout itself; an installed wheel carries both folders
    inside the package, as ``ratedist/_scripts/`` (see ``pyproject.toml``).
    """
    here = Path(__file__).resolve().parent
    bundled = here / "_scripts"
    if bundled.is_dir() and not (here.parent / "paper_repro").is_dir():
        return bundled
    return here.parent


def figure_scripts() -> list[Path]:
    folder = repo_root() / "figures"
    return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))


def load_script(path: Path):
    name = f"_ratedist_script_{path.parent.name}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod  # dataclasses with postponed annotations look their module up here
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return mod


def _jsonable(obj):
    from ._cli._common import jsonable

    return jsonable(obj)


def write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write(path, (json.dumps(_jsonable(obj), indent=1, sort_keys=False) + "\n").encode())


def figure_main(name: str, description: str, units: dict, compute: Callable, plot: Callable,
                argv: list[str] | None = None) -> dict:
    """Run a figure script: compute, write ``<name>.json``, plot, write ``.png`` and ``.pdf``."""
    parser = argparse.ArgumentParser(prog=name, description=description)
    parser.add_argument("--quick", action="store_true", help="small, fast configuration")
    parser.add_argument("--out", default="figures/out", help="output folder")
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    data = compute({"quick": args.quick})
    seconds = time.perf_counter() - t0
    write_json(out / f"{name}.json", {"name": name, "description": description, "units": units,
                                      "quick": args.quick, "seconds": seconds, "results": data})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot(data)
    for ext in ("png", "pdf"):
        tmp = out / f".{name}.tmp.{ext}"
        fig.savefig(tmp, dpi=130, bbox_inches="tight")
        os.replace(tmp, out / f"{name}.{ext}")
    plt.close(fig)
    return {"name": name, "seconds": seconds, "files": [str(out / f"{name}.{e}") for e in ("json", "png", "pdf")]}
