"""The frontier (ratedist.frontier): every point from decoded bytes, never below the model's bound."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ratedist.frontier import frontier, model_distortion
from ratedist.rd.model import model_bound_at

RNG = np.random.default_rng(3)
W = {"fc1.weight": RNG.laplace(size=(64, 48)).astype(np.float32) * 0.05,
     "fc2.weight": RNG.standard_t(4, size=(10, 64)).astype(np.float32) * 0.1}


@pytest.fixture(scope="module")
def result():
    calls = []

    def evaluate(dec):
        calls.append(1)
        return float(-model_distortion(W, dec))

    res = frontier(W, methods=("surp", "magnitude", "scalar", "tcq"), rates=(1.0, 2.0),
                   sparsities=(0.9, 0.7), value_bits=(4,), evaluate=evaluate)
    return res, calls


def test_points_come_from_decoded_bytes(result):
    """Every point's distortion is recomputed from the decoded weights and its accuracy hook was called on
    them (one call per point plus the original); every coder produced points."""
    res, calls = result
    assert {p.method for p in res.points} == {"surp", "magnitude", "scalar", "tcq"}, res.errors
    assert len(calls) == len(res.points) + 1
    for p in res.points:
        assert p.accuracy == pytest.approx(-p.distortion)
        assert p.n_bits > 0 and p.bpp == pytest.approx(p.n_bits / res.n_params)


def test_no_point_below_the_bound(result):
    """No coder reaches a rate below the bound's certified lower value at its distortion: the bound
    holds for any coder of i.i.d. weights, and these coders' contexts gain far less than the margin
    a counting error would show.  (A point below it would mean the bits were miscounted.)"""
    res, _ = result
    for p in res.points:
        lo, hi = model_bound_at(res.bound, p.distortion)
        assert lo <= hi + 1e-12
        assert p.bpp >= 0.9 * lo, (p.method, p.bpp, lo)


def test_cli_writes_json_and_figure(tmp_path):
    """`ratedist frontier` writes frontier.json (whose points match the printed JSON) and the figure."""
    import contextlib
    import io

    from ratedist.cli import main
    from ratedist.io import save_weights

    src = tmp_path / "w.npz"
    save_weights(src, W)
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = main(["frontier", str(src), "--out", str(tmp_path / "f"), "--methods", "scalar,lamp",
                     "--rates", "1,2", "--json"])
    assert code == 0
    out = json.loads(buf.getvalue())
    on_disk = json.loads((tmp_path / "f" / "frontier.json").read_text())
    assert [p["bpp"] for p in out["points"]] == [p["bpp"] for p in on_disk["points"]]
    assert (tmp_path / "f" / "frontier.png").stat().st_size > 1000
    assert main(["frontier", str(src), "--out", str(tmp_path / "g"), "--methods", "nope"]) == 2
