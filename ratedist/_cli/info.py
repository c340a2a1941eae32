"""``ratedist info``: versions and available backends."""

from __future__ import annotations



def add_parser(sub) -> None:
    from ._common import add_json_flag

    p = sub.add_parser("info", help="versions and available backends (numpy, numba, cuda)")
    add_json_flag(p)
    p.set_defaults(func=run)


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def run(args):
    from .._backend import available_backends, cuda_simulated, has_cuda

    backends = available_backends()
    device = None
    if has_cuda():
        try:
            from numba import cuda

            device = cuda.get_current_device().name
            device = device.decode() if isinstance(device, bytes) else str(device)
        except Exception:  # noqa: BLE001
            device = None
    versions = {d: _version(d) for d in ("ratedist", "numpy", "scipy", "numba", "constriction",
                                          "safetensors", "array-api-compat", "cupy-cuda12x", "torch")}
    import platform

    versions["python"] = platform.python_version()
    payload = {"backends": backends, "device": device, "cuda_simulator": cuda_simulated(), "versions": versions}
    lines = ["backends: " + ", ".join(f"{k}={'yes' if v else 'no'}" for k, v in backends.items()),
             f"device: {device or 'none (CPU only)'}"]
    lines += [f"{k}: {v}" for k, v in versions.items() if v]
    return payload, "\n".join(lines)
