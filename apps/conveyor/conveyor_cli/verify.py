"""``conveyor verify``: the read model against a fresh fold of the event log, and the
invariants of SPEC §6 over the whole log.

Verify does not trust the projector's ``dead_letters`` table: it classifies every message of
the log itself, by the projector's rule (:func:`conveyor_events.poison.read_event`, then each
job's events folded in order, an event the transitions table forbids being left out), and
compares its own poison with the table. Parked poison is listed, not a failure; poison that is
not parked and a valid event that is parked are failures (both are projector bugs). The one
exception is a valid event parked as ``unstorable``: whether PostgreSQL refuses a value cannot
be judged without PostgreSQL, so such events are listed, left out of the fold like the
projector left them out, and are not a failure.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from nats.aio.client import Client

from conveyor_bus import DirectGetter, StoredMsg
from conveyor_bus.reader import LogReader, last_event_sequence
from conveyor_db import DeadLetter, ReadModel
from conveyor_events import TERMINAL, IllegalEvent, JobState, names, step
from conveyor_events.poison import Poison, read_event


@dataclass(frozen=True, slots=True)
class Unparked:
    """Poison in the log that the projector did not park."""

    seq: int
    subject: str
    poison: Poison


@dataclass(frozen=True, slots=True)
class ValidParked:
    """A dead letter of a message that verify finds a valid event: the projector left out an
    event it should have applied."""

    letter: DeadLetter
    event: str
    """The event's type."""


@dataclass
class Report:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    """Per job, the events the transitions table forbids that the projector did not park."""
    parked: list[DeadLetter] = field(default_factory=list)
    """Dead letters of messages verify finds poison too: not a failure."""
    unstorable: list[DeadLetter] = field(default_factory=list)
    """Dead letters of kind ``unstorable`` of messages verify finds valid: left out of the fold
    (verify cannot tell what PostgreSQL refuses), not a failure."""
    valid_parked: list[ValidParked] = field(default_factory=list)
    """Dead letters of messages verify finds valid (any other kind): a failure."""
    unparked: list[Unparked] = field(default_factory=list)
    """Poison, other than forbidden transitions, that the projector did not park."""
    stray: list[DeadLetter] = field(default_factory=list)
    """Dead letters whose sequence is not an event in the log up to the checkpoint."""
    unfinished: dict[str, str] = field(default_factory=dict)
    """Jobs not in a terminal status, with their status."""
    jobs: int = 0
    pruned: int = 0
    """Terminal jobs that retention pruned from the read model: expected without a row."""
    checkpoint: int = 0
    last_event: int = 0
    waited_s: float | None = None
    """``--wait``: unfinished jobs and a checkpoint behind the log are failures."""

    @property
    def behind(self) -> bool:
        return self.checkpoint < self.last_event

    @property
    def ok(self) -> bool:
        differences = (
            self.missing
            or self.extra
            or self.differing
            or self.invalid
            or self.valid_parked
            or self.unparked
            or self.stray
        )
        idle = self.waited_s is None or not (self.unfinished or self.behind)
        return not differences and idle

    def render(self) -> str:
        lines = [
            f"{self.jobs} jobs in the log up to the projector's checkpoint {self.checkpoint}"
            f" (last event in the log: {self.last_event})"
            + (
                f"; {self.pruned} of them pruned from the read model by retention"
                if self.pruned
                else ""
            )
        ]
        lines += [f"parked: seq {d.seq} on {d.subject}: {d.kind}: {d.reason}" for d in self.parked]
        lines += [
            f"parked unstorable (a valid event, not checked): seq {d.seq} on {d.subject}:"
            f" {d.reason}"
            for d in self.unstorable
        ]
        lines += [
            f"parked a valid event: seq {v.letter.seq} on {v.letter.subject} ({v.event}),"
            f" parked as {v.letter.kind}: {v.letter.reason}"
            for v in self.valid_parked
        ]
        lines += [
            f"poison not in the dead-letter table: seq {u.seq} on {u.subject}:"
            f" {u.poison.kind}: {u.poison.reason}"
            for u in self.unparked
        ]
        lines += [
            f"dead letter of no event in the log: seq {d.seq} on {d.subject}: {d.kind}"
            for d in self.stray
        ]
        lines += [f"missing from the read model: {job}" for job in self.missing]
        lines += [f"in the read model but not in the log (or deleted): {job}" for job in self.extra]
        for job, fields in self.differing.items():
            for name, (want, got) in fields.items():
                lines.append(f"differs: {job}.{name}: log {want!r}, read model {got!r}")
        for job, problems in self.invalid.items():
            lines += [f"invalid history: {job}: {p}" for p in problems]
        lines += self._idle_lines()
        lines.append(self._summary())
        return "\n".join(lines)

    def _idle_lines(self) -> list[str]:
        if self.waited_s is None:
            if not self.unfinished:
                return []
            by_status = Counter(self.unfinished.values())
            counts = ", ".join(f"{n} {status}" for status, n in sorted(by_status.items()))
            return [f"{len(self.unfinished)} jobs not terminal yet ({counts})"]
        after = f"after waiting {self.waited_s:g} s"
        lines = [f"not terminal {after}: {job} ({s})" for job, s in self.unfinished.items()]
        if self.behind:
            lines.append(
                f"checkpoint behind the log {after}: {self.checkpoint} < {self.last_event}"
            )
        return lines

    def _summary(self) -> str:
        if self.ok:
            left_out = len(self.parked) + len(self.unstorable)
            parked = f" ({left_out} parked events left out)" if left_out else ""
            return f"OK: the read model equals the fold of the log{parked}"
        parts = [
            f"{len(self.missing)} missing",
            f"{len(self.extra)} extra",
            f"{len(self.differing)} differing",
            f"{len(self.invalid)} invalid histories",
        ]
        if self.valid_parked:
            parts.append(f"{len(self.valid_parked)} valid events parked")
        if self.unparked:
            parts.append(f"{len(self.unparked)} poison events not parked")
        if self.stray:
            parts.append(f"{len(self.stray)} dead letters of no event")
        if self.waited_s is not None and self.unfinished:
            parts.append(f"{len(self.unfinished)} jobs not terminal")
        if self.waited_s is not None and self.behind:
            parts.append("checkpoint behind the log")
        return "FAILED: " + ", ".join(parts)


def compare(expected: dict[str, JobState], actual: dict[str, JobState], report: Report) -> None:
    for job_id, want in expected.items():
        got = actual.get(job_id)
        if got is None:
            report.missing.append(job_id)
            continue
        diff = {
            name: (w, g)
            for name, w, g in zip(
                want.__struct_fields__,
                msgspec.structs.astuple(want),
                msgspec.structs.astuple(got),
                strict=True,
            )
            if w != g
        }
        if diff:
            report.differing[job_id] = diff
    report.extra = sorted(set(actual) - set(expected))


async def read_log(nc: Client, until: int) -> list[StoredMsg]:
    """Every message of the event log up to sequence ``until``, in order."""
    out: list[StoredMsg] = []
    reader = LogReader(nc, names.EVENTS_ALL, 1)
    try:
        while reader.next_seq <= until:
            out += [m for m in await reader.fetch(1000, timeout=2.0) if m.seq <= until]
    finally:
        await reader.close()
    return out


def classify(
    msgs: list[StoredMsg], dead_letters: list[DeadLetter], report: Report
) -> dict[str, JobState]:
    """Fold the log the way the projector must, without looking at what it did: every message
    is read with ``read_event``, each job's events are folded in log order, and an event the
    transitions table forbids in the job's state is poison, left out of the fold (``step``, the
    rule of the projector and of ``history_problems``). Then each message's verdict is compared
    with the dead letters: agreements, disagreements and stray dead letters go to ``report``.
    Returns each job's state (deleted jobs included)."""
    letters = {d.seq: d for d in dead_letters}
    states: dict[str, JobState] = {}
    for m in msgs:
        letter = letters.pop(m.seq, None)
        read = read_event(m.subject, m.data)
        if isinstance(read, Poison):
            if letter is not None:
                report.parked.append(letter)
            else:
                report.unparked.append(Unparked(m.seq, m.subject, read))
            continue
        try:
            state = step(states.get(read.job_id), read, seq=m.seq)
        except IllegalEvent as e:
            if letter is not None:
                report.parked.append(letter)
            else:
                report.invalid.setdefault(read.job_id, []).append(
                    f"seq {m.seq} ({read.name}): {e.problem}"
                )
            continue
        if letter is not None and letter.kind == "unstorable":
            report.unstorable.append(letter)  # left out, as the projector left it out
            continue
        if letter is not None:
            report.valid_parked.append(ValidParked(letter, read.name))
        states[read.job_id] = state  # a valid event belongs in the fold, parked or not
    report.stray = sorted(letters.values(), key=lambda d: d.seq)
    return states


async def verify(nc: Client, pool: asyncpg.Pool, *, wait_s: float | None = None) -> Report:
    """The read model against a fresh fold of the log up to the projector's checkpoint (read
    in the same snapshot as the rows and the dead letters, so a live system verifies too),
    every message classified by verify itself and checked against the dead letters (see
    :func:`classify`; a second ``job.completed`` is a forbidden transition). With
    ``wait_s``, first wait up to that long for the projector to reach the log's end and every
    job to be terminal (invariants 1 and 3)."""
    if wait_s is not None:
        await wait_until_idle(nc, pool, wait_s)
    snapshot = await ReadModel(pool).snapshot()
    report = Report(checkpoint=snapshot.checkpoint, waited_s=wait_s)
    states = classify(await read_log(nc, snapshot.checkpoint), snapshot.dead_letters, report)
    report.jobs = len(states)
    expected = {job_id: state for job_id, state in states.items() if not state.deleted}
    rows = {s.id: s for s in snapshot.rows}
    for job_id in snapshot.pruned:  # retention: a finished job's row may be gone, its marker left
        state = expected.get(job_id)
        if state is not None and job_id not in rows and state.status in TERMINAL:
            del expected[job_id]
            report.pruned += 1
    report.unfinished = {
        job_id: state.status for job_id, state in expected.items() if state.status not in TERMINAL
    }
    compare(expected, rows, report)
    report.last_event = await last_event_sequence(DirectGetter(nc))
    return report


async def wait_until_idle(nc: Client, pool: asyncpg.Pool, timeout_s: float) -> bool:
    """Wait up to ``timeout_s`` for the projector's checkpoint to reach the log's last event
    and for every job in the read model to be terminal; whether that happened."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    getter = DirectGetter(nc)
    reads = ReadModel(pool)
    print(f"waiting up to {timeout_s:g} s for the system to be idle", file=sys.stderr)
    while True:
        last = await last_event_sequence(getter)
        checkpoint = await reads.checkpoint()
        unfinished = sum(n for status, _, n in await reads.counts() if status not in TERMINAL)
        if checkpoint >= last and unfinished == 0:
            return True
        if loop.time() >= deadline:
            print(
                f"still not idle: checkpoint {checkpoint} of {last}, {unfinished} jobs not"
                " terminal",
                file=sys.stderr,
            )
            return False
        await asyncio.sleep(min(0.2, max(0.0, deadline - loop.time())))
