"""A stub ``torchvision`` for NNCodec's private environment (benchmarks/nncodec/.venv).

NNCodec imports torchvision at module level only for its dataset helpers (ImageNet, CIFAR,
VOC loaders and image transforms), none of which ratedist uses: it codes a dict of arrays.
The only torchvision wheel available is a CUDA build, so this package stands in for it with
just the names those imports touch. Building a transform is allowed (NNCodec builds one at
import time); applying it, or building any dataset, raises ``RuntimeError``.
"""

from . import datasets, transforms

__version__ = "0.0+ratedist.stub"
__all__ = ["datasets", "transforms"]
