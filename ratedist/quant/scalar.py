"""Entropy-coded scalar quantization: a uniform quantizer with a deadzone and fitted reconstructions.

For a step Δ and a rounding offset θ ∈ (0, ½] the index of a weight u is

    k = sign(u) · ⌊|u|/Δ + θ⌋,

so the zero bin is |u| < (1 − θ)Δ (θ = ½ is plain rounding; a smaller θ widens the deadzone,
which is what an entropy-coded quantizer wants at low rates) and bin m ≥ 1 covers
|u| ∈ [(m − θ)Δ, (m + 1 − θ)Δ).  Each bin is reproduced at ``(m − θ + f_m)Δ`` where f_m is the
median of the bin's values (metric ``"l1"``) or their mean (``"mse"``), expressed as a
fraction of the bin and rounded to 1/256; bins m = 1..15 get their own f_m, the bins above
share one.  The indices are range-coded with their exact empirical law
(:mod:`ratedist.quant._symbols`, one context).

On a Laplacian source under absolute error this quantizer, with Δ and θ optimized, needs
+29 %, +28 % and +22 % more rate than R(D) at 0.5, 1 and 2 bits; the tests compute that
value exactly and check the implementation against it.  It is the baseline every other
coder of :mod:`ratedist.quant` must beat.

The operating points (:meth:`ScalarQuantizer.candidates`) are a ladder of steps, an eighth
of an octave apart, relative to the tensor's RMS, times a set of deadzones; the allocator
ranks them with :meth:`ScalarQuantizer.estimate`, which computes the exact bin counts and
the distortion of exact per-bin medians from one sort of the magnitudes and prefix sums.
"""

from __future__ import annotations

import math

import numpy as np

from ..errors import CorruptStreamError
from ._base import TensorCode
from ._symbols import MAX_MAGNITUDE, SCALAR_FSM, decode_indices, default_chains, encode_indices

__all__ = ["ScalarQuantizer", "THETAS"]

#: deadzone rounding offsets offered as operating points (½ = plain rounding)
THETAS = (0.5, 0.42, 0.35, 0.3, 0.26, 0.22, 0.18, 0.14)
_N_OWN = 15          # bins 1.._N_OWN get their own reconstruction offset
_FRAC = 256          # reconstruction offsets are multiples of 1/256 of the step (stored as one byte)
_LADDER = (-80, 17)  # steps RMS·2^(j/8) for j in this range: from ~1e-3 RMS to ~4 RMS


def _indices(a: np.ndarray, step: float, theta: float) -> np.ndarray:
    return np.floor(a / step + theta).astype(np.int64)


def _levels(m: np.ndarray, theta: float, step: float, table: np.ndarray) -> np.ndarray:
    """Reconstruction magnitudes of indices ``m`` (≥ 0); the decoder and encoder share this function."""
    f = (table[np.minimum(m, _N_OWN + 1) - 1].astype(np.float64) + 0.5) / _FRAC
    return np.where(m > 0, (m.astype(np.float64) - theta + f) * step, 0.0)


class ScalarQuantizer:
    """Deadzone uniform scalar quantizer with an entropy coder (see the module docstring).

    Implements :class:`ratedist.quant._base.TensorCoder`.
    """

    name = "scalar"

    def candidates(self, u: np.ndarray, metric: str) -> list[dict]:
        rms = float(np.sqrt(np.mean(np.square(u)))) if u.size else 0.0
        if rms == 0.0:
            return [{"step": 1.0, "theta": 0.5}]
        amax = float(np.max(np.abs(u)))
        out = []
        for j in range(_LADDER[1], _LADDER[0] - 1, -1):
            step = rms * 2.0 ** (j / 8)
            if amax / step > MAX_MAGNITUDE / 2:
                break
            for theta in THETAS:
                out.append({"step": float(step), "theta": float(theta)})
        # the all-zero point: a step beyond every weight
        out.insert(0, {"step": float(2.0 * amax + rms), "theta": 0.5})
        return out

    # ------------------------------------------------------------------ estimates (allocation)

    def prepare(self, u: np.ndarray, metric: str):
        """Sorted magnitudes and their prefix sums, shared by every :meth:`estimate` of one tensor."""
        a = np.sort(np.abs(u))
        p1 = np.concatenate([[0.0], np.cumsum(a)])
        p2 = np.concatenate([[0.0], np.cumsum(a * a)]) if metric == "mse" else None
        return a, p1, p2

    def estimate(self, prepared, metric: str, *, step: float, theta: float) -> tuple[float, float]:
        """(bits, Σ distortion) of one operating point, with exact per-bin medians or means.

        Exact bin counts give the entropy; the table and coder overhead are estimated.
        """
        a, p1, p2 = prepared
        n = a.shape[0]
        m_max = int(_indices(a[-1:], step, theta)[0]) if n else 0
        edges = (np.arange(1, m_max + 1, dtype=np.float64) - theta) * step
        cut = np.concatenate([[0], np.searchsorted(a, edges, side="left"), [n]])
        # floor(a/Δ + θ) and the edges can disagree by one ulp at a boundary; the estimate ignores it
        cnt = np.diff(cut).astype(np.float64)
        lo, hi = cut[:-1], cut[1:]
        # reconstruction of each bin as the coder makes it: its own rounded statistic for bins
        # 1.._N_OWN, one shared rounded statistic above (the mean exactly from prefix sums, the median
        # from a strided sample of at most 4096 of those values)
        base = (np.arange(m_max + 1, dtype=np.float64) - theta) * step
        frac = np.full(m_max + 1, 0.5)
        own = min(m_max, _N_OWN)
        if metric == "l1":
            mid = lo + (hi - lo) // 2
            med = a[np.minimum(mid, n - 1)]
            frac[1:own + 1] = (med[1:own + 1] - base[1:own + 1]) / step
            if m_max > _N_OWN:
                start = int(cut[_N_OWN + 1])
                idx = np.arange(start, n, max(1, -(-(n - start) // 4096)))
                sub = a[idx]
                mm = np.floor(sub / step + theta)
                frac[own + 1:] = float(np.median(sub / step - (mm - theta)))
        else:
            s1 = p1[hi] - p1[lo]
            mean = np.where(cnt > 0, s1 / np.maximum(cnt, 1), 0.0)
            frac[1:own + 1] = (mean[1:own + 1] - base[1:own + 1]) / step
            if m_max > _N_OWN:
                c_hi = cnt[own + 1:].sum()
                if c_hi:
                    frac[own + 1:] = float((s1[own + 1:].sum() - (base[own + 1:] * cnt[own + 1:]).sum()) / (step * c_hi))
        frac = (np.clip(np.floor(np.where(cnt > 0, frac, 0.5) * _FRAC), 0, _FRAC - 1) + 0.5) / _FRAC
        r = base + frac * step
        r[0] = 0.0                      # the zero bin reproduces 0
        if metric == "l1":
            split = np.clip(np.searchsorted(a, r, side="left"), lo, hi)
            below = r * (split - lo) - (p1[split] - p1[lo])
            above = (p1[hi] - p1[split]) - r * (hi - split)
            dist = float(np.sum(below + above))
        else:
            s1, s2 = p1[hi] - p1[lo], p2[hi] - p2[lo]
            dist = float(np.sum(s2 - 2 * r * s1 + r * r * cnt))
        nz = cnt[cnt > 0]
        bits = float(-np.sum(nz * np.log2(nz / n))) + (n - cnt[0])
        # the offset table, two varints and the range coder's last word; the adaptive laws cost about
        # (K − 1)/2 · log2(n) bits per context on top of the entropy (K used symbols)
        k_used = float(np.count_nonzero(cnt[:17]))
        table = _N_OWN + 1 + 8 + 3 * (k_used - 1) / 2 * math.log2(max(n, 2)) / 8
        return bits + 8.0 * table, max(dist, 0.0)

    # ------------------------------------------------------------------ the coder

    def encode_tensor(self, u: np.ndarray, metric: str, *, step: float, theta: float) -> TensorCode:
        step, theta = float(step), float(theta)
        a = np.abs(u)
        m = _indices(a, step, theta)
        m_max = int(m.max()) if m.size else 0
        if m_max > MAX_MAGNITUDE:
            raise ValueError(f"step {step!r} gives indices up to {m_max}, above {MAX_MAGNITUDE}")
        table = np.full(_N_OWN + 1, _FRAC // 2, dtype=np.uint8)
        frac = a / step - (m.astype(np.float64) - theta)       # position inside the bin, in [0, 1)
        for b in range(1, min(m_max, _N_OWN + 1) + 1):
            sel = frac[m == b] if b <= _N_OWN else frac[m > _N_OWN]
            if sel.size:
                stat = float(np.median(sel)) if metric == "l1" else float(np.mean(sel))
                table[b - 1] = min(_FRAC - 1, max(0, int(math.floor(stat * _FRAC))))
        q = np.where(u < 0, -m, m)
        payload = table.tobytes() + encode_indices(q, np.zeros(q.shape[0], dtype=np.int64), SCALAR_FSM,
                                                      default_chains(q.shape[0]))
        recon = np.copysign(_levels(m, theta, step, table), np.where(q < 0, -1.0, 1.0))
        recon[m == 0] = 0.0
        return TensorCode(params={"step": step, "theta": theta}, payload=payload, recon=recon)

    def decode_tensor(self, payload: bytes, params: dict, n: int, metric: str) -> np.ndarray:
        step, theta = params.get("step"), params.get("theta")
        if not (isinstance(step, float) and math.isfinite(step) and step > 0):
            raise CorruptStreamError(f"scalar tensor header has `step` {step!r}; expected a positive finite float.")
        if not (isinstance(theta, float) and 0.0 < theta <= 0.5):
            raise CorruptStreamError(f"scalar tensor header has `theta` {theta!r}; expected a float in (0, 0.5].")
        if len(payload) < _N_OWN + 1:
            raise CorruptStreamError(f"scalar tensor payload has {len(payload)} bytes, shorter than its offset table.")
        table = np.frombuffer(payload, dtype=np.uint8, count=_N_OWN + 1)
        q, _ = decode_indices(payload[_N_OWN + 1:], n, SCALAR_FSM, default_chains(n))
        m = np.abs(q)
        recon = np.copysign(_levels(m, theta, step, table), np.where(q < 0, -1.0, 1.0))
        recon[m == 0] = 0.0
        if not np.all(np.isfinite(recon)):
            raise CorruptStreamError("scalar tensor decodes to non-finite values; its header is corrupted.")
        return recon
