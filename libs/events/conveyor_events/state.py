"""A job's state is the fold of its events: ``fold(events) == reduce(evolve, events, None)``."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, Literal, assert_never

import msgspec

from conveyor_events.attempts import Attempt, next_attempts
from conveyor_events.events import (
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
from conveyor_events.names import Priority

Status = Literal["pending", "running", "completed", "failed", "stopped"]
STATUSES: tuple[Status, ...] = ("pending", "running", "completed", "failed", "stopped")
TERMINAL: frozenset[Status] = frozenset({"completed", "failed", "stopped"})


class JobState(msgspec.Struct, frozen=True, kw_only=True):
    """Every field of the job resource, plus the bookkeeping the rules need."""

    id: str
    type: str
    priority: Priority
    payload: dict[str, Any]
    status: Status
    progress: float = 0.0
    message: str | None = None
    attempt: int = 0
    max_attempts: int = 1
    timeout_s: float | None = None
    run_at: datetime | None = None
    result: Any = None
    error: ErrorInfo | None = None
    worker_id: str | None = None
    stop_requested: bool = False
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime
    version: int = 1
    attempts: tuple[Attempt, ...] = ()
    """Every attempt started so far, oldest first (:mod:`conveyor_events.attempts`)."""
    seq: int = 0
    """The log sequence of the last event folded in (0: folded without sequences)."""
    run: int = 1
    """How many times the job was queued (submit, each retry, each restart)."""
    attempts_base: int = 0
    """``attempt`` when the current attempt budget began (a restart gives a fresh budget)."""
    run_base: int = 0
    """``attempt`` when the current run was queued: ``attempt - run_base`` is how many times
    this run's command was delivered and started (the max-deliveries rule)."""
    deleted: bool = False

    @property
    def attempts_left(self) -> int:
        return self.max_attempts - (self.attempt - self.attempts_base)


def evolve(state: JobState | None, event: AnyEvent, *, seq: int | None = None) -> JobState:
    """Apply one event (stored at ``seq`` in the log, when known). Pure; assumes the event
    was produced by :func:`decide`."""
    if isinstance(event, JobSubmitted):
        if state is not None:
            raise ValueError(f"job.submitted twice for job {event.job_id}")
        sub = event.data
        return JobState(
            id=event.job_id,
            type=sub.type,
            priority=sub.priority,
            payload=sub.payload,
            status="pending",
            max_attempts=sub.max_attempts,
            timeout_s=sub.timeout_s,
            run_at=sub.run_at,
            created_at=event.at,
            updated_at=event.at,
            seq=seq or 0,
        )
    if state is None:
        raise ValueError(f"{event.name} before job.submitted for job {event.job_id}")
    s = msgspec.structs.replace(
        state,
        updated_at=event.at,
        version=state.version + 1,
        attempts=next_attempts(state.attempts, event),
        seq=state.seq if seq is None else seq,
    )
    match event:
        case JobStarted(data=started):
            return msgspec.structs.replace(
                s,
                status="running",
                attempt=started.attempt,
                worker_id=started.worker_id,
                started_at=event.at,
                finished_at=None,
                progress=0.0,
                message=None,
                stop_requested=False,
            )
        case JobProgressed(data=progressed):
            return msgspec.structs.replace(
                s, progress=progressed.progress, message=progressed.message
            )
        case JobCompleted(data=completed):
            return msgspec.structs.replace(
                s,
                status="completed",
                result=completed.result,
                progress=100.0,
                finished_at=event.at,
                stop_requested=False,
            )
        case JobFailed(data=failed):
            if failed.retry:
                return msgspec.structs.replace(
                    s,
                    status="pending",
                    error=failed.error,
                    run=s.run + 1,
                    run_base=s.attempt,
                    run_at=failed.retry_at,
                )
            return msgspec.structs.replace(
                s, status="failed", error=failed.error, finished_at=event.at, stop_requested=False
            )
        case JobStopRequested():
            return msgspec.structs.replace(s, stop_requested=True)
        case JobStopped():
            return msgspec.structs.replace(
                s, status="stopped", finished_at=event.at, stop_requested=False
            )
        case JobRestarted():
            return msgspec.structs.replace(
                s,
                status="pending",
                run=s.run + 1,
                attempts_base=s.attempt,
                run_base=s.attempt,
                run_at=None,
                progress=0.0,
                message=None,
                result=None,
                finished_at=None,
            )
        case JobDeleted():
            return msgspec.structs.replace(s, deleted=True)
        case JobSubmitted():
            raise AssertionError("handled above")
        case _:
            assert_never(event)


def fold(events: Iterable[AnyEvent]) -> JobState | None:
    """The state after every event, or None for an empty history."""
    state: JobState | None = None
    for event in events:
        state = evolve(state, event)
    return state
