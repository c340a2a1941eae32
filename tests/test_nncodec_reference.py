"""NNCodec as a reference (benchmarks/nncodec/): the distortion measure, the recorded points, a live run.

The live test runs only where NNCodec's private environment (benchmarks/nncodec/setup_env.sh)
exists; the others need nothing beyond ratedist's environment.
"""

from __future__ import annotations

import importlib.util
import math

import numpy as np
import pytest

from ratedist.data import cnn_accuracy, default_model, digits_cnn, digits_split, mlp_accuracy
from ratedist.errors import BackendUnavailableError, InvalidArgumentError
from ratedist.scripts import repo_root

_spec = importlib.util.spec_from_file_location("nncodec_reference", repo_root() / "benchmarks" / "nncodec" / "reference.py")
ref = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(ref)

# Sums of ~1e5 float64 terms against a per-element loop: relative rounding ≲ 1e5 · 1.1e-16.
SUM_REL = 1e-10
# The recorded l1/mse were computed by the same code from the same float32 decoded weights, so a
# live rerun reproduces them to the last rounding of the sums.
REPRO_REL = 1e-12
# qp_density 5: neighbouring NNCodec steps (1 + j/32)·2^e differ by a factor ≤ 33/32 (j = 0), so
# the nearest in log-ratio is within a factor √(33/32), i.e. 1.55 % (+ rounding slack).
STEP_RATIO_TOL = math.sqrt(33 / 32) - 1 + 1e-12


def _models():
    _, Xte, _, yte = digits_split()
    return {
        "digits_mlp": (default_model(), lambda w: mlp_accuracy(w, Xte, yte)),
        "digits_cnn": (digits_cnn(), lambda w: cnn_accuracy(w, Xte, yte)),
    }


def _slow_distortion(w, wh):
    tot1 = tot2 = 0.0
    n = 0
    for k in w:
        a = np.asarray(w[k], np.float64).ravel()
        b = np.asarray(wh[k], np.float64).ravel()
        nrm = math.sqrt(sum(x * x for x in a))
        for x, y in zip(a, b):
            tot1 += abs(x / nrm - y / nrm)
            tot2 += (x / nrm - y / nrm) ** 2
            n += 1
    return tot1 / n, tot2 / n


def test_normalized_distortion_matches_definition_and_is_scale_free():
    """d(u,û) = (1/n) Σ_t Σ_i |u_ti − û_ti| with u_t = w_t/‖w_t‖₂, û_t = ŵ_t/‖w_t‖₂ (the ORIGINAL norm),
    checked against a per-element loop; scaling a tensor and its reconstruction by the same c > 0
    leaves u and û, hence both distortions, unchanged."""
    rng = np.random.default_rng(3)
    w = {"a": rng.standard_normal((7, 5)), "b": rng.laplace(size=11) * 40.0}
    wh = {k: v + 0.1 * rng.standard_normal(v.shape) for k, v in w.items()}
    got = ref.normalized_distortion(w, wh)
    want = _slow_distortion(w, wh)
    np.testing.assert_allclose(got, want, rtol=SUM_REL)
    scaled = ref.normalized_distortion({**w, "b": w["b"] * 1e-3}, {**wh, "b": wh["b"] * 1e-3})
    np.testing.assert_allclose(scaled, got, rtol=SUM_REL)
    with pytest.raises(InvalidArgumentError, match="'a'"):
        ref.normalized_distortion(w, {**wh, "a": wh["a"][:3]})


def test_missing_environment_raises_a_clear_error(monkeypatch, tmp_path):
    """Without NNCodec's venv, run_reference raises BackendUnavailableError pointing at setup_env.sh and
    recorded_reference; an all-zero tensor (no normalized domain) is refused before anything runs."""
    monkeypatch.setattr(ref, "HERE", tmp_path)
    with pytest.raises(BackendUnavailableError, match="setup_env.sh.*recorded_reference"):
        ref.run_reference({"w": np.ones((2, 2))}, [-200])
    with pytest.raises(InvalidArgumentError, match="all zeros"):
        ref.run_reference({"w": np.zeros((2, 2))}, [-200])


@pytest.mark.parametrize("name", ["digits_mlp", "digits_cnn"])
def test_recorded_points_are_consistent(name):
    """recorded.json describes the shipped model as it is now (parameter count, baseline accuracy) and
    is a rate–distortion curve: bpp = 8·bytes/n, spanning ≤ 0.6 … ≥ 4.2 bits per parameter; a finer
    step (smaller QP) costs more bytes and gives a smaller distortion (l1 and mse); the decoder
    reproduced the encoder every time and every tensor's step is within 1.6 % of Δ_u·‖w_t‖₂."""
    w, evaluate = _models()[name]
    meta = ref.recorded_meta()
    assert meta["nncodec_version"] and meta["date"] and meta["options"]["use_dq"] is True
    rec = ref._recorded()["models"][name]
    assert rec["n_params"] == sum(a.size for a in w.values())
    assert rec["baseline_accuracy"] == evaluate(w)
    pts = ref.recorded_reference(name)
    assert 10 <= len(pts) <= 16
    for p in pts:
        assert p["bpp"] == 8 * p["bytes"] / p["n_params"]
        assert p["decoded_matches_encoder"] and p["max_step_ratio_error"] <= STEP_RATIO_TOL
        assert set(p["tensor_qps"]) == set(w)
        assert 0.0 <= p["accuracy"] <= 1.0
    pts = sorted(pts, key=lambda p: -p["qp"])
    assert pts[0]["bpp"] <= 0.6 and pts[-1]["bpp"] >= 4.2
    for a, b in zip(pts, pts[1:]):
        assert b["bytes"] > a["bytes"] and b["l1"] < a["l1"] and b["mse"] < a["mse"]
    with pytest.raises(InvalidArgumentError, match="model_name"):
        ref.recorded_reference("resnet")


@pytest.mark.skipif(not (ref.HERE / ".venv" / "bin" / "python").exists(), reason="NNCodec's environment is not built")
def test_live_run_reproduces_recorded_points(tmp_path):
    """A fresh NNCodec run on the embedded MLP at two recorded QPs writes bitstreams of exactly the
    recorded sizes and decodes to the recorded distortions and accuracies (NNCodec is deterministic);
    the decoded weights of each tensor lie on its grid Δ(q_t)·ℤ, and the bitstream files are the
    byte counts reported."""
    w, evaluate = _models()["digits_mlp"]
    recorded = ref.recorded_reference("digits_mlp")
    picks = [recorded[1], recorded[len(recorded) // 2]]
    pts = ref.run_reference(w, [p["qp"] for p in picks], evaluate, workdir=tmp_path)
    for got, want in zip(pts, picks):
        assert got["bytes"] == want["bytes"] == (tmp_path / f"qp_{got['qp']}.nnc").stat().st_size
        assert got["tensor_qps"] == want["tensor_qps"]
        assert got["l1"] == pytest.approx(want["l1"], rel=REPRO_REL)
        assert got["mse"] == pytest.approx(want["mse"], rel=REPRO_REL)
        assert got["accuracy"] == want["accuracy"]
        for k, q in got["tensor_qps"].items():
            step = (32 + (q & 31)) * 2.0 ** ((q >> 5) - 5)
            idx = got["decoded"][k].astype(np.float64) / step
            np.testing.assert_allclose(idx, np.round(idx), atol=1e-3)
