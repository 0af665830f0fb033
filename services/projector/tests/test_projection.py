"""``project(states, events)``: the read model is the fold of the log, however the log is cut
into batches. The projector loads the rows a batch touches (and the tombstones of deleted
jobs), projects, then upserts and deletes; ``replay`` below is that loop over dicts standing
in for the ``jobs`` and ``deleted_jobs`` tables."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from itertools import combinations, pairwise

import pytest

from conveyor_db import deleted_state
from conveyor_events import (
    AnyEvent,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobState,
    JobStopped,
    JobSubmitted,
    fold_stored,
)
from conveyor_events import testing as ev
from conveyor_events.invariants import history_problems
from conveyor_projector.projection import project

pytestmark = pytest.mark.unit

A = "01JDQ5N3X8W4Y6Z7A9B2C3D4EA"
B = "01JDQ5N3X8W4Y6Z7A9B2C3D4EB"
C = "01JDQ5N3X8W4Y6Z7A9B2C3D4EC"
UNKNOWN = "01JDQ5N3X8W4Y6Z7A9B2C3D4EZ"
T0 = ev.T0

Batch = Sequence[tuple[int, AnyEvent]]


def at(second: int) -> datetime:
    return T0 + timedelta(seconds=second)


def submitted(job: str, second: int) -> JobSubmitted:
    return ev.submitted(2, job=job, at=at(second))


def started(job: str, second: int, attempt: int, run: int = 1) -> JobStarted:
    return ev.started(attempt, run, job=job, at=at(second))


def progressed(job: str, second: int, attempt: int, progress: float) -> JobProgressed:
    return ev.progressed(attempt, progress, f"{progress}%", job=job, at=at(second))


def completed(job: str, second: int, attempt: int) -> JobCompleted:
    return ev.completed(attempt, {"ok": True}, job=job, at=at(second))


def failed_retry(job: str, second: int, attempt: int) -> JobFailed:
    return ev.failed(attempt, retry=True, retry_at=at(second + 10), job=job, at=at(second))


def stopped_pending(job: str, second: int) -> JobStopped:
    return ev.stopped(job=job, at=at(second))


def restarted(job: str, second: int) -> JobRestarted:
    return ev.restarted(job=job, at=at(second))


def deleted(job: str, second: int) -> JobDeleted:
    return ev.deleted(job=job, at=at(second))


def stream() -> list[tuple[int, AnyEvent]]:
    """Three interleaved jobs: A fails once then completes, B completes and is deleted, C is
    stopped while pending, restarted and started again."""
    events: list[AnyEvent] = [
        submitted(A, 0),
        submitted(B, 1),
        started(A, 2, attempt=1),
        started(B, 3, attempt=1),
        progressed(A, 4, attempt=1, progress=50),
        submitted(C, 5),
        failed_retry(A, 6, attempt=1),
        completed(B, 7, attempt=1),
        stopped_pending(C, 8),
        started(A, 9, attempt=2, run=2),
        deleted(B, 10),
        restarted(C, 11),
        completed(A, 12, attempt=2),
        started(C, 13, attempt=1, run=2),
    ]
    return list(enumerate(events, start=1))


def history(job: str, events: Batch) -> list[AnyEvent]:
    return [e for _, e in events if e.job_id == job]


def folded(job: str, events: Batch) -> JobState | None:
    """The job's state folded from its events of ``events``, with their sequences."""
    return fold_stored((seq, e) for seq, e in events if e.job_id == job)


def expected_table(events: Batch) -> dict[str, JobState]:
    """The rows the read model should hold: the fold of each job's history, minus deleted
    jobs."""
    table = {}
    for job in dict.fromkeys(e.job_id for _, e in events):
        state = folded(job, events)
        assert state is not None
        if not state.deleted:
            table[job] = state
    return table


def replay(
    batches: Sequence[Batch], *, tombstones: bool = True
) -> tuple[dict[str, JobState], list[int]]:
    """What the projector does per batch, over dicts as the ``jobs`` and ``deleted_jobs``
    tables: load the touched rows and tombstones, project, upsert, delete and keep a tombstone
    (``tombstones=False``: forget deleted jobs, as the projector did before it kept them).
    Returns the table and the skipped sequences."""
    return replay_with_reasons(batches, tombstones=tombstones)[:2]


def replay_with_reasons(
    batches: Sequence[Batch], *, tombstones: bool = True
) -> tuple[dict[str, JobState], list[int], list[tuple[int, str]]]:
    table: dict[str, JobState] = {}
    graves: dict[str, JobState] = {}
    skipped: list[tuple[int, str]] = []
    for batch in batches:
        touched = {e.job_id for _, e in batch}
        states = {job: table[job] for job in touched if job in table}
        states |= {job: graves[job] for job in touched if job in graves}
        changes = project(states, batch)
        assert not changes.upserts.keys() & changes.deletes.keys()
        table.update(changes.upserts)
        for job in changes.deletes:
            table.pop(job, None)
            if tombstones:
                graves[job] = deleted_state(job, states[job].updated_at)
        skipped += changes.skipped
    return table, [seq for seq, _ in skipped], skipped


def split(events: Batch, points: Sequence[int]) -> list[Batch]:
    bounds = [0, *points, len(events)]
    return [events[lo:hi] for lo, hi in pairwise(bounds)]


def test_the_stream_is_a_valid_history() -> None:
    events = stream()
    for job in (A, B, C):
        assert history_problems(history(job, events)) == []


def test_one_batch_yields_the_fold_of_each_job() -> None:
    events = stream()
    states: dict[str, JobState] = {}

    changes = project(states, events)

    assert changes.upserts == expected_table(events)
    assert changes.deletes == {B: 11}
    assert changes.skipped == []
    for job in (A, B, C):
        assert states[job] == folded(job, events)


def test_states_are_updated_in_place_and_untouched_rows_are_left_alone() -> None:
    other = fold_stored([(100, submitted(UNKNOWN, 0))])
    assert other is not None
    states: dict[str, JobState] = {UNKNOWN: other}
    events = stream()

    changes = project(states, events[:1])

    assert states[A] == fold_stored(events[:1])
    assert states[UNKNOWN] is other
    assert UNKNOWN not in changes.upserts


@pytest.mark.parametrize("size", range(1, 15))
def test_batches_applied_in_order_equal_the_fold(size: int) -> None:
    events = stream()
    states: dict[str, JobState] = {}
    for lo in range(0, len(events), size):
        changes = project(states, events[lo : lo + size])
        assert changes.skipped == []

    for job in (A, B, C):
        assert states[job] == folded(job, events)


@pytest.mark.parametrize("size", range(1, 15))
def test_batches_of_any_size_leave_the_same_table(size: int) -> None:
    events = stream()
    batches = [events[lo : lo + size] for lo in range(0, len(events), size)]

    assert replay(batches) == (expected_table(events), [])


def test_a_job_submitted_and_deleted_within_one_batch_ends_in_deletes_only() -> None:
    events: list[tuple[int, AnyEvent]] = [
        (1, submitted(B, 1)),
        (2, started(B, 2, attempt=1)),
        (3, completed(B, 3, attempt=1)),
        (4, deleted(B, 4)),
    ]

    changes = project({}, events)

    assert changes.upserts == {}
    assert changes.deletes == {B: 4}
    assert changes.skipped == []


def test_a_delete_removes_a_row_written_in_an_earlier_batch() -> None:
    events = [(i, e) for i, e in enumerate(history(B, stream()), start=1)]

    table, skipped = replay([events[:-1], events[-1:]])

    assert table == {}
    assert skipped == []


def test_a_deleted_job_stays_deleted_beside_live_jobs_in_the_same_batch() -> None:
    events: list[tuple[int, AnyEvent]] = [
        (1, submitted(A, 1)),
        (2, submitted(B, 2)),
        (3, stopped_pending(B, 3)),
        (4, deleted(B, 4)),
        (5, started(A, 5, attempt=1)),
    ]

    changes = project({}, events)

    assert set(changes.upserts) == {A}
    assert changes.upserts[A].status == "running"
    assert changes.deletes == {B: 4}


def test_an_event_that_cannot_be_applied_is_skipped_and_the_rest_still_apply() -> None:
    events: list[tuple[int, AnyEvent]] = [
        (7, started(UNKNOWN, 0, attempt=1)),
        (8, submitted(A, 1)),
        (9, submitted(A, 2)),
        (10, started(A, 3, attempt=1)),
    ]
    states: dict[str, JobState] = {}

    changes = project(states, events)

    assert [seq for seq, _ in changes.skipped] == [7, 9]
    first, second = (reason for _, reason in changes.skipped)
    assert "before job.submitted" in first and UNKNOWN in first
    assert "submitted twice" in second and A in second
    assert changes.upserts == {A: fold_stored([events[1], events[3]])}
    assert changes.deletes == {}
    assert UNKNOWN not in states


def test_events_after_a_delete_in_a_later_batch_are_skipped() -> None:
    events = [(i, e) for i, e in enumerate(history(B, stream()), start=1)]
    late: tuple[int, AnyEvent] = (len(events) + 1, restarted(B, 99))

    table, skipped = replay([events, [late]])

    assert table == {}
    assert skipped == [late[0]]


def after_delete(job: str, seq: int) -> list[tuple[int, AnyEvent]]:
    """Poison that follows a job's ``job.deleted``: a second submission, then a start of
    the job that submission would have created."""
    return [(seq, submitted(job, 98)), (seq + 1, started(job, 99, attempt=1))]


def test_a_submit_after_a_delete_is_skipped_wherever_the_batches_end() -> None:
    events = [(i, e) for i, e in enumerate(history(B, stream()), start=1)]
    poison = after_delete(B, len(events) + 1)
    log = events + poison
    _, _, in_one_batch = replay_with_reasons([log])
    assert [seq for seq, _ in in_one_batch] == [seq for seq, _ in poison]
    assert "submitted twice" in in_one_batch[0][1]

    for point in range(len(log) + 1):
        table, _, reasons = replay_with_reasons(split(log, [point]))
        assert (table, reasons) == ({}, in_one_batch), f"split at {point}"


def test_control_without_tombstones_a_later_batch_brings_the_deleted_job_back() -> None:
    events = [(i, e) for i, e in enumerate(history(B, stream()), start=1)]
    log = events + after_delete(B, len(events) + 1)

    table, skipped = replay(split(log, [len(events)]), tombstones=False)

    assert set(table) == {B} and table[B].status == "running"
    assert skipped == []


def test_a_tombstone_stands_for_a_deleted_job_and_refuses_every_event() -> None:
    grave = deleted_state(B, at(10))
    for event in (submitted(B, 11), restarted(B, 11), deleted(B, 11), started(B, 11, 1)):
        changes = project({B: grave}, [(20, event)])
        assert changes.upserts == {} and changes.deletes == {}
        [(seq, reason)] = changes.skipped
        assert seq == 20 and B in reason


def test_splitting_the_stream_at_any_one_point_gives_the_same_table() -> None:
    events = stream()
    expected = expected_table(events)
    for point in range(len(events) + 1):
        assert replay(split(events, [point])) == (expected, []), f"split at {point}"


def test_splitting_the_stream_at_any_two_points_gives_the_same_table() -> None:
    events = stream()
    expected = expected_table(events)
    for points in combinations(range(1, len(events)), 2):
        assert replay(split(events, points)) == (expected, []), f"split at {points}"


def test_transitions_the_table_forbids_are_skipped_like_history_problems_flags_them() -> None:
    events: list[tuple[int, AnyEvent]] = [
        (1, submitted(A, 1)),
        (2, completed(A, 2, attempt=1)),  # never started
        (3, started(A, 3, attempt=1)),
        (4, completed(A, 4, attempt=1)),
        (5, started(A, 5, attempt=2)),  # after completion
        (6, progressed(A, 6, attempt=2, progress=10)),
    ]
    table, skipped = replay([events[:3], events[3:]])

    assert skipped == [2, 5, 6]
    applied = [e for seq, e in events if seq not in skipped]
    assert table == {A: fold_stored((seq, e) for seq, e in events if seq not in skipped)}
    assert table[A].status == "completed" and table[A].attempt == 1
    assert history_problems(applied) == []
    assert history_problems([e for _, e in events]) != []


def test_a_skipped_event_names_its_job_and_the_broken_rule() -> None:
    events: list[tuple[int, AnyEvent]] = [
        (1, submitted(A, 1)),
        (2, completed(A, 2, attempt=1)),
    ]

    changes = project({}, events)

    assert changes.skipped == [(2, f"job.completed for job {A}: while pending")]
    assert changes.upserts[A].status == "pending"
