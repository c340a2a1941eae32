"""Flower apps, client mods and strategies for ratedist's federated compressors (the ``flower`` extra).

* :class:`CompressorMod` / :func:`compressor_mod`: a client mod per compressor (FedPM, FedMask,
  QSGD, DRIVE, EDEN) that sends the exact bytes of ``encode`` (``stype="ratedist.<name>"``)
  and records the measured bits in the reply's metrics; :func:`decode_update` is the
  server's half.
* :class:`FedPMStrategy` (Beta aggregation of decoded masks) and :class:`CompressedFedAvg`
  (FedAvg on compressed weight updates); bad replies are skipped, counted and reported.
* :func:`aggregator_to_records` / :func:`aggregator_from_records`: a BetaAggregator in records.
* Seeds per (round, node) from one run seed (:mod:`ratedist.flower.seeds`).
* :func:`warmup`: numba compiled once per worker process.
* :func:`client_app`, :func:`server_app`, :func:`run_simulation`: apps and the simulation entry.

See ``docs/flower.md``.
"""

from . import keys
from .mods import REASONS, BadReply, CompressorMod, compressor_mod, decode_update, encode_update, message_seeds
from .records import aggregator_from_records, aggregator_to_records
from .seeds import STREAM_LOCAL, STREAM_SAMPLING, STREAM_UPLINK, client_seed, node_indices, sampling_seed
from .simulation import ScriptFunction, SimulationResult, client_app, default_backend_config, run_simulation, server_app
from .strategies import MASK_COMPRESSORS, WEIGHT_COMPRESSORS, CompressedFedAvg, FedPMStrategy, RoundReport
from .warmup import is_warm, warmup

__all__ = [
    "keys",
    "CompressorMod",
    "compressor_mod",
    "encode_update",
    "decode_update",
    "message_seeds",
    "BadReply",
    "REASONS",
    "aggregator_to_records",
    "aggregator_from_records",
    "client_seed",
    "sampling_seed",
    "node_indices",
    "STREAM_LOCAL",
    "STREAM_UPLINK",
    "STREAM_SAMPLING",
    "FedPMStrategy",
    "CompressedFedAvg",
    "RoundReport",
    "MASK_COMPRESSORS",
    "WEIGHT_COMPRESSORS",
    "warmup",
    "is_warm",
    "client_app",
    "server_app",
    "run_simulation",
    "ScriptFunction",
    "SimulationResult",
    "default_backend_config",
]
