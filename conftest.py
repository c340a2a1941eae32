"""Root conftest: set the CUDA simulator before any doctest imports numba (see tests/conftest.py)."""

import os
import shutil

if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"
os.environ.setdefault("MPLBACKEND", "Agg")

import importlib.util  # noqa: E402

if importlib.util.find_spec("flwr") is None:  # ratedist.flower needs the `flower` extra
    collect_ignore_glob = ["ratedist/flower/*"]
