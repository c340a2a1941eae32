"""SuRP: successive refinement for pruning (Isik, Weissman and No, AISTATS 2022; docs/theory.md §4).

Encode a model into one progressive bitstream whose every checkpoint prefix
decodes, bit for bit, to a sparser model:

>>> import numpy as np
>>> from ratedist import surp
>>> w = {"w": np.random.default_rng(0).laplace(size=(40, 50)).astype(np.float32)}
>>> enc = surp.encode(w, [0.95, 0.8], seed=1)
>>> w95 = surp.decode(enc.stream, sparsity=0.95)
>>> w95["w"].shape, w95["w"].dtype, float(np.mean(w95["w"] == 0)) >= 0.95
((40, 50), dtype('float32'), True)

Two encoders share one container and one decoder: ``algorithm="sequential"``
(the published method, one index per step; :mod:`ratedist.surp.encoder`) and
``algorithm="parallel"`` (a whole threshold level at a time;
:mod:`ratedist.surp.parallel`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .._validation import check_choice, check_weights
from ..coding.container import atomic_write
from ..errors import InvalidArgumentError
from ._common import NORMALIZATIONS
from .decoder import ALGORITHMS, decode, inspect, read_header
from .report import SurpCheckpoint, SurpEncoding, SurpReport, format_report

__all__ = [
    "encode",
    "decode",
    "inspect",
    "read_header",
    "save",
    "load",
    "SurpEncoding",
    "SurpReport",
    "SurpCheckpoint",
    "format_report",
]


def encode(weights: Mapping, sparsity, *, seed: int = 0, alpha: float | None = None, normalize: str = "l2",
           algorithm: str = "sequential", progress: bool = False, keep_reconstructions: bool = False,
           bound: bool = True, include_buffers: bool = False, **params) -> SurpEncoding:
    """Encode ``weights`` with SuRP into a progressive stream with one checkpoint per target sparsity.

    Parameters
    ----------
    weights : Mapping[str, array_like]
        The model (a state_dict, a .safetensors or .npz file's contents).
    sparsity : float or sequence of float
        Target sparsities in (0, 1) (fraction of zero weights over all
        parameters); each becomes a checkpoint whose prefix decodes on its own.
    seed : int
        Key of the shared pseudorandom permutations (sequential algorithm).
    alpha : float, optional
        Initial threshold factor α: τ₀ = α · mean|u| (docs/theory.md §4b.3); the
        default is sf = ln(n/ln n), so that lam_inv starts at mean|u|, as the
        reference configurations do (α ≈ sf).
    normalize : {"l2", "l1"}
        Per-tensor normalization: the reference code's Frobenius norm or the
        theorem's entrywise L1 norm.
    algorithm : {"sequential", "parallel"}
    progress : bool
        Show a progress bar on stderr.
    keep_reconstructions : bool
        Also return the encoder's own reconstruction at every checkpoint.
    bound : bool
        Put the model's own rate–distortion bound at each checkpoint's distortion in the
        report (``bound_bpp``, ``bound_bpp_upper``, ``bound_gap``); costs a Blahut–Arimoto sweep
        over the coded tensors (about a second for a 30 k-parameter model).
    include_buffers : bool
        Code BatchNorm running statistics (``running_mean``, ``running_var``) like weights. By default
        they are carried losslessly in the stream header and not counted in ``n_params``, as the
        reference code codes trainable parameters only (weights, biases, BN affine); integer and
        boolean tensors (``num_batches_tracked``) are always carried losslessly.
    **params
        Algorithm parameters: for ``"sequential"`` ``refresh_every`` (20) and
        ``refresh_factor`` (0.9) of the refresh rule and ``max_iterations``;
        for ``"parallel"`` those of :func:`ratedist.surp.parallel.encode_parallel`
        (``gamma``, ``device``, ...).

    Returns
    -------
    SurpEncoding
        ``stream`` (bytes) and ``report`` (:class:`SurpReport`, bits).
    """
    check_choice("algorithm", algorithm, ALGORITHMS)
    check_choice("normalize", normalize, NORMALIZATIONS)
    if not isinstance(bound, bool):
        raise InvalidArgumentError(f"`bound` must be True or False, got {bound!r}.")
    if algorithm == "sequential":
        from .encoder import encode_sequential

        enc = encode_sequential(weights, sparsity, seed=seed, alpha=alpha, normalize=normalize,
                                progress=progress, keep_reconstructions=keep_reconstructions,
                                include_buffers=include_buffers, **params)
        return _with_bound(enc, weights, normalize) if bound else enc
    if alpha is not None:
        raise InvalidArgumentError("`alpha` belongs to the sequential algorithm; the parallel one takes `gamma`.")
    from .parallel import encode_parallel  # noqa: PLC0415 - optional sibling, imported lazily

    extra = {}
    if progress:
        extra["progress"] = progress
    if keep_reconstructions:
        extra["keep_reconstructions"] = keep_reconstructions
    enc = encode_parallel(weights, sparsity, normalize=normalize, include_buffers=include_buffers, **extra, **params)
    return _with_bound(enc, weights, normalize) if bound else enc


def _with_bound(enc: SurpEncoding, weights: Mapping, normalize: str) -> SurpEncoding:
    """``enc`` with the model's rate–distortion bound (L1, the stream's normalization) at every checkpoint,
    computed on the tensors the stream codes (named in its header)."""
    from dataclasses import replace

    from ..rd.model import model_bound_at, model_rate_distortion

    coded = {t["name"] for t in read_header(enc.stream)["tensors"] if "raw" not in t}
    arrays = {k: v for k, v in check_weights("weights", weights).items() if k in coded and v.size}
    if not any(np.any(v) for v in arrays.values()):   # an all-zero model: nothing to bound, every rate is 0
        return enc
    curve = model_rate_distortion(arrays, metric="l1", normalize=normalize, units="bits")
    cps = []
    for c in enc.report.checkpoints:
        lo, hi = model_bound_at(curve, c.distortion)
        cps.append(replace(c, bound_bpp=float(lo), bound_bpp_upper=float(hi),
                           bound_gap=(c.bpp / float(lo) - 1.0) if lo > 0 else None))
    return replace(enc, report=replace(enc.report, checkpoints=tuple(cps)))


def save(encoding, path: str | os.PathLike) -> Path:
    """Write a stream (bytes or a :class:`SurpEncoding`) to ``path`` atomically."""
    data = encoding.stream if isinstance(encoding, SurpEncoding) else encoding
    if not isinstance(data, (bytes, bytearray)):
        raise InvalidArgumentError(f"`encoding` must be bytes or a SurpEncoding, got {type(encoding).__name__}.")
    return atomic_write(path, bytes(data))


def load(path: str | os.PathLike) -> bytes:
    """Read a stream file (.rdst) as bytes."""
    path = Path(path)
    if not path.is_file():
        raise InvalidArgumentError(f"`path` {str(path)!r} does not exist or is not a file.")
    return path.read_bytes()
