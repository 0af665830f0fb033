"""Event builders for tests: every event of a job's life with sensible defaults, so a test
states only what it is about (``started(2)``, ``completed(1, job=A, at=t)``)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from conveyor_events.events import (
    CompletedData,
    ErrorInfo,
    FailedData,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobStopped,
    JobStopRequested,
    JobSubmitted,
    ProgressedData,
    StartedData,
    StoppedData,
    SubmittedData,
)

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
USER = "user:alice"
WORKER_ID = "w-1"
WORKER = f"worker:{WORKER_ID}"


def submitted(
    max_attempts: int = 1, *, job: str = JOB, at: datetime = T0, **data: Any
) -> JobSubmitted:
    fields = {"type": "sleep", "payload": {"seconds": 1}, **data}
    return JobSubmitted(
        job_id=job, at=at, actor=USER, data=SubmittedData(max_attempts=max_attempts, **fields)
    )


def started(attempt: int = 1, run: int = 1, *, job: str = JOB, at: datetime = T0) -> JobStarted:
    data = StartedData(attempt=attempt, worker_id=WORKER_ID, run=run)
    return JobStarted(job_id=job, at=at, actor=WORKER, data=data)


def progressed(
    attempt: int = 1,
    progress: float = 50,
    message: str | None = None,
    *,
    job: str = JOB,
    at: datetime = T0,
) -> JobProgressed:
    data = ProgressedData(attempt=attempt, progress=progress, message=message)
    return JobProgressed(job_id=job, at=at, actor=WORKER, data=data)


def completed(
    attempt: int = 1, result: Any = None, *, job: str = JOB, at: datetime = T0
) -> JobCompleted:
    data = CompletedData(attempt=attempt, result=result)
    return JobCompleted(job_id=job, at=at, actor=WORKER, data=data)


def failed(
    attempt: int = 1,
    retry: bool = False,
    retry_at: datetime | None = None,
    *,
    job: str = JOB,
    at: datetime = T0,
) -> JobFailed:
    error = ErrorInfo(type="OSError", message="disk full")
    data = FailedData(attempt=attempt, error=error, retry=retry, retry_at=retry_at)
    return JobFailed(job_id=job, at=at, actor=WORKER, data=data)


def stop_requested(*, job: str = JOB, at: datetime = T0) -> JobStopRequested:
    return JobStopRequested(job_id=job, at=at, actor=USER)


def stopped(attempt: int | None = None, *, job: str = JOB, at: datetime = T0) -> JobStopped:
    """Stopped while pending (``attempt`` None, by a user) or confirmed by the worker."""
    actor = USER if attempt is None else WORKER
    return JobStopped(job_id=job, at=at, actor=actor, data=StoppedData(attempt=attempt))


def restarted(*, job: str = JOB, at: datetime = T0) -> JobRestarted:
    return JobRestarted(job_id=job, at=at, actor=USER)


def deleted(*, job: str = JOB, at: datetime = T0) -> JobDeleted:
    return JobDeleted(job_id=job, at=at, actor=USER)
