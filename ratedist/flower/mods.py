"""Client mods that put ratedist's payload bytes on the wire, and the server-side decoder.

A Flower *mod* wraps a ClientApp: it sees the incoming message, calls the app, and may rewrite
the reply.  :class:`CompressorMod` replaces every array of a training reply's ``"arrays"``
record (the client's update: FedPM's θ_k, or a weight update Δ per layer) by one
:class:`flwr.app.Array` whose ``data`` are exactly the bytes of the compressor's ``encode``
(``stype="ratedist.<name>"``, ``dtype`` and ``shape`` those of the original array), and records
the measured bits in the reply's ``"metrics"``.  The seed of array ``i`` is
:func:`ratedist.fedpm.client_seed` (run seed, round, node, index=i), read from the message's
config, so the bytes do not depend on where the client runs.

:func:`decode_update` is the server's half: it checks a reply and returns the decoded arrays,
or raises :class:`BadReply` with the reason the strategies count.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_choice
from ..compressors import COMPRESSORS, get_compressor
from ..compressors import decode as decode_payload
from ..compressors.base import parse_header
from ..errors import CorruptStreamError, InvalidArgumentError, RatedistError
from ..fedpm.seeds import STREAM_UPLINK, client_seed
from . import keys as K
from ._flwr import Array, ArrayRecord, Message, MessageType, MetricRecord
from .warmup import warmup as _warmup

__all__ = ["CompressorMod", "compressor_mod", "encode_update", "decode_update", "BadReply", "REASONS",
           "message_seeds"]

#: Why a reply can be skipped (the keys of a round report's ``skipped``).
REASONS = ("failed", "empty", "wrong_compressor", "wrong_dims", "corrupt", "unknown_node")


class BadReply(RatedistError, ValueError):
    """A client's reply that the server cannot aggregate; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


def message_seeds(msg: Message) -> tuple[int, int, int]:
    """``(run_seed, server_round, node)`` from a training message's config (see :mod:`ratedist.flower.keys`)."""
    try:
        cfg = msg.content[K.CONFIG]
        return int(cfg[K.RUN_SEED]), int(cfg[K.SERVER_ROUND]), int(cfg[K.NODE])
    except KeyError as exc:
        raise InvalidArgumentError(
            f"the message's `config` record lacks {exc.args[0]!r}; send it from ratedist's strategies "
            f"(or set {K.RUN_SEED!r}, {K.SERVER_ROUND!r} and {K.NODE!r} yourself)."
        ) from None


def encode_update(compressor, arrays, *, run_seed: int, server_round: int, node: int):
    """Encode every array of ``arrays`` with ``compressor``; return ``(ArrayRecord of payloads, n_bits, n_params)``.

    Parameters
    ----------
    compressor : ratedist.compressors.Compressor
    arrays : ArrayRecord or mapping of str to ndarray
        The update, in order; array ``i`` is flattened and coded with seed
        ``client_seed(run_seed, server_round, node, index=i)``.
    run_seed, server_round, node : int, keyword-only

    Returns
    -------
    record : ArrayRecord
        Same keys; each value an ``Array(dtype, shape, "ratedist.<name>", payload)``.
    n_bits : int
        8 × the total payload bytes.
    n_params : int
        Number of coordinates coded.
    """
    out, n_bytes, n_params = {}, 0, 0
    for i, (key, value) in enumerate(arrays.items()):
        x = value.numpy() if isinstance(value, Array) else np.asarray(value)
        payload = compressor.encode(x.reshape(-1), seed=client_seed(run_seed, server_round, node,
                                                                    stream=STREAM_UPLINK, index=i))
        out[key] = Array(dtype=str(x.dtype), shape=tuple(int(s) for s in x.shape), stype=K.stype_of(compressor.name),
                         data=payload)
        n_bytes += len(payload)
        n_params += x.size
    return ArrayRecord(out), 8 * n_bytes, n_params


@dataclass
class CompressorMod:
    """A Flower client mod that sends ``compressor``'s payload instead of the raw update.

    Parameters
    ----------
    name : {"fedpm", "fedmask", "qsgd", "drive", "eden"}
        The compressor (:func:`ratedist.compressors.get_compressor`).
    params : dict
        Its parameters (``s`` for qsgd, ``scale`` for drive, ``bits`` for eden, ...).
    warmup : bool
        Compile the compressor's numba kernels before the first message of each worker
        process (:func:`ratedist.flower.warmup`).

    Notes
    -----
    Only replies to training messages are rewritten; error replies, and replies without an
    ``"arrays"`` record, pass untouched (the server counts them as failed or empty).  The
    mod is a plain picklable object, as Flower's simulation engine ships the ClientApp to
    its Ray workers.

    Examples
    --------
    >>> from flwr.clientapp import ClientApp
    >>> app = ClientApp(mods=[CompressorMod("fedpm")])
    >>> CompressorMod("qsgd", {"s": 4}).compressor
    QSGD(s=4)
    """

    name: str
    params: dict | None = None
    warmup: bool = True

    def __post_init__(self):
        check_choice("name", self.name, tuple(COMPRESSORS))
        self.params = dict(self.params or {})
        self.compressor = get_compressor(self.name, **self.params)

    def __call__(self, msg: Message, context, call_next) -> Message:
        if self.warmup:
            _warmup((self.name,))
        reply = call_next(msg, context)
        if msg.metadata.message_type != MessageType.TRAIN or reply.has_error() or K.ARRAYS not in reply.content:
            return reply
        run_seed, server_round, node = message_seeds(msg)
        record, n_bits, n_params = encode_update(self.compressor, reply.content[K.ARRAYS], run_seed=run_seed,
                                                 server_round=server_round, node=node)
        reply.content[K.ARRAYS] = record
        metrics = reply.content.get(K.METRICS)
        metrics = MetricRecord(dict(metrics)) if metrics is not None else MetricRecord()
        metrics[K.N_BITS] = n_bits
        metrics[K.N_PARAMS] = n_params
        reply.content[K.METRICS] = metrics
        return reply


def compressor_mod(name: str, *, warmup: bool = True, **params) -> CompressorMod:
    """The client mod for compressor ``name`` with ``params`` (see :class:`CompressorMod`).

    Examples
    --------
    >>> compressor_mod("eden", bits=2).compressor.name
    'eden'
    """
    return CompressorMod(name, params, warmup)


def decode_update(reply: Message, compressor: str, shapes) -> tuple[dict, int]:
    """Check one client's reply and decode its payloads (the server's half of :class:`CompressorMod`).

    Parameters
    ----------
    reply : flwr.app.Message
    compressor : str
        The compressor the strategy expects.
    shapes : mapping of str to tuple of int
        The expected keys and shapes of the update, in order.

    Returns
    -------
    arrays : dict of str to float64 ndarray
        The decoded update, in ``shapes``' order and shapes.
    n_bits : int
        8 × the payload bytes actually received (not the client's own claim).

    Raises
    ------
    BadReply
        ``failed`` (Flower's error record), ``empty`` (no ``"arrays"``), ``wrong_compressor``
        (another ``stype`` or payload kind), ``wrong_dims`` (other keys or dimensions),
        ``corrupt`` (the payload does not decode).
    """
    if reply.has_error():
        err = reply.error
        raise BadReply("failed", f"client reported error {err.code}: {err.reason}")
    if not reply.has_content() or K.ARRAYS not in reply.content or len(reply.content[K.ARRAYS]) == 0:
        raise BadReply("empty", "the reply carries no 'arrays' record")
    record = reply.content[K.ARRAYS]
    if list(record.keys()) != list(shapes):
        raise BadReply("wrong_dims", f"the reply's arrays are {list(record.keys())}, expected {list(shapes)}")
    want = K.stype_of(compressor)
    out, n_bits = {}, 0
    for key, shape in shapes.items():
        arr = record[key]
        if arr.stype != want:
            raise BadReply("wrong_compressor", f"array {key!r} has stype {arr.stype!r}, expected {want!r}")
        data = bytes(arr.data)
        try:
            kind, d = parse_header(data)[:2]
        except CorruptStreamError as exc:
            raise BadReply("corrupt", f"array {key!r}: {exc}") from None
        if kind != compressor:
            raise BadReply("wrong_compressor", f"array {key!r} holds a {kind!r} payload, expected {compressor!r}")
        size = int(np.prod(shape, dtype=np.int64))
        if d != size or tuple(arr.shape) != tuple(shape):
            raise BadReply("wrong_dims", f"array {key!r} has shape {tuple(arr.shape)} and payload dimension {d}, "
                                         f"expected {tuple(shape)}")
        try:
            out[key] = np.asarray(decode_payload(data), dtype=np.float64).reshape(shape)
        except (RatedistError, ValueError) as exc:
            raise BadReply("corrupt", f"array {key!r}: {exc}") from None
        n_bits += 8 * len(data)
    return out, n_bits
