"""Server strategies on Flower's Message API: FedPM with Beta aggregation, and FedAvg on compressed updates.

Both strategies sample ``clients_per_round`` of the ``n_nodes`` nodes each round with their own
seeded generator, tell each client its index, the round and the run seed
(:mod:`ratedist.flower.seeds`), decode the replies with :func:`ratedist.flower.decode_update`
and aggregate what decodes.  A reply that cannot be aggregated (Flower's failure record, an
empty reply, another compressor's payload, other dimensions, a corrupt payload, an unknown
node) is skipped and counted; the round's :class:`RoundReport` and its ``MetricRecord`` say how
many and why, and the server goes on.  A round where nothing decodes keeps the previous state.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from logging import INFO, WARNING

import numpy as np

from .._validation import check_choice, check_int
from ..errors import InvalidArgumentError
from ..fedpm import BetaAggregator
from . import keys as K
from ._flwr import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
from .mods import REASONS, BadReply, decode_update
from .records import aggregator_from_records, aggregator_to_records
from .seeds import node_indices, sampling_seed
from .warmup import warmup

__all__ = ["FedPMStrategy", "CompressedFedAvg", "RoundReport", "MASK_COMPRESSORS", "WEIGHT_COMPRESSORS"]

MASK_COMPRESSORS = ("fedpm", "fedmask")
WEIGHT_COMPRESSORS = ("qsgd", "drive", "eden")

from flwr.serverapp.strategy import Strategy  # noqa: E402  (after _flwr's import check)


def _log(level, msg, *args):
    from flwr.common.logger import log

    log(level, msg, *args)


@dataclass
class RoundReport:
    """What one training round received and aggregated.

    Attributes
    ----------
    server_round : int
    sampled : list of int
        Client indices k sent a message.
    aggregated : list of int
        Client indices whose update was aggregated (sorted).
    skipped : dict of str to int
        Replies skipped, by reason (:data:`ratedist.flower.mods.REASONS`); absent replies
        (timeouts) count as ``failed``.
    n_bits : list of int
        Measured uplink bits of each aggregated client (8 × payload bytes), in ``aggregated``'s order.
    n_params : int
        Coordinates per update (d).
    seconds : float
        Server-side time of the aggregation.
    """

    server_round: int
    sampled: list
    aggregated: list = field(default_factory=list)
    skipped: dict = field(default_factory=dict)
    n_bits: list = field(default_factory=list)
    n_params: int = 0
    seconds: float = 0.0

    @property
    def n_skipped(self) -> int:
        return int(sum(self.skipped.values()))

    @property
    def bpp(self) -> list:
        """Measured bits per parameter of each aggregated client."""
        return [b / self.n_params for b in self.n_bits] if self.n_params else []

    def metrics(self) -> MetricRecord:
        """The report as a Flower ``MetricRecord`` (counts, bits, bits per parameter)."""
        m = {"ratedist.sampled": len(self.sampled), "ratedist.aggregated": len(self.aggregated),
             "ratedist.skipped": self.n_skipped, K.N_BITS: int(sum(self.n_bits)), K.N_PARAMS: int(self.n_params),
             "ratedist.bpp-mean": float(np.mean(self.bpp)) if self.n_bits else 0.0}
        for reason in REASONS:
            m[f"ratedist.skipped.{reason}"] = int(self.skipped.get(reason, 0))
        return MetricRecord(m)


class _Sampling(Strategy):
    """Node numbering, seeded sampling, message construction and reply checking, shared by both strategies."""

    def __init__(self, *, compressor: str, n_nodes: int, clients_per_round: int, run_seed: int,
                 sampling_seed_: int | None, on_round_end):
        self.compressor = compressor
        self.n_nodes = check_int("n_nodes", n_nodes, minimum=1)
        self.clients_per_round = check_int("clients_per_round", clients_per_round, minimum=1, maximum=self.n_nodes)
        self.run_seed = check_int("run_seed", run_seed, minimum=0)
        self.sampling_seed = sampling_seed(self.run_seed) if sampling_seed_ is None else check_int(
            "sampling_seed", sampling_seed_, minimum=0)
        self._rng = np.random.default_rng(self.sampling_seed)
        self.on_round_end = on_round_end
        self.nodes: dict[int, int] | None = None  # Flower node id -> client index k
        self.reports: list[RoundReport] = []
        self._sampled: list[int] = []

    # ---------------------------------------------------------------- sampling
    def _wait_for_nodes(self, grid, timeout: float = 600.0) -> None:
        t0 = time.monotonic()
        while len(ids := list(grid.get_node_ids())) < self.n_nodes:
            if time.monotonic() - t0 > timeout:
                raise InvalidArgumentError(f"only {len(ids)} of `n_nodes`={self.n_nodes} nodes connected in {timeout} s.")
            time.sleep(0.2)
        self.nodes = node_indices(ids)
        if len(self.nodes) > self.n_nodes:  # more nodes than planned: use the first n_nodes by id
            self.nodes = {n: k for n, k in self.nodes.items() if k < self.n_nodes}

    def _messages(self, server_round: int, arrays: ArrayRecord, config: ConfigRecord, grid) -> list[Message]:
        if self.nodes is None:
            self._wait_for_nodes(grid)
        chosen = np.sort(self._rng.choice(self.n_nodes, size=self.clients_per_round, replace=False))
        self._sampled = [int(k) for k in chosen]
        by_index = {k: n for n, k in self.nodes.items()}
        out = []
        for k in self._sampled:
            cfg = ConfigRecord(dict(config))
            cfg[K.SERVER_ROUND] = int(server_round)
            cfg[K.RUN_SEED] = self.run_seed
            cfg[K.NODE] = k
            out.append(Message(content=RecordDict({K.ARRAYS: arrays, K.CONFIG: cfg}), message_type=MessageType.TRAIN,
                               dst_node_id=by_index[k], group_id=str(server_round)))
        _log(INFO, "ratedist %s: round %s, sampled clients %s", type(self).__name__, server_round, self._sampled)
        return out

    def _decode_replies(self, server_round: int, replies, shapes) -> tuple[RoundReport, list[dict]]:
        """Decode every reply in client-index order; count and skip the bad ones."""
        report = RoundReport(server_round, list(self._sampled))
        skipped: Counter = Counter()
        good, seen = {}, set()
        replies = list(replies)
        for reply in replies:
            k = self.nodes.get(int(reply.metadata.src_node_id)) if self.nodes else None
            if k in self._sampled:
                seen.add(k)
            try:
                if k is None or k not in self._sampled or k in good:
                    if reply.has_error():
                        raise BadReply("failed", f"error {reply.error.code}: {reply.error.reason}")
                    raise BadReply("unknown_node", f"reply from node {reply.metadata.src_node_id}, not sampled this round")
                good[k] = decode_update(reply, self.compressor, shapes)
            except BadReply as bad:
                skipped[bad.reason] += 1
                _log(WARNING, "ratedist %s: round %s, skipped a reply (%s)", type(self).__name__, server_round, bad)
        missing = len(set(self._sampled) - seen)
        if missing:  # no reply at all (timeout, lost node): a failed client
            skipped["failed"] += missing
        report.aggregated = sorted(good)
        report.n_bits = [good[k][1] for k in report.aggregated]
        report.n_params = int(sum(int(np.prod(s, dtype=np.int64)) for s in shapes.values()))
        report.skipped = {r: int(skipped[r]) for r in REASONS if skipped[r]}
        return report, [good[k][0] for k in report.aggregated]

    def _finish(self, report: RoundReport, t0: float):
        report.seconds = time.perf_counter() - t0
        self.reports.append(report)
        if self.on_round_end is not None:
            self.on_round_end(report.server_round, self)
        return report.metrics()

    # ---------------------------------------------------------------- evaluation: not used
    def configure_evaluate(self, server_round, arrays, config, grid):
        return []

    def aggregate_evaluate(self, server_round, replies):
        return None

    def _sampler_config(self) -> dict:
        return {"strategy.compressor": self.compressor, "strategy.n_nodes": self.n_nodes,
                "strategy.clients_per_round": self.clients_per_round, "strategy.run_seed": self.run_seed,
                "strategy.sampling_seed": self.sampling_seed,
                "strategy.rng_state": json.dumps(self._rng.bit_generator.state),
                "strategy.rounds_done": len(self.reports)}

    def _restore_sampler(self, config) -> None:
        self._rng.bit_generator.state = json.loads(str(config["strategy.rng_state"]))


class FedPMStrategy(_Sampling):
    """FedPM's server (Isik et al., ICLR 2023; docs/theory.md §5): Beta aggregation of decoded masks.

    Each round it broadcasts the scores s^g = logit(θ^g) (``"arrays"["scores"]``, float32, flat,
    d), receives each sampled client's mask payload (``"arrays"["theta"]``, coded from θ_k by
    the ``fedpm`` compressor, or thresholded by ``fedmask``), decodes the masks and updates the
    :class:`ratedist.fedpm.BetaAggregator`.

    Parameters
    ----------
    d : int
        Mask entries (the network's parameters).
    n_nodes : int, keyword-only
        Nodes to wait for and number 0..n_nodes-1.
    clients_per_round : int, keyword-only
        Clients sampled each round (without replacement).
    run_seed : int, keyword-only
        The run's seed (every client seed derives from it).
    compressor : {"fedpm", "fedmask"}, keyword-only
    aggregator : BetaAggregator, optional, keyword-only
        Default: prior 1, reset every round, posterior mode, scores clipped to [0.01, 0.99].
    sampling_seed : int, optional, keyword-only
        Seed of the client sampling (default :func:`ratedist.flower.seeds.sampling_seed`).
    on_round_end : callable(server_round, strategy), optional, keyword-only
        Called after each aggregation (e.g. to evaluate ``strategy.theta``).

    Attributes
    ----------
    theta : float64 ndarray (d,) or None
        θ^g after the last aggregated round.
    last_masks : uint8 ndarray (K, d) or None
        The masks decoded in the last aggregated round (client-index order).
    reports : list of RoundReport

    Examples
    --------
    >>> s = FedPMStrategy(1000, n_nodes=10, clients_per_round=3, run_seed=0)
    >>> s.aggregator.reset_policy.name, s.compressor
    ('every_round', 'fedpm')
    """

    def __init__(self, d: int, *, n_nodes: int, clients_per_round: int, run_seed: int, compressor: str = "fedpm",
                 aggregator: BetaAggregator | None = None, sampling_seed: int | None = None, on_round_end=None):
        check_choice("compressor", compressor, MASK_COMPRESSORS)
        super().__init__(compressor=compressor, n_nodes=n_nodes, clients_per_round=clients_per_round,
                         run_seed=run_seed, sampling_seed_=sampling_seed, on_round_end=on_round_end)
        self.d = check_int("d", d, minimum=1)
        self.aggregator = aggregator if aggregator is not None else BetaAggregator(self.d, eps=0.01)
        if self.aggregator.d != self.d:
            raise InvalidArgumentError(f"`aggregator` has d={self.aggregator.d} but `d`={self.d}.")
        self.last_masks = None

    @property
    def theta(self):
        return self.aggregator.theta

    def scores_record(self, scores=None) -> ArrayRecord:
        """The broadcast: ``{"scores": float32 (d,)}``, s^g = logit_safe(θ^g, eps) (or ``scores`` given)."""
        s = self.aggregator.scores() if scores is None else np.asarray(scores)
        s = np.ascontiguousarray(s, dtype=np.float32).reshape(-1)
        if s.size != self.d:
            raise InvalidArgumentError(f"`scores` has {s.size} entries, expected d={self.d}.")
        return ArrayRecord({"scores": Array(s)})

    def summary(self) -> None:
        warmup(("beta",))  # the server's kernel, compiled before the first round is timed
        _log(INFO, "\t%s: d=%s, %s of %s nodes per round, compressor %s, %s", type(self).__name__, self.d,
             self.clients_per_round, self.n_nodes, self.compressor, self.aggregator.reset_policy)

    def configure_train(self, server_round, arrays, config, grid):
        return self._messages(server_round, arrays, config, grid)

    def aggregate_train(self, server_round, replies):
        t0 = time.perf_counter()
        report, updates = self._decode_replies(server_round, replies, {"theta": (self.d,)})
        arrays = None
        if updates:
            masks = np.stack([u["theta"] for u in updates]).astype(np.uint8)
            self.aggregator.update(masks, len(updates))
            self.last_masks = masks
            arrays = self.scores_record()
        else:
            _log(WARNING, "ratedist FedPMStrategy: round %s aggregated no client; θ^g unchanged", server_round)
        return arrays, self._finish(report, t0)

    # ---------------------------------------------------------------- checkpoint
    def state(self) -> tuple[ArrayRecord, ConfigRecord]:
        """Everything to resume: the aggregator's α, β, θ^g, policy and round, and the sampler's state."""
        arrays, config = aggregator_to_records(self.aggregator)
        for k, v in self._sampler_config().items():
            config[k] = v
        return arrays, config

    def load_state(self, arrays: ArrayRecord, config: ConfigRecord) -> None:
        """Restore :meth:`state` into this strategy (same d, nodes and seeds)."""
        agg = aggregator_from_records(arrays, config)
        if agg.d != self.d:
            raise InvalidArgumentError(f"the saved aggregator has d={agg.d}, this strategy d={self.d}.")
        self.aggregator = agg
        self._restore_sampler(config)


class CompressedFedAvg(_Sampling):
    """FedAvg on compressed weight updates (the DRIVE, EDEN and QSGD baselines).

    Clients receive the global weights (``"arrays"``, float32), train, and reply with their
    update Δ_k = w_k − w^g per array, coded array by array by a :class:`CompressorMod`.  The
    server decodes, averages over the clients that decoded (in client-index order, float64
    sums) and sets w^g ← w^g + float32(mean Δ).

    Parameters
    ----------
    compressor : {"qsgd", "drive", "eden"}
    n_nodes, clients_per_round, run_seed, sampling_seed, on_round_end
        As for :class:`FedPMStrategy`.

    Attributes
    ----------
    weights : dict of str to float32 ndarray
        The global weights after the last round (set from the first round's broadcast).

    Examples
    --------
    >>> CompressedFedAvg("drive", n_nodes=4, clients_per_round=2, run_seed=1).clients_per_round
    2
    """

    def __init__(self, compressor: str, *, n_nodes: int, clients_per_round: int, run_seed: int,
                 sampling_seed: int | None = None, on_round_end=None):
        check_choice("compressor", compressor, WEIGHT_COMPRESSORS)
        super().__init__(compressor=compressor, n_nodes=n_nodes, clients_per_round=clients_per_round,
                         run_seed=run_seed, sampling_seed_=sampling_seed, on_round_end=on_round_end)
        self.weights: dict | None = None

    def summary(self) -> None:
        _log(INFO, "\t%s: %s of %s nodes per round, compressor %s", type(self).__name__, self.clients_per_round,
             self.n_nodes, self.compressor)

    def configure_train(self, server_round, arrays, config, grid):
        if self.weights is None:
            self.weights = {k: np.ascontiguousarray(a.numpy(), dtype=np.float32) for k, a in arrays.items()}
        return self._messages(server_round, self._record(), config, grid)

    def _record(self) -> ArrayRecord:
        return ArrayRecord({k: Array(v) for k, v in self.weights.items()})

    def aggregate_train(self, server_round, replies):
        t0 = time.perf_counter()
        shapes = {k: v.shape for k, v in self.weights.items()}
        report, updates = self._decode_replies(server_round, replies, shapes)
        arrays = None
        if updates:
            new = {}
            for key, w in self.weights.items():
                total = np.zeros(w.shape, dtype=np.float64)
                for u in updates:
                    total += u[key]
                new[key] = w + (total / len(updates)).astype(np.float32)
            self.weights = new
            arrays = self._record()
        else:
            _log(WARNING, "ratedist CompressedFedAvg: round %s aggregated no client; weights unchanged", server_round)
        return arrays, self._finish(report, t0)
