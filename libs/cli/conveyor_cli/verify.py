"""``conveyor verify``: the read model against a fresh fold of the event log, and the
invariants of SPEC §6 over the whole log.

Messages the projector parked in ``dead_letters`` are left out of the fold and of the history
checks and listed as parked; poison that is not parked (a projector bug) is a failure.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from nats.aio.client import Client

from conveyor_bus import DirectGetter, StoredMsg
from conveyor_bus.reader import LogReader, last_event_sequence
from conveyor_db import DeadLetter, ReadModel
from conveyor_events import TERMINAL, AnyEvent, JobState, fold, names
from conveyor_events.invariants import history_problems
from conveyor_events.poison import Poison, read_event


@dataclass(frozen=True, slots=True)
class Unparked:
    """Poison in the log that the projector did not park."""

    seq: int
    subject: str
    poison: Poison


@dataclass
class Report:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    parked: list[DeadLetter] = field(default_factory=list)
    """Dead letters of messages in the log: excluded, not a failure."""
    unparked: list[Unparked] = field(default_factory=list)
    stray: list[DeadLetter] = field(default_factory=list)
    """Dead letters whose sequence is not an event in the log up to the checkpoint."""
    unfinished: dict[str, str] = field(default_factory=dict)
    """Jobs not in a terminal status, with their status."""
    jobs: int = 0
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
            or self.unparked
            or self.stray
        )
        idle = self.waited_s is None or not (self.unfinished or self.behind)
        return not differences and idle

    def render(self) -> str:
        lines = [
            f"{self.jobs} jobs in the log up to the projector's checkpoint {self.checkpoint}"
            f" (last event in the log: {self.last_event})"
        ]
        lines += [f"parked: seq {d.seq} on {d.subject}: {d.kind}: {d.reason}" for d in self.parked]
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
            parked = f" ({len(self.parked)} parked events left out)" if self.parked else ""
            return f"OK: the read model equals the fold of the log{parked}"
        parts = [
            f"{len(self.missing)} missing",
            f"{len(self.extra)} extra",
            f"{len(self.differing)} differing",
            f"{len(self.invalid)} invalid histories",
        ]
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


def histories(
    msgs: list[StoredMsg], dead_letters: list[DeadLetter], report: Report
) -> dict[str, list[AnyEvent]]:
    """Each job's events, without the parked ones; parked, unparked poison and stray dead
    letters go to ``report``."""
    parked = {d.seq: d for d in dead_letters}
    out: dict[str, list[AnyEvent]] = defaultdict(list)
    for m in msgs:
        letter = parked.pop(m.seq, None)
        if letter is not None:
            report.parked.append(letter)
            continue
        read = read_event(m.subject, m.data)
        if isinstance(read, Poison):
            report.unparked.append(Unparked(m.seq, m.subject, read))
        else:
            out[names.job_id_of(m.subject)].append(read)
    report.stray = sorted(parked.values(), key=lambda d: d.seq)
    return out


async def verify(nc: Client, pool: asyncpg.Pool, *, wait_s: float | None = None) -> Report:
    """The read model against a fresh fold of the log up to the projector's checkpoint (read
    in the same snapshot as the rows and the dead letters, so a live system verifies too),
    plus the history invariants. With ``wait_s``, first wait up to that long for the
    projector to reach the log's end and every job to be terminal (invariants 1 and 3)."""
    if wait_s is not None:
        await wait_until_idle(nc, pool, wait_s)
    snapshot = await ReadModel(pool).snapshot()
    report = Report(checkpoint=snapshot.checkpoint, waited_s=wait_s)
    jobs = histories(await read_log(nc, snapshot.checkpoint), snapshot.dead_letters, report)
    report.jobs = len(jobs)
    expected: dict[str, JobState] = {}
    for job_id, events in jobs.items():
        problems = history_problems(events)
        if problems:
            report.invalid[job_id] = problems
            continue
        state = fold(events)
        if state is None or state.deleted:
            continue
        expected[job_id] = state
        if state.status not in TERMINAL:
            report.unfinished[job_id] = state.status
    actual = {s.id: s for s in snapshot.rows if s.id not in report.invalid}
    compare(expected, actual, report)
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
