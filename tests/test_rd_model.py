"""The rate–distortion bound of a real model (ratedist.rd.model): kernels, certificates, allocation, input checks."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError, InvalidShapeError, RatedistError
from ratedist.kernels import _rd_model_cpu as K
from ratedist.rd import ModelRD, model_bound_at, model_rate_distortion, pooled_rate_distortion
from ratedist.rd import model as M

# Named tolerances
ULP = 1e-12           # relative rounding of the O(m) recursions against dense sums (a few ulps per step)
LOG_ULP = 1e-10       # the log-domain twin against a dense log-sum-exp
TOL_BITS = 1e-3       # the certified gap every L1 test curve is asked for (the default)
ROUND = 1e-12         # rounding slack on identities between computed floats
LAPLACE_REL = 0.03    # "within a few %": see test_laplace_closed_form
LN2 = math.log(2.0)


def dense_kernel(y, s):
    return np.exp(s * np.abs(y[:, None] - y[None, :]))


def gaps(y):
    g = np.zeros(y.size)
    g[1:] = np.diff(y)
    return g


def rfactors(y, s):
    r = np.exp(s * gaps(y))
    r[0] = 0.0
    return r


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(20240601)


@pytest.fixture(scope="module")
def laplace_curve():
    """One Laplace tensor, normalize='l1', default slopes (shared by several tests)."""
    w = np.random.default_rng(1).laplace(0.0, 0.3, 20_000)
    return w, model_rate_distortion({"w": w}, normalize="l1")


@pytest.fixture(scope="module")
def mixed_model():
    """A small model of three non-Laplacian tensors of different sizes and scales."""
    g = np.random.default_rng(7)
    return {
        "t3": g.standard_t(3, 6000) * 0.02,
        "mix": np.where(g.random(3000) < 0.8, g.normal(0, 1, 3000), g.normal(0, 4, 3000)) * 0.05,
        "ints": np.arange(10, dtype=np.int64),  # not a float tensor: skipped
        "small": g.normal(0, 1, 500).astype(np.float32),
    }


@pytest.fixture(scope="module")
def mixed_curve(mixed_model):
    return model_rate_distortion(mixed_model, n_slopes=10)


# --------------------------------------------------------------------------------------------
# kernels against dense NumPy references


def test_sym_scan_matches_dense(rng):
    """sym_scan / sym_scan_w: (A v)_i = Σ_j e^{s|y_i − y_j|} v_j by two recursions equals the dense product."""
    y = np.sort(rng.normal(size=300))
    s = -3.7
    v = rng.random(300)
    p = rng.random(300)
    p[::5] = 0.0
    ref = dense_kernel(y, s) @ v
    out, work = np.empty(300), np.empty(300)
    mn = K.sym_scan(v, rfactors(y, s), out, work)
    np.testing.assert_allclose(out, ref, rtol=ULP, atol=0)
    assert mn == pytest.approx(ref.min(), rel=ULP)
    z, w = np.empty(300), np.empty(300)
    zmin, wmax = K.sym_scan_w(v, rfactors(y, s), p, z, w, work)
    np.testing.assert_allclose(z, ref, rtol=ULP, atol=0)
    np.testing.assert_allclose(w, np.where(p > 0, p / ref, 0.0), rtol=ULP, atol=0)
    assert wmax == pytest.approx((p / ref).max(), rel=ULP)


def test_sym_scan_d_matches_dense(rng):
    """sym_scan_d: the distortion-weighted sums Σ_j |y_i − y_j| e^{s|y_i − y_j|} v_j equal the dense ones."""
    y = np.sort(rng.laplace(size=250))
    s = -1.3
    v = rng.random(250)
    d = np.abs(y[:, None] - y[None, :])
    oz, od = np.empty(250), np.empty(250)
    K.sym_scan_d(v, rfactors(y, s), gaps(y), oz, od, np.empty(250), np.empty(250))
    np.testing.assert_allclose(oz, dense_kernel(y, s) @ v, rtol=ULP, atol=0)
    np.testing.assert_allclose(od, (dense_kernel(y, s) * d) @ v, rtol=1e-11, atol=0)


def test_sym_log_scan_matches_logsumexp(rng):
    """sym_log_scan: the log-domain twin equals a dense log-sum-exp, also for log-weights spanning 1e4 nats."""
    y = np.sort(rng.normal(size=200))
    s = -50.0
    logv = rng.normal(size=200) * 2000.0
    logv[7] = -np.inf
    logr = s * gaps(y)
    logr[0] = -np.inf
    out = np.empty(200)
    K.sym_log_scan(logv, logr, out, np.empty(200), np.empty(200))
    a = logv[None, :] + s * np.abs(y[:, None] - y[None, :])
    mx = a.max(axis=1)
    ref = np.log(np.exp(a - mx[:, None]).sum(axis=1)) + mx
    np.testing.assert_allclose(out, ref, rtol=LOG_ULP, atol=LOG_ULP)


def test_cross_scan_matches_dense_with_ties(rng):
    """cross_scan: sums from sorted sources to sorted targets, a source at a target's position counted once."""
    src = np.sort(rng.normal(size=120))
    tgt = np.sort(np.concatenate([rng.normal(size=90), src[::4]]))  # every 4th source is also a target
    v = rng.random(120)
    s = -2.2
    d = np.abs(tgt[:, None] - src[None, :])
    oz, od = np.empty(tgt.size), np.empty(tgt.size)
    K.cross_scan(src, v, tgt, s, oz, od, True)
    np.testing.assert_allclose(oz, np.exp(s * d) @ v, rtol=ULP, atol=0)
    np.testing.assert_allclose(od, (np.exp(s * d) * d) @ v, rtol=1e-11, atol=0)


def test_fused_eval_matches_dense_ba(rng):
    """One BA-map evaluation of the points operator equals the textbook dense computation (Z, c, L, gap, next)."""
    y = np.sort(rng.normal(size=150))
    s = -4.0
    p = rng.random(150)
    p /= p.sum()
    q = rng.random(150)
    q /= q.sum()
    op = M._PointsL1(y, s)
    e = op.fused_eval(np.log(q), p)
    A = dense_kernel(y, s)
    Z = A @ q
    c = A.T @ (p / Z)
    np.testing.assert_allclose(e.log_z, np.log(Z), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(e.log_c, np.log(c), rtol=1e-12, atol=1e-12)
    assert e.L == pytest.approx(p @ np.log(Z), rel=1e-12)
    assert e.kl == pytest.approx((q * c) @ np.log(c), rel=1e-10, abs=1e-14)
    nxt = np.exp(e.next)
    np.testing.assert_allclose(nxt / nxt.sum(), q * c / (q * c).sum(), rtol=1e-10)
    d = np.abs(y[:, None] - y[None, :])
    D = (p / Z) @ ((A * d) @ q)
    assert op.mean_distortion(np.log(q), e.log_z, p) == pytest.approx(D, rel=1e-11)


# --------------------------------------------------------------------------------------------
# the exact L1 certificate


def test_sup_of_c_is_attained_at_the_atoms(rng):
    """c(y) = Σ w_i e^{s|x_i − y|} is convex between atoms and decreasing beyond them, so its sup over the
    line is its max over the atoms (the step that makes the L1 certificate exact): checked on a fine grid."""
    x = np.sort(rng.normal(size=40))
    w = rng.random(40)
    s = -6.0
    y = np.linspace(x[0] - 1, x[-1] + 1, 200_001)
    out = np.empty(y.size)
    K.cross_scan(x, w, y, s, out, out, False)
    cx = np.exp(s * np.abs(x[:, None] - x[None, :])) @ w
    assert out.max() <= cx.max() * (1 + ULP)


def test_exact_evaluation_matches_dense_mutual_information(rng):
    """_exact_l1: the achievable point is I(p; Q) and E|X − Y| of Q(y|x) ∝ q_y e^{s|x−y|} on the atoms, and the
    intercept is Blahut's dual bound −Σ p ln Z − ln max c (all computed densely here)."""
    x = np.sort(rng.normal(size=80))
    p = rng.random(80)
    p /= p.sum()
    y = np.sort(rng.normal(size=30))
    q = rng.random(30)
    q /= q.sum()
    s = -3.0
    d, rate, b = M._exact_l1(x, p, y, np.log(q), s)
    dist = np.abs(x[:, None] - y[None, :])
    A = np.exp(s * dist)
    Z = A @ q
    Q = A * q[None, :] / Z[:, None]
    out = p @ Q
    mi = np.sum(p[:, None] * Q * np.log(Q / out[None, :]))
    assert d == pytest.approx(np.sum(p[:, None] * Q * dist), rel=1e-11)
    assert rate == pytest.approx(mi, rel=1e-10, abs=1e-13)
    cx = np.exp(s * np.abs(x[:, None] - x[None, :])) @ (p / Z)
    assert b == pytest.approx(-p @ np.log(Z) - np.log(cx.max()), rel=1e-11, abs=1e-12)


def test_merged_and_unmerged_certificates_agree(rng):
    """Merging atoms only changes which law is certified: the brackets from merged solves (with the exact
    evaluation, polished where needed) and from the unmerged exact problem bound the same R(D), so each
    curve's lower bound stays below the other's upper bound at every distortion."""
    w = {"w": rng.laplace(size=6000)}
    a = model_rate_distortion(w, n_slopes=5, grid_fraction=0.01)
    b = model_rate_distortion(w, slopes=a.slopes, grid_fraction=1e-9)  # cells too small to merge
    assert np.all(b.support == 6000) and a.support[0, 0] < 6000
    d = np.concatenate([a.distortion, b.distortion])
    lo_a, hi_a = model_bound_at(a, d)
    lo_b, hi_b = model_bound_at(b, d)
    assert np.all(lo_a <= hi_b + ROUND) and np.all(lo_b <= hi_a + ROUND)


# --------------------------------------------------------------------------------------------
# curve properties


def test_laplace_closed_form(laplace_curve):
    """On i.i.d. Laplace(b) samples with normalize='l1', u = w/Σ|w| has mean|u| = 1/n, i.e. u ~ Laplace(λ = n)
    (the L1 scaling), whose R(D) = log2(1/(λD)) for D ≤ 1/λ with D = 1/|s| nats at slope s.  The empirical
    law of n = 20,000 samples follows it within a few % (LAPLACE_REL = 3 %) from 1 to 8 bits: λ̂ is off by
    ~1/√n (≈ 0.01 bit) and the discreteness of the law shows only as R approaches log2(n) ≈ 14.3 bits."""
    w, curve = laplace_curve
    n = w.size
    ref = np.log2(1.0 / (n * curve.distortion))
    band = (curve.rate >= 1.0) & (curve.rate <= 8.5)
    assert band.sum() >= 10
    rel = np.abs(curve.rate[band] - ref[band]) / ref[band]
    assert rel.max() <= LAPLACE_REL, rel
    # D·|s| = 1 (in nats) for the Laplace test channel
    ds = curve.distortion * np.abs(curve.slopes) * LN2
    assert np.all(np.abs(ds[band] - 1.0) <= 2 * LAPLACE_REL)
    # the default slopes span about 0.05 … 8 bits per parameter
    assert curve.rate[0] < 0.2 and 7.0 < curve.rate[-1] < 9.0


@pytest.mark.parametrize("name", ["laplace", "mixed"])
def test_certificates_bracket(name, laplace_curve, mixed_curve):
    """rate_lower ≤ rate at every slope and the certified L1 gap is at most tol (bits per parameter)."""
    curve = laplace_curve[1] if name == "laplace" else mixed_curve
    assert np.all(curve.rate_lower <= curve.rate + ROUND)
    assert np.all(curve.gap <= TOL_BITS + ROUND), curve.gap
    assert curve.converged.all()


def test_curve_is_nonincreasing_and_convex(mixed_curve):
    """R(D) is non-increasing and convex: along the slopes (flattest first) D decreases and R increases, every
    supporting line lies below every achievable point (R_j ≥ b_k + s_k D_j, exact if the certificates are),
    and chord slopes increase with D up to the certified gaps."""
    c = mixed_curve
    assert np.all(np.diff(c.distortion) < 0) and np.all(np.diff(c.rate) > 0)
    lines = c.intercept[:, None] + c.slopes[:, None] * c.distortion[None, :]
    assert np.all(lines <= c.rate[None, :] + ROUND)
    d, r = c.distortion[::-1], c.rate[::-1]  # increasing D
    chord = np.diff(r) / np.diff(d)
    slack = 2 * c.gap.max() / np.diff(d)
    assert np.all(np.diff(chord) >= -(slack[1:] + slack[:-1]))


def _quantizer(weights, normalize, metric, step):
    """A real coder: per tensor a uniform scalar quantizer (step·round(u/step)) with an entropy code matched to
    its empirical index law: rate = empirical entropy of the indices, distortion measured on u."""
    tensors = M._prepare(weights, normalize, metric)
    n = sum(t.n for t in tensors)
    rate = dist = 0.0
    for t in tensors:
        idx = np.rint(t.x / step)
        err = np.abs(t.x - step * idx)
        _, inv = np.unique(idx, return_inverse=True)
        pj = np.bincount(inv, weights=t.p)
        pj = pj[pj > 0]
        rate += t.n / n * float(-(pj * np.log2(pj)).sum())
        dist += t.n / n * float(t.p @ (err if metric == "l1" else err ** 2))
    return rate, dist


def test_lower_bound_below_a_real_coder(mixed_model, mixed_curve):
    """A coder below the certified lower bound would be an error: the entropy-coded uniform scalar quantizer of
    each tensor (an achievable scheme for the i.i.d. empirical source) sits above rate_lower at its distortion,
    for steps from coarse to fine; it must also sit above the whole time-sharing curve's lower bound."""
    c = mixed_curve
    scale = float(np.median(c.distortion))
    for step in scale * np.geomspace(0.05, 50, 9):
        rate, dist = _quantizer(mixed_model, "l2", "l1", step)
        lo, hi = model_bound_at(c, dist)
        assert lo <= rate + ROUND, (step, lo, rate)
        if np.isfinite(hi) and dist > c.distortion.min():
            assert lo <= hi


def test_common_slope_beats_equal_distortion(rng):
    """Allocating distortion at a common slope is optimal (Lagrange condition of min Σ w_t R_t(D_t) s.t.
    Σ w_t D_t ≤ D): its certified lower bound never exceeds the certified rate of giving every tensor the same
    distortion, and with tensors of very different scales the common slope is certifiably better."""
    w = {"big": rng.laplace(0, 1.0, 4000), "tiny": rng.laplace(0, 0.02, 4000)}
    model = model_rate_distortion(w, normalize=None, n_slopes=10)
    per = {k: model_rate_distortion({k: v}, normalize=None, n_slopes=24) for k, v in w.items()}
    better = 0
    for D in np.geomspace(model.distortion.min() * 1.5, model.zero_rate_distortion * 0.9, 12):
        lo_m, hi_m = model_bound_at(model, D)
        eq_lo = sum(0.5 * model_bound_at(per[k], min(D, per[k].zero_rate_distortion))[0] for k in w)
        eq_hi = sum(0.5 * model_bound_at(per[k], min(D, per[k].zero_rate_distortion))[1] for k in w)
        assert lo_m <= eq_hi + ROUND
        if hi_m < eq_lo - 0.05:
            better += 1
    assert better >= 3


def test_zero_rate_and_bound_at(mixed_curve):
    """model_bound_at: 0 for D ≥ D_max (reproduce the median), lower ≤ upper, both non-increasing in D,
    inf upper below the smallest certified distortion; at the curve's own points the upper bound is the rate."""
    c = mixed_curve
    assert model_bound_at(c, c.zero_rate_distortion) == (0.0, 0.0)
    assert model_bound_at(c, 10 * c.zero_rate_distortion) == (0.0, 0.0)
    d = np.geomspace(c.distortion.min(), c.zero_rate_distortion, 50)
    lo, hi = model_bound_at(c, d)
    assert lo.shape == (50,) and np.all(lo <= hi) and np.all(np.diff(lo) <= ROUND) and np.all(np.diff(hi) <= ROUND)
    lo0, hi0 = model_bound_at(c, c.distortion.min() / 2)
    assert hi0 == math.inf and lo0 > c.rate[-1]
    _, hik = model_bound_at(c, c.distortion)
    assert np.all(hik <= c.rate + ROUND)
    assert 0 < c.zero_rate_distortion and c.distortion[0] < c.zero_rate_distortion


def test_result_fields(mixed_curve):
    """ModelRD carries units, metric, normalize, the float tensors only (names, sizes) and a `what` string;
    to_dict is plain Python; the arrays are read-only."""
    c = mixed_curve
    assert isinstance(c, ModelRD)
    assert c.tensor_names == ("t3", "mix", "small") and c.tensor_sizes == (6000, 3000, 500)
    assert c.units == "bits" and c.metric == "l1" and c.normalize == "l2" and "empirical law" in c.what
    assert c.tensor_rate.shape == (3, 10) and c.tensor_distortion.shape == (3, 10)
    w = np.array(c.tensor_sizes) / sum(c.tensor_sizes)
    np.testing.assert_allclose(w @ c.tensor_rate, c.rate, rtol=1e-12)
    np.testing.assert_allclose(w @ c.tensor_distortion, c.distortion, rtol=1e-12)
    d = c.to_dict()
    import json

    json.dumps(d)
    assert d["tensors"][1]["name"] == "mix" and len(d["rate"]) == 10
    with pytest.raises(ValueError):
        c.rate[0] = 1.0


def test_units_nats(mixed_model, mixed_curve):
    """units='nats' gives the same curve scaled by ln 2 (rates, slopes, intercepts)."""
    c = model_rate_distortion(mixed_model, slopes=mixed_curve.slopes[:3] * LN2, units="nats", tol=TOL_BITS * LN2)
    np.testing.assert_allclose(c.rate, mixed_curve.rate[:3] * LN2, rtol=2e-3)
    np.testing.assert_allclose(c.slopes, mixed_curve.slopes[:3] * LN2, rtol=1e-12)


def test_deterministic_across_threads(mixed_model):
    """Same input ⇒ same numbers with 1 or 2 workers and any numba thread count (tensors and slopes are
    independent tasks, each computed sequentially)."""
    a = model_rate_distortion(mixed_model, n_slopes=4, workers=1)
    old = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        b = model_rate_distortion(mixed_model, n_slopes=4)
    finally:
        numba.set_num_threads(old)
    c = model_rate_distortion(mixed_model, n_slopes=4, workers=2)
    for other in (b, c):
        for f in ("rate", "rate_lower", "distortion", "intercept", "tensor_rate"):
            assert np.array_equal(getattr(a, f), getattr(other, f))


def test_secondary_references(rng):
    """Labelled references: the Laplacian-fit line is log2(1/(λD)) with λ = 1/mean|u| pooled; the pooled curve
    of a single tensor is that tensor's curve, and for a model it is not below the per-tensor bound by more
    than the gaps when all tensors share one law."""
    w = rng.laplace(size=3000)
    c = model_rate_distortion({"w": w}, n_slopes=3)
    u = w / np.linalg.norm(w)
    lam = 1 / np.mean(np.abs(u))
    assert c.laplace_lam == pytest.approx(lam, rel=1e-12)
    assert c.laplace_reference(0.1 / lam) == pytest.approx(math.log2(10), rel=1e-12)
    assert c.laplace_reference(2 / lam) == 0.0
    p = pooled_rate_distortion({"w": w}, n_slopes=3)
    np.testing.assert_allclose(p.rate, c.rate, rtol=1e-12)
    assert "pooled" in p.what and p.normalize == "l2"


def test_constant_and_zero_tensors():
    """A constant tensor costs nothing (R = D = 0 at every slope); an all-zero tensor stays zero under
    normalization."""
    c = model_rate_distortion({"z": np.zeros(50), "c": np.full(30, 2.0)}, n_slopes=2)
    assert np.all(c.rate == 0) and np.all(c.distortion == 0) and c.zero_rate_distortion == 0


def test_mse_certificates(rng):
    """MSE (uniform grid with the Minkowski slack): rate_lower ≤ rate, the achievable points lie above every
    supporting curve, a Gaussian sample follows ½log2(σ²/D) within a few % at moderate rates, and the
    entropy-coded scalar quantizer sits above the certified lower bound."""
    g = rng.normal(0, 1, 3000)
    c = model_rate_distortion({"g": g}, metric="mse", normalize=None, slopes=[-0.8, -2.0, -8.0], grid_fraction=0.05)
    assert np.all(c.rate_lower <= c.rate + ROUND) and np.all(c.shift > 0)
    lines = c.intercept[:, None] + c.slopes[:, None] * (np.sqrt(c.distortion)[None, :] + c.shift[:, None]) ** 2
    assert np.all(lines <= c.rate[None, :] + ROUND)
    ref = 0.5 * np.log2(np.var(g) / c.distortion)
    assert np.all(np.abs(c.rate[1:] - ref[1:]) <= LAPLACE_REL * ref[1:] + 0.02)
    for step in (0.1, 0.3, 1.0):
        rate, dist = _quantizer({"g": g}, None, "mse", step)
        assert model_bound_at(c, dist)[0] <= rate + ROUND


# --------------------------------------------------------------------------------------------
# bad input


@pytest.mark.parametrize("weights, kwargs, name", [
    ({"w": np.array([1.0, np.nan])}, {}, "weights"),
    ({"w": np.array([1.0, np.inf])}, {}, "weights"),
    ({}, {}, "weights"),
    ({"w": np.zeros(0)}, {}, "weights"),
    ({"w": np.arange(5)}, {}, "weights"),          # no float tensor
    ([1.0, 2.0], {}, "weights"),
    ({"w": np.ones(4)}, {"metric": "l2"}, "metric"),
    ({"w": np.ones(4)}, {"normalize": "max"}, "normalize"),
    ({"w": np.ones(4)}, {"slopes": [-1.0, 0.0]}, "slopes"),
    ({"w": np.ones(4)}, {"slopes": [2.0]}, "slopes"),
    ({"w": np.ones(4)}, {"slopes": [-1.0, np.nan]}, "slopes"),
    ({"w": np.ones(4)}, {"slopes": []}, "slopes"),
    ({"w": np.ones(4)}, {"tol": 0.0}, "tol"),
    ({"w": np.ones(4)}, {"units": "bytes"}, "units"),
    ({"w": np.ones(4)}, {"n_slopes": 0}, "n_slopes"),
    ({"w": np.ones(4)}, {"grid_fraction": 1.5}, "grid_fraction"),
    ({"w": np.ones(4)}, {"workers": 0}, "workers"),
])
def test_bad_input(weights, kwargs, name):
    """Bad input raises InvalidArgumentError naming the argument in backticks."""
    with pytest.raises(InvalidArgumentError, match=f"`{name}`"):
        model_rate_distortion(weights, **kwargs)


def test_bad_input_bound_at(mixed_curve):
    """model_bound_at rejects a non-curve, negative or NaN distortion, naming the argument."""
    with pytest.raises(InvalidArgumentError, match="`curve`"):
        model_bound_at({"rate": 1}, 0.1)
    for bad in (-1.0, float("nan"), [0.1, float("inf")]):
        with pytest.raises(InvalidArgumentError, match="`distortion`"):
            model_bound_at(mixed_curve, bad)
    with pytest.raises(InvalidShapeError, match="`slopes`"):
        model_rate_distortion({"w": np.ones(4)}, slopes=[[-1.0]])
    assert issubclass(InvalidArgumentError, RatedistError)
