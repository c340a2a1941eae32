"""numba.cuda twin of :mod:`ratedist.kernels._trellis_cpu`: bitshift-trellis Viterbi and decode on a GPU.

Viterbi: one thread block per trellis block; its threads share the states (thread ``i``
takes the residues ``j ≡ i`` and the states ``s ≡ i`` modulo the block size).  Per group
the threads first find the best predecessor of every residue (first minimum over ``a``,
strict ``<``, increasing ``a``), synchronize, then write every state's cost ``m + d``
with the distortion summed in component order, exactly as the CPU kernel does.  Squares
go through ``libdevice.dmul_rn``, which the compiler never fuses into a multiply-add
(the CPU kernel does not fuse either), so the costs, hence the paths, are the same bits.
The final state is the first minimum: every thread scans its states in increasing order
and thread 0 merges the partial minima, the smaller index winning ties.  Path costs and
back-pointers live in global memory; blocks are processed in batches that fit
:data:`SCRATCH_BYTES`.  Decode: one thread per trellis block (a state scan and table
lookups).  Runs in numba's simulator under ``NUMBA_ENABLE_CUDASIM=1`` (tests: tiny sizes).
Callers validate.
"""

from __future__ import annotations

import math
import os

import numpy as np
from numba import cuda, float64, int64

__all__ = ["viterbi_blocks_cuda", "decode_blocks_cuda", "THREADS", "SCRATCH_BYTES"]

THREADS = 256  # threads per trellis block (Viterbi); at most _MAX_THREADS
_MAX_THREADS = 256
SCRATCH_BYTES = 1 << 30  # device scratch (costs, back-pointers) per batch of blocks
_DECODE_THREADS = 128

if os.environ.get("NUMBA_ENABLE_CUDASIM", "0") == "1":  # the simulator has no libdevice
    def _mul(a, b):
        return a * b
else:  # pragma: no cover - needs a GPU
    from numba.cuda import libdevice

    @cuda.jit(device=True, inline=True)
    def _mul(a, b):
        return libdevice.dmul_rn(a, b)


@cuda.jit(device=True)
def _pass(x, g0, tb, rot, nv_last, cb, L, k, l1, start, end, cost2, mm, bp, states,
          red_v, red_i):  # pragma: no cover - compiled
    """One Viterbi pass of one trellis block (all threads of the block call it); see the CPU twin."""
    tid = cuda.threadIdx.x
    nth = cuda.blockDim.x
    n_groups = x.shape[0]
    v = x.shape[1]
    n_states = 1 << L
    n_pred = 1 << k
    n_res = 1 << (L - k)
    for t in range(tb):
        g = g0 + (t + rot) % tb
        nv = nv_last if g == n_groups - 1 else v
        cur = t & 1
        if t == 0:
            for j in range(tid, n_res, nth):
                mm[j] = 0.0 if (start < 0 or j == start) else math.inf
                bp[0, j] = 0
        else:
            for j in range(tid, n_res, nth):
                best = cost2[1 - cur, j]
                ba = 0
                for a in range(1, n_pred):
                    c = cost2[1 - cur, a * n_res + j]
                    if c < best:
                        best = c
                        ba = a
                mm[j] = best
                bp[t, j] = ba
        cuda.syncthreads()
        for s in range(tid, n_states, nth):
            e = x[g, 0] - cb[0, s]
            d = abs(e) if l1 else _mul(e, e)
            for i in range(1, nv):
                e = x[g, i] - cb[i, s]
                d = d + (abs(e) if l1 else _mul(e, e))
            cost2[cur, s] = mm[s >> k] + d
        cuda.syncthreads()
    last = (tb - 1) & 1
    best = math.inf
    sb = 0
    if end < 0:
        for s in range(tid, n_states, nth):
            c = cost2[last, s]
            if c < best:
                best = c
                sb = s
    else:
        for a in range(tid, n_pred, nth):
            s = end + a * n_res
            c = cost2[last, s]
            if c < best:
                best = c
                sb = s
    red_v[tid] = best
    red_i[tid] = sb
    cuda.syncthreads()
    if tid == 0:
        best = math.inf
        sb = 0
        for i in range(nth):
            c = red_v[i]
            if c < best or (c == best and red_i[i] < sb):
                best = c
                sb = red_i[i]
        s = sb
        for t in range(tb - 1, -1, -1):
            states[t] = s
            s = (s >> k) + (int64(bp[t, s >> k]) << (L - k))
        red_v[0] = best
    cuda.syncthreads()


@cuda.jit
def _viterbi_kernel(x, block, nv_last, cb, L, k, l1, b0, cost_buf, mm_buf, bp_buf, states_buf,
                    codes, dist):  # pragma: no cover - compiled
    red_v = cuda.shared.array(_MAX_THREADS, dtype=float64)
    red_i = cuda.shared.array(_MAX_THREADS, dtype=int64)
    slot = cuda.blockIdx.x
    b = b0 + slot
    n_groups = x.shape[0]
    n_blocks = (n_groups + block - 1) // block
    if b >= n_blocks:
        return
    tid = cuda.threadIdx.x
    nth = cuda.blockDim.x
    g0 = b * block
    tb = min(block, n_groups - g0)
    cost2 = cost_buf[slot]
    mm = mm_buf[slot]
    bp = bp_buf[slot]
    states = states_buf[slot]
    if tb * k >= L - k:  # tail-biting: the two-pass approximation
        rot = tb // 2
        _pass(x, g0, tb, rot, nv_last, cb, L, k, l1, -1, -1, cost2, mm, bp, states, red_v, red_i)
        r = states[tb - 1 - rot] & ((1 << (L - k)) - 1)
        cuda.syncthreads()
        _pass(x, g0, tb, 0, nv_last, cb, L, k, l1, r, r, cost2, mm, bp, states, red_v, red_i)
    else:
        _pass(x, g0, tb, 0, nv_last, cb, L, k, l1, 0, -1, cost2, mm, bp, states, red_v, red_i)
    kmask = (1 << k) - 1
    for t in range(tid, tb, nth):
        codes[g0 + t] = states[t] & kmask
    if tid == 0:
        dist[b] = red_v[0]


def viterbi_blocks_cuda(x: np.ndarray, block: int, nv_last: int, codebook_t: np.ndarray, L: int, k: int, l1: bool,
                        codes: np.ndarray, dist: np.ndarray | None = None, *, threads: int | None = None) -> None:
    """Same contract as :func:`ratedist.kernels._trellis_cpu.viterbi_blocks` (host arrays in and out).

    ``threads`` per trellis block: :data:`THREADS` by default (the result does not depend on it).
    """
    n_groups = x.shape[0]
    n_blocks = (n_groups + block - 1) // block
    n_states, n_res = 1 << L, 1 << (L - k)
    per_block = 16 * n_states + 8 * n_res + block * n_res + 8 * block
    batch = max(1, min(n_blocks, SCRATCH_BYTES // per_block))
    d_x = cuda.to_device(np.ascontiguousarray(x))
    d_cb = cuda.to_device(np.ascontiguousarray(codebook_t))
    d_codes = cuda.device_array(n_groups, dtype=np.uint8)
    d_dist = cuda.device_array(n_blocks, dtype=np.float64)
    cost_buf = cuda.device_array((batch, 2, n_states), dtype=np.float64)
    mm_buf = cuda.device_array((batch, n_res), dtype=np.float64)
    bp_buf = cuda.device_array((batch, block, n_res), dtype=np.uint8)
    states_buf = cuda.device_array((batch, block), dtype=np.int64)
    threads = max(1, min(int(THREADS if threads is None else threads), _MAX_THREADS))
    for b0 in range(0, n_blocks, batch):
        nb = min(batch, n_blocks - b0)
        _viterbi_kernel[nb, threads](d_x, block, nv_last, d_cb, L, k, l1, b0, cost_buf, mm_buf, bp_buf, states_buf,
                                     d_codes, d_dist)
    codes[:] = d_codes.copy_to_host()
    if dist is not None:
        dist[:] = d_dist.copy_to_host()


@cuda.jit(device=True, inline=True)
def _read_code(buf, g, k):  # pragma: no cover - compiled
    p = g * k
    i = p >> 3
    w = (int64(buf[i]) << 8) | int64(buf[i + 1])
    return (w >> (16 - (p & 7) - k)) & ((1 << k) - 1)


@cuda.jit
def _decode_kernel(buf, n_groups, block, k, L, cb, n, out):  # pragma: no cover - compiled
    b = cuda.grid(1)
    n_blocks = (n_groups + block - 1) // block
    if b >= n_blocks:
        return
    v = cb.shape[0]
    mask = (1 << L) - 1
    g0 = b * block
    tb = min(block, n_groups - g0)
    s = 0
    if tb * k >= L - k:
        first = max(0, tb - (L + k - 1) // k)
        for t in range(first, tb):
            s = ((s << k) | _read_code(buf, g0 + t, k)) & mask
    for t in range(tb):
        g = g0 + t
        s = ((s << k) | _read_code(buf, g, k)) & mask
        base = g * v
        for i in range(min(v, n - base)):
            out[base + i] = cb[i, s]


def decode_blocks_cuda(buf: np.ndarray, n_groups: int, block: int, k: int, L: int, codebook_t: np.ndarray, n: int,
                       out: np.ndarray) -> None:
    """Same contract as :func:`ratedist.kernels._trellis_cpu.decode_blocks` (host arrays in and out)."""
    n_blocks = (n_groups + block - 1) // block
    d_out = cuda.device_array(n, dtype=np.float64)
    grid = max(1, (n_blocks + _DECODE_THREADS - 1) // _DECODE_THREADS)
    _decode_kernel[grid, _DECODE_THREADS](cuda.to_device(buf), n_groups, block, k, L,
                                          cuda.to_device(np.ascontiguousarray(codebook_t)), n, d_out)
    out[:] = d_out.copy_to_host()
