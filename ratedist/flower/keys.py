"""The record keys ratedist's Flower apps agree on (server → client and client → server).

Server → client, in every training message:

* ``"arrays"`` (:class:`flwr.app.ArrayRecord`): the global state (FedPM: the scores; FedAvg: the weights);
* ``"config"`` (:class:`flwr.app.ConfigRecord`): ``"server-round"`` (1, 2, ...), :data:`RUN_SEED`, and
  :data:`NODE`, the client's index k among the sorted node ids, from which its seeds derive.

Client → server:

* ``"arrays"``: one :class:`flwr.app.Array` per update array whose ``data`` are the exact bytes of the
  compressor's ``encode`` and whose ``stype`` is ``"ratedist.<compressor>"``;
* ``"metrics"`` (:class:`flwr.app.MetricRecord`): :data:`N_BITS` (8 × the payload bytes) and
  :data:`N_PARAMS` (the update's coordinates).
"""

from __future__ import annotations

__all__ = ["ARRAYS", "CONFIG", "METRICS", "SERVER_ROUND", "RUN_SEED", "NODE", "N_BITS", "N_PARAMS", "NUM_EXAMPLES",
           "STYPE_PREFIX", "stype_of"]

ARRAYS = "arrays"
CONFIG = "config"
METRICS = "metrics"
SERVER_ROUND = "server-round"
RUN_SEED = "ratedist.run-seed"
NODE = "ratedist.node"
N_BITS = "ratedist.n-bits"
N_PARAMS = "ratedist.n-params"
NUM_EXAMPLES = "num-examples"
STYPE_PREFIX = "ratedist."


def stype_of(compressor: str) -> str:
    """The ``Array.stype`` of a payload of ``compressor``: ``"ratedist.<name>"``.

    Examples
    --------
    >>> stype_of("fedpm")
    'ratedist.fedpm'
    """
    return STYPE_PREFIX + compressor
