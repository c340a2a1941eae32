"""Stub ``torchvision.datasets``: every name is a class that refuses to be instantiated."""

from ._unavailable import dataset_class


def __getattr__(name: str):
    if name.startswith("__"):
        raise AttributeError(name)
    cls = dataset_class(name)
    globals()[name] = cls
    return cls
