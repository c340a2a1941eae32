"""Test configuration: CUDA kernels run in numba's simulator when no GPU is present.

``NUMBA_ENABLE_CUDASIM`` must be set before numba is imported, so it is set here,
at collection time, unless the caller chose explicitly or a GPU is present.
"""

import os
import shutil

if "NUMBA_ENABLE_CUDASIM" not in os.environ and shutil.which("nvidia-smi") is None:
    os.environ["NUMBA_ENABLE_CUDASIM"] = "1"

import pytest  # noqa: E402

from ratedist._backend import has_cuda  # noqa: E402


def pytest_collection_modifyitems(config, items):
    if has_cuda():
        return
    skip = pytest.mark.skip(reason="needs a real CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
