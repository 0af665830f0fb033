"""Live frames written straight to a client's connection, a tick at a time: each event is
still its own websocket text frame, in strictly increasing seq, without gap or duplicate; a
paused connection queues (bounded), and a client that never drains overflows. The hub hands
each frame only to the clients due it (all jobs', or its job's)."""

from __future__ import annotations

import asyncio
import json
from typing import Any, cast

import pytest
from nats.aio.client import Client
from websockets.frames import Frame, Opcode
from websockets.streams import StreamReader

from conveyor_bus import StoredMsg
from conveyor_notifier.frames import wire
from conveyor_notifier.hub import Client_, Hub, Overflow, Tick

pytestmark = pytest.mark.unit

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
OTHER = "01JDQ5N3X8W4Y6Z7A9B2C3D4E6"


class FakeConnection:
    def __init__(self, room: int = 1 << 30) -> None:
        self.writes: list[bytes] = []
        self.room = room
        """Bytes it takes before it pauses."""
        self.resumed = asyncio.Event()
        self.closing = False

    def write(self, data: bytes) -> bool:
        if self.closing:
            return False
        self.writes.append(data)
        self.room -= len(data)
        return self.room > 0

    async def drain(self) -> bool:
        while self.room <= 0 and not self.closing:
            self.resumed.clear()
            await self.resumed.wait()
        return not self.closing

    def resume(self, room: int = 1 << 30) -> None:
        self.room = room
        self.resumed.set()

    def seqs(self) -> list[int]:
        """The seq of each text frame written, parsed as a websocket client would."""
        reader = StreamReader()
        reader.feed_data(b"".join(self.writes))
        reader.feed_eof()
        out: list[int] = []
        parser = Frame.parse(reader.read_exact, mask=False)
        while reader.buffer:
            try:
                next(parser)
            except StopIteration as done:
                frame = done.value
                assert frame.opcode is Opcode.TEXT and frame.fin
                out.append(json.loads(frame.data)["seq"])
                parser = Frame.parse(reader.read_exact, mask=False)
        return out


def tick(*seqs: int, job: str = JOB) -> Tick:
    return Tick.of([(s, job, wire(json.dumps({"seq": s}).encode())) for s in seqs])


async def live(client: Client_, connection: FakeConnection) -> asyncio.Task[None]:
    pump = asyncio.create_task(client.pump(connection))
    for _ in range(3):
        await asyncio.sleep(0)
    assert client.connection is connection
    return pump


def test_wire_is_one_unmasked_text_frame() -> None:
    assert wire(b'{"seq":1}') == b"\x81\x09" + b'{"seq":1}'
    big = b"x" * 70_000
    assert wire(big)[:2] == b"\x81\x7f" and wire(big)[10:] == big


async def test_a_tick_is_one_write_of_one_frame_per_event() -> None:
    client, connection = Client_(job_id=None, limit=10), FakeConnection()
    pump = await live(client, connection)

    client.offer_tick(tick(1, 2, 3))
    client.offer_tick(tick(5, 8))

    assert len(connection.writes) == 2
    assert connection.seqs() == [1, 2, 3, 5, 8]
    pump.cancel()


async def test_frames_already_written_are_not_written_again() -> None:
    client, connection = Client_(job_id=None, limit=10), FakeConnection()
    pump = await live(client, connection)

    client.offer_tick(tick(1, 2, 3))
    client.offer_tick(tick(2, 3, 4))

    assert connection.seqs() == [1, 2, 3, 4]
    pump.cancel()


def hub() -> Hub:
    """A hub that is never started (no live reader, no log): frames are handed to it."""
    return Hub(cast(Client, None), client_buffer=10, getter=NoLog())


class NoLog:
    async def batch(
        self, stream: str, request: dict[str, Any], timeout: float = 5.0
    ) -> list[StoredMsg]:
        raise AssertionError("the log is not read")


def frames_of(job: str, *seqs: int) -> list[tuple[int, str, bytes]]:
    return [(s, job, wire(json.dumps({"seq": s}).encode())) for s in seqs]


async def test_a_filtered_client_gets_only_its_jobs_frames() -> None:
    fan = hub()
    mine, theirs, everyone = [await fan.connect(j, None) for j in (JOB, OTHER, None)]
    connections = {c: FakeConnection() for c in (mine, theirs, everyone)}
    pumps = [await live(c, connection) for c, connection in connections.items()]

    fan.deliver(frames_of(JOB, 1) + frames_of(OTHER, 2))
    fan.deliver(frames_of(OTHER, 3))
    fan.deliver(frames_of(JOB, 4))

    assert connections[mine].seqs() == [1, 4]
    assert connections[theirs].seqs() == [2, 3]
    assert connections[everyone].seqs() == [1, 2, 3, 4]
    for pump in pumps:
        pump.cancel()


async def test_a_frame_is_handed_only_to_the_clients_due_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Clients are indexed by job: a thousand clients following other jobs cost a frame of
    JOB nothing (before, every client looked at every frame)."""
    fan = hub()
    for n in range(1000):
        await fan.connect(f"01JDQ5N3X8W4Y6Z7A9B2{n:06d}", None)
    mine = await fan.connect(JOB, None)
    offered: list[Client_] = []
    plain = Client_.offer_tick

    def counted(client: Client_, tick: Tick) -> None:
        offered.append(client)
        plain(client, tick)

    monkeypatch.setattr(Client_, "offer_tick", counted)

    fan.deliver(frames_of(JOB, 1, 2))

    assert offered == [mine]
    assert [seq for seq, _ in mine.queue] == [1, 2]


async def test_a_job_without_clients_leaves_the_index() -> None:
    fan = hub()
    a, b, everyone = (
        await fan.connect(JOB, None),
        await fan.connect(JOB, None),
        await fan.connect(None, None),
    )
    fan.disconnect(a)
    assert fan.by_job == {JOB: {b}}
    fan.disconnect(b)
    fan.disconnect(everyone)
    assert fan.by_job == {} and fan.firehose == set()


async def test_replayed_frames_go_first_then_live_without_overlap() -> None:
    client, connection = Client_(job_id=None, limit=10), FakeConnection()
    client.offer_tick(tick(3, 4))  # live, while the replay runs: queued
    replayed = [(s, wire(json.dumps({"seq": s}).encode())) for s in (1, 2, 3)]
    client.queue.extendleft(reversed(replayed))

    pump = await live(client, connection)
    client.offer_tick(tick(5))

    assert connection.seqs() == [1, 2, 3, 4, 5]
    pump.cancel()


async def test_a_paused_connection_queues_and_catches_up_in_order() -> None:
    client, connection = Client_(job_id=None, limit=100), FakeConnection(room=20)
    pump = await live(client, connection)

    client.offer_tick(tick(1, 2))  # fills the connection: it pauses
    assert client.connection is None
    client.offer_tick(tick(3, 4))
    client.offer_tick(tick(5))
    assert len(client.queue) == 3
    assert connection.seqs() == [1, 2]

    connection.resume()
    for _ in range(5):
        await asyncio.sleep(0)
    assert client.connection is connection
    client.offer_tick(tick(6))

    assert connection.seqs() == [1, 2, 3, 4, 5, 6]
    pump.cancel()


async def test_a_connection_that_never_drains_overflows() -> None:
    client, connection = Client_(job_id=None, limit=5), FakeConnection(room=1)
    pump = await live(client, connection)

    client.offer_tick(tick(1))
    for seq in range(2, 10):
        client.offer_tick(tick(seq))

    assert client.overflowed
    assert not client.queue
    connection.resume()
    with pytest.raises(Overflow):
        await asyncio.wait_for(pump, timeout=1)
    assert connection.seqs() == [1]


async def test_the_pump_ends_when_the_connection_closes() -> None:
    client, connection = Client_(job_id=None, limit=5), FakeConnection(room=1)
    pump = await live(client, connection)
    client.offer_tick(tick(1))

    connection.closing = True
    connection.resumed.set()

    await asyncio.wait_for(pump, timeout=1)
    client.offer_tick(tick(2))
    assert connection.seqs() == [1]
