"""A deleted job stays deleted in the read model whatever the projector's batch boundaries: its
row gives way to a tombstone (``deleted_jobs``), so a poison ``job.submitted`` on its subject in
a later batch is parked as an impossible transition, exactly as it is when the delete and the
poison fall into one batch (``conveyor replay``), instead of bringing the job back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
import pytest
from nats.aio.client import Client

import conveyor_projector.projector as projector_module
from conveyor_bus import DirectGetter, JetStreamEventStore, StoredMsg
from conveyor_bus.reader import LogReader, last_event_sequence
from conveyor_cli.verify import verify
from conveyor_db import ReadModel, load_states, reset
from conveyor_events import (
    CommandHandler,
    DeleteJob,
    JobState,
    StopJob,
    SubmitJob,
    encode_event,
    names,
)
from conveyor_events import testing as ev
from conveyor_projector.projector import Projector

pytestmark = pytest.mark.integration

GONE = "01KGRAVE000000000000000001"
CONTROL = "01KGRAVE000000000000000002"
LIVE = "01KGRAVE000000000000000003"


async def new_messages(nc: Client, after_seq: int) -> list[StoredMsg]:
    """The events of the log after ``after_seq``, up to its end."""
    last = await last_event_sequence(DirectGetter(nc))
    out: list[StoredMsg] = []
    reader = LogReader(nc, names.EVENTS_ALL, after_seq + 1)
    try:
        while not out or out[-1].seq < last:
            out += await reader.fetch(1000, timeout=1.0)
    finally:
        await reader.close()
    return out


async def project_new(nc: Client, projector: Projector) -> list[StoredMsg]:
    """One projector batch: every event after its position."""
    msgs = await new_messages(nc, projector.position)
    await projector.apply(msgs)
    return msgs


async def submit_stop_delete(store: CommandHandler, job_id: str) -> int:
    """A job submitted, stopped while pending and deleted, through the API's write path;
    the sequence of its ``job.deleted``."""
    now = datetime.now(UTC)
    actor = "user:test"
    await store.submit([SubmitJob(job_id=job_id, now=now, actor=actor, type="noop")])
    await store.execute(StopJob(job_id=job_id, now=now, actor=actor))
    outcome = await store.execute(DeleteJob(job_id=job_id, now=now, actor=actor))
    assert outcome.state.deleted
    return outcome.last_seq


async def inject_submit(nc: Client, job_id: str) -> int:
    """A raw ``job.submitted`` for ``job_id`` on its subject, published with the plain NATS
    client (no expected sequence): the poison. Its sequence in the log."""
    poison = encode_event(ev.submitted(job=job_id, at=datetime.now(UTC)))
    reply = await nc.request(
        names.event_subject(job_id, "job.submitted", "regular"), poison, timeout=5
    )
    ack = json.loads(reply.data)
    assert "error" not in ack, ack
    return int(ack["seq"])


async def letters(pool: asyncpg.Pool) -> list[tuple[int, str | None, str, str]]:
    rows = await pool.fetch("SELECT seq, job_id, kind, reason FROM dead_letters ORDER BY seq")
    return [(r["seq"], r["job_id"], r["kind"], r["reason"]) for r in rows]


async def tombstones(pool: asyncpg.Pool) -> dict[str, int]:
    rows = await pool.fetch("SELECT id, seq FROM deleted_jobs")
    return {r["id"]: r["seq"] for r in rows}


async def fresh_projector(nc: Client, pool: asyncpg.Pool) -> Projector:
    async with pool.acquire() as conn:
        await reset(conn)
    return Projector(nc, pool)


async def test_a_submit_after_a_delete_in_a_later_batch_is_parked_and_the_job_stays_gone(
    nc: Client, pool: asyncpg.Pool
) -> None:
    store = CommandHandler(JetStreamEventStore(nc))
    projector = await fresh_projector(nc, pool)
    deleted_seq = await submit_stop_delete(store, GONE)
    await store.submit(
        [SubmitJob(job_id=LIVE, now=datetime.now(UTC), actor="user:test", type="noop")]
    )
    await project_new(nc, projector)  # batch 1: submit, stop, delete (and a live job)
    assert await ReadModel(pool).get(GONE) is None
    assert await tombstones(pool) == {GONE: deleted_seq}

    poison_seq = await inject_submit(nc, GONE)
    batch = await project_new(nc, projector)  # batch 2: the poison alone
    assert [m.seq for m in batch] == [poison_seq]

    parked = await letters(pool)
    assert [(seq, job, kind) for seq, job, kind, _ in parked] == [
        (poison_seq, GONE, "impossible_transition")
    ]
    assert "submitted twice" in parked[0][3]
    reads = ReadModel(pool)
    assert await reads.get(GONE) is None
    async with pool.acquire() as conn:
        states = await load_states(conn, [GONE, LIVE, "01KGRAVE00000000000000000Z"])
    assert set(states) == {GONE, LIVE}
    assert states[GONE].deleted and not states[LIVE].deleted
    assert [s.id for s in await reads.all_jobs()] == [LIVE]
    assert await reads.checkpoint() == poison_seq
    report = await verify(nc, pool)
    assert report.ok, report.render()
    assert [d.seq for d in report.parked] == [poison_seq]

    # The same log in one batch (``conveyor replay``) builds the same read model.
    replayed = await fresh_projector(nc, pool)
    assert await tombstones(pool) == {} and await letters(pool) == []  # reset empties them
    await project_new(nc, replayed)
    assert await letters(pool) == parked
    assert await tombstones(pool) == {GONE: deleted_seq}
    assert [s.id for s in await reads.all_jobs()] == [LIVE]
    assert (await verify(nc, pool)).ok


async def test_control_without_tombstones_the_poison_brings_the_job_back(
    nc: Client, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The protection disabled: a projector that forgets deleted jobs (load_states without
    the tombstones) applies the poison as a first submission, and verify catches it."""

    async def forgetful(
        conn: asyncpg.Connection, job_ids: Sequence[str], pruned: set[str] | None = None
    ) -> dict[str, JobState]:
        states = await load_states(conn, job_ids, pruned)
        return {k: s for k, s in states.items() if not s.deleted}

    monkeypatch.setattr(projector_module, "load_states", forgetful)
    store = CommandHandler(JetStreamEventStore(nc))
    projector = await fresh_projector(nc, pool)
    await submit_stop_delete(store, CONTROL)
    await project_new(nc, projector)
    assert await ReadModel(pool).get(CONTROL) is None

    poison_seq = await inject_submit(nc, CONTROL)
    await project_new(nc, projector)

    back = await ReadModel(pool).get(CONTROL)
    assert back is not None and back.status == "pending"  # the deleted job is back
    assert poison_seq not in [seq for seq, *_ in await letters(pool)]
    report = await verify(nc, pool)
    assert not report.ok
    assert CONTROL in report.invalid and "submitted twice" in report.invalid[CONTROL][-1]
