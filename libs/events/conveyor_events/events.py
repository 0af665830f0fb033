"""The job events: the log's records and the websocket feed's frames.

Wire names (``job.submitted`` …) are stable strings. Schemas evolve only by adding fields
with defaults; decoders ignore unknown fields, so old and new code read each other's events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

import msgspec

from conveyor_events import names
from conveyor_events.names import Priority
from conveyor_events.upcast import UPCASTERS, UpcastError


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


MAX_REASON_LENGTH = 500
"""The longest ``reason`` an operator may give (characters)."""


class OperatorData(msgspec.Struct, frozen=True, kw_only=True):
    """Who asked, from where and why: what every operator event (submit, stop, restart,
    delete) records beside its actor (``user:<principal>``). All None in events written
    before these fields existed, and in a ``job.stopped`` that a worker wrote."""

    reason: str | None = None
    """The operator's own words (``{"reason": ...}``, ``--reason``), at most
    :data:`MAX_REASON_LENGTH` characters."""
    request_id: str | None = None
    """The ``X-Request-Id`` of the API request that wrote the event (the API's log lines
    carry it too)."""
    client_address: str | None = None
    """The address of the API's client (a proxy's, unless the API trusts its forwarded
    headers)."""


class SubmittedData(OperatorData, frozen=True, kw_only=True):
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


FailureCause = Literal["handler_error", "timeout", "worker_lost"]
"""Why an attempt failed: its handler raised (or could not run), it ran past its
``timeout_s``, or its worker was lost too often (``max_deliveries``)."""


class FailedData(msgspec.Struct, frozen=True, kw_only=True):
    attempt: int
    error: ErrorInfo
    retry: bool = False
    retry_at: datetime | None = None
    cause: FailureCause | None = None
    """None in events written before the field: read from the error then
    (:func:`failure_cause`)."""


def failure_cause(data: FailedData) -> FailureCause:
    """Why the attempt failed. Events written before ``cause`` existed tell it by their
    error: the worker's own ``Timeout`` (no traceback: a handler's exception of that name has
    one) and the domain's ``WorkerLost``; anything else was the handler's."""
    if data.cause is not None:
        return data.cause
    if data.error.type == "WorkerLost" and data.error.traceback is None:
        return "worker_lost"
    if data.error.type == "Timeout" and data.error.traceback is None:
        return "timeout"
    return "handler_error"


class JobFailed(Event, frozen=True, tag="job.failed"):
    data: FailedData


class JobStopRequested(Event, frozen=True, tag="job.stop_requested"):
    data: OperatorData = OperatorData()


class StoppedData(OperatorData, frozen=True, kw_only=True):
    """An operator's stop of a pending job carries the :class:`OperatorData`; a worker's
    confirmation of a stop (the cancelled ``attempt``) leaves it None: the request is in the
    ``job.stop_requested`` before it."""

    attempt: int | None = None
    """The attempt that was cancelled, or None when the job was stopped while pending."""


class JobStopped(Event, frozen=True, tag="job.stopped"):
    data: StoppedData = StoppedData()


class JobRestarted(Event, frozen=True, tag="job.restarted"):
    data: OperatorData = OperatorData()


class JobDeleted(Event, frozen=True, tag="job.deleted"):
    data: OperatorData = OperatorData()


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
_evolved = UPCASTERS.versions
"""The current version of each event type that has changed incompatibly (upcast.py)."""


class _Version(msgspec.Struct):
    v: int = 1


_version_decoder = msgspec.json.Decoder(_Version)


def encode_event(event: AnyEvent) -> bytes:
    """The event as stored in the log (the public frame without ``seq``); a type at version 2
    or later is written with its version (``"v"``, upcast.py)."""
    raw = _encoder.encode(event)
    if _evolved and (version := _evolved.get(event.name)) is not None:
        return b'%s,"v":%d}' % (raw[:-1], version)
    return raw


def decode_event(raw: bytes) -> AnyEvent:
    """Decode a stored event, an old version of its type upcast first (upcast.py); raises
    ``msgspec.DecodeError`` / ``ValidationError`` on garbage."""
    try:
        event: AnyEvent = _decoder.decode(raw)
    except msgspec.ValidationError:
        if not _evolved:
            raise
        old = _decode_old(raw)
        if old is None:
            raise
        return old
    if (
        _evolved
        and event.name in _evolved
        and _version_decoder.decode(raw).v < _evolved[event.name]
    ):
        old = _decode_old(raw)
        if old is not None:
            return old
    return event


def _decode_old(raw: bytes) -> AnyEvent | None:
    """``raw`` upcast to its type's current version and decoded; None when it is no old
    version of an evolved type."""
    doc = msgspec.json.decode(raw)
    try:
        if not isinstance(doc, dict) or not UPCASTERS.is_old(doc):
            return None
        upcast = UPCASTERS.upcast(doc)
    except UpcastError as e:
        raise msgspec.ValidationError(str(e)) from e
    # re-encoded and decoded by the one typed decoder (msgspec.convert, which takes the dict,
    # is 10 times slower on the union), so an old event is checked exactly as a new one
    current: AnyEvent = _decoder.decode(_encoder.encode(upcast))
    return current


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
