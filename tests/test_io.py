"""Checkpoint input/output: every safetensors dtype, shard sets, npz, torch files, bad input, laziness."""

from __future__ import annotations

import json
import os
import struct
import zipfile
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError
from ratedist.io import codable_weights, load_weights, open_weights, save_weights

torch = pytest.importorskip("torch")
st_torch = pytest.importorskip("safetensors.torch")

FLOAT_DTYPES = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float8_e4m3fn": torch.float8_e4m3fn,
    "float8_e5m2": torch.float8_e5m2,
    "float8_e4m3fnuz": torch.float8_e4m3fnuz,
    "float8_e5m2fnuz": torch.float8_e5m2fnuz,
}


def _model(dtype, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "enc.weight": (torch.randn(4, 6, generator=g) * 3).to(dtype),
        "enc.bias": torch.randn(6, generator=g).to(dtype),
        "a.scale": torch.tensor(1.5).to(dtype),  # 0-d
        "bn.num_batches_tracked": torch.tensor(7, dtype=torch.int64),
        "mask": torch.tensor([True, False, True]),
    }


def _bits(t) -> bytes:
    """The tensor's bytes (bit-for-bit comparison, also for float8 where torch.equal is not implemented)."""
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def _st_file(path: Path, header: dict | str, data: bytes) -> Path:
    raw = (header if isinstance(header, str) else json.dumps(header)).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + data)
    return path


def _sharded(folder: Path, dtype=torch.bfloat16) -> tuple[dict, dict]:
    """A two-shard checkpoint written by the safetensors library, with a Hugging Face style index."""
    folder.mkdir(parents=True, exist_ok=True)
    w = _model(dtype)
    shards = {"model-00001-of-00002.safetensors": ["enc.weight", "mask"],
              "model-00002-of-00002.safetensors": ["enc.bias", "a.scale", "bn.num_batches_tracked"]}
    for file, names in shards.items():
        st_torch.save_file({n: w[n] for n in names}, str(folder / file), metadata={"format": "pt", "shard": file})
    order = ["a.scale", "bn.num_batches_tracked", "enc.bias", "enc.weight", "mask"]
    wmap = {n: f for n in order for f, names in shards.items() if n in names}
    index = {"metadata": {"total_size": 123, "producer": "test"}, "weight_map": wmap}
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return w, index


# ----------------------------------------------------------------------------- dtypes, single files

@pytest.mark.parametrize("name", list(FLOAT_DTYPES))
def test_safetensors_every_float_dtype_roundtrip(tmp_path, name):
    """A file written by safetensors.torch in any float dtype loads exactly (narrow floats as float32), reports
    its stored dtype, and save_weights(like=) writes back the same dtypes, tensors, metadata and key order."""
    w = _model(FLOAT_DTYPES[name])
    src_path = tmp_path / "in.safetensors"
    st_torch.save_file(w, str(src_path), metadata={"format": "pt"})
    back = load_weights(src_path)
    assert list(back) == sorted(w)
    for k, t in w.items():
        want = t.float().numpy() if t.is_floating_point() and t.dtype not in (torch.float32, torch.float16) \
            else t.numpy()
        assert back[k].dtype == want.dtype and back[k].shape == tuple(t.shape)
        assert np.array_equal(back[k], want)
    with open_weights(src_path) as src:
        assert src.stored_dtype("enc.weight") == np.dtype(getattr(ml_dtypes, name, None) or name)
        assert src.stored_dtypes["bn.num_batches_tracked"] == "int64"
        out = save_weights(tmp_path / "out.safetensors", {k: v.astype(np.float64) if v.dtype.kind == "f" else v
                                                          for k, v in back.items()}, like=src)
    again = st_torch.load_file(str(out))
    for k, t in w.items():
        assert again[k].dtype == t.dtype and again[k].shape == t.shape and _bits(again[k]) == _bits(t)
    from safetensors import safe_open
    with safe_open(str(out), "pt") as fh:
        assert fh.metadata() == {"format": "pt"}  # sorted order needs no ratedist.order entry
    assert list(load_weights(out)) == list(back)


def test_cast_back_rounds_to_nearest_even_like_torch(tmp_path):
    """Decoded float64 values are cast to the stored bfloat16/float8 with round-to-nearest-even, the same
    result torch's own conversion gives, and saturate instead of overflowing."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal(2000) * 4
    for tdt in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
        src_path = tmp_path / f"{tdt}.safetensors"
        st_torch.save_file({"w": torch.zeros(2000, dtype=tdt)}, str(src_path))
        out = save_weights(tmp_path / f"o{tdt}.safetensors", {"w": x}, like=src_path)
        got = st_torch.load_file(str(out))["w"]
        want = torch.from_numpy(x).to(tdt)
        assert got.dtype == tdt and torch.equal(got.float(), want.float())
    st_torch.save_file({"w": torch.zeros(2, dtype=torch.float8_e4m3fn)}, str(tmp_path / "f8.safetensors"))
    out = save_weights(tmp_path / "sat.safetensors", {"w": np.array([1000.0, -1000.0])}, like=tmp_path / "f8.safetensors")
    assert st_torch.load_file(str(out))["w"].float().tolist() == [448.0, -448.0]


def test_plain_safetensors_order_and_values_as_before(tmp_path):
    """A safetensors file without ratedist's order key loads in the order safe_open lists, with equal arrays."""
    from safetensors import safe_open
    from safetensors.numpy import save_file

    w = {"z": np.arange(3, dtype=np.float32), "b": np.ones((2, 2), np.float16), "m": np.float64(2.0) * np.ones(5)}
    save_file(w, str(tmp_path / "p.safetensors"))
    back = load_weights(tmp_path / "p.safetensors")
    with safe_open(str(tmp_path / "p.safetensors"), "numpy") as fh:
        assert list(back) == list(fh.keys())
        for k in back:
            ref = fh.get_tensor(k)
            assert back[k].dtype == ref.dtype and np.array_equal(back[k], ref)
            assert back[k].flags.writeable


@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
def test_zero_d_tensor_keeps_its_shape(tmp_path, suffix):
    """A 0-d tensor comes back with shape (), not (1,)."""
    path = save_weights(tmp_path / f"s{suffix}", {"s": np.array(2.5, np.float32), "v": np.ones(3)})
    back = load_weights(path)
    assert back["s"].shape == () and back["s"] == 2.5 and back["v"].shape == (3,)


def test_open_weights_is_read_only_and_lazy(tmp_path):
    """Values are read when accessed, not when opened: bytes changed on disk after open_weights show up only in
    the tensor that is read afterwards, and the values handed out are read-only."""
    path = tmp_path / "m.safetensors"
    st_torch.save_file({"a": torch.ones(4), "b": torch.full((4,), 2.0)}, str(path))
    src = open_weights(path)
    n = int.from_bytes(path.read_bytes()[:8], "little")
    begin = json.loads(path.read_bytes()[8:8 + n])["b"]["data_offsets"][0]
    with open(path, "r+b") as fh:  # same inode, so the mapping sees the change
        fh.seek(8 + n + begin)
        fh.write(np.full(4, 9.0, np.float32).tobytes())
    assert src["a"].tolist() == [1.0] * 4
    assert src["b"].tolist() == [9.0] * 4
    assert not src["a"].flags.writeable
    with pytest.raises(ValueError):
        src["a"][0] = 5.0
    src.close()


def test_npz_corrupt_member_touched_only_when_read(tmp_path):
    """A corrupted npz member does not stop the others from loading; reading it names the tensor and the file."""
    path = tmp_path / "m.npz"
    np.savez_compressed(path, good=np.arange(100.0), bad=np.random.default_rng(0).random(20000))
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as z:
        info = z.getinfo("bad.npy")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)
    mid = start + info.compress_size * 3 // 4
    blob[mid:mid + 8] = b"\xff" * 8
    path.write_bytes(bytes(blob))
    with open_weights(path) as src:
        assert np.array_equal(src["good"], np.arange(100.0))
        with pytest.raises(InvalidArgumentError, match=r"m\.npz.*'bad'"):
            src["bad"]


# ----------------------------------------------------------------------------- shards

def test_sharded_checkpoint_roundtrip_keeps_layout(tmp_path):
    """A bf16 two-shard checkpoint opens through its index or its folder in weight_map order, and is written
    back as a bf16 shard set with the same file names, membership, per-shard metadata and index metadata."""
    w, index = _sharded(tmp_path / "ckpt")
    for path in (tmp_path / "ckpt", tmp_path / "ckpt" / "model.safetensors.index.json"):
        with open_weights(path) as src:
            assert list(src) == list(index["weight_map"]) and src.sharded
            assert src.stored_dtype("enc.weight") == np.dtype(ml_dtypes.bfloat16)
    back = load_weights(tmp_path / "ckpt")
    assert back["enc.weight"].dtype == np.float32
    assert np.array_equal(back["enc.weight"], w["enc.weight"].float().numpy())
    for out in (tmp_path / "out", tmp_path / "out2" / "model.safetensors.index.json"):
        with open_weights(tmp_path / "ckpt") as src:
            idx_path = save_weights(out, {k: v * 1.0 for k, v in back.items()}, like=src)
        folder = idx_path.parent
        new_index = json.loads(idx_path.read_text())
        assert new_index["weight_map"] == index["weight_map"]
        assert list(new_index["weight_map"]) == list(index["weight_map"])
        assert new_index["metadata"]["producer"] == "test"
        assert new_index["metadata"]["total_size"] == sum(t.numel() * t.element_size() for t in w.values())
        for file in set(index["weight_map"].values()):
            src_t = st_torch.load_file(str(tmp_path / "ckpt" / file))
            new_t = st_torch.load_file(str(folder / file))
            assert list(src_t) == list(new_t)
            for k in src_t:
                assert new_t[k].dtype == src_t[k].dtype and _bits(new_t[k]) == _bits(src_t[k])
            from safetensors import safe_open
            with safe_open(str(folder / file), "pt") as fh:
                assert fh.metadata() == {"format": "pt", "shard": file}
        assert sorted(p.name for p in folder.iterdir()) == sorted({*index["weight_map"].values(),
                                                                   "model.safetensors.index.json"})


def test_shards_without_like_split_by_size(tmp_path):
    """Without `like`, a directory output splits tensors into shards of at most max_shard_bytes (one tensor
    per shard when each exceeds the half) with an index that loads back the same arrays in the same order."""
    w = {f"t{i}": np.full((10,), float(i), np.float32) for i in range(5)}
    idx = save_weights(tmp_path / "o", w, max_shard_bytes=60)
    index = json.loads(idx.read_text())
    assert len(set(index["weight_map"].values())) == 5 and index["metadata"]["total_size"] == 200
    back = load_weights(tmp_path / "o")
    assert list(back) == list(w) and all(np.array_equal(back[k], w[k]) for k in w)


def test_failed_shard_set_leaves_nothing(tmp_path, monkeypatch):
    """A failure while writing the second shard leaves no target folder and no temporary files."""
    from ratedist.io import _write

    _sharded(tmp_path / "ckpt")
    back = load_weights(tmp_path / "ckpt")
    real = _write._write_synced
    calls = []

    def flaky(path, data):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, data)

    monkeypatch.setattr(_write, "_write_synced", flaky)
    (tmp_path / "out").mkdir()
    with pytest.raises(OSError):
        save_weights(tmp_path / "out" / "new", back, like=tmp_path / "ckpt")
    assert list((tmp_path / "out").iterdir()) == []


def test_unwritable_dtype_writes_nothing(tmp_path):
    """A longdouble tensor cannot go to safetensors: a clear error naming it, and no file; .npz keeps it."""
    w = {"x": np.ones(3, np.longdouble), "y": np.ones(2, np.float32)}
    for out in (tmp_path / "m.safetensors", tmp_path / "dir"):
        with pytest.raises(InvalidArgumentError, match=r"'x'.*longdouble|'x'.*float128"):
            save_weights(out, w)
        assert not out.exists()
    save_weights(tmp_path / "m.npz", w)
    back = load_weights(tmp_path / "m.npz")
    out = save_weights(tmp_path / "n.npz", back, like=tmp_path / "m.npz")
    assert load_weights(out)["x"].dtype == np.longdouble
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# ----------------------------------------------------------------------------- torch files

def test_torch_files_every_dtype_and_nesting(tmp_path):
    """Torch files load with weights_only and mmap: bf16/float8 as exact float32, 0-d kept, nested
    {'model': ...} and {'state_dict': ...} layouts unwrapped, stored dtypes reported."""
    w = _model(torch.bfloat16)
    w["f8"] = torch.linspace(-3, 3, 7).to(torch.float8_e4m3fn)
    for layout in (w, {"model": w, "epoch": 3}, {"state_dict": w}, {"epoch": 1, "model_state_dict": w}):
        torch.save(layout, tmp_path / "m.pt")
        back = load_weights(tmp_path / "m.pt")
        assert list(back) == list(w)
        assert back["a.scale"].shape == () and back["a.scale"] == 1.5
        assert back["enc.weight"].dtype == np.float32
        assert np.array_equal(back["enc.weight"], w["enc.weight"].float().numpy())
        assert np.array_equal(back["f8"], w["f8"].float().numpy())
        with open_weights(tmp_path / "m.pt") as src:
            assert src.stored_dtype("f8") == np.dtype(ml_dtypes.float8_e4m3fn)
            assert src.stored_dtype("bn.num_batches_tracked") == np.int64
    torch.save({"a": torch.ones(2)}, tmp_path / "legacy.pt", _use_new_zipfile_serialization=False)
    assert load_weights(tmp_path / "legacy.pt")["a"].tolist() == [1.0, 1.0]


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("case", ["quantized", "sparse", "meta"])
def test_torch_unsupported_tensors_named(tmp_path, case):
    """Quantized, sparse and meta tensors raise InvalidArgumentError naming the tensor and the file."""
    t = {"quantized": lambda: torch.quantize_per_tensor(torch.ones(3), 0.1, 0, torch.quint8),
         "sparse": lambda: torch.ones(3).to_sparse(),
         "meta": lambda: torch.ones(3, device="meta")}[case]()
    torch.save({"ok": torch.ones(2), "odd": t}, tmp_path / "m.pt")
    with pytest.raises(InvalidArgumentError, match=rf"m\.pt.*'odd'.*{case[:4]}"):
        load_weights(tmp_path / "m.pt")


def test_torch_module_and_foreign_checkpoint_named(tmp_path):
    """A pickled nn.Module and a checkpoint without a state_dict give one-line errors naming the file (and the
    keys found); nothing is unpickled."""
    torch.save(torch.nn.Linear(2, 2), tmp_path / "mod.pt")
    with pytest.raises(InvalidArgumentError, match=r"mod\.pt.*state_dict\(\)") as exc:
        load_weights(tmp_path / "mod.pt")
    assert "\n" not in str(exc.value)
    torch.save({"epoch": 3, "optim": {"lr": 0.1}}, tmp_path / "ck.pt")
    with pytest.raises(InvalidArgumentError, match=r"ck\.pt.*'epoch', 'optim'"):
        load_weights(tmp_path / "ck.pt")


# ----------------------------------------------------------------------------- bad input

def test_safetensors_duplicate_key_refused(tmp_path):
    """A header naming a tensor twice is refused naming the key (JSON would let one copy win silently)."""
    hdr = '{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}'
    path = _st_file(tmp_path / "d.safetensors", hdr, np.ones(2, np.float32).tobytes())
    with pytest.raises(InvalidArgumentError, match=r"d\.safetensors.*'w' twice"):
        load_weights(path)


@pytest.mark.parametrize("entry, data_len, match", [
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}, 16, "needs 16 bytes"),
    ({"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}, 8, "truncated"),
    ({"dtype": "F4", "shape": [4], "data_offsets": [0, 2]}, 2, "cannot read"),
])
def test_safetensors_lying_header_refused(tmp_path, entry, data_len, match):
    """A header whose sizes do not match its shape, that points past the end, or whose dtype is unreadable
    raises a one-line error naming the file and the tensor."""
    path = _st_file(tmp_path / "l.safetensors", {"w": entry}, bytes(data_len))
    with pytest.raises(InvalidArgumentError, match=rf"l\.safetensors.*'w'.*{match}"):
        open_weights(path)


def test_safetensors_overlapping_tensors_refused(tmp_path):
    """Two tensors whose byte ranges overlap are refused, naming both."""
    hdr = {"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
           "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
    with pytest.raises(InvalidArgumentError, match=r"'a' and 'b' overlap"):
        open_weights(_st_file(tmp_path / "o.safetensors", hdr, bytes(12)))


def test_npz_duplicates_and_pickles_refused(tmp_path):
    """An npz holding a name twice, or an object (pickled) array, is refused naming the array."""
    path = tmp_path / "d.npz"
    with zipfile.ZipFile(path, "w") as z, pytest.warns(UserWarning):
        for v in (1.0, 2.0):
            buf = __import__("io").BytesIO()
            np.save(buf, np.array([v]))
            z.writestr("w.npy", buf.getvalue())
    with pytest.raises(InvalidArgumentError, match=r"d\.npz.*'w' twice"):
        load_weights(path)
    np.savez(tmp_path / "p.npz", obj=np.array([{"a": 1}], dtype=object))
    with pytest.raises(InvalidArgumentError, match=r"p\.npz.*'obj'.*pickle"):
        load_weights(tmp_path / "p.npz")


def test_shard_errors_named(tmp_path):
    """A shard listed but missing, a tensor in two shards, an index naming a tensor its shard lacks, and a
    directory without a checkpoint each give an error naming the file."""
    _sharded(tmp_path / "a")
    os.remove(tmp_path / "a" / "model-00002-of-00002.safetensors")
    with pytest.raises(InvalidArgumentError, match=r"'model-00002-of-00002\.safetensors' for 3 tensor.*missing"):
        open_weights(tmp_path / "a")
    (tmp_path / "b").mkdir()
    st_torch.save_file({"x": torch.ones(1)}, str(tmp_path / "b" / "p1.safetensors"))
    st_torch.save_file({"x": torch.ones(1), "y": torch.ones(1)}, str(tmp_path / "b" / "p2.safetensors"))
    with pytest.raises(InvalidArgumentError, match=r"'x' is in two shards, 'p1\.safetensors' and 'p2"):
        open_weights(tmp_path / "b")
    (tmp_path / "b" / "m.safetensors.index.json").write_text(json.dumps({"weight_map": {"x": "p1.safetensors",
                                                                                        "z": "p2.safetensors"}}))
    with pytest.raises(InvalidArgumentError, match=r"'z' to shard 'p2\.safetensors', which has no such"):
        open_weights(tmp_path / "b")
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "notes.txt").write_text("hi")
    with pytest.raises(InvalidArgumentError, match=r"`path` .*c'.* no checkpoint"):
        load_weights(tmp_path / "c")
    with pytest.raises(InvalidArgumentError, match=r"`path` .*nothere' does not exist"):
        load_weights(tmp_path / "nothere")


def test_codable_weights_skips_or_refuses(tmp_path):
    """Integer and boolean tensors are skipped with a note (never read from a lazy source), and refused when
    selected explicitly."""
    st_torch.save_file(_model(torch.bfloat16), str(tmp_path / "m.safetensors"))
    with open_weights(tmp_path / "m.safetensors") as src:
        kept, notes = codable_weights(src)
        assert sorted(kept) == ["a.scale", "enc.bias", "enc.weight"]
        assert notes == ["skipped 'bn.num_batches_tracked' (int64): only floating-point tensors are coded",
                         "skipped 'mask' (bool): only floating-point tensors are coded"]
        assert list(codable_weights(src, ["enc.bias"])[0]) == ["enc.bias"]
        with pytest.raises(InvalidArgumentError, match=r"'mask'.*bool.*cannot be coded"):
            codable_weights(src, ["enc.bias", "mask"])


def test_torch_shards_through_index_and_into_existing_folder(tmp_path):
    """A torch shard set read through `pytorch_model.bin.index.json` is written as safetensors shards of the same
    membership into an existing folder, leaving its other files alone."""
    w = _model(torch.bfloat16)
    (tmp_path / "t").mkdir()
    torch.save({k: w[k] for k in ("enc.weight", "enc.bias")}, tmp_path / "t" / "pytorch_model-1.bin")
    torch.save({k: w[k] for k in ("a.scale", "mask")}, tmp_path / "t" / "pytorch_model-2.bin")
    wmap = {"enc.weight": "pytorch_model-1.bin", "enc.bias": "pytorch_model-1.bin",
            "a.scale": "pytorch_model-2.bin", "mask": "pytorch_model-2.bin"}
    (tmp_path / "t" / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": wmap}))
    back = load_weights(tmp_path / "t")
    assert list(back) == list(wmap) and np.array_equal(back["enc.weight"], w["enc.weight"].float().numpy())
    out = tmp_path / "o"
    out.mkdir()
    (out / "config.json").write_text("{}")
    idx = save_weights(out, back, like=tmp_path / "t")
    assert idx.name == "model.safetensors.index.json"
    assert json.loads(idx.read_text())["weight_map"] == {k: v.replace(".bin", ".safetensors") for k, v in wmap.items()}
    assert (out / "config.json").read_text() == "{}"
    assert st_torch.load_file(str(out / "pytorch_model-1.safetensors"))["enc.weight"].dtype == torch.bfloat16
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
