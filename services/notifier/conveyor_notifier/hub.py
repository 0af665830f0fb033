"""Fan-out of the event log to websocket clients.

One live reader follows the log; each client has a bounded queue. Clients are indexed by the
job they follow: a frame of job X is handed to the unfiltered clients and to X's, whatever the
number of clients following other jobs. A client that asks for ``since`` is registered first
(live frames buffer in its queue), then replayed from the log by batched direct gets; frames
are sent in strictly increasing ``seq``, so the overlap between replay and live is dropped and
nothing falls in between. At most ``max_replays`` replays run at once.

A replay never leaves a hole: the direct getter checks each batch's chain of sequences (a
reply that lost a message raises BusUnavailable), and an unfiltered replay must reach the
event the live reader had passed on when the client was registered. Either failure is an
unavailable bus (the app closes the client with 1013 and it comes back), never a shorter
history.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from nats.aio.client import Client

from conveyor_bus import BusError, BusUnavailable, DirectGetter, StoredMsg
from conveyor_bus.reader import LogReader
from conveyor_events import names
from conveyor_events.poison import Poison
from conveyor_notifier.frames import check, frame, wire

log = logging.getLogger("conveyor.notifier")

REPLAY_PAGE = 500
PUMP_FRAMES = 1000
"""Queued frames written at once, before the connection's buffer is checked again."""
MAX_PAUSE_S = 0.02
"""The longest pause between two rounds of live writes."""


class Overflow(Exception):
    """The client fell too far behind."""


class ReplaysBusy(Exception):
    """Every replay slot stayed taken while the client waited for one."""


class Batches(Protocol):
    """Batched direct gets on the log (:class:`conveyor_bus.DirectGetter`)."""

    async def batch(
        self, stream: str, request: dict[str, Any], timeout: float = 5.0
    ) -> list[StoredMsg]: ...


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
        """The live reader's frames due to this client (the hub hands a client following a
        job only that job's): written at once when the client keeps up, else queued."""
        if self.overflowed:
            return
        connection = self.connection
        if connection is None:
            for seq, data in zip(tick.seqs, tick.wires, strict=True):
                self.offer(seq, data)
            return
        if tick.seqs[0] > self.last_seq:
            data = tick.joined
        else:
            data = b"".join(
                w for s, w in zip(tick.seqs, tick.wires, strict=True) if s > self.last_seq
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
    def __init__(
        self,
        nc: Client,
        client_buffer: int,
        pause_factor: float = 2.0,
        *,
        getter: Batches | None = None,
        max_replays: int = 8,
        replay_wait_s: float = 5.0,
    ) -> None:
        self.nc = nc
        self.pause_factor = pause_factor
        """After a round of live writes that took t, the next starts no sooner than
        ``pause_factor`` * t later: writing takes at most 1 / (1 + factor) of the time."""
        self.getter: Batches = getter if getter is not None else DirectGetter(nc)
        self.client_buffer = client_buffer
        self.firehose: set[Client_] = set()
        """Clients of every job's events."""
        self.by_job: dict[str, set[Client_]] = {}
        """Clients of one job's events, by job (no empty sets)."""
        self.position = 0
        """The seq of the last event the live reader passed on."""
        self.max_replays = max_replays
        self.replay_wait_s = replay_wait_s
        self._replays = asyncio.Semaphore(max_replays)
        self._task: asyncio.Task[None] | None = None
        self.on_poison: Callable[[Poison], None] = lambda _: None
        """Called once for each poison message the live reader passes."""

    async def start(self) -> None:
        # The last event's sequence, not the stream's (the last message may be a command):
        # an unfiltered replay must reach it, and reads only events.
        last = await self.getter.batch(names.STREAM, {"last_by_subj": names.EVENTS_ALL})
        self.position = last[0].seq if last else 0
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
            if msgs and not self.firehose and not self.by_job:  # only count the poison
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
                await self._write(frames)

    def _poisoned(self, msg: StoredMsg, why: Poison) -> None:
        log.warning(
            "skipping poison event at seq %d on %s (%s): %s",
            msg.seq,
            msg.subject,
            why.kind,
            why.reason,
        )
        self.on_poison(why)

    async def _write(self, frames: list[tuple[int, str, bytes]]) -> None:
        """Hand the frames to the clients due them, then pause in proportion to how long that
        took, so that under load frames gather into fewer, larger writes (a write per client
        costs about the same for one frame as for fifty) while one client waits microseconds.
        The processor time is what counts, not time the process spent waiting for a core."""
        began = time.thread_time()
        self.deliver(frames)
        pause = min(MAX_PAUSE_S, (time.thread_time() - began) * self.pause_factor)
        if pause > 0:
            await asyncio.sleep(pause)

    def deliver(self, frames: list[tuple[int, str, bytes]]) -> None:
        """Each (seq, job id, wire frame) to the unfiltered clients and to the clients of its
        job: one dictionary look-up per frame, not a look at every client."""
        if self.firehose:
            tick = Tick.of(frames)
            for client in list(self.firehose):
                client.offer_tick(tick)
        if not self.by_job:
            return
        per_job: dict[str, list[tuple[int, str, bytes]]] = {}
        for f in frames:
            if f[1] in self.by_job:
                per_job.setdefault(f[1], []).append(f)
        for job_id, own in per_job.items():
            tick = Tick.of(own)
            for client in list(self.by_job.get(job_id, ())):
                client.offer_tick(tick)

    async def connect(self, job_id: str | None, since: int | None) -> Client_:
        """Register a client; with ``since``, replay the log after it first (its live frames
        wait in its queue meanwhile), once one of ``max_replays`` slots is free. Raises
        ReplaysBusy after waiting ``replay_wait_s`` for one, BusError when the log cannot be
        read (or was read with a gap), Overflow when the replay is too long."""
        if since is None:
            return self._register(job_id)
        try:
            async with asyncio.timeout(self.replay_wait_s):
                await self._replays.acquire()
        except TimeoutError:
            raise ReplaysBusy from None
        try:
            live_from = self.position
            client = self._register(job_id)
            try:
                await self._replay(client, since, live_from)
            except BaseException:
                self.disconnect(client)
                raise
        finally:
            self._replays.release()
        return client

    def _register(self, job_id: str | None) -> Client_:
        client = Client_(job_id=job_id, limit=self.client_buffer)
        if job_id is None:
            self.firehose.add(client)
        else:
            self.by_job.setdefault(job_id, set()).add(client)
        return client

    def disconnect(self, client: Client_) -> None:
        if client.job_id is None:
            self.firehose.discard(client)
            return
        followers = self.by_job.get(client.job_id)
        if followers is not None:
            followers.discard(client)
            if not followers:
                del self.by_job[client.job_id]

    async def _replay(self, client: Client_, since: int, live_from: int) -> None:
        """The log after ``since`` into the client's queue. The live reader had passed on
        ``live_from`` when the client was registered: an unfiltered replay must reach it,
        else the events in between would be missing."""
        subject = names.job_subjects(client.job_id) if client.job_id else names.EVENTS_ALL
        replayed: deque[tuple[int, bytes]] = deque()
        start = since + 1
        read_to = since
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
            if page:
                read_to = page[-1].seq
            if not page or page[-1].num_pending == 0:
                break
            start = page[-1].seq + 1
        if client.job_id is None and read_to < live_from:
            raise BusUnavailable(
                f"the replay ended at seq {read_to}, before {live_from}, which the live feed "
                "had already passed on"
            )
        # Replayed frames go first; live frames queued meanwhile follow (overlap dropped).
        client.queue = replayed + client.queue
        client.wake.set()
