"""Conveyor's PostgreSQL read model: migrations, rows and queries."""

from conveyor_db.deadletters import DeadLetter, load_dead_letters, save_dead_letters
from conveyor_db.migrations import migrate
from conveyor_db.readmodel import (
    CONNECTION_ERRORS,
    CheckedRow,
    DatabaseUnavailable,
    JobFilter,
    Page,
    ReadModel,
    Snapshot,
    Tombstone,
    create_pool,
    deleted_state,
    load_states,
    lock_checkpoint,
    reset,
    save_projection,
)

__all__ = [
    "CONNECTION_ERRORS",
    "CheckedRow",
    "DatabaseUnavailable",
    "DeadLetter",
    "JobFilter",
    "Page",
    "ReadModel",
    "Snapshot",
    "Tombstone",
    "create_pool",
    "deleted_state",
    "load_dead_letters",
    "load_states",
    "lock_checkpoint",
    "migrate",
    "reset",
    "save_dead_letters",
    "save_projection",
]
