"""Fan-out of the event log to websocket clients.

One live reader follows the log; each client has a bounded queue. A client that asks for
``since`` is registered first (live frames buffer in its queue), then replayed from the log by
batched direct gets; frames are sent in strictly increasing ``seq``, so the overlap between
replay and live is dropped and nothing falls in between.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from nats.aio.client import Client

from conveyor_bus import BusError, DirectGetter, StoredMsg
from conveyor_bus.reader import LogReader, last_sequence
from conveyor_events import names
from conveyor_events.poison import Poison
from conveyor_notifier.frames import check, frame, wire

log = logging.getLogger("conveyor.notifier")

REPLAY_PAGE = 500
PUMP_FRAMES = 1000
MAX_PAUSE_S = 0.02
"""The longest pause between two rounds of live writes."""
"""Queued frames written at once, before the connection's buffer is checked again."""


class Overflow(Exception):
    """The client fell too far behind."""


@dataclass(frozen=True, slots=True)
class Tick:
    """What the live reader passes on at once: each event's seq, job and wire frame, and
    all the frames joined (what a firehose client gets in one write)."""

    seqs: list[int]
    job_ids: list[str]
    wires: list[bytes]
    joined: bytes

    @classmethod
    def of(cls, frames: list[tuple[int, str, bytes]]) -> Tick:
        seqs, job_ids, wires = (list(column) for column in zip(*frames, strict=True))
        return cls(seqs, job_ids, wires, b"".join(wires))


class Connection(Protocol):
    """Where a client's frames go (the websocket connection, in the app)."""

    def write(self, data: bytes) -> bool:
        """Write whole frames; False when the connection should take no more for now (its
        buffer is past the high-water mark) or at all (it is closing)."""
        ...

    async def drain(self) -> bool:
        """Wait until the connection takes more; False when it is closing."""
        ...


@dataclass(eq=False)
class Client_:
    """One websocket client: frames go straight to its connection while it keeps up; while
    it is paused (or being replayed to) they wait in a queue of at most ``limit`` frames,
    past which it overflows."""

    job_id: str | None
    limit: int
    queue: deque[tuple[int, bytes]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_seq: int = 0
    """The last seq written (or taken from the queue to be written)."""
    overflow: asyncio.Event = field(default_factory=asyncio.Event)
    connection: Connection | None = None
    """Set while frames may be written straight away: nothing queued, not paused."""

    @property
    def overflowed(self) -> bool:
        return self.overflow.is_set()

    def offer(self, seq: int, data: bytes) -> None:
        """Queue one frame (from now on, until :meth:`pump` catches up, nothing is written
        straight away, so the order holds)."""
        if self.overflowed:
            return
        self.connection = None
        if len(self.queue) >= self.limit:
            self.overflow.set()
            self.queue.clear()
        else:
            self.queue.append((seq, data))
        self.wake.set()

    def offer_tick(self, tick: Tick) -> None:
        """The live reader's frames: written at once when the client keeps up, else queued."""
        if self.overflowed:
            return
        connection = self.connection
        if connection is None:
            for seq, job_id, data in zip(tick.seqs, tick.job_ids, tick.wires, strict=True):
                if self.job_id is None or job_id == self.job_id:
                    self.offer(seq, data)
            return
        if self.job_id is None and tick.seqs[0] > self.last_seq:
            data = tick.joined
        else:
            data = b"".join(
                w
                for s, j, w in zip(tick.seqs, tick.job_ids, tick.wires, strict=True)
                if s > self.last_seq and (self.job_id is None or j == self.job_id)
            )
        self.last_seq = max(self.last_seq, tick.seqs[-1])
        if data and not connection.write(data):
            self.connection = None  # paused: queue until pump has drained it
            self.wake.set()

    def take(self, most: int) -> list[bytes]:
        """Up to ``most`` queued frames, in order, without duplicates."""
        out: list[bytes] = []
        while self.queue and len(out) < most:
            seq, data = self.queue.popleft()
            if seq > self.last_seq:
                self.last_seq = seq
                out.append(data)
        return out

    async def next_frames(self) -> list[bytes]:
        """Frames to send, in order, without duplicates; raises Overflow when too slow."""
        while True:
            if self.overflowed:
                raise Overflow
            out = self.take(len(self.queue))
            if out:
                return out
            self.wake.clear()
            await self.wake.wait()

    async def pump(self, connection: Connection) -> None:
        """Write what is queued (a replay, or what came while the connection was paused)
        whenever the connection takes more, then let the live reader write straight to it
        until it pauses again. Returns when the connection closes; raises Overflow."""
        while True:
            if self.overflowed:
                raise Overflow
            if not await connection.drain():
                return
            if self.overflowed:
                raise Overflow
            data = b"".join(self.take(PUMP_FRAMES))
            if data and not connection.write(data):
                continue  # paused again: drain first
            if self.queue:
                continue
            self.connection = connection
            self.wake.clear()
            await self.wake.wait()


class Hub:
    def __init__(self, nc: Client, client_buffer: int, pause_factor: float = 2.0) -> None:
        self.nc = nc
        self.pause_factor = pause_factor
        """After a round of live writes that took t, the next starts no sooner than
        ``pause_factor`` * t later: writing takes at most 1 / (1 + factor) of the time."""
        self.getter = DirectGetter(nc)
        self.client_buffer = client_buffer
        self.clients: set[Client_] = set()
        self.position = 0
        self._task: asyncio.Task[None] | None = None
        self.on_poison: Callable[[Poison], None] = lambda _: None
        """Called once for each poison message the live reader passes."""

    async def start(self) -> None:
        self.position = await last_sequence(self.nc)
        self._task = asyncio.create_task(self._follow(), name="live-feed")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _follow(self) -> None:
        reader = LogReader(self.nc, names.EVENTS_ALL, self.position + 1)
        while True:
            try:
                msgs = await reader.fetch(1000, timeout=1.0)
            except BusError:
                await asyncio.sleep(0.5)
                continue
            if msgs and not self.clients:  # nobody to frame for: only count the poison
                self.position = msgs[-1].seq
                for m in msgs:
                    if (bad := check(m)) is not None:
                        self._poisoned(m, bad)
                continue
            frames: list[tuple[int, str, bytes]] = []
            for m in msgs:
                data = frame(m)
                self.position = m.seq
                if isinstance(data, Poison):
                    self._poisoned(m, data)
                    continue
                frames.append((m.seq, names.job_id_of(m.subject), wire(data)))
            if frames:
                await self._write(Tick.of(frames))

    def _poisoned(self, msg: StoredMsg, why: Poison) -> None:
        log.warning(
            "skipping poison event at seq %d on %s (%s): %s",
            msg.seq,
            msg.subject,
            why.kind,
            why.reason,
        )
        self.on_poison(why)

    async def _write(self, tick: Tick) -> None:
        """Hand a tick to every client, then pause in proportion to how long that took, so
        that under load frames gather into fewer, larger writes (a write per client costs
        about the same for one frame as for fifty) while one client waits microseconds. The
        processor time is what counts, not time the process spent waiting for a core."""
        began = time.thread_time()
        for client in list(self.clients):
            client.offer_tick(tick)
        pause = min(MAX_PAUSE_S, (time.thread_time() - began) * self.pause_factor)
        if pause > 0:
            await asyncio.sleep(pause)

    async def connect(self, job_id: str | None, since: int | None) -> Client_:
        """Register a client; with ``since``, replay the log after it first (its live frames
        wait in its queue meanwhile)."""
        client = Client_(job_id=job_id, limit=self.client_buffer)
        self.clients.add(client)
        if since is not None:
            try:
                await self._replay(client, since)
            except BaseException:
                self.clients.discard(client)
                raise
        return client

    def disconnect(self, client: Client_) -> None:
        self.clients.discard(client)

    async def _replay(self, client: Client_, since: int) -> None:
        subject = names.job_subjects(client.job_id) if client.job_id else names.EVENTS_ALL
        replayed: deque[tuple[int, bytes]] = deque()
        start = since + 1
        while True:
            page = await self.getter.batch(
                names.STREAM, {"seq": start, "next_by_subj": subject, "batch": REPLAY_PAGE}
            )
            for m in page:
                data = frame(m)
                if not isinstance(data, Poison):  # counted by the live reader
                    replayed.append((m.seq, wire(data)))
            if len(replayed) > client.limit + REPLAY_PAGE:
                raise Overflow
            if not page or page[-1].num_pending == 0:
                break
            start = page[-1].seq + 1
        # Replayed frames go first; live frames queued meanwhile follow (overlap dropped).
        client.queue = replayed + client.queue
        client.wake.set()
