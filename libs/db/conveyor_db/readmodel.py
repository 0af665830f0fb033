"""The read model in PostgreSQL: what the API lists and shows, and what the projector writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from conveyor_db.deadletters import DeadLetter, load_dead_letters, save_dead_letters
from conveyor_db.rows import (
    COLUMN_TYPES,
    COLUMNS,
    SELECT_COLUMNS,
    from_row,
    init_connection,
    to_columns,
)
from conveyor_db.search import JobFilter, list_query
from conveyor_db.stats import KEEP, STATS_TABLES, StatsDelta, save_stats
from conveyor_events import JobState

_UPSERT = (
    f"INSERT INTO jobs ({SELECT_COLUMNS}) SELECT "
    + ", ".join(f"{c}::jsonb" if COLUMN_TYPES[c] == "jsonb" else c for c in COLUMNS)
    + " FROM unnest("
    + ", ".join(
        f"${i}::{'text' if COLUMN_TYPES[c] == 'jsonb' else COLUMN_TYPES[c]}[]"
        for i, c in enumerate(COLUMNS, 1)
    )
    + f") AS row_({SELECT_COLUMNS}) ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in COLUMNS[1:])
)
"""Many rows in one statement: one array per column (jsonb columns as their JSON text)."""


class DatabaseUnavailable(Exception):
    """PostgreSQL is unavailable."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The projector's checkpoint, every row and the dead letters, as of one moment."""

    checkpoint: int
    rows: list[JobState]
    dead_letters: list[DeadLetter]
    pruned: frozenset[str] = frozenset()
    """Jobs whose rows retention pruned (their history is in the log)."""


@dataclass(frozen=True, slots=True)
class Page:
    items: list[JobState]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class Tombstone:
    """A deleted job, in the ``deleted_jobs`` table: its id, the sequence of its
    ``job.deleted`` and that event's time."""

    id: str
    seq: int
    deleted_at: datetime


@dataclass(frozen=True, slots=True)
class CheckedRow:
    """A job's row (None when there is none) and the projector's checkpoint, read in one
    statement: the row is the job's state folded from every event up to ``checkpoint``."""

    state: JobState | None
    checkpoint: int
    pruned: bool = False
    """No row because retention pruned it (the log has its history)."""


async def create_pool(
    url: str,
    *,
    min_size: int = 1,
    max_size: int = 10,
    timeout: float = 5.0,
    statement_timeout_s: float | None = None,
    search_path: str | None = None,
    custom_plans: bool = False,
) -> asyncpg.Pool:
    """``statement_timeout_s``: PostgreSQL cancels any statement of the pool that runs
    longer (the API's reads), so no query holds a connection past it. ``search_path``: where
    unqualified names resolve (``conveyor replay`` writes its rebuild through one)."""
    settings = {}
    if statement_timeout_s is not None:
        settings["statement_timeout"] = f"{max(1, round(statement_timeout_s * 1000))}ms"
    if search_path is not None:
        settings["search_path"] = search_path
    if custom_plans:  # a plan for each filter's values: a rare q wants its index, not the id's
        settings["plan_cache_mode"] = "force_custom_plan"
    try:
        pool = await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            init=init_connection,
            timeout=timeout,
            command_timeout=10,
            server_settings=settings,
        )
    except (OSError, asyncpg.PostgresError, TimeoutError) as e:
        raise DatabaseUnavailable(str(e)) from e
    assert pool is not None
    return pool


CONNECTION_ERRORS = (
    OSError,
    TimeoutError,
    asyncpg.InterfaceError,
    asyncpg.PostgresConnectionError,
    asyncpg.CannotConnectNowError,
    asyncpg.OperatorInterventionError,  # also QueryCanceledError: the statement timeout
    asyncpg.UndefinedTableError,
    asyncpg.InternalClientError,
)
"""Errors that mean 'PostgreSQL is not there (yet)', answered 503; others are bugs.

InternalClientError: a pooled connection whose server has just shut down ("terminating
connection due to administrator command") refuses the next query with it until asyncpg
has noticed that the connection is gone."""


class ReadModel:
    """Queries of the API. Driver errors surface as :class:`DatabaseUnavailable`."""

    def __init__(self, pool: asyncpg.Pool, *, timeout: float = 5.0) -> None:
        self.pool = pool
        self._timeout = timeout
        self._abandoned: set[asyncio.Task[list[asyncpg.Record]]] = set()

    async def _fetch(self, sql: str, *args: object) -> list[asyncpg.Record]:
        """One query, answered within the timeout whatever PostgreSQL does. A query that
        overruns is abandoned, not awaited: cancelling it makes asyncpg cancel it on the
        server and clean up the connection, which against a hung server takes far longer
        than the timeout; that finishes in the background."""
        task = asyncio.ensure_future(self.pool.fetch(sql, *args))
        try:
            done, _ = await asyncio.wait({task}, timeout=self._timeout)
        except asyncio.CancelledError:
            task.cancel()
            raise
        if not done:
            task.cancel()
            self._abandoned.add(task)
            task.add_done_callback(self._forget)
            raise DatabaseUnavailable(f"PostgreSQL did not answer within {self._timeout}s")
        try:
            rows: list[asyncpg.Record] = task.result()
        except CONNECTION_ERRORS as e:
            raise DatabaseUnavailable(f"PostgreSQL is unavailable: {e}") from e
        return rows

    def _forget(self, task: asyncio.Task[list[asyncpg.Record]]) -> None:
        self._abandoned.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: an abandoned query's error is not news

    async def get(self, job_id: str) -> JobState | None:
        rows = await self._fetch(f"SELECT {SELECT_COLUMNS} FROM jobs WHERE id = $1", job_id)
        return from_row(rows[0]) if rows else None

    async def get_checked(self, job_id: str, name: str = "projector") -> CheckedRow:
        """The job's row and the checkpoint it is current to, from one snapshot (one
        statement; the projector writes both in one transaction)."""
        [row] = await self._fetch(
            "SELECT (SELECT last_seq FROM projector_checkpoint WHERE name = $2) AS checkpoint_,"
            " EXISTS (SELECT FROM pruned_jobs WHERE id = $1) AS pruned_,"
            f" {SELECT_COLUMNS} FROM (SELECT 1) AS one LEFT JOIN jobs ON jobs.id = $1",
            job_id,
            name,
        )
        values = dict(row)
        checkpoint = int(values.pop("checkpoint_") or 0)
        pruned = bool(values.pop("pruned_"))
        if values["id"] is None:
            return CheckedRow(None, checkpoint, pruned)
        return CheckedRow(from_row(values), checkpoint)

    async def list_jobs(self, flt: JobFilter, limit: int, cursor: str | None) -> Page:
        sql, args = list_query(flt, limit, cursor)
        rows = await self._fetch(f"SELECT {SELECT_COLUMNS} {sql}", *args)
        items = [from_row(r) for r in rows[:limit]]
        next_cursor = items[-1].id if len(rows) > limit else None
        return Page(items, next_cursor)

    async def counts(self) -> list[tuple[str, str, int]]:
        """Jobs by status and priority, as the projector counts them (``job_counts``)."""
        rows = await self._fetch("SELECT status, priority, n FROM job_counts WHERE n <> 0")
        return [(r["status"], r["priority"], int(r["n"])) for r in rows]

    async def oldest_pending(self, priorities: Sequence[str]) -> dict[str, datetime | None]:
        """Per priority, since when its longest-waiting pending job waits (not counting jobs
        whose run_at is still ahead): one probe of ``jobs_pending_since`` each."""
        rows = await self._fetch(
            "SELECT p AS priority, (SELECT GREATEST(updated_at, run_at) FROM jobs"
            " WHERE status = 'pending' AND priority = p AND GREATEST(updated_at, run_at) <= now()"
            " ORDER BY GREATEST(updated_at, run_at) LIMIT 1) AS since"
            " FROM unnest($1::text[]) AS p",
            list(priorities),
        )
        return {r["priority"]: r["since"] for r in rows}

    async def outcomes_since(self, since: datetime) -> list[tuple[datetime, str, int]]:
        """(minute, completed|failed, jobs) of the minutes from ``since`` on."""
        rows = await self._fetch(
            "SELECT minute, outcome, n FROM job_outcomes WHERE minute >= $1", since
        )
        return [(r["minute"], r["outcome"], int(r["n"])) for r in rows]

    async def run_times_since(self, since: datetime) -> dict[str, dict[int, int]]:
        """Per type, the run-time histogram (bucket: jobs) of the minutes from ``since`` on."""
        rows = await self._fetch(
            "SELECT type, bucket, sum(n) AS n FROM job_run_times WHERE minute >= $1"
            " GROUP BY type, bucket",
            since,
        )
        out: dict[str, dict[int, int]] = {}
        for r in rows:
            out.setdefault(r["type"], {})[int(r["bucket"])] = int(r["n"])
        return out

    async def completed_since(self, seconds: float) -> int:
        rows = await self._fetch(
            "SELECT count(*) AS n FROM jobs WHERE status = 'completed'"
            " AND finished_at > now() - make_interval(secs => $1)",
            seconds,
        )
        return int(rows[0]["n"])

    async def checkpoint(self, name: str = "projector") -> int:
        rows = await self._fetch("SELECT last_seq FROM projector_checkpoint WHERE name = $1", name)
        return int(rows[0]["last_seq"]) if rows else 0

    async def ping(self) -> None:
        await self._fetch("SELECT 1")

    async def all_jobs(self) -> list[JobState]:
        rows = await self._fetch(f"SELECT {SELECT_COLUMNS} FROM jobs ORDER BY id")
        return [from_row(r) for r in rows]

    async def snapshot(self, name: str = "projector") -> Snapshot:
        """The checkpoint, every row and the dead letters, read from one consistent snapshot."""
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            seq = await conn.fetchval(
                "SELECT last_seq FROM projector_checkpoint WHERE name = $1", name
            )
            rows = await conn.fetch(f"SELECT {SELECT_COLUMNS} FROM jobs ORDER BY id")
            checkpoint = int(seq or 0)
            letters = await load_dead_letters(conn, checkpoint)
            pruned = frozenset(r["id"] for r in await conn.fetch("SELECT id FROM pruned_jobs"))
        return Snapshot(checkpoint, [from_row(r) for r in rows], letters, pruned)


async def load_states(
    conn: asyncpg.Connection, job_ids: Sequence[str], pruned: set[str] | None = None
) -> dict[str, JobState]:
    """The states of these jobs as the read model holds them: their rows, and for a deleted
    job a state with ``deleted=True`` (from its tombstone), so that whatever follows its
    ``job.deleted`` in a later batch is refused as it would be within one batch. Jobs the
    read model has never seen are absent, and so are pruned ones (retention), whose ids go
    into ``pruned``: the caller folds them from the log."""
    states: dict[str, JobState] = {}
    for r in await conn.fetch(_LOAD_STATES, list(job_ids)):
        values = dict(r)
        job_id, deleted_at = values.pop("id_"), values.pop("deleted_at_")
        was_pruned = values.pop("pruned_")
        if values["id"] is not None:
            states[job_id] = from_row(values)
        elif deleted_at is not None:
            states[job_id] = deleted_state(job_id, deleted_at)
        elif was_pruned and pruned is not None:
            pruned.add(job_id)
    return states


_LOAD_STATES = (
    "SELECT ids.id AS id_, deleted_jobs.deleted_at AS deleted_at_,"
    " pruned_jobs.id IS NOT NULL AS pruned_, "
    + ", ".join(f"jobs.{c}" for c in COLUMNS)
    + " FROM unnest($1::text[]) AS ids(id)"
    " LEFT JOIN jobs ON jobs.id = ids.id LEFT JOIN deleted_jobs ON deleted_jobs.id = ids.id"
    " LEFT JOIN pruned_jobs ON pruned_jobs.id = ids.id"
    " WHERE jobs.id IS NOT NULL OR deleted_jobs.id IS NOT NULL OR pruned_jobs.id IS NOT NULL"
)
"""Rows, tombstones and pruned markers of the jobs in one statement."""


def deleted_state(job_id: str, deleted_at: datetime) -> JobState:
    """What a tombstone stands for: a job that is deleted. Only ``id`` and ``deleted`` carry
    meaning (the transitions table refuses every event after a delete whatever the rest
    says); the other fields are placeholders."""
    return JobState(
        id=job_id,
        type="",
        priority="regular",
        payload={},
        status="completed",
        created_at=deleted_at,
        updated_at=deleted_at,
        deleted=True,
    )


_LOCK_CHECKPOINT = "SELECT last_seq, tableoid FROM projector_checkpoint WHERE name = $1 FOR UPDATE"


@dataclass(frozen=True, slots=True)
class Checkpoint:
    seq: int
    table: int
    """OID of the ``projector_checkpoint`` table holding it: another one after
    ``conveyor replay`` switched the read model's tables (ADR 0018)."""


async def lock_checkpoint_row(conn: asyncpg.Connection, name: str = "projector") -> Checkpoint:
    """The checkpoint, row-locked until the transaction ends (one projector writes at a time),
    and the table it is in. One round trip once the row exists (every batch but the first)."""
    row = await conn.fetchrow(_LOCK_CHECKPOINT, name)
    if row is None:
        await conn.execute(
            "INSERT INTO projector_checkpoint (name, last_seq) VALUES ($1, 0)"
            " ON CONFLICT (name) DO NOTHING",
            name,
        )
        row = await conn.fetchrow(_LOCK_CHECKPOINT, name)
    assert row is not None
    return Checkpoint(int(row["last_seq"]), int(row["tableoid"]))


async def lock_checkpoint(conn: asyncpg.Connection, name: str = "projector") -> int:
    """The checkpoint, row-locked until the transaction ends (see :func:`lock_checkpoint_row`)."""
    return (await lock_checkpoint_row(conn, name)).seq


async def save_projection(
    conn: asyncpg.Connection,
    upserts: Sequence[JobState],
    deletes: Sequence[Tombstone],
    last_seq: int,
    name: str = "projector",
    *,
    dead_letters: Sequence[DeadLetter] = (),
    stats: StatsDelta | None = None,
    unpruned: Sequence[str] = (),
) -> None:
    """Write changed rows, replace deleted jobs' rows by their tombstones, park dead letters
    and move the checkpoint (caller's transaction)."""
    await save_dead_letters(conn, dead_letters)
    if upserts:
        await conn.execute(_UPSERT, *to_columns(upserts))
    if deletes:
        await conn.execute("DELETE FROM jobs WHERE id = ANY($1::text[])", [t.id for t in deletes])
        await conn.executemany(
            "INSERT INTO deleted_jobs (id, seq, deleted_at) VALUES ($1, $2, $3)"
            " ON CONFLICT (id) DO NOTHING",
            [(t.id, t.seq, t.deleted_at) for t in deletes],
        )
    if stats is not None:
        await save_stats(conn, stats, datetime.now(UTC) - KEEP)
    if unpruned:  # folded from the log again: a row or a tombstone now
        await conn.execute("DELETE FROM pruned_jobs WHERE id = ANY($1::text[])", list(unpruned))
    await conn.execute(
        "UPDATE projector_checkpoint SET last_seq = $2 WHERE name = $1", name, last_seq
    )


async def reset(conn: asyncpg.Connection, name: str = "projector") -> None:
    """Empty the read model (rows and tombstones) and the dead letters and rewind the
    checkpoint (``conveyor replay``; the projector parks again what it still cannot apply)."""
    async with conn.transaction():
        await conn.execute(
            f"TRUNCATE jobs, deleted_jobs, dead_letters, pruned_jobs, {', '.join(STATS_TABLES)}"
        )
        await conn.execute("DELETE FROM projector_checkpoint WHERE name = $1", name)
