"""The command handler over the in-memory store: decide, append with the expected sequence,
and on a conflict read again and decide again; batch submissions in atomic chunks."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from conveyor_events import (
    CommandHandler,
    ConcurrencyConflict,
    InvalidTransition,
    Loaded,
    RestartJob,
    StopJob,
    SubmitJob,
    TooManyConflicts,
    Write,
    fold_stored,
)
from conveyor_events import testing as ev
from conveyor_events.handling import BATCH_MESSAGES
from conveyor_events.testing import InMemoryEventStore

pytestmark = pytest.mark.unit


def submit(job_id: str = ev.JOB) -> SubmitJob:
    return SubmitJob(job_id=job_id, now=ev.T0, actor=ev.USER, type="noop")


async def test_a_command_on_a_stale_read_is_decided_again_on_a_fresh_one() -> None:
    store = InMemoryEventStore()
    handler = CommandHandler(store)
    await handler.submit([submit()])
    stale = await store.load(ev.JOB)
    store.forge(ev.started())  # a worker started it meanwhile

    outcome = await handler.execute(StopJob(job_id=ev.JOB, now=ev.T0, actor=ev.USER), stale)

    assert store.conflicts == 1
    assert outcome.state.stop_requested and outcome.state.status == "running"
    assert [e.event.name for e in outcome.events] == ["job.stop_requested"]


async def test_a_command_the_fresh_read_forbids_raises_and_writes_nothing() -> None:
    store = InMemoryEventStore()
    handler = CommandHandler(store)
    await handler.submit([submit()])
    stale = await store.load(ev.JOB)
    store.forge(ev.started())
    store.forge(ev.completed())

    with pytest.raises(InvalidTransition):
        await handler.execute(RestartJob(job_id=ev.JOB, now=ev.T0, actor=ev.USER), stale)
    assert len(store.log) == 3


async def test_a_job_that_keeps_changing_gives_up_after_the_retries() -> None:
    class Busy(InMemoryEventStore):
        async def append(self, writes: object) -> None:
            raise ConcurrencyConflict("always someone first")

    store = Busy()
    store.forge(ev.submitted())
    pauses: list[int] = []

    async def pause(attempt: int) -> None:
        pauses.append(attempt)

    handler = CommandHandler(store, retries=3, pause=pause)
    with pytest.raises(TooManyConflicts):
        await handler.execute(StopJob(job_id=ev.JOB, now=ev.T0, actor=ev.USER))
    assert pauses == [0, 1, 2]


async def test_nothing_to_write_is_an_outcome_without_events() -> None:
    store = InMemoryEventStore()
    handler = CommandHandler(store)
    for event in (ev.submitted(), ev.started(), ev.stop_requested()):
        store.forge(event)

    outcome = await handler.execute(StopJob(job_id=ev.JOB, now=ev.T0, actor=ev.USER))

    assert outcome.events == [] and outcome.state.stop_requested
    assert len(store.log) == 3


async def test_appends_go_through_the_given_append() -> None:
    store = InMemoryEventStore()
    seen: list[Write] = []

    async def append(write: Write) -> None:
        seen.append(write)
        await store.append([write])

    handler = CommandHandler(store, append=append)
    await handler.submit([submit()])
    await handler.execute(StopJob(job_id=ev.JOB, now=ev.T0, actor=ev.USER))

    assert [(w.job_id, w.expected_seq, [e.name for e in w.events]) for w in seen] == [
        (ev.JOB, 1, ["job.stopped"])
    ]


async def test_a_batch_submission_is_written_in_chunks_of_one_atomic_batch() -> None:
    calls: list[int] = []

    class Counting(InMemoryEventStore):
        async def append(self, writes: Sequence[Write]) -> None:
            calls.append(len(writes))
            await super().append(writes)

    store = Counting()
    ids = [f"01HANDLING{n:016d}" for n in range(BATCH_MESSAGES + 10)]

    outcomes = await CommandHandler(store).submit([submit(i) for i in ids])

    assert calls == [BATCH_MESSAGES, 10]
    assert [o.state.id for o in outcomes] == ids
    assert await store.load(ids[-1]) == Loaded(
        fold_stored([(len(ids), o.events[0].event) for o in outcomes[-1:]]), len(ids)
    )
    assert outcomes[-1].state.seq == len(ids)
