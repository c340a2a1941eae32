"""The package's imports point one way: no module of ratedist imports, even lazily inside a function,
a module that imports it back (directly or through others)."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "ratedist"


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PKG.rglob("*.py"):
        parts = list(path.with_suffix("").relative_to(PKG.parent).parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        mods[".".join(parts)] = path
    return mods


def _imports(name: str, path: Path, mods: dict[str, Path]) -> set[str]:
    """Every ratedist module that `name` imports anywhere in its body (module level or lazily)."""
    is_pkg = path.name == "__init__.py"
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_pkg else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            targets = [f"{mod}.{a.name}" if f"{mod}.{a.name}" in mods else mod for a in node.names]
        for t in targets:
            while t not in mods and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in mods and t != name and t.startswith("ratedist"):
                out.add(t)
    return out


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index, low, stack, on, comps, counter = {}, {}, [], set(), [], [0]
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter[0]; counter[0] += 1; stack.append(root); on.add(root)
        while work:
            v, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter[0]; counter[0] += 1; stack.append(nxt); on.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                elif nxt in on:
                    low[v] = min(low[v], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop(); on.discard(w); comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    comps.append(sorted(comp))
    return comps


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    # a package's __init__ re-exports its children; an edge child -> parent package is the usual
    # `from . import x` of a sibling and is resolved to the sibling module above, so keep all edges
    return {name: _imports(name, path, mods) for name, path in mods.items()}


def test_no_import_cycles():
    """No strongly connected component of the import graph has more than one module."""
    cycles = _cycles(_graph())
    assert not cycles, f"import cycles: {cycles}"


def test_cycle_finder_finds_a_cycle():
    """The finder is not vacuous: a forged a -> b -> c -> a graph is reported as one cycle."""
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_cli_verbs_do_not_import_the_front_end():
    """The verbs in ratedist/_cli/ share ratedist/_cli/_common.py, never ratedist/cli.py."""
    graph = _graph()
    bad = sorted(m for m in graph if m.startswith("ratedist._cli.") and "ratedist.cli" in graph[m])
    assert not bad, bad


def test_help_imports_no_numerics():
    """`ratedist --help` builds every verb's parser without importing NumPy, SciPy, numba or ml_dtypes
    (the start-up cost of the command line); the verbs import them when they run."""
    import subprocess
    import sys

    code = ("import sys; from ratedist.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('numpy', 'scipy', 'numba', 'ml_dtypes', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out


def test_cli_method_list_is_the_library_list():
    """The prune verb's spelled-out method list is the library's."""
    from ratedist._cli.prune import METHODS as CLI
    from ratedist.pruning import METHODS

    assert tuple(CLI) == tuple(METHODS)
    from ratedist._cli.frontier import METHODS as CLI_F
    from ratedist.frontier import METHODS as LIB_F

    assert tuple(CLI_F) == tuple(LIB_F)


def test_lazy_exports_are_the_objects_not_submodules():
    """After every submodule of ratedist has been imported (in any order), each name a package exports
    lazily is still the exported object: a submodule of the same name (rd.blahut_arimoto) never shadows
    its function."""
    import importlib
    import pkgutil
    import types

    import ratedist

    for info in pkgutil.walk_packages(ratedist.__path__, "ratedist."):
        if info.name.startswith(("ratedist.flower", "ratedist.distributed")):
            continue  # optional extras
        importlib.import_module(info.name)
    for pkg in ("ratedist", "ratedist.rd"):
        mod = importlib.import_module(pkg)
        for name in mod._EXPORTS:
            obj = getattr(mod, name)
            assert not isinstance(obj, types.ModuleType), f"{pkg}.{name} is a module"
    from ratedist.rd import blahut_arimoto

    assert callable(blahut_arimoto) and blahut_arimoto.__name__ == "blahut_arimoto"
