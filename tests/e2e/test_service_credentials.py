"""The real services, each logged in to NATS as its own user with the permissions of
``conveyor_bus.permissions`` (issue 12, "Bus security"): api, notifier, projector and two
workers run jobs end to end (a completion with progress on the feed, a retry, a stop of a
running job, a restart and a delete), and nats-server reports not one permissions violation."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
import websockets

from conveyor_bus import connect, ensure_topology
from conveyor_cli.dev.embedded import NatsServer
from conveyor_cli.logins import Login
from support.system import System

pytestmark = pytest.mark.e2e

SERVICES = ("api", "worker", "projector", "notifier", "admin")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    logins = {name: Login.new(name) for name in SERVICES}
    srv = NatsServer(tmp_path_factory.mktemp("nats-credentials") / "nats", services=logins)
    srv.start()

    async def migrate() -> None:  # the admin makes the topology, as `conveyor migrate` does
        nc = await connect(srv.url_for("admin"), "admin")
        try:
            await ensure_topology(nc, ack_wait_s=3.0)
        finally:
            await nc.close()

    asyncio.run(migrate())
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture(scope="module")
def system(
    server: NatsServer, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    s = System(server.url_for("admin"), database_url, tmp_path_factory.mktemp("logs"))
    try:
        s.start(
            "api",
            "api",
            NATS_URL=server.url_for("api"),
            CONVEYOR_API_PORT=str(s.api_port),
            CONVEYOR_NOTIFIER_URL=s.ws_url,
        )
        s.start(
            "notifier",
            "notifier",
            NATS_URL=server.url_for("notifier"),
            CONVEYOR_NOTIFIER_PORT=str(s.notifier_port),
        )
        s.start("projector", "projector", NATS_URL=server.url_for("projector"))
        for n in (1, 2):
            s.start_worker(f"worker-{n}", NATS_URL=server.url_for("worker"))
        s.wait_ready()
        yield s
    finally:
        s.__exit__(None, None, None)


async def feed_until_completed(url: str, job_id: str) -> list[str]:
    """The types of the job's events on the feed, from its first to ``job.completed``."""
    types: list[str] = []
    async with websockets.connect(f"{url}?job_id={job_id}&since=0") as ws:
        async with asyncio.timeout(20):
            async for raw in ws:
                types.append(json.loads(raw)["type"])
                if types[-1] == "job.completed":
                    return types
    raise AssertionError(f"feed closed after {types}")


def violations(server: NatsServer) -> list[str]:
    log = (server.store_dir / "nats.log").read_text(errors="replace")
    return [line for line in log.splitlines() if "violation" in line.lower()]


async def test_each_service_with_its_own_user_runs_jobs(system: System, server: NatsServer) -> None:
    job = system.submit("sleep", payload={"seconds": 0.6, "steps": 3})
    types = await feed_until_completed(system.ws_url, job["id"])
    assert types[:2] == ["job.submitted", "job.started"] and "job.progressed" in types
    done = system.wait_for(job["id"], "completed")
    assert done["result"] == {"slept": 0.6, "steps": 3}
    system.wait_projected(job["id"], "completed")

    retried = system.submit("sleep", payload={"seconds": 0.1, "fail": True}, max_attempts=2)
    failed = system.wait_for(retried["id"], "failed", timeout=30)
    assert failed["attempt"] == 2

    running = system.submit("sleep", payload={"seconds": 30, "steps": 30})
    system.wait_for(running["id"], "running")
    assert system.http.post(f"/api/v1/jobs/{running['id']}/stop").status_code == 202
    system.wait_for(running["id"], "stopped", timeout=10)
    assert system.http.post(f"/api/v1/jobs/{running['id']}/restart").status_code == 202
    system.wait_for(running["id"], "running")
    system.http.post(f"/api/v1/jobs/{running['id']}/stop")
    system.wait_for(running["id"], "stopped", timeout=10)
    assert system.http.delete(f"/api/v1/jobs/{running['id']}").status_code in (200, 202, 204)
    system.wait_gone(running["id"])

    workers = system.http.get("/api/v1/workers").json()
    assert len(workers["items"] if isinstance(workers, dict) else workers) == 2
    assert violations(server) == []
    assert all(p.poll() is None for p in system.procs.values())
