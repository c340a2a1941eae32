"""Placeholder classes standing in for torchvision objects that NNCodec's codec never uses."""


def _refuse(name: str):
    raise RuntimeError(
        f"torchvision.{name} is a stub in ratedist's NNCodec environment (benchmarks/nncodec/stub); "
        "NNCodec's dataset and image-transform helpers are unavailable there."
    )


def dataset_class(name: str) -> type:
    """A class that can be subclassed but not instantiated."""

    def __init__(self, *args, **kwargs):
        _refuse(f"datasets.{name}")

    return type(name, (), {"__init__": __init__, "__module__": "torchvision.datasets"})


def transform_class(name: str) -> type:
    """A class whose instances can be built (and composed) but not applied."""

    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs

    def __call__(self, *args, **kwargs):
        _refuse(f"transforms.{name}")

    return type(name, (), {"__init__": __init__, "__call__": __call__, "__module__": "torchvision.transforms"})
