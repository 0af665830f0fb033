"""Conveyor's JetStream adapters: connection, topology, event store, worker presence."""

from conveyor_bus.connection import connect
from conveyor_bus.directget import DirectGetter, StoredMsg
from conveyor_bus.errors import BusError, BusUnavailable
from conveyor_bus.store import JetStreamEventStore
from conveyor_bus.topology import ensure_topology

__all__ = [
    "BusError",
    "BusUnavailable",
    "DirectGetter",
    "JetStreamEventStore",
    "StoredMsg",
    "connect",
    "ensure_topology",
]
