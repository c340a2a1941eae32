"""DWNP: device-wise channel pruning for federated learning (Gao et al., CVPR 2024; docs/theory.md §8).

A hypernetwork maps learned embeddings to binary channel gates, ``a⁰`` for the server's network and
``aⁿ`` for device ``n``; devices train under ``a⁰ ⊙ aⁿ``.  Framework-free reference parts (NumPy):

* :func:`flops_gradient` — gradient of the gated FLOPs ``T(a)`` (``T`` itself is
  :func:`ratedist.pruning.conv_flops`, bilinear in adjacent gates);
* :func:`flops_regularizer` — ``R(x, y) = ln(max(x, y) / min(x, y))`` (an assumption: the papers do not give R);
* :func:`gumbel_sigmoid` — straight-through Gumbel–sigmoid gates (hard forward, soft gradient);
* :func:`combine_gates` — ``a⁰ ⊙ aⁿ``.

The ``torch`` extra adds (imported on first access): :class:`GateHypernetwork`, :func:`gumbel_sigmoid_st`,
:func:`flops_torch`, :func:`regularizer_torch` (:mod:`ratedist.dwnp.torch_gates`), :class:`GatedCNN`,
:func:`prune_by_gates` (:mod:`ratedist.dwnp.gated_cnn`) and the in-process federated engine
:func:`train_dwnp` with :class:`DWNPConfig` and :class:`DWNPResult` (:mod:`ratedist.dwnp.federated`).
"""

from .._lazy import lazy_exports
from .gates import GumbelSigmoidSample, combine_gates, flops_gradient, flops_regularizer, gumbel_sigmoid

_TORCH = {
    "GateHypernetwork": ".torch_gates", "gumbel_sigmoid_st": ".torch_gates", "flops_torch": ".torch_gates",
    "regularizer_torch": ".torch_gates", "GatedCNN": ".gated_cnn", "prune_by_gates": ".gated_cnn",
    "DWNPConfig": ".federated", "DWNPResult": ".federated", "train_dwnp": ".federated",
}

__all__ = ["flops_gradient", "flops_regularizer", "GumbelSigmoidSample", "gumbel_sigmoid", "combine_gates",
           *_TORCH]

__getattr__, __dir__ = lazy_exports(__name__, _TORCH)
