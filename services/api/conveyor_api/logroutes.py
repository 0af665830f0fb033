"""``GET /api/v1/events``: the event log by sequence, every job's events (deleted jobs'
too), a page at a time, read from the log itself (conveyor_bus.logwindow), not the read
model. A read token may use it (it is a GET)."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Annotated

import msgspec
from fastapi import APIRouter, Query, Request

from conveyor_api.audit import parse_instant
from conveyor_api.problems import problem
from conveyor_api.schemas import EventList, EventOut, Problem
from conveyor_bus.logwindow import LogWindows, Window
from conveyor_events import AnyEvent
from conveyor_events.events import EVENT_TYPES
from conveyor_events.poison import Poison, read_event

log = logging.getLogger("conveyor.api")

router = APIRouter()

PAGE = 1000
"""Events per page unless ``limit`` says otherwise."""
MAX_PAGE = 10_000
_ERRORS: dict[int | str, dict[str, object]] = {
    code: {"model": Problem, "content": {"application/problem+json": {}}} for code in (422, 503)
}
_TYPES = "(" + "|".join(t.replace(".", r"\.") for t in EVENT_TYPES) + ")"
TYPE_LIST = rf"^\s*{_TYPES}\s*(,\s*{_TYPES}\s*)*$"
"""What ``type`` accepts: a comma list of event types (checked in the route, with a message
naming the unknown values; the pattern documents it)."""


def _windows(request: Request) -> LogWindows:
    found: LogWindows | None = getattr(request.app.state, "log_windows", None)
    if found is None:  # one per app, on the store's shared direct-get subscription
        store = request.app.state.service.store
        found = request.app.state.log_windows = LogWindows(store.nc, store.getter)
    return found


@router.get(
    "/events",
    response_model=EventList,
    responses=_ERRORS,
    summary="The event log by sequence, a page at a time (every job, deleted ones too)",
)
async def log_events(
    request: Request,
    after_seq: Annotated[
        int, Query(ge=0, le=2**63, description="only events after this log sequence (`next`)")
    ] = 0,
    since: Annotated[
        str | None,
        Query(
            max_length=64,
            json_schema_extra={"format": "date-time"},
            description="RFC 3339 with an offset: only events the log stored at or after it",
        ),
    ] = None,
    until: Annotated[
        str | None,
        Query(
            max_length=64,
            json_schema_extra={"format": "date-time"},
            description="RFC 3339 with an offset: only events the log stored at or before it",
        ),
    ] = None,
    types_: Annotated[
        str | None,
        Query(
            alias="type",
            max_length=1000,
            json_schema_extra={"pattern": TYPE_LIST},
            description="a comma list of event types, e.g. job.failed,job.stopped",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = PAGE,
) -> object:
    errors: list[tuple[str, str, str | None]] = []
    times: dict[str, datetime | None] = {}
    for name, text in (("since", since), ("until", until)):
        try:
            times[name] = parse_instant(text) if text is not None else None
        except ValueError as e:
            errors.append((name, str(e), text))
    start, end = times.get("since"), times.get("until")
    types = tuple(t.strip() for t in types_.split(",")) if types_ is not None else ()
    unknown = [t for t in types if t not in EVENT_TYPES]
    if unknown:
        allowed = ", ".join(EVENT_TYPES)
        what = ", ".join(map(repr, unknown))
        errors.append(("type", f"unknown event type {what}; known: {allowed}", types_))
    if not errors and start is not None and end is not None and start > end:
        errors.append(("since", f"is after until ({until})", since))
    if errors:
        return problem(
            422,
            "; ".join(f"{f}: {m} (got {v!r})" for f, m, v in errors),
            [{"field": f, "message": m, "value": v} for f, m, v in errors],
        )
    window = Window(types=types, after_seq=after_seq, since=start, until=end)
    windows = _windows(request)
    span = await windows.span(window)
    items: list[EventOut] = []
    more = False
    async for batch in windows.read(window, span, page=min(limit + 1, 1000)):
        for m in batch:
            if len(items) == limit:
                more = True
                break
            found = read_event(m.subject, m.data)
            if isinstance(found, Poison):
                log.warning("GET /events: seq %d is no event (%s): left out", m.seq, found.kind)
                continue
            items.append(_out(m.seq, found))
        if more:
            break
    return EventList(items=items, next=items[-1].seq if more else None)


def _out(seq: int, event: AnyEvent) -> EventOut:
    data: dict[str, object] = msgspec.to_builtins(event)["data"]
    return EventOut(
        seq=seq, job_id=event.job_id, type=event.name, at=event.at, actor=event.actor, data=data
    )
