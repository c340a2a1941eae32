"""Seeds of a Flower run, per (round, node), from one run seed: the same in simulation and deployment.

The strategy numbers the connected nodes 0, 1, ... by sorting their Flower node ids when the
first round starts, and sends each client its index k as ``ratedist.node`` with the run seed
and the round in every training message.  Client and server then derive every seed with
:func:`ratedist.fedpm.client_seed` (run_seed, round, k, stream, index): the uplink payload of
array ``i`` uses ``stream=STREAM_UPLINK, index=i``; local training may use ``STREAM_LOCAL``.
Nothing depends on Flower's node ids themselves (random in a simulation), on the process a
client runs in, or on the order replies arrive in.  Client sampling uses its own generator,
``numpy.random.default_rng(sampling_seed)``, drawn once per round.
"""

from __future__ import annotations


from ..fedpm.seeds import STREAM_LOCAL, STREAM_UPLINK, client_seed

__all__ = ["client_seed", "STREAM_LOCAL", "STREAM_UPLINK", "STREAM_SAMPLING", "sampling_seed", "node_indices"]

#: ``stream`` of the server's client sampling (default :func:`sampling_seed`).
STREAM_SAMPLING = 2


def sampling_seed(run_seed: int) -> int:
    """The default seed of the server's client sampling for run ``run_seed``.

    Examples
    --------
    >>> sampling_seed(0) == client_seed(0, 0, 0, stream=STREAM_SAMPLING)
    True
    """
    return client_seed(run_seed, 0, 0, stream=STREAM_SAMPLING)


def node_indices(node_ids) -> dict[int, int]:
    """Flower node id → client index k (the position among the sorted ids).

    Examples
    --------
    >>> node_indices([907, 12, 455])
    {12: 0, 455: 1, 907: 2}
    """
    return {int(n): k for k, n in enumerate(sorted(int(n) for n in node_ids))}
