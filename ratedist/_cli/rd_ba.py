"""``ratedist rd ba``: Blahut–Arimoto on a discretized source (filled in with the solver)."""

from __future__ import annotations


def add_parser(rsub) -> None:
    """Add the ``ba`` sub-verb (implemented together with ratedist.rd.blahut_arimoto)."""
