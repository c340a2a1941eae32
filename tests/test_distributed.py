"""The Dask engine: per-tensor work on a LocalCluster of 2 workers, results identical to the in-process path."""

from __future__ import annotations

import dataclasses

import ml_dtypes
import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError, UnreachableTargetError
from ratedist.io import open_weights, save_weights
from ratedist.rd import model_rate_distortion

distributed = pytest.importorskip("distributed")
from ratedist import distributed as rdd  # noqa: E402


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as lc, distributed.Client(lc) as c:
        yield c


def _model(seed=0):
    rng = np.random.default_rng(seed)
    return {"conv.weight": rng.laplace(size=(8, 3, 3, 3)).astype(np.float32),
            "fc.weight": rng.normal(size=(40, 30)).astype(ml_dtypes.bfloat16),
            "fc.bias": rng.normal(size=30).astype(np.float16),
            "bn.num_batches_tracked": np.array(5, dtype=np.int64)}


def _equal(a, b):
    for f in dataclasses.fields(a):
        if f.name == "seconds":
            continue
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, np.ndarray):
            assert x.dtype == y.dtype and np.array_equal(x, y), f.name
        else:
            assert x == y or (x != x and y != y), f.name


@pytest.mark.parametrize("normalize", ["l2", None])
def test_model_rd_identical(tmp_path, client, normalize):
    """The Dask engine's ModelRD equals the in-process one, float for float, on a sharded bf16/f32/f16 checkpoint.

    (metric="l1" only: the engine calls the same per-point function for "mse", whose numba
    compilation alone takes minutes on this machine.)"""
    out = save_weights(tmp_path / "ckpt", _model(), max_shard_bytes=2048)
    kw = dict(normalize=normalize, n_slopes=3, tol=1e-2)
    with open_weights(out) as src:
        assert src.sharded
        local = model_rate_distortion(src, **kw)
    far = rdd.model_rate_distortion(out, client=client, **kw)
    _equal(local, far)
    assert far.tensor_names == ("conv.weight", "fc.weight", "fc.bias")


def test_model_rd_address_and_slopes(tmp_path, client):
    """Given a scheduler address and explicit slopes, the engine matches the in-process result on a single file."""
    w = _model(1)
    path = save_weights(tmp_path / "m.safetensors", w)
    slopes = [-2.0, -8.0]
    local = model_rate_distortion(open_weights(path), slopes=slopes, tol=1e-2)
    far = rdd.model_rate_distortion(path, address=client.scheduler.address, slopes=slopes, tol=1e-2)
    _equal(local, far)


def test_bad_arguments(tmp_path, client):
    """The engine refuses in-memory weights, a missing client and both client and address, with clear errors."""
    with pytest.raises(InvalidArgumentError, match="`path` must be a checkpoint path"):
        rdd.model_rate_distortion({"w": np.ones(3)}, client=client)
    path = save_weights(tmp_path / "m.safetensors", _model())
    with pytest.raises(InvalidArgumentError, match="pass `client`"):
        rdd.model_rate_distortion(path)
    with pytest.raises(InvalidArgumentError, match="not both"):
        rdd.model_rate_distortion(path, client=client, address="tcp://127.0.0.1:1")
    with pytest.raises(InvalidArgumentError, match="does not exist"):
        rdd.model_rate_distortion(tmp_path / "nope.safetensors", client=client)


@pytest.mark.parametrize("method", ["global", "uniform", "adaptive", "er", "erk"])
def test_prune_identical(tmp_path, client, monkeypatch, method):
    """Distributed pruning (radix passes and masks on 2 workers, forged 7-element chunks) gives the
    in-process streamed masks and report, bit for bit, on a sharded checkpoint with ties."""
    from ratedist.pruning import allocation as A
    from ratedist.pruning import prune

    monkeypatch.setattr(A, "STREAM_CHUNK", 7)
    w = _model(2)
    w["conv.weight"][::3] = 0.25  # ties at many cuts
    out = save_weights(tmp_path / "ckpt", w, max_shard_bytes=2048)
    for s in (0.0, 0.5, 0.9):
        with open_weights(out) as src:
            try:
                ref = prune(src, method=method, sparsity=s, layers="*.weight")
            except UnreachableTargetError:
                with pytest.raises(UnreachableTargetError):
                    rdd.prune(out, client=client, method=method, sparsity=s, layers="*.weight")
                continue
        got = rdd.prune(out, client=client, method=method, sparsity=s, layers="*.weight")
        assert list(got.masks) == list(ref.masks)
        for k in ref.masks:
            assert np.array_equal(got.masks[k], ref.masks[k]), k
        assert got.report == ref.report and got.n_kept == ref.n_kept and got.densities == ref.densities


def test_prune_bad_input(tmp_path, client):
    """NaN weights are reported from the worker with the in-process error; LAMP is refused with a pointer."""
    from safetensors.numpy import save_file

    w = {"a.weight": np.ones((3, 4), np.float32), "a.bias": np.array([1.0, np.nan], np.float32)}
    path = tmp_path / "nan.safetensors"
    save_file(w, str(path))  # save_weights itself refuses NaN
    with pytest.raises(InvalidArgumentError, match="NaN or infinite"):
        rdd.prune(path, client=client, sparsity=0.5)
    with pytest.raises(InvalidArgumentError, match="'lamp' is not distributed"):
        rdd.prune(path, client=client, method="lamp", sparsity=0.5)


def test_quant_encode_tensors_identical(tmp_path, client):
    """Per-tensor quantizer encoding on the workers gives, for every tensor, the bytes and decoded
    weights of ``quant.encode({name: tensor})`` in-process; integer tensors are skipped."""
    from ratedist.quant import decode, encode

    path = save_weights(tmp_path / "m.safetensors", _model(4))
    got = rdd.quant_encode_tensors(path, client=client, method="scalar", distortion=0.02)
    assert list(got) == ["conv.weight", "fc.weight", "fc.bias"]
    with open_weights(path) as src:
        for k, enc in got.items():
            ref = encode({k: src[k]}, method="scalar", distortion=0.02)
            assert enc.stream == ref.stream and enc.report.n_bits == ref.report.n_bits
            assert np.array_equal(decode(enc.stream)[k], ref.weights[k])
    one = rdd.quant_encode_tensors(path, client=client, names=["fc.bias"], method="scalar", distortion=0.01)
    assert list(one) == ["fc.bias"]
    with pytest.raises(InvalidArgumentError, match="cannot be coded"):
        rdd.quant_encode_tensors(path, client=client, names=["bn.num_batches_tracked"], method="scalar", rate=2.0)
