"""Tests of the package plumbing: container format, units, CLI contract, io."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from ratedist import CorruptStreamError, InvalidArgumentError, load_weights, save_weights
from ratedist._units import from_nats, to_nats
from ratedist.cli import main
from ratedist.coding import pack_container, prefix_length, unpack_container


def test_container_roundtrip_and_prefix():
    """A prefix that ends after segment k parses to exactly the first k segments."""
    segs = [b"a" * 10, b"", b"xyz" * 100]
    blob = pack_container({"format": "t", "x": [1, 2]}, segs)
    c = unpack_container(blob)
    assert c.segments == tuple(segs) and c.header["x"] == [1, 2]
    cut = prefix_length(blob, 2)
    assert unpack_container(blob[:cut], max_segments=2).segments == tuple(segs[:2])
    with pytest.raises(CorruptStreamError):
        unpack_container(blob[:cut])


@pytest.mark.parametrize("mutate", ["magic", "version", "truncate", "flip", "hugelen"])
def test_container_rejects_corruption(mutate):
    """Every corruption of the preamble, header or a segment raises CorruptStreamError."""
    blob = bytearray(pack_container({"format": "t"}, [b"payload" * 20]))
    if mutate == "magic":
        blob[0] ^= 1
    elif mutate == "version":
        blob[4] = 99
    elif mutate == "truncate":
        blob = blob[:-5]
    elif mutate == "flip":
        blob[-10] ^= 0x40
    elif mutate == "hugelen":
        blob[8:12] = (2**31).to_bytes(4, "little")
    with pytest.raises(CorruptStreamError):
        unpack_container(bytes(blob))


def test_units_roundtrip():
    """bits = nats / ln 2, and to_nats inverts from_nats."""
    assert from_nats(math.log(2), "bits") == pytest.approx(1.0, abs=1e-15)
    assert to_nats(from_nats(1.234, "bits"), "bits") == pytest.approx(1.234, rel=1e-15)
    with pytest.raises(InvalidArgumentError, match="`units`"):
        from_nats(1.0, "bans")


@pytest.mark.parametrize("suffix", [".npz", ".safetensors"])
def test_weights_io_roundtrip(tmp_path, suffix):
    """save_weights then load_weights returns the same keys, shapes, dtypes and values."""
    w = {"a.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.ones(4, dtype=np.float64)}
    path = save_weights(tmp_path / f"m{suffix}", w)
    back = load_weights(path)
    assert list(back) == list(w)
    for k in w:
        assert back[k].dtype == w[k].dtype and np.array_equal(back[k], w[k])


@pytest.mark.parametrize("suffix", [".npz", ".safetensors", ".pt"])
@pytest.mark.parametrize("content", [b"", b"garbage", b"PK\x03\x04truncated zip"])
def test_unreadable_weight_files_named(tmp_path, suffix, content):
    """An empty, garbage or truncated weights file raises InvalidArgumentError naming the path."""
    path = tmp_path / f"m{suffix}"
    path.write_bytes(content)
    with pytest.raises(InvalidArgumentError, match=r"`path` .*m\."):
        load_weights(path)


def test_weights_nan_named(tmp_path):
    """NaN weights raise an error naming the tensor and the count."""
    with pytest.raises(InvalidArgumentError, match=r"'bad'.*2 NaN"):
        save_weights(tmp_path / "m.npz", {"bad": np.array([np.nan, 1.0, np.inf])})
    assert not (tmp_path / "m.npz").exists()


def test_cli_json_and_errors(capsys):
    """--json prints one JSON object; a bad argument gives a one-line error and exit code 2."""
    assert main(["rd", "closed", "--source", "gaussian", "--variance", "1", "--rate", "1", "--units", "bits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["distortion"] == pytest.approx(0.25) and out["units"] == "bits"
    assert main(["rd", "closed", "--source", "laplace", "--lam", "1", "--distortion", "-1"]) == 2
    err = capsys.readouterr().err
    assert "`--distortion`" in err and len(err.strip().splitlines()) == 1
    assert main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["backends"]["numpy"] is True


def test_console_script_runs():
    """The installed module runs as a program and exits 2 on bad input, without a traceback."""
    r = subprocess.run([sys.executable, "-m", "ratedist.cli", "rd", "closed", "--source", "bernoulli",
                        "--p", "1.5", "--distortion", "0.1"], capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr and "`--p`" in r.stderr
