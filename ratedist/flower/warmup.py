"""Numba warm-up, once per worker process.

ratedist's kernels are compiled by numba on their first call (and cached on disk where the
package directory is writable).  In a Flower simulation every Ray actor is a fresh process, so
without a warm-up the first round pays the compilation of every kernel in every actor and is
tens of times slower than the next ones.  :func:`warmup` runs each compressor's ``encode`` and
``decode`` (and the Beta aggregation kernel) once on a tiny vector; it remembers, per process,
what it has already warmed, so calling it on every message costs a set look-up.

:class:`ratedist.flower.CompressorMod` calls it before the first message a process handles
(``warmup=True``, the default); a ServerApp or a custom ClientApp may call it at start-up.
"""

from __future__ import annotations

import time

import numpy as np

from .._validation import check_choice

__all__ = ["warmup", "is_warm", "WARMABLE"]

#: What :func:`warmup` knows how to compile.
WARMABLE = ("qsgd", "drive", "eden", "fedmask", "fedpm", "beta")

_WARM: set[str] = set()  # per process: what this interpreter has compiled already


def is_warm(name: str) -> bool:
    """Whether :func:`warmup` has already run ``name`` in this process."""
    return name in _WARM


def warmup(names=("fedpm", "beta"), *, force: bool = False) -> dict[str, float]:
    """Compile the numba kernels behind ``names`` in this process, once.

    Parameters
    ----------
    names : iterable of {"qsgd", "drive", "eden", "fedmask", "fedpm", "beta"}
        Compressors (their encode and decode) and ``"beta"`` (the server's Beta aggregation).
    force : bool, keyword-only
        Run again even if this process has warmed ``name`` before.

    Returns
    -------
    dict of str to float
        Seconds spent per name in this call (0.0 for names already warm).

    Examples
    --------
    >>> t = warmup(["fedpm"])
    >>> is_warm("fedpm"), warmup(["fedpm"])
    (True, {'fedpm': 0.0})
    """
    from ..compressors import get_compressor

    if isinstance(names, str):
        names = (names,)
    spent = {}
    for name in names:
        check_choice("names[]", name, WARMABLE)
        if name in _WARM and not force:
            spent[name] = 0.0
            continue
        t0 = time.perf_counter()
        x = np.linspace(0.05, 0.95, 64)
        if name == "beta":
            from ..fedpm import BetaAggregator

            BetaAggregator(64).update((x[None, :] > 0.5).astype(np.uint8))
        else:
            comp = get_compressor(name)
            comp.decode(comp.encode(x, seed=0))
        _WARM.add(name)
        spent[name] = time.perf_counter() - t0
    return spent
