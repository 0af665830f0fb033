"""The ``ScheduleStore`` port's contract (conveyor_api.scheduling), run against the
in-memory fake the unit tests use and the JetStream adapter: a name is written once with
expected sequence 0, every later write names the sequence it replaces, a stale one is a
conflict, deleting frees the name."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from nats.aio.client import Client

from conveyor_api.scheduling import ScheduleStore
from conveyor_api.testing import InMemorySchedules
from conveyor_bus.schedules import JetStreamSchedules, ScheduleRefused
from conveyor_events import ConcurrencyConflict

pytestmark = pytest.mark.integration

EVERY_HOUR = "0 0 * * * *"


@pytest.fixture(params=["memory", "jetstream"])
async def store(request: pytest.FixtureRequest, nc: Client) -> AsyncIterator[ScheduleStore]:
    found: ScheduleStore = (
        InMemorySchedules() if request.param == "memory" else JetStreamSchedules(nc)
    )
    names = [f"contract-{n}" for n in range(4)]
    for name in names:
        await found.delete(name)
    yield found
    for name in names:
        await found.delete(name)


async def test_a_new_name_is_written_with_expected_sequence_zero(store: ScheduleStore) -> None:
    assert await store.get("contract-0") is None
    seq = await store.put("contract-0", b"one", expected_seq=0, cron=EVERY_HOUR, timezone="UTC")
    stored = await store.get("contract-0")
    assert stored is not None and (stored.seq, stored.data) == (seq, b"one")
    with pytest.raises(ConcurrencyConflict):
        await store.put("contract-0", b"two", expected_seq=0, cron=EVERY_HOUR, timezone="UTC")
    assert (await store.get("contract-0")) == stored


async def test_a_change_names_the_sequence_it_replaces(store: ScheduleStore) -> None:
    first = await store.put("contract-1", b"a", expected_seq=0, cron=EVERY_HOUR, timezone="UTC")
    second = await store.put("contract-1", b"b", expected_seq=first, cron=None, timezone="UTC")
    assert second > first
    with pytest.raises(ConcurrencyConflict):
        await store.put("contract-1", b"c", expected_seq=first, cron=None, timezone="UTC")
    stored = await store.get("contract-1")
    assert stored is not None and (stored.seq, stored.data) == (second, b"b")


async def test_all_lists_every_definition_and_delete_frees_the_name(store: ScheduleStore) -> None:
    await store.put("contract-2", b"x", expected_seq=0, cron=EVERY_HOUR, timezone="UTC")
    await store.put("contract-3", b"y", expected_seq=0, cron=None, timezone="UTC")
    listed = dict(await store.all())
    assert (listed["contract-2"], listed["contract-3"]) == (b"x", b"y")
    assert await store.last_tick("contract-2") is None
    await store.delete("contract-2")
    assert await store.get("contract-2") is None
    assert "contract-2" not in dict(await store.all())
    await store.put("contract-2", b"z", expected_seq=0, cron=EVERY_HOUR, timezone="UTC")


async def test_the_server_refuses_what_its_cron_does_not_accept(nc: Client) -> None:
    """The adapter only: the fake takes any cron (the API checks it first)."""
    store = JetStreamSchedules(nc)
    with pytest.raises(ScheduleRefused) as cron:
        await store.put("contract-x", b"", expected_seq=0, cron="0 0 0 * * 7", timezone="UTC")
    assert cron.value.field == "cron"
    with pytest.raises(ScheduleRefused) as zone:
        await store.put("contract-x", b"", expected_seq=0, cron=EVERY_HOUR, timezone="Mars/Base")
    assert zone.value.field == "timezone"
    assert await store.get("contract-x") is None
