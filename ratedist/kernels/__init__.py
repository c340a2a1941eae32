"""Private numba (CPU) and numba.cuda kernels; the only place that imports numba or cupy.

Each area has its own pair of modules, ``_<area>_cpu.py`` (``@njit``) and
``_<area>_cuda.py`` (numba.cuda twins), tested against slow NumPy references.
"""
