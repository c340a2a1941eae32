"""Tests of ratedist.pruning: exact allocations, schedules, scores, channel pruning, bit cost."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ratedist.errors import CorruptStreamError, InvalidArgumentError, UnreachableTargetError
from ratedist.pruning import (
    METHODS,
    apply_masks,
    erk_densities,
    integer_counts,
    lamp_scores,
    n_keep_for,
    prune,
)
from ratedist.pruning.cost import cost, decode_cost
from ratedist.pruning.schedules import cubic_schedule, geometric_schedule, one_shot
from ratedist.pruning.scores import force, grasp, magnitude, obd, snip
from ratedist.pruning.structured import ConvLayer, conv_flops, prune_channels

# one weight of slack: the contract is |kept - (1 - S) N| <= 1/2 (rounding to the nearest integer)
ONE_WEIGHT = 0.5
# identities computed in float64
EPS64 = 1e-12

SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

shapes_st = st.lists(
    st.one_of(
        st.tuples(st.integers(1, 12), st.integers(1, 12)),
        st.tuples(st.integers(1, 6), st.integers(1, 4), st.integers(1, 3), st.integers(1, 3)),
    ),
    min_size=1, max_size=5,
)


def _model(shapes, seed, ties=False):
    rng = np.random.default_rng(seed)
    w = {}
    for i, s in enumerate(shapes):
        x = rng.integers(-3, 4, size=s).astype(np.float32) if ties else rng.normal(size=s).astype(np.float32)
        w[f"layer{i}.weight"] = x
        w[f"layer{i}.bias"] = rng.normal(size=s[0]).astype(np.float32)
    return w


@SETTINGS
@given(shapes=shapes_st, s=st.floats(0.0, 0.99), seed=st.integers(0, 10**6), ties=st.booleans(),
       method=st.sampled_from(METHODS))
def test_every_method_meets_the_global_target(shapes, s, seed, ties, method):
    """docs/theory.md §7 check: every method keeps round((1 - S) N) weights, i.e. hits S within one weight;
    masks and the report agree, unselected tensors stay dense, and only 'global' may empty a layer."""
    w = _model(shapes, seed, ties)
    n = sum(int(np.prod(x)) for x in shapes)
    try:
        r = prune(w, method=method, sparsity=s)
    except UnreachableTargetError:
        # only legitimate when the method cannot keep >= 1 per layer (or adaptive's constraints)
        assert method != "global"
        assert n_keep_for(s, n) < len(shapes) or method == "adaptive"
        return
    assert abs(r.n_kept - (1 - s) * n) <= ONE_WEIGHT
    assert r.n_selected == n and set(r.masks) == set(w)
    for k, m in r.masks.items():
        assert m.shape == w[k].shape and m.dtype == bool
        if k.endswith("bias"):
            assert m.all() and k not in r.report
        else:
            assert r.report[k]["kept"] == int(m.sum()) and r.report[k]["size"] == m.size
            assert abs(r.report[k]["sparsity"] - (1 - m.mean())) <= EPS64
            if method != "global":
                assert m.sum() >= 1
    assert sum(v["kept"] for v in r.report.values()) == r.n_kept


def _global_reference(w, names, n_keep):
    """Full sort: rank by (-|w|, global flat index), keep the first n_keep."""
    allv = np.concatenate([np.abs(w[k]).ravel().astype(np.float64) for k in names])
    order = np.lexsort((np.arange(allv.size), -allv))
    keep = np.zeros(allv.size, bool)
    keep[order[:n_keep]] = True
    return keep


@SETTINGS
@given(shapes=shapes_st, s=st.floats(0.0, 0.99), seed=st.integers(0, 10**6), ties=st.booleans())
def test_global_equals_full_sort_reference(shapes, s, seed, ties):
    """Global magnitude pruning (docs/theory.md §7) by selection equals a full sort with the documented
    tie-break (earlier tensor, then smaller flat index), ties included."""
    w = _model(shapes, seed, ties)
    names = [k for k in w if k.endswith("weight")]
    r = prune(w, method="global", sparsity=s)
    ref = _global_reference(w, names, r.n_kept)
    got = np.concatenate([r.masks[k].ravel() for k in names])
    assert np.array_equal(got, ref)


def _lamp_reference(w, names, n_keep):
    """Per-weight LAMP scores from an explicit per-layer sort, then a full global sort."""
    keys = []
    for li, k in enumerate(names):
        a = np.abs(w[k]).ravel().astype(np.float64)
        idx = np.arange(a.size)
        order = np.lexsort((-idx, a))  # ascending |w|; among ties the larger index is 'smaller'
        sq = a[order] ** 2
        score = np.zeros(a.size)
        for r in range(a.size):
            tail = sq[r:].sum()
            score[r] = sq[r] / tail if tail > 0 else 0.0
        score[-1] = 1.0
        for r, i in enumerate(order):
            keys.append((-score[r], li, -r, li, i))
    keys.sort()
    keep = {k: np.zeros(w[k].size, bool) for k in names}
    for key in keys[:n_keep]:
        keep[names[key[3]]][key[4]] = True
    return keep


@SETTINGS
@given(shapes=shapes_st, s=st.floats(0.0, 0.99), seed=st.integers(0, 10**6), ties=st.booleans())
def test_lamp_matches_reference_order_and_never_empties(shapes, s, seed, ties):
    """LAMP (Lee et al. 2021; docs/theory.md §7): the mask equals the score-by-score reference; inside a
    layer the kept weights are the largest in magnitude; every layer keeps at least one weight."""
    w = _model(shapes, seed, ties)
    names = [k for k in w if k.endswith("weight")]
    n = sum(w[k].size for k in names)
    if n_keep_for(s, n) < len(names):
        with pytest.raises(UnreachableTargetError):
            prune(w, method="lamp", sparsity=s)
        return
    r = prune(w, method="lamp", sparsity=s)
    ref = _lamp_reference(w, names, r.n_kept)
    for k in names:
        m = r.masks[k].ravel()
        a = np.abs(w[k]).ravel()
        assert m.sum() >= 1
        if (~m).any():
            assert a[m].min() >= a[~m].max()  # within-layer order = magnitude order
        if not ties:  # with exact ties the score order inside a tie group is a convention; compare exactly otherwise
            assert np.array_equal(m, ref[k])


@SETTINGS
@given(shapes=shapes_st, s=st.floats(0.0, 0.99), seed=st.integers(0, 10**6), ties=st.booleans(),
       factor=st.sampled_from([0.1, 0.5, 1.0, 2.0]))
def test_lamp_candidate_sets_are_exact(shapes, s, seed, ties, factor):
    """LAMP computed on small candidate sets (each layer's largest magnitudes, grown until the cut falls
    inside them) gives the same mask as LAMP computed on whole layers: a score depends only on the
    weights above it (docs/theory.md §7 definition)."""
    from ratedist.pruning import allocation

    w = _model(shapes, seed, ties)
    n = sum(int(np.prod(x)) for x in shapes)
    if n_keep_for(s, n) < len(shapes):
        return
    full = prune(w, method="lamp", sparsity=s)  # layers here are smaller than the default minimum set
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(allocation, "LAMP_MIN_CANDIDATES", 1)
        mp.setattr(allocation, "LAMP_CANDIDATE_FACTOR", factor)
        small = prune(w, method="lamp", sparsity=s)
    for k in full.masks:
        assert np.array_equal(full.masks[k], small.masks[k])


def test_lamp_scores_hand_checked():
    """LAMP scores of [1, 2, 3]: 1/14, 4/13, 9/9 (docs/theory.md §7 definition)."""
    s = lamp_scores(np.array([3.0, -1.0, 2.0]))
    np.testing.assert_allclose(s, [1.0, 1 / 14, 4 / 13], rtol=EPS64)


@SETTINGS
@given(shapes=st.lists(st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(1, 3), st.integers(1, 3)),
                       min_size=1, max_size=6), d=st.floats(0.01, 1.0))
def test_erk_densities_in_unit_interval_and_meet_budget(shapes, d):
    """ERK (Evci et al. 2020; docs/theory.md §7): densities lie in (0, 1] after the capacity check and
    the kept budget sum p_l N_l equals d sum N_l."""
    p = erk_densities(shapes, d)
    sizes = np.array([np.prod(s) for s in shapes], dtype=float)
    assert np.all(p > 0) and np.all(p <= 1)
    assert abs((p * sizes).sum() - d * sizes.sum()) <= 1e-9 * sizes.sum()


def test_erk_capacity_check_makes_small_layer_dense():
    """A layer whose ERK density would exceed 1 is made dense and the others are re-solved."""
    shapes = [(4, 3, 3, 3), (256, 256, 3, 3), (10, 256)]
    p = erk_densities(shapes, 0.5)
    sizes = np.array([np.prod(x) for x in shapes], dtype=float)
    raw = np.array([sum(x) / np.prod(x) for x in shapes])
    assert 0.5 * sizes.sum() / (raw * sizes).sum() * raw[0] > 1  # uncapped ε would overfill layer 0
    assert p[0] == 1.0 and p[1] < 1.0
    r = prune({f"l{i}": np.random.default_rng(i).normal(size=s) for i, s in enumerate(shapes)}, method="erk", sparsity=0.5)
    assert r.report["l0"]["kept"] == 108 and abs(r.sparsity - 0.5) <= ONE_WEIGHT / r.n_selected


def test_uniform_and_adaptive_allocations():
    """Uniform: every layer within one weight of S.  Adaptive ('Uniform+', Gale et al. 2019):
    first layer dense, last layer at most 80 % sparse, middle layers uniform; infeasible targets raise."""
    rng = np.random.default_rng(0)
    w = {"conv1": rng.normal(size=(16, 3, 3, 3)), "conv2": rng.normal(size=(32, 16, 3, 3)),
         "conv3": rng.normal(size=(64, 32, 3, 3)), "fc": rng.normal(size=(10, 64))}
    r = prune(w, method="uniform", sparsity=0.7)
    for k, v in r.report.items():
        assert abs(v["sparsity"] - 0.7) <= 1.0 / v["size"]
    r = prune(w, method="adaptive", sparsity=0.95)
    assert r.report["conv1"]["kept"] == 432
    assert r.report["fc"]["sparsity"] <= 0.8
    assert abs(r.report["conv2"]["sparsity"] - r.report["conv3"]["sparsity"]) <= 1.0 / 4608
    assert r.n_kept == n_keep_for(0.95, r.n_selected)
    with pytest.raises(UnreachableTargetError, match="largest reachable"):
        prune(w, method="adaptive", sparsity=0.999)


def test_integer_counts_largest_remainder():
    """Largest-remainder rounding respects bounds and sums exactly to the total."""
    c = integer_counts([0.2, 0.2, 5.6], 6, [1, 1, 1], [10, 10, 10])
    assert c.tolist() == [1, 1, 4] and c.sum() == 6


def test_bad_inputs_raise_clear_errors():
    """Sparsity outside [0, 1), unmatched patterns, NaN weights, unknown methods: RatedistErrors naming the argument."""
    w = {"a": np.ones((3, 3)), "b": np.ones(3)}
    for s in (-0.1, 1.0, float("nan")):
        with pytest.raises(InvalidArgumentError, match="`sparsity`"):
            prune(w, sparsity=s)
    with pytest.raises(InvalidArgumentError, match="`layers`"):
        prune(w, sparsity=0.5, layers="conv*")
    with pytest.raises(InvalidArgumentError, match="NaN"):
        prune({"a": np.array([[1.0, np.nan]])}, sparsity=0.5)
    with pytest.raises(InvalidArgumentError, match="`method`"):
        prune(w, method="random", sparsity=0.5)
    with pytest.raises(InvalidArgumentError, match="regular expression"):
        prune(w, sparsity=0.5, layers="re:(")
    r = prune(w, sparsity=0.5, layers=["re:^b$"])
    assert r.report == {"b": {"size": 3, "kept": 2, "sparsity": 1 - 2 / 3}} and r.masks["a"].all()


def test_apply_masks_keeps_keys_shapes_dtypes():
    """apply_masks returns the same keys, shapes and dtypes, zeros exactly where the mask is False."""
    w = {"a": np.arange(6, dtype=np.float16).reshape(2, 3), "b": np.ones(2, dtype=np.int32)}
    r = prune(w, sparsity=0.5, layers="a")
    out = apply_masks(w, r.masks)
    assert {k: (v.shape, v.dtype) for k, v in out.items()} == {k: (v.shape, v.dtype) for k, v in w.items()}
    assert np.array_equal(out["a"] != 0, r.masks["a"] & (w["a"] != 0))


def test_scores_from_torch_like_inputs_and_custom_scores():
    """Pruning by provided scores ranks by them, not by |w|."""
    w = {"a": np.array([[5.0, 1.0], [2.0, 3.0]])}
    r = prune(w, method="global", sparsity=0.5, scores={"a": np.array([[0.0, 9.0], [8.0, 1.0]])})
    assert r.masks["a"].tolist() == [[False, True], [True, False]]


# ----------------------------------------------------------------------------- schedules


@settings(max_examples=50, deadline=None)
@given(s_i=st.floats(0.0, 0.5), s_f=st.floats(0.5, 0.99), t0=st.integers(0, 100), n=st.integers(1, 50),
       dt=st.integers(1, 20))
def test_cubic_schedule_endpoints_monotone_front_loaded(s_i, s_f, t0, n, dt):
    """Zhu & Gupta's cubic schedule (docs/theory.md §7): s(t0) = s_i, s(t0 + n dt) = s_f, monotone, front-loaded
    (the increments shrink)."""
    t = t0 + dt * np.arange(n + 1)
    s = cubic_schedule(t, s_i=s_i, s_f=s_f, t0=t0, n=n, dt=dt)
    assert s[0] == pytest.approx(s_i, abs=EPS64) and s[-1] == s_f
    inc = np.diff(s)
    assert np.all(inc >= -EPS64) and np.all(np.diff(inc) <= EPS64)
    assert cubic_schedule(t0 - 5, s_i=s_i, s_f=s_f, t0=t0, n=n, dt=dt) == pytest.approx(s_i)


def test_geometric_and_one_shot_schedules():
    """The 20 %-per-round levels 1 - 0.8^k include the published 95.60 % (k = 14) and 99.41 % (k = 23)."""
    g = geometric_schedule(23)
    assert round(100 * g[13], 2) == 95.60 and round(100 * g[22], 2) == 99.41
    assert np.all(np.diff(g) > 0) and one_shot(0.5).tolist() == [0.5]
    with pytest.raises(InvalidArgumentError):
        geometric_schedule(3, rate=1.5)


# ----------------------------------------------------------------------------- scores


def test_saliency_scores_hand_checked():
    """magnitude |w|, OBD w²H/2, SNIP |g w|, GraSP -(Hg) w on a hand-computed case."""
    w = {"w": np.array([2.0, -3.0, 0.5])}
    assert magnitude(w)["w"].tolist() == [2.0, 3.0, 0.5]
    assert obd(w, {"w": np.array([1.0, 2.0, 8.0])})["w"].tolist() == [2.0, 9.0, 1.0]
    assert snip(w, {"w": np.array([-1.0, 1.0, 4.0])})["w"].tolist() == [2.0, 3.0, 2.0]
    assert grasp(w, {"w": np.array([1.0, 1.0, -2.0])})["w"].tolist() == [-2.0, 3.0, 1.0]


def test_force_iterates_snip_on_masked_weights():
    """FORCE with a quadratic loss L = ½ Σ (w⊙m - c)²: the gradient at the masked point is w⊙m - c, so
    pruned weights get the score |c w| and can be compared with the kept |(w - c) w|."""
    rng = np.random.default_rng(0)
    w = {"w": rng.normal(size=(8, 8))}
    c = rng.normal(size=(8, 8))
    seen = []

    def grad_fn(masked):
        seen.append(int((masked["w"] != 0).sum()))
        return {"w": masked["w"] - c}

    s = force(w, grad_fn, 0.75, n_steps=4)
    assert seen[0] == 64 and seen == sorted(seen, reverse=True) and seen[-1] < 64
    final = prune(w, sparsity=0.75, scores=s)
    assert final.n_kept == 16


# ----------------------------------------------------------------------------- structured


def test_flops_counter_total_monotone_bilinear():
    """docs/theory.md §8: T(1) = T_total; T is monotone in every gate and bilinear in adjacent gates."""
    net = [ConvLayer(8, 3, 3, 3, 16, 16), ConvLayer(16, 8, 3, 3, 8, 8), ConvLayer(32, 16, 1, 1, 8, 8, groups=2)]
    total = 3 * 8 * 9 * 256 + 8 * 16 * 9 * 64 + 16 * 32 * 64 / 2
    assert conv_flops(net) == total
    rng = np.random.default_rng(0)
    a = [rng.random(l.out) for l in net]
    base = conv_flops(net, a)
    for li in range(3):
        b = [x.copy() for x in a]
        b[li][0] = min(1.0, b[li][0] + 0.3)
        assert conv_flops(net, b) >= base
    # bilinear: T is affine in the gates of one layer when the others are held fixed
    g0, g1 = [x.copy() for x in a], [x.copy() for x in a]
    g0[1][:] = 0.2
    g1[1][:] = 0.8
    mid = [x.copy() for x in a]
    mid[1][:] = 0.5
    assert conv_flops(net, mid) == pytest.approx(0.5 * (conv_flops(net, g0) + conv_flops(net, g1)), rel=EPS64)


@SETTINGS
@given(p=st.floats(0.15, 1.0), seed=st.integers(0, 1000))
def test_channel_pruning_meets_flops_target(p, seed):
    """Greedy channel pruning stops at the first state with T(a) <= p T_total, keeping >= 1 channel per layer."""
    net = [ConvLayer(8, 3, 3, 3, 16, 16), ConvLayer(16, 8, 3, 3, 8, 8), ConvLayer(16, 16, 3, 3, 4, 4)]
    rng = np.random.default_rng(seed)
    ws = [rng.normal(size=(l.out, l.in_, l.kh, l.kw)) for l in net]
    r = prune_channels(net, ws, flops_ratio=p)
    assert r.flops <= r.target_flops + 1e-6 and r.slack >= -1e-6
    assert r.flops == conv_flops(net, [g.astype(float) for g in r.gates])
    assert all(g.sum() >= 1 for g in r.gates)
    assert r.n_removed == sum(int((~g).sum()) for g in r.gates)


# ----------------------------------------------------------------------------- cost


@SETTINGS
@given(shapes=shapes_st, s=st.floats(0.0, 0.99), seed=st.integers(0, 10**6),
       bits=st.one_of(st.none(), st.integers(1, 8)))
def test_cost_stream_decodes_to_the_pruned_model(shapes, s, seed, bits):
    """Real bits (ARCHITECTURE: 'every rate is measured from bytes that decode'): the decoded masks equal the
    masks, n_bits = 8 len(stream), float32 values come back exactly, quantized values within half a step."""
    w = _model(shapes, seed)
    r = prune(w, method="global", sparsity=s)
    c = cost(w, r.masks, value_bits=bits)
    assert c.n_bits == 8 * len(c.stream) and c.n_params == sum(v.size for v in w.values())
    assert c.mask_bits + c.value_bits_total + c.header_bits == c.n_bits
    d = decode_cost(c.stream)
    assert set(d.masks) == set(w)
    pruned = apply_masks(w, r.masks)
    for k in w:
        assert np.array_equal(d.masks[k], r.masks[k])
        assert d.weights[k].dtype == w[k].dtype and d.weights[k].shape == w[k].shape
        if bits is None:
            assert np.array_equal(d.weights[k], pruned[k])
        else:
            kept = pruned[k][r.masks[k]]
            step = 2 * np.abs(kept).max() / 2**bits if kept.size else 0.0
            assert np.all(np.abs(d.weights[k][r.masks[k]] - kept) <= step / 2 + 1e-6)
            assert np.all(d.weights[k][~r.masks[k]] == 0)


def test_cost_rejects_corruption_and_bad_arguments():
    """Corrupted streams raise CorruptStreamError; bad value_bits raise InvalidArgumentError."""
    w = _model([(8, 8)], 0)
    r = prune(w, sparsity=0.8)
    blob = bytearray(cost(w, r.masks, value_bits=4).stream)
    blob[-7] ^= 0x10
    with pytest.raises(CorruptStreamError):
        decode_cost(bytes(blob))
    with pytest.raises(CorruptStreamError):
        decode_cost(b"RDST")
    with pytest.raises(InvalidArgumentError, match="`value_bits`"):
        cost(w, r.masks, value_bits=0)


def test_cost_mask_bits_near_binary_entropy():
    """The mask of a layer at density p costs about N h_b(p) bits (i.i.d. Bernoulli model), plus word padding."""
    from ratedist.coding.entropy import binary_entropy_bits

    w = {"fc": np.random.default_rng(1).normal(size=(200, 200)).astype(np.float32)}
    r = prune(w, sparsity=0.9)
    c = cost(w, r.masks, value_bits=4)
    ideal = 40000 * float(binary_entropy_bits(0.1))
    assert ideal <= c.mask_bits <= ideal * 1.01 + 64


# ----------------------------------------------------------------------------- CLI


def test_cli_prune_writes_pruned_file_and_reports(tmp_path, capsys):
    """`ratedist prune IN -o OUT --json` writes the pruned weights and reports per-layer counts and measured bpp."""
    import json

    from ratedist.cli import main
    from ratedist.io import load_weights, save_weights

    w = _model([(20, 10), (10, 20)], 3)
    src, dst = tmp_path / "in.npz", tmp_path / "out.safetensors"
    save_weights(src, w)
    code = main(["prune", str(src), "-o", str(dst), "--method", "lamp", "--sparsity", "0.8", "--value-bits", "6", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["method"] == "lamp" and set(out["layers"]) == {"layer0.weight", "layer1.weight"}
    assert sum(v["kept"] for v in out["layers"].values()) == 80 and out["bpp"] > 0
    pruned = load_weights(dst)
    assert set(pruned) == set(w)
    assert sum(int((pruned[k] != 0).sum()) for k in out["layers"]) == 80
    code = main(["prune", str(src), "-o", str(tmp_path / "x.npz"), "--sparsity", "1.5"])
    assert code == 2 and "`--sparsity`" in capsys.readouterr().err
    assert not (tmp_path / "x.npz").exists()


def test_benchmark_smoke():
    """The benchmark runs in quick mode and its fast paths agree with the full-sort references."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_pruning.py"
    spec = importlib.util.spec_from_file_location("bench_pruning", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(quick=True)
    assert len(rows) == 2 and all(r["passed"] for r in rows)


@pytest.mark.parametrize("method", ["global", "uniform", "lamp"])
def test_extreme_int64_weights_rank_by_true_magnitude(method):
    """Integer weights at the ends of int64 (|−2⁶³| does not fit in int64) rank by their true magnitude:
    the four largest magnitudes are kept, the exact count is met, and LAMP's exactness check holds."""
    a = np.array([2**62, -2**62, 3, 2**63 - 1, -2**63, 1, 0, 5], dtype=np.int64)
    w = {"a": a, "b": np.arange(-50, 50, dtype=np.int64).reshape(10, 10)}
    r = prune(w, method=method, sparsity=0.5, layers=["a", "b"])
    assert r.n_kept == 54
    if method != "global":
        assert r.masks["a"].tolist() == [True, True, False, True, True, False, False, False]
    else:
        assert r.masks["a"][[0, 1, 3, 4]].all()
