"""Coders at the rate–distortion limit: quantizers that turn a model into bytes near its bound.

* :mod:`ratedist.quant.scalar` — entropy-coded deadzone scalar quantization (the baseline);
* :mod:`ratedist.quant.tcq` — entropy-coded trellis (dependent) quantization, 4 to 256 states;
* :mod:`ratedist.quant.trellis` — fixed-rate bitshift-trellis quantization with codebooks drawn
  from the rate–distortion-achieving reproduction law;

all behind one interface (:func:`encode`, :func:`decode`, :func:`inspect`, in
:mod:`ratedist.quant.codec`), with the rate spread over the tensors at a common slope
(:func:`allocate`).  The bound they are measured against is
:func:`ratedist.rd.model_rate_distortion`.
"""

from .codec import (
    METHODS,
    METRICS,
    QuantEncoding,
    QuantReport,
    TensorReport,
    allocate,
    bound_at,
    decode,
    encode,
    get_coder,
    inspect,
)

__all__ = ["METHODS", "METRICS", "QuantEncoding", "QuantReport", "TensorReport", "allocate", "bound_at",
           "decode", "encode", "get_coder", "inspect"]
