"""An old version of an event, published raw into the real log, is read upcast by every
reader: the projector (the read model's row), the API (the job, its history, GET /events)
and ``conveyor export``; the log itself keeps the old bytes. The change is the hypothetical
one of libs/events/tests/test_upcast.py (``job.progressed`` version 1 stored ``fraction`` and
``note``), registered while the test runs; without it the same message is poison."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client

from conveyor_api import logroutes, problems
from conveyor_api.routes import router
from conveyor_api.service import JobService
from conveyor_api.types import TypeCatalog
from conveyor_bus import DirectGetter, JetStreamEventStore
from conveyor_bus.logwindow import Window
from conveyor_bus.reader import last_event_sequence
from conveyor_cli import export as export_cli
from conveyor_db import ReadModel
from conveyor_events import encode_event, names, subject_of
from conveyor_events import testing as ev
from conveyor_events.poison import Poison, read_event
from conveyor_events.upcast import UPCASTERS, Doc
from conveyor_projector.projector import Projector

pytestmark = pytest.mark.integration

JOB = "01KVPCAST00000000000000001"


def fraction_to_percent(doc: Doc) -> Doc:
    data = doc["data"]
    data["progress"] = data.pop("fraction") * 100
    data["message"] = data.pop("note", None)
    return doc


@pytest.fixture
def evolved() -> Iterator[None]:
    with UPCASTERS.extended("job.progressed", fraction_to_percent):
        yield


async def publish(nc: Client, subject: str, data: bytes) -> int:
    ack = json.loads((await nc.request(subject, data, timeout=5)).data)
    assert "error" not in ack, ack
    seq: int = ack["seq"]
    return seq


async def test_an_old_event_in_the_log_is_read_upcast_everywhere(
    nc: Client, pool: asyncpg.Pool, evolved: None
) -> None:
    t0 = datetime.now(UTC) - timedelta(seconds=10)
    for event in (
        ev.submitted(job=JOB, at=t0),
        ev.started(job=JOB, at=t0 + timedelta(seconds=1)),
        ev.progressed(1, 20, "a fifth", job=JOB, at=t0 + timedelta(seconds=2)),  # version 2
    ):
        await publish(nc, subject_of(event, "regular"), encode_event(event))
    old = {
        "type": "job.progressed",
        "job_id": JOB,
        "at": (t0 + timedelta(seconds=3)).isoformat(),
        "actor": ev.WORKER,
        "data": {"attempt": 1, "fraction": 0.4, "note": "half way"},
    }
    raw = json.dumps(old).encode()
    seq = await publish(nc, names.event_subject(JOB, "job.progressed"), raw)
    upcast = {"attempt": 1, "progress": 40.0, "message": "half way"}

    projector = Projector(nc, pool)
    await projector.catch_up(await last_event_sequence(DirectGetter(nc)))
    row = await ReadModel(pool).get(JOB)
    assert row is not None
    assert (row.progress, row.message, row.version) == (40.0, "half way", 4)

    store = JetStreamEventStore(nc)

    async def nothing(job_id: str) -> None:
        return None

    async def no_depth() -> dict[str, tuple[int, int]]:
        return {}

    app = FastAPI()
    problems.install(app)
    app.include_router(router, prefix="/api/v1")
    app.include_router(logroutes.router, prefix="/api/v1")
    app.state.service = JobService(
        store, ReadModel(pool), nothing, no_depth, TypeCatalog(store.getter, 15)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as api:
        job = (await api.get(f"/api/v1/jobs/{JOB}")).json()
        got = await api.get(f"/api/v1/jobs/{JOB}/events")
        assert got.status_code == 200, got.text
        history = got.json()["items"]
        log = (await api.get("/api/v1/events", params={"type": "job.progressed"})).json()
    assert (job["progress"], job["message"]) == (40.0, "half way")
    assert (history[-1]["seq"], history[-1]["data"]) == (seq, upcast)
    assert [(e["seq"], e["data"]["progress"]) for e in log["items"]] == [(seq - 1, 20.0), (seq, 40)]

    out = io.BytesIO()
    await export_cli.export(nc, Window(job_id=JOB), out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    assert lines[-1] == {"seq": seq, **{k: v for k, v in old.items() if k != "data"}} | {
        "at": lines[-1]["at"],
        "data": upcast,
    }
    assert "v" not in lines[-1]  # the public shape has no version

    stored = await DirectGetter(nc).batch(names.STREAM, {"seq": seq})
    assert stored[0].data == raw  # the log is not rewritten


def test_without_its_upcaster_the_old_event_is_poison() -> None:
    old = {
        "type": "job.progressed",
        "job_id": JOB,
        "at": "2026-12-07T10:00:00Z",
        "actor": ev.WORKER,
        "data": {"attempt": 1, "fraction": 0.4},
    }
    found = read_event(names.event_subject(JOB, "job.progressed"), json.dumps(old).encode())
    assert isinstance(found, Poison) and found.kind == "invalid"
