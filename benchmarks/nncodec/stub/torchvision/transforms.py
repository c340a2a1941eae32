"""Stub ``torchvision.transforms``: every name is a transform that can be built but not applied."""

from ._unavailable import transform_class


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    cls = transform_class(name)
    globals()[name] = cls
    return cls
