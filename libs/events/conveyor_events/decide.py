"""``decide(command, state) -> events``: the transitions table of SPEC §2.1, and nothing else.

Every forbidden transition raises a :class:`~conveyor_events.errors.DomainError` subclass;
the API maps them to 404/409, workers to "skip" or "fenced off".
"""

from __future__ import annotations

from datetime import timedelta
from typing import Literal, assert_never

from conveyor_events.commands import (
    AnyCommand,
    CompleteJob,
    ConfirmStop,
    DeleteJob,
    FailJob,
    OperatorCommand,
    ReportProgress,
    RestartJob,
    StartJob,
    StopJob,
    SubmitJob,
)
from conveyor_events.errors import (
    DomainError,
    InvalidTransition,
    JobAlreadyExists,
    JobNotFound,
    StaleAttempt,
    StaleRun,
    TooManyRuns,
)
from conveyor_events.events import (
    AnyEvent,
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
    OperatorData,
    ProgressedData,
    StartedData,
    StoppedData,
    SubmittedData,
)
from conveyor_events.state import JobState

MAX_RUNS = 1000
"""How many times one job may be queued (its submission, every retry and restart): a job's
history, which every decision on it reads, stays bounded."""


def decide(command: AnyCommand, state: JobState | None) -> list[AnyEvent]:
    """The events that ``command`` produces on ``state``; raises when the table forbids it.

    An empty list means "already so" (a second stop of a job that is stopping).
    """
    if isinstance(command, SubmitJob):
        if state is not None:
            raise JobAlreadyExists(f"job {command.job_id} already exists")
        return [
            JobSubmitted(
                job_id=command.job_id,
                at=command.now,
                actor=command.actor,
                data=SubmittedData(
                    **_origin(command),
                    type=command.type,
                    priority=command.priority,
                    payload=command.payload,
                    max_attempts=command.max_attempts,
                    timeout_s=command.timeout_s,
                    run_at=command.run_at,
                ),
            )
        ]
    if state is None or state.deleted:
        raise JobNotFound(f"job {command.job_id} not found")
    job_id, at, actor = command.job_id, command.now, command.actor
    match command:
        case StartJob():
            if command.run != state.run:
                raise StaleRun(f"run {command.run} of job {state.id} was superseded by {state.run}")
            if state.status not in ("pending", "running"):
                raise _forbidden("start", state)
            if state.stop_requested:
                # The worker asked to stop died before confirming: the stop wins the redelivery.
                return [
                    JobStopped(
                        job_id=job_id, at=at, actor=actor, data=StoppedData(attempt=state.attempt)
                    )
                ]
            if _worker_lost_too_often(command, state):
                return [_worker_lost(command, state)]
            attempt = state.attempt + 1
            data = StartedData(attempt=attempt, worker_id=command.worker_id, run=command.run)
            return [JobStarted(job_id=job_id, at=at, actor=actor, data=data)]
        case ReportProgress():
            _require_current(state, command.attempt, "report progress for")
            data_p = ProgressedData(
                attempt=command.attempt,
                progress=min(100.0, max(0.0, command.progress)),
                message=command.message,
            )
            return [JobProgressed(job_id=job_id, at=at, actor=actor, data=data_p)]
        case CompleteJob():
            _require_current(state, command.attempt, "complete")
            data_c = CompletedData(attempt=command.attempt, result=command.result)
            return [JobCompleted(job_id=job_id, at=at, actor=actor, data=data_c)]
        case FailJob():
            _require_current(state, command.attempt, "fail")
            retry = not command.permanent and not state.stop_requested and state.attempts_left > 0
            retry_at = command.now + timedelta(seconds=command.retry_delay_s) if retry else None
            data_f = FailedData(
                attempt=command.attempt,
                error=command.error,
                retry=retry,
                retry_at=retry_at,
                cause=command.cause,
            )
            return [JobFailed(job_id=job_id, at=at, actor=actor, data=data_f)]
        case StopJob():
            if state.status == "pending":
                data_s = StoppedData(**_origin(command), attempt=None)
                return [JobStopped(job_id=job_id, at=at, actor=actor, data=data_s)]
            if state.status == "running":
                if state.stop_requested:
                    return []
                data_o = OperatorData(**_origin(command))
                return [JobStopRequested(job_id=job_id, at=at, actor=actor, data=data_o)]
            raise _forbidden("stop", state)
        case ConfirmStop():
            _require_current(state, command.attempt, "stop")
            if not state.stop_requested:
                raise InvalidTransition(f"job {state.id} has no stop request to confirm")
            return [
                JobStopped(
                    job_id=job_id, at=at, actor=actor, data=StoppedData(attempt=command.attempt)
                )
            ]
        case RestartJob():
            if state.status not in ("failed", "stopped"):
                raise _forbidden("restart", state)
            if state.run >= MAX_RUNS:
                raise TooManyRuns(
                    f"cannot restart job {state.id}: it was queued {state.run} times, the most"
                    f" one job may be ({MAX_RUNS}); submit a new job instead"
                )
            data_r = OperatorData(**_origin(command))
            return [JobRestarted(job_id=job_id, at=at, actor=actor, data=data_r)]
        case DeleteJob():
            if state.status not in ("completed", "failed", "stopped"):
                raise _forbidden("delete", state)
            data_d = OperatorData(**_origin(command))
            return [JobDeleted(job_id=job_id, at=at, actor=actor, data=data_d)]
        case SubmitJob():
            raise AssertionError("handled above")
        case _:
            assert_never(command)


def _worker_lost_too_often(command: StartJob, state: JobState) -> bool:
    """A redelivery of a run whose attempt is still running (its worker never settled it),
    after the run was started ``max_deliveries`` times."""
    limit = command.max_deliveries
    return (
        limit is not None and state.status == "running" and state.attempt - state.run_base >= limit
    )


def _worker_lost(command: StartJob, state: JobState) -> JobFailed:
    starts = state.attempt - state.run_base
    error = ErrorInfo(
        type="WorkerLost",
        message=(
            f"run {state.run} of job {state.id} was started {starts} times and no worker "
            f"finished it (max_deliveries={command.max_deliveries}); the job is failed "
            "instead of being delivered again"
        ),
    )
    data = FailedData(attempt=state.attempt, error=error, retry=False, cause="worker_lost")
    return JobFailed(job_id=state.id, at=command.now, actor=command.actor, data=data)


def _origin(command: OperatorCommand) -> dict[str, str | None]:
    """What an operator's command records in its event beside the actor."""
    return {
        "reason": command.reason,
        "request_id": command.request_id,
        "client_address": command.client_address,
    }


Action = Literal["stop", "restart", "delete"]
ACTIONS: dict[Action, type[StopJob | RestartJob | DeleteJob]] = {
    "stop": StopJob,
    "restart": RestartJob,
    "delete": DeleteJob,
}
"""The operator's actions on a job, by the name the API and the dashboard use."""


def allowed_actions(state: JobState | None) -> list[Action]:
    """The operator actions :func:`decide` accepts on ``state`` now, in :data:`ACTIONS`'
    order: each is decided, and kept unless the table forbids it (a stop of a job that is
    stopping already is accepted: it answers the job as it is)."""
    if state is None:
        return []
    allowed: list[Action] = []
    for name, command in ACTIONS.items():
        try:
            decide(command(job_id=state.id, now=state.updated_at, actor="user:-"), state)
        except DomainError:
            continue
        allowed.append(name)
    return allowed


def _require_current(state: JobState, attempt: int, action: str) -> None:
    if state.status != "running":
        raise _forbidden(action, state)
    if attempt != state.attempt:
        raise StaleAttempt(
            f"cannot {action} attempt {attempt} of job {state.id}: "
            f"attempt {state.attempt} is the current one"
        )


_ALLOWED = {
    "stop": "pending or running",
    "restart": "failed or stopped",
    "delete": "completed, failed or stopped",
}
_PARTICIPLE = {"stop": "stopped", "restart": "restarted", "delete": "deleted"}


def _forbidden(action: str, state: JobState) -> InvalidTransition:
    message = f"cannot {action} job {state.id}: it is {state.status}"
    if action in _ALLOWED:
        message += f"; only a {_ALLOWED[action]} job can be {_PARTICIPLE[action]}"
    return InvalidTransition(message)
