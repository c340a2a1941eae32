"""Flower apps from one local-update function, and a Python entry that simulates them.

:func:`client_app` turns ``local_update(arrays, *, node, server_round, run_seed) -> dict of
arrays`` into a :class:`flwr.clientapp.ClientApp` whose training replies go through a
:class:`ratedist.flower.CompressorMod`; :func:`server_app` wraps a strategy;
:func:`run_simulation` runs both on Flower's simulation engine (Ray) and returns the
strategy, whose ``reports`` hold every round's measured bits.

The ClientApp is shipped to Ray's worker processes by pickling, so ``local_update`` must be
picklable: a module-level function of an importable module, a :func:`functools.partial` of
one, or a :class:`ScriptFunction` (a function of a script file, loaded by path in each worker).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._validation import check_int
from ..errors import InvalidArgumentError
from . import keys as K
from ._flwr import Array, ArrayRecord, ConfigRecord, Message, MetricRecord, RecordDict
from .mods import CompressorMod, message_seeds

__all__ = ["client_app", "server_app", "run_simulation", "ScriptFunction", "SimulationResult", "default_backend_config"]


@dataclass(frozen=True)
class ScriptFunction:
    """A picklable reference to function ``name`` of the Python file ``path``, loaded once per process.

    Parameters
    ----------
    path : str
        A script file (e.g. ``paper_repro/fedpm_table.py``); it is loaded with
        :func:`ratedist.scripts.load_script` in each worker the first time it is called.
    name : str
        The function's name in that file.
    kwargs : dict
        Keyword arguments bound to every call.
    """

    path: str
    name: str
    kwargs: dict = field(default_factory=dict)

    def __call__(self, *args, **kwargs):
        return getattr(_load(self.path), self.name)(*args, **self.kwargs, **kwargs)


_SCRIPTS: dict = {}


def _load(path: str):
    if path not in _SCRIPTS:
        from ..scripts import load_script

        _SCRIPTS[path] = load_script(Path(path))
    return _SCRIPTS[path]


@dataclass
class _Train:
    """The ClientApp's train function (a picklable object: Ray ships it to its workers)."""

    local_update: object
    pass_context: bool = False

    def __call__(self, msg: Message, context) -> Message:
        run_seed, server_round, node = message_seeds(msg)
        arrays = {k: a.numpy() for k, a in msg.content[K.ARRAYS].items()}
        extra = {"context": context} if self.pass_context else {}
        out = self.local_update(arrays, node=node, server_round=server_round, run_seed=run_seed, **extra)
        if not out:
            return Message(RecordDict({}), reply_to=msg)
        n_examples = out.pop(K.NUM_EXAMPLES, None) if isinstance(out, dict) else None
        record = ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in out.items()})
        metrics = MetricRecord({K.NUM_EXAMPLES: int(n_examples)}) if n_examples is not None else MetricRecord()
        return Message(RecordDict({K.ARRAYS: record, K.METRICS: metrics}), reply_to=msg)


def client_app(local_update, compressor: str, *, compressor_params: dict | None = None, warmup: bool = True,
               pass_context: bool = False):
    """A ClientApp that trains with ``local_update`` and sends ``compressor``'s payload.

    Parameters
    ----------
    local_update : callable(arrays, *, node, server_round, run_seed) -> dict of str to ndarray
        ``arrays`` are the broadcast (FedPM: ``{"scores": float32 (d,)}``; FedAvg: the
        weights); it returns the update (FedPM/FedMask: ``{"theta": θ_k}``; the weight
        baselines: Δ per array, same keys as the weights) and may add ``"num-examples"``.
        An empty result sends an empty reply.
    compressor : {"fedpm", "fedmask", "qsgd", "drive", "eden"}
    compressor_params : dict, optional, keyword-only
    warmup : bool, keyword-only
        Warm the compressor's numba kernels once per worker process.
    pass_context : bool, keyword-only
        Also pass Flower's ``context=`` (run config, node config) to ``local_update``.

    Returns
    -------
    flwr.clientapp.ClientApp
    """
    from flwr.clientapp import ClientApp

    if not callable(local_update):
        raise InvalidArgumentError(f"`local_update` must be callable, got {local_update!r}.")
    app = ClientApp(mods=[CompressorMod(compressor, compressor_params, warmup)])
    app.train()(_Train(local_update, pass_context))
    return app


def server_app(strategy, initial_arrays, *, rounds: int, timeout: float = 3600.0, train_config: dict | None = None):
    """A ServerApp that runs ``strategy`` for ``rounds`` rounds from ``initial_arrays``.

    Parameters
    ----------
    strategy : FedPMStrategy or CompressedFedAvg
    initial_arrays : mapping of str to ndarray
        The first broadcast (FedPM: ``{"scores": ...}``; FedAvg: the initial weights).
    rounds : int, keyword-only
    timeout : float, keyword-only
        Seconds to wait for a round's replies (absent replies count as failed clients).
    train_config : dict, optional, keyword-only
        Extra entries for every training message's config.

    Returns
    -------
    flwr.serverapp.ServerApp
        After the run, ``app.ratedist_result`` holds Flower's ``Result``.
    """
    from flwr.serverapp import ServerApp

    rounds = check_int("rounds", rounds, minimum=1)
    initial = ArrayRecord({k: Array(np.ascontiguousarray(v)) for k, v in initial_arrays.items()})
    app = ServerApp()

    @app.main()
    def main(grid, context) -> None:
        app.ratedist_result = strategy.start(grid=grid, initial_arrays=initial, num_rounds=rounds, timeout=timeout,
                                             train_config=ConfigRecord(dict(train_config or {})))

    return app


def default_backend_config(num_cpus: int | None = None) -> dict:
    """Ray settings for one machine: one CPU per virtual client, no dashboard, quiet logs."""
    n = num_cpus or os.cpu_count() or 1
    return {"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
            "init_args": {"num_cpus": int(n), "include_dashboard": False, "logging_level": "ERROR",
                          "log_to_driver": False}}


@dataclass
class SimulationResult:
    """What :func:`run_simulation` returns.

    Attributes
    ----------
    strategy : the strategy after the run (``reports``, ``theta`` or ``weights``)
    result : flwr.serverapp.strategy.Result or None
    """

    strategy: object
    result: object = None

    @property
    def reports(self):
        return self.strategy.reports


def run_simulation(strategy, local_update, *, initial_arrays, rounds: int, n_nodes: int | None = None,
                   compressor_params: dict | None = None, backend_config: dict | None = None, timeout: float = 3600.0,
                   warmup: bool = True, verbose: bool = False) -> SimulationResult:
    """Simulate ``strategy`` with ``n_nodes`` virtual clients running ``local_update`` (Flower's Ray engine).

    Parameters
    ----------
    strategy : FedPMStrategy or CompressedFedAvg
        Its ``compressor`` is the clients' compressor.
    local_update : picklable callable
        See :func:`client_app`.
    initial_arrays : mapping of str to ndarray, keyword-only
        The first broadcast.
    rounds : int, keyword-only
    n_nodes : int, optional, keyword-only
        Virtual clients (default: ``strategy.n_nodes``).
    compressor_params : dict, optional, keyword-only
        The compressor's parameters (e.g. ``{"s": 32}`` for QSGD).
    backend_config : dict, optional, keyword-only
        Flower's backend config (default :func:`default_backend_config`).
    timeout : float, keyword-only
        Seconds to wait for a round's replies.
    warmup : bool, keyword-only
        Warm numba once per worker process (:func:`ratedist.flower.warmup`).
    verbose : bool, keyword-only
        Flower's debug logs.

    Returns
    -------
    SimulationResult

    Notes
    -----
    The ServerApp runs in a thread of this process, so ``strategy`` is the very object that
    aggregated; the ClientApps run in Ray actors.  Seeds derive from ``strategy.run_seed``
    (:mod:`ratedist.flower.seeds`), so the same call gives the same bytes.
    """
    from flwr.simulation import run_simulation as flwr_run_simulation

    n_nodes = strategy.n_nodes if n_nodes is None else check_int("n_nodes", n_nodes, minimum=1)
    if n_nodes < strategy.n_nodes:
        raise InvalidArgumentError(f"`n_nodes`={n_nodes} is below the strategy's n_nodes={strategy.n_nodes}.")
    capp = client_app(local_update, strategy.compressor, compressor_params=compressor_params, warmup=warmup)
    sapp = server_app(strategy, initial_arrays, rounds=rounds, timeout=timeout)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        flwr_run_simulation(server_app=sapp, client_app=capp, num_supernodes=n_nodes,
                            backend_config=backend_config or default_backend_config(), verbose_logging=verbose)
    return SimulationResult(strategy, getattr(sapp, "ratedist_result", None))
