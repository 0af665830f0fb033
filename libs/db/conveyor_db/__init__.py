"""Conveyor's PostgreSQL read model: migrations, rows and queries."""

from conveyor_db.deadletters import DeadLetter, load_dead_letters, save_dead_letters
from conveyor_db.migrations import migrate
from conveyor_db.readmodel import (
    CONNECTION_ERRORS,
    CheckedRow,
    Checkpoint,
    DatabaseUnavailable,
    Page,
    ReadModel,
    Snapshot,
    Tombstone,
    create_pool,
    deleted_state,
    load_states,
    lock_checkpoint,
    lock_checkpoint_row,
    reset,
    save_projection,
)
from conveyor_db.search import JobFilter

__all__ = [
    "CONNECTION_ERRORS",
    "CheckedRow",
    "Checkpoint",
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
    "lock_checkpoint_row",
    "migrate",
    "reset",
    "save_dead_letters",
    "save_projection",
]
