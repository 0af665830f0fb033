"""Retention (CONVEYOR_RETENTION_TERMINAL_DAYS): the projector prunes terminal jobs that
finished before the cut-off from the read model, counts included; the log keeps them,
``conveyor verify`` passes, the API's read says where the job went, and a later event of a
pruned job (a restart, a delete) makes the projector fold it from the log again."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from nats.aio.client import Client

from conveyor_bus import DirectGetter, JetStreamEventStore
from conveyor_bus.reader import last_event_sequence
from conveyor_cli.verify import verify
from conveyor_db import ReadModel
from conveyor_events import AnyEvent, Write
from conveyor_events import testing as ev
from conveyor_projector.projector import Projector

pytestmark = pytest.mark.integration

NOW = datetime.now(UTC)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(hours=1)
A, B, C, D, E = (f"01KRETAIN000000000000000{n}" for n in "ABCDE")


def workload() -> list[tuple[str, list[AnyEvent]]]:
    return [
        (A, [ev.submitted(job=A, at=OLD), ev.started(job=A, at=OLD), ev.completed(job=A, at=OLD)]),
        (B, [ev.submitted(job=B, at=OLD), ev.started(job=B, at=OLD), ev.failed(job=B, at=OLD)]),
        (C, [ev.submitted(job=C, at=OLD), ev.stopped(job=C, at=OLD)]),
        (D, [ev.submitted(job=D, at=OLD), ev.started(job=D, at=RECENT),
             ev.completed(job=D, at=RECENT)]),
        (E, [ev.submitted(job=E, at=OLD)]),
    ]  # fmt: skip


async def append(nc: Client, writes: list[tuple[str, list[AnyEvent]]]) -> int:
    store = JetStreamEventStore(nc)
    for job_id, events in writes:
        await store.append([Write(job_id, events, expected_seq=None)])
    return await last_event_sequence(DirectGetter(nc))


async def counts(reads: ReadModel) -> dict[str, int]:
    return {status: n for status, _, n in await reads.counts()}


async def test_old_terminal_jobs_leave_the_read_model_and_come_back_when_they_move(
    nc: Client, pool: asyncpg.Pool
) -> None:
    projector = Projector(nc, pool, retention=timedelta(days=30))
    await projector.catch_up(await append(nc, workload()))
    reads = ReadModel(pool)
    assert await counts(reads) == {"completed": 2, "failed": 1, "stopped": 1, "pending": 1}

    assert await projector.maintain() == 3
    assert await projector.maintain() == 0
    assert sorted(j.id for j in await reads.all_jobs()) == [D, E]
    assert await counts(reads) == {"completed": 1, "pending": 1}
    pruned = await reads.get_checked(A)
    assert pruned.state is None and pruned.pruned
    assert not (await reads.get_checked("01KRETAIN0000000000000000Z")).pruned
    report = await verify(nc, pool)
    assert report.ok and report.pruned == 3, report.render()

    # a restart of a pruned failed job, a delete of a pruned completed one
    more: list[tuple[str, list[AnyEvent]]] = [
        (B, [ev.restarted(job=B, at=NOW)]),
        (A, [ev.deleted(job=A, at=NOW)]),
    ]
    await projector.catch_up(await append(nc, more))
    b = await reads.get(B)
    assert b is not None and b.status == "pending" and b.created_at == OLD and b.version == 4
    assert await reads.get(A) is None and not (await reads.get_checked(A)).pruned
    assert (await reads.get_checked(C)).pruned
    assert await counts(reads) == {"completed": 1, "pending": 2}
    report = await verify(nc, pool)
    assert report.ok and report.pruned == 1, report.render()
