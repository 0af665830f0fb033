"""A job's state as a ``jobs`` row and back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from conveyor_events import ErrorInfo, JobState

COLUMNS: tuple[str, ...] = (
    "id", "type", "priority", "payload", "status", "progress", "message", "attempt",
    "max_attempts", "timeout_s", "run_at", "result", "error", "worker_id", "stop_requested",
    "created_at", "started_at", "finished_at", "updated_at", "version", "run", "attempts_base",
    "run_base",
)  # fmt: skip

SELECT_COLUMNS = ", ".join(COLUMNS)


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
        state.attempts_base, state.run_base,
    )  # fmt: skip


def from_row(row: Mapping[str, Any]) -> JobState:
    values = dict(row)
    if values["error"] is not None:
        values["error"] = msgspec.convert(values["error"], ErrorInfo)
    return JobState(**values)
