"""Data that ships with ratedist: the embedded default model and the digits split.

The default model is a bias-free ReLU MLP 64-256-128-10 (the setting of the
output-perturbation theorem, THEORY.md §2) trained on scikit-learn's bundled
digits by ``ratedist/data/train_digits_mlp.py``; its weights ship as
``digits_mlp.safetensors``.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["default_model_path", "default_model", "digits_split", "mlp_forward", "mlp_accuracy", "DIGITS_SEED"]

DIGITS_SEED = 0


def default_model_path():
    """Path of the embedded default model (.safetensors)."""
    return resources.files(__name__) / "digits_mlp.safetensors"


def default_model() -> dict[str, np.ndarray]:
    """The embedded default model's weights, in layer order: ``fc1.weight`` ... ``fc3.weight`` (out × in)."""
    from ..io import load_weights

    return load_weights(str(default_model_path()))


def digits_split(test_size: float = 0.25, seed: int = DIGITS_SEED):
    """scikit-learn's digits (1,797 images 8×8), scaled to [0, 1], fixed stratified split.

    Returns ``X_train, X_test, y_train, y_test`` (float32 features of length 64, int64 labels).
    """
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    X = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    return train_test_split(X, y, test_size=test_size, random_state=seed, stratify=y)


def mlp_forward(weights, X) -> np.ndarray:
    """Logits of a bias-free ReLU MLP given its 2-D weight matrices (out × in) in order."""
    h = np.asarray(X, dtype=np.float64)
    mats = [np.asarray(w, dtype=np.float64) for w in weights.values() if np.ndim(w) == 2]
    for i, w in enumerate(mats):
        h = h @ w.T
        if i < len(mats) - 1:
            h = np.maximum(h, 0.0)
    return h


def mlp_accuracy(weights, X, y) -> float:
    """Top-1 accuracy of :func:`mlp_forward` on ``(X, y)``."""
    return float(np.mean(np.argmax(mlp_forward(weights, X), axis=1) == np.asarray(y)))
