"""The event store port's contract, run against the in-memory store of
``conveyor_events.testing`` and against JetStream: the fake's answers are the real ones, so
unit tests over the fake test what runs.

Both: one sequence for the log; appends checked against the job's last message; several
writes all or nothing; an idempotency key taken once; events the transitions table forbids
left out of what is read, while the next append still expects the last message; a load
brought up to date from a known state equals a full load; the command handler retries a
conflict on a fresh read.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client

from conveyor_bus import JetStreamEventStore
from conveyor_events import (
    AnyEvent,
    CommandHandler,
    ConcurrencyConflict,
    EventStore,
    JobAlreadyExists,
    Loaded,
    ReportProgress,
    StartJob,
    StopJob,
    SubmitJob,
    Write,
    decide,
    encode_event,
    fold_stored,
    subject_of,
)
from conveyor_events.testing import InMemoryEventStore, completed

pytestmark = pytest.mark.integration

_ids = iter(range(10_000))


def new_id() -> str:
    return f"01CONTRACT{next(_ids):016d}"


def now() -> datetime:
    return datetime.now(UTC)


def submit(job_id: str) -> SubmitJob:
    return SubmitJob(job_id=job_id, now=now(), actor="user:test", type="noop")


class Adapter:
    """A store and a way to write an event past every check (a forged write)."""

    def __init__(self, store: EventStore, forge: Callable[[AnyEvent], Awaitable[int]]) -> None:
        self.store = store
        self.forge = forge


@pytest.fixture(params=["memory", "jetstream"])
async def adapter(request: pytest.FixtureRequest, nc: Client) -> AsyncIterator[Adapter]:
    if request.param == "memory":
        fake = InMemoryEventStore()

        async def forge_fake(event: AnyEvent) -> int:
            return fake.forge(event)

        yield Adapter(fake, forge_fake)
        return
    js = nc.jetstream()

    async def forge_real(event: AnyEvent) -> int:
        ack = await js.publish(subject_of(event, "regular"), encode_event(event))
        return int(ack.seq)

    yield Adapter(JetStreamEventStore(nc), forge_real)


async def test_a_submitted_job_loads_as_pending(adapter: Adapter) -> None:
    store, job_id = adapter.store, new_id()
    [outcome] = await CommandHandler(store).submit([submit(job_id)])

    loaded = await store.load(job_id)

    assert loaded == Loaded(outcome.state, outcome.last_seq)
    assert loaded.state is not None and loaded.state.status == "pending"
    assert await store.last_seq(job_id) == outcome.last_seq
    assert [e.event.name for e in await store.history(job_id)] == ["job.submitted"]
    assert await store.load(new_id()) == Loaded(None, 0)


async def test_a_stale_expected_sequence_writes_nothing_of_the_append(adapter: Adapter) -> None:
    store, a, b = adapter.store, new_id(), new_id()
    await CommandHandler(store).submit([submit(a), submit(b)])
    la, lb = await store.load(a), await store.load(b)
    stop_a = decide(StopJob(job_id=a, now=now(), actor="u"), la.state)
    stop_b = decide(StopJob(job_id=b, now=now(), actor="u"), lb.state)

    with pytest.raises(ConcurrencyConflict):
        await store.append(
            [Write(a, stop_a, la.last_seq), Write(b, stop_b, lb.last_seq - 1)]  # b is stale
        )

    assert await store.load(a) == la and await store.load(b) == lb


async def test_of_concurrent_writers_exactly_one_wins(adapter: Adapter) -> None:
    store, job_id = adapter.store, new_id()
    await CommandHandler(store).submit([submit(job_id)])
    loaded = await store.load(job_id)

    async def start(worker: str) -> None:
        command = StartJob(job_id=job_id, now=now(), actor=worker, worker_id=worker, run=1)
        await store.append([Write(job_id, decide(command, loaded.state), loaded.last_seq)])

    results = await asyncio.gather(*(start(f"w{i}") for i in range(10)), return_exceptions=True)

    assert sum(r is None for r in results) == 1
    assert all(isinstance(r, ConcurrencyConflict) for r in results if r is not None)
    assert [e.event.name for e in await store.history(job_id)] == ["job.submitted", "job.started"]


async def test_a_second_submission_of_an_id_is_refused(adapter: Adapter) -> None:
    store, job_id = adapter.store, new_id()
    handler = CommandHandler(store)
    await handler.submit([submit(job_id)])

    with pytest.raises(JobAlreadyExists):
        await handler.execute(submit(job_id))
    with pytest.raises(ConcurrencyConflict):  # and the store refuses it too
        await handler.submit([submit(job_id)])


async def test_one_idempotency_key_one_job_under_concurrency(adapter: Adapter) -> None:
    store, handler = adapter.store, CommandHandler(adapter.store)
    ids = [new_id() for _ in range(20)]
    key = f"key-{ids[0]}"

    results = await asyncio.gather(
        *(handler.submit([submit(i)], [key]) for i in ids), return_exceptions=True
    )

    won = [r for r in results if not isinstance(r, BaseException)]
    assert len(won) == 1
    winner = won[0][0].state.id
    assert await store.key_owner(key) == winner
    assert await store.key_owner(f"other-{key}") is None
    for job_id in ids:
        if job_id != winner:
            assert (await store.load(job_id)).state is None


async def test_forbidden_events_are_left_out_but_appends_expect_the_last_message(
    adapter: Adapter,
) -> None:
    store, job_id = adapter.store, new_id()
    handler = CommandHandler(store)
    await handler.submit([submit(job_id)])
    last = await adapter.forge(completed(attempt=1, job=job_id))  # completed, never started

    loaded = await store.load(job_id)

    assert loaded.state is not None and loaded.state.status == "pending"
    assert loaded.last_seq == last == await store.last_seq(job_id)
    assert [e.event.name for e in await store.history(job_id)] == ["job.submitted"]
    outcome = await handler.execute(StopJob(job_id=job_id, now=now(), actor="user:test"))
    assert outcome.state.status == "stopped" and outcome.last_seq > last


async def test_a_load_after_a_known_state_equals_a_full_load(adapter: Adapter) -> None:
    store, job_id = adapter.store, new_id()
    handler = CommandHandler(store)
    await handler.submit([submit(job_id)])
    start = StartJob(job_id=job_id, now=now(), actor="worker:w", worker_id="w", run=1)
    outcome = await handler.execute(start)
    early = Loaded(outcome.state, outcome.last_seq)
    for i in range(20):
        progress = ReportProgress(job_id=job_id, now=now(), actor="worker:w", attempt=1, progress=i)
        outcome = await handler.execute(progress, Loaded(outcome.state, outcome.last_seq))

    assert await store.load(job_id, after=early) == await store.load(job_id)
    assert await store.load(job_id) == Loaded(outcome.state, outcome.last_seq)
    assert fold_stored((e.seq, e.event) for e in await store.history(job_id)) == outcome.state
    assert outcome.state.seq == outcome.last_seq


async def test_the_handler_decides_again_on_a_fresh_read_after_a_conflict(
    adapter: Adapter,
) -> None:
    store, job_id = adapter.store, new_id()
    handler = CommandHandler(store)
    await handler.submit([submit(job_id)])
    stale = await store.load(job_id)
    start = StartJob(job_id=job_id, now=now(), actor="worker:w", worker_id="w", run=1)
    await handler.execute(start)  # the job moved on after `stale` was read

    stopped = await handler.execute(StopJob(job_id=job_id, now=now(), actor="u"), stale)

    assert stopped.state.status == "running" and stopped.state.stop_requested
    names = [e.event.name for e in await store.history(job_id)]
    assert names == ["job.submitted", "job.started", "job.stop_requested"]
