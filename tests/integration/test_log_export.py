"""``conveyor export`` and ``GET /api/v1/events`` against a real log (support/eventlog.py):
what they give equals the log read whole (count, sequences, shape), with every filter and
time window, a deleted job included, the poison left out and said so; the endpoint's pages
walked to the end; its 422s; the CLI once as a process. Both read windows of the log
(conveyor_bus.logwindow), a direct get with ``start_time`` pinned first."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client

from conveyor_api import auth, logroutes, problems
from conveyor_bus import DirectGetter, JetStreamEventStore
from conveyor_bus.logwindow import LogWindows, Window, nanos
from conveyor_bus.tokens import Tokens
from conveyor_cli import export as export_cli
from conveyor_cli.main import main as conveyor_main
from conveyor_events import names
from support.eventlog import DONE, GONE, RETRIED, EventLog, public, write_event_log
from support.sync import run_sync

pytestmark = pytest.mark.integration

READ = "read-token-0123456789abcdef"


@pytest.fixture(scope="module")
def log(nats_url: str) -> EventLog:
    return run_sync(write_event_log(nats_url))


async def exported(nc: Client, **window: Any) -> tuple[list[dict[str, Any]], export_cli.Summary]:
    out = io.BytesIO()
    summary = await export_cli.export(nc, Window(**window), out)
    return [json.loads(line) for line in out.getvalue().splitlines()], summary


# -- the server's behaviour the reads rely on ---------------------------------------------


async def test_fact_direct_get_by_start_time(nc: Client, log: EventLog) -> None:
    """A direct get with ``start_time`` answers the first message stored at or after it (to
    the nanosecond), nothing past the last one; past 2262 the server's int64 nanoseconds wrap
    round to the first message (so logwindow treats such a time as after everything)."""
    getter = DirectGetter(nc)
    third = log.messages[2]
    for t, want in [
        (third.stored_at, third.seq),  # stored_at is cut to the microsecond: <= stored
        (datetime(2000, 1, 1, tzinfo=UTC), log.messages[0].seq),
    ]:
        request = {"start_time": nanos(t), "next_by_subj": names.EVENTS_ALL}
        got = await getter.batch(names.STREAM, request)
        assert [m.seq for m in got] == [want]
    future = {"start_time": nanos(datetime.now(UTC) + timedelta(days=1))}
    assert await getter.batch(names.STREAM, {**future, "next_by_subj": names.EVENTS_ALL}) == []
    wrapped = {"start_time": "2999-01-01T00:00:00.000000000Z", "next_by_subj": names.EVENTS_ALL}
    assert [m.seq for m in await getter.batch(names.STREAM, wrapped)] == [log.messages[0].seq]
    batch = {"start_time": nanos(third.stored_at), "next_by_subj": names.EVENTS_ALL, "batch": 2}
    assert [m.seq for m in await getter.batch(names.STREAM, batch)] == [
        m.seq for m in log.messages[2:4]
    ]


# -- conveyor export ----------------------------------------------------------------------


async def test_export_is_the_whole_log_in_order_without_the_poison(
    nc: Client, log: EventLog
) -> None:
    lines, summary = await exported(nc)

    assert [line["seq"] for line in lines] == log.select()
    assert lines == [public(m.seq, m.event) for m in log.events if m.event is not None]
    assert summary.exported == len(log.events) == 16
    assert summary.skipped == [m.seq for m in log.messages if m.event is None]
    assert {line["job_id"] for line in lines} == {DONE, GONE, RETRIED}
    assert set(lines[0]) == {"seq", "job_id", "type", "at", "actor", "data"}


@pytest.mark.parametrize(
    "window",
    [
        {"job": GONE},
        {"job": RETRIED},
        {"types": ("job.submitted",)},  # high, regular and due-later subjects
        {"types": ("job.failed",)},  # a retry at once, a retry later, the last
        {"types": ("job.deleted", "job.stopped")},
        {"types": ("job.started",), "job": RETRIED},
        {"job": "01KEXPRT000000000000000999"},
    ],
    ids=str,
)
async def test_export_by_job_and_type(nc: Client, log: EventLog, window: dict[str, Any]) -> None:
    job = window.get("job")
    lines, _ = await exported(nc, job_id=job, types=window.get("types", ()))

    assert [line["seq"] for line in lines] == log.select(job, window.get("types", ()))
    if job == GONE:
        assert lines[-1]["type"] == "job.deleted"  # a deleted job's history is all there


async def test_export_time_windows(nc: Client, log: EventLog) -> None:
    events = log.events
    cases = [
        (events[3].stored_at, None),
        (None, events[5].stored_at),
        (events[4].stored_at, events[9].stored_at),
        (events[7].stored_at, events[7].stored_at + timedelta(microseconds=1)),
        (events[-1].stored_at + timedelta(seconds=1), None),
        (None, events[0].stored_at - timedelta(seconds=1)),
        (datetime(1900, 1, 1, tzinfo=UTC), datetime(2999, 1, 1, tzinfo=UTC)),
    ]
    for since, until in cases:
        lines, _ = await exported(nc, since=since, until=until)
        assert [line["seq"] for line in lines] == log.select(since=since, until=until), (
            since,
            until,
        )
    job_window = await exported(
        nc, job_id=RETRIED, types=("job.failed",), since=events[9].stored_at
    )
    assert [line["seq"] for line in job_window[0]] == log.select(
        RETRIED, ("job.failed",), since=events[9].stored_at
    )


async def test_a_window_starts_where_since_is_not_at_the_log_start(
    nc: Client, log: EventLog
) -> None:
    """``since`` is a position found by the server: the read starts there."""
    windows = LogWindows(nc)
    since = log.events[10].stored_at
    span = await windows.span(Window(since=since))
    assert span.first == log.events[10].seq
    assert span.last is None  # to the end of the log


def test_the_cli_exports_to_a_file_and_refuses_bad_arguments(
    nats_url: str,
    log: EventLog,
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "gone.jsonl"
    env = {**os.environ, "NATS_URL": nats_url}
    cli = [sys.executable, "-m", "conveyor_cli.main", "export"]
    done = subprocess.run(
        [*cli, "--job", GONE, "--type", "job.submitted,job.deleted", "-o", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # no terminal: no progress bar, no summary
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == log.select(GONE, ("job.submitted", "job.deleted"))
    monkeypatch.setenv("NATS_URL", nats_url)
    with pytest.raises(SystemExit) as exit_:
        conveyor_main(["export"])  # to stdout, in this process
    assert exit_.value.code == 0
    everything = capfd.readouterr()
    assert len(everything.out.splitlines()) == len(log.events)
    assert "skipped seq" in everything.err and "undecodable" in everything.err
    assert "skipped 1 messages that are no readable event" in everything.err

    for bad, says in [
        (["--since", "yesterday"], "not an RFC 3339 time"),
        (["--until", "2026-12-07T10:00:00"], "with a UTC offset"),
        (["--type", "job.bogus"], "unknown event type 'job.bogus'"),
        (["--job", "a.b"], "is not a job id"),
    ]:
        with pytest.raises(SystemExit) as exit_:
            conveyor_main(["export", *bad])
        assert exit_.value.code == 2
        assert says in capfd.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        conveyor_main(
            ["export", "--since", "2026-12-07T11:00:00Z", "--until", "2026-12-07T10:00:00Z"]
        )
    assert exit_.value.code == 2
    assert "--since is after --until" in capfd.readouterr().err


# -- GET /api/v1/events -------------------------------------------------------------------


@pytest.fixture
async def api(nc: Client) -> AsyncIterator[httpx.AsyncClient]:
    """The events route as create_app mounts it, behind the real token check."""
    app = FastAPI()
    problems.install(app)
    app.include_router(logroutes.router, prefix="/api/v1")
    app.add_middleware(auth.Auth, tokens=Tokens([("dash", "read", READ)]))
    app.state.service = SimpleNamespace(store=JetStreamEventStore(nc))
    transport = httpx.ASGITransport(app=app)
    headers = {"Authorization": f"Bearer {READ}"}
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", headers=headers
    ) as http:
        yield http


async def walk(api: httpx.AsyncClient, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Every page from the start; the items and the number of pages."""
    items: list[dict[str, Any]] = []
    after, pages = 0, 0
    while True:
        response = await api.get("/api/v1/events", params={**params, "after_seq": after})
        assert response.status_code == 200, response.text
        page = response.json()
        pages += 1
        items += page["items"]
        assert len(page["items"]) <= params.get("limit", 1000)
        if page["next"] is None:
            return items, pages
        assert page["next"] == page["items"][-1]["seq"]
        after = page["next"]


async def test_events_pages_walk_the_whole_log(api: httpx.AsyncClient, log: EventLog) -> None:
    items, pages = await walk(api, limit=3)

    assert [e["seq"] for e in items] == log.select()
    assert pages == 6  # 16 events, 3 a page: the last page says next null, no empty page
    expected = [public(m.seq, m.event) for m in log.events if m.event is not None]
    assert items == expected
    whole = (await api.get("/api/v1/events")).json()
    assert [e["seq"] for e in whole["items"]] == log.select() and whole["next"] is None


async def test_events_filters_and_windows(api: httpx.AsyncClient, log: EventLog) -> None:
    events = log.events
    since, until = events[4].stored_at, events[12].stored_at
    for params, want in [
        ({"type": "job.failed"}, log.select(types=("job.failed",))),
        (
            {"type": " job.deleted , job.submitted"},
            log.select(types=("job.deleted", "job.submitted")),
        ),
        ({"since": since.isoformat()}, log.select(since=since)),
        ({"until": until.isoformat()}, log.select(until=until)),
        (
            {"since": since.isoformat(), "until": until.isoformat(), "type": "job.started"},
            log.select(types=("job.started",), since=since, until=until),
        ),
        ({"since": "2999-01-01T00:00:00Z"}, []),
        ({"since": "0001-01-01T00:00:00Z"}, log.select()),
        ({"since": since.isoformat().replace("+00:00", " 00:00")}, log.select(since=since)),
        ({"until": "9999-12-31T23:59:59.999999Z"}, log.select()),
        ({"until": "0001-01-01T00:00:01Z"}, []),
    ]:
        items, _ = await walk(api, limit=2, **params)
        assert [e["seq"] for e in items] == want, params


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"since": "yesterday"}, "since"),
        ({"until": "2026-13-01T00:00:00Z"}, "until"),
        ({"since": "2026-12-07T10:00:00"}, "since"),
        ({"until": "0.5"}, "until"),
        ({"since": "2026-12-07"}, "since"),
        ({"since": "0001-01-01T00:00:00+01:00"}, "since"),
        ({"type": "job.bogus"}, "type"),
        ({"type": ","}, "type"),
        ({"type": "job.failed,"}, "type"),
        ({"type": ""}, "type"),
        ({"since": "2026-12-07T11:00:00Z", "until": "2026-12-07T10:00:00Z"}, "since"),
        ({"limit": 0}, "limit"),
        ({"limit": 10_001}, "limit"),
        ({"after_seq": -1}, "after_seq"),
    ],
)
async def test_events_bad_parameters_are_a_422_naming_them(
    api: httpx.AsyncClient, log: EventLog, params: dict[str, Any], field: str
) -> None:
    response = await api.get("/api/v1/events", params=params)

    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]]


async def test_events_need_a_token_and_a_read_token_is_enough(
    api: httpx.AsyncClient, log: EventLog
) -> None:
    assert (await api.get("/api/v1/events", headers={"Authorization": ""})).status_code == 401
    assert (await api.get("/api/v1/events", params={"limit": 1})).status_code == 200
