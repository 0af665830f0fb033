"""What a worker does with one delivery, as pure functions: the NATS calls are around them
(worker.py).

A delivery is a runnable event read straight from the log (``job.submitted``,
``job.restarted``, ``job.failed`` with a retry): the event is the run command. The worker
first triages it (:func:`triage`: poison is terminated, a run not yet due is held back, a
stopping worker hands it back), then decides the start on the job's state (:func:`plan`),
inside the command handler's loop: when another writer appended first, the job is read
again and planned again.

For a fresh submission the delivered event is the job's whole history, so the state comes
from the event itself and ``job.started`` is appended expecting the event's own sequence:
no read at all. A conflict (a stop came in; a redelivery after a crash) makes it read.

A run due later is delivered as a *due* message, fired by its timer (conveyor_events.timers):
it names the job and the run, and the worker reads the job to find the runnable event that
asked for it (:func:`due_delivery`); from there it is like any other delivery.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import msgspec

from conveyor_events import (
    AnyEvent,
    DomainError,
    JobStarted,
    JobSubmitted,
    Loaded,
    StartJob,
    StoredEvent,
    decide,
    fold,
    not_before,
    runnable,
    step,
)
from conveyor_events.names import parse_due_subject
from conveyor_events.poison import Poison, poison, read_event
from conveyor_events.timers import Due, Timer, decode_due, timer_for

DUE_SLACK_S = 0.01
"""A run due this soon is started now."""
MAX_HOLD_S = 365 * 24 * 3600.0
"""The longest one delayed nak holds a run: a run due later is held again when this ends.
The server reads the delay as int64 nanoseconds and adds it to now: a delay past year 2262
(``run_at`` 2999) overflows, and the server takes it as a plain nak, delivered again at once,
in a loop that kept due jobs of that priority from being delivered
(tests/integration/test_server_facts.py)."""
LAG_RETRY_S = 1.0
"""When a read has not caught up with the delivered event yet (a lagging replica)."""
ORPHAN_AFTER = 3
"""Deliveries of a due whose run the job's history does not hold before it is taken as a
timer whose events were never written (the writer died between the two, or its append was
refused) and acknowledged. Before that, the read may only lag behind the log."""


@dataclass(frozen=True, slots=True)
class Ack:
    """Nothing to run (the job was stopped, deleted, finished, or the run superseded)."""

    reason: str
    events: tuple[AnyEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Nak:
    """Hand it back, to be delivered again after ``delay_s``."""

    delay_s: float
    reason: str
    events: tuple[AnyEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Term:
    """It can never run (not an event of the log): terminate it, no redelivery."""

    kind: str
    """What is wrong with it (a poison kind), for the metric."""
    reason: str
    events: tuple[AnyEvent, ...] = ()


@dataclass(frozen=True, slots=True)
class Rearm:
    """Set this timer (the run's own, which another write replaced), then ack the due."""

    timer: Timer
    reason: str


@dataclass(frozen=True, slots=True)
class Start:
    """Append ``job.started``, then run the handler."""

    events: list[AnyEvent] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Conclude:
    """Append these events instead of a start (a pending stop won; the run was started too
    often), then ack."""

    events: list[AnyEvent] = field(default_factory=list)


Verdict = Ack | Nak | Term | Start | Conclude


@dataclass(frozen=True, slots=True)
class Delivery:
    """A runnable event as delivered: its sequence in the log, and the event."""

    seq: int
    event: AnyEvent

    @property
    def job_id(self) -> str:
        return self.event.job_id

    @property
    def fresh(self) -> bool:
        """A submission: the event is the job's whole history up to its sequence."""
        return isinstance(self.event, JobSubmitted)

    def known(self) -> Loaded:
        """The job as the delivered submission alone tells it."""
        return Loaded(step(None, self.event), self.seq)


@dataclass(frozen=True, slots=True)
class DueRun:
    """A due message as delivered: its timer fired, run ``due.run`` of the job may start."""

    seq: int
    due: Due
    delivered: int
    """How many times it was delivered (1: the first)."""

    @property
    def job_id(self) -> str:
        return self.due.job_id


def triage(
    seq: int, subject: str, data: bytes, *, now: datetime, stopping: bool, delivered: int = 1
) -> Delivery | DueRun | Nak | Term:
    """What can be told from the delivery alone. A runnable event whose run is not due yet
    (written before timers, or on a clock behind the writer's) is handed back until it is
    due, in one delayed nak (of at most ``MAX_HOLD_S``; ADR 10)."""
    if (due_of := parse_due_subject(subject)) is not None:
        return _triage_due(seq, data, due_of[0], stopping, delivered)
    read = read_event(subject, data)
    if isinstance(read, Poison):
        return Term(read.kind, read.reason)
    if not runnable(read):  # read_event checks the subject says so; belt and braces
        return Term("wrong_subject", f"{read.name} is not a run request")
    due = not_before(read)
    if due is not None:
        wait = (due - now).total_seconds()
        if wait > DUE_SLACK_S:
            return Nak(min(wait, MAX_HOLD_S), f"due in {wait:.3f}s")
    if stopping:
        return Nak(0.0, "the worker is stopping")
    return Delivery(seq, read)


def _triage_due(
    seq: int, data: bytes, job_id: str, stopping: bool, delivered: int
) -> DueRun | Nak | Term:
    try:
        due = decode_due(data)
    except msgspec.DecodeError as e:
        found = poison("invalid", f"a due message that is not one: {e}")
        return Term(found.kind, found.reason)
    if due.job_id != job_id:
        return Term("wrong_subject", f"the due of job {due.job_id!r} on the subject of {job_id!r}")
    if stopping:
        return Nak(0.0, "the worker is stopping")
    return DueRun(seq, due, delivered)


def due_delivery(
    history: Sequence[StoredEvent], due: DueRun, *, now: datetime
) -> Delivery | Nak | Ack | Rearm:
    """The runnable event that asked for the run a due names, as a delivery. Held again when
    the run is not due yet (a timer set short of a far ``run_at``, ``LONGEST_TIMER``).
    Acknowledged when the history never gets it (an orphan timer), and when the run was
    started already by an earlier delivery: only a redelivery of the same due (its worker
    was lost) starts a run that is running. A due whose time is not its run's came from a
    timer that a refused write set over the run's own (a second submission of the job's id):
    the run's timer is set again."""
    state = fold(stored.event for stored in history)
    run = 0
    for stored in history:
        if not runnable(stored.event):
            continue
        run += 1
        if run != due.due.run:
            continue
        pending = state is not None and state.run == run and state.status == "pending"
        when = not_before(stored.event)
        if when != due.due.due:
            timer = timer_for(stored.event, state.priority, run) if pending and state else None
            if timer is None:
                return Ack(f"a due of run {run} of {due.job_id} for another time; nothing waits")
            return Rearm(timer, f"a due of run {run} of {due.job_id} for another time")
        started = state is not None and state.run == run and state.status == "running"
        if started and due.delivered == 1:
            return Ack(f"run {run} of {due.job_id} was started by another due")
        wait = (when - now).total_seconds() if when is not None else 0.0
        if wait > DUE_SLACK_S:
            return Nak(min(wait, MAX_HOLD_S), f"due in {wait:.3f}s")
        return Delivery(stored.seq, stored.event)
    if due.delivered < ORPHAN_AFTER:
        return Nak(LAG_RETRY_S, f"run {due.due.run} of {due.job_id} not read yet")
    return Ack(f"run {due.due.run} of job {due.job_id} is not in its history: an orphan timer")


def run_of(history: Sequence[StoredEvent], seq: int) -> int | None:
    """Which run of its job the runnable event at ``seq`` asks for: how many runnable events
    the history holds up to it (None: the history does not reach it yet)."""
    run = 0
    for stored in history:
        if stored.seq > seq:
            break
        run += runnable(stored.event)
        if stored.seq == seq:
            return run
    return None


def plan(delivery: Delivery, loaded: Loaded, start: StartJob) -> Verdict:
    """The start of ``start.run`` of the delivered job, decided on ``loaded``."""
    if loaded.state is None or loaded.last_seq < delivery.seq:
        return Nak(LAG_RETRY_S, f"the read of {delivery.job_id} lags behind seq {delivery.seq}")
    try:
        events = decide(start, loaded.state)
    except DomainError as e:
        return Ack(f"nothing to run: {e}")
    if isinstance(events[0], JobStarted):
        return Start(events)
    return Conclude(events)
