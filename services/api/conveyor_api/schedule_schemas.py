"""REST schemas of recurring schedules (``/api/v1/schedules``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StrictBool, StrictInt, StrictStr

from conveyor_api.schemas import Priority, _integral

NAME = r"^[A-Za-z0-9_-]{1,100}$"
"""A schedule's name: letters, digits, ``_`` and ``-`` (one NATS subject token)."""
_ITEM = r"(\*|\?|[0-9A-Za-z]+(-[0-9A-Za-z]+)?)(/[0-9]+)?"
_FIELD = rf"{_ITEM}(,{_ITEM})*"
_MACRO = r"@(yearly|annually|monthly|weekly|daily|midnight|hourly)"
CRON = rf"^\s*({_MACRO}|{_FIELD}(\s+{_FIELD}){{4,5}})\s*$"
"""The shape of a cron expression, documented in the OpenAPI document (``conveyor_api.cron``
checks it, with messages that say what is wrong: which field, which range)."""
ZONE = r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$"


class ScheduledJobIn(BaseModel):
    """The job each tick submits. What it leaves out of ``priority``, ``max_attempts`` and
    ``timeout_s`` comes from its type's defaults (``GET /types``) when the schedule is
    written, then from the values shown here."""

    model_config = ConfigDict(extra="forbid")

    type: StrictStr = Field(min_length=1, max_length=200, examples=["sleep"])
    priority: Priority = "regular"
    payload: dict[str, Any] = Field(default_factory=dict, examples=[{"seconds": 1}])
    max_attempts: Annotated[StrictInt, Field(ge=1, le=100), BeforeValidator(_integral)] = 1
    timeout_s: Annotated[float, Field(gt=0, le=7 * 86_400, strict=True)] | None = None


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: StrictStr = Field(
        pattern=NAME, examples=["nightly-report"], description="letters, digits, _ and -"
    )
    cron: StrictStr = Field(
        max_length=200,
        examples=["0 3 * * *"],
        json_schema_extra={"pattern": CRON},
        description="5 fields (minute hour day-of-month month day-of-week) or 6 (second "
        "first); lists, ranges, steps, month and weekday names, @daily and the like",
    )
    timezone: StrictStr = Field(
        "UTC",
        max_length=64,
        examples=["Europe/Paris"],
        description="IANA time zone",
        json_schema_extra={"pattern": ZONE},
    )
    job: ScheduledJobIn
    enabled: StrictBool = True


class SchedulePatch(BaseModel):
    """What to change; what is left out stays as it is."""

    model_config = ConfigDict(extra="forbid")

    cron: StrictStr | None = Field(None, max_length=200, json_schema_extra={"pattern": CRON})
    timezone: StrictStr | None = Field(None, max_length=64, json_schema_extra={"pattern": ZONE})
    job: ScheduledJobIn | None = None
    enabled: StrictBool | None = Field(None, description="false pauses, true resumes")


class ScheduledJobOut(BaseModel):
    type: str
    priority: Priority
    payload: dict[str, Any]
    max_attempts: int
    timeout_s: float | None


class ScheduleOut(BaseModel):
    name: str
    cron: str
    timezone: str
    job: ScheduledJobOut
    enabled: bool
    next_run_at: datetime | None = Field(description="the next tick; null while paused")
    last_run_at: datetime | None = Field(description="the last tick; null before the first")
    created_at: datetime
    updated_at: datetime


class ScheduleList(BaseModel):
    items: list[ScheduleOut]
