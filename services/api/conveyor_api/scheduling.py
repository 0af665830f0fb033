"""Recurring schedules: the definitions (kept in JetStream, fired by nats-server's cron) and
the job each tick makes. Routes call :class:`Schedules`; ``ticks.py`` turns ticks into jobs.

A tick's job has an identity derived from the schedule's name and the tick's second
(:func:`tick_job_id`), and its submission expects no earlier event on that job: a tick
delivered twice, or taken by two API processes, is one job, refused the second time by the
log itself."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import msgspec

from conveyor_api import cron
from conveyor_api.ids import derived_job_id
from conveyor_api.schedule_schemas import ScheduledJobIn, ScheduleIn, SchedulePatch
from conveyor_api.types import Resolved
from conveyor_bus.schedules import ScheduleRefused, StoredSchedule
from conveyor_events import ConcurrencyConflict, InvalidPayload, SubmitJob
from conveyor_events.names import Priority

WRITE_ROUNDS = 5
"""How often a change is decided again when another writer changed the schedule first."""
MAX_DEFINITION_BYTES = 512 * 1024
"""The largest definition stored (its job's payload, mostly): well within a NATS message."""


class JobTemplate(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    priority: Priority = "regular"
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    max_attempts: int = 1
    timeout_s: float | None = None


class Definition(msgspec.Struct, frozen=True, kw_only=True):
    """A schedule as stored: the body of its message, and of every tick it fires. Evolves
    only by adding fields with defaults."""

    name: str
    cron: str
    timezone: str = "UTC"
    job: JobTemplate
    enabled: bool = True
    created_at: datetime
    updated_at: datetime


_decoder = msgspec.json.Decoder(Definition)


def decode(data: bytes) -> Definition:
    """Raises ``msgspec.DecodeError`` for what is not a definition."""
    return _decoder.decode(data)


@dataclass(frozen=True)
class Schedule:
    definition: Definition
    next_run_at: datetime | None
    last_run_at: datetime | None


class ScheduleError(Exception):
    """The schedule action is not allowed."""

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or (self.__doc__ or "").strip())


class ScheduleNotFound(ScheduleError):
    """No such schedule."""


class ScheduleExists(ScheduleError):
    """A schedule with this name exists."""


class ScheduleBusy(ScheduleError):
    """The schedule kept changing while this change was written; try again."""


class InvalidSchedule(InvalidPayload):
    """The schedule is not valid (the field says which part)."""


def tick_job_id(name: str, tick_s: int) -> str:
    """The job of the tick of schedule ``name`` at ``tick_s`` (seconds since 1970, UTC):
    the same id whoever derives it."""
    return derived_job_id(tick_s * 1000, f"schedule:{name}@{tick_s}")


def tick_command(name: str, definition: Definition, tick_s: int, now: datetime) -> SubmitJob:
    """The submission of one tick's job, by actor ``schedule:<name>``."""
    job = definition.job
    return SubmitJob(
        job_id=tick_job_id(name, tick_s),
        now=now,
        actor=f"schedule:{name}",
        type=job.type,
        priority=job.priority,
        payload=job.payload,
        max_attempts=job.max_attempts,
        timeout_s=job.timeout_s,
    )


def _now() -> datetime:
    return datetime.now(UTC)


class ScheduleStore(Protocol):
    """Where schedules are kept and fired from: ``conveyor_bus.schedules.JetStreamSchedules``,
    or ``conveyor_api.testing.InMemorySchedules`` in unit tests (both pass
    tests/integration/test_schedule_store_contract.py)."""

    async def get(self, name: str) -> StoredSchedule | None: ...

    async def last_tick(self, name: str) -> datetime | None: ...

    async def all(self) -> list[tuple[str, bytes]]: ...

    async def put(
        self, name: str, data: bytes, *, expected_seq: int, cron: str | None, timezone: str
    ) -> int:
        """Raises ConcurrencyConflict when ``expected_seq`` is not the definition's last."""
        ...

    async def delete(self, name: str) -> None: ...


class TypeResolver(Protocol):
    """What checks a job's type and payload: ``conveyor_api.types.TypeCatalog``."""

    async def resolve(self, job_type: str, payload: Any) -> Resolved: ...


class Schedules:
    def __init__(
        self,
        store: ScheduleStore,
        types: TypeResolver,
        *,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.store = store
        self.types = types
        self._clock = clock

    async def validate_job(self, spec: ScheduledJobIn) -> JobTemplate:
        """The job template checked as a submission is (its type, its payload against the
        type's schema), with what it leaves out taken from the type's defaults. Raises
        ``InvalidSchedule`` on ``job.<field>``."""
        try:
            resolved = await self.types.resolve(spec.type, spec.payload)
        except InvalidPayload as e:
            raise InvalidSchedule(f"job.{e}", field=f"job.{e.field}") from e
        given = spec.model_fields_set
        defaults = resolved.defaults

        def pick(name: str, fallback: object) -> Any:
            return getattr(spec, name) if name in given else defaults.get(name, fallback)

        return JobTemplate(
            type=spec.type,
            priority=pick("priority", "regular"),
            payload=resolved.payload,
            max_attempts=pick("max_attempts", 1),
            timeout_s=pick("timeout_s", None),
        )

    # -- writes --------------------------------------------------------------------------

    async def create(self, spec: ScheduleIn) -> Schedule:
        parsed = cron.parse(spec.cron)
        cron.zone(spec.timezone)
        now = self._clock()
        definition = Definition(
            name=spec.name,
            cron=parsed.text,
            timezone=spec.timezone,
            job=await self.validate_job(spec.job),
            enabled=spec.enabled,
            created_at=now,
            updated_at=now,
        )
        try:
            await self._put(definition, expected_seq=0)
        except ConcurrencyConflict as e:
            raise ScheduleExists(f"schedule {spec.name!r} exists; PATCH or DELETE it") from e
        return await self._shown(definition)

    async def update(self, name: str, patch: SchedulePatch) -> Schedule:
        """Apply ``patch`` to the schedule as it is now; when another writer changed it
        first, read it again and apply the patch again."""
        if patch.cron is not None:
            cron.parse(patch.cron)
        if patch.timezone is not None:
            cron.zone(patch.timezone)
        job = await self.validate_job(patch.job) if patch.job is not None else None
        for _ in range(WRITE_ROUNDS):
            stored = await self.store.get(name)
            if stored is None:
                raise ScheduleNotFound(f"schedule {name!r} not found")
            current = decode(stored.data)
            changes: dict[str, Any] = {
                k: v
                for k, v in {
                    "cron": cron.parse(patch.cron).text if patch.cron is not None else None,
                    "timezone": patch.timezone,
                    "job": job,
                    "enabled": patch.enabled,
                }.items()
                if v is not None
            }
            if not changes:
                return await self._shown(current)
            changed = msgspec.structs.replace(current, **changes, updated_at=self._clock())
            try:
                await self._put(changed, expected_seq=stored.seq)
            except ConcurrencyConflict:
                continue
            return await self._shown(changed)
        raise ScheduleBusy(f"schedule {name!r} kept changing while this change was written")

    async def delete(self, name: str) -> None:
        if await self.store.get(name) is None:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        await self.store.delete(name)

    async def _put(self, definition: Definition, *, expected_seq: int) -> None:
        parsed = cron.parse(definition.cron)
        body = msgspec.json.encode(definition)
        if len(body) > MAX_DEFINITION_BYTES:
            raise InvalidSchedule(
                f"job.payload: the schedule takes {len(body)} bytes, more than the "
                f"{MAX_DEFINITION_BYTES} a schedule may; keep large inputs elsewhere and pass "
                "a reference",
                field="job.payload",
            )
        try:
            await self.store.put(
                definition.name,
                body,
                expected_seq=expected_seq,
                cron=parsed.server if definition.enabled else None,
                timezone=definition.timezone,
            )
        except ScheduleRefused as e:  # what this module accepts, the server should too
            raise InvalidSchedule(f"{e.field}: {e}", field=e.field) from e

    # -- reads ---------------------------------------------------------------------------

    async def get(self, name: str) -> Schedule:
        stored = await self.store.get(name)
        if stored is None:
            raise ScheduleNotFound(f"schedule {name!r} not found")
        return await self._shown(decode(stored.data))

    async def all(self) -> list[Schedule]:
        found = []
        for _, data in await self.store.all():
            try:
                found.append(decode(data))
            except msgspec.DecodeError:
                continue  # not a definition of ours
        shown = await asyncio.gather(*(self._shown(d) for d in found))
        return sorted(shown, key=lambda s: s.definition.name)

    async def _shown(self, definition: Definition) -> Schedule:
        last = await self.store.last_tick(definition.name)
        return Schedule(
            definition,
            next_run_at=self.next_run(definition),
            last_run_at=last.replace(microsecond=0) if last is not None else None,
        )

    def next_run(self, definition: Definition) -> datetime | None:
        """When the schedule ticks next (None while paused)."""
        if not definition.enabled:
            return None
        parsed = cron.parse(definition.cron)
        return parsed.after(self._clock(), cron.zone(definition.timezone))
