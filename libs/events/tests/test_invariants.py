"""``history_problems``: a job's history checked against the transitions table (SPEC §6).
A valid life has no problems; each illegal step is reported with its position, is not
applied, and the rest of the history is judged from the state before it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from conveyor_events import (
    AnyEvent,
    ErrorInfo,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobStopped,
    JobStopRequested,
    JobSubmitted,
)
from conveyor_events.events import (
    CompletedData,
    FailedData,
    ProgressedData,
    StartedData,
    StoppedData,
    SubmittedData,
)
from conveyor_events.invariants import history_problems

pytestmark = pytest.mark.unit

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
USER = "user:alice"
WORKER = "worker:w-1"


def at() -> datetime:
    return T0  # the checks do not look at time


def submitted(max_attempts: int = 1) -> JobSubmitted:
    data = SubmittedData(type="sleep", payload={"seconds": 1}, max_attempts=max_attempts)
    return JobSubmitted(job_id=JOB, at=at(), actor=USER, data=data)


def started(attempt: int, run: int = 1) -> JobStarted:
    data = StartedData(attempt=attempt, worker_id="w-1", run=run)
    return JobStarted(job_id=JOB, at=at(), actor=WORKER, data=data)


def progressed(attempt: int, progress: float = 50) -> JobProgressed:
    data = ProgressedData(attempt=attempt, progress=progress)
    return JobProgressed(job_id=JOB, at=at(), actor=WORKER, data=data)


def completed(attempt: int) -> JobCompleted:
    data = CompletedData(attempt=attempt, result=[1, 2])
    return JobCompleted(job_id=JOB, at=at(), actor=WORKER, data=data)


def failed(attempt: int, retry: bool = False) -> JobFailed:
    data = FailedData(
        attempt=attempt, error=ErrorInfo(type="OSError", message="disk full"), retry=retry
    )
    return JobFailed(job_id=JOB, at=at(), actor=WORKER, data=data)


def stop_requested() -> JobStopRequested:
    return JobStopRequested(job_id=JOB, at=at(), actor=USER)


def stopped(attempt: int | None = None) -> JobStopped:
    actor = USER if attempt is None else WORKER
    return JobStopped(job_id=JOB, at=at(), actor=actor, data=StoppedData(attempt=attempt))


def restarted() -> JobRestarted:
    return JobRestarted(job_id=JOB, at=at(), actor=USER)


def deleted() -> JobDeleted:
    return JobDeleted(job_id=JOB, at=at(), actor=USER)


# -- valid histories -----------------------------------------------------------------------


def test_an_empty_history_has_no_problems() -> None:
    assert history_problems([]) == []


def test_a_full_life_has_no_problems() -> None:
    events: list[AnyEvent] = [submitted(), started(1), progressed(1), completed(1), deleted()]

    assert history_problems(events) == []


def test_a_life_with_retry_stop_and_restart_has_no_problems() -> None:
    events: list[AnyEvent] = [
        submitted(max_attempts=2),
        started(1),
        progressed(1, 10),
        failed(1, retry=True),
        started(2, run=2),
        stop_requested(),
        stopped(2),
        restarted(),
        started(3, run=3),
        started(4, run=3),  # redelivered after a worker died: a new attempt while running
        progressed(4, 100),
        failed(4),
        restarted(),
        stopped(),  # stopped while pending
        restarted(),
        started(5, run=5),
        completed(5),
        deleted(),
    ]

    assert history_problems(events) == []


@pytest.mark.parametrize(
    "ending",
    [[completed(1)], [failed(1)], [stop_requested(), stopped(1)]],
    ids=["completed", "failed", "stopped"],
)
def test_every_terminal_job_can_be_deleted(ending: list[AnyEvent]) -> None:
    assert history_problems([submitted(), started(1), *ending, deleted()]) == []


# -- illegal histories ---------------------------------------------------------------------


def test_two_completions_are_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), completed(1)]

    assert history_problems(events) == ["event 4 (job.completed): while completed"]


def test_a_completion_after_a_restart_of_a_completed_job_is_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), restarted(), completed(1)]

    assert history_problems(events) == [
        "event 4 (job.restarted): restarted while completed",
        "event 5 (job.completed): while completed",
    ]


def test_a_start_that_skips_an_attempt_number_is_reported() -> None:
    assert history_problems([submitted(), started(2)]) == [
        "event 2 (job.started): attempt 2 after attempt 0"
    ]
    assert history_problems([submitted(max_attempts=2), started(1), started(3)]) == [
        "event 3 (job.started): attempt 3 after attempt 1"
    ]


def test_a_start_that_repeats_an_attempt_number_is_reported() -> None:
    assert history_problems([submitted(), started(1), started(1)]) == [
        "event 3 (job.started): attempt 1 after attempt 1"
    ]


def test_progress_for_an_old_attempt_is_reported() -> None:
    events: list[AnyEvent] = [
        submitted(max_attempts=2),
        started(1),
        failed(1, retry=True),
        started(2, run=2),
        progressed(1),
    ]

    assert history_problems(events) == [
        "event 5 (job.progressed): for attempt 1 while attempt 2 is current"
    ]


@pytest.mark.parametrize(
    ("event", "name"),
    [(completed(1), "job.completed"), (failed(1), "job.failed")],
    ids=["completed", "failed"],
)
def test_an_outcome_for_an_old_attempt_is_reported(event: AnyEvent, name: str) -> None:
    events: list[AnyEvent] = [submitted(max_attempts=2), started(1), started(2), event]

    assert history_problems(events) == [
        f"event 4 ({name}): for attempt 1 while attempt 2 is current"
    ]


def test_progress_while_pending_is_reported() -> None:
    assert history_problems([submitted(), progressed(1)]) == [
        "event 2 (job.progressed): while pending"
    ]


def test_stopped_without_a_stop_request_while_running_is_reported() -> None:
    assert history_problems([submitted(), started(1), stopped(1)]) == [
        "event 3 (job.stopped): stopped while running (stop requested: False)"
    ]


def test_stopped_for_another_attempt_is_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), stop_requested(), stopped(2)]

    assert history_problems(events) == [
        "event 4 (job.stopped): stopped while running (stop requested: True)"
    ]


def test_a_second_stop_request_is_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), stop_requested(), stop_requested()]

    assert history_problems(events) == [
        "event 4 (job.stop_requested): stop requested while running"
    ]


def test_a_restart_while_running_is_reported() -> None:
    assert history_problems([submitted(), started(1), restarted()]) == [
        "event 3 (job.restarted): restarted while running"
    ]


def test_a_delete_while_pending_is_reported() -> None:
    assert history_problems([submitted(), deleted()]) == [
        "event 2 (job.deleted): deleted while pending"
    ]


def test_a_delete_while_running_is_reported() -> None:
    assert history_problems([submitted(), started(1), deleted()]) == [
        "event 3 (job.deleted): deleted while running"
    ]


@pytest.mark.parametrize(
    "event",
    [
        started(1),
        progressed(1),
        completed(1),
        failed(1),
        stop_requested(),
        stopped(),
        restarted(),
        deleted(),
    ],
    ids=lambda e: e.name,
)
def test_anything_after_job_deleted_is_reported(event: AnyEvent) -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), deleted(), event]

    assert history_problems(events) == [f"event 5 ({event.name}): after job.deleted"]


def test_a_second_submission_is_reported_even_after_job_deleted() -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), deleted(), submitted()]

    assert history_problems(events) == ["event 5 (job.submitted): submitted twice"]


@pytest.mark.parametrize(
    "event",
    [started(1), progressed(1), completed(1), stopped(), restarted(), deleted()],
    ids=lambda e: e.name,
)
def test_an_event_before_job_submitted_is_reported(event: AnyEvent) -> None:
    assert history_problems([event, submitted()]) == [
        f"event 1 ({event.name}): before job.submitted"
    ]


def test_an_illegal_event_is_not_applied() -> None:
    # started(2) is rejected, so started(1) is judged against attempt 0 and is legal.
    events: list[AnyEvent] = [submitted(), started(2), started(1), completed(1)]

    assert history_problems(events) == ["event 2 (job.started): attempt 2 after attempt 0"]


def test_every_problem_is_reported_in_order() -> None:
    events: list[AnyEvent] = [
        progressed(1),
        submitted(),
        deleted(),
        started(1),
        restarted(),
        completed(1),
        completed(1),
    ]

    assert history_problems(events) == [
        "event 1 (job.progressed): before job.submitted",
        "event 3 (job.deleted): deleted while pending",
        "event 5 (job.restarted): restarted while running",
        "event 7 (job.completed): while completed",
    ]
