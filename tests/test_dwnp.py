"""DWNP (THEORY.md §8): FLOPs counter, regularizer, straight-through gates, the federated method and its table."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratedist.dwnp import combine_gates, flops_gradient, flops_regularizer, gumbel_sigmoid
from ratedist.errors import InvalidArgumentError, InvalidShapeError
from ratedist.pruning import ConvLayer, conv_flops

EPS = 1e-12  # relative: sums of at most a few hundred products of small integers are exact in float64


@st.composite
def nets_and_gates(draw, binary=False):
    """A chain of 1–4 layers with random shapes and a gate vector in [0, 1]^out (or {0, 1}^out) per layer."""
    n = draw(st.integers(1, 4))
    prev = draw(st.integers(1, 6))
    layers = []
    for _ in range(n):
        out = draw(st.integers(1, 8))
        k = draw(st.integers(1, 3))
        hw = draw(st.integers(1, 5))
        layers.append(ConvLayer(out, prev, k, k, hw, hw))
        prev = out
    seed = draw(st.integers(0, 2**31))
    rng = np.random.default_rng(seed)
    gates = [(rng.random(l.out) < 0.6).astype(float) if binary else rng.random(l.out) for l in layers]
    return layers, gates


@given(nets_and_gates(binary=True))
def test_flops_of_binary_gates_is_the_pruned_network(case):
    """T(a) for binary gates equals the dense FLOPs of the network with the closed channels removed; T(1) = T_total."""
    layers, gates = case
    total = sum(l.kh * l.kw * l.h_out * l.w_out * l.in_ * l.out for l in layers)
    assert conv_flops(layers, [np.ones(l.out) for l in layers]) == pytest.approx(total, rel=EPS)
    sizes = [int(g.sum()) for g in gates]
    if min(sizes) == 0:
        assert conv_flops(layers, gates) <= total
        return
    pruned, prev = [], layers[0].in_
    for l, s in zip(layers, sizes):
        pruned.append(ConvLayer(s, prev, l.kh, l.kw, l.h_out, l.w_out))
        prev = s
    assert conv_flops(layers, gates) == pytest.approx(conv_flops(pruned), rel=EPS)


@given(nets_and_gates(), st.data())
def test_flops_is_monotone_in_each_gate(case, data):
    """Raising any one gate never lowers T (its partial derivative u_l S_{l-1} + u_{l+1} S_{l+1} is >= 0),
    and flops_gradient matches T's finite difference exactly (T is affine in each single gate)."""
    layers, gates = case
    i = data.draw(st.integers(0, len(layers) - 1))
    c = data.draw(st.integers(0, layers[i].out - 1))
    lo = data.draw(st.floats(0, 1))
    hi = data.draw(st.floats(lo, 1))
    a, b = [g.copy() for g in gates], [g.copy() for g in gates]
    a[i][c], b[i][c] = lo, hi
    ta, tb = conv_flops(layers, a), conv_flops(layers, b)
    assert tb >= ta - 1e-9 * max(1.0, tb)
    grad = flops_gradient(layers, a)
    assert np.all(grad[i] >= 0)
    assert tb - ta == pytest.approx(grad[i][c] * (hi - lo), rel=1e-9, abs=1e-9 * max(1.0, tb))


@given(st.floats(1e-3, 1e9), st.floats(1e-3, 1e9))
def test_regularizer_is_nonnegative_and_zero_only_on_target(x, y):
    """R(x, y) = ln(max/min) >= 0, R = 0 iff x == y, and R is symmetric in over- and undershoot by the same factor."""
    r = flops_regularizer(x, y)
    assert r >= 0.0
    assert (r == 0.0) == (x == y)
    assert flops_regularizer(y, x) == r
    assert flops_regularizer(y, y) == 0.0


def test_regularizer_rejects_nonpositive_flops():
    with pytest.raises(InvalidArgumentError, match="`flops`"):
        flops_regularizer(0.0, 1.0)
    with pytest.raises(InvalidArgumentError, match="`target`"):
        flops_regularizer(1.0, -2.0)


@given(st.lists(st.floats(-8, 8), min_size=1, max_size=20), st.floats(0.1, 5.0), st.integers(0, 2**31))
def test_gumbel_sigmoid_is_binary_forward_with_nonzero_gradient(logits, tau, seed):
    """Forward gates are exactly 0 or 1 (hard = 1[soft >= 1/2]); the straight-through gradient
    soft (1 - soft) / tau is strictly positive wherever soft is not saturated in float64."""
    s = gumbel_sigmoid(np.array(logits), tau=tau, rng=seed)
    assert set(np.unique(s.hard)) <= {0.0, 1.0}
    assert np.array_equal(s.hard, (s.soft >= 0.5).astype(float))
    unsat = (s.soft > 1e-12) & (s.soft < 1 - 1e-12)
    assert np.all(s.grad[unsat] > 0)
    z = (np.array(logits) + s.noise) / tau
    assert np.allclose(s.soft, 1 / (1 + np.exp(-z)), rtol=1e-12, atol=1e-15)


def test_gumbel_sigmoid_noise_is_logistic_and_seeded():
    """g1 - g2 of two standard Gumbels is Logistic(0, 1): mean 0, variance pi²/3 (within 5 standard errors
    at n = 200,000); the same seed gives the same gates."""
    s = gumbel_sigmoid(np.zeros(200_000), rng=3)
    n = s.noise.size
    assert abs(s.noise.mean()) < 5 * np.sqrt(np.pi**2 / 3 / n)
    assert abs(s.noise.var() - np.pi**2 / 3) < 5 * np.pi**2 / 3 * np.sqrt(2.4 / n)  # kurtosis 4.2 -> var of var
    assert np.array_equal(gumbel_sigmoid(np.linspace(-1, 1, 9), rng=5).hard,
                          gumbel_sigmoid(np.linspace(-1, 1, 9), rng=5).hard)


def test_bad_gate_inputs_name_the_argument():
    with pytest.raises(InvalidArgumentError, match="`tau`"):
        gumbel_sigmoid(np.zeros(3), tau=0.0)
    with pytest.raises(InvalidShapeError, match="`noise`"):
        gumbel_sigmoid(np.zeros(3), noise=np.zeros(2))
    with pytest.raises(InvalidShapeError, match="`device`"):
        combine_gates([np.ones(3)], [np.ones(2)])
