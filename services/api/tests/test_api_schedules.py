"""The schedules' application layer (conveyor_api.scheduling) over in-memory fakes: what is
stored and handed to the server, the job template completed as a submission is, and the
rules (a name taken, an unknown one, a change racing another, the size limit)."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
import pytest

from conveyor_api.cron import InvalidCron
from conveyor_api.schedule_schemas import ScheduledJobIn, ScheduleIn, SchedulePatch
from conveyor_api.scheduling import (
    MAX_DEFINITION_BYTES,
    WRITE_ROUNDS,
    InvalidSchedule,
    ScheduleBusy,
    ScheduleExists,
    ScheduleNotFound,
    Schedules,
    decode,
)
from conveyor_api.testing import FakeTypes, InMemorySchedules
from conveyor_bus.schedules import StoredSchedule

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 9, 0, 30, tzinfo=UTC)


@pytest.fixture
def store() -> InMemorySchedules:
    return InMemorySchedules()


@pytest.fixture
def schedules(store: InMemorySchedules) -> Schedules:
    types = FakeTypes({"noop": {}, "strict": {"max_attempts": 3, "priority": "high"}})
    return Schedules(store, types, clock=lambda: NOW)


def spec(**fields: object) -> ScheduleIn:
    body: dict[str, object] = {"name": "nightly", "cron": "0 3 * * *", "job": {"type": "noop"}}
    return ScheduleIn.model_validate({**body, **fields})


async def test_a_schedule_is_stored_and_handed_to_the_server_in_six_fields(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    shown = await schedules.create(spec(timezone="Europe/Paris"))
    assert store.firing["nightly"] == ("0 0 3 * * *", "Europe/Paris")
    stored = decode(store.definitions["nightly"].data)
    assert (stored.name, stored.cron, stored.timezone, stored.enabled) == (
        "nightly", "0 3 * * *", "Europe/Paris", True,
    )  # fmt: skip
    assert stored.created_at == stored.updated_at == NOW
    assert shown.next_run_at == datetime(2026, 12, 8, 2, 0, tzinfo=UTC)  # 03:00 in Paris
    assert shown.last_run_at is None


async def test_a_paused_schedule_is_stored_without_a_cron_for_the_server(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    shown = await schedules.create(spec(enabled=False))
    assert store.firing["nightly"] is None
    assert shown.next_run_at is None
    resumed = await schedules.update("nightly", SchedulePatch(enabled=True))
    assert store.firing["nightly"] == ("0 0 3 * * *", "UTC")
    assert resumed.next_run_at == datetime(2026, 12, 8, 3, 0, tzinfo=UTC)
    assert decode(store.definitions["nightly"].data).created_at == NOW


async def test_the_job_template_takes_its_types_defaults_unless_it_says_otherwise(
    schedules: Schedules,
) -> None:
    made = await schedules.create(spec(job={"type": "strict", "payload": {"n": 1}}))
    job = made.definition.job
    assert (job.type, job.payload, job.priority, job.max_attempts) == (
        "strict",
        {"n": 1},
        "high",
        3,
    )
    said = await schedules.validate_job(
        ScheduledJobIn(type="strict", priority="regular", max_attempts=1)
    )
    assert (said.priority, said.max_attempts, said.timeout_s) == ("regular", 1, None)


@pytest.mark.parametrize(
    ("job", "field"),
    [({"type": "nope"}, "job.type"), ({"type": "strict", "payload": {"x": 1}}, "job.payload")],
)
async def test_a_bad_job_template_is_refused_naming_the_field(
    schedules: Schedules, store: InMemorySchedules, job: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidSchedule) as refused:
        await schedules.create(spec(job=job))
    assert refused.value.field == field
    assert str(refused.value).startswith(f"{field}: ")
    assert store.definitions == {}


@pytest.mark.parametrize(
    ("fields", "field"), [({"cron": "0 24 * * *"}, "cron"), ({"timezone": "Nowhere"}, "timezone")]
)
async def test_a_bad_cron_or_zone_is_refused_before_anything_is_written(
    schedules: Schedules, store: InMemorySchedules, fields: dict[str, object], field: str
) -> None:
    with pytest.raises(InvalidCron) as refused:
        await schedules.create(spec(**fields))
    assert refused.value.field == field
    assert store.definitions == {}


async def test_a_name_taken_is_refused_and_the_first_kept(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    await schedules.create(spec())
    with pytest.raises(ScheduleExists, match="'nightly' exists"):
        await schedules.create(spec(cron="0 4 * * *"))
    assert decode(store.definitions["nightly"].data).cron == "0 3 * * *"


async def test_unknown_names_are_not_found(schedules: Schedules) -> None:
    with pytest.raises(ScheduleNotFound):
        await schedules.get("nope")
    with pytest.raises(ScheduleNotFound):
        await schedules.update("nope", SchedulePatch(enabled=False))
    with pytest.raises(ScheduleNotFound):
        await schedules.delete("nope")


async def test_a_change_racing_another_is_applied_to_what_that_one_left(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    await schedules.create(spec())
    store.conflicts = WRITE_ROUNDS - 1
    changed = await schedules.update("nightly", SchedulePatch(cron="*/5 * * * *"))
    assert changed.definition.cron == "*/5 * * * *"
    assert store.firing["nightly"] == ("0 */5 * * * *", "UTC")


async def test_a_change_that_keeps_losing_gives_up(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    await schedules.create(spec())
    store.conflicts = WRITE_ROUNDS
    with pytest.raises(ScheduleBusy):
        await schedules.update("nightly", SchedulePatch(enabled=False))


async def test_an_empty_change_writes_nothing(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    await schedules.create(spec())
    before = store.definitions["nightly"]
    await schedules.update("nightly", SchedulePatch())
    assert store.definitions["nightly"] is before


async def test_a_schedule_too_large_is_refused_on_its_payload(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    big = {"type": "noop", "payload": {"data": "x" * MAX_DEFINITION_BYTES}}
    with pytest.raises(InvalidSchedule) as refused:
        await schedules.create(spec(job=big))
    assert refused.value.field == "job.payload"
    assert store.definitions == {}


async def test_the_list_is_by_name_and_shows_the_last_tick_to_the_second(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    for name in ("b", "a", "c"):
        await schedules.create(spec(name=name))
    store.ticks["a"] = [datetime(2026, 12, 7, 3, 0, 0, 1234, tzinfo=UTC)]
    store.definitions["junk"] = StoredSchedule(99, b"not json", NOW)
    listed = await schedules.all()
    assert [s.definition.name for s in listed] == ["a", "b", "c"]  # junk left out
    assert listed[0].last_run_at == datetime(2026, 12, 7, 3, 0, 0, tzinfo=UTC)


async def test_delete_removes_the_schedule_and_frees_its_name(
    schedules: Schedules, store: InMemorySchedules
) -> None:
    await schedules.create(spec())
    await schedules.delete("nightly")
    assert "nightly" not in store.definitions
    await schedules.create(spec(cron="0 4 * * *"))
    assert msgspec.json.decode(store.definitions["nightly"].data)["cron"] == "0 4 * * *"
