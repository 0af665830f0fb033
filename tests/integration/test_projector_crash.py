"""The projector killed with SIGKILL mid-stream, again and again, while a stream of 5,000
events is written and then while it catches up (issue 3's battery, test 3): the read model it
ends with equals the fold of the log (``verify``) and a fresh projection of the whole log, and
its checkpoint equals the log's last sequence.

``CONVEYOR_SOAK_SCALE`` (default 1) multiplies the number of jobs (``make soak``)."""

from __future__ import annotations

import asyncio
import itertools
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client

from conveyor_bus import DirectGetter, JetStreamEventStore
from conveyor_bus.reader import last_event_sequence
from conveyor_cli.admin import Report, compare, replay, verify
from conveyor_db import ReadModel, create_pool
from conveyor_events import (
    CommandHandler,
    CompleteJob,
    DeleteJob,
    Loaded,
    ReportProgress,
    StartJob,
    StopJob,
    SubmitJob,
)

SCALE = max(1, int(os.environ.get("CONVEYOR_SOAK_SCALE", "1")))
JOBS = 1000 * SCALE
EVENTS = 5000 * SCALE
"""At least this many events in the jobs' histories (5,009 per 1,000 jobs)."""
STORM_S = 45.0 * SCALE
"""Kill rounds stop after this long even when the projector has not caught up."""

pytestmark = [pytest.mark.integration, pytest.mark.long, pytest.mark.timeout(120 * SCALE)]


def _now() -> datetime:
    return datetime.now(UTC)


PREFIX = f"01KPROJ{random.randrange(10_000):04d}"
"""This run's job ids (a shared server may hold earlier runs' jobs)."""


def job_id(n: int) -> str:
    return f"{PREFIX}{n:015d}"


async def write_history(nc: Client) -> int:
    """Jobs in every status, with progress, stops and deletes: 5,009 events per 1,000 jobs.
    The number of events written."""
    store = CommandHandler(JetStreamEventStore(nc))
    submits = [
        SubmitJob(job_id=job_id(n), now=_now(), actor="user:test", type="noop") for n in range(JOBS)
    ]
    written = 0
    for i in range(0, JOBS, 100):
        written += sum(len(o.events) for o in await store.submit(submits[i : i + 100]))

    async def life(n: int, cmd: SubmitJob) -> int:
        if n % 5 == 0:
            stopped = await store.execute(StopJob(job_id=cmd.job_id, now=_now(), actor="user:test"))
            return len(stopped.events)
        loaded = await store.store.load(cmd.job_id)
        out = await store.execute(
            StartJob(job_id=cmd.job_id, now=_now(), actor="worker:w", worker_id="w", run=1), loaded
        )
        events = len(out.events)
        for p in (25.0, 50.0, 75.0):
            out = await store.execute(
                ReportProgress(
                    job_id=cmd.job_id, now=_now(), actor="worker:w", attempt=1, progress=p
                ),
                Loaded(out.state, out.last_seq),
            )
            events += len(out.events)
        if n % 3 == 0:
            return events  # stays running
        out = await store.execute(
            CompleteJob(
                job_id=cmd.job_id, now=_now(), actor="worker:w", attempt=1, result={"n": n}
            ),
            Loaded(out.state, out.last_seq),
        )
        events += len(out.events)
        if n % 7 == 0:
            deleted = await store.execute(
                DeleteJob(job_id=cmd.job_id, now=_now(), actor="user:test")
            )
            events += len(deleted.events)
        return events

    sem = asyncio.Semaphore(32)

    async def bounded(n: int, cmd: SubmitJob) -> int:
        async with sem:
            return await life(n, cmd)

    return written + sum(await asyncio.gather(*(bounded(n, c) for n, c in enumerate(submits))))


def start_projector(nats_url: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "CONVEYOR_BATCH_SIZE": "20",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor_cli.main", "projector"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _text(log: Path) -> str:
    return log.read_text(errors="replace")


async def projecting(proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    """Wait until the projector has read its checkpoint and started projecting."""
    deadline = time.monotonic() + timeout
    while "projecting from" not in _text(log):
        assert proc.poll() is None, f"projector exited with {proc.returncode}:\n{_text(log)}"
        assert time.monotonic() < deadline, f"projector never started:\n{_text(log)}"
        await asyncio.sleep(0.02)


@dataclass
class Kills:
    live: int = 0
    """Kills while the history was still being written."""
    mid_stream: list[tuple[int, int, int]] = field(default_factory=list)
    """(checkpoint before the round, at the kill, log's last sequence just before the kill)
    of each kill that left events behind after the projector had applied some."""
    rounds: int = 0


async def kill_storm(
    nats_url: str,
    database_url: str,
    reads: ReadModel,
    getter: DirectGetter,
    writer: asyncio.Task[int],
    logs: Path,
) -> Kills:
    """Start the projector, let it project for a moment, SIGKILL it; again and again while
    the writer writes, and then until a kill finds it caught up (or ``STORM_S`` passed)."""
    rng = random.Random()
    kills = Kills()
    deadline = time.monotonic() + STORM_S
    for round_ in itertools.count():
        if time.monotonic() > deadline:
            break
        before = await reads.checkpoint()
        log = logs / f"projector-{round_}.log"
        proc = start_projector(nats_url, database_url, log)
        try:
            await projecting(proc, log)
            await asyncio.sleep(rng.uniform(0.02, 0.4))
            last = await last_event_sequence(getter)
            live = not writer.done()
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        at_kill = await reads.checkpoint()
        kills.rounds += 1
        kills.live += live
        if before < at_kill < last:
            kills.mid_stream.append((before, at_kill, last))
        if writer.done() and at_kill >= await last_event_sequence(getter):
            break
    return kills


async def test_projector_killed_mid_stream_ends_equal_to_a_fresh_projection(
    nc: Client,
    nats_url: str,
    database_url: str,
    pg_admin_url: str,
    template_db: str,
    tmp_path: Path,
) -> None:
    pool = await create_pool(database_url)
    reads = ReadModel(pool)
    getter = JetStreamEventStore(nc).getter
    writer = asyncio.create_task(write_history(nc))
    try:
        kills = await kill_storm(nats_url, database_url, reads, getter, writer, tmp_path)
        written = await writer
        assert written >= EVENTS
        summary = (
            f"{written} events, {kills.rounds} kills ({kills.live} while writing), "
            f"{len(kills.mid_stream)} mid-stream; the first (checkpoint before, at the kill, "
            f"log end): {kills.mid_stream[:5]}"
        )
        print(summary)
        assert kills.mid_stream, f"no kill landed while the projector was mid-stream: {summary}"

        # a last projector catches up and shuts down cleanly
        last = await last_event_sequence(getter)
        log = tmp_path / "final.log"
        proc = start_projector(nats_url, database_url, log)
        try:
            await projecting(proc, log)
            for _ in range(300 * SCALE):
                if await reads.checkpoint() >= last:
                    break
                await asyncio.sleep(0.1)
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0, _text(log)
        assert await reads.checkpoint() == last == await last_event_sequence(getter)

        report = await verify(nc, pool)
        assert report.ok, report.render()
        assert report.checkpoint == report.last_event == last

        # a fresh projection of the whole log into an empty database gives the same rows
        fresh_name = f"fresh_{os.getpid()}"
        admin = await asyncpg.connect(pg_admin_url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{fresh_name}"')
        await admin.execute(f'CREATE DATABASE "{fresh_name}" TEMPLATE "{template_db}"')
        await admin.close()
        fresh_pool = await create_pool(database_url.rsplit("/", 1)[0] + "/" + fresh_name)
        try:
            await replay(nc, fresh_pool, quiet=True)
            live = {s.id: s for s in await reads.all_jobs()}
            rebuilt = {s.id: s for s in await ReadModel(fresh_pool).all_jobs()}
            diff = Report()
            compare(rebuilt, live, diff)
            assert diff.ok, diff.render()
            deleted = [n for n in range(JOBS) if n % 7 == 0 and n % 5 != 0 and n % 3 != 0]
            mine = [job_id for job_id in live if job_id.startswith(PREFIX)]
            assert len(mine) == JOBS - len(deleted)
        finally:
            await fresh_pool.close()
    finally:
        if not writer.done():
            writer.cancel()
        await asyncio.gather(writer, return_exceptions=True)
        await pool.close()
