"""Every stream, subject, consumer and header name Conveyor uses, in one place.

One JetStream stream, ``CONVEYOR_JOBS``, holds every job's events. A job's events live on
subjects under ``conveyor.job.<job id>.``, one subject per event type; the events that make a
job runnable (``job.submitted``, ``job.restarted``, ``job.failed`` with a retry) carry the job's
priority as a last token, and the workers' consumers read those subjects straight from the log:
the event is the command. Every append is checked against the job's last event, whatever its
subject (``Nats-Expected-Last-Subject-Sequence-Subject: conveyor.job.<job id>.>``). See
docs/decisions/0009-the-event-is-the-command.md.

A runnable event whose run is due later (``run_at``, a retry's backoff) is stored without the
priority token, and a timer in stream ``CONVEYOR_TIMERS`` (a message schedule of nats-server)
fires a *due* message at its time, which the log sources and the workers' consumers read
beside the runnable events. See docs/decisions/0014-timers-on-the-server-scheduler.md.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Final, Literal, cast, get_args

Priority = Literal["high", "regular"]
PRIORITIES: Final[tuple[Priority, ...]] = get_args(Priority)

STREAM: Final = "CONVEYOR_JOBS"
"""The event log: file storage, deny delete, deny purge, atomic batches, direct gets."""
LAYOUT: Final = "3"
"""The layout of the log, kept in the stream's metadata under :data:`LAYOUT_KEY`. Layout 3 is
layout 2 with timers: the log sources the due messages of ``CONVEYOR_TIMERS``, and the run
consumers read them (``conveyor migrate`` upgrades a layout-2 log in place)."""
UPGRADABLE_LAYOUTS: Final = ("2",)
"""Layouts ``conveyor migrate`` brings to :data:`LAYOUT` in place (no copy)."""
LAYOUT_KEY: Final = "conveyor_layout"
MIGRATED_FROM_KEY: Final = "conveyor_migrated_from"
"""Stream metadata of a log copied from an older layout: the old stream's last sequence, set
when the copy is complete (``conveyor migrate``)."""

LEGACY_STREAM: Final = "CONVEYOR"
"""Layout 1 (before 2026-12): events on ``conveyor.events.<id>``, run commands on
``conveyor.run.<priority>``; read only by ``conveyor migrate``."""
LEGACY_RUN_PREFIX: Final = "conveyor.run."
LEGACY_IDEMPOTENCY_PREFIX: Final = "conveyor.idempotency."

JOB_PREFIX: Final = "conveyor.job"
EVENTS_ALL: Final = "conveyor.job.>"
"""Every event of every job."""
STREAM_SUBJECTS: Final = ("conveyor.job.*.*", "conveyor.job.*.*.*", "conveyor.key.*")
"""What the stream stores: events (4 tokens), runnable events (5 tokens), idempotency keys."""
KEY_PREFIX: Final = "conveyor.key"

STOP_SIGNAL: Final = "conveyor.control.stop"
"""Core NATS subject: 'someone asked to stop job X', a hint that wakes the worker running it."""

WORKERS_STREAM: Final = "CONVEYOR_WORKERS"
"""Live workers: the last heartbeat of each, expiring when a worker stops heartbeating."""
WORKERS_PREFIX: Final = "conveyor.workers"
WORKERS_ALL: Final = "conveyor.workers.*"

TYPES_STREAM: Final = "CONVEYOR_TYPES"
"""Job types as workers publish them (name, payload schema, defaults; never code): the last
description of each type, kept while no worker serves it."""
TYPES_PREFIX: Final = "conveyor.types"
TYPES_ALL: Final = "conveyor.types.>"

HEADER_EXPECTED_LAST_SUBJECT_SEQ: Final = "Nats-Expected-Last-Subject-Sequence"
HEADER_EXPECTED_SUBJECT: Final = "Nats-Expected-Last-Subject-Sequence-Subject"
HEADER_BATCH_ID: Final = "Nats-Batch-Id"
HEADER_BATCH_SEQ: Final = "Nats-Batch-Sequence"
HEADER_BATCH_COMMIT: Final = "Nats-Batch-Commit"
HEADER_TRACEPARENT: Final = "traceparent"
"""W3C trace context of the request behind a message (a submission, and its timer and due)."""
HEADER_MIGRATED_SEQ: Final = "Conveyor-Migrated-Seq"
"""On a message copied by ``conveyor migrate``: its sequence in the old stream."""

_EVENT_PREFIX: Final = "job."


def event_subject(job_id: str, event_type: str, priority: Priority | None = None) -> str:
    """Where an event of ``event_type`` (``job.started``) of one job is stored; a runnable
    event names its job's ``priority`` (``conveyor.job.<id>.submitted.high``)."""
    subject = f"{JOB_PREFIX}.{job_id}.{event_type.removeprefix(_EVENT_PREFIX)}"
    return subject if priority is None else f"{subject}.{priority}"


def job_subjects(job_id: str) -> str:
    """Every subject of one job's events: its history, and what every append is checked
    against."""
    return f"{JOB_PREFIX}.{job_id}.>"


QUEUED_EVENT_TYPES: Final = ("job.submitted", "job.restarted", "job.failed")
"""The event types that may be stored on a work-queue subject (with a priority token): the
runnable ones (``conveyor_events.events.runnable``)."""


def event_subjects(job_id: str | None = None, event_type: str | None = None) -> tuple[str, ...]:
    """The subjects holding every event of one job, of one type (``job.failed``), or of one
    type of one job (None: any); together they are a read's filter (``conveyor export``,
    ``GET /api/v1/events``)."""
    job = job_id or "*"
    if event_type is None:
        return (job_subjects(job_id) if job_id else EVENTS_ALL,)
    subject = f"{JOB_PREFIX}.{job}.{event_type.removeprefix(_EVENT_PREFIX)}"
    return (subject, f"{subject}.*") if event_type in QUEUED_EVENT_TYPES else (subject,)


def runnable_subjects(priority: Priority) -> str:
    """The runnable events of one priority (one of the two filters of the workers' consumer
    of it; :func:`due_subjects` is the other)."""
    return f"{JOB_PREFIX}.*.*.{priority}"


TIMERS_STREAM: Final = "CONVEYOR_TIMERS"
"""Timers (``allow_msg_schedules``): one ``@at`` schedule per job whose run is due later, and
the due messages nats-server fires from them. Not a record: a schedule is removed when it
fires, and the stream allows purges (schedules need it); the log keeps the due messages."""
TIMER_PREFIX: Final = "conveyor.timer"
DUE_PREFIX: Final = "conveyor.due"
TIMERS_SUBJECTS: Final = ("conveyor.timer.*", "conveyor.due.*.*")
DUE_ALL: Final = "conveyor.due.>"
"""What the log sources from the timers stream."""


def timer_subject(job_id: str) -> str:
    """Where the timer of a job's next run is (a job waits for at most one run at a time; a
    new timer on the subject replaces the old one)."""
    return f"{TIMER_PREFIX}.{job_id}"


def due_subject(job_id: str, priority: Priority) -> str:
    """Where a timer fires: the run of the job is due now."""
    return f"{DUE_PREFIX}.{job_id}.{priority}"


def due_subjects(priority: Priority) -> str:
    """The due messages of one priority, as the log holds them (sourced from the timers)."""
    return f"{DUE_PREFIX}.*.{priority}"


def parse_due_subject(subject: str) -> tuple[str, Priority] | None:
    """(job id, priority) of a due subject, or None when ``subject`` is not one."""
    tokens = subject.split(".")
    if len(tokens) != 4 or f"{tokens[0]}.{tokens[1]}" != DUE_PREFIX:
        return None
    for priority in PRIORITIES:
        if tokens[3] == priority:
            return tokens[2], priority
    return None


@dataclass(frozen=True, slots=True)
class EventSubject:
    """What an event's subject says about it."""

    job_id: str
    event_type: str
    """``job.<token>``: the event type the subject is for."""
    priority: Priority | None
    """Set on the subjects of runnable events."""


def parse_event_subject(subject: str) -> EventSubject | None:
    """The parts of an event subject, or None when ``subject`` is not one."""
    tokens = subject.split(".")
    if len(tokens) not in (4, 5) or f"{tokens[0]}.{tokens[1]}" != JOB_PREFIX:
        return None
    if len(tokens) == 5 and tokens[4] not in PRIORITIES:
        return None
    priority = cast(Priority, tokens[4]) if len(tokens) == 5 else None
    return EventSubject(tokens[2], _EVENT_PREFIX + tokens[3], priority)


def job_id_of(subject: str) -> str:
    """The job id an event subject names (its third token; '' when there is none)."""
    tokens = subject.split(".", 3)
    return tokens[2] if len(tokens) > 2 else ""


def worker_subject(worker_id: str) -> str:
    """Where one worker's heartbeats go (the stream keeps only the last)."""
    return f"{WORKERS_PREFIX}.{worker_id}"


def type_subject(job_type: str) -> str:
    """Where a job type's description goes (a dotted name spans several tokens)."""
    return f"{TYPES_PREFIX}.{job_type}"


def run_consumer(priority: Priority) -> str:
    """The durable pull consumer that all workers share for one priority."""
    return f"worker-{priority}"


def idempotency_subject(key: str) -> str:
    """Where the first job submitted with an ``Idempotency-Key`` is recorded (key hashed)."""
    return f"{KEY_PREFIX}.{_key_digest(key)}"


def idempotency_subject_of_digest(digest: str) -> str:
    """Where the record of a hashed key is (``conveyor migrate`` copies records by it)."""
    return f"{KEY_PREFIX}.{digest}"


def _key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:40]


SCHEDULES_STREAM: Final = "CONVEYOR_SCHEDULES"
"""Recurring jobs (``allow_msg_schedules``): each schedule's definition, the message from
which nats-server fires its ticks (a plain one while it is paused), and the ticks it fires."""
SCHEDULE_DEF_PREFIX: Final = "conveyor.schedules.def"
SCHEDULE_TICK_PREFIX: Final = "conveyor.schedules.tick"
SCHEDULE_DEFS_ALL: Final = "conveyor.schedules.def.*"
SCHEDULE_TICKS_ALL: Final = "conveyor.schedules.tick.*"
SCHEDULE_TICK_CONSUMER: Final = "api-schedule-ticks"
"""The durable consumer of the ticks that every API process shares: one tick, one job."""

HEADER_SCHEDULE: Final = "Nats-Schedule"
HEADER_SCHEDULE_TARGET: Final = "Nats-Schedule-Target"
HEADER_SCHEDULE_TIME_ZONE: Final = "Nats-Schedule-Time-Zone"
HEADER_SCHEDULE_TTL: Final = "Nats-Schedule-TTL"
"""On a schedule: the TTL of the message it fires (the timers stream keeps a due briefly)."""
HEADER_SCHEDULER: Final = "Nats-Scheduler"
"""On a tick: the subject of the schedule that fired it."""
HEADER_SCHEDULE_NEXT: Final = "Nats-Schedule-Next"
"""On a tick: when the schedule fires next (RFC 3339, in the schedule's time zone)."""
HEADER_ROLLUP: Final = "Nats-Rollup"


def schedule_subject(name: str) -> str:
    """Where a schedule's definition is (a name is one subject token)."""
    return f"{SCHEDULE_DEF_PREFIX}.{name}"


def schedule_tick_subject(name: str) -> str:
    """Where nats-server publishes the ticks of a schedule."""
    return f"{SCHEDULE_TICK_PREFIX}.{name}"


def schedule_name_of(subject: str) -> str:
    """The schedule a definition or tick subject names (its last token)."""
    return subject.rsplit(".", 1)[-1]
