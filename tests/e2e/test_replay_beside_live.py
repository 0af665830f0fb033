"""``conveyor replay`` rebuilds the read model beside the live one and switches atomically,
while the real api serves reads and jobs keep being submitted and run (issue 13, ADR 0018).

A log of a few thousand finished jobs (tens of thousands of events, a few seconds of replay)
is written straight into the event log; once the live projector has applied it, reader
threads loop over ``GET /api/v1/jobs`` (the newest page, and ``q=<id>`` of a logged job: the
read model alone) and ``GET /api/v1/jobs/{id}``, and a submitter posts noops, all through
the replay. Every read must answer 200, every logged job must be listed (never missing, as
an empty or partial model would have it), and no job's ``version`` may go back (stale rows
after the switch). Then ``conveyor verify --wait`` passes: the read model equals the fold of
the log and the projector's checkpoint is the log's last event.

The control: the same readers through a replay in place (``--in-place``) see logged jobs missing
from the list (the model empties and refills), which is what the default replay avoids.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import asyncpg
import httpx
import pytest

from conveyor_bus import connect
from conveyor_cli.admin import replay
from conveyor_db import create_pool
from conveyor_db.rebuild import REBUILD_SCHEMA, RETIRED_SCHEMA
from support.histories import write_histories
from support.invariants import verify, wait_terminal
from support.sync import run_sync
from support.system import System
from support.traffic import Submitter

pytestmark = pytest.mark.e2e

JOBS = 1_000
STEPS = 12
"""1,000 jobs of 15 events: 15,000 events."""


@dataclass
class Reads:
    """What one reader saw."""

    answers: int = 0
    failures: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    """Logged jobs a list did not show."""
    went_back: list[str] = field(default_factory=list)


class Reader(threading.Thread):
    """Loops over the logged jobs: by id, by ``q=<id>``, and the newest page."""

    def __init__(self, api_url: str, ids: list[str], offset: int) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=api_url, timeout=15)
        self.ids = ids
        self.offset = offset
        self.reads = Reads()
        self.halt = threading.Event()
        self.versions: dict[str, int] = {}

    def get(self, path: str, **params: str) -> httpx.Response | None:
        r = self.http.get(path, params=params)
        self.reads.answers += 1
        if r.status_code != 200:
            self.reads.failures.append(f"{r.status_code} on {path} {params}: {r.text[:200]}")
            return None
        return r

    def seen(self, job: dict[str, object]) -> None:
        job_id, version = str(job["id"]), int(str(job["version"]))
        if version < self.versions.get(job_id, 0):
            self.reads.went_back.append(f"{job_id}: version {self.versions[job_id]} -> {version}")
        self.versions[job_id] = max(version, self.versions.get(job_id, 0))

    def run(self) -> None:
        n = self.offset
        while not self.halt.is_set():
            job_id = self.ids[n % len(self.ids)]
            n += 7
            if (r := self.get(f"/api/v1/jobs/{job_id}")) is not None:
                self.seen(r.json())
            if (r := self.get("/api/v1/jobs", q=job_id)) is not None:
                items = r.json()["items"]
                if not any(j["id"] == job_id for j in items):
                    self.reads.missing.append(job_id)
                for j in items:
                    self.seen(j)
            if (r := self.get("/api/v1/jobs", limit="20")) is not None:
                if not r.json()["items"]:
                    self.reads.missing.append("(an empty newest page)")
                for j in r.json()["items"]:
                    self.seen(j)

    def stop(self) -> Reads:
        self.halt.set()
        self.join(30)
        self.http.close()
        return self.reads


@pytest.fixture(scope="module")
def logged(system: System) -> list[str]:
    """The logged jobs' ids, once the live projector has applied them."""
    ids = run_sync(write_histories(system.nats_url, JOBS, STEPS))

    async def caught_up() -> None:
        conn = await asyncpg.connect(system.database_url)
        try:
            for _ in range(600):
                n = await conn.fetchval("SELECT count(*) FROM jobs WHERE id = ANY($1)", ids)
                if n == len(ids):
                    return
                await asyncio.sleep(0.1)
            raise AssertionError(f"the projector applied {n} of {len(ids)} logged jobs")
        finally:
            await conn.close()

    run_sync(caught_up())
    return ids


@pytest.fixture
def traffic(system: System, logged: list[str]) -> Iterator[tuple[list[Reader], Submitter]]:
    readers = [Reader(system.api_url, logged, k) for k in range(3)]
    submitter = Submitter(system.api_url, {"type": "noop"}, interval=0.05)
    for t in (*readers, submitter):
        t.start()
    yield readers, submitter
    for r in readers:
        r.stop()
    submitter.stop()


def stop(readers: list[Reader]) -> Reads:
    total = Reads()
    for r in readers:
        reads = r.stop()
        total.answers += reads.answers
        total.failures += reads.failures
        total.missing += reads.missing
        total.went_back += reads.went_back
    return total


def test_control_a_replay_in_place_shows_readers_a_partial_model(
    system: System, traffic: tuple[list[Reader], Submitter]
) -> None:
    """What ``conveyor replay --in-place`` does, run in this process (no command start-up)."""
    readers, _ = traffic

    async def in_place() -> None:
        nc = await connect(system.nats_url, "test-replay-in-place")
        pool = await create_pool(system.database_url)
        try:
            assert await replay(nc, pool, quiet=True) == 0
        finally:
            await pool.close()
            await nc.close()

    run_sync(in_place())
    reads = stop(readers)
    assert reads.missing, f"{reads.answers} reads, none saw the model partial"


def test_replay_switches_to_a_fresh_model_while_every_read_is_served(
    system: System, traffic: tuple[list[Reader], Submitter]
) -> None:
    readers, submitter = traffic
    started = time.monotonic()
    replayed = system.conveyor("replay", timeout=120)
    took = time.monotonic() - started
    assert replayed.returncode == 0, replayed.stderr
    assert "switched in" in replayed.stderr, replayed.stderr
    time.sleep(0.5)  # reads and submissions on the switched model too
    submitter.stop()
    reads = stop(readers)
    print(f"replay {took:.1f}s: {replayed.stderr.strip()}; {reads.answers} reads")
    assert reads.answers > 30, reads
    assert not reads.failures, reads.failures[:5]
    assert not reads.missing, reads.missing[:5]
    assert not reads.went_back, reads.went_back[:5]
    submitted = [a.job_id for a in submitter.accepted() if a.job_id is not None]
    assert submitted and len(submitted) == len(submitter.answers), submitter.answers[-3:]
    wait_terminal(system, submitted)
    verify(system)  # the fold, every job terminal, the checkpoint at the log's last event
    assert "tables were switched" in system.log("projector")

    async def side_schemas() -> list[str]:
        conn = await asyncpg.connect(system.database_url)
        try:
            rows = await conn.fetch(
                "SELECT nspname FROM pg_namespace WHERE nspname = ANY($1)",
                [REBUILD_SCHEMA, RETIRED_SCHEMA],
            )
        finally:
            await conn.close()
        return [r["nspname"] for r in rows]

    assert run_sync(side_schemas()) == []
