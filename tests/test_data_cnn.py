"""The embedded digits CNN: the NumPy forward pass is torch's network, the shipped weights are trained.

``ratedist.data.cnn_forward`` must compute exactly the function of the torch network built by
``ratedist/data/train_digits_cnn.py`` (so that accuracy can be measured without torch), on the
shipped weights and on random ones (random biases included, so a dropped bias or a wrong flatten
order shows).
"""

from __future__ import annotations

import numpy as np
import pytest

from ratedist.data import cnn_accuracy, cnn_forward, digits_cnn, digits_split
from ratedist.errors import InvalidShapeError

torch = pytest.importorskip("torch")
from ratedist.data import train_digits_cnn as tdc  # noqa: E402  (imports torch lazily; needs it here)

# float32 torch against float64 NumPy, relative to the largest logit (≈ 32 on the shipped model):
# each logit is a sum of ≤ 512 rounded products through 4 layers, with float32's unit roundoff
# 6e-8; the observed gap is 2.5e-7 of the largest logit (7.9e-6 absolute), so 1e-5 of it leaves
# a factor 40 for other BLAS orderings.
F32_REL = 1e-5
# float64 torch against float64 NumPy: the same arithmetic in a different summation order,
# errors of a few ulps of the logit magnitude (≲ 30).
F64_ATOL = 1e-10


def _torch_logits(weights, X, dtype):
    net = tdc.build(torch)
    tdc.load_into(net, weights)
    net = net.to(dtype)
    with torch.no_grad():
        return net(torch.as_tensor(X, dtype=dtype).reshape(-1, 1, 8, 8)).numpy().astype(np.float64)


def test_shipped_cnn_layout_and_accuracy():
    """The shipped CNN has the documented tensors (29,914 parameters, 20–40 k as specified), and it
    is a trained classifier: test accuracy well above chance (0.1), above 0.95."""
    w = digits_cnn()
    assert list(w) == [f"{n}.{p}" for n in tdc.NAMES for p in ("weight", "bias")]
    assert w["conv1.weight"].shape == (16, 1, 3, 3) and w["fc1.weight"].shape == (48, 512)
    assert all(a.dtype == np.float32 for a in w.values())
    n = sum(a.size for a in w.values())
    assert 20_000 <= n <= 40_000
    _, Xte, _, yte = digits_split()
    assert cnn_accuracy(w, Xte, yte) > 0.95


def test_numpy_forward_matches_torch_on_shipped_weights():
    """cnn_forward equals torch's logits on the whole test split: to 1e-5 against the float32
    network (relative to the largest logit), to 1e-10 against the same network in float64 (same function, different rounding)."""
    w = digits_cnn()
    _, Xte, _, _ = digits_split()
    got = cnn_forward(w, Xte)
    assert got.shape == (len(Xte), 10)
    scale = float(np.abs(got).max())
    np.testing.assert_allclose(got, _torch_logits(w, Xte, torch.float32), rtol=0, atol=F32_REL * scale)
    np.testing.assert_allclose(got, _torch_logits(w, Xte, torch.float64), rtol=0, atol=F64_ATOL)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_numpy_forward_matches_torch_on_random_weights(seed):
    """On random weights and biases (every bias non-zero) and random images, NumPy and float64
    torch agree: the forward pass is right for any parameters, not only the trained ones."""
    rng = np.random.default_rng(seed)
    w = {k: rng.standard_normal(v.shape).astype(np.float32) * 0.3 for k, v in digits_cnn().items()}
    X = rng.random((17, 64)).astype(np.float32)
    np.testing.assert_allclose(cnn_forward(w, X), _torch_logits(w, X, torch.float64), rtol=0, atol=F64_ATOL)
    # images may also come as (n, 1, 8, 8)
    np.testing.assert_array_equal(cnn_forward(w, X.reshape(-1, 1, 8, 8)), cnn_forward(w, X))


def test_training_is_deterministic():
    """Same seed ⇒ the same weights, bit for bit (seeded generators, deterministic algorithms,
    one thread); one epoch keeps the test fast."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        a, acc_a = tdc.train(epochs=1)
        b, acc_b = tdc.train(epochs=1)
    finally:
        torch.set_num_threads(n)
    assert list(a) == list(b) and acc_a == acc_b
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])


def test_bad_inputs_raise_shape_errors():
    """Images of the wrong size and weights without a convolution raise InvalidShapeError naming the argument."""
    w = digits_cnn()
    with pytest.raises(InvalidShapeError, match="`X`"):
        cnn_forward(w, np.zeros((3, 63)))
    with pytest.raises(InvalidShapeError, match="`weights`"):
        cnn_forward({"fc1.weight": w["fc1.weight"]}, np.zeros((3, 64)))
    with pytest.raises(InvalidShapeError, match="conv2.weight"):
        cnn_forward({**w, "conv2.weight": np.zeros((32, 8, 3, 3))}, np.zeros((3, 64)))
