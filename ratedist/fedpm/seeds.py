"""Seeds of one federated run: every (round, client, purpose) derived from a single run seed.

Both engines (the in-process loop of ``paper_repro/fedpm_table.py`` and the Flower apps of
:mod:`ratedist.flower`) and a real deployment derive their randomness here, so that the same
run seed gives the same masks and the same bytes wherever a client runs.
"""

from __future__ import annotations

import numpy as np

from .._validation import check_int

__all__ = ["client_seed", "STREAM_LOCAL", "STREAM_UPLINK"]

#: ``stream`` of the client's local training (batch order, sampled masks in the forward pass).
STREAM_LOCAL = 0
#: ``stream`` of the uplink compressor (the mask sample m ~ Bern(θ_k), rotations, rounding).
STREAM_UPLINK = 1


def client_seed(run_seed: int, server_round: int, node: int, *, stream: int = STREAM_UPLINK, index: int = 0) -> int:
    """The 63-bit seed of client ``node`` in round ``server_round`` of the run seeded ``run_seed``.

    Parameters
    ----------
    run_seed : int >= 0
        The one seed of the whole run.
    server_round : int >= 0
        Flower's round number (the first round is 1; the in-process engine uses the same).
    node : int >= 0
        The client's index k (in Flower: its position among the sorted node ids, which the
        strategy sends in every message as ``ratedist.node``).
    stream : int >= 0, keyword-only
        What the seed is for: :data:`STREAM_UPLINK` (the compressor, default) or
        :data:`STREAM_LOCAL` (local training); other values are free for applications.
    index : int >= 0, keyword-only
        Which of the message's arrays (layer ``index`` of a weight update); 0 for FedPM's single mask.

    Returns
    -------
    int in [0, 2^63)
        ``numpy.random.SeedSequence([run_seed, server_round, node, stream, index])``'s first
        64 state bits, top bit cleared (a valid seed for NumPy, torch and the compressors).

    Notes
    -----
    SeedSequence hashes its whole entropy list, so seeds of different (round, node, stream,
    index) are statistically independent, and the map depends on nothing but its arguments:
    no global state, no process, no order of calls.

    Examples
    --------
    >>> client_seed(7, 1, 3) == client_seed(7, 1, 3)
    True
    >>> len({client_seed(7, t, k) for t in range(1, 4) for k in range(5)})
    15
    """
    parts = [check_int("run_seed", run_seed, minimum=0), check_int("server_round", server_round, minimum=0),
             check_int("node", node, minimum=0), check_int("stream", stream, minimum=0),
             check_int("index", index, minimum=0)]
    lo, hi = np.random.SeedSequence(parts).generate_state(2, np.uint32)
    return int((int(hi) << 32 | int(lo)) & ((1 << 63) - 1))
