"""A read model rebuilt beside the live one, then switched in (``conveyor replay``, ADR 0018).

The rebuild's tables are created by the same migrations as the live ones, in the schema
:data:`REBUILD_SCHEMA` (first on the rebuild's ``search_path``, the live path after it, so
that extensions' operators and functions resolve), and filled by a projector writing through
that path. The switch is one transaction: it takes the handover lock (which every writer of
the live read model holds, shared, for each of its transactions), so the live projector stands
still; the caller catches the rebuild up to the log's end meanwhile; then every rebuilt table
moves into the live schema, the live ones into :data:`RETIRED_SCHEMA`. ``ALTER TABLE ... SET
SCHEMA`` takes an ACCESS EXCLUSIVE lock and invalidates every plan cached on the table, so a
read waits for the commit and then resolves the name again: it answers the new rows
(tests/integration/test_relation_switch_facts.py).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg

from conveyor_db.migrations import migrate

REBUILD_SCHEMA = "conveyor_rebuild"
RETIRED_SCHEMA = "conveyor_retired"

KEPT_TABLES = frozenset({"schema_migrations"})
"""Tables the switch leaves in place: what is not derived from the log. Every other table the
migrations create is part of the read model and rebuilt."""

HANDOVER_LOCK = 0x636F6E7601
"""Advisory lock: shared by each transaction that writes the live read model, exclusive for
the switch."""
REPLAY_LOCK = 0x636F6E7602
"""Advisory lock held by a replay for as long as it runs (one replay at a time)."""

SWITCH_LOCK_TIMEOUT = "200ms"
"""How long the switch waits for the live tables' locks before it gives up and tries again:
the longest any read waits behind it (the API's read timeout is seconds)."""
HANDOVER_TIMEOUT = "10s"
"""How long the switch waits for the live projector's transaction to end."""


class RebuildError(Exception):
    """The read model cannot be rebuilt beside the live one."""


class ReplayRunning(RebuildError):
    """Another replay is running."""

    def __init__(self, pid: int | None, since: str | None) -> None:
        who = f"PostgreSQL backend {pid}, since {since}" if pid else "its backend unknown"
        super().__init__(
            f"another conveyor replay is running ({who}); wait for it to finish, or end it"
        )


class Unmovable(RebuildError):
    """The migrations create objects that the switch cannot move."""


class Behind(RebuildError):
    """The rebuild's checkpoint is behind the live one's."""


@dataclass(frozen=True, slots=True)
class Switched:
    tables: list[str]
    checkpoint: int
    """The rebuilt model's checkpoint at the switch."""
    live_checkpoint: int
    """The live model's checkpoint at the switch (at most ``checkpoint``)."""


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def handover_lock(conn: asyncpg.Connection) -> None:
    """Hold the handover lock, shared, until the transaction ends: the first statement of
    every transaction that writes the live read model, so that a switch never happens in
    its middle and the tables it names afterwards are the switched ones."""
    await conn.execute("SELECT pg_advisory_xact_lock_shared($1)", HANDOVER_LOCK)


@asynccontextmanager
async def replay_lock(conn: asyncpg.Connection) -> AsyncIterator[None]:
    """Hold :data:`REPLAY_LOCK` on this connection (released when it ends, also on a crash);
    :class:`ReplayRunning` when another replay holds it."""
    if not await conn.fetchval("SELECT pg_try_advisory_lock($1)", REPLAY_LOCK):
        holder = await conn.fetchrow(
            "SELECT a.pid, a.backend_start::text AS since FROM pg_locks l"
            " JOIN pg_stat_activity a ON a.pid = l.pid WHERE l.locktype = 'advisory'"
            " AND l.granted AND (l.classid::int8 << 32 | l.objid::int8) = $1",
            REPLAY_LOCK,
        )
        raise ReplayRunning(holder["pid"] if holder else None, holder["since"] if holder else None)
    try:
        yield
    finally:
        if not conn.is_closed():
            await conn.execute("SELECT pg_advisory_unlock($1)", REPLAY_LOCK)


async def live_schema(conn: asyncpg.Connection) -> str:
    """The schema of the live read model: where ``schema_migrations`` resolves."""
    name = await conn.fetchval(
        "SELECT n.nspname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE c.oid = to_regclass('schema_migrations')"
    )
    if name is None:
        raise RebuildError("the database is not migrated (no schema_migrations table)")
    return str(name)


async def rebuild_search_path(conn: asyncpg.Connection) -> str:
    """The rebuild's ``search_path``: its schema, then this connection's path."""
    path = await conn.fetchval("SELECT current_setting('search_path')")
    return f"{quote(REBUILD_SCHEMA)}, {path}"


async def leftover_checkpoint(conn: asyncpg.Connection) -> int | None:
    """How far a rebuild left by an earlier replay got (None when there is none)."""
    if not await conn.fetchval(
        "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = $1)", REBUILD_SCHEMA
    ):
        return None
    if not await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{quote(REBUILD_SCHEMA)}.projector_checkpoint"
    ):
        return 0
    seq = await conn.fetchval(
        f"SELECT max(last_seq) FROM {quote(REBUILD_SCHEMA)}.projector_checkpoint"
    )
    return int(seq or 0)


async def drop_side_schemas(conn: asyncpg.Connection, lock_timeout: str = "5s") -> None:
    """Drop a rebuild and retired tables that an earlier replay left behind."""
    async with conn.transaction():
        await conn.execute(f"SET LOCAL lock_timeout = '{lock_timeout}'")
        await conn.execute(
            f"DROP SCHEMA IF EXISTS {quote(REBUILD_SCHEMA)}, {quote(RETIRED_SCHEMA)} CASCADE"
        )


async def create_rebuild(conn: asyncpg.Connection) -> list[str]:
    """Create :data:`REBUILD_SCHEMA` and apply every migration in it (``conn``'s search_path
    must be :func:`rebuild_search_path`); returns the migrations applied. Refuses, before any
    row is projected, migrations that create what the switch cannot move."""
    await conn.execute(f"CREATE SCHEMA {quote(REBUILD_SCHEMA)}")
    if await conn.fetchval("SELECT (current_schemas(false))[1]") != REBUILD_SCHEMA:
        raise RebuildError(f"the rebuild's search_path does not start with {REBUILD_SCHEMA}")
    applied = await migrate(conn)
    problems = await unmovable(conn, REBUILD_SCHEMA)
    if problems:
        raise Unmovable(
            "conveyor replay can rebuild beside the live read model only tables, their"
            " indexes and sequences, and views; the migrations create "
            + ", ".join(problems)
            + ": use conveyor replay --in-place"
        )
    return applied


async def unmovable(conn: asyncpg.Connection, schema: str) -> list[str]:
    """Objects in ``schema`` that moving its tables would leave behind: functions, types of
    their own, extensions, sequences no column owns."""
    rows = await conn.fetch(
        "SELECT 'function ' || p.proname AS what FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = $1"
        " UNION ALL SELECT 'type ' || t.typname FROM pg_type t"
        " JOIN pg_namespace n ON n.oid = t.typnamespace WHERE n.nspname = $1"
        " AND t.typrelid = 0 AND NOT EXISTS (SELECT FROM pg_type e"
        "  WHERE e.oid = t.typelem AND e.typrelid <> 0)"
        " UNION ALL SELECT 'extension ' || x.extname FROM pg_extension x"
        " JOIN pg_namespace n ON n.oid = x.extnamespace WHERE n.nspname = $1"
        " UNION ALL SELECT 'sequence ' || c.relname FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1"
        " AND c.relkind = 'S' AND NOT EXISTS (SELECT FROM pg_depend d"
        "  WHERE d.objid = c.oid AND d.classid = 'pg_class'::regclass AND d.deptype IN ('a', 'i'))"
        " ORDER BY 1",
        schema,
    )
    return [r["what"] for r in rows]


_KINDS = {"r": "TABLE", "p": "TABLE", "v": "VIEW", "m": "MATERIALIZED VIEW"}


async def rebuilt_relations(conn: asyncpg.Connection) -> list[tuple[str, str]]:
    """(name, kind keyword) of every table and view of the rebuild but the kept ones."""
    rows = await conn.fetch(
        "SELECT c.relname, c.relkind::text AS kind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm') ORDER BY c.relname",
        REBUILD_SCHEMA,
    )
    return [(r["relname"], _KINDS[r["kind"]]) for r in rows if r["relname"] not in KEPT_TABLES]


async def take_handover(conn: asyncpg.Connection) -> None:
    """Start of the switch (caller's transaction): wait for the live projector's transaction
    to end and keep the next one from starting, until this transaction ends."""
    await conn.execute(f"SET LOCAL lock_timeout = '{HANDOVER_TIMEOUT}'")
    await conn.execute("SELECT pg_advisory_xact_lock($1)", HANDOVER_LOCK)


async def checkpoint_of(conn: asyncpg.Connection, schema: str, name: str = "projector") -> int:
    seq = await conn.fetchval(
        f"SELECT last_seq FROM {quote(schema)}.projector_checkpoint WHERE name = $1", name
    )
    return int(seq or 0)


async def switch_tables(conn: asyncpg.Connection, live: str) -> Switched:
    """The rest of the switch (caller's transaction, after :func:`take_handover` and the
    rebuild's catch-up): lock the live tables (at most :data:`SWITCH_LOCK_TIMEOUT`, else
    ``asyncpg.LockNotAvailableError``: roll back and try again), move them into
    :data:`RETIRED_SCHEMA` and the rebuilt ones into ``live``. Dead letters keep the time
    they were first parked."""
    relations = await rebuilt_relations(conn)
    live_checkpoint = await checkpoint_of(conn, live)
    checkpoint = await checkpoint_of(conn, REBUILD_SCHEMA)
    if checkpoint < live_checkpoint:
        raise Behind(
            f"the rebuild is at sequence {checkpoint}, behind the live read model's"
            f" {live_checkpoint}"
        )
    existing = {
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = $1",
            live,
        )
    }
    old = [(name, kind) for name, kind in relations if name in existing]
    await conn.execute("SET LOCAL idle_in_transaction_session_timeout = '5s'")
    await conn.execute(f"SET LOCAL lock_timeout = '{SWITCH_LOCK_TIMEOUT}'")
    tables = [name for name, kind in old if kind == "TABLE"]
    if tables:
        await conn.execute(
            "LOCK TABLE "
            + ", ".join(f"{quote(live)}.{quote(t)}" for t in tables)
            + " IN ACCESS EXCLUSIVE MODE"
        )
    if "dead_letters" in tables:
        await conn.execute(
            f"UPDATE {quote(REBUILD_SCHEMA)}.dead_letters AS d SET parked_at = o.parked_at"
            f" FROM {quote(live)}.dead_letters AS o WHERE o.seq = d.seq"
            " AND o.parked_at < d.parked_at"
        )
    await conn.execute(f"CREATE SCHEMA {quote(RETIRED_SCHEMA)}")
    for name, kind in old:
        await conn.execute(
            f"ALTER {kind} {quote(live)}.{quote(name)} SET SCHEMA {quote(RETIRED_SCHEMA)}"
        )
    for name, kind in relations:
        await conn.execute(
            f"ALTER {kind} {quote(REBUILD_SCHEMA)}.{quote(name)} SET SCHEMA {quote(live)}"
        )
    return Switched([name for name, _ in relations], checkpoint, live_checkpoint)
