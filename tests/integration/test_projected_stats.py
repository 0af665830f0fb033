"""The statistics the projector keeps (conveyor_db.stats), after a known workload written
into a real log and projected into PostgreSQL: counts by status and priority, completions
and failures per minute, run-time percentiles per type, the oldest pending job per priority;
the same again after a replay (``reset`` and a catch-up in other batches), and as
``GET /api/v1/stats`` shapes them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from nats.aio.client import Client

from conveyor_api import statsview
from conveyor_bus import DirectGetter, JetStreamEventStore, connect, ensure_topology
from conveyor_bus.reader import last_event_sequence
from conveyor_db import ReadModel, reset
from conveyor_db.stats import bucket_of, bucket_upper_s, minute_of
from conveyor_events import AnyEvent, Write
from conveyor_events import testing as ev
from conveyor_events.names import Priority
from conveyor_projector.projector import Projector

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
M1 = minute_of(NOW) - timedelta(minutes=20)
"""The minute of the first completions; the failures come in the next one."""
M2 = M1 + timedelta(minutes=1)


def job(n: int) -> str:
    return f"01KSTATS0000000000000000{n:02d}"


def workload() -> list[tuple[str, list[AnyEvent], Priority]]:
    """(job, history, priority). Submitted 30 minutes ago unless said otherwise."""
    t = M1 - timedelta(minutes=10)
    out: list[tuple[str, list[AnyEvent], Priority]] = []
    # five noops completed in minute M1, after 10, 20, 40, 80 and 1,000 ms
    for n, ms in enumerate([10, 20, 40, 80, 1000]):
        start = M1 + timedelta(seconds=n)
        out.append(
            (
                job(n),
                [
                    ev.submitted(job=job(n), at=t, type="noop", payload={}),
                    ev.started(job=job(n), at=start),
                    ev.completed(job=job(n), at=start + timedelta(milliseconds=ms)),
                ],
                "regular",
            )
        )
    # three sleeps failed for good in minute M2 (high priority)
    for n in range(5, 8):
        out.append(
            (
                job(n),
                [ev.submitted(job=job(n), at=t, priority="high"), ev.started(job=job(n), at=M2),
                 ev.failed(job=job(n), at=M2 + timedelta(seconds=n))],
                "high",
            )
        )  # fmt: skip
    # a sleep that failed once, was retried and completed after 2 s in M2
    out.append(
        (
            job(8),
            [ev.submitted(2, job=job(8), at=t), ev.started(job=job(8), at=M1),
             ev.failed(1, retry=True, retry_at=M1, job=job(8), at=M1 + timedelta(seconds=1)),
             ev.started(2, 2, job=job(8), at=M2),
             ev.completed(2, job=job(8), at=M2 + timedelta(seconds=2))],
            "regular",
        )
    )  # fmt: skip
    # a noop completed in M1 and then deleted: it counts as a completion, not as a job
    out.append(
        (
            job(9),
            [ev.submitted(job=job(9), at=t, type="noop", payload={}),
             ev.started(job=job(9), at=M1), ev.completed(job=job(9), at=M1),
             ev.deleted(job=job(9), at=M2)],
            "regular",
        )
    )  # fmt: skip
    # a stopped one, and pending ones: high waiting 30 minutes, regular since 5 minutes ago
    # (restarted then), and a regular one not due for an hour
    out.append(
        (job(10), [ev.submitted(job=job(10), at=t), ev.stopped(job=job(10), at=M1)], "regular")
    )
    out.append((job(11), [ev.submitted(job=job(11), at=t, priority="high")], "high"))
    restarted = NOW - timedelta(minutes=5)
    out.append(
        (
            job(12),
            [ev.submitted(job=job(12), at=t), ev.stopped(job=job(12), at=M1),
             ev.restarted(job=job(12), at=restarted)],
            "regular",
        )
    )  # fmt: skip
    due = NOW + timedelta(hours=1)
    out.append((job(13), [ev.submitted(job=job(13), at=NOW, run_at=due)], "regular"))
    return out


@pytest.fixture(scope="module")
async def last_seq(nats_url: str) -> int:
    nc = await connect(nats_url, "test-stats")
    try:
        await ensure_topology(nc, ack_wait_s=3)
        store = JetStreamEventStore(nc)
        for job_id, events, priority in workload():
            for event in events:  # one write per event, so batches cut histories anywhere
                write = Write(job_id, [event], expected_seq=None, priority=priority)
                await store.append([write])
        return await last_event_sequence(DirectGetter(nc))
    finally:
        await nc.close()


async def check(reads: ReadModel) -> None:
    counts = {(s, p): n for s, p, n in await reads.counts()}
    assert counts == {
        ("completed", "regular"): 6,
        ("failed", "high"): 3,
        ("stopped", "regular"): 1,
        ("pending", "high"): 1,
        ("pending", "regular"): 2,
    }
    since = NOW - timedelta(hours=1)
    assert sorted(await reads.outcomes_since(since)) == [
        (M1, "completed", 6),
        (M2, "completed", 1),
        (M2, "failed", 3),
    ]
    noop = {bucket_of(s): 1 for s in (0.01, 0.02, 0.04, 0.08, 1.0)}
    noop[0] = 1  # job 9: no time between its start and its completion
    assert await reads.run_times_since(since) == {"noop": noop, "sleep": {bucket_of(2.0): 1}}
    oldest = await reads.oldest_pending(["high", "regular"])
    assert oldest == {"high": M1 - timedelta(minutes=10), "regular": NOW - timedelta(minutes=5)}

    ages = await statsview.oldest_pending_age_s(reads, NOW)
    high = (NOW - M1 + timedelta(minutes=10)).total_seconds()
    assert ages == {"high": pytest.approx(high, abs=0.001), "regular": 300.0}
    minutes = await statsview.per_minute(reads, NOW)
    assert len(minutes) == 60 and minutes[-1].minute == minute_of(NOW)
    assert [(m.minute, m.completed, m.failed) for m in minutes if m.completed or m.failed] == [
        (M1, 6, 0),
        (M2, 1, 3),
    ]
    times = await statsview.run_times(reads, NOW)
    assert set(times) == {"noop", "sleep"}
    assert times["noop"].count == 6
    assert times["noop"].p50_s == bucket_upper_s(bucket_of(0.02))  # 3rd of 6: 0, 10, [20]
    assert times["noop"].p95_s == bucket_upper_s(bucket_of(1.0))
    assert 0.02 <= times["noop"].p50_s < 0.02 * 1.19
    assert times["sleep"].count == 1 and 2.0 <= times["sleep"].p95_s < 2.0 * 1.19


async def test_after_a_known_workload_the_stats_are_exact(
    nc: Client, pool: asyncpg.Pool, last_seq: int
) -> None:
    await Projector(nc, pool, replay_batch_size=4).catch_up(last_seq)
    await check(ReadModel(pool))


async def test_a_replay_rebuilds_the_same_stats(
    nc: Client, pool: asyncpg.Pool, last_seq: int
) -> None:
    async with pool.acquire() as conn:
        await reset(conn)
        assert await conn.fetchval("SELECT count(*) FROM job_counts") == 0
    await Projector(nc, pool, replay_batch_size=10_000).catch_up(last_seq)
    await check(ReadModel(pool))
