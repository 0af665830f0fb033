"""Every stream, subject, consumer and header name Conveyor uses, in one place.

One JetStream stream holds both the event log and the work queues, so that a job's
``job.submitted`` event and its run command are written by one atomic batch (one disk sync,
no window in which one exists without the other). See docs/explanation/architecture.md.
"""

from __future__ import annotations

import hashlib
from typing import Final, Literal

Priority = Literal["high", "regular"]
PRIORITIES: Final[tuple[Priority, ...]] = ("high", "regular")

STREAM: Final = "CONVEYOR"
"""The event log and the work queues: file storage, deny delete, deny purge, atomic batches."""

EVENT_PREFIX: Final = "conveyor.events"
EVENTS_ALL: Final = "conveyor.events.*"
RUN_PREFIX: Final = "conveyor.run"
IDEMPOTENCY_PREFIX: Final = "conveyor.idempotency"

STOP_SIGNAL: Final = "conveyor.control.stop"
"""Core NATS subject: 'someone asked to stop job X', a hint that wakes the worker running it."""

WORKERS_STREAM: Final = "CONVEYOR_WORKERS"
"""Live workers: the last heartbeat of each, expiring when a worker stops heartbeating."""
WORKERS_PREFIX: Final = "conveyor.workers"
WORKERS_ALL: Final = "conveyor.workers.*"

HEADER_EXPECTED_LAST_SUBJECT_SEQ: Final = "Nats-Expected-Last-Subject-Sequence"
HEADER_BATCH_ID: Final = "Nats-Batch-Id"
HEADER_BATCH_SEQ: Final = "Nats-Batch-Sequence"
HEADER_BATCH_COMMIT: Final = "Nats-Batch-Commit"


def event_subject(job_id: str) -> str:
    """The subject that holds every event of one job, in order."""
    return f"{EVENT_PREFIX}.{job_id}"


def job_id_of(subject: str) -> str:
    """The job id of an event subject (the inverse of :func:`event_subject`)."""
    return subject.rsplit(".", 1)[-1]


def worker_subject(worker_id: str) -> str:
    """Where one worker's heartbeats go (the stream keeps only the last)."""
    return f"{WORKERS_PREFIX}.{worker_id}"


def run_subject(priority: Priority) -> str:
    """The work-queue subject of one priority."""
    return f"{RUN_PREFIX}.{priority}"


def run_consumer(priority: Priority) -> str:
    """The durable pull consumer that all workers share for one priority."""
    return f"worker-{priority}"


def idempotency_subject(key: str) -> str:
    """Where the first job submitted with an ``Idempotency-Key`` is recorded (key hashed)."""
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{IDEMPOTENCY_PREFIX}.{digest}"
