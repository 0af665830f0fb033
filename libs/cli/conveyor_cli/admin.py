"""``conveyor migrate | replay | verify``: commands that use the log and the database
directly (``NATS_URL``, ``DATABASE_URL``; the defaults find the servers of ``make up``)."""

from __future__ import annotations

import asyncio
import sys
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import msgspec
from nats.aio.client import Client

from conveyor_bus import DirectGetter, connect, ensure_topology
from conveyor_bus.reader import LogReader, last_event_sequence
from conveyor_bus.settings import BusSettings
from conveyor_db import ReadModel, create_pool, migrate, reset
from conveyor_db.settings import DatabaseSettings
from conveyor_events import AnyEvent, JobState, decode_event, fold, names
from conveyor_events.invariants import history_problems
from conveyor_projector.projector import Projector


class Settings(BusSettings, DatabaseSettings):
    """``conveyor migrate | replay | verify``: ``NATS_URL``, ``DATABASE_URL``, ``CONVEYOR_*``."""


def run(command: str) -> int:
    settings = Settings()
    return asyncio.run(_main(command, settings))


async def _main(command: str, settings: Settings) -> int:
    nc = await connect(settings.nats_url, f"conveyor-{command}")
    try:
        await ensure_topology(
            nc,
            ack_wait_s=settings.ack_wait_s,
            worker_ttl_s=settings.worker_ttl_s,
            replicas=settings.replicas,
            update=command == "migrate",
        )
        conn = await asyncpg.connect(settings.database_url)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        if command == "migrate":
            print(f"topology ready; migrations applied: {', '.join(applied) or 'none needed'}")
            return 0
        pool = await create_pool(settings.database_url, min_size=1, max_size=4, timeout=30)
        try:
            if command == "replay":
                return await replay(nc, pool)
            report = await verify(nc, pool)
            print(report.render())
            return 0 if report.ok else 1
        finally:
            await pool.close()
    finally:
        await nc.close()


async def replay(nc: Client, pool: asyncpg.Pool, *, quiet: bool = False) -> int:
    """Empty the read model and rebuild it from the whole log."""
    until = await last_event_sequence(DirectGetter(nc))
    async with pool.acquire() as conn:
        await reset(conn)
    projector = Projector(nc, pool)
    task = asyncio.create_task(projector.catch_up(until))
    while not task.done():
        await asyncio.wait({task}, timeout=0.2)
        if not quiet:
            done = projector.position / until if until else 1.0
            bar = "#" * int(done * 30)
            print(
                f"\rreplaying [{bar:<30}] {projector.position}/{until}",
                end="",
                file=sys.stderr,
                flush=True,
            )
    await task
    if not quiet:
        print(f"\nread model rebuilt up to sequence {until}", file=sys.stderr)
    return 0


async def read_log(nc: Client, until: int) -> dict[str, list[AnyEvent]]:
    """Every job's history from the event log, up to sequence ``until``."""
    histories: dict[str, list[AnyEvent]] = defaultdict(list)
    reader = LogReader(nc, names.EVENTS_ALL, 1)
    try:
        while reader.next_seq <= until:
            for m in await reader.fetch(1000, timeout=2.0):
                if m.seq <= until:
                    histories[names.job_id_of(m.subject)].append(decode_event(m.data))
    finally:
        await reader.close()
    return histories


@dataclass
class Report:
    missing: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)
    differing: dict[str, dict[str, tuple[Any, Any]]] = field(default_factory=dict)
    invalid: dict[str, list[str]] = field(default_factory=dict)
    jobs: int = 0
    checkpoint: int = 0
    last_event: int = 0

    @property
    def ok(self) -> bool:
        return not (self.missing or self.extra or self.differing or self.invalid)

    def render(self) -> str:
        lines = [
            f"{self.jobs} jobs in the log up to the projector's checkpoint {self.checkpoint}"
            f" (last event in the log: {self.last_event})"
        ]
        lines += [f"missing from the read model: {job}" for job in self.missing]
        lines += [f"in the read model but not in the log (or deleted): {job}" for job in self.extra]
        for job, fields in self.differing.items():
            for name, (want, got) in fields.items():
                lines.append(f"differs: {job}.{name}: log {want!r}, read model {got!r}")
        for job, problems in self.invalid.items():
            lines += [f"invalid history: {job}: {p}" for p in problems]
        lines.append(
            "OK: the read model equals the fold of the log"
            if self.ok
            else f"FAILED: {len(self.missing)} missing, {len(self.extra)} extra, "
            f"{len(self.differing)} differing, {len(self.invalid)} invalid histories"
        )
        return "\n".join(lines)


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


async def verify(nc: Client, pool: asyncpg.Pool) -> Report:
    """The read model against a fresh fold of the log up to the projector's checkpoint (read
    in the same snapshot as the rows, so a live system verifies too), plus the history
    invariants."""
    checkpoint, rows = await ReadModel(pool).snapshot()
    histories = await read_log(nc, checkpoint)
    report = Report(jobs=len(histories))
    expected: dict[str, JobState] = {}
    for job_id, events in histories.items():
        problems = history_problems(events)
        if problems:
            report.invalid[job_id] = problems
            continue
        state = fold(events)
        if state is not None and not state.deleted:
            expected[job_id] = state
    compare(expected, {s.id: s for s in rows}, report)
    report.checkpoint = checkpoint
    report.last_event = await last_event_sequence(DirectGetter(nc))
    return report
