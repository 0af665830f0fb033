"""A job's attempts, derived from its history: who ran each one, when, how it ended, and why
the next one happened ("why twice, why waiting").

:func:`next_attempts` is the one rule, applied by :func:`~conveyor_events.state.evolve`
event by event, so the read model, a fresh fold (``conveyor verify``) and a fold as of a
time all hold the same list.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

import msgspec

from conveyor_events.events import (
    AnyEvent,
    JobCompleted,
    JobFailed,
    JobRestarted,
    JobStarted,
    JobStopped,
    failure_cause,
)

Outcome = Literal["running", "completed", "failed", "stopped", "lost"]
"""How an attempt ended: ``running`` (not yet), ``lost`` (its worker vanished: the run was
delivered again, or it failed with ``WorkerLost``)."""
NextCause = Literal["handler_error", "timeout", "worker_lost", "operator_restart"]
"""Why another attempt followed (or, while the job waits for it, will follow)."""


class AttemptError(msgspec.Struct, frozen=True):
    """The error an attempt ended with (its traceback is in the job's ``error`` and the
    ``job.failed`` event)."""

    type: str
    message: str


class Attempt(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    worker_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    """When the log recorded its end; for a ``lost`` attempt, when the loss was noticed
    (the next delivery), an upper bound of when its worker went away."""
    outcome: Outcome = "running"
    error: AttemptError | None = None
    next_cause: NextCause | None = None
    """Why the next attempt happened, or is awaited (a retry after backoff, a restart); None
    while no other attempt follows."""


Attempts = tuple[Attempt, ...]


def _end(
    attempts: Attempts, at: datetime, outcome: Outcome, **fields: object
) -> tuple[Attempt, ...]:
    last = attempts[-1]
    ended = msgspec.structs.replace(last, finished_at=at, outcome=outcome, **fields)
    return (*attempts[:-1], ended)


def next_attempts(attempts: Attempts, event: AnyEvent) -> Attempts:
    """The attempts after ``event`` (an event that :func:`~conveyor_events.step.step`
    accepts in the job's state). Progress, stop requests and deletes change none."""
    last = attempts[-1] if attempts else None
    match event:
        case JobStarted(data=started):
            if last is not None and last.outcome == "running":
                # The run was delivered again while its attempt was running: that worker
                # neither settled nor kept it (killed, frozen, cut off).
                attempts = _end(attempts, event.at, "lost", next_cause="worker_lost")
            begun = Attempt(
                attempt=started.attempt, worker_id=started.worker_id, started_at=event.at
            )
            return (*attempts, begun)
        case JobCompleted() if last is not None:
            return _end(attempts, event.at, "completed")
        case JobFailed(data=failed) if last is not None:
            cause = failure_cause(failed)
            error = AttemptError(failed.error.type, failed.error.message)
            outcome: Outcome = "lost" if cause == "worker_lost" else "failed"
            return _end(
                attempts, event.at, outcome, error=error, next_cause=cause if failed.retry else None
            )
        case JobStopped(data=stopped) if last is not None:
            if stopped.attempt is not None:  # the running attempt was cancelled
                return _end(attempts, event.at, "stopped")
            # stopped while waiting for a retry: no next attempt is awaited any more
            return (*attempts[:-1], msgspec.structs.replace(last, next_cause=None))
        case JobRestarted() if last is not None:
            return (*attempts[:-1], msgspec.structs.replace(last, next_cause="operator_restart"))
    return attempts
