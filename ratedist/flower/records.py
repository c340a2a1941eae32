"""A :class:`ratedist.fedpm.BetaAggregator`'s state in Flower records (checkpoints, ``Context.state``)."""

from __future__ import annotations

import numpy as np

from ..errors import InvalidArgumentError
from ..fedpm import BetaAggregator
from ._flwr import Array, ArrayRecord, ConfigRecord

__all__ = ["aggregator_to_records", "aggregator_from_records"]

_PREFIX = "beta."


def aggregator_to_records(agg: BetaAggregator) -> tuple[ArrayRecord, ConfigRecord]:
    """``(ArrayRecord, ConfigRecord)`` holding α, β, θ^g and the options, policy and round.

    The ArrayRecord holds ``alpha``, ``beta``, ``theta`` (float64, d) once a round has been
    aggregated; the ConfigRecord holds ``beta.d``, ``beta.prior``, ``beta.readout``,
    ``beta.reference_mapping``, ``beta.eps``, ``beta.round``, ``beta.reset`` and
    ``beta.reset_rounds``.  A callable reset policy cannot be recorded (an error says so).

    Examples
    --------
    >>> agg = BetaAggregator(4, reset=[3])
    >>> _ = agg.update(np.array([[1, 1, 0, 0]], dtype=np.uint8))
    >>> back = aggregator_from_records(*aggregator_to_records(agg))
    >>> back.round, back.reset_policy.rounds, bool(np.array_equal(back.alpha, agg.alpha))
    (1, (3,), True)
    """
    arrays, config = agg.state()
    rec = ArrayRecord({k: Array(np.ascontiguousarray(v, dtype=np.float64)) for k, v in arrays.items()})
    cfg = {}
    for k, v in config.items():
        if k == "reset_rounds":
            v = [int(r) for r in v] or [-1]  # an empty list has no type in a record; -1 marks "none"
        cfg[_PREFIX + k] = v
    return rec, ConfigRecord(cfg)


def aggregator_from_records(arrays: ArrayRecord, config: ConfigRecord) -> BetaAggregator:
    """Inverse of :func:`aggregator_to_records`."""
    cfg = {k[len(_PREFIX):]: v for k, v in config.items() if k.startswith(_PREFIX)}
    if not cfg:
        raise InvalidArgumentError("`config` holds no 'beta.*' entries; pass the records aggregator_to_records wrote.")
    cfg["reset_rounds"] = [int(r) for r in cfg.get("reset_rounds", []) if int(r) >= 0]
    return BetaAggregator.from_state({k: v.numpy() for k, v in arrays.items()}, cfg)
