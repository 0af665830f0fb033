"""What ``conveyor replay``'s switch relies on, checked against the real PostgreSQL (16).

The replay builds the read model's tables in a side schema and moves them into the live one
with ``ALTER TABLE ... SET SCHEMA`` in one transaction (ADR 0018). The API's and the
projector's connections are asyncpg connections that keep prepared statements (asyncpg's
statement cache), whose plans PostgreSQL holds by relation OID. These tests pin:

- a statement asyncpg prepared before the switch reads the table moved in after it, with
  no error: the move invalidates the cached plan, which PostgreSQL plans again by name;
- a read that arrives during the switch waits for it (the move's ACCESS EXCLUSIVE lock) and
  then answers the new table's rows, committed by the switch itself, not the old ones and
  not an error; a fresh (unprepared) query does the same;
- the table's indexes go with it, and ``tableoid`` (the projector's sign that the tables
  changed under it) is the new table's;
- a cached ``SELECT *`` whose table gained a column is prepared again by asyncpg outside a
  transaction, and refused inside one (why every query names its columns);
- by contrast, ``ALTER SCHEMA ... RENAME`` takes no lock on the tables in the schema: it
  commits while another transaction is still writing to one of them, whose writes then
  split between the schema renamed away and the one renamed in (why the switch moves tables,
  and why writers take the handover lock);
- ``lock_timeout`` gives up a move that waits behind a long reader, so the switch never
  holds readers queued behind it for longer than that.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

pytestmark = pytest.mark.integration


@pytest.fixture
async def admin(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url)
    await conn.execute(
        "DROP SCHEMA IF EXISTS facts_live, facts_side, facts_old CASCADE;"
        " CREATE SCHEMA facts_live; CREATE SCHEMA facts_side; CREATE SCHEMA facts_old;"
        " CREATE TABLE facts_live.t (id int PRIMARY KEY, v text NOT NULL);"
        " CREATE TABLE facts_side.t (id int PRIMARY KEY, v text NOT NULL);"
        " CREATE INDEX t_v ON facts_side.t (v);"
        " INSERT INTO facts_live.t VALUES (1, 'old');"
        " INSERT INTO facts_side.t VALUES (1, 'new')"
    )
    try:
        yield conn
    finally:
        await conn.execute("DROP SCHEMA IF EXISTS facts_live, facts_side, facts_old CASCADE")
        await conn.close()


@pytest.fixture
async def reader(database_url: str, admin: asyncpg.Connection) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database_url, server_settings={"search_path": "facts_live"})
    try:
        yield conn
    finally:
        await conn.close()


SWITCH = (
    "ALTER TABLE facts_live.t SET SCHEMA facts_old; ALTER TABLE facts_side.t SET SCHEMA facts_live"
)


async def waiting_for_a_lock(admin: asyncpg.Connection, pid: int) -> None:
    for _ in range(200):
        if await admin.fetchval(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1", pid
        ):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"backend {pid} never waited for a lock")


async def test_a_statement_prepared_before_the_switch_reads_the_table_moved_in(
    admin: asyncpg.Connection, reader: asyncpg.Connection
) -> None:
    query = "SELECT v, tableoid::regclass::text AS rel FROM t WHERE id = $1"
    assert await reader.fetchrow(query, 1) == ("old", "t")
    before = await reader.fetchval("SELECT tableoid FROM t")
    async with admin.transaction():
        await admin.execute(SWITCH)
    assert await reader.fetchrow(query, 1) == ("new", "t")  # the same cached statement
    assert await reader.fetchval("SELECT tableoid FROM t") != before
    indexes = await admin.fetch(
        "SELECT schemaname, indexname FROM pg_indexes WHERE tablename = 't'"
        " AND schemaname LIKE 'facts_%' ORDER BY 1, 2"
    )
    assert [tuple(r) for r in indexes] == [
        ("facts_live", "t_pkey"),
        ("facts_live", "t_v"),
        ("facts_old", "t_pkey"),
    ]
    assert await admin.fetchval("SELECT v FROM facts_old.t") == "old"


@pytest.mark.parametrize("prepared", [True, False], ids=["prepared", "fresh"])
async def test_a_read_during_the_switch_waits_and_answers_the_rows_it_committed(
    admin: asyncpg.Connection, reader: asyncpg.Connection, prepared: bool
) -> None:
    query = "SELECT v FROM t WHERE id = $1"
    if prepared:
        assert await reader.fetchval(query, 1) == "old"
    else:
        query = "SELECT v FROM t WHERE id = $1 AND true"  # not in asyncpg's cache yet
    async with admin.transaction():
        await admin.execute("UPDATE facts_side.t SET v = 'newest'")  # the tail, under the switch
        await admin.execute(SWITCH)
        read = asyncio.ensure_future(reader.fetchval(query, 1))
        await waiting_for_a_lock(admin, reader.get_server_pid())
        assert not read.done()
    assert await asyncio.wait_for(read, 5) == "newest"


async def test_a_cached_select_star_is_prepared_again_outside_a_transaction_only(
    admin: asyncpg.Connection, reader: asyncpg.Connection
) -> None:
    assert [tuple(r) for r in await reader.fetch("SELECT * FROM t")] == [(1, "old")]
    async with admin.transaction():
        await admin.execute("ALTER TABLE facts_side.t ADD COLUMN extra int NOT NULL DEFAULT 7")
        await admin.execute(SWITCH)
    assert [tuple(r) for r in await reader.fetch("SELECT * FROM t")] == [(1, "new", 7)]
    await admin.execute("ALTER TABLE facts_live.t ADD COLUMN more int")
    with pytest.raises(asyncpg.InvalidCachedStatementError):
        async with reader.transaction():
            await reader.fetch("SELECT * FROM t")


async def test_a_schema_rename_does_not_wait_for_a_writer_of_its_tables(
    admin: asyncpg.Connection, reader: asyncpg.Connection
) -> None:
    """The rename commits while the writer's transaction is open; the writer's insert before
    it lands in the schema renamed away, its next one (planned again by name) in the schema
    renamed in: one transaction's writes split between the old and the new model."""
    async with reader.transaction():
        await reader.execute("INSERT INTO t VALUES (2, 'in flight')")
        await asyncio.wait_for(
            admin.execute(
                "ALTER SCHEMA facts_live RENAME TO facts_gone;"
                " ALTER SCHEMA facts_side RENAME TO facts_live"
            ),
            5,
        )
        await reader.execute("INSERT INTO t VALUES (3, 'after the rename')")
    try:
        new = await admin.fetch("SELECT v FROM facts_live.t ORDER BY id")
        gone = await admin.fetch("SELECT v FROM facts_gone.t ORDER BY id")
        assert [r["v"] for r in new] == ["new", "after the rename"]
        assert [r["v"] for r in gone] == ["old", "in flight"]
    finally:
        await admin.execute("DROP SCHEMA facts_gone CASCADE")


async def test_lock_timeout_gives_up_a_switch_stuck_behind_a_long_reader(
    admin: asyncpg.Connection, reader: asyncpg.Connection
) -> None:
    async with reader.transaction(isolation="repeatable_read"):
        await reader.fetch("SELECT v FROM t")
        with pytest.raises(asyncpg.LockNotAvailableError):
            async with admin.transaction():
                await admin.execute("SET LOCAL lock_timeout = '200ms'")
                await admin.execute(SWITCH)
    assert await reader.fetchval("SELECT v FROM t WHERE id = 1") == "old"
