"""Conveyor's JetStream adapters: connection, topology, event store, worker presence."""

from conveyor_bus.connection import connect
from conveyor_bus.directget import DirectGetter, StoredMsg
from conveyor_bus.errors import BusError, BusUnavailable, ConcurrencyConflict
from conveyor_bus.store import EventStore, Loaded, Outcome, StoredEvent, Write
from conveyor_bus.topology import ensure_topology

__all__ = [
    "BusError",
    "BusUnavailable",
    "ConcurrencyConflict",
    "DirectGetter",
    "EventStore",
    "Loaded",
    "Outcome",
    "StoredEvent",
    "StoredMsg",
    "Write",
    "connect",
    "ensure_topology",
]
