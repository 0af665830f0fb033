"""The ``dead_letters`` table: events of the log the projector parked instead of applying."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import asyncpg

RAW_LIMIT = 64 * 1024
"""Bytes of a parked message kept (its size is recorded in full)."""

_INSERT = (
    "INSERT INTO dead_letters (seq, subject, job_id, kind, reason, raw, raw_size)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (seq) DO NOTHING"
)
_SELECT = "SELECT seq, subject, job_id, kind, reason, raw, raw_size, parked_at FROM dead_letters"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    seq: int
    """Stream sequence of the message in the log."""
    subject: str
    job_id: str | None
    kind: str
    """One of ``conveyor_events.poison.POISON_KINDS``."""
    reason: str
    raw: bytes
    """The message as stored, up to :data:`RAW_LIMIT` bytes."""
    raw_size: int
    parked_at: datetime | None = None

    @classmethod
    def of(
        cls, seq: int, subject: str, job_id: str | None, kind: str, reason: str, raw: bytes
    ) -> DeadLetter:
        return cls(seq, subject, job_id, kind, reason, raw[:RAW_LIMIT], len(raw))


async def save_dead_letters(conn: asyncpg.Connection, letters: Sequence[DeadLetter]) -> None:
    """Park messages (caller's transaction); parking one twice keeps the first row."""
    if letters:
        await conn.executemany(
            _INSERT,
            [(d.seq, d.subject, d.job_id, d.kind, d.reason, d.raw, d.raw_size) for d in letters],
        )


async def load_dead_letters(conn: asyncpg.Connection, until_seq: int) -> list[DeadLetter]:
    """Parked messages up to ``until_seq``, in log order."""
    rows = await conn.fetch(f"{_SELECT} WHERE seq <= $1 ORDER BY seq", until_seq)
    return [DeadLetter(**dict(r)) for r in rows]


async def page_dead_letters(
    conn: asyncpg.Connection, *, before_seq: int | None, limit: int, kind: str | None = None
) -> list[DeadLetter]:
    """Parked messages newest first: at most ``limit``, before ``before_seq`` when given,
    only of ``kind`` when given (what ``GET /api/v1/dead-letters`` pages through)."""
    rows = await conn.fetch(
        f"{_SELECT} WHERE ($1::bigint IS NULL OR seq < $1) AND ($2::text IS NULL OR kind = $2)"
        " ORDER BY seq DESC LIMIT $3",
        before_seq,
        kind,
        limit,
    )
    return [DeadLetter(**dict(r)) for r in rows]
