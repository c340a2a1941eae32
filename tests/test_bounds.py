"""Tests of ratedist.bounds: output-perturbation bounds (docs/theory.md §2)."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ratedist import InvalidArgumentError, InvalidShapeError
from ratedist.bounds import (
    BatchNorm,
    Layer,
    induced_l1_norm,
    measured_perturbation,
    measured_perturbation_torch,
    mlp_from_weights,
    normalized_distortion,
    perturbation_bounds,
    project_l1_ball,
)
from ratedist.errors import RatedistWarning

# Relative slack for comparing a measured supremum with an upper bound: both are
# sums of O(depth·width) float64 terms, so 1e-9 is ~1e6 ulps of headroom.
REL = 1e-9
# Identities between floating-point sums of n terms.
ID_TOL = 1e-12

networks = st.builds(
    lambda seed, widths: (seed, widths),
    st.integers(0, 2**31 - 1),
    st.lists(st.integers(1, 64), min_size=2, max_size=6),  # depth 1..5 (widths = in, h1, ..., out)
)


def _net(seed, widths):
    rng = np.random.default_rng(seed)
    return rng, [rng.laplace(size=(widths[i + 1], widths[i])) / np.sqrt(widths[i]) for i in range(len(widths) - 1)]


def _prune(rng, ws, kind):
    out = []
    for w in ws:
        if kind == "mask":
            out.append(w * (rng.random(w.shape) < rng.uniform(0.2, 1.0)))
        elif kind == "magnitude":
            s = rng.uniform(0.0, 0.95)
            thr = np.quantile(np.abs(w), s)
            out.append(np.where(np.abs(w) > thr, w, 0.0))
        else:
            out.append(w * rng.uniform(0.0, 1.0))
    return out


def _quiet_bounds(*a, **k):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RatedistWarning)
        return perturbation_bounds(*a, **k)


@settings(max_examples=25, deadline=None)
@given(networks, st.sampled_from(["mask", "magnitude", "scale"]))
def test_pruning_type_measured_le_induced_le_slide(net, kind):
    """docs/theory.md §2 checks (a),(b): for pruning-type ŵ (|ŵ_ij| ≤ |w_ij|) on bias-free ReLU MLPs,
    measured sup ≤ induced-norm bound ≤ slide bound, and induced ≤ safe; the precondition holds."""
    rng, ws = _net(*net)
    wh = _prune(rng, ws, kind)
    b = perturbation_bounds(ws, wh)
    m = measured_perturbation(ws, wh, restarts=3, steps=40, seed=1).value
    assert b.precondition_holds
    assert m <= b.induced * (1 + REL) + ID_TOL
    assert b.induced <= b.slide * (1 + REL) + ID_TOL
    assert b.induced <= b.safe * (1 + REL) + ID_TOL


@settings(max_examples=25, deadline=None)
@given(networks, st.sampled_from(["noise", "inflate", "sign"]))
def test_arbitrary_compression_measured_le_safe(net, kind):
    """docs/theory.md §2 check (a): the safe (mixed-product) and induced bounds hold for any ŵ."""
    rng, ws = _net(*net)
    if kind == "noise":
        wh = [w + rng.normal(scale=rng.uniform(0.01, 1.0), size=w.shape) for w in ws]
    elif kind == "inflate":
        wh = [w * rng.uniform(1.0, 3.0) for w in ws]
    else:
        wh = [-w for w in ws]
    b = _quiet_bounds(ws, wh)
    m = measured_perturbation(ws, wh, restarts=3, steps=40, seed=2).value
    assert m <= b.induced * (1 + REL) + ID_TOL
    assert b.induced <= b.safe * (1 + REL) + ID_TOL


def test_counterexample_violates_slide_form():
    """docs/theory.md §2: d=2 scalar ReLU net, w=(1,1), ŵ=(2,2): sup = 3 > slide form 2; the failed
    precondition is reported (warning naming the layers, result field, strict error)."""
    w, wh = [np.ones((1, 1))] * 2, [2 * np.ones((1, 1))] * 2
    with pytest.warns(RatedistWarning, match="layer1.*layer2"):
        b = perturbation_bounds(w, wh)
    m = measured_perturbation(w, wh)
    assert b.slide == 2.0 and m.value == 3.0 and m.value > b.slide
    assert not b.precondition_holds and b.failing_layers == ("layer1", "layer2")
    assert b.safe == 3.0 and b.induced == 3.0 and m.value <= b.safe
    with pytest.raises(InvalidArgumentError, match="layer1"):
        perturbation_bounds(w, wh, strict=True)


@settings(max_examples=30, deadline=None)
@given(networks, st.sampled_from(["mask", "noise"]))
def test_identity_relative_sum_equals_n_times_distortion(net, kind):
    """docs/theory.md §2 check (d): Σ_l ‖Δw_l‖₁/‖w_l‖₁ = n·d(u, û), and the slide bound is n·d·Π‖w_k‖₁."""
    rng, ws = _net(*net)
    wh = _prune(rng, ws, "mask") if kind == "mask" else [w + rng.normal(size=w.shape) for w in ws]
    b = _quiet_bounds(ws, wh)
    d, n = normalized_distortion(ws, wh)
    assert n == sum(w.size for w in ws) == b.n_weights
    assert abs(b.relative_sum - n * d) <= 1e-12 * max(1.0, b.relative_sum) * n
    assert b.slide == pytest.approx(n * d * b.product_norm, rel=1e-10)


@settings(max_examples=30, deadline=None)
@given(networks, st.integers(0, 4))
def test_bound_zero_iff_equal(net, which):
    """docs/theory.md §2 check (c): every bound is 0 iff ŵ = w (changing one weight makes each positive)."""
    rng, ws = _net(*net)
    b0 = perturbation_bounds(ws, [w.copy() for w in ws])
    assert b0.slide == b0.safe == b0.induced == b0.distortion == 0.0
    wh = [w.copy() for w in ws]
    layer = which % len(ws)
    wh[layer].flat[rng.integers(wh[layer].size)] += 0.5
    b1 = _quiet_bounds(ws, wh)
    assert b1.slide > 0 and b1.safe > 0 and b1.induced > 0


@settings(max_examples=20, deadline=None)
@given(networks)
def test_extended_bias_bound_holds(net):
    """The extended bound with biases (derived in perturbation_bounds Notes) dominates the measured
    sup for h_l = ReLU(W_l h + b_l) under arbitrary weight and bias changes."""
    rng, ws = _net(*net)
    orig = [Layer(w, bias=rng.normal(size=w.shape[0]), name=f"l{i}") for i, w in enumerate(ws)]
    comp = [Layer(lay.weight + rng.normal(scale=0.3, size=lay.weight.shape),
                  bias=lay.bias * rng.uniform(0, 2) + rng.normal(scale=0.1, size=lay.bias.shape), name=lay.name)
            for lay in orig]
    b = _quiet_bounds(orig, comp, include_biases=True)
    m = measured_perturbation(orig, comp, include_biases=True, restarts=3, steps=40, seed=3).value
    assert not b.biases_excluded
    assert m <= b.induced * (1 + REL) + ID_TOL <= b.safe * (1 + REL) + 2 * ID_TOL
    b0 = perturbation_bounds(orig, comp, _quiet=True)
    assert b0.biases_excluded and b0.ignored_bias_layers  # biases ignored and said so


def test_conv_batchnorm_bound_against_torch():
    """docs/theory.md §2: for a conv net with eval-mode BN folded in, the induced ℓ1→ℓ1 norm of a stride-1
    conv equals the largest input-channel kernel sum (attained at a centred delta), and the torch
    adapter's measured sup stays below the induced and safe bounds."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    k1, k2 = rng.laplace(size=(4, 2, 3, 3)), rng.laplace(size=(3, 4, 3, 3))
    bn = BatchNorm(gamma=rng.normal(size=4), beta=np.zeros(4), mean=np.zeros(4), var=rng.uniform(0.5, 2, 4))
    kh1, kh2 = k1 * (rng.random(k1.shape) < 0.6), k2 * (rng.random(k2.shape) < 0.6)
    orig = [Layer(k1, padding=2, batchnorm=bn, name="conv1"), Layer(k2, padding=2, name="conv2")]
    comp = [Layer(kh1, padding=2, batchnorm=bn, name="conv1"), Layer(kh2, padding=2, name="conv2")]
    b = perturbation_bounds(orig, comp)

    def net(a, c):
        conv1 = torch.nn.Conv2d(2, 4, 3, padding=2, bias=False)
        conv1.weight.data = torch.tensor(a)
        bnm = torch.nn.BatchNorm2d(4, eps=bn.eps).double()
        bnm.weight.data, bnm.bias.data = torch.tensor(bn.gamma), torch.tensor(bn.beta)
        bnm.running_mean.data, bnm.running_var.data = torch.tensor(bn.mean), torch.tensor(bn.var)
        conv2 = torch.nn.Conv2d(4, 3, 3, padding=2, bias=False)
        conv2.weight.data = torch.tensor(c)
        return torch.nn.Sequential(conv1.double(), bnm, torch.nn.ReLU(), conv2.double())

    m = measured_perturbation_torch(net(k1, k2), net(kh1, kh2), (2, 5, 5), restarts=2, steps=30, seed=0)
    assert 0 < m.value <= b.induced * (1 + REL) <= b.safe * (1 + REL)
    conv = torch.nn.Conv2d(2, 4, 3, padding=2, bias=False).double()
    conv.weight.data = torch.tensor(k1)
    x = torch.zeros((2, 2, 5, 5), dtype=torch.float64)
    x[0, 0, 2, 2] = x[1, 1, 2, 2] = 1.0
    got = conv(x).abs().sum(dim=(1, 2, 3)).max().item()
    assert got == pytest.approx(induced_l1_norm(k1), rel=1e-12)


def test_torch_adapter_matches_numpy_on_mlp():
    """The torch adapter and the NumPy estimator explore the same problem: on a dense ReLU MLP both
    are ≤ the induced bound and their vertex values agree exactly."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(5)
    ws = [rng.laplace(size=(16, 8)), rng.laplace(size=(4, 16))]
    wh = [w * (rng.random(w.shape) < 0.5) for w in ws]

    def mod(a):
        m = torch.nn.Sequential(torch.nn.Linear(8, 16, bias=False), torch.nn.ReLU(), torch.nn.Linear(16, 4, bias=False))
        m[0].weight.data, m[2].weight.data = torch.tensor(a[0]), torch.tensor(a[1])
        return m.double()

    mt = measured_perturbation_torch(mod(ws), mod(wh), (8,), restarts=2, steps=30)
    mn = measured_perturbation(ws, wh, restarts=2, steps=30)
    b = perturbation_bounds(ws, wh)
    assert mt.vertex_value == pytest.approx(mn.vertex_value, rel=1e-12)
    assert max(mt.value, mn.value) <= b.induced * (1 + REL)


def test_bad_inputs_name_the_layer():
    """Mismatched shapes, zero-norm layers, NaN and layer-count mismatches raise errors naming the layer."""
    w = {"fc1.weight": np.ones((3, 2)), "fc2.weight": np.ones((1, 3))}
    with pytest.raises(InvalidShapeError, match="fc2.weight"):
        perturbation_bounds(w, {"fc1.weight": np.ones((3, 2)), "fc2.weight": np.ones((2, 3))})
    with pytest.raises(InvalidArgumentError, match="fc1.weight"):
        perturbation_bounds({**w, "fc1.weight": np.zeros((3, 2))}, w)
    bad = np.ones((1, 3))
    bad[0, 1] = np.nan
    with pytest.raises(InvalidArgumentError, match="fc2.weight"):
        perturbation_bounds(w, {**w, "fc2.weight": bad})
    with pytest.raises(InvalidShapeError, match="2 layers"):
        perturbation_bounds(w, [np.ones((3, 2))])
    with pytest.raises(InvalidShapeError, match="layer2"):
        perturbation_bounds([np.ones((3, 2)), np.ones((1, 4))], [np.ones((3, 2)), np.ones((1, 4))])
    with pytest.raises(InvalidArgumentError, match="convolution"):
        measured_perturbation([np.ones((2, 1, 3, 3))], [np.ones((2, 1, 3, 3))])


def test_mlp_from_weights_pattern_and_default_model():
    """mlp_from_weights picks the 2-D tensors in file order (or a glob); the default model is 64-256-128-10."""
    from ratedist.data import default_model

    net = mlp_from_weights(default_model())
    assert [lay.weight.shape for lay in net] == [(256, 64), (128, 256), (10, 128)]
    assert [lay.name for lay in mlp_from_weights(default_model(), "fc1*,fc3*")] == ["fc1.weight", "fc3.weight"]
    with pytest.raises(InvalidArgumentError, match="selects no"):
        mlp_from_weights(default_model(), "conv*")


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 30))
def test_project_l1_ball_is_the_projection(seed, d):
    """The sort-based projection lands in the ball, fixes points inside it, and is no farther from x
    than random points of the ball (Euclidean projection onto a convex set)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(scale=2.0, size=(5, d))
    p = project_l1_ball(x)
    assert np.all(np.abs(p).sum(axis=1) <= 1 + 1e-12)
    np.testing.assert_allclose(project_l1_ball(p), p, rtol=0, atol=1e-14)  # idempotent up to rounding
    z = project_l1_ball(rng.normal(size=(200, d)))
    for i in range(5):
        assert np.linalg.norm(x[i] - p[i]) <= np.min(np.linalg.norm(x[i] - z, axis=1)) + 1e-12


def test_cli_bound_json(tmp_path, capsys):
    """`ratedist bound A B --json` reports the three bounds, the measured value, d(u,û) and the
    precondition; bad input exits 2 with a one-line error naming the layer."""
    import json

    from ratedist import save_weights
    from ratedist.cli import main

    rng = np.random.default_rng(0)
    w = {"a.weight": rng.laplace(size=(6, 4)), "b.weight": rng.laplace(size=(3, 6))}
    save_weights(tmp_path / "w.npz", w)
    save_weights(tmp_path / "p.npz", {k: v * (rng.random(v.shape) < 0.5) for k, v in w.items()})
    save_weights(tmp_path / "x.npz", {"a.weight": w["a.weight"], "b.weight": np.ones((2, 6))})
    assert main(["bound", str(tmp_path / "w.npz"), str(tmp_path / "p.npz"), "--steps", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"slide", "safe", "induced", "measured", "distortion", "precondition_holds"} <= set(out)
    assert out["precondition_holds"] and out["measured"] <= out["induced"] * (1 + REL) <= out["slide"] * (1 + REL)
    assert main(["bound", str(tmp_path / "w.npz"), str(tmp_path / "x.npz"), "--json"]) == 2
    assert "b.weight" in capsys.readouterr().err


def test_bound_report_sweep_on_default_model():
    """analysis/bound_report.py: magnitude pruning of the default model keeps |ŵ| ≤ |w|, so at every
    sparsity the precondition holds and measured ≤ induced ≤ slide (docs/theory.md §2 on a trained net)."""
    from ratedist.data import default_model
    from ratedist.scripts import load_script, repo_root

    report = load_script(repo_root() / "analysis" / "bound_report.py")
    out = report.sparsity_sweep(default_model(), [0.5, 0.9], methods=("magnitude",), restarts=1, steps=10)
    rows = out["methods"]["magnitude"]
    assert [round(r["achieved_sparsity"], 2) for r in rows] == [0.5, 0.9]
    for r in rows:
        assert r["precondition_holds"] and r["measured"] <= r["induced"] * (1 + REL) <= r["slide"] * (1 + REL)
    assert rows[0]["induced"] < rows[1]["induced"]
