"""Pruning baselines on plain weight mappings (THEORY.md §7, §8).

Allocations (:func:`prune`: global, uniform, adaptive, LAMP, ER, ERK), each
hitting its sparsity target exactly; schedules (one-shot, 20 % per round,
cubic); framework-free saliency scores; structured channel pruning to a FLOPs
target; and :func:`cost`, the measured bits of a pruned model.
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
]
