"""``conveyor replay`` beside the live read model, against real NATS and PostgreSQL, with the
live projector running in this process (ADR 0018): a second replay is refused while one runs,
a replay that dies mid-way leaves the live model as it was and its partial rebuild is dropped
(at once, or by the next replay after a kill), and after the switch the live projector
forgets the rows it cached from the old tables."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import msgspec
import pytest
from nats.aio.client import Client

from conveyor_bus import JetStreamEventStore
from conveyor_bus.reader import last_event_sequence
from conveyor_cli.replay import Progress, replay_beside
from conveyor_db import ReadModel, create_pool
from conveyor_db.rebuild import (
    REBUILD_SCHEMA,
    ReplayRunning,
    create_rebuild,
    rebuild_search_path,
    replay_lock,
)
from conveyor_events import JobStarted, JobSubmitted, Write
from conveyor_events.events import StartedData, SubmittedData
from conveyor_projector.projector import Projector
from support.histories import write_histories

pytestmark = pytest.mark.integration


class Quiet(Progress):
    def __init__(self) -> None:
        super().__init__(bar=False)
        self.lines: list[str] = []

    def say(self, line: str) -> None:
        self.lines.append(line)


class Crash(Quiet):
    """Dies at the first progress report: mid-rebuild, before the switch."""

    def update(self, label: str, position: int, until: int) -> None:
        raise RuntimeError("the replay died")


@pytest.fixture
async def live(nc: Client, pool: asyncpg.Pool) -> AsyncIterator[Projector]:
    """The live projector, running."""
    projector = Projector(nc, pool, fetch_timeout_s=0.2)
    stop = asyncio.Event()
    task = asyncio.create_task(projector.run(stop))
    try:
        yield projector
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def caught_up(nc: Client, reads: ReadModel) -> int:
    last = await last_event_sequence(JetStreamEventStore(nc).getter)
    for _ in range(300):
        if await reads.checkpoint() >= last:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"the live projector is at {await reads.checkpoint()}, the log at {last}")


async def schema_exists(pool: asyncpg.Pool) -> bool:
    return bool(
        await pool.fetchval(
            "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", REBUILD_SCHEMA
        )
    )


async def test_a_second_replay_is_refused_while_one_runs(
    nc: Client, database_url: str, pool: asyncpg.Pool
) -> None:
    async with pool.acquire() as holder, replay_lock(holder):
        with pytest.raises(ReplayRunning, match=rf"backend {holder.get_server_pid()}, since"):
            await replay_beside(nc, database_url, Quiet())
        assert not await schema_exists(pool)


async def test_a_replay_that_dies_leaves_the_live_model_and_its_rebuild_is_dropped(
    nc: Client, nats_url: str, database_url: str, pool: asyncpg.Pool, live: Projector
) -> None:
    await write_histories(nats_url, 300, 5)
    reads = ReadModel(pool)
    last = await caught_up(nc, reads)
    before = await reads.snapshot()

    with pytest.raises(RuntimeError, match="the replay died"):
        await replay_beside(nc, database_url, Crash())
    assert not await schema_exists(pool)
    assert await reads.snapshot() == before

    # a replay killed mid-way leaves its partial rebuild: the next one drops it
    async with pool.acquire() as conn:
        path = await rebuild_search_path(conn)
    build = await asyncpg.connect(database_url, server_settings={"search_path": path})
    try:
        await create_rebuild(build)
    finally:
        await build.close()
    partial = await create_pool(database_url, search_path=path)
    try:
        await Projector(nc, partial, handover=False).catch_up(last // 2)
    finally:
        await partial.close()
    assert await reads.snapshot() == before
    progress = Quiet()
    done = await replay_beside(nc, database_url, progress)
    assert progress.lines[0] == (
        f"dropping the partial rebuild an earlier replay left (at sequence {last // 2})"
    )
    assert done.switched.checkpoint == last == await caught_up(nc, reads)
    after = await reads.snapshot()
    assert (after.checkpoint, after.rows, after.dead_letters) == (
        before.checkpoint,
        before.rows,
        before.dead_letters,
    )
    assert not await schema_exists(pool)


async def test_after_the_switch_the_live_projector_forgets_rows_of_the_old_tables(
    nc: Client, database_url: str, pool: asyncpg.Pool, live: Projector
) -> None:
    store = JetStreamEventStore(nc)
    reads = ReadModel(pool)
    submitted = JobSubmitted(
        job_id="01KREPLAYCACHE000000000000",
        at=_now(),
        actor="user:anonymous",
        data=SubmittedData(type="noop", payload={"n": 1}),
    )
    await store.append([Write(submitted.job_id, [submitted], expected_seq=0)])
    await caught_up(nc, reads)
    cached = live._cache[submitted.job_id]
    # what the old tables' row was as this projector remembers it (say, an older fold's)
    live._cache[submitted.job_id] = msgspec.structs.replace(cached, payload={"n": "stale"})

    await replay_beside(nc, database_url, Quiet())
    started = JobStarted(
        job_id=submitted.job_id,
        at=_now(),
        actor="worker:w",
        data=StartedData(attempt=1, worker_id="w"),
    )
    await store.append([Write(submitted.job_id, [started], expected_seq=None)])
    await caught_up(nc, reads)
    row = await reads.get(submitted.job_id)
    assert row is not None
    assert (row.status, row.payload) == ("running", {"n": 1})


def _now() -> datetime:
    return datetime.now(UTC)
