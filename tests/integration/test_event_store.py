"""The JetStream event store, beyond the port's contract: what a submission writes (one
message: the event is the run command), atomic batches, histories longer than one read,
poison bytes on a job's subjects, failed reads."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from nats.aio.client import Client

from conveyor_bus import BusUnavailable, DirectGetter, JetStreamEventStore
from conveyor_bus.reader import last_sequence
from conveyor_bus.topology import queue_depth
from conveyor_events import (
    CommandHandler,
    ConcurrencyConflict,
    Loaded,
    ReportProgress,
    StartJob,
    StopJob,
    SubmitJob,
    decode_event,
    fold,
    fold_stored,
    names,
)

pytestmark = pytest.mark.integration


def now() -> datetime:
    return datetime.now(UTC)


def submit(job_id: str, priority: names.Priority = "regular") -> SubmitJob:
    return SubmitJob(job_id=job_id, now=now(), actor="user:test", type="noop", priority=priority)


async def test_a_submission_is_one_message_in_the_log(nc: Client) -> None:
    store, job_id = JetStreamEventStore(nc), "01STORE0000000000000000001"
    before = await last_sequence(nc)
    depth = await queue_depth(nc)

    [outcome] = await CommandHandler(store).submit([submit(job_id, "high")])

    assert await last_sequence(nc) == before + 1 == outcome.last_seq
    stored = await DirectGetter(nc).all_by_subject(names.STREAM, ">", start=before + 1)
    assert [(m.seq, m.subject) for m in stored] == [
        (outcome.last_seq, f"conveyor.job.{job_id}.submitted.high")
    ]
    assert decode_event(stored[0].data) == outcome.events[0].event
    # that one message is what the high queue's consumer delivers: the event is the command
    after = await queue_depth(nc)
    assert after["high"][0] == depth["high"][0] + 1
    assert after["regular"] == depth["regular"]


async def test_a_batch_submission_is_one_atomic_batch(nc: Client) -> None:
    store = JetStreamEventStore(nc)
    handler = CommandHandler(store)
    taken = "01STORE0000000000000000002"
    await handler.submit([submit(taken)])
    before = await last_sequence(nc)

    with pytest.raises(ConcurrencyConflict):  # one id already exists: nothing is written
        await handler.submit([submit("01STORE0000000000000000003"), submit(taken)])

    assert await last_sequence(nc) == before
    outcomes = await handler.submit([submit(f"01STOREBATCH000000000000{n:02d}") for n in range(3)])
    assert [o.last_seq for o in outcomes] == [before + 1, before + 2, before + 3]


async def test_a_key_is_recorded_with_its_job_in_one_batch(nc: Client) -> None:
    store, job_id = JetStreamEventStore(nc), "01STORE0000000000000000004"
    before = await last_sequence(nc)

    await CommandHandler(store).submit([submit(job_id)], ["the-key"])

    stored = await DirectGetter(nc).all_by_subject(names.STREAM, ">", start=before + 1)
    assert [m.subject for m in stored] == [
        f"conveyor.job.{job_id}.submitted.regular",
        names.idempotency_subject("the-key"),
    ]
    assert await store.key_owner("the-key") == job_id


async def test_history_longer_than_one_read(nc: Client) -> None:
    store, job_id = JetStreamEventStore(nc), "01STORE0000000000000000006"
    handler = CommandHandler(store)
    await handler.submit([submit(job_id)])
    outcome = await handler.execute(
        StartJob(job_id=job_id, now=now(), actor="worker:w", worker_id="w", run=1)
    )
    for i in range(1100):
        outcome = await handler.execute(
            ReportProgress(job_id=job_id, now=now(), actor="worker:w", attempt=1, progress=i / 11),
            Loaded(outcome.state, outcome.last_seq),
        )

    history = await store.history(job_id)

    assert len(history) == 1102
    assert fold_stored((e.seq, e.event) for e in history) == outcome.state
    early = fold(e.event for e in history[:50])
    assert early is not None
    refreshed = await store.load(job_id, after=Loaded(early, history[49].seq))
    assert refreshed == await store.load(job_id) == Loaded(outcome.state, outcome.last_seq)


async def test_a_failed_read_is_an_error_not_an_empty_history(nc: Client) -> None:
    getter = DirectGetter(nc)
    with pytest.raises(BusUnavailable):
        await getter.batch("NO_SUCH_STREAM", {"seq": 1, "next_by_subj": "x", "batch": 10})
    assert await getter.batch(names.STREAM, {"last_by_subj": "conveyor.job.NOPE.>"}) == []


async def test_garbage_on_a_jobs_subjects_is_left_out_of_its_history(nc: Client) -> None:
    """Bytes that are no event, on one of the job's subjects (what the projector parks):
    readers of the job ignore them, and appends still expect the last message."""
    store, job_id = JetStreamEventStore(nc), "01STORE0000000000000000007"
    handler = CommandHandler(store)
    await handler.submit([submit(job_id)])
    last = await nc.jetstream().publish(names.event_subject(job_id, "job.started"), b"\x00junk")

    loaded = await store.load(job_id)

    assert loaded.state is not None and loaded.state.status == "pending"
    assert loaded.last_seq == last.seq
    outcome = await handler.execute(StopJob(job_id=job_id, now=now(), actor="user:test"))
    assert outcome.state.status == "stopped"
    assert [e.event.name for e in await store.history(job_id)] == ["job.submitted", "job.stopped"]


async def long_history(nc: Client, job_id: str, progress: int) -> JetStreamEventStore:
    store = JetStreamEventStore(nc)
    handler = CommandHandler(store)
    await handler.submit([submit(job_id)])
    outcome = await handler.execute(
        StartJob(job_id=job_id, now=now(), actor="worker:w", worker_id="w", run=1)
    )
    for i in range(progress):
        outcome = await handler.execute(
            ReportProgress(job_id=job_id, now=now(), actor="worker:w", attempt=1, progress=i / 3),
            Loaded(outcome.state, outcome.last_seq),
        )
    return store


async def test_a_reply_that_lost_messages_is_an_error_not_a_shorter_history(nc: Client) -> None:
    """The replies of a batched direct get are core NATS messages, which a client that falls
    behind drops (a slow consumer). A getter whose subscription may queue only 4 of them
    loses some of a 200-message reply for real (2 KB messages arrive over many socket reads,
    so most of the time the end of the batch still gets through, and the chain check names
    the loss; when the end is lost too, the read times out): the read fails instead of
    answering less. The chain check itself is unit-tested in libs/bus/tests."""
    js = nc.jetstream()
    job_id = "01STORE000000000000000000A"
    for _ in range(200):
        await js.publish(names.event_subject(job_id, "job.progressed"), b"x" * 2048)
    for n in range(200):  # the last message of 200 subjects: one multi_last reply
        await js.publish(f"conveyor.job.01LOST{n:020d}.deleted", b"y" * 2048)
    full = DirectGetter(nc)
    assert len(await full.all_by_subject(names.STREAM, names.job_subjects(job_id))) == 200
    assert len(await full.last_per_subject(names.STREAM, "conveyor.job.*.deleted")) == 200
    lossy = DirectGetter(nc, pending_msgs_limit=4)

    for _ in range(3):
        with pytest.raises(BusUnavailable, match=r"lost messages|timed out"):
            await lossy.all_by_subject(names.STREAM, names.job_subjects(job_id))
        with pytest.raises(BusUnavailable, match=r"lost messages|timed out"):
            await lossy.last_per_subject(names.STREAM, "conveyor.job.*.deleted")


async def test_a_history_is_read_a_page_at_a_time(nc: Client) -> None:
    job_id = "01STORE0000000000000000009"
    store = await long_history(nc, job_id, 1500)
    everything = await store.history(job_id)
    assert len(everything) == 1502

    first = await store.history(job_id, limit=10)
    middle = await store.history(job_id, after_seq=everything[999].seq, limit=600)
    rest = await store.history(job_id, after_seq=everything[-2].seq)

    assert first == everything[:10]
    assert middle == everything[1000:1502]  # fewer than asked for: the end
    assert rest == everything[-1:]
    assert await store.history(job_id, after_seq=everything[-1].seq) == []
