"""Sparse training methods (docs/theory.md §7; issue 15): IMP and lottery tickets, pruning at init, dynamic sparse training.

Framework-free mask algebra on ``Mapping[str, ndarray]`` (masks, nested magnitude steps,
prune-and-regrow updates, ERK initializations) with torch training loops in the ``torch``
extra that work on any ``nn.Module`` (masks keyed by ``named_parameters()`` names):

* :mod:`ratedist.sparse.masks` — checks, random and reshuffled masks, :class:`MaskedModule`
  (weights, gradients and optimizer state held at zero), :func:`train_masked`;
* :mod:`ratedist.sparse.imp` — gradual (cubic) and 20 %-per-round magnitude pruning, the
  lottery ticket with rewinding and its random-reinit and random-mask controls;
* :mod:`ratedist.sparse.pai` — SNIP, GraSP, SynFlow (iterative, data-free), FORCE and random
  masks at initialization;
* :mod:`ratedist.sparse.dst` — SET and RigL (prune by magnitude, regrow at random or by
  gradient, cosine-decayed update fraction), DSR and SNFS (capacity moved across layers);
* :mod:`ratedist.sparse.obs` — layer-wise optimal brain surgeon with the weight update;
* :mod:`ratedist.sparse.regularized` — L0 hard-concrete gates and sparse variational dropout,
  with the λ search that reaches a requested sparsity.

Torch is imported only inside the training functions.
"""

from .masks import (
    MaskedModule,
    check_masks,
    check_sparsity,
    layer_kept,
    mask_sparsity,
    module_weights,
    random_masks,
    reshuffle_masks,
    train_masked,
)
from .imp import (
    SparseResult,
    check_schedule,
    gradual_magnitude_pruning,
    iterative_magnitude_pruning,
    lottery_ticket,
    magnitude_step,
    rewound_weights,
)
from .pai import PAI_METHODS, pai_masks, pai_scores, train_fixed_mask
from .dst import DST_METHODS, dsr_update, largest_k, prune_regrow, smallest_k, snfs_update, train_dst, update_fraction
from .obs import input_hessians, obs_layer, obs_prune
from .regularized import REGULARIZERS, search_lambda, train_regularized

__all__ = [
    "MaskedModule",
    "check_masks",
    "check_sparsity",
    "layer_kept",
    "mask_sparsity",
    "module_weights",
    "random_masks",
    "reshuffle_masks",
    "train_masked",
    "SparseResult",
    "check_schedule",
    "gradual_magnitude_pruning",
    "iterative_magnitude_pruning",
    "lottery_ticket",
    "magnitude_step",
    "rewound_weights",
    "PAI_METHODS",
    "pai_masks",
    "pai_scores",
    "train_fixed_mask",
    "DST_METHODS",
    "dsr_update",
    "snfs_update",
    "largest_k",
    "prune_regrow",
    "smallest_k",
    "train_dst",
    "update_fraction",
    "input_hessians",
    "obs_layer",
    "obs_prune",
    "REGULARIZERS",
    "search_lambda",
    "train_regularized",
]
