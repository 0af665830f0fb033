"""The event store port: what the application needs of the log, whatever holds it.

``conveyor_bus.JetStreamEventStore`` is the real adapter; ``conveyor_events.testing`` has an
in-memory one for unit tests. Both pass ``tests/integration/test_event_store_contract.py``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from conveyor_events.events import AnyEvent
from conveyor_events.names import Priority
from conveyor_events.state import JobState


@dataclass(frozen=True, slots=True)
class StoredEvent:
    """An event and its sequence in the log."""

    seq: int
    event: AnyEvent


@dataclass(frozen=True, slots=True)
class Loaded:
    """A job folded from its log. ``last_seq`` is the sequence of the last message on the
    job's subjects (poison included): the expected sequence of the next append; 0 when the
    job has no history."""

    state: JobState | None
    last_seq: int


@dataclass(slots=True)
class Write:
    """Events of one job, appended together, checked against the job's last sequence."""

    job_id: str
    events: Sequence[AnyEvent]
    expected_seq: int | None
    """The job's last sequence as the writer saw it (0: a new job); None appends without
    the check."""
    priority: Priority = "regular"
    """The job's priority: the subject of a runnable event names it."""
    idempotency_key: str | None = None
    """Record this key as the job's (a first submission only): the write fails with a
    conflict when the key is taken."""
    run: int = 1
    """The job's run after these events: the run a delayed runnable event's timer names."""
    trace: str | None = None
    """The W3C ``traceparent`` of the request behind the write, carried in its messages'
    headers (and its timers'); None: none."""
    seqs: list[int] = field(default_factory=list)
    """Filled by the store: the sequence of each event, once written."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """The state after a command, and the events it appended (none: it was so already)."""

    state: JobState
    last_seq: int
    events: list[StoredEvent]


class EventStore(Protocol):
    """Histories of jobs, and appends guarded by optimistic concurrency."""

    async def load(self, job_id: str, *, after: Loaded | None = None) -> Loaded:
        """The job folded from its history (``after``: brought up to date from a state loaded
        earlier, reading only what follows it). Events the transitions table forbids are
        left out, as every reader of the log leaves them out."""
        ...

    async def history(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """The job's events after ``after_seq``, oldest first, at most ``limit`` (also after
        it was deleted), poison left out."""
        ...

    async def last_seq(self, job_id: str) -> int:
        """The sequence of the last message on the job's subjects (0: none), in one cheap
        read: whether a reader that has seen up to some sequence is up to date."""
        ...

    async def key_owner(self, key: str) -> str | None:
        """The job first submitted with this idempotency key, if any."""
        ...

    async def append(self, writes: Sequence[Write]) -> None:
        """Append every write, all of them or none; fills each write's ``seqs``. Raises
        ``ConcurrencyConflict`` when an expected sequence was stale or an idempotency key
        taken (then nothing was written)."""
        ...
