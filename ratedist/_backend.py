"""Array namespaces and backends.

``backend="auto" | "numpy" | "numba" | "cuda"``.  ``namespace(x)`` returns the
array-API namespace of ``x`` (NumPy or CuPy) so public functions run one code
path on the caller's device.
"""

from __future__ import annotations

import functools
import importlib.util
import os

import numpy as np

from ._validation import check_choice
from .errors import BackendUnavailableError

__all__ = [
    "BACKENDS",
    "namespace",
    "is_cupy",
    "has_numba",
    "has_cupy",
    "has_cuda",
    "cuda_simulated",
    "resolve_backend",
    "available_backends",
    "to_host",
]

BACKENDS = ("auto", "numpy", "numba", "cuda")


def namespace(*arrays):
    """Array namespace of the arguments (NumPy for scalars and lists)."""
    arrays = [a for a in arrays if hasattr(a, "shape")]
    if not arrays:
        return np
    import array_api_compat

    try:
        xp = array_api_compat.array_namespace(*arrays)
    except TypeError:
        return np
    name = getattr(xp, "__name__", "")
    if "cupy" in name:
        import cupy

        return cupy
    return np


def is_cupy(x) -> bool:
    return type(x).__module__.startswith("cupy")


def to_host(x):
    """NumPy copy of a CuPy array; NumPy arrays pass through."""
    return x.get() if is_cupy(x) else np.asarray(x)


@functools.lru_cache(maxsize=None)
def has_numba() -> bool:
    return importlib.util.find_spec("numba") is not None


@functools.lru_cache(maxsize=None)
def has_cupy() -> bool:
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any driver failure means "no cupy device"
        return False


def cuda_simulated() -> bool:
    """True when numba.cuda runs in the simulator (``NUMBA_ENABLE_CUDASIM=1``)."""
    return os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1"


@functools.lru_cache(maxsize=None)
def has_cuda() -> bool:
    """A real CUDA device usable by numba.cuda (the simulator does not count)."""
    if not has_numba() or cuda_simulated():
        return False
    try:
        from numba import cuda

        return bool(cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def available_backends() -> dict[str, bool]:
    return {"numpy": True, "numba": has_numba(), "cuda": has_cuda() and has_cupy()}


def resolve_backend(backend: str, *, allow_cuda: bool = True, simulator_ok: bool = False) -> str:
    """Turn ``backend`` into a concrete one, or raise :class:`BackendUnavailableError`.

    ``simulator_ok`` lets ``"cuda"`` resolve under ``NUMBA_ENABLE_CUDASIM=1``
    (tests of CUDA kernels without a GPU).
    """
    check_choice("backend", backend, BACKENDS)
    if backend == "auto":
        return "numba" if has_numba() else "numpy"
    if backend == "numba" and not has_numba():
        raise BackendUnavailableError("`backend='numba'` needs numba: pip install numba.")
    if backend == "cuda":
        if not allow_cuda:
            raise BackendUnavailableError("`backend='cuda'` is not supported by this function; use 'numba' or 'numpy'.")
        if simulator_ok and cuda_simulated() and has_numba():
            return "cuda"
        if not (has_cuda() and has_cupy()):
            raise BackendUnavailableError(
                "`backend='cuda'` needs a CUDA device with CuPy and numba.cuda: "
                "pip install 'ratedist[gpu]' on a machine with an NVIDIA GPU."
            )
    return backend
