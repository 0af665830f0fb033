"""The event store against a real JetStream: atomic batches, optimistic concurrency,
idempotency records, histories longer than one read, and failed reads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client

from conveyor_bus import (
    BusUnavailable,
    ConcurrencyConflict,
    DirectGetter,
    EventStore,
    Loaded,
    Write,
)
from conveyor_bus.reader import last_sequence
from conveyor_events import (
    JobAlreadyExists,
    ReportProgress,
    StartJob,
    StopJob,
    SubmitJob,
    decide,
    encode_event,
    fold,
    names,
)
from conveyor_events.testing import completed

pytestmark = pytest.mark.integration


def now() -> datetime:
    return datetime.now(UTC)


def submit(job_id: str) -> SubmitJob:
    return SubmitJob(job_id=job_id, now=now(), actor="user:test", type="noop")


async def test_submit_writes_the_event_and_the_run_command_together(nc: Client) -> None:
    store = EventStore(nc)
    [outcome] = await store.submit([submit("01STORE0000000000000000001")])
    loaded = await store.load("01STORE0000000000000000001")
    assert loaded.state == outcome.state and loaded.state.status == "pending"
    command = await store.last_message(names.run_subject("regular"))
    assert command is not None and command.seq == outcome.last_seq + 1
    assert b"01STORE0000000000000000001" in command.data


async def test_a_stale_expected_sequence_writes_nothing_of_the_batch(nc: Client) -> None:
    store = EventStore(nc)
    await store.submit([submit("01STORE0000000000000000002"), submit("01STORE0000000000000000003")])
    a = await store.load("01STORE0000000000000000002")
    b = await store.load("01STORE0000000000000000003")
    before = await last_sequence(nc)
    stop_a = decide(StopJob(job_id="01STORE0000000000000000002", now=now(), actor="u"), a.state)
    stop_b = decide(StopJob(job_id="01STORE0000000000000000003", now=now(), actor="u"), b.state)
    with pytest.raises(ConcurrencyConflict):
        await store.append(
            [
                Write(job_id="01STORE0000000000000000002", events=stop_a, expected_seq=a.last_seq),
                Write(
                    job_id="01STORE0000000000000000003", events=stop_b, expected_seq=b.last_seq - 1
                ),  # stale
            ]
        )
    assert await last_sequence(nc) == before
    after = (await store.load("01STORE0000000000000000002")).state
    assert after is not None and after.status == "pending"


async def test_concurrent_writers_exactly_one_wins(nc: Client) -> None:
    store = EventStore(nc)
    await store.submit([submit("01STORE0000000000000000004")])
    loaded = await store.load("01STORE0000000000000000004")
    starts = [
        StartJob(
            job_id="01STORE0000000000000000004",
            now=now(),
            actor=f"worker:w{i}",
            worker_id=f"w{i}",
            run=1,
        )
        for i in range(10)
    ]
    results = await asyncio.gather(
        *(store.apply(s, loaded) for s in starts), return_exceptions=True
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    assert all(isinstance(r, ConcurrencyConflict) for r in results if r not in won)
    history = await store.history("01STORE0000000000000000004")
    assert [e.event.name for e in history] == ["job.submitted", "job.started"]


async def test_submitting_an_existing_id_is_refused(nc: Client) -> None:
    store = EventStore(nc)
    await store.submit([submit("01STORE0000000000000000005")])
    loaded = await store.load("01STORE0000000000000000005")
    with pytest.raises(JobAlreadyExists):
        decide(submit("01STORE0000000000000000005"), loaded.state)
    with pytest.raises(ConcurrencyConflict):  # and the log refuses it too
        await store.submit([submit("01STORE0000000000000000005")])


async def test_one_idempotency_key_one_job_under_concurrency(nc: Client) -> None:
    store = EventStore(nc)
    ids = [f"01STOREIDEM00000000000000{n:02d}"[-26:] for n in range(20)]
    results = await asyncio.gather(
        *(store.submit([submit(i)], idempotency_key="key-1") for i in ids),
        return_exceptions=True,
    )
    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    winner = won[0][0].state.id
    assert await store.idempotent_job("key-1") == winner
    for job_id in ids:
        if job_id != winner:
            assert (await store.load(job_id)).state is None


async def test_history_longer_than_one_read(nc: Client) -> None:
    store = EventStore(nc)
    job_id = "01STORE0000000000000000006"
    await store.submit([submit(job_id)])
    outcome = await store.execute(
        StartJob(job_id=job_id, now=now(), actor="worker:w", worker_id="w", run=1)
    )
    for i in range(1100):
        outcome = await store.apply(
            ReportProgress(job_id=job_id, now=now(), actor="worker:w", attempt=1, progress=i / 11),
            Loaded(outcome.state, outcome.last_seq),
        )
    history = await store.history(job_id)
    assert len(history) == 1102
    assert fold(e.event for e in history) == outcome.state
    # reading only what follows a known position gives the same state
    early = fold(e.event for e in history[:50])
    assert early is not None
    refreshed = await store.refresh(Loaded(early, history[49].seq))
    assert refreshed == await store.load(job_id) == Loaded(outcome.state, outcome.last_seq)


async def test_a_failed_read_is_an_error_not_an_empty_history(nc: Client) -> None:
    getter = DirectGetter(nc)
    with pytest.raises(BusUnavailable):
        await getter.batch("NO_SUCH_STREAM", {"seq": 1, "next_by_subj": "x", "batch": 10})
    assert await getter.batch(names.STREAM, {"last_by_subj": "conveyor.events.NOPE"}) == []


async def test_poison_on_a_job_subject_is_left_out_of_its_history(nc: Client) -> None:
    """Garbage and a forbidden transition on a job's subject (what the projector parks as
    dead letters): readers of the job ignore them, and appends still find the subject's last
    sequence."""
    store = EventStore(nc)
    job_id = "01STORE0000000000000000007"
    await store.submit([submit(job_id)])
    js = nc.jetstream()
    subject = names.event_subject(job_id)
    await js.publish(subject, b"\x00garbage")
    forged = completed(attempt=1, job=job_id)  # completed without ever starting
    last = await js.publish(subject, encode_event(forged))

    loaded = await store.load(job_id)
    assert loaded.state is not None and loaded.state.status == "pending"
    assert loaded.last_seq == last.seq
    assert [e.event.name for e in await store.history(job_id)] == ["job.submitted"]
    outcome = await store.execute(StopJob(job_id=job_id, now=now(), actor="user:test"))
    assert outcome.state.status == "stopped"
    assert [e.event.name for e in await store.history(job_id)] == ["job.submitted", "job.stopped"]


async def test_the_leader_says_whether_a_job_was_ever_submitted(nc: Client) -> None:
    store = EventStore(nc)
    job_id = "01STORE0000000000000000008"
    assert await store.on_leader(job_id) is False
    await store.submit([submit(job_id)])
    assert await store.on_leader(job_id) is True
