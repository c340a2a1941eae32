"""Import flwr once, with an error that names the extra to install."""

from __future__ import annotations

from ..errors import BackendUnavailableError

try:
    import flwr  # noqa: F401
    from flwr.app import Array, ArrayRecord, ConfigRecord, Context, Error, Message, MessageType, MetricRecord, RecordDict
except ImportError:  # pragma: no cover - exercised only without the extra
    raise BackendUnavailableError(
        "ratedist.flower needs Flower's Message API: install the `flower` extra (pip install 'ratedist[flower]')."
    ) from None

__all__ = ["Array", "ArrayRecord", "ConfigRecord", "Context", "Error", "Message", "MessageType", "MetricRecord",
           "RecordDict"]
