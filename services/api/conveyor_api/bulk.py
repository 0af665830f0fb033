"""``POST /api/v1/jobs/bulk``: stop, restart or delete many jobs, named by id or by the list
endpoint's filter. Each job's action goes through the same service call as its single route
(decided on the job's own history, appended with its expected sequence, the principal as
actor), several at a time; a job the action does not fit is reported, not fatal."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, model_validator

from conveyor_api.audit import Origin, Reason, ReasonIn, origin
from conveyor_api.auth import actor
from conveyor_api.problems import problem
from conveyor_api.schemas import Priority, Problem
from conveyor_api.service import JobService
from conveyor_bus import BusError, BusUnavailable
from conveyor_db import JobFilter
from conveyor_events import (
    AnyCommand,
    DeleteJob,
    DomainError,
    JobState,
    RestartJob,
    StopJob,
    TooManyConflicts,
    decide,
)

router = APIRouter()

MAX_IDS = 10_000
"""Ids one request may name."""
MAX_MATCHED = 10_000
"""Jobs one filter may match; past it the request is refused (422) and nothing is done."""
CONCURRENCY = 64
"""Jobs acted on at once: each is a read of its last events and one conditional append."""
PAGE = 500
"""Rows read from the read model per query while a filter's matches are collected."""

Action = Literal["stop", "restart", "delete"]
Status = Literal["pending", "running", "completed", "failed", "stopped"]
Text = Annotated[str, StringConstraints(max_length=200, pattern=r"^[^\x00-\x1f]*$")]
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 413, 422, 503)
}


class BulkFilter(BaseModel):
    """The list endpoint's filters (``GET /jobs``); an empty filter matches every job."""

    model_config = ConfigDict(extra="forbid")

    status: list[Status] = Field(default_factory=list, max_length=5)
    priority: Priority | None = None
    type: Text | None = None
    q: Text | None = Field(None, description="id prefix or payload text")


class BulkIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    action: Action
    ids: (
        Annotated[
            list[Annotated[str, StringConstraints(min_length=1, max_length=64)]],
            Field(max_length=MAX_IDS),
        ]
        | None
    ) = Field(None, description=f"the jobs, by id (at most {MAX_IDS:,})")
    filter: BulkFilter | None = Field(
        None, description=f"the jobs GET /jobs lists with these filters (at most {MAX_MATCHED:,})"
    )
    reason: Reason | None = Field(
        None, description="recorded in each job's event, as for a single action"
    )
    dry_run: StrictBool = Field(
        False,
        description="write nothing: count the matches and say which the action would refuse,"
        " judged on the read model",
    )

    @model_validator(mode="after")
    def _one_selection(self) -> BulkIn:
        if (self.ids is None) == (self.filter is None):
            raise ValueError("give either ids or filter (exactly one)")
        return self


class Refused(BaseModel):
    id: str
    reason: str


class BulkOut(BaseModel):
    matched: int = Field(description="jobs named or matched (duplicate ids counted once)")
    acted: int = Field(description="jobs the action was recorded for (would be, with dry_run)")
    refused: list[Refused] = Field(description="the others, each with the reason")
    dry_run: bool = False


Act = Callable[[str], Awaitable[object]]


def _single(service: JobService, action: Action, fields: Origin) -> Act:
    """The service call of the action's single route, for one job: who asked, from where
    and why recorded in each job's event as for a single action."""
    if action == "stop":
        return lambda job_id: service.stop(job_id, fields)
    if action == "restart":
        return lambda job_id: service.restart(job_id, fields)
    return lambda job_id: service.delete(job_id, fields)


async def _matches(service: JobService, flt: BulkFilter) -> list[str] | None:
    """The ids the filter matches, newest first; None when there are more than allowed."""
    query = JobFilter(flt.status, flt.priority, flt.type, flt.q)
    ids: list[str] = []
    cursor: str | None = None
    while True:
        page = await service.list_jobs(query, PAGE, cursor)
        ids.extend(s.id for s in page.items)
        if len(ids) > MAX_MATCHED:
            return None
        cursor = page.next_cursor
        if cursor is None:
            return ids


async def act_on(ids: list[str], act: Act) -> tuple[int, list[Refused]]:
    """Run ``act`` on every id, :data:`CONCURRENCY` at a time. A domain error refuses that job;
    once the event log is unreachable the jobs not yet tried are refused saying so."""
    gate = asyncio.Semaphore(CONCURRENCY)
    refused: dict[str, str] = {}
    acted = 0
    away: str | None = None

    async def one(job_id: str) -> None:
        nonlocal acted, away
        async with gate:
            if away is not None:
                refused[job_id] = f"not tried: {away}"
                return
            try:
                await act(job_id)
            except DomainError as e:
                refused[job_id] = str(e)
            except BusUnavailable as e:
                away = f"the event log (NATS JetStream) is unavailable: {e}"
                refused[job_id] = away
            except (BusError, TooManyConflicts) as e:
                refused[job_id] = f"not written, try again: {e}"
            else:
                acted += 1

    await asyncio.gather(*(one(job_id) for job_id in ids))
    return acted, [Refused(id=i, reason=refused[i]) for i in ids if i in refused]


async def judge(service: JobService, ids: list[str], action: Action, who: str) -> list[Refused]:
    """A dry run: the action decided on each job's read-model row, nothing written."""
    rows = await asyncio.gather(*(_row(service, i) for i in ids))
    out = []
    now = datetime.now(UTC)
    for job_id, state in zip(ids, rows, strict=True):
        try:
            if state is None:
                raise DomainError(f"job {job_id} not found")
            decide(_command(action, job_id, now, who), state)
        except DomainError as e:
            out.append(Refused(id=job_id, reason=str(e)))
    return out


def _command(action: Action, job_id: str, now: datetime, who: str) -> AnyCommand:
    if action == "stop":
        return StopJob(job_id=job_id, now=now, actor=who)
    if action == "restart":
        return RestartJob(job_id=job_id, now=now, actor=who)
    return DeleteJob(job_id=job_id, now=now, actor=who)


async def _row(service: JobService, job_id: str) -> JobState | None:
    return await service.reads.get(job_id)


@router.post(
    "/jobs/bulk",
    response_model=BulkOut,
    responses=_ERRORS,
    summary=f"Stop, restart or delete many jobs (by ids or a filter, at most {MAX_MATCHED:,})",
)
async def bulk(body: BulkIn, request: Request) -> Response:
    service: JobService = request.app.state.service
    who = actor(request)
    if body.ids is not None:
        ids = list(dict.fromkeys(body.ids))
    else:
        assert body.filter is not None
        found = await _matches(service, body.filter)
        if found is None:
            return problem(
                422,
                f"filter: matches more than {MAX_MATCHED:,} jobs; narrow it (status, priority,"
                " type, q) or act on a part at a time",
                [{"field": "filter", "message": f"matches more than {MAX_MATCHED:,} jobs"}],
            )
        ids = found
    if body.dry_run:
        refused = await judge(service, ids, body.action, who)
        acted = len(ids) - len(refused)
    else:
        fields = origin(request, ReasonIn(reason=body.reason))
        acted, refused = await act_on(ids, _single(service, body.action, fields))
    out = BulkOut(matched=len(ids), acted=acted, refused=refused, dry_run=body.dry_run)
    return Response(out.model_dump_json(), media_type="application/json")
