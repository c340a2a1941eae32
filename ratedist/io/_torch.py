"""Torch checkpoints (``.pt``/``.pth``/``.bin``), opened with ``weights_only=True`` and memory-mapped.

Pickles are never executed: ``torch.load(weights_only=True)`` only rebuilds
tensors and plain containers.  ``mmap=True`` maps the storages instead of
reading them, so a tensor's bytes are read when it is used; files in torch's
legacy (pre-zip) format cannot be mapped and are read whole.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from ..errors import BackendUnavailableError, InvalidArgumentError
from ._dtypes import TORCH_NAMES, is_narrow_float

__all__ = ["TorchFile", "NESTED_KEYS"]

# Where training scripts put the state_dict inside a larger checkpoint, most specific first.
NESTED_KEYS = ("state_dict", "model_state_dict", "model", "module")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    line = text[0] if text else type(exc).__name__
    return line if len(line) <= 200 else line[:197] + "..."


class TorchFile:
    kind = "torch"

    def __init__(self, path: Path):
        self.path = Path(path)
        self.metadata: dict[str, str] = {}
        label = f"`path` {str(self.path)!r}"
        try:
            import torch
        except ImportError:
            raise BackendUnavailableError(
                f"reading {str(self.path)!r} needs torch: pip install 'ratedist[torch]'."
            ) from None
        import pickle

        obj = None
        for mmap in (True, False):
            try:
                obj = torch.load(str(self.path), map_location="cpu", weights_only=True, mmap=mmap)
                break
            except pickle.UnpicklingError as exc:
                if "weights only load failed" in str(exc).lower():
                    raise InvalidArgumentError(
                        f"{label} holds pickled Python objects besides tensors (e.g. a whole nn.Module), which "
                        "ratedist never unpickles; save the weights alone: torch.save(model.state_dict(), path)."
                    ) from None
                raise InvalidArgumentError(f"{label} is not a weights-only torch file: {_first_line(exc)}") from None
            except RuntimeError as exc:
                if mmap and "mmap" in str(exc):
                    continue  # legacy format (or not a zip at all): try a plain read, which names the problem
                raise InvalidArgumentError(f"{label} is not a weights-only torch file: {_first_line(exc)}") from None
            except Exception as exc:  # noqa: BLE001 - torch raises many types on bad files
                raise InvalidArgumentError(f"{label} is not a weights-only torch file: {_first_line(exc)}") from None
        self.tensors = self._state_dict(label, obj, torch)
        self.names = list(self.tensors)
        self.dtypes: dict[str, np.dtype] = {}
        for name, t in self.tensors.items():
            if t.is_quantized:
                raise InvalidArgumentError(
                    f"{label}: tensor {name!r} is quantized ({t.dtype}), which ratedist cannot code; dequantize it "
                    "(t.dequantize()) and save again."
                )
            if t.layout != torch.strided:
                raise InvalidArgumentError(
                    f"{label}: tensor {name!r} is sparse ({t.layout}); save it dense (t.to_dense()) first."
                )
            if t.device.type == "meta":
                raise InvalidArgumentError(
                    f"{label}: tensor {name!r} is a meta tensor and has no values; save the materialized model."
                )
            dtype = TORCH_NAMES.get(str(t.dtype).removeprefix("torch."))
            if dtype is None:
                raise InvalidArgumentError(
                    f"{label}: tensor {name!r} has dtype {t.dtype}, which ratedist cannot read; cast it (e.g. to "
                    "bfloat16 or float32) and save again."
                )
            self.dtypes[name] = dtype

    @staticmethod
    def _state_dict(label, obj, torch) -> dict:
        if not isinstance(obj, Mapping):
            raise InvalidArgumentError(f"{label} holds a {type(obj).__name__}, not a state_dict.")
        path = []
        for _ in range(len(NESTED_KEYS)):
            has_tensor = any(isinstance(v, torch.Tensor) for v in obj.values())
            nested = next((k for k in NESTED_KEYS if isinstance(obj.get(k), Mapping)), None)
            if nested is None or (has_tensor and nested != "state_dict"):
                break
            path.append(nested)
            obj = obj[nested]
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if not tensors:
            where = "".join(f"[{k!r}]" for k in path) or "the top level"
            keys = ", ".join(repr(k) for k in list(obj)[:10]) + (", ..." if len(obj) > 10 else "")
            raise InvalidArgumentError(
                f"{label} holds no tensors at {where} (keys found: {keys or 'none'}) and none of "
                f"{', '.join(map(repr, NESTED_KEYS))}; save the state_dict itself: torch.save(model.state_dict(), path)."
            )
        bad = next((k for k in tensors if not isinstance(k, str)), None)
        if bad is not None:
            raise InvalidArgumentError(f"{label}: tensor key {bad!r} is not a string; a state_dict has string keys.")
        return tensors

    def stored_dtype(self, name: str) -> np.dtype:
        return self.dtypes[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.tensors[name].shape)

    def raw(self, name: str) -> np.ndarray:
        """The tensor's bytes seen as a NumPy array of its stored dtype (bfloat16/float8 through ml_dtypes)."""
        import torch

        t = self.tensors[name].detach()
        dtype = self.dtypes[name]
        try:
            t = t.resolve_conj().resolve_neg()
            if is_narrow_float(dtype):
                # NumPy has no bfloat16/float8: reinterpret the same bytes as a same-width integer, then as ml_dtypes.
                same_width = torch.int16 if dtype.itemsize == 2 else torch.uint8
                arr = t.view(same_width).numpy().view(dtype)
            else:
                arr = t.numpy()
        except (RuntimeError, TypeError, ValueError, NotImplementedError) as exc:  # torch's own refusals
            raise InvalidArgumentError(
                f"`path` {str(self.path)!r}: tensor {name!r} ({t.dtype}, shape {tuple(t.shape)}) cannot be read as "
                f"an array ({_first_line(exc)}); save it as a plain dense tensor (t.contiguous().clone()) first."
            ) from None
        arr = arr.view()
        arr.flags.writeable = False
        return arr

    def close(self) -> None:
        self.tensors = {}
