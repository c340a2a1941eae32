"""`ratedist prune -o FILE.rdst` writes the stream whose rate it reports, and `ratedist decode` reads
back every weights stream (pruning, SuRP, quantizers) to the same weights as the format's own decoder."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ratedist.cli import main
from ratedist.io import load_weights, save_weights


@pytest.fixture()
def model(tmp_path):
    rng = np.random.default_rng(0)
    w = {"fc1.weight": rng.laplace(size=(64, 32)).astype(np.float32),
         "fc1.bias": rng.normal(size=64).astype(np.float32),
         "fc2.weight": rng.laplace(size=(10, 64)).astype(np.float32)}
    path = tmp_path / "m.safetensors"
    save_weights(path, w)
    return path, w


def _json(capsys):
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize("value_bits", [None, 4])
def test_prune_stream_is_the_reported_rate_and_decodes(model, tmp_path, capsys, value_bits):
    """The .rdst file holds exactly the reported bits (n_bits = 8 × its size); `decode` turns it into the
    weights that `prune -o FILE.safetensors` writes, bit for bit, with the pruned positions zero."""
    path, w = model
    extra = [] if value_bits is None else ["--value-bits", str(value_bits)]
    assert main(["prune", str(path), "-o", str(tmp_path / "p.rdst"), "--sparsity", "0.8", "--json", *extra]) == 0
    rep = _json(capsys)
    assert rep["output_is_stream"] and rep["n_bits"] == 8 * (tmp_path / "p.rdst").stat().st_size
    assert main(["prune", str(path), "-o", str(tmp_path / "p.safetensors"), "--sparsity", "0.8", "--json", *extra]) == 0
    assert _json(capsys)["n_bits"] == rep["n_bits"]
    assert main(["decode", str(tmp_path / "p.rdst"), "-o", str(tmp_path / "d.npz"), "--json"]) == 0
    out = _json(capsys)
    assert out["format"] == "ratedist.pruning.cost" and out["n_params"] == sum(v.size for v in w.values())
    a, b = load_weights(tmp_path / "d.npz"), load_weights(tmp_path / "p.safetensors")
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)
    kept = sum(int((a[k] != 0).sum()) for k in ("fc1.weight", "fc2.weight"))
    assert kept <= round(0.2 * (64 * 32 + 10 * 64)) + 1
    if value_bits is None:  # float32 values: the kept weights are the originals
        m = a["fc1.weight"] != 0
        assert np.array_equal(a["fc1.weight"][m], w["fc1.weight"][m])


@pytest.mark.parametrize("verb", [["surp", "encode", "--sparsity", "0.9", "--sparsity", "0.5"], ["quant", "encode", "--rate", "2"]])
def test_decode_reads_surp_and_quant_streams(model, tmp_path, capsys, verb):
    """`ratedist decode` gives the same weights as `surp decode` / `quant decode` on their streams."""
    path, _ = model
    stream = tmp_path / "s.rdst"
    argv = [verb[0], verb[1], str(path), "-o", str(stream), *verb[2:]]
    assert main(argv) == 0, capsys.readouterr().err
    capsys.readouterr()
    assert main(["decode", str(stream), "-o", str(tmp_path / "a.npz")]) == 0
    assert main([verb[0], "decode", str(stream), "-o", str(tmp_path / "b.npz")]) == 0
    a, b = load_weights(tmp_path / "a.npz"), load_weights(tmp_path / "b.npz")
    assert list(a) == list(b) and all(np.array_equal(a[k], b[k]) for k in a)


def test_decode_refuses_streams_that_are_not_weights(tmp_path, capsys):
    """A ratedist stream of another kind (a successive-refinement code) or foreign bytes: one line, exit 2."""
    from ratedist.coding.container import pack_container

    other = tmp_path / "r.rdst"
    other.write_bytes(pack_container({"format": "ratedist.refinement"}, [b""]))
    assert main(["decode", str(other), "-o", str(tmp_path / "x.npz")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ratedist.refinement" in err[0] and "does not decode to model weights" in err[0]
    junk = tmp_path / "j.rdst"
    junk.write_bytes(b"not a stream at all")
    assert main(["decode", str(junk), "-o", str(tmp_path / "x.npz")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1
    assert not (tmp_path / "x.npz").exists()
