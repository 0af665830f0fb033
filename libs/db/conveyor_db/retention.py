"""Retention of the read model: terminal jobs older than a setting leave ``jobs`` in bounded
batches, each replaced by a marker in ``pruned_jobs`` (migrations/008_retention.sql); the log
keeps them. The counts of ``job_counts`` move in the same statement."""

from __future__ import annotations

from datetime import datetime

import asyncpg

_PRUNE = """
WITH gone AS (
    DELETE FROM jobs WHERE id IN (
        SELECT id FROM jobs
        WHERE finished_at < $1 AND status IN ('completed', 'failed', 'stopped')
        ORDER BY finished_at LIMIT $2
    )
    RETURNING id, status, priority, finished_at, seq
), counted AS (
    UPDATE job_counts AS c SET n = c.n - g.n
    FROM (SELECT status, priority, count(*) AS n FROM gone GROUP BY status, priority) AS g
    WHERE c.status = g.status AND c.priority = g.priority
)
INSERT INTO pruned_jobs (id, seq, finished_at)
SELECT id, seq, finished_at FROM gone
ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, finished_at = EXCLUDED.finished_at,
    pruned_at = now()
RETURNING id
"""


async def prune_terminal(conn: asyncpg.Connection, before: datetime, limit: int) -> list[str]:
    """Prune up to ``limit`` completed, failed or stopped jobs that finished before ``before``,
    oldest first (caller's transaction); their ids."""
    return [r["id"] for r in await conn.fetch(_PRUNE, before, limit)]


async def is_pruned(conn: asyncpg.Connection, job_id: str) -> bool:
    return bool(
        await conn.fetchval("SELECT EXISTS (SELECT FROM pruned_jobs WHERE id = $1)", job_id)
    )
