"""The fast sequential SuRP encoder (docs/theory.md §4b, §4c).

Same algorithm, same floating-point operations in the same order, and hence the
same stream as the slow :mod:`ratedist.surp.reference`, but each iteration
costs O(log n) plus the selection: the eligible set is kept incrementally by
the numba kernel :func:`ratedist.kernels._surp_cpu.seq_encode_run`, and the
first eligible position in the iteration's shared permutation is found either
by scanning E (|E| small) or by walking the permutation (|E| large), i.e. in
O(min(|E|, n/|E|)) expected work.

Parameters of the refresh rule (docs/theory.md §4b.5) and choices made here:

* τ = lam_inv · sf with sf = ln(n / ln n) (n ≥ 3; n < 3 uses sf of n = 3),
  α_eff = α / sf, lam_inv₀ = α_eff · mean of the non-zero magnitudes (for dense
  input this is the reference code's mean over all n; for already-sparse input,
  docs/theory.md §4b.8, the zeros are kept and excluded).
* Refresh when E is empty: counter += 1; every ``refresh_every`` (20)
  refreshes α_eff ← ``refresh_factor`` (0.9) · α_eff; lam_inv ← α_eff · S / n_active,
  retried until E is non-empty.  S is the L1 residual Σ r_i, kept as a running
  float64 sum (S₀ = ``np.sum(a)``, then S ← S − τ at each iteration); it equals
  the mean residual over all n entries of the reference code (times n) for dense
  input, and the decoder can recompute it, so a refresh event costs only its
  iteration and its retry count rather than a float64.
* lam_inv ← lam_inv · (n−1)/n after every iteration.
"""

from __future__ import annotations

import math
import time
import warnings

import numpy as np

from .._validation import check_int
from ..errors import RatedistWarning
from ._common import check_sparsities, flatten, needed_nonzeros
from ._sequential import (MAX_RETRIES, SequentialParams, SequentialTrace, max_iterations_for,
                          sequential_params)
from ._sequential import stride_tables as _strides

__all__ = ["SequentialParams", "SequentialTrace", "sequential_params", "run_fast", "encode_sequential",
           "max_iterations_for", "MAX_RETRIES", "encode_reference"]

# Scan E (cost ~c_s |E|) rather than walk the permutation (cost ~c_w n / |E|) when
# |E|**2 <= _LIST_KAPPA * n, _LIST_KAPPA ~ c_w / c_s measured on a 2-core Xeon.
_LIST_KAPPA = 4.0
_BVALS_MAX = 1 << 20  # sorted values of the current bucket kept contiguous (larger buckets read r)

_SPEC_OFF = 1 << 62  # speculate_from that never searches ahead
_SPEC_DEFAULT: list = []


def _default_speculate_from() -> int:
    """K.SPEC_MIN where searching ahead on a second thread can pay: two or more numba threads on the
    OpenMP or TBB layer (numba's fallback 'workqueue' layer is not used for it), else off."""
    if not _SPEC_DEFAULT:
        import numba

        from ..kernels import _surp_cpu as K

        value = _SPEC_OFF
        if numba.get_num_threads() >= 2:
            K.parallel_probe(np.empty(4, dtype=np.int64))
            if numba.threading_layer() in ("omp", "tbb"):
                value = K.SPEC_MIN
        _SPEC_DEFAULT.append(value)
    return _SPEC_DEFAULT[0]


_STATUS = {0: "target", 1: "full", 2: "exhausted", 3: "nonpositive", 4: "retries", 5: "max_iterations"}


def run_fast(a: np.ndarray, p: SequentialParams, stop_nnz: list[int], *, max_iterations: int,
             max_retries: int = MAX_RETRIES, progress: bool = False, snapshot=None,
             overwrite: bool = False, scan_threshold: int | None = None,
             reconstruct: bool = True, speculate_from: int | None = None,
             _log_cap: int | None = None, _search_thread: bool | None = None) -> SequentialTrace:
    """Run the numba kernel until every non-zero count in ``stop_nnz`` (increasing) is reached.

    ``snapshot(ahat)`` is called at each reached checkpoint when given.  With
    ``overwrite=True`` the magnitudes ``a`` become the residual in place (saves n floats).
    ``scan_threshold`` (|E| at or below which E is also kept as a list and scanned instead of
    walking the permutation; default sqrt(_LIST_KAPPA · n)) changes the speed, never the result.
    ``speculate_from`` (|E| from which the next iterations' searches are run ahead on a second
    thread while this one processes the current ones; default ``K.SPEC_MIN`` with two or more numba
    threads on the OpenMP or TBB layer, else off) also changes the speed only (``_search_thread=False``:
    the searches ahead run on this thread, a test of the corrections).
    With ``reconstruct=False`` (and no ``snapshot``) the final â is not replayed and ``ahat`` is None
    (saves n floats and a pass of random writes when only the stream is wanted).
    """
    from ..kernels import _surp_cpu as K
    from ._randomness import Permutations

    n = a.size
    r = a if overwrite else a.copy()
    order = np.empty(n, dtype=np.int32)
    bstart = np.empty(K._NB + 1, dtype=np.int64)
    npos = K.bucket_sort_init(r, order, bstart)
    bvals = np.empty(int(min(max(int(np.max(np.diff(bstart))), 1), _BVALS_MAX)), dtype=np.float64)
    perms = Permutations(n, p.seed)
    prime = perms.prime
    bm = np.zeros(2 * ((prime + 63) // 64), dtype=np.uint64)  # E and "selected", in σ-preimage space
    cm = np.zeros(((prime >> K._G) + 64) // 64, dtype=np.uint64)  # coarse E
    t_lo = max(64, math.isqrt(int(_LIST_KAPPA * n))) if scan_threshold is None else int(scan_threshold)
    elist = np.empty(t_lo + t_lo // 4 + 1, dtype=np.int32)
    sk = np.array(perms.sigma_keys, dtype=np.uint64)
    strides, inv_strides = _strides(perms)
    st_i = np.zeros(K.N_STATE, dtype=np.int64)
    st_i[K.I_BQ] = -1
    st_i[K.I_NPOS] = npos
    st_i[K.I_TLO] = t_lo
    st_i[K.I_SPEC] = _default_speculate_from() if speculate_from is None else max(int(speculate_from), 1)
    alog = np.empty((2, K.LOG_CAP if _log_cap is None else max(int(_log_cap), 1)), dtype=np.int32)
    if _search_thread is None:
        import numba

        _search_thread = numba.get_num_threads() >= 2
    pipe = bool(_search_thread) and st_i[K.I_SPEC] < _SPEC_OFF
    sh = np.zeros(K.N_SH, dtype=np.int64)
    req = np.zeros((2, 4), dtype=np.int64)
    wlist = np.empty((2, elist.size), dtype=np.int32)
    sj = np.empty((2, K.PIPE_B), dtype=np.int64)
    sy = np.empty((2, K.PIPE_B), dtype=np.int64)
    rdy = np.zeros(2 * K.PIPE_B, dtype=np.int64)
    st_f = np.array([p.lam_inv0, p.alpha_eff0, p.s0, 0.0], dtype=np.float64)
    kb = np.uint64(perms.base)
    cps = []
    counts = np.zeros(2, dtype=np.int64)
    status = "target"
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=int(stop_nnz[-1]) if stop_nnz else 0, unit="nz", desc="surp encode", leave=False)
    size = int(min((stop_nnz[-1] if stop_nnz else 0) * 1.1 + 1024, max_iterations + 1))
    out = {"j": np.empty(size, np.int64), "m": np.empty(size, np.int32), "e": np.empty(size, np.int32),
           "tau": np.empty(size, np.float64), "new": np.empty(size, np.uint8)}
    hkey = np.empty(min(size, max(npos, 1)), np.float64)  # heap keys; the heap holds at most min(t, npos)
    ev = {"t": np.empty(1024, np.int64), "c": np.empty(1024, np.int64)}
    used, used_ev = 0, 0
    ahat = np.zeros(n, dtype=np.float64) if (reconstruct or snapshot is not None) else None
    replayed = 0
    step = 1 << 18 if progress else 1 << 62
    try:
        for target in stop_nnz:
            while True:
                if used >= out["j"].size:
                    for key in out:
                        out[key] = np.concatenate([out[key], np.empty(out[key].size, out[key].dtype)])
                if used_ev >= ev["t"].size:
                    for key in ev:
                        ev[key] = np.concatenate([ev[key], np.empty(ev[key].size, ev[key].dtype)])
                if st_i[K.I_HEAP] >= hkey.size:
                    hkey = np.concatenate([hkey, np.empty(hkey.size, hkey.dtype)])
                hi = min(out["j"].size, used + step)
                args = (r, order, bstart, bvals, hkey, bm, cm, elist, st_i, st_f, kb, n, prime,
                        sk, strides, inv_strides, perms.big_a, perms.bbits,
                        p.sf, p.decay, float(p.n_active), p.refresh_every, p.refresh_factor,
                        max_retries, max_iterations, target, out["j"][used:hi], out["m"][used:hi],
                        out["e"][used:hi], out["tau"][used:hi], out["new"][used:hi],
                        ev["t"][used_ev:], ev["c"][used_ev:], counts, alog)
                if pipe:
                    sh[K.SH_STOP] = 0
                    sh[K.SH_ALIVE] = 0
                    code = K.seq_encode_pipe(*args, sh, req, wlist, sj, sy, rdy)
                else:
                    code = K.seq_encode_run(*args, 2, sh, req, wlist, sj, sy, rdy)
                used += int(counts[0])
                used_ev += int(counts[1])
                if bar is not None:
                    bar.n = int(st_i[K.I_NNZ])
                    bar.refresh()
                if code == K.ST_FULL:
                    continue
                if code == K.ST_INTERNAL:  # pragma: no cover - a kernel invariant failed
                    raise RuntimeError("SuRP encoder kernel: the permutation walk found no eligible index.")
                status = _STATUS[int(code)]
                break
            if status != "target":
                break
            cps.append((int(st_i[K.I_T]), int(st_i[K.I_NNZ]), float(st_f[K.F_S])))
            if snapshot is not None:
                K.replay_add(ahat, out["m"][replayed:used], out["tau"][replayed:used])
                replayed = used
                snapshot(ahat)
    finally:
        if bar is not None:
            bar.close()
    del order, bm, cm, hkey, bvals
    if ahat is not None:
        K.replay_add(ahat, out["m"][replayed:used], out["tau"][replayed:used])
    return SequentialTrace(j=out["j"][:used], m=out["m"][:used], esize=out["e"][:used], tau=out["tau"][:used],
                           new=out["new"][:used].view(bool), ev_t=ev["t"][:used_ev], ev_c=ev["c"][:used_ev],
                           checkpoints=cps, status=status, residual=r, ahat=ahat,
                           final=(int(st_i[K.I_T]), int(st_i[K.I_NNZ]), float(st_f[K.F_S])))


def encode_sequential(weights, sparsity, *, seed: int = 0, alpha=None, normalize: str = "l2", progress: bool = False,
                      keep_reconstructions: bool = False, refresh_every: int = 20, refresh_factor: float = 0.9,
                      max_iterations: int | None = None, include_buffers: bool = False, _engine: str = "fast"):
    """Sequential SuRP encode; see :func:`ratedist.surp.encode` for the parameters."""
    from ._common import unflatten
    from .report import SurpEncoding
    from .stream import build_sequential_stream

    t0 = time.perf_counter()
    seed = check_int("seed", seed, minimum=0, maximum=2**63 - 1)
    targets = check_sparsities(sparsity)
    flat = flatten(weights, normalize, include_buffers=include_buffers)
    a = flat.magnitudes
    p = sequential_params(a, alpha=alpha, refresh_every=refresh_every, refresh_factor=refresh_factor, seed=seed)
    n = flat.n
    cap = max_iterations_for(n)
    max_iterations = cap if max_iterations is None else check_int("max_iterations", max_iterations, minimum=0,
                                                                    maximum=cap)
    ks = [needed_nonzeros(s, n) for s in targets]
    # λ̂ = 1 / mean(a) of report.laplace_lam_hat, from the sum already taken (np.mean(a) is exactly
    # np.sum(a) / n), and the non-zero count already taken (recounted only when it may be 0)
    mean_a = p.s0 / n
    lam_hat = 1.0 / mean_a if mean_a > 0 else math.inf
    n_act = p.n_active if p.n_active > 1 else int(np.count_nonzero(a))
    reach = [k for k in ks if k <= n_act]
    run_ks = list(reach)
    if len(reach) < len(ks) and n_act > 0 and (not reach or reach[-1] < n_act):
        run_ks.append(n_act)  # the most that can be reached: every non-zero weight selected
    snaps = []

    def snapshot(ahat):
        snaps.append(unflatten(flat.signs * ahat, flat.table))

    if _engine == "reference":
        from .reference import run_reference

        trace = run_reference(a, p, run_ks, max_iterations=max_iterations, max_retries=MAX_RETRIES)
        if keep_reconstructions:  # replay the reference's selections to snapshot its checkpoints
            ah = np.zeros(n)
            pos = 0
            for (t_k, _, _) in trace.checkpoints:
                for t in range(pos, t_k):
                    ah[trace.m[t]] = ah[trace.m[t]] + trace.tau[t]
                pos = t_k
                snapshot(ah)
    else:
        trace = run_fast(a, p, run_ks, max_iterations=max_iterations, progress=progress,
                         snapshot=snapshot if keep_reconstructions else None, overwrite=True,
                         reconstruct=keep_reconstructions)
    reached = min(len(trace.checkpoints), len(reach))
    if reached < len(ks):
        if len(trace.checkpoints) > reached:
            final = trace.checkpoints[reached]
            why = f"every non-zero weight is selected (the input has {n_act} non-zeros of {n})"
        else:
            final = trace.final
            why = {"exhausted": "every residual is zero", "nonpositive": "the threshold underflowed to zero",
                   "retries": f"{MAX_RETRIES} refreshes in a row found no eligible index",
                   "max_iterations": f"the iteration cap {max_iterations} was reached"}.get(trace.status,
                                                                                             trace.status)
            if keep_reconstructions:
                snapshot(trace.ahat)
        t_f, nnz_f, _ = final
        missed = ", ".join(f"{s:g}" for s in targets[reached:])
        warnings.warn(f"SuRP stopped after {t_f} iterations because {why}: reached sparsity "
                      f"{1 - nnz_f / n:.6g} (nnz {nnz_f} of {n}); target(s) {missed} not reached. "
                      "The stream's last checkpoint holds what was reached.", RatedistWarning, stacklevel=3)
        trace.checkpoints = list(trace.checkpoints[:reached]) + [final]
        snaps = snaps[:reached + 1]
        targets = targets[:reached + 1]
    stream, report = build_sequential_stream(flat, p, trace, targets, seconds_start=t0, lam_hat=lam_hat)
    return SurpEncoding(stream=stream, report=report,
                        reconstructions=tuple(snaps) if keep_reconstructions else None)


def encode_reference(weights, sparsity, **kwargs):
    """:func:`ratedist.surp.encode` (sequential) driven by the slow reference
    (:func:`ratedist.surp.reference.run_reference`); the same stream, slowly."""
    return encode_sequential(weights, sparsity, _engine="reference", **kwargs)
