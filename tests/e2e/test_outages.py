"""Outages of the servers under the running system (issue 3, fault tests 4 and 5).

The module runs its own nats-server and its own PostgreSQL (the session's shared servers are
never touched), with api, notifier, projector and two workers as real processes on top.

4. nats-server SIGKILLed mid-run and restarted on the same store and port: every submission
   the API acknowledged is in the log and reaches a terminal state, submissions during the
   outage answer 503 at once, and workers, projector and notifier resume within 10 s.
5. PostgreSQL stopped mid-run and restarted: reads answer 503 quickly meanwhile, writes that
   need only the log keep working, and the read model catches up when it returns.

Both end with the invariants of SPEC §6 and ``conveyor verify``. Recovery times are printed
(``pytest -s``).
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import asyncpg
import httpx
import pytest

from conveyor_cli.dev.embedded import NatsServer, PostgresServer
from conveyor_db import migrate
from support.invariants import check_invariants
from support.system import System
from support.traffic import TERMINAL_EVENTS, Feed, Submitter, wait_until

pytestmark = pytest.mark.e2e

OUTAGE_S = 3.0
RECOVERY_S = 10.0
"""Every consumer resumes within this long of the server being back."""
READ_BOUND_S = 5.0
"""A read while PostgreSQL is away answers 503 within this long."""
PROBLEM = "application/problem+json"
SHORT_SLEEP = {"type": "sleep", "payload": {"seconds": 0.3, "steps": 2}}
IN_FLIGHT_SLEEP = {"seconds": 1.5, "steps": 3}


@dataclass
class Outage:
    system: System
    nats: NatsServer
    postgres: PostgresServer


async def _migrate(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


@pytest.fixture(scope="module")
def outage(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    nats_server = NatsServer(tmp_path_factory.mktemp("outage-nats")).start()
    postgres = PostgresServer(tmp_path_factory.mktemp("outage-pg"), durable=False)
    try:
        postgres.start()
        asyncio.run(_migrate(postgres.url()))
        with System(
            nats_server.url, postgres.url(), tmp_path_factory.mktemp("outage-logs"), workers=2
        ) as system:
            yield Outage(system, nats_server, postgres)
    finally:
        nats_server.stop()
        postgres.stop()


# -- helpers -------------------------------------------------------------------------------


def log_types(system: System, job_id: str) -> list[str]:
    """The job's event types, from the log (through the API, which reads NATS)."""
    return [e["type"] for e in system.events(job_id)]


def in_flight(system: System, job_ids: list[str]) -> list[str]:
    """Jobs with no terminal event in the log yet."""
    return [j for j in job_ids if not set(log_types(system, j)) & set(TERMINAL_EVENTS)]


def _timed_get(http: httpx.Client, path: str) -> tuple[int, float, str]:
    started = time.monotonic()
    r = http.get(path)
    return r.status_code, time.monotonic() - started, r.headers.get("content-type", "")


def _timed_post(http: httpx.Client, path: str, body: object) -> tuple[int, float, str]:
    started = time.monotonic()
    r = http.post(path, json=body)
    return r.status_code, time.monotonic() - started, r.headers.get("content-type", "")


def report(name: str, seconds: float) -> None:
    print(f"{name}: {seconds:.2f}s" if seconds else name)


# -- 4. NATS ---------------------------------------------------------------------------------


def test_nats_server_killed_and_restarted_loses_no_acknowledged_job(outage: Outage) -> None:
    system, nats_server = outage.system, outage.nats
    system.wait_ready()
    feed = Feed(system.ws_url)
    feed.start()
    assert feed.connected.wait(10)
    before = [system.submit("sleep", payload=IN_FLIGHT_SLEEP)["id"] for _ in range(6)]
    submitter = Submitter(system.api_url, SHORT_SLEEP)
    submitter.start()
    try:
        system.wait_for(before[0], "running")
        time.sleep(0.3)
        accepted_before = before + [a.job_id for a in submitter.accepted() if a.job_id]
        hit = in_flight(system, accepted_before)
        nats_server.stop(signal.SIGKILL)
        killed_at = time.monotonic()
        # the fault really hits work in flight: jobs that were pending or running
        assert hit, "every job was already terminal when the server was killed"

        # while NATS is away: submissions answer 503 problem+json at once, and the read
        # model still answers
        time.sleep(OUTAGE_S / 2)
        refused = [_timed_post(system.http, "/api/v1/jobs", SHORT_SLEEP) for _ in range(3)]
        assert system.http.get("/api/v1/jobs", params={"limit": 5}).status_code == 200
        time.sleep(OUTAGE_S / 2)

        nats_server.start()
        back_at = time.monotonic()
        probes: list[str] = []

        def api_accepts() -> bool:
            r = system.http.post("/api/v1/jobs", json=SHORT_SLEEP)
            assert r.status_code in (201, 503), r.text
            if r.status_code == 201:
                probes.append(r.json()["id"])
            return bool(probes)

        wait_until(api_accepts, RECOVERY_S)
        api_s = time.monotonic() - back_at
        first_id = probes[0]
        # workers run new jobs, the projector and the notifier carry their events
        wait_until(lambda: "job.completed" in log_types(system, first_id), RECOVERY_S)
        worker_s = time.monotonic() - back_at
        system.wait_for(first_id, "completed", timeout=RECOVERY_S)
        projector_s = time.monotonic() - back_at
        wait_until(lambda: feed.first(first_id, "job.completed") is not None, RECOVERY_S)
        arrived = feed.first(first_id, "job.completed")
        assert arrived is not None
        notifier_s = arrived - back_at
        started = feed.first_after(back_at, "job.started")
        assert started is not None
        first_start_s = started - back_at
        time.sleep(1.0)  # some more traffic after the restart
    finally:
        submitter.stop()
        feed.stop()

    report("NATS down for", back_at - killed_at)
    for name, seconds in [
        ("api accepts writes", api_s),
        ("a worker starts a job (seen on the feed)", first_start_s),
        ("the first job submitted after it is completed", worker_s),
        ("projector projects", projector_s),
        ("notifier streams", notifier_s),
    ]:
        report(f"NATS back -> {name}", seconds)
        assert seconds < RECOVERY_S, name

    # during the outage: 503 problem+json at once, never another 5xx or no answer (a
    # request in flight when the server died waits for its 5 s publish timeout)
    for status, elapsed, content_type in refused:
        assert status == 503 and content_type.startswith(PROBLEM), (status, content_type)
        assert elapsed < 1.0, elapsed
    for a in submitter.answers:
        assert a.status in (201, 503), a
        assert a.elapsed < 6.0, a
        if a.status == 503:
            assert a.content_type.startswith(PROBLEM), a
    slow = [a.elapsed for a in submitter.answers if a.status == 503]
    report(f"503 answers: {len(slow)}, slowest {max(slow):.2f}s", 0)
    report("slowest 503 while disconnected", max(e for _, e, _ in refused))

    # the feed never delivered a frame twice or out of order across the restart
    seqs = [f["seq"] for _, f in feed.frames]
    assert seqs == sorted(set(seqs)), "feed frames out of order or duplicated"
    report(f"feed connections (1 = stayed connected): {feed.connections}", 0)

    # no acknowledged submission is lost: each is in the log and reaches a terminal state;
    # no attempt completed twice; the read model equals the fold of the log
    accepted = before + probes + [a.job_id for a in submitter.accepted() if a.job_id]
    check_invariants(system, accepted)


# -- 5. PostgreSQL ---------------------------------------------------------------------------


def test_postgres_stopped_and_restarted_reads_503_writes_work_then_converge(
    outage: Outage,
) -> None:
    system, postgres = outage.system, outage.postgres
    system.wait_ready()
    # jobs for the writes during the outage: one to stop, one to delete, one to restart
    to_stop = system.submit("sleep", payload={"seconds": 60, "steps": 60})["id"]
    to_delete = system.submit("noop")["id"]
    to_restart = system.submit("sleep", payload={"seconds": 0, "fail": True})["id"]
    system.wait_for(to_stop, "running")
    system.wait_for(to_delete, "completed")
    system.wait_for(to_restart, "failed")
    before = [system.submit("sleep", payload=IN_FLIGHT_SLEEP)["id"] for _ in range(6)]
    system.wait_for(before[0], "running")
    hit = in_flight(system, before)

    postgres.stop()
    down_at = time.monotonic()
    assert hit, "every job was already terminal when PostgreSQL stopped"

    # reads answer 503 problem+json, quickly
    reads = {
        path: _timed_get(system.http, path)
        for path in ("/api/v1/jobs", f"/api/v1/jobs/{to_delete}", "/api/v1/stats", "/readyz")
    }
    for path, (status, elapsed, content_type) in reads.items():
        assert status == 503, (path, status)
        assert elapsed < READ_BOUND_S, (path, elapsed)
        if path != "/readyz":
            assert content_type.startswith(PROBLEM), (path, content_type)
    report("slowest read while PostgreSQL is down", max(e for _, e, _ in reads.values()))

    # writes that need only the log keep working, and workers keep running jobs
    during = [system.submit("noop")["id"] for _ in range(5)]
    assert system.http.post(f"/api/v1/jobs/{to_stop}/stop").status_code == 202
    assert system.http.post(f"/api/v1/jobs/{to_delete}/stop").status_code == 409
    assert system.http.delete(f"/api/v1/jobs/{to_delete}").status_code == 204
    assert system.http.post(f"/api/v1/jobs/{to_restart}/restart").status_code == 202
    wait_until(lambda: "job.completed" in log_types(system, during[-1]), RECOVERY_S)
    wait_until(lambda: "job.stopped" in log_types(system, to_stop), RECOVERY_S)
    assert system.job(during[-1]).status_code == 503  # still no read model
    time.sleep(max(0.0, OUTAGE_S - (time.monotonic() - down_at)))

    postgres.start()
    up_at = time.monotonic()
    system.wait_for(during[-1], "completed", timeout=RECOVERY_S)
    caught_up_s = time.monotonic() - up_at
    report("PostgreSQL back -> read model shows jobs run during the outage", caught_up_s)
    assert caught_up_s < RECOVERY_S
    status, elapsed, _ = _timed_get(system.http, "/api/v1/jobs")
    assert status == 200

    # everything converges
    system.wait_for(to_stop, "stopped")
    system.wait_gone(to_delete)
    assert log_types(system, to_restart).count("job.restarted") == 1
    assert system.http.get("/readyz").status_code == 200
    check_invariants(system, [*before, *during, to_stop, to_restart])


def test_postgres_frozen_reads_answer_503_within_the_read_timeout(outage: Outage) -> None:
    """A hung PostgreSQL (SIGSTOP: connections open, nothing answers) must not hang reads."""
    system, postgres = outage.system, outage.postgres
    system.wait_ready()
    done = system.submit("noop")["id"]
    system.wait_for(done, "completed")
    paths = ["/api/v1/jobs", f"/api/v1/jobs/{done}", "/api/v1/stats", "/readyz"]

    def timed(path: str) -> tuple[int, float, str]:
        with httpx.Client(base_url=system.api_url, timeout=30) as http:
            return _timed_get(http, path)

    postgres.freeze()
    try:
        with ThreadPoolExecutor(len(paths)) as pool:
            reads = dict(zip(paths, pool.map(timed, paths), strict=True))
        during = [system.submit("noop")["id"] for _ in range(3)]
        wait_until(lambda: "job.completed" in log_types(system, during[-1]), RECOVERY_S)
    finally:
        postgres.thaw()
    thawed_at = time.monotonic()
    for path, (status, elapsed, _) in reads.items():
        assert status == 503, (path, status)
        assert elapsed < READ_BOUND_S, (path, elapsed)
    report("slowest read while PostgreSQL is frozen", max(e for _, e, _ in reads.values()))
    system.wait_for(during[-1], "completed", timeout=RECOVERY_S)
    report("PostgreSQL thawed -> read model current", time.monotonic() - thawed_at)
    check_invariants(system, [done, *during])
