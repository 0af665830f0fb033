"""Every filter of the job list on PostgreSQL (conveyor_db.search): status, priority, type,
worker, q (an id prefix, or text in the payload or the error), the created/finished ranges and
the cursor, alone and together, each compared with the same filter applied in Python to the
rows written, paged through with a small limit. And the facts the plans rest on: each filter
has an index the planner can use for it (docs/performance.md has the plans at 1M jobs)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from conveyor_db import JobFilter, ReadModel, create_pool, save_projection
from conveyor_db.search import first_id_at, list_query, searches_text
from conveyor_events import ErrorInfo, JobState

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 1, tzinfo=UTC)
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def job(i: int, rng: random.Random) -> JobState:
    created = T0 + timedelta(minutes=10 * i)
    status = rng.choice(["pending", "running", "completed", "completed", "failed", "stopped"])
    suffix = "".join(rng.choice(CROCKFORD) for _ in range(16))
    finished = created + timedelta(seconds=rng.randrange(1, 7200))
    terminal = status in ("completed", "failed", "stopped")
    return JobState(
        id=first_id_at(created)[:10] + suffix,
        type=rng.choice(["noop", "sleep", "resize-image"]),
        priority=rng.choice(["high", "regular"]),
        payload={"url": f"https://img.example/{rng.choice(['cat', 'dog', 'owl'])}-{i}.png"},
        status=status,  # type: ignore[arg-type]
        error=ErrorInfo("CardDeclined", f"declined for order {1000 + i}")
        if status == "failed"
        else None,
        worker_id=None if status == "pending" else f"worker-{i % 4}",
        attempt=0 if status == "pending" else 1,
        created_at=created,
        started_at=None if status == "pending" else created,
        finished_at=finished if terminal else None,
        updated_at=finished if terminal else created,
    )


JOBS = [job(i, random.Random(i)) for i in range(240)]
AT = [j.created_at for j in JOBS]
A_FAILURE = next(i for i, j in enumerate(JOBS) if j.status == "failed" and i > 100)


def matches(j: JobState, f: JobFilter) -> bool:
    text = f"{j.payload} {j.error}".lower()
    end = j.finished_at
    q_ok = f.q is None or (j.id.startswith(f.q) or (searches_text(f.q) and f.q.lower() in text))
    return (
        (not f.statuses or j.status in f.statuses)
        and (f.priority is None or j.priority == f.priority)
        and (f.type is None or j.type == f.type)
        and (f.worker is None or j.worker_id == f.worker)
        and q_ok
        and (f.created_after is None or j.created_at >= f.created_after)
        and (f.created_before is None or j.created_at < f.created_before)
        and (f.finished_after is None or (end is not None and end >= f.finished_after))
        and (f.finished_before is None or (end is not None and end < f.finished_before))
    )


FILTERS = {
    "none": JobFilter(),
    "status": JobFilter(statuses=["failed"]),
    "statuses": JobFilter(statuses=["pending", "running"]),
    "priority": JobFilter(priority="high"),
    "type": JobFilter(type="resize-image"),
    "worker": JobFilter(worker="worker-2"),
    "q id prefix": JobFilter(q=JOBS[77].id[:12]),
    "q whole id": JobFilter(q=JOBS[78].id),
    "q short id prefix": JobFilter(q=JOBS[0].id[:2]),
    "q payload": JobFilter(q="owl"),
    "q payload, another case": JobFilter(q="IMG.EXAMPLE/DOG-1"),
    "q error": JobFilter(q=f"ORDER {1000 + A_FAILURE}"),
    "q miss": JobFilter(q="zebra"),
    "q wildcards only": JobFilter(q="%_%"),
    "created after": JobFilter(created_after=AT[200]),
    "created before": JobFilter(created_before=AT[30]),
    "created window": JobFilter(created_after=AT[100], created_before=AT[140]),
    "finished after": JobFilter(finished_after=AT[180]),
    "finished before": JobFilter(finished_before=AT[50]),
    "finished window": JobFilter(finished_after=AT[60], finished_before=AT[90]),
    "everything": JobFilter(
        statuses=["completed", "failed"],
        priority="regular",
        type="sleep",
        worker="worker-1",
        q="png",
        created_after=AT[20],
        created_before=AT[220],
        finished_after=AT[10],
        finished_before=AT[230],
    ),
}


@pytest.fixture(scope="module")
async def reads(database_url: str) -> AsyncIterator[ReadModel]:
    pool = await create_pool(database_url, custom_plans=True)
    try:
        async with pool.acquire() as conn, conn.transaction():
            await save_projection(conn, JOBS, [], 1)
        yield ReadModel(pool)
    finally:
        await pool.close()


@pytest.mark.parametrize("name", FILTERS)
async def test_a_filter_lists_exactly_its_jobs_newest_first(reads: ReadModel, name: str) -> None:
    flt = FILTERS[name]
    expected = sorted((j.id for j in JOBS if matches(j, flt)), reverse=True)
    listed: list[str] = []
    cursor = None
    while True:
        page = await reads.list_jobs(flt, 7, cursor)
        listed += [j.id for j in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
    assert listed == expected
    assert name in ("q miss", "q wildcards only") or expected  # the filter selects something


async def plan(reads: ReadModel, flt: JobFilter) -> str:
    """The plan of the list query's condition when a sequential scan is the last resort (at
    this size the planner would rather read the table)."""
    sql, args = list_query(flt, 50, None)
    where, _, _ = sql.partition(" ORDER BY ")
    async with reads.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        rows = await conn.fetch(f"EXPLAIN SELECT id {where}", *args[: where.count("$")])
    return "\n".join(r[0] for r in rows)


@pytest.mark.parametrize(
    ("flt", "index"),
    [
        (JobFilter(q="owl-17"), "jobs_search_trgm"),
        (JobFilter(q="owl-17"), "jobs_id_prefix"),
        (JobFilter(worker="worker-3"), "jobs_worker_id"),
        (JobFilter(statuses=["failed"]), "jobs_status_id"),
        (JobFilter(finished_after=AT[230]), "jobs_finished_at"),
        (JobFilter(created_after=AT[230]), "jobs_created_at"),
        (JobFilter(created_before=AT[10]), "jobs_created_at"),
    ],
)
async def test_each_filter_has_an_index_the_planner_uses(
    reads: ReadModel, flt: JobFilter, index: str
) -> None:
    assert index in await plan(reads, flt)


def test_an_end_of_a_range_also_bounds_the_id_so_newest_first_starts_there() -> None:
    for flt in (JobFilter(created_before=AT[10]), JobFilter(finished_before=AT[10])):
        sql, args = list_query(flt, 50, None)
        assert "id < $2" in sql
        assert args[1] == first_id_at(AT[10] + timedelta(minutes=5))
        assert all(j.id < args[1] for j in JOBS if j.created_at < AT[10])
    far = datetime(9999, 12, 31, 23, 59, tzinfo=UTC)
    assert "id <" not in list_query(JobFilter(created_before=far), 50, None)[0]


async def test_the_trigram_extension_is_created_by_the_migration(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT extversion FROM pg_extension WHERE extname = 'pg_trgm'")
    finally:
        await conn.close()


async def test_the_text_search_estimates_from_1000_sampled_texts(database_url: str) -> None:
    """With the default 100, a rare text that one sampled payload held was estimated at 1 % of
    the table, and the planner read the whole table newest first (docs/performance.md)."""
    conn = await asyncpg.connect(database_url)
    try:
        target = await conn.fetchval(
            "SELECT attstattarget FROM pg_attribute"
            " WHERE attrelid = 'jobs_search_trgm'::regclass AND attnum = 1"
        )
        assert target == 1000
    finally:
        await conn.close()
