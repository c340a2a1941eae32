"""Pruning baselines on plain weight mappings (docs/theory.md §7, §8).

Allocations (:func:`prune`: global, uniform, adaptive, LAMP, ER, ERK), each
hitting its sparsity target exactly; schedules (one-shot, 20 % per round,
cubic); framework-free saliency scores; structured channel pruning to a FLOPs
target; and :func:`cost`, the measured bits of a pruned model.  The torch
adapter (SynFlow, gradients, Hessian products) is
:mod:`ratedist.pruning.torch_adapter` (needs the ``torch`` extra).
"""

from .allocation import (
    METHODS,
    PruneResult,
    apply_masks,
    er_densities,
    erk_densities,
    integer_counts,
    lamp_scores,
    n_keep_for,
    prune,
    select_layers,
    topk_mask,
)
from .cost import DecodedPruning, PruningCost, cost, decode_cost
from .schedules import cubic_schedule, geometric_schedule, one_shot
from .scores import force, grasp, magnitude, obd, snip
from .structured import ChannelPruneResult, ConvLayer, conv_flops, conv_flops_total, prune_channels

__all__ = [
    "METHODS",
    "PruneResult",
    "apply_masks",
    "er_densities",
    "erk_densities",
    "integer_counts",
    "lamp_scores",
    "n_keep_for",
    "prune",
    "select_layers",
    "topk_mask",
    "DecodedPruning",
    "PruningCost",
    "cost",
    "decode_cost",
    "cubic_schedule",
    "geometric_schedule",
    "one_shot",
    "force",
    "grasp",
    "magnitude",
    "obd",
    "snip",
    "ChannelPruneResult",
    "ConvLayer",
    "conv_flops",
    "conv_flops_total",
    "prune_channels",
]
