"""The bus adapters while the nats-server is away (SIGKILL) and after it comes back on the
same store: fail at once, leave nothing to be written later, resume where they were."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client

import conveyor
from conveyor_bus import BusUnavailable, JetStreamEventStore, connect, ensure_topology
from conveyor_bus.reader import LogReader
from conveyor_bus.runtime import bootstrap
from conveyor_bus.settings import BusSettings
from conveyor_bus.workers import WorkerInfo, publish_heartbeat
from conveyor_cli.dev.embedded import NatsServer
from conveyor_events import CommandHandler, JobProgressed, SubmitJob, names
from conveyor_worker.settings import Settings
from conveyor_worker.worker import Worker

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(server: NatsServer) -> AsyncIterator[Client]:
    nc = await connect(server.url, "outage-test")
    await ensure_topology(nc)
    try:
        yield nc
    finally:
        await nc.close()


def submit(n: int) -> SubmitJob:
    return SubmitJob(
        job_id=f"01KOUTAGE{n:017d}", now=datetime.now(UTC), actor="user:test", type="noop"
    )


SUBMITTED_1 = names.event_subject(submit(1).job_id, "job.submitted", "regular")


async def until(connected: bool, nc: Client, timeout: float = 10) -> None:
    async with asyncio.timeout(timeout):
        while nc.is_connected != connected:  # noqa: ASYNC110 - nats-py has no such event
            await asyncio.sleep(0.02)


async def restart(server: NatsServer, nc: Client) -> None:
    """SIGKILL, and start again on the same store once the client has noticed."""
    server.stop(signal.SIGKILL)
    await until(False, nc)
    server.start()
    await until(True, nc)


async def test_a_request_made_while_away_is_written_after_the_reconnect(
    server: NatsServer, client: Client
) -> None:
    """The hazard: nats-py buffers what is published while it reconnects, so a write that
    timed out during the outage still lands later (control for the next test)."""
    server.stop(signal.SIGKILL)
    await until(False, client)
    with pytest.raises(Exception):  # noqa: B017 - nats-py's TimeoutError
        await client.request(SUBMITTED_1, b"{}", timeout=0.5)
    server.start()
    await until(True, client)
    await asyncio.sleep(0.3)
    got = await JetStreamEventStore(client).getter.all_by_subject(names.STREAM, names.EVENTS_ALL)
    assert [m.subject for m in got] == [SUBMITTED_1]


async def test_store_fails_at_once_while_away_and_leaves_nothing_behind(
    server: NatsServer, client: Client
) -> None:
    store = JetStreamEventStore(client)
    jobs = CommandHandler(store)
    server.stop(signal.SIGKILL)
    await until(False, client)
    started = time.monotonic()
    with pytest.raises(BusUnavailable):
        await jobs.submit([submit(2)])
    with pytest.raises(BusUnavailable):
        await store.load(submit(2).job_id)
    assert time.monotonic() - started < 0.5
    server.start()
    await until(True, client)
    await asyncio.sleep(0.3)
    assert (await store.load(submit(2).job_id)).state is None
    await jobs.submit([submit(3)])
    assert (await store.load(submit(3).job_id)).state is not None


async def test_log_reader_resumes_from_its_position_after_a_restart(
    server: NatsServer, client: Client
) -> None:
    store = JetStreamEventStore(client)
    jobs = CommandHandler(store)
    reader = LogReader(client, names.EVENTS_ALL, 1)
    seen: list[int] = []
    await jobs.submit([submit(n) for n in range(10, 15)])
    while len(seen) < 5:
        seen += [m.seq for m in await reader.fetch(100, timeout=0.5)]

    await restart(server, client)  # the reader's ephemeral consumer does not survive this
    await jobs.submit([submit(n) for n in range(15, 20)])
    started = time.monotonic()
    async with asyncio.timeout(10):
        while len(seen) < 10:
            try:
                seen += [m.seq for m in await reader.fetch(100, timeout=0.5)]
            except BusUnavailable:
                await asyncio.sleep(0.1)
    await reader.close()
    assert time.monotonic() - started < 3
    assert seen == sorted(set(seen)), "gap or duplicate"
    events = await store.getter.all_by_subject(names.STREAM, names.EVENTS_ALL)
    assert seen == [m.seq for m in events]


async def test_bootstrap_restores_the_topology_after_a_restart(server: NatsServer) -> None:
    """Worker presence lives in a memory stream, which a restarted server has lost."""
    nc = await bootstrap(BusSettings(nats_url=server.url), "outage-test")
    try:
        info = WorkerInfo(
            id="w-1",
            host="h",
            pid=1,
            started_at=datetime.now(UTC),
            last_heartbeat_at=datetime.now(UTC),
            concurrency=1,
            running=[],
        )
        await publish_heartbeat(nc, info)
        await restart(server, nc)
        async with asyncio.timeout(5):
            while True:
                try:
                    await publish_heartbeat(nc, info)
                    break
                except Exception:
                    await asyncio.sleep(0.1)
        stream = await nc.jetstream().stream_info(names.WORKERS_STREAM)
        assert stream.state.messages == 1
    finally:
        await nc.close()


async def finished(store: JetStreamEventStore, job_id: str) -> bool:
    state = (await store.load(job_id)).state
    return state is not None and state.status == "completed"


async def test_the_last_progress_is_written_although_nats_was_away_when_it_fell_due(
    server: NatsServer, client: Client
) -> None:
    """Progress is coalesced and "the last value is always written": a write that fails
    because NATS is away is tried again, not dropped (the worker dropped it before)."""
    reported, finish = asyncio.Event(), asyncio.Event()

    async def report(ctx: conveyor.Context, payload: dict[str, Any]) -> str:
        ctx.progress(10, "first")
        await asyncio.sleep(0.1)  # written at once
        ctx.progress(42, "last")  # due one progress interval after the first
        reported.set()
        await finish.wait()
        return "done"

    settings = Settings(
        nats_url=server.url, worker_id="outage", concurrency=1, progress_interval_s=0.6
    )
    types = conveyor.Registry()
    types.job("report")(report)
    worker = Worker(settings, client, types)
    running = asyncio.create_task(worker.run())
    store = JetStreamEventStore(client)
    job_id = "01KPR0GRESS000000000000001"
    try:
        await CommandHandler(store).submit(
            [SubmitJob(job_id=job_id, now=datetime.now(UTC), actor="user:test", type="report")]
        )
        await asyncio.wait_for(reported.wait(), 10)
        server.stop(signal.SIGKILL)
        await until(False, client)
        await asyncio.sleep(1.0)  # the write of 42 fell due, and failed
        server.start()
        await until(True, client)
        finish.set()
        async with asyncio.timeout(20):
            while not await finished(store, job_id):  # noqa: ASYNC110 - polling the log
                await asyncio.sleep(0.1)
    finally:
        worker.shutdown()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(running, 30)
    history = [e.event for e in await store.history(job_id)]
    progress = [e.data.progress for e in history if isinstance(e, JobProgressed)]
    assert progress[-1] == 42, [e.name for e in history]
    assert [e.name for e in history][-1] == "job.completed"
