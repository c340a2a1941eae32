"""Output-perturbation bounds of a compressed network (docs/theory.md §2).

For a network ``f(x; w)`` made of an ordered sequence of linear layers (dense
matrices, convolutions, optionally followed by an eval-mode batch norm that is
folded into the layer) with 1-Lipschitz activations ``σ`` satisfying
``σ(0) = 0`` (ReLU, non-overlapping max/avg pooling), and its compressed twin
``f(x; ŵ)``, this module computes three upper bounds on

    sup_{‖x‖₁ ≤ 1} ‖f(x; w) − f(x; ŵ)‖₁

and a lower estimate of the same supremum (:func:`measured_perturbation`).

* **slide form** (Isik–Weissman–No): ``(Σ_l ‖w_l − ŵ_l‖₁ / ‖w_l‖₁) · Π_k ‖w_k‖₁``
  with entrywise L1 norms.  Valid only when ``‖ŵ_k‖₁ ≤ ‖w_k‖₁`` for every
  layer (true for pruning and for SuRP); the precondition is checked.
* **safe form**: the telescoping bound ``Σ_l ‖W_l − Ŵ_l‖ Π_{k<l} ‖Ŵ_k‖ Π_{k>l} ‖W_k‖``
  with entrywise norms, valid for any ŵ.
* **induced form**: the same mixed products with ℓ1→ℓ1 operator norms (max
  absolute column sums; for a convolution the largest input-channel sum of
  absolute kernel entries).  Valid for any ŵ and never larger than the safe form.

Layer 1 is the input layer.  Biases are outside the theorem: they are ignored
unless ``include_biases=True`` selects the extended bound of
:func:`perturbation_bounds` (see its Notes).
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from ._validation import _to_numpy, check_int, check_weights
from .errors import (
    BackendUnavailableError,
    InvalidArgumentError,
    InvalidShapeError,
    RatedistWarning,
)

__all__ = [
    "BatchNorm",
    "Layer",
    "LayerContribution",
    "PerturbationBounds",
    "MeasuredPerturbation",
    "mlp_from_weights",
    "perturbation_bounds",
    "normalized_distortion",
    "measured_perturbation",
    "measured_perturbation_torch",
    "project_l1_ball",
    "entrywise_l1",
    "induced_l1_norm",
]


# --------------------------------------------------------------------------- layers


def _finite(name: str, value, *, ndim=None) -> np.ndarray:
    arr = np.asarray(_to_numpy(value))
    if arr.dtype.kind not in "fiub":
        raise InvalidArgumentError(f"`{name}` must be a real numeric array, got dtype {arr.dtype}.")
    arr = arr.astype(np.float64)
    if ndim is not None and arr.ndim not in ((ndim,) if isinstance(ndim, int) else ndim):
        raise InvalidShapeError(f"`{name}` must be {ndim}-dimensional, got shape {arr.shape}.")
    if arr.size == 0:
        raise InvalidArgumentError(f"`{name}` is empty (shape {arr.shape}); a layer needs at least one weight.")
    bad = int(np.count_nonzero(~np.isfinite(arr)))
    if bad:
        raise InvalidArgumentError(
            f"`{name}` contains {bad} NaN or infinite value(s) out of {arr.size}; fix the weights before bounding."
        )
    return arr


def _pair(name: str, value) -> tuple[int, int]:
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        value = (int(value), int(value))
    try:
        a, b = value
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"`{name}` must be an int or a pair of ints, got {value!r}.") from None
    return (check_int(name, a, minimum=0), check_int(name, b, minimum=0))


@dataclass(frozen=True, eq=False)
class BatchNorm:
    """Eval-mode batch norm ``y_c = γ_c (z_c − μ_c)/√(var_c + ε) + β_c`` after a layer.

    Attributes
    ----------
    gamma, beta, mean, var : ndarray, shape (channels,)
    eps : float
    """

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5

    def __post_init__(self):
        for f in ("gamma", "beta", "mean", "var"):
            object.__setattr__(self, f, _finite(f"batchnorm.{f}", getattr(self, f), ndim=1))
        c = self.gamma.shape[0]
        for f in ("beta", "mean", "var"):
            if getattr(self, f).shape[0] != c:
                raise InvalidShapeError(
                    f"`batchnorm.{f}` has {getattr(self, f).shape[0]} channels but `gamma` has {c}; they must match."
                )
        if np.any(self.var < 0):
            raise InvalidArgumentError(f"`batchnorm.var` must be >= 0, got min {self.var.min()!r}.")
        if not (math.isfinite(self.eps) and self.eps >= 0):
            raise InvalidArgumentError(f"`batchnorm.eps` must be finite and >= 0, got {self.eps!r}.")
        if np.any(self.var + self.eps <= 0):
            raise InvalidArgumentError("`batchnorm.var + eps` has a zero entry; pass eps > 0.")

    @property
    def scale(self) -> np.ndarray:
        """Per-channel multiplier γ_c / √(var_c + ε) (its absolute value enters the ℓ1 norms)."""
        return self.gamma / np.sqrt(self.var + self.eps)


@dataclass(frozen=True, eq=False)
class Layer:
    """One linear layer of a network: dense ``(out, in)`` or convolution ``(out, in, kh, kw)``.

    Attributes
    ----------
    weight : ndarray
        ``(out, in)`` for a dense layer, ``(out, in, kh, kw)`` for a convolution.
    kind : {"dense", "conv"}
        Inferred from ``weight.ndim`` when omitted.
    stride, padding : (int, int)
        Convolution geometry (ignored for dense layers).  The ℓ1→ℓ1 norm used by
        the bounds does not depend on them (it is exact for stride 1 and an
        upper bound for larger strides).
    bias : ndarray, shape (out,), optional
        Outside the theorem: used only by ``include_biases=True``.
    batchnorm : BatchNorm, optional
        Eval-mode batch norm after the layer, folded into it (:meth:`folded`).
    name : str
        Used in messages and in the per-layer report.
    """

    weight: np.ndarray
    kind: str | None = None
    stride: tuple[int, int] = (1, 1)
    padding: tuple[int, int] = (0, 0)
    bias: np.ndarray | None = None
    batchnorm: BatchNorm | None = None
    name: str = ""

    def __post_init__(self):
        label = self.name or "layer"
        w = _finite(f"weight of layer {label!r}", self.weight, ndim=(2, 4))
        kind = self.kind or ("dense" if w.ndim == 2 else "conv")
        if kind not in ("dense", "conv"):
            raise InvalidArgumentError(f"`kind` of layer {label!r} must be 'dense' or 'conv', got {kind!r}.")
        if (kind == "dense") != (w.ndim == 2):
            raise InvalidShapeError(
                f"layer {label!r} has kind {kind!r} but weight shape {w.shape}; dense layers are (out, in), "
                "convolutions (out, in, kh, kw)."
            )
        object.__setattr__(self, "weight", w)
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "stride", _pair("stride", self.stride))
        object.__setattr__(self, "padding", _pair("padding", self.padding))
        if kind == "conv" and min(self.stride) < 1:
            raise InvalidArgumentError(f"`stride` of layer {label!r} must be >= 1, got {self.stride}.")
        if self.bias is not None:
            b = _finite(f"bias of layer {label!r}", self.bias, ndim=1)
            if b.shape[0] != w.shape[0]:
                raise InvalidShapeError(f"bias of layer {label!r} has {b.shape[0]} entries for {w.shape[0]} outputs.")
            object.__setattr__(self, "bias", b)
        if self.batchnorm is not None:
            if not isinstance(self.batchnorm, BatchNorm):
                raise InvalidArgumentError(f"`batchnorm` of layer {label!r} must be a BatchNorm, got {type(self.batchnorm).__name__}.")
            if self.batchnorm.gamma.shape[0] != w.shape[0]:
                raise InvalidShapeError(
                    f"batch norm of layer {label!r} has {self.batchnorm.gamma.shape[0]} channels for {w.shape[0]} outputs."
                )

    def folded(self) -> tuple[np.ndarray, np.ndarray]:
        """Weight and bias with the batch norm folded in.

        Returns
        -------
        weight : ndarray, same shape as :attr:`weight`
            Output channel c multiplied by γ_c/√(var_c + ε).
        bias : ndarray, shape (out,)
            (γ/√(var+ε))·(b − μ) + β (zeros without bias and batch norm).
        """
        w = self.weight
        b = self.bias if self.bias is not None else np.zeros(w.shape[0])
        if self.batchnorm is None:
            return w, b
        s = self.batchnorm.scale
        shape = (-1,) + (1,) * (w.ndim - 1)
        return w * s.reshape(shape), s * (b - self.batchnorm.mean) + self.batchnorm.beta


def entrywise_l1(weight) -> float:
    """Entrywise L1 norm Σ|w| of a weight tensor.

    >>> entrywise_l1(np.array([[1.0, -2.0], [0.5, 0.0]]))
    3.5
    """
    return float(np.abs(np.asarray(weight, dtype=np.float64)).sum())


def induced_l1_norm(weight) -> float:
    """ℓ1→ℓ1 operator norm of a dense layer ``(out, in)`` or its bound for a convolution.

    Dense: max over input coordinates j of Σ_i |W_ij| (max absolute column sum).
    Convolution ``(out, in, kh, kw)``: max over input channels c of
    Σ_{o, kh, kw} |K[o, c]| — exact for stride 1 on a large enough input, an
    upper bound otherwise.

    >>> induced_l1_norm(np.array([[1.0, -2.0], [0.5, 0.0]]))
    2.0
    """
    a = np.abs(np.asarray(weight, dtype=np.float64))
    if a.ndim == 2:
        return float(a.sum(axis=0).max())
    if a.ndim == 4:
        return float(a.sum(axis=(0, 2, 3)).max())
    raise InvalidShapeError(f"`weight` must be 2-D (dense) or 4-D (conv), got shape {a.shape}.")


def mlp_from_weights(weights: Mapping, layers: str | Sequence[str] | None = None) -> list[Layer]:
    """The 2-D tensors of a state_dict, in mapping order, as the dense layers of a ReLU MLP.

    Parameters
    ----------
    weights : Mapping[str, array]
        A state_dict or the contents of a weights file.
    layers : str or sequence of str, optional
        A glob pattern (``"fc*.weight"``; several separated by commas) or the
        explicit names.  Default: every 2-D tensor.

    Returns
    -------
    list of Layer
        One dense layer per selected tensor; a 1-D tensor named like the
        weight with ``bias`` in place of ``weight`` is attached as its bias.

    >>> net = mlp_from_weights({"a.weight": np.ones((3, 2)), "a.bias": np.ones(3), "b.weight": np.ones((1, 3))})
    >>> [(l.name, l.weight.shape, l.bias is not None) for l in net]
    [('a.weight', (3, 2), True), ('b.weight', (1, 3), False)]
    """
    arrays = check_weights("weights", weights)
    if layers is None:
        names = [k for k, v in arrays.items() if v.ndim == 2]
    elif isinstance(layers, str):
        pats = [p.strip() for p in layers.split(",") if p.strip()]
        names = [k for k in arrays if any(fnmatch.fnmatchcase(k, p) for p in pats)]
        bad = [k for k in names if arrays[k].ndim != 2]
        if bad:
            raise InvalidShapeError(
                f"`layers` {layers!r} selects non-2-D tensor(s) {bad} (shapes {[arrays[k].shape for k in bad]}); "
                "narrow the pattern to the weight matrices."
            )
    else:
        names = list(layers)
        missing = [k for k in names if k not in arrays]
        if missing:
            raise InvalidArgumentError(f"`layers` names {missing} not in the weights; available: {list(arrays)}.")
    if not names:
        raise InvalidArgumentError(
            f"`layers` {layers!r} selects no 2-D tensor among {[(k, v.shape) for k, v in arrays.items()]}; "
            "pass a pattern that matches the weight matrices."
        )
    out = []
    for k in names:
        bias = None
        if k.endswith("weight"):
            bk = k[: -len("weight")] + "bias"
            if bk in arrays and arrays[bk].ndim == 1 and arrays[bk].shape[0] == arrays[k].shape[0]:
                bias = arrays[bk]
        out.append(Layer(arrays[k], kind="dense", bias=bias, name=k))
    return out


def _as_layers(net, argname: str, layers=None) -> list[Layer]:
    if isinstance(net, Mapping):
        return mlp_from_weights(net, layers)
    if isinstance(net, Layer):
        net = [net]
    if not isinstance(net, Sequence) or isinstance(net, (str, bytes)) or len(net) == 0:
        raise InvalidArgumentError(
            f"`{argname}` must be a non-empty sequence of Layer objects or arrays, or a mapping of weights; "
            f"got {type(net).__name__}."
        )
    out = []
    for i, item in enumerate(net):
        if isinstance(item, Layer):
            out.append(item if item.name else Layer(item.weight, item.kind, item.stride, item.padding,
                                                     item.bias, item.batchnorm, name=f"layer{i + 1}"))
        else:
            out.append(Layer(item, name=f"layer{i + 1}"))
    return out


def _check_pair(orig: list[Layer], comp: list[Layer]) -> None:
    if len(orig) != len(comp):
        raise InvalidShapeError(
            f"`original` has {len(orig)} layers but `compressed` has {len(comp)}; pass the same layers in the same order."
        )
    for a, b in zip(orig, comp):
        if a.weight.shape != b.weight.shape or a.kind != b.kind:
            raise InvalidShapeError(
                f"layer {a.name!r}: original weight {a.kind} {a.weight.shape} but compressed "
                f"{b.name!r} is {b.kind} {b.weight.shape}; the compressed twin must have the same shapes."
            )
    for i in range(1, len(orig)):
        prev, cur = orig[i - 1].weight, orig[i].weight
        if prev.ndim == cur.ndim and prev.shape[0] != cur.shape[1]:
            raise InvalidShapeError(
                f"layer {orig[i].name!r} takes {cur.shape[1]} inputs but layer {orig[i - 1].name!r} "
                f"has {prev.shape[0]} outputs; list the layers in network order (input layer first)."
            )


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class LayerContribution:
    """One layer's norms and its terms in the three bounds.

    ``norm`` / ``norm_compressed`` / ``delta_norm`` are entrywise L1 norms of
    w_l, ŵ_l and w_l − ŵ_l (batch norm folded in); the ``induced_*`` fields are
    ℓ1→ℓ1 operator norms.  ``slide_term``, ``safe_term`` and ``induced_term``
    sum to the corresponding bound.
    """

    name: str
    n_weights: int
    norm: float
    norm_compressed: float
    delta_norm: float
    relative_delta: float
    induced_norm: float
    induced_norm_compressed: float
    induced_delta: float
    slide_term: float
    safe_term: float
    induced_term: float
    precondition_holds: bool
    bias_delta_norm: float = 0.0


@dataclass(frozen=True)
class PerturbationBounds:
    """Upper bounds on sup_{‖x‖₁≤1} ‖f(x; w) − f(x; ŵ)‖₁ (docs/theory.md §2).

    Attributes
    ----------
    slide : float
        (Σ_l ‖Δw_l‖₁/‖w_l‖₁)·Π_k ‖w_k‖₁ — valid only if ``precondition_holds``.
    safe : float
        Telescoping bound with entrywise norms and mixed products; valid for any ŵ.
    induced : float
        Same with ℓ1→ℓ1 operator norms; valid for any ŵ, ≤ ``safe``.
    distortion : float
        d(u, û) = (1/n) Σ |u_i − û_i| of the per-layer normalized weights.
    n_weights : int
        n, the number of weights in the bounded layers.
    relative_sum : float
        Σ_l ‖Δw_l‖₁/‖w_l‖₁, equal to ``n_weights * distortion``.
    product_norm : float
        Π_k ‖w_k‖₁.
    precondition_holds : bool
        ‖ŵ_k‖₁ ≤ ‖w_k‖₁ for every layer (and ‖b̂_k‖₁ ≤ ‖b_k‖₁ with biases).
    failing_layers : tuple of str
        Layers that break the precondition.
    per_layer : tuple of LayerContribution
    biases_excluded : bool
        True unless ``include_biases=True``: biases (and the shift of a folded
        batch norm) are outside the theorem and were ignored.
    ignored_bias_layers : tuple of str
        Layers with a non-zero (effective) bias that the bounds ignored.
    note : str
    """

    slide: float
    safe: float
    induced: float
    distortion: float
    n_weights: int
    relative_sum: float
    product_norm: float
    precondition_holds: bool
    failing_layers: tuple[str, ...]
    per_layer: tuple[LayerContribution, ...]
    biases_excluded: bool
    ignored_bias_layers: tuple[str, ...] = ()
    note: str = ""

    def to_dict(self) -> dict:
        d = {k: getattr(self, k) for k in ("slide", "safe", "induced", "distortion", "n_weights", "relative_sum",
                                          "product_norm", "precondition_holds", "biases_excluded", "note")}
        d["failing_layers"] = list(self.failing_layers)
        d["ignored_bias_layers"] = list(self.ignored_bias_layers)
        d["per_layer"] = [dict(vars(c)) for c in self.per_layer]
        return d


def normalized_distortion(original, compressed, *, layers=None) -> tuple[float, int]:
    """d(u, û) of the per-layer L1-normalized weights, and n.

    u^{(l)} = w_l/‖w_l‖₁ and û^{(l)} = ŵ_l/‖w_l‖₁ (the *original* norm), all
    layers concatenated; d(u, û) = (1/n) Σ_i |u_i − û_i|.

    Returns
    -------
    distortion : float
    n_weights : int

    >>> d, n = normalized_distortion([np.array([[1.0, 1.0]])], [np.array([[1.0, 0.0]])])
    >>> d, n
    (0.25, 2)
    """
    b = perturbation_bounds(original, compressed, layers=layers, _quiet=True)
    return b.distortion, b.n_weights


def perturbation_bounds(original, compressed, *, layers=None, include_biases: bool = False,
                        strict: bool = False, _quiet: bool = False) -> PerturbationBounds:
    """Slide, safe and induced-norm bounds on the output perturbation of a compressed network.

    Parameters
    ----------
    original, compressed : sequence of Layer or arrays, or Mapping[str, array]
        The network and its compressed twin, input layer first.  Arrays are
        dense ``(out, in)`` or convolution ``(out, in, kh, kw)`` weights; a
        mapping is read by :func:`mlp_from_weights` (its 2-D tensors in order).
    layers : str or sequence of str, optional
        Layer selection for mappings (see :func:`mlp_from_weights`).
    include_biases : bool
        Use the extended bound for h_l = σ(W_l h_{l−1} + b_l) (Notes).  Dense
        layers only; biases of conv layers need the spatial size.
    strict : bool
        Raise :class:`~ratedist.errors.InvalidArgumentError` instead of warning
        when the slide form's precondition fails.

    Returns
    -------
    PerturbationBounds

    Warns
    -----
    RatedistWarning
        When ‖ŵ_k‖₁ > ‖w_k‖₁ for some layer (named): the slide form is then
        not a valid bound; use ``safe`` or ``induced``.

    Notes
    -----
    Telescoping (docs/theory.md §2): let g_l be the network whose first l layers are
    compressed and the others original, so f(·; w) = g_0 and f(·; ŵ) = g_d, and
    Δf = Σ_l (g_{l−1} − g_l).  g_{l−1} and g_l share the compressed prefix,
    whose output has norm ≤ Π_{k<l}‖Ŵ_k‖ on the unit ball (|σ(z)| ≤ |z|); they
    differ by at most ‖ΔW_l‖ times that after layer l, and the original layers
    after l are ‖W_k‖-Lipschitz.  Any norm dominating the ℓ1→ℓ1 operator norm
    works: the entrywise norm (safe, slide) or the operator norm itself
    (induced).  The slide form replaces Π_{k<l}‖Ŵ_k‖ by Π_{k<l}‖W_k‖, which
    needs ‖Ŵ_k‖ ≤ ‖W_k‖; counterexample w = (1, 1), ŵ = (2, 2): sup = 3 > 2.

    **Extended bound with biases** (``include_biases=True``, derived here, not
    in the paper).  For h_l = σ(W_l h_{l−1} + b_l) with ReLU σ, the compressed
    prefix satisfies ‖ĥ_l‖₁ ≤ M̂_l with M̂_0 = 1 and
    M̂_l = ‖Ŵ_l‖ M̂_{l−1} + ‖b̂_l‖₁ (because |σ(z)| ≤ |z| entrywise).  Swapping
    layer l changes its output by at most ‖ΔW_l‖ M̂_{l−1} + ‖Δb_l‖₁, and the
    biases cancel in the Lipschitz constants of the later layers, so

        sup ‖Δf‖₁ ≤ Σ_l (‖ΔW_l‖ M̂_{l−1} + ‖Δb_l‖₁) Π_{k>l} ‖W_k‖.

    ``safe`` and ``induced`` use this with entrywise and operator norms; the
    extended ``slide`` uses the original M_l (valid when ‖Ŵ_k‖₁ ≤ ‖W_k‖₁ and
    ‖b̂_k‖₁ ≤ ‖b_k‖₁).  Without biases M̂_{l−1} = Π_{k<l}‖Ŵ_k‖ and this is the
    bias-free formula.  Batch-norm shifts count as biases.

    Examples
    --------
    The two-layer counterexample of docs/theory.md §2 breaks the slide form:

    >>> import warnings
    >>> with warnings.catch_warnings():
    ...     warnings.simplefilter("ignore")
    ...     b = perturbation_bounds([np.ones((1, 1))] * 2, [2 * np.ones((1, 1))] * 2)
    >>> b.slide, b.safe, b.induced, b.precondition_holds, b.failing_layers
    (2.0, 3.0, 3.0, False, ('layer1', 'layer2'))
    """
    orig = _as_layers(original, "original", layers)
    comp = _as_layers(compressed, "compressed", layers)
    _check_pair(orig, comp)
    ws, whs, bs, bhs = [], [], [], []
    ignored = []
    for a, b in zip(orig, comp):
        w, bias = a.folded()
        wh, bias_h = b.folded()
        if not np.all(np.isfinite(w)) or not np.all(np.isfinite(wh)):
            raise InvalidArgumentError(f"layer {a.name!r}: folding the batch norm produced non-finite weights.")
        ws.append(w), whs.append(wh), bs.append(bias), bhs.append(bias_h)
        if np.any(bias != 0) or np.any(bias_h != 0):
            ignored.append(a.name)
    if include_biases:
        for a, name in zip(orig, [lay.name for lay in orig]):
            if a.kind == "conv" and name in ignored:
                raise InvalidArgumentError(
                    f"`include_biases=True`: layer {name!r} is a convolution with a bias or batch-norm shift; "
                    "the extended bound needs its output spatial size, which is not supported. "
                    "Use include_biases=False (bias-free theorem) or a dense network."
                )
    names = [a.name for a in orig]
    norm = np.array([entrywise_l1(w) for w in ws])
    zero = [n for n, v in zip(names, norm) if v == 0]
    if zero:
        raise InvalidArgumentError(
            f"layer(s) {zero} of `original` have zero L1 norm; the slide form and d(u, û) divide by it. "
            "Drop all-zero layers (the network output is then identically 0)."
        )
    norm_h = np.array([entrywise_l1(w) for w in whs])
    delta = np.array([entrywise_l1(w - wh) for w, wh in zip(ws, whs)])
    op = np.array([induced_l1_norm(w) for w in ws])
    op_h = np.array([induced_l1_norm(w) for w in whs])
    op_d = np.array([induced_l1_norm(w - wh) for w, wh in zip(ws, whs)])
    db = np.array([float(np.abs(b - bh).sum()) for b, bh in zip(bs, bhs)]) if include_biases else np.zeros(len(ws))
    bn = np.array([float(np.abs(b).sum()) for b in bs]) if include_biases else np.zeros(len(ws))
    bnh = np.array([float(np.abs(b).sum()) for b in bhs]) if include_biases else np.zeros(len(ws))

    # relative tolerance for the precondition: pruning and scaling can round ‖ŵ‖ up by an ulp
    tol = 8 * np.finfo(np.float64).eps
    ok = (norm_h <= norm * (1 + tol)) & ((bnh <= bn * (1 + tol)) if include_biases else True)
    failing = tuple(n for n, o in zip(names, np.broadcast_to(ok, norm.shape)) if not o)

    def telescoping(d_w, prefix_w, prefix_b, suffix_w):
        terms = []
        m_prev = 1.0
        for li in range(len(d_w)):
            after = float(np.prod(suffix_w[li + 1:])) if li + 1 < len(d_w) else 1.0
            terms.append((d_w[li] * m_prev + db[li]) * after)
            m_prev = prefix_w[li] * m_prev + prefix_b[li]
        return np.array(terms)

    slide_terms = telescoping(delta, norm, bn, norm)
    safe_terms = telescoping(delta, norm_h, bnh, norm)
    induced_terms = telescoping(op_d, op_h, bnh, op)
    rel = delta / norm
    n_weights = int(sum(w.size for w in ws))
    relative_sum = float(rel.sum())
    distortion = float(np.concatenate([np.abs(w - wh).ravel() / nm for w, wh, nm in zip(ws, whs, norm)]).mean())
    per_layer = tuple(
        LayerContribution(
            name=names[i], n_weights=int(ws[i].size), norm=float(norm[i]), norm_compressed=float(norm_h[i]),
            delta_norm=float(delta[i]), relative_delta=float(rel[i]), induced_norm=float(op[i]),
            induced_norm_compressed=float(op_h[i]), induced_delta=float(op_d[i]),
            slide_term=float(slide_terms[i]), safe_term=float(safe_terms[i]), induced_term=float(induced_terms[i]),
            precondition_holds=names[i] not in failing, bias_delta_norm=float(db[i]),
        )
        for i in range(len(ws))
    )
    if failing:
        detail = ", ".join(f"{n!r} (‖ŵ‖₁ = {norm_h[names.index(n)]:.6g} > ‖w‖₁ = {norm[names.index(n)]:.6g})"
                           for n in failing)
        msg = (f"the slide form's precondition ‖ŵ_k‖₁ ≤ ‖w_k‖₁ fails for layer(s) {detail}; "
               "the slide value is not a valid bound — use the `safe` or `induced` bound.")
        if strict:
            raise InvalidArgumentError(f"`compressed`: {msg}")
        if not _quiet:
            warnings.warn(msg, RatedistWarning, stacklevel=2)
    note = ("bias-free theorem (docs/theory.md §2): biases and batch-norm shifts are ignored"
            + (f" in layer(s) {ignored}" if ignored else "") if not include_biases
            else "extended bound with biases (see perturbation_bounds Notes); derived, not from the paper")
    return PerturbationBounds(
        slide=float(slide_terms.sum()), safe=float(safe_terms.sum()), induced=float(induced_terms.sum()),
        distortion=distortion, n_weights=n_weights, relative_sum=relative_sum, product_norm=float(np.prod(norm)),
        precondition_holds=not failing, failing_layers=failing, per_layer=per_layer,
        biases_excluded=not include_biases, ignored_bias_layers=tuple(ignored) if not include_biases else (),
        note=note,
    )


# --------------------------------------------------------------------------- measured perturbation


def project_l1_ball(x, radius: float = 1.0) -> np.ndarray:
    """Euclidean projection of each row of ``x`` onto the ℓ1 ball of ``radius`` (sort-based).

    Rows already inside the ball are returned unchanged.  Algorithm: sort |x|
    decreasingly, find the largest ρ with |x|_(ρ) > (Σ_{j≤ρ}|x|_(j) − r)/ρ,
    and soft-threshold at θ = (Σ_{j≤ρ}|x|_(j) − r)/ρ (Duchi et al., 2008).

    >>> project_l1_ball(np.array([[2.0, 0.0], [0.3, -0.2]]))
    array([[ 1. ,  0. ],
           [ 0.3, -0.2]])
    """
    x = np.atleast_2d(np.asarray(x, dtype=np.float64))
    out = x.copy()
    a = np.abs(x)
    outside = a.sum(axis=1) > radius
    if not np.any(outside):
        return out
    v = -np.sort(-a[outside], axis=1)
    cs = np.cumsum(v, axis=1) - radius
    j = np.arange(1, v.shape[1] + 1)
    cond = v - cs / j > 0
    rho = v.shape[1] - np.argmax(cond[:, ::-1], axis=1)  # last index where cond holds (1-based)
    theta = cs[np.arange(v.shape[0]), rho - 1] / rho
    out[outside] = np.sign(x[outside]) * np.maximum(a[outside] - theta[:, None], 0.0)
    return out


@dataclass(frozen=True)
class MeasuredPerturbation:
    """A lower estimate of sup_{‖x‖₁≤1} ‖f(x; w) − f(x; ŵ)‖₁.

    Attributes
    ----------
    value : float
        The largest ‖Δf(x)‖₁ found (a lower bound on the supremum).
    x : ndarray
        The input that attains it (‖x‖₁ ≤ 1).
    vertex_value : float
        The best value over the vertices ±e_j alone.
    n_evaluations : int
        Forward passes of the pair of networks (per input).
    """

    value: float
    x: np.ndarray = field(repr=False)
    vertex_value: float
    n_evaluations: int

    def __float__(self) -> float:
        return self.value


def _dense_stack(net: list[Layer], include_biases: bool):
    out = []
    for lay in net:
        if lay.kind != "dense":
            raise InvalidArgumentError(
                f"`measured_perturbation` handles dense layers only; layer {lay.name!r} is a convolution. "
                "Use measured_perturbation_torch with the torch modules."
            )
        w, b = lay.folded()
        out.append((w, b if include_biases else None))
    return out


def _forward(stack, x, output_relu):
    zs = []
    h = x
    for i, (w, b) in enumerate(stack):
        z = h @ w.T
        if b is not None:
            z = z + b
        zs.append(z)
        h = np.maximum(z, 0.0) if (i < len(stack) - 1 or output_relu) else z
    return h, zs


def _backward(stack, zs, g, output_relu):
    for i in range(len(stack) - 1, -1, -1):
        if i < len(stack) - 1 or output_relu:
            g = g * (zs[i] > 0)
        g = g @ stack[i][0]
    return g


def measured_perturbation(original, compressed, *, layers=None, restarts: int = 8, steps: int = 200,
                          seed=0, include_biases: bool = False, output_relu: bool = False) -> MeasuredPerturbation:
    """Lower estimate of sup over the ℓ1 unit ball of ‖f(x; w) − f(x; ŵ)‖₁ for a dense ReLU network.

    Parameters
    ----------
    original, compressed
        As in :func:`perturbation_bounds` (dense layers only).
    restarts : int
        Number of ascent runs started from the best vertices, and as many from
        random points of the ℓ1 sphere.
    steps : int
        Projected (sub)gradient-ascent steps per run.
    seed : int
    include_biases : bool
        Evaluate h_l = σ(W_l h_{l−1} + b_l) instead of the bias-free network.
    output_relu : bool
        Apply the ReLU after the last layer too (the bounds hold either way).

    Returns
    -------
    MeasuredPerturbation

    Notes
    -----
    Evaluates all 2·d_in vertices ±e_j (the extreme points of the ball), then
    runs projected subgradient ascent x ← Π(x + η_s g/‖g‖₂), η_s = 0.5/√(s+1),
    with Π the sort-based ℓ1-ball projection, from the ``restarts`` best
    vertices and ``restarts`` random starts.  Forward and backward passes are
    NumPy; the subgradient of ‖Δf‖₁ is J_w^T sign(Δf) − J_ŵ^T sign(Δf).

    >>> measured_perturbation([np.ones((1, 1))] * 2, [2 * np.ones((1, 1))] * 2).value
    3.0
    """
    restarts = check_int("restarts", restarts, minimum=0)
    steps = check_int("steps", steps, minimum=0)
    orig = _as_layers(original, "original", layers)
    comp = _as_layers(compressed, "compressed", layers)
    _check_pair(orig, comp)
    s1, s2 = _dense_stack(orig, include_biases), _dense_stack(comp, include_biases)
    d_in = s1[0][0].shape[1]
    rng = np.random.default_rng(seed)

    def objective(x):
        y1, z1 = _forward(s1, x, output_relu)
        y2, z2 = _forward(s2, x, output_relu)
        diff = y1 - y2
        return np.abs(diff).sum(axis=1), diff, z1, z2

    n_eval = 0
    verts = np.concatenate([np.eye(d_in), -np.eye(d_in)])
    vals = np.empty(len(verts))
    for i in range(0, len(verts), 4096):
        vals[i:i + 4096] = objective(verts[i:i + 4096])[0]
    n_eval += len(verts)
    best_i = int(np.argmax(vals))
    best_val, best_x = float(vals[best_i]), verts[best_i].copy()
    vertex_value = best_val
    if include_biases:
        zero_val = float(objective(np.zeros((1, d_in)))[0][0])
        n_eval += 1
        if zero_val > best_val:
            best_val, best_x = zero_val, np.zeros(d_in)
    if restarts and steps:
        top = verts[np.argsort(-vals, kind="stable")[:restarts]]
        rand = rng.laplace(size=(restarts, d_in))
        rand /= np.maximum(np.abs(rand).sum(axis=1, keepdims=True), 1e-300)
        x = np.concatenate([top, rand]) + 1e-3 * rng.standard_normal((len(top) + restarts, d_in)) / d_in
        x = project_l1_ball(x)
        for s in range(steps):
            val, diff, z1, z2 = objective(x)
            n_eval += len(x)
            i = int(np.argmax(val))
            if val[i] > best_val:
                best_val, best_x = float(val[i]), x[i].copy()
            sg = np.sign(diff)
            g = _backward(s1, z1, sg, output_relu) - _backward(s2, z2, sg, output_relu)
            gn = np.linalg.norm(g, axis=1, keepdims=True)
            x = project_l1_ball(x + (0.5 / math.sqrt(s + 1)) * g / np.where(gn > 0, gn, 1.0))
        val = objective(x)[0]
        n_eval += len(x)
        i = int(np.argmax(val))
        if val[i] > best_val:
            best_val, best_x = float(val[i]), x[i].copy()
    return MeasuredPerturbation(value=best_val, x=best_x, vertex_value=vertex_value, n_evaluations=n_eval)


def measured_perturbation_torch(module, compressed_module, input_shape, *, restarts: int = 8, steps: int = 200,
                                seed: int = 0, max_vertices: int = 8192, batch_size: int = 512) -> MeasuredPerturbation:
    """Lower estimate of sup_{‖x‖₁≤1} ‖f(x) − f̂(x)‖₁ for two arbitrary ``torch.nn.Module``.

    Parameters
    ----------
    module, compressed_module : torch.nn.Module
        Evaluated in eval mode, without gradients to their parameters.
    input_shape : tuple of int
        Shape of one input (without the batch dimension), e.g. ``(3, 32, 32)``.
    restarts, steps, seed
        As in :func:`measured_perturbation`.
    max_vertices : int
        Evaluate all 2·d vertices ±e_j if 2·d ≤ this, else a random subset of that size.
    batch_size : int
        Inputs per forward pass.

    Returns
    -------
    MeasuredPerturbation
        ``x`` has shape ``input_shape``.

    Raises
    ------
    BackendUnavailableError
        If torch is not installed (``pip install 'ratedist[torch]'``).
    """
    try:
        import torch
    except ImportError:
        raise BackendUnavailableError(
            "`measured_perturbation_torch` needs torch: pip install 'ratedist[torch]'."
        ) from None
    for nm, m in (("module", module), ("compressed_module", compressed_module)):
        if not isinstance(m, torch.nn.Module):
            raise InvalidArgumentError(f"`{nm}` must be a torch.nn.Module, got {type(m).__name__}.")
    try:
        shape = tuple(check_int("input_shape", s, minimum=1) for s in input_shape)
    except TypeError:
        raise InvalidArgumentError(f"`input_shape` must be a tuple of positive ints, got {input_shape!r}.") from None
    restarts = check_int("restarts", restarts, minimum=0)
    steps = check_int("steps", steps, minimum=0)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    d = int(np.prod(shape))
    try:
        p = next(module.parameters())
        dtype, device = p.dtype, p.device
    except StopIteration:
        dtype, device = torch.float32, torch.device("cpu")
    was = (module.training, compressed_module.training)
    module.eval(), compressed_module.eval()
    rng = np.random.default_rng(seed)

    def obj(xf):  # xf: (B, d) torch tensor
        xs = xf.reshape((-1,) + shape)
        out = (module(xs) - compressed_module(xs)).reshape(xf.shape[0], -1)
        return out.abs().sum(dim=1)

    n_eval = 0
    try:
        with torch.no_grad():
            if 2 * d <= max_vertices:
                idx = np.arange(2 * d)
            else:
                idx = rng.choice(2 * d, size=max_vertices, replace=False)
            vals = np.empty(len(idx))
            for i in range(0, len(idx), batch_size):
                chunk = idx[i:i + batch_size]
                xv = torch.zeros((len(chunk), d), dtype=dtype, device=device)
                xv[torch.arange(len(chunk)), torch.as_tensor(chunk % d)] = torch.as_tensor(
                    np.where(chunk < d, 1.0, -1.0), dtype=dtype, device=device)
                vals[i:i + len(chunk)] = obj(xv).double().cpu().numpy()
            n_eval += len(idx)
            bi = int(np.argmax(vals))
            best_val = float(vals[bi])
            best_x = np.zeros(d)
            best_x[idx[bi] % d] = 1.0 if idx[bi] < d else -1.0
            vertex_value = best_val
            zero_val = float(obj(torch.zeros((1, d), dtype=dtype, device=device))[0])
            n_eval += 1
            if zero_val > best_val:
                best_val, best_x = zero_val, np.zeros(d)
        if restarts and steps:
            starts = []
            for j in idx[np.argsort(-vals, kind="stable")[:restarts]]:
                e = np.zeros(d)
                e[j % d] = 1.0 if j < d else -1.0
                starts.append(e)
            rand = rng.laplace(size=(restarts, d))
            rand /= np.abs(rand).sum(axis=1, keepdims=True)
            x = project_l1_ball(np.concatenate([np.array(starts).reshape(-1, d), rand])
                                + 1e-3 * rng.standard_normal((len(starts) + restarts, d)) / d)
            for s in range(steps + 1):
                xt = torch.as_tensor(x, dtype=dtype, device=device).requires_grad_(True)
                val = obj(xt)
                g = torch.autograd.grad(val.sum(), xt)[0].double().cpu().numpy()
                v = val.detach().double().cpu().numpy()
                n_eval += len(x)
                i = int(np.argmax(v))
                if v[i] > best_val:
                    best_val, best_x = float(v[i]), x[i].copy()
                if s == steps:
                    break
                gn = np.linalg.norm(g, axis=1, keepdims=True)
                x = project_l1_ball(x + (0.5 / math.sqrt(s + 1)) * g / np.where(gn > 0, gn, 1.0))
    finally:
        module.train(was[0]), compressed_module.train(was[1])
    return MeasuredPerturbation(value=best_val, x=best_x.reshape(shape), vertex_value=vertex_value,
                                n_evaluations=n_eval)
