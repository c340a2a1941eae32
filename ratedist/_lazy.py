"""Lazy re-exports for package ``__init__`` files (PEP 562).

``ratedist --help`` and ``ratedist rd closed`` should not pay for importing SciPy, numba and
ml_dtypes, so the packages name what they export and import it on first use.
"""

from __future__ import annotations

import importlib


def lazy_exports(package: str, names: dict[str, str], submodules: tuple[str, ...] = ()):
    """``(__getattr__, __dir__)`` for ``package``: ``names`` maps an exported name to the module
    (relative to ``package``, e.g. ``".closed"``) that defines it; ``submodules`` are imported on access."""

    def __getattr__(attr: str):
        if attr in names:
            value = getattr(importlib.import_module(names[attr], package), attr)
        elif attr in submodules:
            value = importlib.import_module(f".{attr}", package)
        else:
            raise AttributeError(f"module {package!r} has no attribute {attr!r}")
        import sys

        setattr(sys.modules[package], attr, value)  # the next access is a plain attribute
        return value

    def __dir__():
        import sys

        return sorted(set(vars(sys.modules[package])) | set(names) | set(submodules))

    return __getattr__, __dir__
