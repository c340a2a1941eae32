"""FedPM on Flower at scale: 1,000 virtual clients, 10 % sampled per round, the digits MLP (issue 14).

For the same work (the same clients, seeds, local training, payloads and Beta aggregation) it
measures

1. time per round after the first (warm-up) round, Flower's simulation engine against the
   in-process loop run in this process (ratio = in-process / Flower; target ≥ 0.5, i.e. at most 2×);
2. peak memory (the driver and every process it started: Ray's raylet and workers) at two client
   counts (ratio = peak at the small count / peak at the large count; target ≥ 0.8, i.e. independent
   of the number of clients within 25 %);
3. bytes on the wire per client: ratedist's payload against the 4·d bytes of float32 θ, with
   Flower's own overhead per reply message (its serialized objects minus the payload) beside it.

Both engines must agree: the same θ^g bit for bit (checked) — a faster wrong answer cannot pass.
Run ``python -m benchmarks.run --only flower`` (``--quick``: 20/40 clients, 2 rounds).  Linux only
(memory is read from /proc).
"""

from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TABLE = ROOT / "paper_repro" / "fedpm_table.py"


def _tree_rss_bytes() -> int:
    """Resident memory of this process and all its descendants (from /proc)."""
    parents, rss = {}, {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                parents[int(entry)] = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/statm") as f:
                rss[int(entry)] = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    mine, frontier = {os.getpid()}, [os.getpid()]
    while frontier:
        p = frontier.pop()
        for c, pp in parents.items():
            if pp == p and c not in mine:
                mine.add(c)
                frontier.append(c)
    return sum(rss.get(p, 0) for p in mine)


class _PeakMemory:
    def __init__(self, every: float = 0.25):
        self.every, self.peak, self._stop = every, 0, threading.Event()

    def __enter__(self):
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def _run(self):
        while not self._stop.is_set():
            self.peak = max(self.peak, _tree_rss_bytes())
            self._stop.wait(self.every)

    def __exit__(self, *exc):
        self._stop.set()
        self._t.join()
        self.peak = max(self.peak, _tree_rss_bytes())


def _setup(n_clients: int, rounds: int):
    from dataclasses import asdict

    from ratedist.scripts import load_script

    table = load_script(TABLE)
    cfg = table.config(True, n_clients=n_clients, rounds=rounds, local_epochs=1, methods=("FedPM",))
    kw = {"method": "FedPM", "c_max": 2, "cfg": asdict(cfg)}
    return table, cfg, kw


def _initial(table, seed: int):
    import torch

    W0 = table._frozen_weights(seed)
    gs = torch.Generator().manual_seed(table._seed("scores", seed))
    return table._flat([torch.randn(w.shape, generator=gs) for w in W0]).astype(np.float32)


def run_inprocess(n_clients: int, rounds: int, rho: float = 0.1, seed: int = 0) -> dict:
    """The same rounds in this process: the table's local update, encode, decode, Beta aggregation."""
    from ratedist import fedpm
    from ratedist.compressors import get_compressor
    from ratedist.flower import sampling_seed

    import torch

    table, cfg, kw = _setup(n_clients, rounds)
    d = sum(a * b for a, b in zip(table.SIZES[:-1], table.SIZES[1:]))
    per_round = max(1, int(round(rho * n_clients)))
    rng = np.random.default_rng(sampling_seed(seed))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as in Ray's workers (OMP_NUM_THREADS=1): the same work per client
    agg = fedpm.BetaAggregator(d, eps=table.SCORE_CLIP)
    comp = get_compressor("fedpm")
    scores = _initial(table, seed)
    times, n_bytes = [], []
    for t in range(1, rounds + 1):
        t0 = time.perf_counter()
        chosen = np.sort(rng.choice(n_clients, size=per_round, replace=False))
        masks = np.empty((per_round, d), dtype=np.uint8)
        for j, k in enumerate(chosen):
            theta = table.flower_local_update({"scores": scores}, node=int(k), server_round=t, run_seed=seed, **kw)
            payload = comp.encode(theta["theta"], seed=fedpm.client_seed(seed, t, int(k)))
            masks[j] = comp.decode(payload)
            n_bytes.append(len(payload))
        agg.update(masks, per_round)
        scores = agg.scores().astype(np.float32)
        times.append(time.perf_counter() - t0)
    torch.set_num_threads(threads)
    return {"times": times, "bytes": n_bytes, "d": d, "theta_sha256": hashlib.sha256(agg.theta.tobytes()).hexdigest()}


def run_flower(n_clients: int, rounds: int, rho: float = 0.1, seed: int = 0) -> dict:
    """The same rounds on Flower's simulation engine; per-round wall time from the strategy's callback."""
    from ratedist import fedpm
    from ratedist.flower import FedPMStrategy, ScriptFunction, run_simulation

    table, cfg, kw = _setup(n_clients, rounds)
    d = sum(a * b for a, b in zip(table.SIZES[:-1], table.SIZES[1:]))
    stamps = []
    strategy = FedPMStrategy(d, n_nodes=n_clients, clients_per_round=max(1, int(round(rho * n_clients))),
                             run_seed=seed, aggregator=fedpm.BetaAggregator(d, eps=table.SCORE_CLIP),
                             on_round_end=lambda t, s: stamps.append(time.perf_counter()))
    first_call = []
    configure = strategy.configure_train

    def configure_train(*args, **kwargs):  # the first call marks the end of Ray's start-up
        if not first_call:
            first_call.append(time.perf_counter())
        return configure(*args, **kwargs)

    strategy.configure_train = configure_train
    t0 = time.perf_counter()
    with _PeakMemory() as mem:
        run_simulation(strategy, ScriptFunction(str(TABLE), "flower_local_update", kw),
                       initial_arrays={"scores": _initial(table, seed)}, rounds=rounds)
    times = list(np.diff(first_call[:1] + stamps))
    n_bytes = [b // 8 for r in strategy.reports for b in r.n_bits]
    return {"times": times, "startup_s": first_call[0] - t0, "bytes": n_bytes, "d": d, "peak_bytes": mem.peak,
            "skipped": sum(
        r.n_skipped for r in strategy.reports), "theta_sha256": hashlib.sha256(strategy.theta.tobytes()).hexdigest(),
        "wall_s": time.perf_counter() - t0}


def flower_overhead_bytes(d: int, seed: int = 0) -> tuple[int, int]:
    """(serialized bytes of one FedPM reply message, payload bytes in it): Flower's envelope is the difference."""
    from flwr.app import Array, ArrayRecord, ConfigRecord, Message, MessageType, MetricRecord, RecordDict
    from flwr.supercore.inflatable.inflatable_object import get_all_nested_objects
    from flwr.supercore.task_identity import TaskIdentity

    from ratedist.flower import CompressorMod, keys

    old = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    try:
        cfg = ConfigRecord({keys.SERVER_ROUND: 1, keys.RUN_SEED: seed, keys.NODE: 0})
        msg = Message(RecordDict({keys.CONFIG: cfg}), dst_node_id=1, message_type=MessageType.TRAIN)
        theta = np.random.default_rng(seed).random(d)
        reply = CompressorMod("fedpm", warmup=False)(msg, None, lambda m, c: Message(RecordDict({
            keys.ARRAYS: ArrayRecord({"theta": Array(theta)}), keys.METRICS: MetricRecord()}), reply_to=m))
        total = sum(len(o.deflate()) for o in get_all_nested_objects(reply).values())
        return total, len(reply.content[keys.ARRAYS]["theta"].data)
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = old


def main(quick: bool = False) -> list[dict]:
    small, large = (20, 40) if quick else (100, 1000)
    rounds = 2 if quick else 4
    ref = run_inprocess(large, rounds)
    fl = run_flower(large, rounds)
    fl_small = run_flower(small, rounds)
    same = fl["theta_sha256"] == ref["theta_sha256"] and fl["bytes"] == ref["bytes"] and fl["skipped"] == 0
    t_ref, t_fl = float(np.mean(ref["times"][1:])), float(np.mean(fl["times"][1:]))
    rows = [{"name": f"flower fedpm {large} clients 10% round time", "ratio": t_ref / t_fl, "target": ">= 0.5 (<= 2x)",
             "passed": bool(same and t_ref / t_fl >= 0.5),
             "detail": f"Flower {t_fl:.2f} s/round after the first ({fl['times'][0]:.1f} s; Ray start-up "
                       f"{fl['startup_s']:.1f} s before it), in-process "
                       f"{t_ref:.2f} s/round; same θ^g and bytes: {same}"}]
    rows.append({"name": f"flower fedpm peak memory {small} vs {large} clients",
                 "ratio": fl_small["peak_bytes"] / fl["peak_bytes"], "target": ">= 0.8 (independent of clients)",
                 "passed": bool(fl_small["peak_bytes"] / fl["peak_bytes"] >= 0.8),
                 "detail": f"peak {fl_small['peak_bytes'] / 2**30:.2f} GiB ({small}) vs "
                           f"{fl['peak_bytes'] / 2**30:.2f} GiB ({large}), driver + Ray processes"})
    d = fl["d"]
    mean_bytes = float(np.mean(fl["bytes"]))
    total, payload = flower_overhead_bytes(d)
    rows.append({"name": "flower fedpm bytes per client vs float32", "ratio": 4 * d / mean_bytes,
                 "target": "reported (issue: 31.6x)", "passed": bool(same),
                 "detail": f"payload {mean_bytes:.0f} B ({8 * mean_bytes / d:.3f} bits/param) vs float32 θ {4 * d} B; "
                           f"Flower's envelope per reply {total - payload} B beside a {payload} B payload"})
    return rows


if __name__ == "__main__":
    for row in main(quick=True):
        print(row)
