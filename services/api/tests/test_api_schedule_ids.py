"""The job of a schedule's tick has an id derived from the schedule and the tick: the same
whoever derives it, a valid ULID whose time is the tick, distinct for another tick or
another schedule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor_api.ids import derived_job_id, is_job_id
from conveyor_api.scheduling import Definition, JobTemplate, tick_command, tick_job_id

pytestmark = pytest.mark.unit

CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
TICK_S = 1_796_634_000  # 2026-12-07T09:00:00Z


def time_part(job_id: str) -> int:
    value = 0
    for char in job_id[:10]:
        value = value * 32 + CROCKFORD.index(char)
    return value


def test_a_ticks_id_is_the_same_each_time_it_is_derived() -> None:
    assert tick_job_id("nightly", TICK_S) == tick_job_id("nightly", TICK_S)
    assert derived_job_id(5, "k") == derived_job_id(5, "k")


def test_a_ticks_id_is_a_ulid_whose_time_is_the_tick() -> None:
    job_id = tick_job_id("nightly", TICK_S)
    assert is_job_id(job_id)
    assert time_part(job_id) == TICK_S * 1000


def test_another_tick_or_another_schedule_is_another_id() -> None:
    ids = {tick_job_id(name, TICK_S + n) for name in ("a", "b", "a-b", "ab") for n in range(100)}
    assert len(ids) == 400


def test_ids_of_later_ticks_sort_after_earlier_ones() -> None:
    ids = [tick_job_id("nightly", TICK_S + n) for n in range(0, 3600, 7)]
    assert ids == sorted(ids)


def test_the_rest_of_the_id_is_the_hash_of_the_key() -> None:
    a, b = derived_job_id(TICK_S * 1000, "one"), derived_job_id(TICK_S * 1000, "two")
    assert a[:10] == b[:10] and a[10:] != b[10:]


def test_a_tick_submits_the_template_as_the_schedule() -> None:
    now = datetime(2026, 12, 7, 9, 0, 0, 12_000, tzinfo=UTC)
    definition = Definition(
        name="nightly",
        cron="0 3 * * *",
        job=JobTemplate(type="sleep", priority="high", payload={"seconds": 1}, max_attempts=3),
        created_at=now,
        updated_at=now,
    )
    command = tick_command("nightly", definition, TICK_S, now)
    assert command.job_id == tick_job_id("nightly", TICK_S)
    assert command.actor == "schedule:nightly"
    assert (command.type, command.priority, command.payload) == ("sleep", "high", {"seconds": 1})
    assert (command.max_attempts, command.timeout_s, command.run_at) == (3, None, None)
    assert command.now == now
