"""Recurring schedules on the real nats-server, below the API: what a tick is, that one
tick is one job however often it is taken, and what becomes of ticks missed while
nats-server or every API process was down (issue 11).

- each tick is stored on its second, and names the next tick, which is the one that follows
  it: so the second a tick was stored in is the tick's time (``ticks.py`` derives the job's
  id from it), and the API's own next tick (``cron.py``) is the server's;
- a tick handled twice (a redelivery, a second API process) is one job: the second
  ``job.submitted`` is refused by the log; with random ids (the control) it is two;
- ticks fired while no API process ran wait in the stream and make their jobs, late, each
  with its own tick's id;
- ticks due while nats-server was down are not fired late, not even once: after the restart
  the schedule resumes at its next tick.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import msgspec
import nats
import pytest
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from conveyor_api import cron
from conveyor_api.ids import new_job_id
from conveyor_api.scheduling import Definition, JobTemplate, tick_job_id
from conveyor_api.ticks import IdOf, TickRunner, tick_counter
from conveyor_bus import JetStreamEventStore, ensure_topology
from conveyor_bus.schedules import JetStreamSchedules, Tick, TickConsumer
from conveyor_cli.dev.embedded import NatsServer
from conveyor_events import CommandHandler, JobSubmitted, names
from support.schedules import StoredTick, stored_ticks

pytestmark = [pytest.mark.integration, pytest.mark.timeout(90)]


@pytest.fixture
async def client(server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    await ensure_topology(nc, ack_wait_s=3)
    try:
        yield nc
    finally:
        await nc.close()


def definition(name: str, text: str, tz: str = "UTC") -> Definition:
    now = datetime.now(UTC)
    return Definition(
        name=name,
        cron=text,
        timezone=tz,
        job=JobTemplate(type="noop"),
        created_at=now,
        updated_at=now,
    )


async def schedule(nc: Client, name: str, text: str, tz: str = "UTC") -> None:
    body = msgspec.json.encode(definition(name, text, tz))
    server = cron.parse(text).server
    await JetStreamSchedules(nc).put(name, body, expected_seq=0, cron=server, timezone=tz)


async def take(consumer: TickConsumer, n: int, timeout: float) -> list[Tick]:
    got: list[Tick] = []
    deadline = time.monotonic() + timeout
    while len(got) < n:
        assert time.monotonic() < deadline, f"{len(got)} of {n} ticks within {timeout}s"
        got += await consumer.fetch(n - len(got), timeout=1.0)
    return got


def runner(nc: Client, id_of: IdOf | None = None) -> TickRunner:
    """An API process's tick handling (``handle``), its consumer unused: ticks are taken by
    the test."""
    counter = tick_counter(CollectorRegistry())
    handler = CommandHandler(JetStreamEventStore(nc))
    return TickRunner(TickConsumer(nc), handler, counter, id_of=id_of)


async def submissions(nc: Client, job_ids: list[str]) -> dict[str, list[JobSubmitted]]:
    store = JetStreamEventStore(nc)
    out = {}
    for job_id in job_ids:
        history = await store.history(job_id)
        out[job_id] = [e.event for e in history if isinstance(e.event, JobSubmitted)]
    return out


async def test_a_tick_is_stored_on_its_second_and_names_the_next_one(client: Client) -> None:
    await schedule(client, "paris", "* * * * * *", "Europe/Paris")
    await schedule(client, "york", "*/2 * * * * *", "America/New_York")
    consumer = TickConsumer(client)
    try:
        ticks = await take(consumer, 6, timeout=8)
    finally:
        await consumer.close()
    for tick in ticks:
        await tick.ack()
    await asyncio.sleep(2.2)  # each schedule fires again: every tick has a successor
    for name, text, tz in [
        ("paris", "* * * * * *", "Europe/Paris"),
        ("york", "*/2 * * * * *", "America/New_York"),
    ]:
        stored = await stored_ticks(client, name)
        assert len(stored) >= 2
        for one, following in itertools.pairwise(stored):
            assert one.time.microsecond < 200_000  # on the second
            second = one.time.replace(microsecond=0)
            announced = datetime.fromisoformat(one.headers[names.HEADER_SCHEDULE_NEXT])
            assert announced == following.time.replace(microsecond=0)  # the next tick
            assert announced.utcoffset() == ZoneInfo(tz).utcoffset(second.replace(tzinfo=None))
            assert cron.parse(text).after(second, ZoneInfo(tz)) == announced  # ours agrees
            assert one.headers[names.HEADER_SCHEDULER] == names.schedule_subject(name)
    delivered = {(t.name, t.at_ns // 10**9) for t in ticks}
    in_stream = {(n, s.second) for n in ("paris", "york") for s in await stored_ticks(client, n)}
    assert delivered <= in_stream  # the delivery's time is the stored tick's


async def test_a_tick_taken_twice_is_one_job_and_the_second_is_refused(
    client: Client, server: NatsServer
) -> None:
    await schedule(client, "twice", "* * * * * *")
    other = await nats.connect(server.url)  # a second API process
    try:
        [tick] = await take(TickConsumer(client), 1, timeout=5)
        first, second = runner(client), runner(other)
        assert await first.handle(tick) == "created"
        assert await second.handle(tick) == "duplicate"
        assert await first.handle(tick) == "duplicate"  # a redelivery
    finally:
        await other.close()
    job_id = tick_job_id("twice", tick.at_ns // 10**9)
    [only] = (await submissions(client, [job_id]))[job_id]
    assert only.actor == "schedule:twice"
    assert only.data.type == "noop"


async def test_control_with_random_ids_a_tick_taken_twice_is_two_jobs(client: Client) -> None:
    """Shows the test above can fail: the log refuses the second job only because both
    attempts derive the same id."""
    await schedule(client, "control", "* * * * * *")
    made: list[str] = []

    def random_id(name: str, tick_s: int) -> str:
        made.append(new_job_id(tick_s * 1000))
        return made[-1]

    [tick] = await take(TickConsumer(client), 1, timeout=5)
    control = runner(client, id_of=random_id)
    assert [await control.handle(tick), await control.handle(tick)] == ["created", "created"]
    jobs = await submissions(client, made)
    assert [len(s) for s in jobs.values()] == [1, 1]  # two jobs for one tick


async def test_ticks_fired_while_no_api_ran_make_their_jobs_late(client: Client) -> None:
    await schedule(client, "backlog", "* * * * * *")
    await asyncio.sleep(3.5)  # nobody consumes: the ticks wait in the stream
    schedules = JetStreamSchedules(client)
    current = await schedules.get("backlog")
    assert current is not None
    body = msgspec.json.encode(definition("backlog", "* * * * * *"))
    await schedules.put("backlog", body, expected_seq=current.seq, cron=None, timezone="UTC")
    await asyncio.sleep(0.5)  # paused: the count below is final
    fired = await stored_ticks(client, "backlog")
    assert len(fired) >= 3
    late = runner(client)
    ticks = await take(TickConsumer(client), len(fired), timeout=5)
    assert [await late.handle(t) for t in ticks] == ["created"] * len(fired)
    ids = [tick_job_id("backlog", s.second) for s in fired]
    assert [len(s) for s in (await submissions(client, ids)).values()] == [1] * len(fired)


async def test_ticks_due_while_nats_server_was_down_are_skipped_not_fired_late(
    server: NatsServer, client: Client
) -> None:
    await schedule(client, "outage", "*/4 * * * * *")
    deadline = time.monotonic() + 6
    while not (before := await stored_ticks(client, "outage")):
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)
    stopped_at = datetime.now(UTC)
    server.stop(signal.SIGKILL)
    await asyncio.sleep(9.5)  # two ticks fall due while it is down
    restarted_at = datetime.now(UTC)
    server.start()
    deadline = time.monotonic() + 15
    while len(after := await _retry(client, "outage")) < len(before) + 2:
        assert time.monotonic() < deadline, "the schedule did not resume after the restart"
        await asyncio.sleep(0.2)
    times = [t.time.replace(microsecond=0) for t in after]
    assert all(t.second % 4 == 0 for t in times)  # every tick on the cron, none in between
    assert not [t for t in times if stopped_at < t < restarted_at]  # none while down
    resumed = [t for t in times if t > restarted_at]
    assert resumed[0] - restarted_at < timedelta(seconds=4 + 1)  # its first tick after it
    assert len(times) == len(before) + len(resumed)  # and nothing late for the missed ones


async def _retry(nc: Client, name: str) -> list[StoredTick]:
    """A read while the client reconnects to the restarted server."""
    for _ in range(50):
        try:
            return await stored_ticks(nc, name)
        except Exception:
            await asyncio.sleep(0.2)
    return await stored_ticks(nc, name)
