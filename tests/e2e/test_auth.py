"""Bearer tokens through the real services (SPEC §4, issue 12): an API and a notifier with
three tokens (``alice`` operate and ``dash`` read from ``CONVEYOR_TOKENS``, ``bulk`` operate
from ``CONVEYOR_TOKENS_FILE``). Without a token or with a wrong one every route but the probes,
the metrics and the pages is 401; a read token reads and watches but every write is 403 with
nothing written; an operate token acts and the events name it; the feed closes 4401 without a
token and refuses another site's page; submissions past a token's burst are 429; the CLI sends
``CONVEYOR_TOKEN``; no secret reaches any service's log.

"Nothing written" is checked on the event log: its last sequence does not move.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from nats.aio.client import Client
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin, Subprotocol

from conveyor_events import names
from support.system import System

pytestmark = pytest.mark.e2e

ALICE = "alice-operate-Zq3x9VbN2mK7pL4w"
DASH = "dash-read-Hs8dJ2fK5lQ9rT1y"
BULK = "bulk-operate-Pw6eR3tY8uI1oA5s"
SECRETS = (ALICE, DASH, BULK)
PROBLEM = "application/problem+json"
FAR = "2999-01-01T00:00:00Z"  # a job held pending, so a stop really changes it
BURST = 10


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    secrets = tmp_path_factory.mktemp("secrets") / "tokens"
    secrets.write_text(f"# a mounted secret\nbulk operate {BULK}\n")
    env = {
        "CONVEYOR_TOKENS": f"alice:operate:{ALICE},dash:read:{DASH}",
        "CONVEYOR_TOKENS_FILE": str(secrets),
        "CONVEYOR_TOKEN": DASH,  # what the readiness wait and the CLI send
        "CONVEYOR_SUBMIT_RATE": "2",
        "CONVEYOR_SUBMIT_BURST": str(BURST),
        "CONVEYOR_LOG_LEVEL": "debug",  # no secret in any log, even at debug
    }
    with System(nats_url, database_url, tmp_path_factory.mktemp("logs"), env=env) as s:
        yield s


def client(system: System, token: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.Client(base_url=system.api_url, headers=headers, timeout=15)


async def log_end(nc: Client) -> int:
    info = await nc.jetstream().stream_info(names.STREAM)
    return int(info.state.last_seq)


def pending_job(system: System) -> str:
    with client(system, ALICE) as alice:
        response = alice.post("/api/v1/jobs", json={"type": "noop", "run_at": FAR})
    assert response.status_code == 201, response.text
    job_id: str = response.json()["id"]
    return job_id


def assert_problem(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert not any(secret in response.text for secret in SECRETS)
    return problem


async def test_without_a_token_or_with_a_wrong_one_every_route_is_401(
    system: System, nc: Client
) -> None:
    job_id = pending_job(system)
    before = await log_end(nc)
    wrong = [
        {},
        {"Authorization": "Bearer not-a-configured-token-at-all"},
        {"Authorization": f"Bearer {ALICE}x"},
        {"Authorization": f"Basic {ALICE}"},
        {"Authorization": "Bearer"},
    ]
    requests = [
        ("GET", "/api/v1/jobs", None),
        ("GET", f"/api/v1/jobs/{job_id}/events", None),
        ("GET", "/api/v1/workers", None),
        ("POST", "/api/v1/jobs", {"type": "noop"}),
        ("POST", f"/api/v1/jobs/{job_id}/stop", None),
        ("DELETE", f"/api/v1/jobs/{job_id}", None),
        ("POST", "/api/v1/schedules", {"name": "n", "cron": "* * * * *", "job": {"type": "noop"}}),
    ]
    with client(system, None) as anyone:
        for headers in wrong:
            for method, path, body in requests:
                response = anyone.request(method, path, json=body, headers=headers)
                assert_problem(response, 401)
                assert response.headers["www-authenticate"].startswith("Bearer")
    assert await log_end(nc) == before, "a refused write reached the log"
    with client(system, ALICE) as alice:
        assert alice.get(f"/api/v1/jobs/{job_id}").json()["status"] == "pending"


def test_probes_metrics_and_the_pages_need_no_token(system: System) -> None:
    with client(system, None) as anyone:
        for path in ("/healthz", "/readyz", "/metrics", "/api/v1/healthz", "/api/v1/readyz"):
            assert anyone.get(path).status_code == 200, path
        page = anyone.get("/")
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        assert anyone.get("/dashboard/app.js").status_code == 200
        assert anyone.get("/docs").status_code == 200
        document = anyone.get("/openapi.json").json()
        assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
        assert "401" in document["paths"]["/api/v1/jobs"]["get"]["responses"]
        assert "429" in document["paths"]["/api/v1/jobs"]["post"]["responses"]


async def test_a_read_token_reads_but_every_write_is_403(system: System, nc: Client) -> None:
    job_id = pending_job(system)
    with client(system, DASH) as dash:
        for path in (
            "/api/v1/jobs",
            f"/api/v1/jobs/{job_id}",
            f"/api/v1/jobs/{job_id}/events",
            "/api/v1/stats",
            "/api/v1/workers",
            "/api/v1/types",
            "/api/v1/schedules",
        ):
            assert dash.get(path).status_code == 200, path
        before = await log_end(nc)
        writes = [
            ("POST", "/api/v1/jobs", {"type": "noop"}),
            ("POST", "/api/v1/jobs/batch", {"jobs": [{"type": "noop"}]}),
            ("POST", f"/api/v1/jobs/{job_id}/stop", None),
            ("POST", f"/api/v1/jobs/{job_id}/restart", None),
            ("DELETE", f"/api/v1/jobs/{job_id}", None),
            (
                "POST",
                "/api/v1/schedules",
                {"name": "nightly", "cron": "0 3 * * *", "job": {"type": "noop"}},
            ),
            ("PATCH", "/api/v1/schedules/nightly", {"enabled": False}),
            ("DELETE", "/api/v1/schedules/nightly", None),
        ]
        for method, path, body in writes:
            problem = assert_problem(dash.request(method, path, json=body), 403)
            assert "'dash'" in problem["detail"] and "operate" in problem["detail"]
        assert await log_end(nc) == before, "a refused write reached the log"
        assert dash.get(f"/api/v1/jobs/{job_id}").json()["status"] == "pending"
        assert dash.get("/api/v1/schedules").json()["items"] == []


def test_an_operate_token_acts_and_the_events_name_it(system: System) -> None:
    with client(system, ALICE) as alice:
        submitted = alice.post("/api/v1/jobs", json={"type": "noop", "run_at": FAR})
        assert submitted.status_code == 201, submitted.text
        job_id = submitted.json()["id"]
        stopped = alice.post(
            f"/api/v1/jobs/{job_id}/stop",
            json={"reason": "duplicate of another job"},
            headers={"X-Request-Id": "alice-stop-1"},
        )
        assert stopped.status_code == 202 and stopped.json()["status"] == "stopped"
        assert alice.request("DELETE", f"/api/v1/jobs/{job_id}", json={}).status_code == 204
        events = alice.get(f"/api/v1/jobs/{job_id}/events").json()["items"]
    assert [(e["type"], e["actor"], e["data"]["reason"]) for e in events] == [
        ("job.submitted", "user:alice", None),
        ("job.stopped", "user:alice", "duplicate of another job"),
        ("job.deleted", "user:alice", None),
    ]
    assert events[1]["data"]["request_id"] == "alice-stop-1"
    assert all(e["data"]["client_address"] == "127.0.0.1" for e in events)
    assert all(e["data"]["request_id"] for e in events)
    with client(system, BULK) as bulk:  # a token of the file
        created = bulk.post("/api/v1/jobs", json={"type": "noop"})
        assert created.status_code == 201, created.text
        events = bulk.get(f"/api/v1/jobs/{created.json()['id']}/events").json()["items"]
    assert events[0]["type"] == "job.submitted" and events[0]["actor"] == "user:bulk"


async def _closed_with(url: str, **connect: Any) -> int:
    async with websockets.connect(url, **connect) as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None
    assert not any(secret in closed.value.rcvd.reason for secret in SECRETS)
    return closed.value.rcvd.code


async def _first_event(url: str, **connect: Any) -> dict[str, Any]:
    async with websockets.connect(url, **connect) as ws:
        event: dict[str, Any] = json.loads(await asyncio.wait_for(ws.recv(), 10))
        if connect.get("subprotocols"):
            assert ws.subprotocol == connect["subprotocols"][0]  # echoed
    return event


async def test_the_feed_needs_a_token_and_a_read_token_watches(system: System) -> None:
    pending_job(system)
    feed = f"{system.ws_url}?since=0"
    assert await _closed_with(feed) == 4401
    assert await _closed_with(f"{feed}&token=not-a-configured-token-at-all") == 4401
    assert await _closed_with(feed, subprotocols=[Subprotocol("bearer.wrong-wrong-wrong")]) == 4401
    assert await _closed_with(feed, additional_headers={"Authorization": f"Bearer {BULK}x"}) == 4401
    seen = [
        await _first_event(f"{feed}&token={DASH}"),
        await _first_event(feed, subprotocols=[Subprotocol(f"bearer.{DASH}")]),
        await _first_event(feed, additional_headers={"Authorization": f"Bearer {ALICE}"}),
    ]
    assert all(e == seen[0] for e in seen) and seen[0]["type"] == "job.submitted", seen
    refused = system.metric("notifier", "conveyor_ws_refused_total", reason="token")
    assert refused >= 4


async def test_another_sites_page_cannot_open_the_feed_even_with_a_token(system: System) -> None:
    with pytest.raises(InvalidStatus) as refused:
        await websockets.connect(
            f"{system.ws_url}?since=0&token={DASH}", origin=Origin("https://evil.example")
        )
    assert refused.value.response.status_code == 403
    dashboard = Origin(system.api_url)
    event = await _first_event(f"{system.ws_url}?since=0&token={DASH}", origin=dashboard)
    assert event["type"] == "job.submitted"


async def test_submissions_past_a_tokens_burst_are_429(system: System, nc: Client) -> None:
    await asyncio.sleep(1)  # bulk's bucket full again after its job of the test above
    with client(system, BULK) as bulk, client(system, ALICE) as alice:
        jobs = [{"type": "noop", "run_at": FAR} for _ in range(BURST)]  # the log stays still
        response = bulk.post("/api/v1/jobs/batch", json={"jobs": jobs})  # the whole burst
        assert response.status_code == 201, response.text
        before = await log_end(nc)
        for method, path, body in [
            ("POST", "/api/v1/jobs", {"type": "noop"}),
            ("POST", "/api/v1/jobs/batch", {"jobs": [{"type": "noop"}]}),
        ]:
            response = bulk.request(method, path, json=body)
            problem = assert_problem(response, 429)
            assert int(response.headers["retry-after"]) >= 1
            assert "submit_rate" in problem["detail"]
        assert await log_end(nc) == before, "a refused submission reached the log"
        assert bulk.get("/api/v1/jobs").status_code == 200  # reads are not limited
        assert alice.post("/api/v1/jobs", json={"type": "noop"}).status_code == 201  # own bucket
        await asyncio.sleep(float(response.headers["retry-after"]))
        assert bulk.post("/api/v1/jobs", json={"type": "noop"}).status_code == 201


def _cli(system: System, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "conveyor_cli.main", *args],
        env={
            **system.env,
            "CONVEYOR_API_URL": system.api_url,
            "CONVEYOR_NOTIFIER_URL": system.ws_url,
            **env,
        },
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_the_cli_sends_conveyor_token(system: System) -> None:
    done = _cli(system, "submit", "noop", "--wait", CONVEYOR_TOKEN=ALICE)
    assert done.returncode == 0, done.stdout + done.stderr
    job_id = done.stdout.split()[0]
    history = _cli(system, "history", job_id, "--json", CONVEYOR_TOKEN=DASH)
    assert history.returncode == 0, history.stderr
    assert json.loads(history.stdout.splitlines()[0])["actor"] == "user:alice"
    read_only = _cli(system, "submit", "noop", CONVEYOR_TOKEN=DASH)
    assert read_only.returncode == 1 and "403" in read_only.stderr
    nobody = _cli(system, "list", CONVEYOR_TOKEN="")
    assert nobody.returncode == 1 and "401" in nobody.stderr and "CONVEYOR_TOKEN" in nobody.stderr
    for out in (done, history, read_only, nobody):
        assert not any(secret in out.stdout + out.stderr for secret in SECRETS)


def test_no_secret_reaches_any_log(system: System) -> None:
    """Last in the module: every request above, refused or not, has been logged or not."""
    assert "auth on: 3 bearer tokens (alice, dash, bulk)" in system.log("api")
    names_ = [Path(p).stem for p in os.listdir(system.log_dir)]
    assert {"api", "notifier", "projector", "worker-1", "worker-2"} <= set(names_)
    for name in names_:
        text = system.log(name)
        for secret in SECRETS:
            assert secret not in text, f"a token's secret is in the log of {name}"
