"""REST schemas (pydantic). The wire format of the bus is msgspec; these are the API's."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    StrictStr,
    field_validator,
)

from conveyor_bus.tokens import Role
from conveyor_events import Action, JobState, allowed_actions

Priority = Literal["high", "regular"]


def _integral(value: object) -> object:
    """JSON has one kind of number: ``2.0`` is the integer 2, as JSON Schema's ``integer``
    (and so the OpenAPI document) says. ``1.5``, ``"2"`` and ``true`` are still refused."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


class JobIn(BaseModel):
    """A submission. What it leaves out of ``priority``, ``max_attempts`` and ``timeout_s``
    comes from its type's defaults (``GET /types``), then from the values shown here."""

    model_config = ConfigDict(extra="forbid")

    type: StrictStr = Field(
        min_length=1,
        max_length=200,
        examples=["sleep"],
        description="a job type a live worker runs (GET /api/v1/types)",
    )
    priority: Priority = "regular"
    payload: dict[str, Any] = Field(
        default_factory=dict,
        examples=[{"seconds": 5}],
        description="checked against the type's JSON schema (GET /api/v1/types)",
    )
    max_attempts: Annotated[StrictInt, Field(ge=1, le=100), BeforeValidator(_integral)] = 1
    timeout_s: Annotated[float, Field(gt=0, le=7 * 86_400, strict=True)] | None = None
    run_at: AwareDatetime | None = Field(
        None, description="RFC 3339 with a time zone; the job does not start before it"
    )

    @field_validator("run_at", mode="before")
    @classmethod
    def _text(cls, value: object) -> object:
        """Only the string the schema documents (pydantic would also take a number of
        seconds since 1970)."""
        if value is not None and not isinstance(value, str):
            raise ValueError(
                "must be an RFC 3339 datetime string with a time zone, e.g. 2026-11-23T12:00:00Z"
            )
        return value

    @field_validator("run_at")
    @classmethod
    def _utc(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        try:
            return value.astimezone(UTC)
        except OverflowError as e:
            raise ValueError("out of range once converted to UTC") from e


class BatchIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    jobs: list[JobIn] = Field(min_length=1, max_length=1000)


class ErrorOut(BaseModel):
    type: str
    message: str
    traceback: str | None = None


class AttemptErrorOut(BaseModel):
    type: str
    message: str


class AttemptOut(BaseModel):
    """One attempt of the job, derived from its history."""

    attempt: int
    worker_id: str | None
    started_at: datetime | None
    finished_at: datetime | None = Field(
        description="when the log recorded its end; for a lost attempt, when the loss was"
        " noticed (the next delivery)"
    )
    outcome: Literal["running", "completed", "failed", "stopped", "lost"]
    error: AttemptErrorOut | None
    next_cause: Literal["handler_error", "timeout", "worker_lost", "operator_restart"] | None = (
        Field(
            description="why the next attempt happened (or is awaited: a retry, a restart);"
            " null while none follows"
        )
    )


class JobOut(BaseModel):
    id: str
    type: str
    priority: Priority
    payload: dict[str, Any]
    status: Literal["pending", "running", "completed", "failed", "stopped"]
    progress: float
    message: str | None
    attempt: int
    max_attempts: int
    timeout_s: float | None
    run_at: datetime | None
    result: Any
    error: ErrorOut | None
    worker_id: str | None
    stop_requested: bool
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    version: int
    attempts: list[AttemptOut] = Field(description="every attempt started, oldest first")
    seq: int = Field(
        description="the log sequence of the job's last event: a feed event with a greater"
        " seq is news to this state"
    )
    actions: list[Action] = Field(
        description="the operator actions the job's state allows now (SPEC 2.1)"
    )

    @classmethod
    def of(cls, s: JobState) -> JobOut:
        return cls.model_construct(
            id=s.id, type=s.type, priority=s.priority, payload=s.payload, status=s.status,
            progress=s.progress, message=s.message, attempt=s.attempt,
            max_attempts=s.max_attempts, timeout_s=s.timeout_s, run_at=s.run_at,
            result=s.result,
            error=ErrorOut(type=s.error.type, message=s.error.message,
                           traceback=s.error.traceback) if s.error else None,
            worker_id=s.worker_id, stop_requested=s.stop_requested, created_at=s.created_at,
            started_at=s.started_at, finished_at=s.finished_at, updated_at=s.updated_at,
            version=s.version,
            attempts=[
                AttemptOut.model_construct(
                    attempt=a.attempt, worker_id=a.worker_id, started_at=a.started_at,
                    finished_at=a.finished_at, outcome=a.outcome,
                    error=AttemptErrorOut.model_construct(type=a.error.type,
                                                          message=a.error.message)
                    if a.error else None,
                    next_cause=a.next_cause,
                )
                for a in s.attempts
            ],
            seq=s.seq,
            actions=allowed_actions(s),
        )  # fmt: skip


class JobList(BaseModel):
    items: list[JobOut]
    next_cursor: str | None


class BatchOut(BaseModel):
    items: list[JobOut]


class EventOut(BaseModel):
    seq: int
    job_id: str
    type: str
    at: datetime
    actor: str
    data: dict[str, Any]


class EventList(BaseModel):
    items: list[EventOut]
    next: int | None = Field(
        None, description="the after_seq of the next page; null when this page is the last"
    )


class WorkerOut(BaseModel):
    id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat_at: datetime
    heartbeat_age_s: float
    concurrency: int
    running_job_ids: list[str]
    stopping: bool
    types: list[str]


class WorkerList(BaseModel):
    items: list[WorkerOut]


class TypeOut(BaseModel):
    name: str
    schema_: dict[str, Any] = Field(
        alias="schema", description="the JSON schema of the type's payload"
    )
    defaults: dict[str, Any] = Field(
        description="what a submission that leaves them out gets: max_attempts, timeout_s, priority"
    )
    description: str | None
    workers: list[str] = Field(description="ids of the live workers that run the type")

    model_config = ConfigDict(populate_by_name=True)


class TypeList(BaseModel):
    items: list[TypeOut]


class QueueDepth(BaseModel):
    pending: int
    in_flight: int


class MinuteOutcomes(BaseModel):
    minute: datetime = Field(description="the minute's start (UTC)")
    completed: int
    failed: int = Field(description="failed with no retry left")


class RunTime(BaseModel):
    count: int = Field(description="jobs of the type completed in the last hour")
    p50_s: float = Field(description="median run time, to within 19 % (its bucket's top)")
    p95_s: float


class Stats(BaseModel):
    by_status: dict[str, int]
    by_priority: dict[str, int]
    total: int
    queue_depth: dict[str, QueueDepth]
    throughput: dict[str, float]
    projector_lag: int
    oldest_pending_age_s: dict[str, float | None] = Field(
        description="per priority, how long its longest-waiting pending job has waited (since"
        " it became pending, or its run_at); null when none waits"
    )
    per_minute: list[MinuteOutcomes] = Field(
        description="the last 60 minutes, oldest first, the current one last"
    )
    run_time_s: dict[str, RunTime] = Field(
        description="per type, run times of the jobs completed in the last hour"
    )


class Problem(BaseModel):
    type: str = "about:blank"
    title: str
    status: int
    detail: str
    errors: list[dict[str, Any]] | None = None


class Health(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str]


class WhoAmI(BaseModel):
    """The caller: its token's name (the principal) and role; ``anonymous``, ``operate`` while
    auth is off."""

    name: str
    role: Role
