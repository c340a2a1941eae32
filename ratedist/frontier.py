"""The rate–distortion frontier of a model, as a user sees it: the bound and every coder, from real bytes.

:func:`frontier` computes the model's own rate–distortion bound
(:func:`ratedist.rd.model_rate_distortion`, certified) and sweeps every coder ratedist has —
SuRP (sequential and parallel), magnitude and LAMP pruning with coded values
(:func:`ratedist.pruning.cost`), and the quantizers of :mod:`ratedist.quant` — each point
measured from a stream that is decoded back, its distortion computed from the *decoded*
weights in one common measure d(u, û).  An optional ``evaluate(weights) -> float`` (test
accuracy, say) is called on every decoded model.  :func:`plot_frontier` draws the result.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ._validation import check_choice, check_weights
from .errors import InvalidArgumentError

__all__ = ["FrontierPoint", "Frontier", "METHODS", "frontier", "model_distortion", "plot_frontier"]

METHODS = ("surp", "surp_parallel", "magnitude", "lamp", "scalar", "tcq", "trellis")
_RATES = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)
_SPARSITIES = (0.98, 0.95, 0.9, 0.85, 0.8, 0.7, 0.6, 0.5)
_VALUE_BITS = (2, 3, 4, 6)


def model_distortion(weights: Mapping[str, Any], decoded: Mapping[str, Any], *, metric: str = "l1",
                     normalize: str | None = "l2") -> float:
    """d(u, û) = (1/n) Σ_t Σ_i ρ((w_ti − ŵ_ti)/‖w_t‖), ρ = |·| or (·)², the original norms.

    >>> w = {"a": np.array([3.0, 4.0])}
    >>> model_distortion(w, {"a": np.array([3.0, 0.0])})
    0.4
    """
    check_choice("metric", metric, ("l1", "mse"))
    check_choice("normalize", normalize, ("l2", "l1", None))
    from .quant.codec import _safe_norm

    a = check_weights("weights", weights)
    b = check_weights("decoded", decoded)
    if list(a) != list(b) or any(a[k].shape != b[k].shape for k in a):
        raise InvalidArgumentError("`decoded` must have the same tensor names and shapes as `weights`.")
    total, n = 0.0, 0
    for k in a:
        x = np.asarray(a[k], dtype=np.float64).ravel()
        y = np.asarray(b[k], dtype=np.float64).ravel()
        norm = _safe_norm(x, normalize)
        e = (x - y) / norm if norm > 0 else (x - y)
        total += float(np.sum(np.abs(e))) if metric == "l1" else float(np.dot(e, e))
        n += x.shape[0]
    return total / n


@dataclass(frozen=True)
class FrontierPoint:
    """One coded model: ``method``, measured ``n_bits`` / ``bpp``, ``distortion`` of the decoded weights,
    ``accuracy`` (from ``evaluate``, or None), the method's ``setting`` and ``seconds``."""

    method: str
    n_bits: int
    bpp: float
    distortion: float
    accuracy: float | None
    setting: dict
    seconds: float

    def to_dict(self) -> dict:
        return {"method": self.method, "n_bits": self.n_bits, "bpp": self.bpp, "distortion": self.distortion,
                "accuracy": self.accuracy, "setting": dict(self.setting), "seconds": self.seconds}


@dataclass(frozen=True)
class Frontier:
    """The bound (``bound``: a :class:`ratedist.rd.model.ModelRD`), every coder's ``points``, the settings."""

    n_params: int
    metric: str
    normalize: str | None
    bound: Any
    points: list = field(default_factory=list)
    reference_accuracy: float | None = None
    errors: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"n_params": self.n_params, "metric": self.metric, "normalize": self.normalize,
                "bound": self.bound.to_dict(), "reference_accuracy": self.reference_accuracy,
                "points": [p.to_dict() for p in self.points], "errors": dict(self.errors)}


def _surp_points(weights, sparsities, algorithm):
    from . import surp

    enc = surp.encode(weights, list(sparsities), algorithm=algorithm, seed=0)
    out = []
    for cp in enc.report.checkpoints:
        nbytes = cp.n_bits // 8
        dec = surp.decode(enc.stream[:nbytes], sparsity=cp.target)
        out.append((cp.n_bits, dec, {"sparsity": cp.target}))
    return out


def _pruning_points(weights, method, sparsities, value_bits):
    from .pruning import apply_masks, cost, decode_cost, prune

    out = []
    for s in sparsities:
        res = prune(weights, method="global" if method == "magnitude" else method, sparsity=s)
        pruned = apply_masks(weights, res.masks)
        for b in value_bits:
            c = cost(pruned, res.masks, value_bits=b, layers=list(res.report))
            out.append((c.n_bits, decode_cost(c.stream).weights, {"sparsity": s, "value_bits": b}))
    return out


def _quant_points(weights, method, rates, metric, normalize, options):
    from . import quant

    out = []
    for r in rates:
        enc = quant.encode(weights, method=method, rate=r, metric=metric, normalize=normalize, **options)
        out.append((enc.report.n_bits, quant.decode(enc.stream), {"rate": r, **enc.report.coder}))
    return out


def frontier(weights: Mapping[str, Any], *, metric: str = "l1", normalize: str | None = "l2",
             methods: Sequence[str] = METHODS, rates: Sequence[float] = _RATES,
             sparsities: Sequence[float] = _SPARSITIES, value_bits: Sequence[int] = _VALUE_BITS,
             evaluate: Callable[[Mapping[str, np.ndarray]], float] | None = None,
             coder_options: Mapping[str, dict] | None = None, progress: bool = False) -> Frontier:
    """Sweep every coder on ``weights`` and measure each point from decoded bytes, beside the model's bound.

    Parameters
    ----------
    weights : Mapping[str, array]
    metric, normalize
        The distortion d(u, û) every point is measured in (and the bound computed for).
        SuRP always codes in its own L1 sense; its points are still measured in ``metric``.
    methods : sequence of str
        Any of :data:`METHODS`.
    rates : sequence of float
        Target bits per parameter for the quantizers.
    sparsities, value_bits
        The SuRP checkpoints, and the pruning sweep (every sparsity × every value width).
    evaluate : callable, optional
        ``evaluate(decoded_weights) -> float``, called on every point and on the original.
    coder_options : mapping, optional
        Per quantizer method, keyword options (``{"tcq": {"states": 8}}``).

    Returns
    -------
    Frontier
        A method that fails (an unreachable target, say) is recorded in ``errors``, not raised.
    """
    from .rd.model import model_rate_distortion
    from .errors import RatedistError

    arrays = check_weights("weights", weights)
    for m in methods:
        check_choice("methods", m, METHODS)
    coder_options = dict(coder_options or {})
    bound = model_rate_distortion(arrays, metric=metric, normalize=normalize, units="bits")
    n = sum(int(a.size) for a in arrays.values())
    ref = float(evaluate(arrays)) if evaluate else None
    points, errors = [], {}
    for m in methods:
        t0 = time.perf_counter()
        if progress:
            import sys

            print(f"frontier: {m} ...", file=sys.stderr, flush=True)
        try:
            if m in ("surp", "surp_parallel"):
                raw = _surp_points(arrays, sparsities, "sequential" if m == "surp" else "parallel")
            elif m in ("magnitude", "lamp"):
                raw = _pruning_points(arrays, m, sparsities, value_bits)
            else:
                raw = _quant_points(arrays, m, rates, metric, normalize, coder_options.get(m, {}))
        except RatedistError as exc:
            errors[m] = str(exc).splitlines()[0]
            continue
        dt = (time.perf_counter() - t0) / max(1, len(raw))
        for n_bits, dec, setting in raw:
            d = model_distortion(arrays, dec, metric=metric, normalize=normalize)
            acc = float(evaluate(dec)) if evaluate else None
            points.append(FrontierPoint(method=m, n_bits=int(n_bits), bpp=n_bits / n, distortion=d, accuracy=acc,
                                        setting=setting, seconds=dt))
    return Frontier(n_params=n, metric=metric, normalize=normalize, bound=bound, points=points,
                    reference_accuracy=ref, errors=errors)


def _pareto(pts):
    """The points no other point beats in both bits and distortion, by increasing bits."""
    out, best = [], math.inf
    for p in sorted(pts, key=lambda p: (p.bpp, p.distortion)):
        if p.distortion < best:
            out.append(p)
            best = p.distortion
    return out


def plot_frontier(result: Frontier):
    """Rate (bits per parameter) against d(u, û): the bound as a band between its certificates, each coder's
    Pareto front, and accuracy on a second panel when the points have it.  Returns a matplotlib Figure."""
    import matplotlib.pyplot as plt

    has_acc = any(p.accuracy is not None for p in result.points)
    fig, axes = plt.subplots(1, 2 if has_acc else 1, figsize=(11 if has_acc else 6, 4.2), squeeze=False)
    ax = axes[0, 0]
    b = result.bound
    d = np.asarray(b.distortion)
    order = np.argsort(d)
    ax.fill_between(d[order], np.asarray(b.rate_lower)[order], np.asarray(b.rate)[order], color="0.6", alpha=0.6,
                    label="bound: this model's R(D) (certified band)", zorder=1)
    ax.plot(d[order], np.asarray(b.rate_lower)[order], color="0.3", lw=1, zorder=1)
    for m in METHODS:
        pts = _pareto([p for p in result.points if p.method == m])
        if pts:
            ax.plot([p.distortion for p in pts], [p.bpp for p in pts], marker="o", ms=3, lw=1.2, label=m, zorder=2)
    ax.set_xscale("log")
    ax.set_xlabel(f"d(u, û) ({result.metric}, normalize={result.normalize})")
    ax.set_ylabel("bits per parameter (measured)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if has_acc:
        ax2 = axes[0, 1]
        for m in METHODS:
            pts = sorted([p for p in result.points if p.method == m], key=lambda p: p.bpp)
            pts = _pareto(pts)
            if pts:
                ax2.plot([p.bpp for p in pts], [p.accuracy for p in pts], marker="o", ms=3, lw=1.2, label=m)
        if result.reference_accuracy is not None:
            ax2.axhline(result.reference_accuracy, color="k", ls=":", lw=1, label="uncompressed")
        ax2.set_xscale("log")
        ax2.set_xlabel("bits per parameter (measured)")
        ax2.set_ylabel("accuracy")
        ax2.grid(alpha=0.3)
        ax2.legend(fontsize=7)
    fig.tight_layout()
    return fig
