"""A job's state as a ``jobs`` row and back."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg
import msgspec

from conveyor_events import Attempt, ErrorInfo, JobState

COLUMNS: tuple[str, ...] = (
    "id", "type", "priority", "payload", "status", "progress", "message", "attempt",
    "max_attempts", "timeout_s", "run_at", "result", "error", "worker_id", "stop_requested",
    "created_at", "started_at", "finished_at", "updated_at", "version", "run", "attempts_base",
    "run_base", "attempts", "seq",
)  # fmt: skip

SELECT_COLUMNS = ", ".join(COLUMNS)

COLUMN_TYPES: dict[str, str] = {
    "id": "text", "type": "text", "priority": "text", "payload": "jsonb", "status": "text",
    "progress": "float8", "message": "text", "attempt": "int4", "max_attempts": "int4",
    "timeout_s": "float8", "run_at": "timestamptz", "result": "jsonb", "error": "jsonb",
    "worker_id": "text", "stop_requested": "bool", "created_at": "timestamptz",
    "started_at": "timestamptz", "finished_at": "timestamptz", "updated_at": "timestamptz",
    "version": "int4", "run": "int4", "attempts_base": "int4", "run_base": "int4",
    "attempts": "jsonb", "seq": "int8",
}  # fmt: skip
"""The PostgreSQL type of each column (migrations/*.sql)."""

_encode = msgspec.json.Encoder().encode


async def init_connection(conn: asyncpg.Connection) -> None:
    """jsonb columns encode and decode with msgspec."""
    await conn.set_type_codec(
        "jsonb",
        encoder=lambda v: msgspec.json.encode(v).decode(),
        decoder=msgspec.json.decode,
        schema="pg_catalog",
    )


def to_row(state: JobState) -> tuple[Any, ...]:
    error = msgspec.to_builtins(state.error) if state.error is not None else None
    return (
        state.id, state.type, state.priority, state.payload, state.status, state.progress,
        state.message, state.attempt, state.max_attempts, state.timeout_s, state.run_at,
        state.result, error, state.worker_id, state.stop_requested, state.created_at,
        state.started_at, state.finished_at, state.updated_at, state.version, state.run,
        state.attempts_base, state.run_base, msgspec.to_builtins(state.attempts), state.seq,
    )  # fmt: skip


def to_columns(states: Sequence[JobState]) -> list[list[Any]]:
    """Rows as one list per column (jsonb columns as JSON text, SQL NULL for None), for an
    ``unnest`` of arrays: many rows in one statement."""
    rows = [to_row(s) for s in states]
    columns = [list(c) for c in zip(*rows, strict=True)]
    for i, name in enumerate(COLUMNS):
        if COLUMN_TYPES[name] == "jsonb":
            columns[i] = [None if v is None else _encode(v).decode() for v in columns[i]]
    return columns


def from_row(row: Mapping[str, Any]) -> JobState:
    values = dict(row)
    if values["error"] is not None:
        values["error"] = msgspec.convert(values["error"], ErrorInfo)
    values["attempts"] = msgspec.convert(values["attempts"], tuple[Attempt, ...])
    return JobState(**values)
