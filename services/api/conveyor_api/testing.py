"""In-memory fakes of the API's ports, for unit tests."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor_api.types import Resolved
from conveyor_bus.schedules import StoredSchedule
from conveyor_events import ConcurrencyConflict, InvalidPayload, UnknownJobType


class InMemorySchedules:
    """The ``ScheduleStore`` port in memory: definitions and the ticks the tests record."""

    def __init__(self) -> None:
        self.definitions: dict[str, StoredSchedule] = {}
        self.firing: dict[str, tuple[str, str] | None] = {}
        """Each schedule's (cron, time zone) as given to the server; None while paused."""
        self.ticks: dict[str, list[datetime]] = {}
        self.conflicts = 0
        """How many of the next writes fail as if another writer had been first."""
        self._seq = 0

    async def get(self, name: str) -> StoredSchedule | None:
        return self.definitions.get(name)

    async def last_tick(self, name: str) -> datetime | None:
        ticks = self.ticks.get(name)
        return ticks[-1] if ticks else None

    async def all(self) -> list[tuple[str, bytes]]:
        return [(name, s.data) for name, s in self.definitions.items()]

    async def put(
        self, name: str, data: bytes, *, expected_seq: int, cron: str | None, timezone: str
    ) -> int:
        current = self.definitions.get(name)
        if self.conflicts > 0:
            self.conflicts -= 1
            self._seq += 1  # another writer's change
            if current is not None:
                self.definitions[name] = StoredSchedule(self._seq, current.data, current.time)
            raise ConcurrencyConflict("wrong last sequence")
        if (current.seq if current is not None else 0) != expected_seq:
            raise ConcurrencyConflict("wrong last sequence")
        self._seq += 1
        self.definitions[name] = StoredSchedule(self._seq, data, datetime.now(UTC))
        self.firing[name] = (cron, timezone) if cron is not None else None
        return self._seq

    async def delete(self, name: str) -> None:
        self.definitions.pop(name, None)
        self.firing.pop(name, None)
        self.ticks.pop(name, None)


class FakeTypes:
    """The ``TypeResolver`` port: types by name, each with its defaults; a payload must be
    an object (a type named ``strict`` refuses any key but ``n``)."""

    def __init__(self, defaults: dict[str, dict[str, Any]]) -> None:
        self.defaults = defaults

    async def resolve(self, job_type: str, payload: Any) -> Resolved:
        if job_type not in self.defaults:
            raise UnknownJobType(f"type: unknown job type {job_type!r}", field="type")
        if not isinstance(payload, dict):
            raise InvalidPayload("payload: must be an object", field="payload")
        if job_type == "strict" and set(payload) - {"n"}:
            raise InvalidPayload("payload: only n is allowed", field="payload")
        return Resolved(dict(payload), self.defaults[job_type])
