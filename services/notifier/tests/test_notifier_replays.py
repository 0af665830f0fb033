"""Replays after ``since`` against an in-memory log: at most ``max_replays`` run at once (the
next waits ``replay_wait_s`` for a slot, then is refused), and a replay that does not reach
what the live feed already passed on is an unavailable log, never a gap."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

import pytest
from nats.aio.client import Client

from conveyor_bus import BusError, BusUnavailable, StoredMsg
from conveyor_events import JobSubmitted, encode_event, names
from conveyor_events.events import SubmittedData
from conveyor_notifier.hub import Hub, ReplaysBusy

pytestmark = pytest.mark.unit

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching (``*`` one token, ``>`` the rest)."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or token not in ("*", have[i]):
            return False
    return len(want) == len(have)


class FakeLog:
    """Batched direct gets on a list of stored events; ``gate`` (when set) holds each batch
    until it is opened, ``fail`` makes the next batch raise."""

    def __init__(self, jobs: list[str]) -> None:
        self.msgs = [
            StoredMsg(
                seq=seq,
                subject=names.event_subject(job, "job.submitted", "regular"),
                data=encode_event(
                    JobSubmitted(job_id=job, at=T0, actor="user:t", data=SubmittedData(type="noop"))
                ),
            )
            for seq, job in enumerate(jobs, start=1)
        ]
        self.gate: asyncio.Event | None = None
        self.fail: BusError | None = None
        self.running = 0
        self.most_running = 0

    async def batch(
        self, stream: str, request: dict[str, Any], timeout: float = 5.0
    ) -> list[StoredMsg]:
        self.running += 1
        self.most_running = max(self.most_running, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail is not None:
                raise self.fail
            found = [
                m
                for m in self.msgs
                if m.seq >= request["seq"] and matches(request["next_by_subj"], m.subject)
            ]
            return [
                StoredMsg(m.seq, m.subject, m.data, num_pending=len(found) - i - 1)
                for i, m in enumerate(found[: request["batch"]])
            ]
        finally:
            self.running -= 1


def hub(log: FakeLog, max_replays: int = 1, replay_wait_s: float = 0.2) -> Hub:
    return Hub(
        cast(Client, None),
        client_buffer=100,
        getter=log,
        max_replays=max_replays,
        replay_wait_s=replay_wait_s,
    )


async def test_a_replay_waits_for_a_slot_and_past_replay_wait_s_is_refused() -> None:
    log = FakeLog([JOB] * 5)
    fan = hub(log, max_replays=2)
    log.gate = asyncio.Event()
    first = asyncio.create_task(fan.connect(None, 0))
    second = asyncio.create_task(fan.connect(JOB, 0))
    await asyncio.sleep(0.01)

    with pytest.raises(ReplaysBusy):
        await fan.connect(None, 2)
    live_only = await fan.connect(None, None)  # no replay, no slot

    log.gate.set()
    replayed = await first, await second
    assert log.most_running == 2
    assert [[seq for seq, _ in c.queue] for c in replayed] == [[1, 2, 3, 4, 5]] * 2
    assert not live_only.queue
    third = await fan.connect(None, 3)  # the slots are free again
    assert [seq for seq, _ in third.queue] == [4, 5]


async def test_a_waiting_replay_gets_the_slot_freed_within_replay_wait_s() -> None:
    log = FakeLog([JOB] * 3)
    fan = hub(log, max_replays=1, replay_wait_s=5)
    log.gate = asyncio.Event()
    first = asyncio.create_task(fan.connect(None, 0))
    waiting = asyncio.create_task(fan.connect(None, 1))
    await asyncio.sleep(0.01)
    assert log.most_running == 1 and not waiting.done()

    log.gate.set()
    assert [seq for seq, _ in (await waiting).queue] == [2, 3]
    assert [seq for seq, _ in (await first).queue] == [1, 2, 3]
    assert log.most_running == 1


async def test_a_failed_replay_frees_its_slot_and_leaves_no_client() -> None:
    log = FakeLog([JOB] * 3)
    fan = hub(log, max_replays=1)
    log.fail = BusUnavailable("direct get on CONVEYOR_JOBS: the reply lost messages after seq 1")
    with pytest.raises(BusUnavailable, match="lost messages"):
        await fan.connect(JOB, 0)
    assert fan.by_job == {} and fan.firehose == set()

    log.fail = None
    assert [seq for seq, _ in (await fan.connect(JOB, 0)).queue] == [1, 2, 3]


async def test_a_replay_that_stops_short_of_the_live_feed_is_an_unavailable_log() -> None:
    """A server that answers from a copy behind the one the live reader follows (a lagging
    replica) ends the replay early: the events between its end and the live feed's position
    would be missing, so the client is refused instead."""
    log = FakeLog([JOB] * 5)
    fan = hub(log)
    fan.position = 5  # the live reader passed on 5
    del log.msgs[3:]  # the replay's server has only 1..3

    with pytest.raises(BusUnavailable, match="ended at seq 3, before 5"):
        await fan.connect(None, 0)
    assert fan.firehose == set()
    assert not (await fan.connect(None, 5)).queue  # nothing missing: the live feed follows
