"""Routes of recurring schedules (``/api/v1/schedules``), and the tick consumer's start.
Thin: parse, call :class:`~conveyor_api.scheduling.Schedules`, shape the response."""

from __future__ import annotations

import re

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from nats.aio.client import Client

from conveyor_api.problems import problem
from conveyor_api.schedule_schemas import (
    NAME,
    ScheduledJobOut,
    ScheduleIn,
    ScheduleList,
    ScheduleOut,
    SchedulePatch,
)
from conveyor_api.scheduling import (
    Schedule,
    ScheduleError,
    ScheduleNotFound,
    Schedules,
)
from conveyor_api.schemas import Problem
from conveyor_api.ticks import TickRunner, tick_counter
from conveyor_api.types import TypeCatalog
from conveyor_bus import JetStreamEventStore
from conveyor_bus.schedules import JetStreamSchedules, TickConsumer
from conveyor_events import CommandHandler

router = APIRouter()
_NAME = re.compile(NAME)
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}}
    for code in (400, 404, 409, 413, 422, 503)
}


def install(app: FastAPI) -> None:
    """The routes under ``/api/v1``, their errors, and the tick counter of ``/metrics``."""
    app.include_router(router, prefix="/api/v1")
    app.state.schedule_ticks = tick_counter(app.state.metrics.registry)

    @app.exception_handler(ScheduleError)
    async def _schedule_error(_: Request, exc: ScheduleError) -> JSONResponse:
        status = 404 if isinstance(exc, ScheduleNotFound) else 409
        return problem(status, str(exc))


def start(app: FastAPI, nc: Client, store: JetStreamEventStore, types: TypeCatalog) -> TickRunner:
    """At start-up (the lifespan): the schedules' service, and this process's tick consumer
    running in the background; ``close()`` it at shutdown."""
    app.state.schedules = Schedules(JetStreamSchedules(nc), types)
    runner = TickRunner(TickConsumer(nc), CommandHandler(store), app.state.schedule_ticks)
    runner.start()
    return runner


def _schedules(request: Request) -> Schedules:
    schedules: Schedules = request.app.state.schedules
    return schedules


def _name(name: str) -> str:
    """A path's name; one that no schedule can have is simply not found."""
    if _NAME.fullmatch(name) is None:
        raise ScheduleNotFound(f"schedule {name!r} not found")
    return name


def _out(s: Schedule) -> ScheduleOut:
    d = s.definition
    job = d.job
    return ScheduleOut(
        name=d.name,
        cron=d.cron,
        timezone=d.timezone,
        job=ScheduledJobOut(
            type=job.type,
            priority=job.priority,
            payload=job.payload,
            max_attempts=job.max_attempts,
            timeout_s=job.timeout_s,
        ),
        enabled=d.enabled,
        next_run_at=s.next_run_at,
        last_run_at=s.last_run_at,
        created_at=d.created_at,
        updated_at=d.updated_at,
    )


def _json(model: ScheduleOut, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(
        model.model_dump_json(), status_code=status, headers=headers, media_type="application/json"
    )


@router.post(
    "/schedules",
    status_code=201,
    response_model=ScheduleOut,
    responses=_ERRORS,
    summary="Create a recurring schedule: one job per tick of its cron",
)
async def create_schedule(body: ScheduleIn, request: Request) -> Response:
    created = await _schedules(request).create(body)
    location = {"Location": f"/api/v1/schedules/{created.definition.name}"}
    return _json(_out(created), 201, location)


@router.get("/schedules", response_model=ScheduleList, responses=_ERRORS, summary="Schedules")
async def list_schedules(request: Request) -> ScheduleList:
    return ScheduleList(items=[_out(s) for s in await _schedules(request).all()])


@router.get(
    "/schedules/{name}", response_model=ScheduleOut, responses=_ERRORS, summary="One schedule"
)
async def get_schedule(name: str, request: Request) -> Response:
    return _json(_out(await _schedules(request).get(_name(name))), 200)


@router.patch(
    "/schedules/{name}",
    response_model=ScheduleOut,
    responses=_ERRORS,
    summary="Change a schedule: {enabled: false} pauses it, {enabled: true} resumes it",
)
async def patch_schedule(name: str, body: SchedulePatch, request: Request) -> Response:
    changed = await _schedules(request).update(_name(name), body)
    return _json(_out(changed), 200)


@router.delete(
    "/schedules/{name}",
    status_code=204,
    responses=_ERRORS,
    summary="Delete a schedule (its jobs stay)",
)
async def delete_schedule(name: str, request: Request) -> Response:
    await _schedules(request).delete(_name(name))
    return Response(status_code=204)
