"""Data that ships with ratedist: the embedded default model and the digits split.

The default model is a bias-free ReLU MLP 64-256-128-10 (the setting of the
output-perturbation theorem, docs/theory.md §2) trained on scikit-learn's bundled
digits by ``ratedist/data/train_digits_mlp.py``; its weights ship as
``digits_mlp.safetensors``.

The digits CNN (two 3×3 convolutions with biases, a 2×2 max-pool, two linear
layers; 29,914 parameters) is trained by ``ratedist/data/train_digits_cnn.py``
and ships as ``digits_cnn.safetensors``; :func:`cnn_forward` runs it in NumPy.
"""

from __future__ import annotations

from importlib import resources

import numpy as np

__all__ = ["default_model_path", "default_model", "digits_split", "mlp_forward", "mlp_accuracy", "DIGITS_SEED",
           "digits_cnn_path", "digits_cnn", "cnn_forward", "cnn_accuracy"]

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


def digits_cnn_path():
    """Path of the embedded digits CNN (.safetensors)."""
    return resources.files(__name__) / "digits_cnn.safetensors"


def digits_cnn() -> dict[str, np.ndarray]:
    """The embedded digits CNN's weights, in layer order, torch layouts.

    ``conv1.weight`` (16, 1, 3, 3), ``conv1.bias`` (16,), ``conv2.weight`` (32, 16, 3, 3),
    ``conv2.bias`` (32,), ``fc1.weight`` (48, 512), ``fc1.bias`` (48,), ``fc2.weight`` (10, 48),
    ``fc2.bias`` (10,); float32.
    """
    from ..io import load_weights

    return load_weights(str(digits_cnn_path()))


def _conv3x3_same(x: np.ndarray, w: np.ndarray, b) -> np.ndarray:
    """Cross-correlation of ``x`` (N, C, H, W) with ``w`` (O, C, 3, 3), zero padding 1, plus ``b`` (O,)."""
    xp = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (3, 3), axis=(2, 3))  # (N, C, H, W, 3, 3)
    y = np.einsum("nchwij,ocij->nohw", win, w, optimize=True)
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def cnn_forward(weights, X) -> np.ndarray:
    """Logits of the digits CNN (see ``ratedist/data/train_digits_cnn.py``) in float64 NumPy.

    Parameters
    ----------
    weights : Mapping[str, array]
        ``<layer>.weight`` / ``<layer>.bias`` pairs in layer order: 4-D tensors (out, in, 3, 3) are
        3×3 convolutions (padding 1) followed by a ReLU, with one 2×2 max-pool after the last
        convolution; 2-D tensors (out × in) are linear layers, ReLU between them. A missing bias
        counts as zero.
    X : array, shape (n, 64) or (n, 1, 8, 8)
        Images (features of ``digits_split()``), pixel values in [0, 1].

    Returns
    -------
    numpy.ndarray, shape (n, 10)
        Logits (float64).
    """
    from ..errors import InvalidShapeError

    h = np.asarray(X, dtype=np.float64)
    if h.ndim == 2 and h.shape[1] == 64:
        h = h.reshape(-1, 1, 8, 8)
    if h.ndim != 4 or h.shape[1:] != (1, 8, 8):
        raise InvalidShapeError(f"`X` must have shape (n, 64) or (n, 1, 8, 8), got {np.shape(X)}.")
    layers = []
    for name, w in weights.items():
        if name.endswith(".weight") and np.ndim(w) in (2, 4):
            b = weights.get(name[: -len("weight")] + "bias")
            layers.append((name, np.asarray(w, dtype=np.float64), None if b is None else np.asarray(b, np.float64)))
    convs = [lay for lay in layers if lay[1].ndim == 4]
    fcs = [lay for lay in layers if lay[1].ndim == 2]
    if not convs or not fcs or layers != convs + fcs:
        raise InvalidShapeError(
            f"`weights` must hold 4-D convolutions followed by 2-D linear layers, got {[n for n, _, _ in layers]}."
        )
    for name, w, b in convs:
        if w.shape[1] != h.shape[1] or w.shape[2:] != (3, 3):
            raise InvalidShapeError(f"`{name}` has shape {w.shape}; expected (out, {h.shape[1]}, 3, 3).")
        h = np.maximum(_conv3x3_same(h, w, b), 0.0)
    n, c, hh, ww = h.shape
    h = h[:, :, : hh // 2 * 2, : ww // 2 * 2].reshape(n, c, hh // 2, 2, ww // 2, 2).max(axis=(3, 5))
    h = h.reshape(n, -1)
    for i, (name, w, b) in enumerate(fcs):
        if w.shape[1] != h.shape[1]:
            raise InvalidShapeError(f"`{name}` has shape {w.shape}; expected (out, {h.shape[1]}).")
        h = h @ w.T
        if b is not None:
            h = h + b
        if i < len(fcs) - 1:
            h = np.maximum(h, 0.0)
    return h


def cnn_accuracy(weights, X, y) -> float:
    """Top-1 accuracy of :func:`cnn_forward` on ``(X, y)``."""
    return float(np.mean(np.argmax(cnn_forward(weights, X), axis=1) == np.asarray(y)))
