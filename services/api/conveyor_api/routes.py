"""Thin routes: parse, call the service, shape the response."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

import msgspec
from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from conveyor_api import statsview
from conveyor_api.audit import ReasonIn, origin, parse_instant
from conveyor_api.auth import actor, principal
from conveyor_api.ids import JOB_ID, is_job_id
from conveyor_api.problems import problem
from conveyor_api.schemas import (
    BatchIn,
    BatchOut,
    EventList,
    EventOut,
    Health,
    JobIn,
    JobList,
    JobOut,
    Priority,
    Problem,
    QueueDepth,
    Stats,
    TypeList,
    TypeOut,
    WhoAmI,
    WorkerList,
    WorkerOut,
)
from conveyor_api.service import JobService
from conveyor_db import JobFilter
from conveyor_events import STATUSES

router = APIRouter()
system_router = APIRouter()

PRINTABLE = r"^[^\x00-\x1f]*$"
"""Filters are text without control characters (PostgreSQL refuses NUL)."""
_STATUS = "(" + "|".join(STATUSES) + ")?"
STATUS_LIST = rf"^\s*{_STATUS}\s*(,\s*{_STATUS}\s*)*$"
"""What ``status`` accepts: a comma list of statuses, blanks around items ignored (checked in
the route, with a message naming the unknown values; the pattern documents it)."""
EVENTS_PAGE = 1000
"""Events per page of a job's history, unless ``limit`` says otherwise."""
MAX_EVENTS_PAGE = 10_000
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 404, 409, 413, 422, 503)
}


_INSTANT = "RFC 3339 date-time with an offset, e.g. 2026-12-07T10:00:00Z"


def rfc3339(value: str) -> datetime | None:
    """``value`` as an aware datetime when it is an RFC 3339 date-time (a date, a time and an
    offset); None otherwise."""
    text = value.strip()
    if len(text) < 20 or text[10] not in "Tt ":
        return None
    try:
        parsed = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _service(request: Request) -> JobService:
    service: JobService = request.app.state.service
    return service


def _json(model: JobOut | BatchOut, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        model.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )


@router.post(
    "/jobs",
    status_code=201,
    response_model=JobOut,
    responses={
        200: {
            "model": JobOut,
            "description": "A repeat of an Idempotency-Key: the job first submitted with it",
        },
        **_ERRORS,
    },
    summary="Submit a job",
)
async def submit_job(
    body: JobIn,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    request.app.state.submits.admit(principal(request).name)
    submitted = await _service(request).submit(
        body, actor(request), idempotency_key, client_address=origin(request)["client_address"]
    )
    job = JobOut.of(submitted.state)
    if submitted.created:
        request.app.state.metrics.submitted.labels(job.type, job.priority).inc()
    return _json(job, 201 if submitted.created else 200, {"Location": f"/api/v1/jobs/{job.id}"})


@router.post(
    "/jobs/batch",
    status_code=201,
    response_model=BatchOut,
    responses={
        200: {
            "model": BatchOut,
            "description": "A repeat of an Idempotency-Key: every job was written before",
        },
        **_ERRORS,
    },
    summary="Submit up to 1,000 jobs (all validated before any is written)",
)
async def submit_batch(
    body: BatchIn,
    request: Request,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    request.app.state.submits.admit(principal(request).name, len(body.jobs))
    batch = await _service(request).submit_batch(
        body.jobs, actor(request), idempotency_key, client_address=origin(request)["client_address"]
    )
    counter = request.app.state.metrics.submitted
    for s in batch.created:
        counter.labels(s.type, s.priority).inc()
    out = BatchOut(items=[JobOut.of(s) for s in batch.states])
    return _json(out, 201 if batch.created else 200)


@router.get("/jobs", response_model=JobList, responses=_ERRORS, summary="List jobs, newest first")
async def list_jobs(
    request: Request,
    status: Annotated[
        str | None,
        Query(description="comma list of statuses", json_schema_extra={"pattern": STATUS_LIST}),
    ] = None,
    priority: Priority | None = None,
    type: Annotated[str | None, Query(max_length=200, pattern=PRINTABLE)] = None,
    q: Annotated[
        str | None,
        Query(
            max_length=200,
            pattern=PRINTABLE,
            description="an id prefix, or text inside the payload or the error (at least three"
            " letters or digits in a row; a shorter q matches id prefixes only)",
        ),
    ] = None,
    worker: Annotated[
        str | None,
        Query(max_length=200, pattern=PRINTABLE, description="worker of the current/last attempt"),
    ] = None,
    created_after: Annotated[str | None, Query(max_length=64, description=_INSTANT)] = None,
    created_before: Annotated[str | None, Query(max_length=64, description=_INSTANT)] = None,
    finished_after: Annotated[str | None, Query(max_length=64, description=_INSTANT)] = None,
    finished_before: Annotated[str | None, Query(max_length=64, description=_INSTANT)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[
        str | None,
        Query(
            max_length=64,
            description="the next_cursor of the previous page",
            json_schema_extra={"pattern": f"^{JOB_ID.pattern}$"},
        ),
    ] = None,
) -> Response:
    statuses = [s.strip() for s in status.split(",") if s.strip()] if status else []
    unknown = [s for s in statuses if s not in STATUSES]
    if unknown:
        allowed = ", ".join(STATUSES)
        return problem(
            422,
            f"status: unknown value(s) {', '.join(unknown)}; allowed: {allowed}",
            [{"field": "status", "message": f"allowed: {allowed}", "value": ",".join(unknown)}],
        )
    if cursor is not None and not is_job_id(cursor):
        return problem(
            422,
            f"cursor: {cursor!r} is not a cursor returned by this endpoint",
            [{"field": "cursor", "message": "invalid cursor", "value": cursor}],
        )
    times = {
        "created_after": created_after,
        "created_before": created_before,
        "finished_after": finished_after,
        "finished_before": finished_before,
    }
    instants: dict[str, datetime] = {}
    for name, value in times.items():
        if value is None:
            continue
        instant = rfc3339(value)
        if instant is None:
            return problem(
                422,
                f"{name}: {value[:64]!r} is not an RFC 3339 time with an offset,"
                " e.g. 2026-12-07T10:00:00Z",
                [{"field": name, "message": "RFC 3339 date-time with offset", "value": value}],
            )
        instants[name] = instant
    flt = JobFilter(statuses, priority, type, q, worker, **instants)
    page = await _service(request).list_jobs(flt, limit, cursor)
    out = JobList(items=[JobOut.of(s) for s in page.items], next_cursor=page.next_cursor)
    return Response(out.model_dump_json(), media_type="application/json")


@router.get("/jobs/{job_id}", response_model=JobOut, responses=_ERRORS, summary="One job")
async def get_job(
    job_id: str,
    request: Request,
    as_of: Annotated[
        str | None,
        Query(
            max_length=64,
            description="an RFC 3339 date-time with an offset: the job as it was then, folded"
            " from the log (a deleted job's too, before its delete)",
            examples=["2026-12-07T10:00:00Z"],
        ),
    ] = None,
) -> Response:
    if as_of is None:
        return _json(JobOut.of(await _service(request).get(job_id)), 200)
    try:
        when = parse_instant(as_of)
    except ValueError as e:
        return problem(
            422,
            f"as_of: {as_of!r} {e}",
            [{"field": "as_of", "message": str(e), "value": as_of}],
        )
    return _json(JobOut.of(await _service(request).as_of(job_id, when)), 200)


@router.get(
    "/jobs/{job_id}/events",
    response_model=EventList,
    responses=_ERRORS,
    summary="The job's history from the log (also after delete), a page at a time",
)
async def job_events(
    job_id: str,
    request: Request,
    after_seq: Annotated[
        int, Query(ge=0, le=2**63, description="only events after this sequence")
    ] = 0,
    limit: Annotated[int, Query(ge=1, le=MAX_EVENTS_PAGE)] = EVENTS_PAGE,
) -> EventList:
    events = await _service(request).history(job_id, after_seq, limit + 1)
    more = len(events) > limit
    events = events[:limit]
    return EventList(
        next=events[-1].seq if more else None,
        items=[
            EventOut(
                seq=e.seq,
                job_id=e.event.job_id,
                type=e.event.name,
                at=e.event.at,
                actor=e.event.actor,
                data=_data(e.event),
            )
            for e in events
        ],
    )


def _data(event: object) -> dict[str, object]:
    data: dict[str, object] = msgspec.to_builtins(event)["data"]
    return data


@router.post(
    "/jobs/{job_id}/stop",
    status_code=202,
    response_model=JobOut,
    responses=_ERRORS,
    summary="Stop a pending or running job",
)
async def stop_job(job_id: str, request: Request, body: ReasonIn | None = None) -> Response:
    state = await _service(request).stop(job_id, origin(request, body))
    return _json(JobOut.of(state), 202)


@router.post(
    "/jobs/{job_id}/restart",
    status_code=202,
    response_model=JobOut,
    responses=_ERRORS,
    summary="Restart a failed or stopped job",
)
async def restart_job(job_id: str, request: Request, body: ReasonIn | None = None) -> Response:
    state = await _service(request).restart(job_id, origin(request, body))
    return _json(JobOut.of(state), 202)


@router.delete(
    "/jobs/{job_id}",
    status_code=204,
    responses=_ERRORS,
    summary="Delete a finished job (its history stays in the log)",
)
async def delete_job(job_id: str, request: Request, body: ReasonIn | None = None) -> Response:
    await _service(request).delete(job_id, origin(request, body))
    return Response(status_code=204)


@router.get("/stats", response_model=Stats, responses=_ERRORS, summary="Counts and queue depth")
async def stats(request: Request) -> Stats:
    service = _service(request)
    counts = await service.reads.counts()
    by_status: dict[str, int] = dict.fromkeys(STATUSES, 0)
    by_priority = {"high": 0, "regular": 0}
    for status, priority, n in counts:
        by_status[status] = by_status.get(status, 0) + n
        by_priority[priority] = by_priority.get(priority, 0) + n
    depth = await service.queue_depth()
    completed = await service.reads.completed_since(60)
    lag = await service.projector_lag()
    now = datetime.now(UTC)
    metrics = request.app.state.metrics
    for priority, (pending, _) in depth.items():
        metrics.queue_depth.labels(priority).set(pending)
    return Stats(
        by_status=by_status,
        by_priority=by_priority,
        total=sum(by_status.values()),
        queue_depth={p: QueueDepth(pending=a, in_flight=b) for p, (a, b) in depth.items()},
        throughput={"completed_last_minute": completed, "per_second": round(completed / 60, 2)},
        projector_lag=lag,
        oldest_pending_age_s=await statsview.oldest_pending_age_s(service.reads, now),
        per_minute=await statsview.per_minute(service.reads, now),
        run_time_s=await statsview.run_times(service.reads, now),
    )


@router.get("/workers", response_model=WorkerList, responses=_ERRORS, summary="Live workers")
async def workers(request: Request) -> WorkerList:
    ttl = request.app.state.settings.worker_ttl_s
    now = datetime.now(UTC)
    found = await _service(request).workers(ttl)
    return WorkerList(
        items=[
            WorkerOut(
                id=w.id,
                host=w.host,
                pid=w.pid,
                started_at=w.started_at,
                last_heartbeat_at=w.last_heartbeat_at,
                heartbeat_age_s=round((now - w.last_heartbeat_at).total_seconds(), 3),
                concurrency=w.concurrency,
                running_job_ids=w.running,
                stopping=w.stopping,
                types=w.types,
            )
            for w in found
        ]
    )


@router.get(
    "/types",
    response_model=TypeList,
    response_model_by_alias=True,
    responses=_ERRORS,
    summary="Job types, with their payload schemas and the live workers that run them",
)
async def types(request: Request) -> TypeList:
    found = await _service(request).types.listing()
    return TypeList(items=[TypeOut.model_validate(t) for t in found])


@router.get(
    "/whoami",
    response_model=WhoAmI,
    summary="The caller: its token's name and role (anonymous, operate with auth off)",
)
async def whoami(request: Request) -> WhoAmI:
    found = principal(request)
    return WhoAmI(name=found.name, role=found.role)


@system_router.get("/healthz", response_model=Health, summary="Liveness")
async def healthz() -> Health:
    return Health(status="ok", checks={})


@system_router.get(
    "/readyz",
    response_model=Health,
    responses={503: {"model": Health}},
    summary="Readiness: NATS and PostgreSQL reachable",
)
async def readyz(request: Request) -> JSONResponse:
    checks = {"nats": "ok", "postgres": "ok"}
    if not request.app.state.nc.is_connected:
        checks["nats"] = "disconnected"
    try:
        await _service(request).reads.ping()
    except Exception as e:
        checks["postgres"] = f"unavailable: {type(e).__name__}"
    ok = all(v == "ok" for v in checks.values())
    body = Health(status="ok" if ok else "unavailable", checks=checks)
    return JSONResponse(body.model_dump(), status_code=200 if ok else 503)


@system_router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    return Response(
        generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST
    )
