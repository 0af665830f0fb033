"""The job events: the log's records and the websocket feed's frames.

Wire names (``job.submitted`` …) are stable strings. Schemas evolve only by adding fields
with defaults; decoders ignore unknown fields, so old and new code read each other's events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, get_args

import msgspec

from conveyor_events import names
from conveyor_events.names import Priority


class ErrorInfo(msgspec.Struct, frozen=True):
    """What went wrong in an attempt."""

    type: str
    message: str
    traceback: str | None = None


class Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    """Common envelope: the job, when (UTC), and who (``user:<p>`` or ``worker:<id>``)."""

    job_id: str
    at: datetime
    actor: str

    @property
    def name(self) -> str:
        """The wire name, e.g. ``job.submitted``."""
        return str(self.__struct_config__.tag)


class SubmittedData(msgspec.Struct, frozen=True, kw_only=True):
    type: str
    priority: Priority = "regular"
    payload: dict[str, Any] = msgspec.field(default_factory=dict)
    max_attempts: int = 1
    timeout_s: float | None = None
    run_at: datetime | None = None


class JobSubmitted(Event, frozen=True, tag="job.submitted"):
    data: SubmittedData


class StartedData(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    worker_id: str
    run: int = 1


class JobStarted(Event, frozen=True, tag="job.started"):
    data: StartedData


class ProgressedData(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    progress: float
    message: str | None = None


class JobProgressed(Event, frozen=True, tag="job.progressed"):
    data: ProgressedData


class CompletedData(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    result: Any = None


class JobCompleted(Event, frozen=True, tag="job.completed"):
    data: CompletedData


class FailedData(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    error: ErrorInfo
    retry: bool = False
    retry_at: datetime | None = None


class JobFailed(Event, frozen=True, tag="job.failed"):
    data: FailedData


class EmptyData(msgspec.Struct, frozen=True, kw_only=True):
    pass


class JobStopRequested(Event, frozen=True, tag="job.stop_requested"):
    data: EmptyData = EmptyData()


class StoppedData(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int | None = None
    """The attempt that was cancelled, or None when the job was stopped while pending."""


class JobStopped(Event, frozen=True, tag="job.stopped"):
    data: StoppedData = StoppedData()


class JobRestarted(Event, frozen=True, tag="job.restarted"):
    data: EmptyData = EmptyData()


class JobDeleted(Event, frozen=True, tag="job.deleted"):
    data: EmptyData = EmptyData()


AnyEvent = (
    JobSubmitted
    | JobStarted
    | JobProgressed
    | JobCompleted
    | JobFailed
    | JobStopRequested
    | JobStopped
    | JobRestarted
    | JobDeleted
)

EVENT_TYPES: tuple[str, ...] = tuple(str(t.__struct_config__.tag) for t in get_args(AnyEvent))
"""Every event type's wire name, derived from the union."""

_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(AnyEvent)


def encode_event(event: AnyEvent) -> bytes:
    """The event as stored in the log (the public frame without ``seq``)."""
    return _encoder.encode(event)


def decode_event(raw: bytes) -> AnyEvent:
    """Decode a stored event; raises ``msgspec.DecodeError`` / ``ValidationError`` on garbage."""
    event: AnyEvent = _decoder.decode(raw)
    return event


def runnable(event: AnyEvent) -> bool:
    """Whether ``event`` asks a worker to run its job: a submission, a restart, a failure with
    a retry. Such an event is the job's run command (it is stored on a subject that names the
    job's priority, which the workers' consumers read)."""
    return isinstance(event, JobSubmitted | JobRestarted) or (
        isinstance(event, JobFailed) and event.data.retry
    )


def not_before(event: AnyEvent) -> datetime | None:
    """When the run a runnable event asks for may start (``run_at``, ``retry_at``)."""
    if isinstance(event, JobSubmitted):
        return event.data.run_at
    if isinstance(event, JobFailed):
        return event.data.retry_at
    return None


def delivered_now(event: AnyEvent) -> bool:
    """Whether ``event`` is stored on its job's work queue: runnable, and due when it is
    written. A run due later waits for a timer instead (conveyor_events.timers)."""
    if not runnable(event):
        return False
    due = not_before(event)
    return due is None or due <= event.at


def subject_of(event: AnyEvent, priority: Priority) -> str:
    """The subject ``event`` is stored on, for a job of ``priority``: the priority token only
    on a runnable event due at once."""
    return names.event_subject(event.job_id, event.name, priority if delivered_now(event) else None)
