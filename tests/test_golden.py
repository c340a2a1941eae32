"""Golden streams pin every stream format (``tests/golden/``)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"
_spec = importlib.util.spec_from_file_location("_golden_streams", GOLDEN / "_streams.py")
_streams = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_streams)
MANIFEST = json.loads((GOLDEN / "manifest.json").read_text())
CASES = _streams.cases()


def test_every_case_pinned():
    """Every golden case has a manifest entry and a stored stream, and the manifest lists no stale case."""
    assert sorted(MANIFEST) == sorted(CASES)
    for name in CASES:
        assert (GOLDEN / f"{name}.bin").is_file()


@pytest.mark.parametrize("name", sorted(CASES))
def test_encoder_bytes_pinned(name):
    """Encoding the fixed inputs reproduces the pinned stream byte for byte (same length and SHA-256)."""
    encode, _ = CASES[name]
    stream = encode()
    assert len(stream) == MANIFEST[name]["bytes"]
    assert _streams.sha256(stream) == MANIFEST[name]["stream_sha256"], (
        f"the {name} encoder's bytes changed: if deliberate, bump the format's revision and regenerate "
        "(tests/golden/README.md)")


@pytest.mark.parametrize("name", sorted(CASES))
def test_stored_stream_decodes(name):
    """The stored stream (written by an earlier run) still decodes to the pinned result."""
    _, decode = CASES[name]
    stream = (GOLDEN / f"{name}.bin").read_bytes()
    assert _streams.sha256(stream) == MANIFEST[name]["stream_sha256"]
    assert _streams.digest(decode(stream)) == MANIFEST[name]["decoded_sha256"]


def test_bytes_independent_of_thread_count():
    """With one numba thread the encoders write the same bytes as with the default thread count."""
    import os
    import subprocess
    import sys

    code = ("import json, sys, importlib.util; spec = importlib.util.spec_from_file_location('g', sys.argv[1]); "
            "m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(json.dumps({k: m.sha256(e()) for k, (e, _) in m.cases().items()}))")
    env = dict(os.environ, NUMBA_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, str(GOLDEN / "_streams.py")], env=env, check=True,
                         capture_output=True, text=True, timeout=600).stdout
    assert json.loads(out.strip().splitlines()[-1]) == {k: v["stream_sha256"] for k, v in MANIFEST.items()}
