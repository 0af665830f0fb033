"""Commands: what someone asks of a job. Each carries the job id, the time and the actor,
so :func:`conveyor_events.decide.decide` needs no clock and no id generator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from conveyor_events.events import ErrorInfo, FailureCause
from conveyor_events.names import Priority


class Command(msgspec.Struct, frozen=True, kw_only=True):
    job_id: str
    now: datetime
    actor: str


class OperatorCommand(Command, frozen=True, kw_only=True):
    """A command an operator gives through the API: who (``actor``), and from where and why
    (recorded in its event, :class:`~conveyor_events.events.OperatorData`)."""

    reason: str | None = None
    request_id: str | None = None
    client_address: str | None = None


class SubmitJob(OperatorCommand, frozen=True, kw_only=True):
    type: str
    priority: Priority = "regular"
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    max_attempts: int = 1
    timeout_s: float | None = None
    run_at: datetime | None = None


class StartJob(Command, frozen=True):
    """A worker took the job's run command ``run`` off the queue (first or re-delivery)."""

    worker_id: str
    run: int
    max_deliveries: int | None = None
    """How many times one run may be started; a delivery past it, of a job whose attempt is
    still running (its worker was lost), fails the job with ``WorkerLost``. None: no limit."""


class ReportProgress(Command, frozen=True):
    attempt: int
    progress: float
    message: str | None = None


class CompleteJob(Command, frozen=True):
    attempt: int
    result: Any = None


class FailJob(Command, frozen=True):
    attempt: int
    error: ErrorInfo
    retry_delay_s: float = 0.0
    """Backoff before the next attempt, chosen by the worker (with jitter)."""
    permanent: bool = False
    """Skip the remaining attempts."""
    cause: FailureCause = "handler_error"
    """Why it failed: the handler's error, or its ``timeout_s`` (recorded in the event)."""


class StopJob(OperatorCommand, frozen=True):
    pass


class ConfirmStop(Command, frozen=True):
    """The worker cancelled the handler of ``attempt`` after a stop request."""

    attempt: int


class RestartJob(OperatorCommand, frozen=True):
    pass


class DeleteJob(OperatorCommand, frozen=True):
    pass


AnyCommand = (
    SubmitJob
    | StartJob
    | ReportProgress
    | CompleteJob
    | FailJob
    | StopJob
    | ConfirmStop
    | RestartJob
    | DeleteJob
)
