"""Model-level work on a Dask cluster: the per-tensor passes mapped over ``dask.distributed`` workers.

Every worker opens the checkpoint itself, by path and tensor name (:func:`ratedist.io.open_weights`),
so no weight array travels through the scheduler: what comes back are the small per-tensor
summaries and results.  The client only combines them, in the order the in-process path uses, so
the results are identical to it, float for float.

* :func:`model_rate_distortion` — :func:`ratedist.rd.model_rate_distortion` with each tensor's
  empirical law built on a worker (and kept there, as a Dask future), and every
  (tensor, slope) Blahut–Arimoto point solved on the worker that holds that law.
* :func:`prune` — :func:`ratedist.pruning.prune` (global, uniform, adaptive, ER, ERK): the checks,
  the radix-histogram passes of the exact global cut, the tie counts and the masks run per
  tensor on the workers; the client sums the (integer) histograms, so the cut and the masks are
  those of the in-process path, bit for bit.
* :func:`quant_encode_tensors` — :func:`ratedist.quant.encode` of each tensor on its own (its
  own rate or distortion target), one task per tensor; every stream is the in-process stream.

Install the extra: ``pip install 'ratedist[dask]'``.  Pass ``client=`` (a
``distributed.Client``) or ``address=`` (a scheduler address such as ``"tcp://10.0.0.5:8786"``).
Every worker must see the checkpoint at the same path (a shared or replicated file system).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from .errors import InvalidArgumentError

__all__ = ["model_rate_distortion", "prune", "quant_encode_tensors"]


@contextmanager
def _client(client, address):
    try:
        import distributed
    except ImportError:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "ratedist.distributed needs dask.distributed; install it with `pip install 'ratedist[dask]'`."
        ) from None
    if client is not None and address is not None:
        raise InvalidArgumentError("pass either `client` or `address`, not both.")
    if client is not None:
        if not isinstance(client, distributed.Client):
            raise InvalidArgumentError(
                f"`client` must be a dask.distributed.Client, got {type(client).__name__}; or pass `address`.")
        yield client
        return
    if address is None:
        raise InvalidArgumentError(
            "pass `client` (a dask.distributed.Client) or `address` (a scheduler address like 'tcp://host:8786').")
    if not isinstance(address, str):
        raise InvalidArgumentError(f"`address` must be a scheduler address string, got {type(address).__name__}.")
    with distributed.Client(address) as c:
        yield c


def _checkpoint(path) -> str:
    """The absolute checkpoint path workers open; a WeightsSource gives its own path."""
    from .io import WeightsSource, open_weights

    if isinstance(path, WeightsSource):
        path = path.path
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentError(
            f"`path` must be a checkpoint path (file, *.index.json or directory) that every worker can open, "
            f"got {type(path).__name__}; save in-memory weights first (ratedist.save_weights).")
    p = str(Path(path).resolve())
    with open_weights(p):  # headers checked here, once, with the usual errors
        pass
    return p


# ----------------------------------------------------------------------------- worker tasks
# (module-level functions, so that workers import them by name)


def _rd_names(path: str) -> list[str]:
    from .io import open_weights
    from .rd.model import _float_tensors

    with open_weights(path) as src:
        return _float_tensors(src)[0]


def _rd_prepare(path: str, name: str, normalize, metric):
    from .io import open_weights
    from .rd.model import _prepare_one

    with open_weights(path) as src:
        return _prepare_one(name, src[name], normalize, metric)


def _rd_summary(t):
    return t.summary()


def _rd_point(t, metric, s, tol_n, frac, max_iter):
    from .rd.model import _point_of

    return _point_of(metric)(t, s, tol_n, frac, max_iter)


def model_rate_distortion(path, *, client=None, address=None, metric: str = "l1", normalize: str | None = "l2",
                          slopes=None, n_slopes: int = 16, tol: float = 1e-3, units: str = "bits",
                          grid_fraction=None, max_iter: int = 20_000):
    """:func:`ratedist.rd.model_rate_distortion` of a checkpoint, its per-tensor work run as Dask tasks.

    Parameters
    ----------
    path : str, os.PathLike or WeightsSource
        A checkpoint every worker can open at that path: a file, an ``*.index.json`` or a directory.
    client : distributed.Client, optional
        The cluster to run on.
    address : str, optional
        A scheduler address, when no ``client`` is given (a client is opened and closed here).
    metric, normalize, slopes, n_slopes, tol, units, grid_fraction, max_iter
        As in :func:`ratedist.rd.model_rate_distortion`.

    Returns
    -------
    ModelRD
        Equal, float for float, to ``model_rate_distortion(open_weights(path), ...)`` (only
        ``seconds`` differs).

    Notes
    -----
    Tasks: one per float tensor (read it, normalize it, build its empirical law; the law stays
    on that worker), then one per (tensor, slope) pair, scheduled next to the tensor's law.
    Only the per-tensor scalars (sizes, Laplace fits, zero-rate distortions) and the points
    come back to the client.

    Examples
    --------
    >>> import numpy as np, tempfile, os
    >>> from distributed import Client, LocalCluster
    >>> from ratedist.io import save_weights
    >>> from ratedist.rd import model_rate_distortion as local
    >>> d = tempfile.mkdtemp()
    >>> w = {"w": np.random.default_rng(0).laplace(size=500).astype(np.float32)}
    >>> p = save_weights(os.path.join(d, "m.safetensors"), w)
    >>> with LocalCluster(n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None) as lc, \\
    ...         Client(lc) as c:
    ...     far = model_rate_distortion(p, client=c, n_slopes=3)
    >>> bool(np.array_equal(far.rate, local(w, n_slopes=3).rate))
    True
    """
    from .rd.model import _model_rd

    path = _checkpoint(path)
    with _client(client, address) as c:
        held: list = []

        def prepare():
            names = c.submit(_rd_names, path, pure=False).result()
            held[:] = [c.submit(_rd_prepare, path, k, normalize, metric, pure=False) for k in names]
            return c.gather([c.submit(_rd_summary, f) for f in held])

        def points(tasks, s_n, tol_n, frac, max_iter_):
            futs = [c.submit(_rd_point, held[ti], metric, float(s_n[si]), tol_n, frac, max_iter_, pure=False)
                    for ti, si in tasks]
            return c.gather(futs)

        try:
            return _model_rd(prepare, points, metric=metric, normalize=normalize, slopes=slopes, n_slopes=n_slopes,
                             tol=tol, units=units, grid_fraction=grid_fraction, max_iter=max_iter, workers=1)
        finally:
            for f in held:
                f.release()


# ----------------------------------------------------------------------------- pruning

_PRUNE_METHODS = ("global", "uniform", "adaptive", "er", "erk")


def _pr_scores(src, name):
    from .pruning.allocation import _StreamScores

    return _StreamScores(src, [name], None, absolute=False)


def _pr_check(path: str, name: str) -> None:
    from .io import open_weights
    from .pruning.allocation import _check_stream_tensors

    with open_weights(path) as src:
        _check_stream_tensors(src, names=[name])


def _pr_hist(path, name, dtype, prefix, known, width):
    from .io import open_weights
    from .pruning.allocation import _chunk_hist

    with open_weights(path) as src:
        return _chunk_hist((c for _, c in _pr_scores(src, name).chunks(name, dtype)), dtype, prefix, known, width)


def _pr_gather(path, name, dtype, prefix, known):
    from .io import open_weights
    from .pruning.allocation import _chunk_gather

    with open_weights(path) as src:
        return _chunk_gather((c for _, c in _pr_scores(src, name).chunks(name, dtype)), dtype, prefix, known)


def _pr_gt_eq(path, name, tau):
    from .io import open_weights
    from .pruning.allocation import _stream_gt_eq

    with open_weights(path) as src:
        return _stream_gt_eq(_pr_scores(src, name), name, tau)


def _pr_mask(path, name, count, tau):
    from .io import open_weights
    from .pruning.allocation import _stream_mask

    with open_weights(path) as src:
        return _stream_mask(_pr_scores(src, name), name, count, tau)


def _pr_topk(path, name, count):
    from .io import open_weights
    from .pruning.allocation import _stream_topk

    with open_weights(path) as src:
        return _stream_topk(_pr_scores(src, name), name, count)


def prune(path, *, client=None, address=None, method: str = "global", sparsity: float, layers=None):
    """:func:`ratedist.pruning.prune` of a checkpoint by magnitude, its per-tensor passes run as Dask tasks.

    Parameters
    ----------
    path : str, os.PathLike or WeightsSource
        A checkpoint every worker can open at that path.
    client, address
        As in :func:`model_rate_distortion`.
    method : {"global", "uniform", "adaptive", "er", "erk"}
        As in :func:`ratedist.pruning.prune` (LAMP is not offered here: its candidate sets grow
        on the client; use ``ratedist.pruning.prune(open_weights(path), method="lamp")``).
    sparsity, layers
        As in :func:`ratedist.pruning.prune`.

    Returns
    -------
    PruneResult
        Identical to ``ratedist.pruning.prune(open_weights(path), ...)``: same masks, counts and report.

    Notes
    -----
    The masks (one byte per weight) come back through the scheduler; everything else that
    travels is a histogram of 2^16 counts per tensor and pass, or a handful of values.
    """
    from .io import open_weights
    from .pruning.allocation import (
        _assemble_result,
        _check_reachable,
        _check_sparsity,
        _method_quota,
        _phantoms,
        _radix_kth,
        _shape_of,
        _StreamScores,
        _take_ties,
        check_choice,
        integer_counts,
        n_keep_for,
        select_layers,
    )

    if method == "lamp":
        raise InvalidArgumentError("`method` 'lamp' is not distributed; run ratedist.pruning.prune(open_weights(path), "
                                   "method='lamp') (it streams on one machine).")
    check_choice("method", method, _PRUNE_METHODS)
    s = _check_sparsity(sparsity)
    path = _checkpoint(path)
    with open_weights(path) as src:
        all_names = list(src)
        shapes = {k: _shape_of(src, k) for k in all_names}
        names = select_layers(_phantoms(src, all_names), layers)
        sc = _StreamScores(src, names, None, absolute=False)  # sizes and score dtypes (headers only)
        sizes_d, dtypes = sc.sizes, sc.dtypes
    sizes = np.array([sizes_d[k] for k in names], dtype=np.int64)
    n_total = int(sizes.sum())
    n_keep = n_keep_for(s, n_total)
    L = len(names)
    with _client(client, address) as c:
        def run(fn, *args_per_name, names_=names):
            return c.gather([c.submit(fn, path, k, *(a[i] if isinstance(a, list) else a for a in args_per_name),
                                      pure=False) for i, k in enumerate(names_)])

        run(_pr_check, names_=all_names)
        _check_reachable(method, s, n_keep, n_total, L)
        densities: dict = {}
        if method == "global":
            if 0 < n_keep < n_total:
                dtype = np.result_type(*[dtypes[k] for k in names])

                def histogram(prefix, known, width):
                    return np.sum(run(_pr_hist, dtype, prefix, known, width), axis=0, dtype=np.int64)

                def gather(prefix, known):
                    return np.concatenate(run(_pr_gather, dtype, prefix, known))

                tau = _radix_kth(histogram, gather, n_total - n_keep, dtype)
                ge = run(_pr_gt_eq, tau)
                counts = _take_ties([g for g, _ in ge], [e for _, e in ge], n_keep)
            else:
                tau, counts = None, (sizes if n_keep >= n_total else np.zeros(L, dtype=np.int64))
            masks = run(_pr_mask, [int(x) for x in counts], tau)
        else:
            quota, lower, densities = _method_quota(method, s, sizes, n_keep, n_total, [shapes[k] for k in names],
                                                    names)
            counts = integer_counts(quota, n_keep, lower, sizes)
            masks = run(_pr_topk, [int(x) for x in counts])
    return _assemble_result(all_names, shapes.__getitem__, dict(zip(names, masks)), n_keep, n_total, s, method,
                            densities)


# ----------------------------------------------------------------------------- quantizers


def _q_names(path: str) -> list[str]:
    from .io import codable_weights, open_weights

    with open_weights(path) as src:
        return list(codable_weights(src)[0])


def _q_encode(path: str, name: str, kw: dict):
    from .io import open_weights
    from .quant import encode

    with open_weights(path) as src:
        return encode({name: src[name]}, **kw)


def quant_encode_tensors(path, *, client=None, address=None, names=None, method: str = "tcq",
                         rate: float | None = None, distortion: float | None = None, metric: str = "l1",
                         normalize: str | None = "l2", **coder_options) -> dict:
    """:func:`ratedist.quant.encode` of every tensor of a checkpoint on its own, one Dask task per tensor.

    Each tensor gets its own stream at its own target (``rate`` bits per parameter, or
    ``distortion``), which is what ``encode({name: tensor}, ...)`` gives in-process, byte for
    byte.  This is not the model-level allocation of ``encode(weights, ...)`` (one common slope
    over all tensors, one stream): that still runs in one process.

    Parameters
    ----------
    path : str, os.PathLike or WeightsSource
        A checkpoint every worker can open at that path.
    client, address
        As in :func:`model_rate_distortion`.
    names : list of str, optional
        Tensors to code (default: every floating-point tensor; integer and boolean ones are skipped).
    method, rate, distortion, metric, normalize, **coder_options
        As in :func:`ratedist.quant.encode`.

    Returns
    -------
    dict of str to QuantEncoding
        In checkpoint (or ``names``) order.  The decoded weights come back with each stream.
    """
    from .io import codable_weights, open_weights

    path = _checkpoint(path)
    if names is not None:
        if isinstance(names, str):
            raise InvalidArgumentError(f"`names` must be a list of tensor names, got the string {names!r}.")
        with open_weights(path) as src:
            names = list(codable_weights(src, list(names))[0])  # the usual errors for a bad selection
    kw = dict(method=method, rate=rate, distortion=distortion, metric=metric, normalize=normalize, **coder_options)
    with _client(client, address) as c:
        if names is None:
            names = c.submit(_q_names, path, pure=False).result()
        encs = c.gather([c.submit(_q_encode, path, k, kw, pure=False) for k in names])
    return dict(zip(names, encs))
