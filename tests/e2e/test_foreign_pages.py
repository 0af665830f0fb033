"""Requests a browser may not make, through the real API (issue 10, defect 2): another web
page the user visits cannot drive the local system. A rebound DNS name (foreign ``Host``) is
400, a cross-site write (foreign ``Origin``, or a form's Content-Type) is 403 or 415, and
nothing is written; the dashboard and ``/docs`` load only the API's own files, under a
Content-Security-Policy that forbids framing; another site's page cannot open the
notifier's feed (403). Same-origin pages and clients without ``Origin`` (the CLI, curl)
still write and read.

"Nothing written" is checked on the event log: its last sequence does not move.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import websockets
from nats.aio.client import Client
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from conveyor_events import names
from support.system import System

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"
EVIL = "https://evil.example"
FAR = "2999-01-01T00:00:00Z"  # a job held pending, so a stop really changes it
FORM = {"content-type": "application/x-www-form-urlencoded"}
JSON_TYPE = {"content-type": "application/json; charset=utf-8"}


async def log_end(nc: Client) -> int:
    info = await nc.jetstream().stream_info(names.STREAM)
    return int(info.state.last_seq)


async def refused(
    system: System, nc: Client, status: int, method: str, path: str, **request: Any
) -> dict[str, Any]:
    """One request that must be refused with ``status`` as a problem, the log not moving."""
    before = await log_end(nc)
    response = system.http.request(method, path, **request)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM
    problem: dict[str, Any] = response.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert await log_end(nc) == before, f"{method} {path} was refused but wrote to the log"
    return problem


def pending_job(system: System) -> str:
    job_id: str = system.submit("noop", run_at=FAR)["id"]
    system.wait_for(job_id, "pending")
    return job_id


async def test_a_foreign_host_is_refused_naming_it_and_the_setting(
    system: System, nc: Client
) -> None:
    """DNS rebinding: evil.example re-pointed at 127.0.0.1 makes the browser send
    ``Host: evil.example`` for the attacker's page, reads and writes alike."""
    rebound = {"host": "evil.example:8000"}
    problem = await refused(system, nc, 400, "GET", "/api/v1/jobs", headers=rebound)
    assert "evil.example" in problem["detail"] and "CONVEYOR_ALLOWED_HOSTS" in problem["detail"]
    assert problem["errors"][0]["field"] == "host"
    await refused(system, nc, 400, "POST", "/api/v1/jobs", json={"type": "noop"}, headers=rebound)
    await refused(system, nc, 400, "GET", "/", headers=rebound)
    await refused(system, nc, 400, "GET", "/healthz", headers=rebound)
    await refused(system, nc, 400, "GET", "/api/v1/jobs", headers={"host": "bad host"})


def test_hosts_the_api_answers(system: System) -> None:
    """localhost by name, and any IP address (no page can rebind one): a probe that sends the
    pod's address as Host needs no setting. Only the header is set; no traffic goes there."""
    port = urlsplit(system.api_url).port
    for host in ("127.0.0.1", f"localhost:{port}", "LocalHost.", "[::1]:8000", "10.1.2.3:8000"):
        response = system.http.get("/healthz", headers={"host": host})
        assert response.status_code == 200, (host, response.text)


async def test_a_cross_site_form_cannot_stop_a_job(system: System, nc: Client) -> None:
    """The attack: an auto-submitted <form method=post action=http://127.0.0.1:8000/api/v1/
    jobs/ID/stop> on a page the user visits (stop takes no body, so it used to work)."""
    job_id = pending_job(system)
    stop = f"/api/v1/jobs/{job_id}/stop"

    from_page = await refused(
        system, nc, 403, "POST", stop, content=b"", headers={**FORM, "origin": EVIL}
    )
    assert EVIL in from_page["detail"] and "CONVEYOR_ALLOWED_ORIGINS" in from_page["detail"]
    assert from_page["errors"][0]["field"] == "origin"
    # A browser too old to send Origin still sends the form's Content-Type.
    for content_type in ("application/x-www-form-urlencoded", "multipart/form-data; b=x"):
        without_origin = await refused(
            system, nc, 415, "POST", stop, content=b"a=b", headers={"content-type": content_type}
        )
        assert content_type in without_origin["detail"]
        assert "application/json" in without_origin["detail"]
    await refused(
        system, nc, 415, "POST", stop, content=b"", headers={"content-type": "text/plain"}
    )
    await refused(system, nc, 415, "POST", stop, content=b'{"x": 1}')  # a body, no type
    await refused(system, nc, 403, "DELETE", f"/api/v1/jobs/{job_id}", headers={"origin": "null"})

    assert system.job(job_id).json()["status"] == "pending"


async def test_a_json_write_from_another_origin_is_forbidden(system: System, nc: Client) -> None:
    for origin in (EVIL, "http://127.0.0.1:1", "null"):
        problem = await refused(
            system,
            nc,
            403,
            "POST",
            "/api/v1/jobs",
            json={"type": "noop"},
            headers={"origin": origin},
        )
        assert origin in problem["detail"]


def test_same_origin_pages_and_clients_without_origin_still_write(system: System) -> None:
    own = {"origin": system.api_url}
    submitted = system.http.post("/api/v1/jobs", json={"type": "noop", "run_at": FAR}, headers=own)
    assert submitted.status_code == 201, submitted.text
    stopped = system.http.post(f"/api/v1/jobs/{submitted.json()['id']}/stop", headers=own)
    assert stopped.status_code == 202, stopped.text  # the dashboard's stop: no body, no type

    job_id = pending_job(system)  # the CLI and curl: no Origin, no body, no Content-Type
    assert system.http.post(f"/api/v1/jobs/{job_id}/stop").status_code == 202
    system.wait_for(job_id, "stopped")
    assert system.http.delete(f"/api/v1/jobs/{job_id}").status_code == 204

    typed = system.http.post(f"/api/v1/jobs/{pending_job(system)}/stop", headers=JSON_TYPE)
    assert typed.status_code == 202, typed.text  # JSON declared, nothing sent: fine too


def directives(csp: str) -> dict[str, list[str]]:
    out = {}
    for part in csp.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def test_the_dashboard_cannot_be_framed_and_loads_only_its_own_files(system: System) -> None:
    response = system.http.get("/")
    assert response.status_code == 200
    csp = directives(response.headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"] == ["'self'"] and csp["style-src"] == ["'self'"]
    assert csp["default-src"] == ["'self'"] and csp["base-uri"] == ["'none'"]
    notifier = urlsplit(system.ws_url)
    assert csp["connect-src"] == ["'self'", f"ws://{notifier.netloc}"]
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert f'content="{system.ws_url}"' in response.text  # {{NOTIFIER_URL}} still filled in


def test_the_api_docs_load_no_file_from_a_cdn(system: System) -> None:
    page = system.http.get("/docs")
    assert page.status_code == 200
    refs = re.findall(r'(?:src|href)="([^"]*)"', page.text)
    assert refs and all(ref.startswith("/") and not ref.startswith("//") for ref in refs), refs
    assert "http" not in page.text, page.text
    for ref in refs:
        asset = system.http.get(ref)
        assert asset.status_code == 200, ref
        assert len(asset.content) > 1000, ref
    csp = directives(page.headers["content-security-policy"])
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["script-src"][0] == "'self'" and csp["script-src"][1].startswith("'sha256-")
    assert len(csp["script-src"]) == 2  # one inline script, allowed by its hash alone
    assert system.http.get("/redoc").status_code == 404


def test_the_openapi_document_names_the_refusals(system: System) -> None:
    paths = httpx.get(f"{system.api_url}/openapi.json").json()["paths"]
    stop = paths["/api/v1/jobs/{job_id}/stop"]["post"]["responses"]
    assert {"400", "403", "415"} <= set(stop)
    assert "400" in paths["/healthz"]["get"]["responses"]
    assert "415" not in paths["/api/v1/jobs"]["get"]["responses"]


async def test_another_sites_page_cannot_open_the_feed(system: System) -> None:
    """A page may open a websocket to any address: the notifier answers 403 to a handshake
    whose ``Origin`` is not the dashboard's (under any loopback name) and reads no query;
    one without ``Origin`` (the CLI, scripts) is not a browser's and is served."""
    system.submit("noop")  # an event for since=0 to replay
    port = urlsplit(system.api_url).port
    assert port is not None
    dashboard = [f"http://{host}:{port}" for host in ("127.0.0.1", "localhost", "[::1]")]
    for ours in [*map(Origin, dashboard), None]:
        async with websockets.connect(f"{system.ws_url}?since=0", origin=ours) as ws:
            assert json.loads(await asyncio.wait_for(ws.recv(), 10))["seq"] > 0
    before = system.metric("notifier", "conveyor_ws_refused_total", reason="origin")
    foreign = [EVIL, f"http://127.0.0.1:{port + 1}", f"https://127.0.0.1:{port}", "null"]
    for theirs in foreign:
        with pytest.raises(InvalidStatus) as refused:
            await websockets.connect(f"{system.ws_url}?since=0", origin=Origin(theirs))
        body = refused.value.response.body.decode()
        assert refused.value.response.status_code == 403, body
        assert theirs in body and "CONVEYOR_ALLOWED_ORIGINS" in body
    after = system.metric("notifier", "conveyor_ws_refused_total", reason="origin")
    assert after - before == len(foreign)
