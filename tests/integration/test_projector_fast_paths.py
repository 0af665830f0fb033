"""The projector's fast paths build the same read model as the fold of the log: ``replay``
reads the log with batched direct gets (in batches of any size), a projector takes the rows
it wrote last from its cache, and forgets them when another projector wrote in between."""

from __future__ import annotations

import asyncpg
import pytest
from nats.aio.client import Client

from conveyor_bus import DirectGetter, JetStreamEventStore
from conveyor_bus.reader import last_event_sequence
from conveyor_cli.verify import verify
from conveyor_db import ReadModel, reset
from conveyor_events import AnyEvent, Write, names
from conveyor_events import testing as ev
from conveyor_projector.logread import read_range
from conveyor_projector.projector import Projector

pytestmark = pytest.mark.integration

JOBS = [f"01KFAST00000000000000000{n:02d}" for n in range(12)]


def history(job: str, n: int) -> list[AnyEvent]:
    """Valid histories of a few shapes: completed, retried then completed, failed, pending."""
    shape = n % 4
    events: list[AnyEvent] = [ev.submitted(2, job=job), ev.started(job=job)]
    if shape == 0:
        events += [ev.progressed(1, 50.0, "half", job=job), ev.completed(job=job)]
    elif shape == 1:
        events += [ev.failed(1, retry=True, job=job), ev.started(2, 2, job=job)]
        events += [ev.completed(2, {"n": n}, job=job)]
    elif shape == 2:
        events += [ev.failed(1, job=job)]
    else:
        events = events[:1]
    return events


async def write_interleaved(nc: Client) -> int:
    """Every job's history, the jobs' events interleaved one round at a time."""
    store = JetStreamEventStore(nc)
    histories = [history(job, n) for n, job in enumerate(JOBS)]
    for step in range(max(len(h) for h in histories)):
        writes = [
            Write(job, [h[step]], expected_seq=None)
            for job, h in zip(JOBS, histories, strict=True)
            if step < len(h)
        ]
        await store.append(writes)
    return await last_event_sequence(DirectGetter(nc))


@pytest.fixture
async def last(nc: Client) -> int:
    seq = await last_event_sequence(DirectGetter(nc))
    return seq if seq else await write_interleaved(nc)


async def rebuilt(nc: Client, pool: asyncpg.Pool, batch: int) -> ReadModel:
    async with pool.acquire() as conn:
        await reset(conn)
    projector = Projector(nc, pool, replay_batch_size=batch)
    await projector.catch_up(await last_event_sequence(DirectGetter(nc)))
    return ReadModel(pool)


@pytest.mark.parametrize("batch", [1, 3, 7, 10_000])
async def test_replay_in_batches_of_any_size_equals_the_fold(
    nc: Client, pool: asyncpg.Pool, last: int, batch: int
) -> None:
    reads = await rebuilt(nc, pool, batch)
    assert await reads.checkpoint() == last
    assert len(await reads.all_jobs()) == len(JOBS)
    report = await verify(nc, pool)
    assert report.ok, report.render()


async def test_read_range_stops_at_its_end_and_skips_nothing(nc: Client, last: int) -> None:
    getter = DirectGetter(nc)
    seqs = [m.seq async for batch in read_range(getter, 1, last - 5, 4) for m in batch]
    everything = await getter.all_by_subject(names.STREAM, names.EVENTS_ALL)
    assert seqs == [m.seq for m in everything if m.seq <= last - 5]
    assert [b async for b in read_range(getter, last + 1, last, 4)] == []


async def take_turns(nc: Client, pool: asyncpg.Pool, *, blind: bool) -> Projector:
    """Projectors A and B apply alternate batches of five events over the same jobs. With
    ``blind``, each is told the checkpoint before its turn, as if it had written it itself,
    so it does not see that the other one wrote."""
    async with pool.acquire() as conn:
        await reset(conn)
    a, b = Projector(nc, pool), Projector(nc, pool)
    msgs = await DirectGetter(nc).all_by_subject(names.STREAM, names.EVENTS_ALL)
    for i in range(0, len(msgs), 5):
        projector = (a, b)[(i // 5) % 2]
        if blind:
            projector.position = await projector.checkpoint()
        await projector.apply(msgs[i : i + 5])
    assert a._cache and b._cache  # both took rows from their caches
    return a


async def test_two_projectors_taking_turns_still_build_the_fold(
    nc: Client, pool: asyncpg.Pool, last: int
) -> None:
    """Each forgets its cached rows when the checkpoint shows the other one wrote."""
    await take_turns(nc, pool, blind=False)
    assert await ReadModel(pool).checkpoint() == last
    report = await verify(nc, pool)
    assert report.ok, report.render()


async def test_control_a_projector_blind_to_the_other_writes_from_stale_rows(
    nc: Client, pool: asyncpg.Pool, last: int
) -> None:
    await take_turns(nc, pool, blind=True)
    report = await verify(nc, pool)
    assert not report.ok
    assert report.differing or report.valid_parked
