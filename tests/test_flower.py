"""ratedist.flower and the FedPM pieces it needs (picklable aggregator, run seeds)."""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest

from ratedist.errors import InvalidArgumentError, InvalidShapeError
from ratedist.fedpm import BetaAggregator, ResetPolicy, client_seed


def _masks(rng, k, d):
    return (rng.random((k, d)) < rng.random(d)).astype(np.uint8)


def _reset_at_two(t):  # module level: picklable
    return t % 2 == 0


@pytest.mark.parametrize("reset", ["every_round", "never", [2, 3], _reset_at_two])
def test_beta_aggregator_pickles_and_continues_identically(reset):
    """A pickled aggregator continues exactly as the original: same α, β and θ^g bit for bit, every reset policy."""
    rng = np.random.default_rng(0)
    rounds = [_masks(rng, 3, 50) for _ in range(5)]
    a = BetaAggregator(50, prior=0.7, reset=reset, readout="mode")
    for m in rounds[:2]:
        a.update(m)
    b = pickle.loads(pickle.dumps(a))
    for m in rounds[2:]:
        ta, tb = a.update(m), b.update(m)
        assert np.array_equal(ta, tb)
    assert np.array_equal(a.alpha, b.alpha) and np.array_equal(a.beta, b.beta) and a.round == b.round == 5


@pytest.mark.parametrize("reset", ["every_round", "never", [1, 4]])
@pytest.mark.parametrize("mapping", [False, True])
def test_beta_aggregator_state_round_trip(reset, mapping):
    """from_state(state()) restores α, β, θ^g, the round and the policy, and the next rounds agree bit for bit."""
    rng = np.random.default_rng(1)
    a = BetaAggregator(40, prior=2.0, reset=reset, readout="mean", reference_mapping=mapping, eps=1e-3)
    for _ in range(3):
        a.update(_masks(rng, 4, 40))
    b = BetaAggregator.from_state(*a.state())
    assert (b.round, b.prior, b.readout, b.reference_mapping, b.eps) == (3, 2.0, "mean", mapping, 1e-3)
    assert b.reset_policy == a.reset_policy
    for _ in range(3):
        m = _masks(rng, 4, 40)
        assert np.array_equal(a.update(m), b.update(m))
    assert np.array_equal(a.scores(), b.scores())


def test_beta_aggregator_state_errors():
    """A callable policy cannot be written to a record; incomplete or mis-shaped states are refused by name."""
    with pytest.raises(InvalidArgumentError, match="callable"):
        BetaAggregator(3, reset=_reset_at_two).state()
    a = BetaAggregator(3)
    a.update(np.ones((1, 3), dtype=np.uint8))
    arrays, config = a.state()
    with pytest.raises(InvalidShapeError, match="alpha"):
        BetaAggregator.from_state({**arrays, "alpha": np.zeros(4)}, config)
    with pytest.raises(InvalidArgumentError, match="theta"):
        BetaAggregator.from_state({"alpha": arrays["alpha"], "beta": arrays["beta"]}, config)
    with pytest.raises(InvalidArgumentError, match="round"):
        BetaAggregator.from_state({}, config)
    with pytest.raises(InvalidArgumentError, match="reset"):
        BetaAggregator.from_state(arrays, {k: v for k, v in config.items() if k != "reset"})
    with pytest.raises(InvalidArgumentError, match="reset"):
        ResetPolicy("sometimes")
    # an empty aggregator round-trips too
    fresh = BetaAggregator.from_state(*BetaAggregator(5, reset="never").state())
    assert fresh.alpha is None and fresh.round == 0 and fresh.reset_policy.name == "never"


def test_client_seed_is_a_pure_function_of_its_arguments():
    """client_seed depends only on (run seed, round, node, stream, index) and separates all of them."""
    base = client_seed(3, 2, 5)
    assert base == client_seed(3, 2, 5, stream=1, index=0)
    variants = {client_seed(4, 2, 5), client_seed(3, 3, 5), client_seed(3, 2, 6), client_seed(3, 2, 5, stream=0),
                client_seed(3, 2, 5, index=1)}
    assert base not in variants and len(variants) == 5
    assert 0 <= base < 2**63
    with pytest.raises(InvalidArgumentError, match="`node`"):
        client_seed(3, 2, -1)


# ----------------------------------------------------------------------------- ratedist.flower (needs flwr)

HAVE_FLWR = importlib.util.find_spec("flwr") is not None
needs_flwr = pytest.mark.skipif(not HAVE_FLWR, reason="needs the `flower` extra (pip install 'ratedist[flower]')")

if HAVE_FLWR:
    from flwr.app import Array, ArrayRecord, ConfigRecord, Error, Message, MessageType, MetricRecord, RecordDict

    from ratedist.compressors import get_compressor
    from ratedist.flower import (
        BadReply,
        CompressedFedAvg,
        CompressorMod,
        FedPMStrategy,
        aggregator_from_records,
        aggregator_to_records,
        decode_update,
        keys,
    )


@pytest.fixture
def task_identity():
    """Flower builds server messages from the process's task identity; give the test one, then take it back."""
    from flwr.supercore.task_identity import TaskIdentity

    old = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, 1, 0
    yield
    TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = old


class FakeGrid:
    def __init__(self, ids):
        self.ids = list(ids)

    def get_node_ids(self):
        return list(self.ids)


def _train_message(node_id, k, server_round=1, run_seed=9, arrays=None):
    cfg = ConfigRecord({keys.SERVER_ROUND: server_round, keys.RUN_SEED: run_seed, keys.NODE: k})
    return Message(RecordDict({keys.ARRAYS: arrays or ArrayRecord(), keys.CONFIG: cfg}), dst_node_id=node_id,
                   message_type=MessageType.TRAIN)


def _client_reply(msg, update):
    return Message(RecordDict({keys.ARRAYS: ArrayRecord({k: Array(np.asarray(v)) for k, v in update.items()}),
                               keys.METRICS: MetricRecord({"num-examples": 5})}), reply_to=msg)


@pytest.mark.parametrize("name,params", [("fedpm", {}), ("fedmask", {}), ("qsgd", {"s": 4}), ("drive", {}),
                                         ("eden", {"bits": 2.0})])
@needs_flwr
def test_mod_sends_exactly_the_encode_bytes(task_identity, name, params):
    """The mod's reply holds, per array, exactly `encode`'s bytes under client_seed(run, round, node, index), stype
    'ratedist.<name>', the original dtype and shape; the metrics report 8 × the bytes; decode_update inverts it."""
    rng = np.random.default_rng(3)
    unit = name in ("fedpm", "fedmask")
    update = {"w0": rng.random((6, 5)) if unit else rng.standard_normal((6, 5)).astype(np.float32),
              "w1": rng.random(7) if unit else rng.standard_normal(7).astype(np.float32)}
    msg = _train_message(node_id=1234, k=2, server_round=3, run_seed=9)
    mod = CompressorMod(name, params)
    reply = mod(msg, None, lambda m, c: _client_reply(m, update))
    comp = get_compressor(name, **params)
    total = 0
    for i, (key, x) in enumerate(update.items()):
        arr = reply.content[keys.ARRAYS][key]
        want = comp.encode(x.ravel(), seed=client_seed(9, 3, 2, index=i))
        assert arr.data == want and arr.stype == f"ratedist.{name}"
        assert tuple(arr.shape) == x.shape and arr.dtype == str(x.dtype)
        total += len(want)
    metrics = reply.content[keys.METRICS]
    assert metrics[keys.N_BITS] == 8 * total and metrics[keys.N_PARAMS] == 37 and metrics["num-examples"] == 5
    decoded, n_bits = decode_update(reply, name, {"w0": (6, 5), "w1": (7,)})
    assert n_bits == 8 * total
    assert np.array_equal(decoded["w1"], comp.decode(comp.encode(update["w1"], seed=client_seed(9, 3, 2, index=1))))


@needs_flwr
def test_mod_leaves_error_and_empty_replies_alone(task_identity):
    """An error reply and a reply without arrays pass the mod untouched (the server counts them)."""
    msg = _train_message(5, 0)
    err = CompressorMod("fedpm")(msg, None, lambda m, c: Message(Error(1, "boom"), reply_to=m))
    assert err.has_error() and err.error.reason == "boom"
    empty = CompressorMod("fedpm")(msg, None, lambda m, c: Message(RecordDict({}), reply_to=m))
    assert keys.ARRAYS not in empty.content


def _bad_replies(msg, d):
    """One reply of each bad kind, with the reason decode_update must give."""
    theta = np.full(d, 0.5)
    good = CompressorMod("fedpm")(msg, None, lambda m, c: _client_reply(m, {"theta": theta}))
    other = CompressorMod("qsgd")(msg, None, lambda m, c: _client_reply(m, {"theta": theta}))
    short = CompressorMod("fedpm")(msg, None, lambda m, c: _client_reply(m, {"theta": theta[:-1]}))
    corrupt = CompressorMod("fedpm")(msg, None, lambda m, c: _client_reply(m, {"theta": theta}))
    a = corrupt.content[keys.ARRAYS]["theta"]
    flipped = bytearray(a.data)
    flipped[len(flipped) // 2] ^= 0xFF
    corrupt.content[keys.ARRAYS] = ArrayRecord({"theta": Array(dtype=a.dtype, shape=tuple(a.shape), stype=a.stype,
                                                               data=bytes(flipped))})
    restyped = CompressorMod("fedpm")(msg, None, lambda m, c: _client_reply(m, {"theta": theta}))
    b = restyped.content[keys.ARRAYS]["theta"]
    restyped.content[keys.ARRAYS] = ArrayRecord({"theta": Array(dtype=b.dtype, shape=tuple(b.shape),
                                                                stype="numpy.ndarray", data=b.data)})
    return good, [(Message(Error(2, "client crashed"), reply_to=msg), "failed"),
                  (Message(RecordDict({}), reply_to=msg), "empty"),
                  (other, "wrong_compressor"), (restyped, "wrong_compressor"),
                  (short, "wrong_dims"), (corrupt, "corrupt")]


@needs_flwr
def test_decode_update_names_every_bad_reply(task_identity):
    """Each kind of bad reply raises BadReply with its reason (a ValueError), never anything else."""
    msg = _train_message(7, 0)
    good, bad = _bad_replies(msg, 64)
    decoded, _ = decode_update(good, "fedpm", {"theta": (64,)})
    assert set(np.unique(decoded["theta"])) <= {0.0, 1.0}
    for reply, reason in bad:
        with pytest.raises(BadReply) as info:
            decode_update(reply, "fedpm", {"theta": (64,)})
        assert info.value.reason == reason and isinstance(info.value, ValueError)


@needs_flwr
def test_fedpm_strategy_skips_counts_and_aggregates_the_rest(task_identity):
    """Bad replies are skipped and counted by reason; the good ones aggregate exactly as BetaAggregator would;
    a round with no good reply keeps θ^g and reports it; the server never raises."""
    d, ids = 80, [501, 17, 230, 99]
    s = FedPMStrategy(d, n_nodes=4, clients_per_round=4, run_seed=3)
    msgs = list(s.configure_train(1, s.scores_record(np.zeros(d)), ConfigRecord(), FakeGrid(ids)))
    assert sorted(int(m.content[keys.CONFIG][keys.NODE]) for m in msgs) == [0, 1, 2, 3]
    assert {m.metadata.dst_node_id: int(m.content[keys.CONFIG][keys.NODE]) for m in msgs} == {17: 0, 99: 1, 230: 2, 501: 3}
    rng = np.random.default_rng(0)
    thetas = {int(m.content[keys.CONFIG][keys.NODE]): rng.random(d) for m in msgs}
    replies = [CompressorMod("fedpm")(m, None, lambda mm, c: _client_reply(mm, {"theta": thetas[int(
        mm.content[keys.CONFIG][keys.NODE])]})) for m in msgs]
    _, bad = _bad_replies(msgs[0], d)
    replies[0] = bad[4][0]  # client of msgs[0] sends the wrong dimension
    replies[1] = Message(Error(3, "out of memory"), reply_to=msgs[1])
    arrays, metrics = s.aggregate_train(1, replies)
    report = s.reports[-1]
    assert report.skipped == {"failed": 1, "wrong_dims": 1} and metrics["ratedist.skipped"] == 2
    assert metrics["ratedist.skipped.wrong_dims"] == 1 and len(report.aggregated) == 2
    masks = np.stack([decode_update(replies[j], "fedpm", {"theta": (d,)})[0]["theta"] for j in (2, 3)])
    want = BetaAggregator(d, eps=0.01).update(masks.astype(np.uint8))
    assert np.array_equal(s.theta, want)
    assert np.array_equal(arrays["scores"].numpy(), s.aggregator.scores().astype(np.float32))
    # nothing usable: no crash, θ^g unchanged, all counted
    msgs = list(s.configure_train(2, arrays, ConfigRecord(), FakeGrid(ids)))
    before = s.theta.copy()
    arrays2, metrics2 = s.aggregate_train(2, [r for r, _ in _bad_replies(msgs[0], d)[1]])
    assert arrays2 is None and np.array_equal(s.theta, before)
    assert metrics2["ratedist.aggregated"] == 0 and metrics2["ratedist.skipped"] == 6 + 3  # 3 never replied
    assert s.reports[-1].skipped["failed"] == 1 + 3


@needs_flwr
def test_compressed_fedavg_averages_decoded_updates(task_identity):
    """FedAvg adds float32 of the float64 mean of the decoded updates (client-index order) to the weights."""
    w = {"a": np.ones((4, 3), np.float32), "b": np.zeros(5, np.float32)}
    s = CompressedFedAvg("drive", n_nodes=3, clients_per_round=2, run_seed=4)
    init = ArrayRecord({k: Array(v) for k, v in w.items()})
    msgs = list(s.configure_train(1, init, ConfigRecord(), FakeGrid([8, 6, 7])))
    rng = np.random.default_rng(1)
    deltas = {int(m.content[keys.CONFIG][keys.NODE]): {k: rng.standard_normal(v.shape).astype(np.float32)
                                                       for k, v in w.items()} for m in msgs}
    replies = [CompressorMod("drive")(m, None, lambda mm, c: _client_reply(mm, deltas[int(
        mm.content[keys.CONFIG][keys.NODE])])) for m in msgs]
    arrays, metrics = s.aggregate_train(1, replies[::-1])
    dec = [decode_update(r, "drive", {k: v.shape for k, v in w.items()})[0] for r in replies]
    order = np.argsort([int(m.content[keys.CONFIG][keys.NODE]) for m in msgs])
    for key in w:
        total = np.zeros(w[key].shape)
        for j in order:
            total += dec[j][key]
        assert np.array_equal(arrays[key].numpy(), w[key] + (total / 2).astype(np.float32))
    assert metrics["ratedist.aggregated"] == 2 and metrics[keys.N_BITS] == sum(s.reports[-1].n_bits)


@needs_flwr
def test_strategy_state_round_trip_resumes_sampling_and_aggregation(task_identity):
    """A strategy restored from state() samples the same clients and aggregates the same θ^g as the original."""
    d, ids = 30, [3, 1, 2, 5, 4]
    a = FedPMStrategy(d, n_nodes=5, clients_per_round=2, run_seed=8,
                      aggregator=BetaAggregator(d, reset="never", eps=0.01))
    grid = FakeGrid(ids)
    rng = np.random.default_rng(2)

    def play(s, t):
        msgs = list(s.configure_train(t, s.scores_record(np.zeros(d)), ConfigRecord(), grid))
        reps = [CompressorMod("fedpm")(m, None, lambda mm, c: _client_reply(mm, {"theta": rng_theta[int(
            mm.content[keys.CONFIG][keys.NODE])]})) for m in msgs]
        s.aggregate_train(t, reps)
        return s.reports[-1].aggregated

    rng_theta = {k: rng.random(d) for k in range(5)}
    play(a, 1)
    arrays, config = a.state()
    b = FedPMStrategy(d, n_nodes=5, clients_per_round=2, run_seed=8)
    b.load_state(arrays, config)
    b.nodes = dict(a.nodes)
    for t in (2, 3):
        assert play(a, t) == play(b, t)
        assert np.array_equal(a.theta, b.theta)
    back = aggregator_from_records(*aggregator_to_records(b.aggregator))
    assert np.array_equal(back.alpha, b.aggregator.alpha) and back.reset_policy.name == "never"


@needs_flwr
@pytest.mark.slow
@pytest.mark.parametrize("method", ["FedPM", "QSGD"])
def test_flower_engine_equals_inprocess_engine(method):
    """Same seed, same run: the Flower engine (Ray simulation, ratedist's client mods and strategies) gives the
    in-process loop's aggregated state bit for bit (θ^g for FedPM, the weights for QSGD-FedAvg), the same uplink
    bits per round and the same accuracy curve (2 rounds, 3 clients, 2 sampled per round)."""
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from ratedist.scripts import load_script, repo_root

    table = load_script(repo_root() / "paper_repro" / "fedpm_table.py")
    kw = dict(n_clients=3, rounds=2, local_epochs=1, eval_every=1, methods=(method,))
    ours = table.run_one(method, 2, 0.67, 0, table.config(True, **kw))
    flower = table.run_one(method, 2, 0.67, 0, table.config(True, engine="flower", **kw))
    assert ours["clients_per_round"] == 2
    for key in ("final_state_sha256", "uplink_bits_per_round", "bpp_per_round", "curve", "bpp_paper_estimate_mean"):
        assert flower[key] == ours[key], key
    assert all(b > 0 for b in flower["uplink_bits_per_round"])


def test_repro_engine_flag(capsys):
    """`--engine flower` is offered for the fedpm table only; the table's config rejects an unknown engine."""
    from ratedist.cli import main as cli_main
    from ratedist.scripts import load_script, repo_root

    assert cli_main(["repro", "surp", "--quick", "--engine", "flower", "--out", "unused"]) == 2
    assert "--engine" in capsys.readouterr().err
    table = load_script(repo_root() / "paper_repro" / "fedpm_table.py")
    assert table.config(True, engine="flower").engine == "flower"
    with pytest.raises(InvalidArgumentError, match="`engine`"):
        table.config(True, engine="dask")
