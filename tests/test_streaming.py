"""Streaming pruning: bounded memory on a memory-mapped checkpoint, masks identical to the in-memory path."""

from __future__ import annotations

import tracemalloc

import ml_dtypes
import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError, UnreachableTargetError
from ratedist.io import load_weights, open_weights, save_weights
from ratedist.pruning import allocation as A
from ratedist.pruning import apply_masks, cost, decode_cost, prune

METHODS = A.METHODS


def _model(seed, ties=False):
    rng = np.random.default_rng(seed)
    w = {
        "conv.weight": rng.normal(size=(6, 3, 3, 3)).astype(np.float32),
        "fc1.weight": rng.integers(-3, 4, size=(20, 14)).astype(np.float64),   # heavy ties
        "fc1.bias": rng.normal(size=14).astype(np.float32),
        "fc2.weight": np.round(rng.normal(size=(14, 9)), 1).astype(np.float16),
        "head.weight": rng.laplace(size=(9, 5)).astype(np.float32),
    }
    if ties:
        w["conv.weight"][:] = 0.5
        w["head.weight"][::2] = 0.0
        w["head.weight"][1::2] = -0.0
    return w


def _same(r0, r1):
    assert list(r0.masks) == list(r1.masks)
    for k in r0.masks:
        assert r0.masks[k].shape == r1.masks[k].shape and r0.masks[k].dtype == r1.masks[k].dtype == bool
        assert np.array_equal(r0.masks[k], r1.masks[k]), k
    assert r0.report == r1.report and r0.n_kept == r1.n_kept and r0.n_selected == r1.n_selected
    assert r0.densities == r1.densities and r0.sparsity == r1.sparsity


@pytest.mark.parametrize("chunk", [3, 64, 1 << 20])
@pytest.mark.parametrize("ties", [False, True])
def test_stream_masks_identical(monkeypatch, chunk, ties):
    """For every method, sparsity and chunk size (down to 3 elements), the streamed masks equal the in-memory masks bit for bit."""
    monkeypatch.setattr(A, "STREAM_CHUNK", chunk)
    monkeypatch.setattr(A, "LAMP_MIN_CANDIDATES", 8)  # small layers then use LAMP's candidate sets
    for seed in range(3):
        w = _model(seed, ties)
        for method in METHODS:
            for s in (0.0, 0.35, 0.8, 0.95):
                try:
                    r0 = prune(w, method=method, sparsity=s, stream=False)
                except UnreachableTargetError:
                    with pytest.raises(UnreachableTargetError):
                        prune(w, method=method, sparsity=s, stream=True)
                    continue
                _same(r0, prune(w, method=method, sparsity=s, stream=True))


def test_stream_scores_and_layers(monkeypatch):
    """Given saliency scores (negative values, signed zeros, int dtype) and layer patterns, streaming keeps the in-memory masks."""
    monkeypatch.setattr(A, "STREAM_CHUNK", 5)
    monkeypatch.setattr(A, "LAMP_MIN_CANDIDATES", 4)
    rng = np.random.default_rng(7)
    w = _model(1)
    scores = {"conv.weight": rng.normal(size=(6, 3, 3, 3)),
              "fc1.weight": rng.integers(-2, 3, size=(20, 14)),
              "fc2.weight": np.where(rng.random((14, 9)) < 0.5, -0.0, 0.0).astype(np.float32),
              "head.weight": rng.normal(size=(9, 5)).astype(np.float32)}
    for method in METHODS:
        for layers in (None, "*.weight", ["re:^fc.*weight$", "head.*"]):
            for s in (0.3, 0.9):
                kw = dict(method=method, sparsity=s, layers=layers, scores=scores)
                try:
                    r0 = prune(w, stream=False, **kw)
                except UnreachableTargetError:
                    with pytest.raises(UnreachableTargetError):
                        prune(w, stream=True, **kw)
                    continue
                _same(r0, prune(w, stream=True, **kw))


def test_stream_bad_input_same_errors():
    """Streaming raises the errors of the in-memory path: NaN weights, missing or non-finite scores."""
    w = _model(0)
    w["fc1.bias"] = w["fc1.bias"].copy()
    w["fc1.bias"][3] = np.nan
    with pytest.raises(InvalidArgumentError, match="1 NaN or infinite"):
        prune(w, sparsity=0.5, stream=True)
    w = _model(0)
    with pytest.raises(InvalidArgumentError, match="no entry for selected tensor"):
        prune(w, sparsity=0.5, scores={"conv.weight": np.ones((6, 3, 3, 3))}, stream=True)
    bad = {k: np.ones(np.shape(v)) for k, v in w.items()}
    bad["head.weight"][0, 0] = np.inf
    with pytest.raises(InvalidArgumentError, match="NaN or infinite"):
        prune(w, sparsity=0.5, scores=bad, stream=True)


@pytest.mark.parametrize("dtype,where", [("float32", "m.safetensors"), ("bfloat16", "m.safetensors"),
                                         ("bfloat16", "shards"), ("float32", "m.npz")])
def test_weights_source_prune_apply_cost(tmp_path, monkeypatch, dtype, where):
    """On an opened (memory-mapped, sharded or npz) checkpoint prune, apply_masks and cost give exactly the results of the loaded dict, stream bytes included."""
    monkeypatch.setattr(A, "STREAM_CHUNK", 50)
    w = _model(3)
    w = {k: v.astype(ml_dtypes.bfloat16) if dtype == "bfloat16" else v for k, v in w.items()}
    path = save_weights(tmp_path / where, w, **({"max_shard_bytes": 1024} if where == "shards" else {}))
    dense = load_weights(path)
    with open_weights(path) as src:
        for method in METHODS:
            r_src = prune(src, method=method, sparsity=0.6)
            r_mem = prune(dense, method=method, sparsity=0.6)
            _same(r_mem, r_src)
        pruned_src = apply_masks(src, r_src.masks)
        pruned_mem = apply_masks(dense, r_mem.masks)
        assert list(pruned_src) == list(pruned_mem)
        for k in dense:
            assert type(pruned_src[k]) is np.ndarray and pruned_src[k].dtype == pruned_mem[k].dtype
            assert np.array_equal(pruned_src[k], pruned_mem[k])
        for bits in (None, 4):
            c_src = cost(src, r_src.masks, value_bits=bits)
            c_mem = cost(dense, r_mem.masks, value_bits=bits)
            assert c_src.stream == c_mem.stream and c_src.n_bits == c_mem.n_bits
        dec = decode_cost(c_src.stream)
        for k in dense:
            assert np.array_equal(dec.masks[k], r_src.masks[k])


def test_stream_peak_memory(tmp_path, monkeypatch):
    """Global and uniform pruning of a memory-mapped 20 M-weight float32 file (80 MB) stay within
    masks + 32 bytes per chunk element + 2 MiB of traced Python/NumPy memory: O(chunk + output),
    under half of one float32 copy of the model.  LAMP adds at most 24 bytes per candidate
    magnitude (2 (1 - S) n_l per layer).  The masks equal those of the in-memory path."""
    chunk = 1 << 18
    monkeypatch.setattr(A, "STREAM_CHUNK", chunk)
    rng = np.random.default_rng(0)
    w = {"a.weight": rng.standard_normal((4000, 2500), dtype=np.float32),
         "b.weight": rng.standard_normal((2000, 5000), dtype=np.float32),
         "b.bias": rng.standard_normal(5000, dtype=np.float32)}
    n = sum(v.size for v in w.values())
    path = save_weights(tmp_path / "big.safetensors", w)
    ref = {m: prune(w, method=m, sparsity=0.9, stream=False) for m in ("global", "uniform", "lamp")}
    selected = [v.size for k, v in w.items() if v.ndim >= 2]
    candidates = sum(min(s, max(A.LAMP_MIN_CANDIDATES, int(np.ceil(2.0 * 0.1 * s)))) for s in selected)
    del w
    bound = n + 32 * chunk + (2 << 20)
    assert bound < 2 * n  # under half of the float32 score copy (4n bytes) the in-memory path holds
    for method in ("global", "uniform", "lamp"):
        if method == "lamp":
            bound += 24 * candidates
        with open_weights(path) as src:
            tracemalloc.start()
            try:
                r = prune(src, method=method, sparsity=0.9)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
        assert peak <= bound, (method, peak, bound)
        _same(ref[method], r)


# ----------------------------------------------------------------------------- 64-bit sizes


def test_counts_beyond_int32():
    """The counting logic of the global cut (bin search, tie shares, kept count, per-layer integer
    counts) is exact for totals and counts above 2^31 - 1, forged without allocating them."""
    big = 3 * 2**31 + 17
    hist = np.zeros(1 << 16, dtype=np.int64)
    hist[[5, 9, 70]] = [2**32, big, 11]
    assert A._pick_bin(hist, 2**32 - 1) == (5, 2**32 - 1)
    assert A._pick_bin(hist, 2**32 + big - 1) == (9, big - 1)
    assert A._pick_bin(hist, 2**32 + big) == (70, 0)
    gt = np.array([2**31 + 1, 2**32], dtype=np.int64)
    eq = np.array([2**31, 2**31], dtype=np.int64)
    n_keep = int(gt.sum()) + 2**31 + 5
    assert A._take_ties(gt, eq, n_keep).tolist() == [2**31 + 1 + 2**31, 2**32 + 5]
    assert A.n_keep_for(0.5, 2**33 + 2) == 2**32 + 1
    c = A.integer_counts([2.5 * 2**31, 1.5 * 2**31], 2**33, [1, 1], [2**33, 2**33])
    assert c.dtype == np.int64 and int(c.sum()) == 2**33


def test_phantom_shapes_beyond_int32():
    """Layer selection and sizes of a mapping whose tensors report > 2^31 - 1 elements (zero-stride
    views of one byte) are counted in int64, and the streaming size bookkeeping agrees."""
    one = np.zeros(1, dtype=np.float32)
    huge = {"big.weight": np.lib.stride_tricks.as_strided(one, shape=(2**17, 2**16), strides=(0, 0)),
            "b": np.lib.stride_tricks.as_strided(one, shape=(3,), strides=(0,))}
    ph = A._phantoms(huge, list(huge))
    assert A.select_layers(ph) == ["big.weight"]
    sc = A._StreamScores(huge, ["big.weight"], None, absolute=False)
    assert sc.sizes["big.weight"] == 2**33 and sc.dtypes["big.weight"] == np.float32
    sizes = np.array([sc.sizes["big.weight"]], dtype=np.int64)
    assert int(sizes.sum()) == 2**33 and A.n_keep_for(0.9, int(sizes.sum())) == 858993459


def test_stream_kth_matches_partition(monkeypatch):
    """The radix selection returns np.partition's k-th value for float32/float64 data with negatives, signed zeros, ties and subnormals."""
    monkeypatch.setattr(A, "STREAM_CHUNK", 4)
    rng = np.random.default_rng(11)
    for dt in (np.float32, np.float64):
        v = np.concatenate([rng.normal(size=200), np.zeros(30), -np.zeros(30), np.full(40, 2.5),
                            [np.finfo(dt).tiny / 4, -np.finfo(dt).tiny / 8]]).astype(dt)
        rng.shuffle(v)
        parts = np.array_split(v, 13)
        for k in (0, 1, 57, 150, 299, v.size - 1):
            got = A._stream_kth(lambda: iter(parts), k, dt)
            assert got == np.partition(v, k)[k] and got.dtype == dt
