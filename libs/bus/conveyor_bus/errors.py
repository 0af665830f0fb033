"""Bus errors. Adapters wrap nats-py errors in these, so handlers never see driver types."""

from __future__ import annotations


class BusError(Exception):
    """NATS JetStream is unavailable or refused the request."""


class BusUnavailable(BusError):
    """NATS did not answer in time."""
