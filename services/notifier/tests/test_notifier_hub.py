"""The pure parts of the notifier's fan-out: the public frame of a stored event, and a
client's bounded queue (frames in strictly increasing ``seq``, overflow when too slow)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime

import msgspec
import pytest

from conveyor_bus import StoredMsg
from conveyor_events import JobStarted, JobSubmitted, decode_event, encode_event, names, runnable
from conveyor_events.events import StartedData, SubmittedData
from conveyor_events.poison import Poison
from conveyor_notifier.frames import check, frame
from conveyor_notifier.hub import Client_, Overflow

pytestmark = pytest.mark.unit

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)

SUBMITTED = encode_event(
    JobSubmitted(
        job_id=JOB,
        at=T0,
        actor="user:alice",
        data=SubmittedData(type="sleep", priority="high", payload={"seconds": 2.5, "n": [1, 2]}),
    )
)
STARTED = encode_event(
    JobStarted(job_id=JOB, at=T0, actor="worker:w-1", data=StartedData(attempt=1, worker_id="w"))
)
PRETTY = b"""
  {
    "type": "job.deleted",
    "job_id": "01JDQ5N3X8W4Y6Z7A9B2C3D4E5",
    "at": "2026-11-23T10:00:00Z",
    "actor": "user:alice",
    "data": {}
  }
"""


def stored(seq: int, data: bytes) -> StoredMsg:
    """``data`` as stored on JOB's subject of its event type (garbage: on its submission's)."""
    try:
        event = decode_event(data)
        subject = names.event_subject(JOB, event.name, "high" if runnable(event) else None)
    except (msgspec.DecodeError, RecursionError):
        subject = names.event_subject(JOB, "job.submitted", "high")
    return StoredMsg(seq=seq, subject=subject, data=data)


def frames(*seqs: int) -> list[bytes]:
    return [f"frame {seq}".encode() for seq in seqs]


def offer_all(client: Client_, *seqs: int) -> None:
    for seq in seqs:
        client.offer(seq, f"frame {seq}".encode())


# -- frame ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "data", [SUBMITTED, STARTED, PRETTY], ids=["submitted", "started", "pretty"]
)
def test_frame_is_seq_followed_by_the_original_fields(data: bytes) -> None:
    out = frame(stored(42, data))

    assert isinstance(out, bytes)
    assert out.startswith(b'{"seq":42,')
    decoded = json.loads(out)
    assert decoded == {"seq": 42, **json.loads(data)}
    assert list(decoded) == ["seq", *json.loads(data)]


def test_a_frame_is_still_a_decodable_event() -> None:
    out = frame(stored(7, SUBMITTED))

    assert isinstance(out, bytes)
    assert decode_event(out) == decode_event(SUBMITTED)


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"not json",
        b"\xff\xfe\x00garbage",
        b"[]",
        b"{}",
        b"42",
        b'{"type": "job.exploded", "job_id": "x", "at": "2026-11-23T10:00:00Z", "actor": "a"}',
        b'{"type": "job.deleted"}',
        SUBMITTED[:-1],
        SUBMITTED + b"}",
        b"[" * 100_000,
        SUBMITTED.replace(b'"payload":{', b'"payload":{"deep":' + b"[" * 5000 + b"]" * 5000 + b","),
        SUBMITTED.replace(JOB.encode(), b"01JDQ5N3X8W4Y6Z7A9B2C3D4EZ"),
    ],
    ids=lambda d: repr(d[:30]),
)
def test_frame_of_garbage_is_poison_and_never_raises(data: bytes) -> None:
    out = frame(stored(3, data))

    assert isinstance(out, Poison)
    assert out.reason
    assert check(stored(3, data)) == out  # what is counted while no client is connected


@pytest.mark.parametrize("data", [SUBMITTED, STARTED, PRETTY])
def test_check_passes_what_frame_frames(data: bytes) -> None:
    assert not isinstance(frame(stored(3, data)), Poison)
    assert check(stored(3, data)) is None


def test_a_seq_field_inside_an_event_never_replaces_the_logs() -> None:
    forged = b'{"seq": 1, ' + SUBMITTED[1:]
    escaped = b'{"\\u0073eq": 1, ' + SUBMITTED[1:]

    for data in (forged, escaped):
        out = frame(stored(42, data))

        assert isinstance(out, bytes)
        assert json.loads(out)["seq"] == 42
        assert decode_event(out) == decode_event(SUBMITTED)


def test_an_event_mentioning_seq_elsewhere_keeps_its_fields() -> None:
    data = SUBMITTED.replace(b'"n":', b'"seq":')

    out = frame(stored(5, data))

    assert isinstance(out, bytes)
    assert json.loads(out) == {"seq": 5, **json.loads(data)}


# -- Client_ -------------------------------------------------------------------------------


async def test_offered_frames_come_out_in_order() -> None:
    client = Client_(job_id=None, limit=10)
    offer_all(client, 1, 2, 3)

    assert await client.next_frames() == frames(1, 2, 3)
    assert client.last_seq == 3
    assert not client.queue


async def test_frames_at_or_below_the_last_seq_are_dropped() -> None:
    client = Client_(job_id=JOB, limit=10)
    offer_all(client, 1, 2)
    assert await client.next_frames() == frames(1, 2)

    offer_all(client, 2, 3, 1, 4)  # live overlaps what was already sent

    assert await client.next_frames() == frames(3, 4)
    assert client.last_seq == 4


async def test_replay_followed_by_overlapping_live_frames_has_no_duplicates() -> None:
    client = Client_(job_id=None, limit=10)
    offer_all(client, 3, 4, 5)  # live frames, queued while the log is replayed
    replayed = [(seq, f"frame {seq}".encode()) for seq in (1, 2, 3, 4)]
    client.queue.extendleft(reversed(replayed))

    assert await client.next_frames() == frames(1, 2, 3, 4, 5)


async def test_a_frame_older_than_one_already_queued_is_dropped() -> None:
    client = Client_(job_id=None, limit=10)
    offer_all(client, 5, 3, 6)

    assert await client.next_frames() == frames(5, 6)


async def test_next_frames_waits_while_only_duplicates_arrive() -> None:
    client = Client_(job_id=None, limit=10)
    offer_all(client, 1)
    assert await client.next_frames() == frames(1)

    waiting = asyncio.create_task(client.next_frames())
    offer_all(client, 1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not waiting.done()

    offer_all(client, 2)
    assert await asyncio.wait_for(waiting, timeout=1) == frames(2)


async def test_a_full_queue_overflows_and_next_frames_raises() -> None:
    client = Client_(job_id=None, limit=3)
    offer_all(client, 1, 2, 3)
    assert not client.overflowed

    offer_all(client, 4)

    assert client.overflowed
    assert not client.queue
    with pytest.raises(Overflow):
        await client.next_frames()


async def test_an_overflowed_client_takes_no_more_frames() -> None:
    client = Client_(job_id=None, limit=1)
    offer_all(client, 1, 2)
    assert client.overflowed

    offer_all(client, 3, 4)

    assert not client.queue
    with pytest.raises(Overflow):
        await client.next_frames()


async def test_overflow_wakes_a_waiting_reader() -> None:
    client = Client_(job_id=None, limit=2)
    waiting = asyncio.create_task(client.next_frames())
    await asyncio.sleep(0)
    assert not waiting.done()

    offer_all(client, 1, 2, 3)

    with pytest.raises(Overflow):
        await asyncio.wait_for(waiting, timeout=1)


async def test_only_undelivered_frames_count_towards_the_limit() -> None:
    client = Client_(job_id=None, limit=2)
    for first in range(1, 20, 2):
        offer_all(client, first, first + 1)
        assert await client.next_frames() == frames(first, first + 1)

    assert not client.overflowed
    assert client.last_seq == 20
