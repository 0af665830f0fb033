"""The projector killed with SIGKILL mid-stream, again and again: the read model it ends with
equals a fresh projection of the whole log."""

from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from nats.aio.client import Client

from conveyor_bus import EventStore, Loaded
from conveyor_bus.reader import last_event_sequence
from conveyor_cli.admin import Report, compare, replay, verify
from conveyor_db import ReadModel, create_pool
from conveyor_events import CompleteJob, DeleteJob, ReportProgress, StartJob, StopJob, SubmitJob

pytestmark = pytest.mark.integration

JOBS = 600


def _now() -> datetime:
    return datetime.now(UTC)


async def write_history(nc: Client) -> int:
    """Jobs in every status, with progress, stops and deletes: a few thousand events."""
    store = EventStore(nc)
    submits = [
        SubmitJob(job_id=f"01KPROJ{n:019d}", now=_now(), actor="user:test", type="noop")
        for n in range(JOBS)
    ]
    for i in range(0, JOBS, 100):
        await store.submit(submits[i : i + 100])

    async def life(n: int, cmd: SubmitJob) -> None:
        if n % 5 == 0:
            await store.execute(StopJob(job_id=cmd.job_id, now=_now(), actor="user:test"))
            return
        loaded = await store.load(cmd.job_id)
        out = await store.apply(
            StartJob(job_id=cmd.job_id, now=_now(), actor="worker:w", worker_id="w", run=1), loaded
        )
        for p in (25.0, 50.0, 75.0):
            out = await store.apply(
                ReportProgress(
                    job_id=cmd.job_id, now=_now(), actor="worker:w", attempt=1, progress=p
                ),
                Loaded(out.state, out.last_seq),
            )
        if n % 3 == 0:
            return  # stays running
        await store.apply(
            CompleteJob(
                job_id=cmd.job_id, now=_now(), actor="worker:w", attempt=1, result={"n": n}
            ),
            Loaded(out.state, out.last_seq),
        )
        if n % 7 == 0:
            await store.execute(DeleteJob(job_id=cmd.job_id, now=_now(), actor="user:test"))

    sem = asyncio.Semaphore(32)

    async def bounded(n: int, cmd: SubmitJob) -> None:
        async with sem:
            await life(n, cmd)

    await asyncio.gather(*(bounded(n, c) for n, c in enumerate(submits)))
    return await last_event_sequence(store.getter)


def start_projector(nats_url: str, database_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "NATS_URL": nats_url,
        "DATABASE_URL": database_url,
        "CONVEYOR_BATCH_SIZE": "50",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor_cli.main", "projector"],
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_projector_killed_mid_stream_ends_equal_to_a_fresh_projection(
    nc: Client,
    nats_url: str,
    database_url: str,
    pg_admin_url: str,
    template_db: str,
    tmp_path: Path,
) -> None:
    last = await write_history(nc)
    assert last > 4 * JOBS
    pool = await create_pool(database_url)
    reads = ReadModel(pool)
    rng = random.Random(7)
    kills_mid_stream = 0
    try:
        for _ in range(40):
            proc = start_projector(nats_url, database_url, tmp_path / "projector.log")
            await asyncio.sleep(rng.uniform(0.3, 1.2))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            checkpoint = await reads.checkpoint()
            kills_mid_stream += 0 < checkpoint < last
            if checkpoint == last:
                break
        assert kills_mid_stream >= 1, "no kill landed while the projector was mid-stream"
        log = tmp_path / "final.log"
        proc = start_projector(nats_url, database_url, log)
        for _ in range(300):
            if "projecting from" in log.read_text() and await reads.checkpoint() == last:
                break
            await asyncio.sleep(0.1)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        assert await reads.checkpoint() == last

        report = await verify(nc, pool)
        assert report.ok, report.render()

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
            mine = [job_id for job_id in live if job_id.startswith("01KPROJ")]
            assert len(mine) == JOBS - len(deleted)
        finally:
            await fresh_pool.close()
    finally:
        await pool.close()
