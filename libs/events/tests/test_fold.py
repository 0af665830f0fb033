"""``fold(events) == reduce(evolve, events, None)``: a job's state is a pure function of its
history, which is what lets the read model be dropped and rebuilt from the log."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import reduce

import pytest

from conveyor_events import (
    AnyCommand,
    AnyEvent,
    CompleteJob,
    ErrorInfo,
    FailJob,
    JobStarted,
    ReportProgress,
    RestartJob,
    StartJob,
    StopJob,
    SubmitJob,
    decide,
    decode_event,
    encode_event,
    evolve,
    fold,
)
from conveyor_events.events import StartedData

pytestmark = pytest.mark.unit

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def lifecycle() -> list[AnyEvent]:
    """A realistic history decided step by step: submit, fail and retry, stop, restart,
    complete."""
    user = "user:alice"

    def now(minute: int) -> datetime:
        return T0 + timedelta(minutes=minute)

    commands: list[AnyCommand] = [
        SubmitJob(job_id=JOB, now=now(0), actor=user, type="sleep", max_attempts=2),
        StartJob(job_id=JOB, now=now(1), actor="worker:w-1", worker_id="w-1", run=1),
        ReportProgress(job_id=JOB, now=now(2), actor="worker:w-1", attempt=1, progress=50),
        FailJob(
            job_id=JOB,
            now=now(3),
            actor="worker:w-1",
            attempt=1,
            error=ErrorInfo(type="OSError", message="disk full"),
            retry_delay_s=10,
        ),
        StopJob(job_id=JOB, now=now(4), actor=user),
        RestartJob(job_id=JOB, now=now(5), actor=user),
        StartJob(job_id=JOB, now=now(6), actor="worker:w-2", worker_id="w-2", run=3),
        CompleteJob(job_id=JOB, now=now(7), actor="worker:w-2", attempt=2, result=[1, 2]),
    ]
    events: list[AnyEvent] = []
    for command in commands:
        events += decide(command, fold(events))
    return events


def test_an_empty_history_is_no_job() -> None:
    assert fold([]) is None
    assert fold(iter(())) is None


def test_fold_is_deterministic() -> None:
    events = lifecycle()

    assert fold(events) == fold(list(events)) == fold(lifecycle())
    assert fold(events) == reduce(evolve, events, None)


def test_fold_of_decoded_events_equals_fold_of_the_originals() -> None:
    """What a replay from the log sees is what the writer decided on."""
    events = lifecycle()

    assert fold(decode_event(encode_event(e)) for e in events) == fold(events)


def test_version_counts_events() -> None:
    events = lifecycle()

    for n in range(1, len(events) + 1):
        state = fold(events[:n])
        assert state is not None
        assert state.version == n


def test_lifecycle_ends_where_the_history_says() -> None:
    state = fold(lifecycle())

    assert state is not None
    assert (state.status, state.attempt, state.run, state.worker_id) == ("completed", 2, 3, "w-2")
    assert (state.result, state.progress) == ([1, 2], 100.0)
    assert state.created_at == T0
    assert state.updated_at == state.finished_at == T0 + timedelta(minutes=7)


def test_an_event_before_submission_is_refused() -> None:
    started = JobStarted(
        job_id=JOB, at=T0, actor="worker:w-1", data=StartedData(attempt=1, worker_id="w-1")
    )

    with pytest.raises(ValueError, match=r"job\.started before job\.submitted"):
        fold([started])


def test_a_second_submission_is_refused() -> None:
    submitted = lifecycle()[0]

    with pytest.raises(ValueError, match=r"job\.submitted twice"):
        fold([submitted, submitted])
