"""Fan-out of the event log to websocket clients.

One live reader follows the log; each client has a bounded queue. A client that asks for
``since`` is registered first (live frames buffer in its queue), then replayed from the log by
batched direct gets; frames are sent in strictly increasing ``seq``, so the overlap between
replay and live is dropped and nothing falls in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from nats.aio.client import Client

from conveyor_bus import BusError, DirectGetter, StoredMsg
from conveyor_bus.reader import LogReader, last_sequence
from conveyor_events import names
from conveyor_events.poison import Poison, poison, read_event

log = logging.getLogger("conveyor.notifier")

REPLAY_PAGE = 500


class Overflow(Exception):
    """The client fell too far behind."""


def frame(msg: StoredMsg) -> bytes | Poison:
    """The public event frame ``{seq, type, job_id, at, actor, data}``, or why the message is
    not an event a client may see (it is then not sent). Never raises."""
    try:
        read = read_event(msg.subject, msg.data)
        if isinstance(read, Poison):
            return read
        if b"seq" in msg.data or b"\\u" in msg.data:
            return _frame_without_seq(msg)
        return b'{"seq":' + str(msg.seq).encode() + b"," + msg.data.lstrip()[1:]
    except Exception as e:  # a bug here must not stop the feed: drop the message instead
        log.exception("cannot frame the message at seq %d", msg.seq)
        return poison("undecodable", f"cannot frame: {e!r}")


def _frame_without_seq(msg: StoredMsg) -> bytes:
    """The frame of an event that may carry a top-level ``seq`` of its own (an unknown field):
    it is replaced by the log's, so a client never sees a forged sequence."""
    doc = msgspec.json.decode(msg.data)
    if "seq" not in doc:
        return b'{"seq":' + str(msg.seq).encode() + b"," + msg.data.lstrip()[1:]
    doc.pop("seq")
    return msgspec.json.encode({"seq": msg.seq, **doc})


@dataclass(eq=False)
class Client_:
    job_id: str | None
    limit: int
    queue: deque[tuple[int, bytes]] = field(default_factory=deque)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    last_seq: int = 0
    overflow: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def overflowed(self) -> bool:
        return self.overflow.is_set()

    def offer(self, seq: int, data: bytes) -> None:
        if self.overflowed:
            return
        if len(self.queue) >= self.limit:
            self.overflow.set()
            self.queue.clear()
        else:
            self.queue.append((seq, data))
        self.wake.set()

    async def next_frames(self) -> list[bytes]:
        """Frames to send, in order, without duplicates; raises Overflow when too slow."""
        while True:
            if self.overflowed:
                raise Overflow
            out = []
            while self.queue:
                seq, data = self.queue.popleft()
                if seq > self.last_seq:
                    self.last_seq = seq
                    out.append(data)
            if out:
                return out
            self.wake.clear()
            await self.wake.wait()


class Hub:
    def __init__(self, nc: Client, client_buffer: int) -> None:
        self.nc = nc
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
            for m in msgs:
                data = frame(m)
                self.position = m.seq
                if isinstance(data, Poison):
                    log.warning(
                        "skipping poison event at seq %d on %s (%s): %s",
                        m.seq,
                        m.subject,
                        data.kind,
                        data.reason,
                    )
                    self.on_poison(data)
                    continue
                job_id = names.job_id_of(m.subject)
                for client in self.clients:
                    if client.job_id is None or client.job_id == job_id:
                        client.offer(m.seq, data)

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
        subject = names.event_subject(client.job_id) if client.job_id else names.EVENTS_ALL
        replayed: deque[tuple[int, bytes]] = deque()
        start = since + 1
        while True:
            page = await self.getter.batch(
                names.STREAM, {"seq": start, "next_by_subj": subject, "batch": REPLAY_PAGE}
            )
            for m in page:
                data = frame(m)
                if not isinstance(data, Poison):  # counted by the live reader
                    replayed.append((m.seq, data))
            if len(replayed) > client.limit + REPLAY_PAGE:
                raise Overflow
            if not page or page[-1].num_pending == 0:
                break
            start = page[-1].seq + 1
        # Replayed frames go first; live frames queued meanwhile follow (overlap dropped).
        client.queue = replayed + client.queue
        client.wake.set()
