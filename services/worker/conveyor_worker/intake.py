"""Deliveries of run commands, high before regular, with pull requests kept open.

A worker with free slots keeps a long-polling pull request open on both work queues, so a
command reaches it the moment it is queued, whichever its priority (the way nats.go's
``Consume`` works, rather than polling one queue after the other). Each request asks for as
many commands as the worker has free slots; the server may hold requests whose credit is
no longer wanted (the slots filled up meanwhile), so a delivery can arrive for which no slot
is free:

- a regular command is handed back at once (``-NAK``: redelivered, to any worker);
- a high command is held: it is the next to start, ahead of every regular one. One held past
  ``hold_s`` is handed back too, so it never waits out the ack wait without a heartbeat.

Requests expire after ``EXPIRES_S``; one the server has lost (a restart) is forgotten a
little later, and a new one is made.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from conveyor_events import names
from conveyor_worker.support import nak_all

log = logging.getLogger("conveyor.worker")

EXPIRES_S = 2.0
"""How long the server holds one pull request open."""
LOST_AFTER_S = EXPIRES_S + 1.0
"""When a request whose end the server never signalled is taken as gone."""
_REQUEST_ENDED = {"408", "409"}
"""Status of a pull request that ended: expired, or refused/cancelled by the server."""


@dataclass(slots=True)
class _Request:
    left: int
    lost_at: float


@dataclass(eq=False)
class _Queue:
    priority: names.Priority
    inbox: str
    next_subject: str
    requests: deque[_Request] = field(default_factory=deque)
    ready: deque[tuple[Msg, float]] = field(default_factory=deque)
    sub: Subscription | None = None

    def credit(self, now: float) -> int:
        """Commands the server may still deliver to us on the open requests."""
        while self.requests and self.requests[0].lost_at < now:
            self.requests.popleft()
        return sum(r.left for r in self.requests)

    def delivered(self) -> None:
        if self.requests:
            self.requests[0].left -= 1
            if self.requests[0].left <= 0:
                self.requests.popleft()


class Intake:
    def __init__(self, nc: Client, concurrency: int, *, hold_s: float) -> None:
        self.nc = nc
        self.concurrency = concurrency
        self.hold_s = hold_s
        self.wake = asyncio.Event()
        self.closed = False
        self.queues = {
            p: _Queue(
                priority=p,
                inbox=nc.new_inbox(),
                next_subject=f"$JS.API.CONSUMER.MSG.NEXT.{names.STREAM}.{names.run_consumer(p)}",
            )
            for p in names.PRIORITIES
        }

    async def open(self) -> None:
        for q in self.queues.values():
            q.sub = await self.nc.subscribe(q.inbox, cb=self._receiver(q))

    async def close(self) -> None:
        """Hand back what is held; deliveries still arriving are handed back as they come
        until the open requests have ended (at most ``LOST_AFTER_S``)."""
        self.closed = True
        for q in self.queues.values():
            await nak_all([m for m, _ in q.ready])
            q.ready.clear()
        deadline = time.monotonic() + LOST_AFTER_S
        while time.monotonic() < deadline and any(  # noqa: ASYNC110 (no event to wait on)
            q.credit(time.monotonic()) for q in self.queues.values()
        ):
            await asyncio.sleep(0.05)
        for q in self.queues.values():
            if q.sub is not None:
                with contextlib.suppress(Exception):
                    await q.sub.unsubscribe()

    def _receiver(self, q: _Queue) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            status = msg.headers.get("Status") if msg.headers else None
            if status is not None:
                if status in _REQUEST_ENDED:
                    if status == "409":  # refused or cancelled: assume every request is gone
                        q.requests.clear()
                    elif q.requests:
                        q.requests.popleft()
                    self.wake.set()
                return  # "100" idle heartbeats carry nothing
            q.delivered()
            if self.closed:
                await nak_all([msg])
                return
            q.ready.append((msg, time.monotonic()))
            self.wake.set()

        return receive

    async def request(self, free: int) -> None:
        """Top up the open requests on both queues to the free slots that no delivery in
        hand will take."""
        if self.closed or not self.nc.is_connected:
            return
        now = time.monotonic()
        high, regular = self.queues["high"], self.queues["regular"]
        wanted = free - len(high.ready) - len(regular.ready)
        for q in (high, regular):
            missing = wanted - q.credit(now)
            # top up in steps, not one request per freed slot
            if missing > 0 and (not q.requests or missing >= max(1, self.concurrency // 4)):
                await self._pull(q, missing, now)

    async def _pull(self, q: _Queue, n: int, now: float) -> None:
        body = {"batch": n, "expires": int(EXPIRES_S * 1e9)}
        try:
            await self.nc.publish(q.next_subject, json.dumps(body).encode(), reply=q.inbox)
        except Exception as e:  # disconnected: the next round asks again
            log.debug("pull request on %s failed: %s", q.priority, e)
            return
        q.requests.append(_Request(left=n, lost_at=now + LOST_AFTER_S))

    async def take(self, free: int) -> list[Msg]:
        """Up to ``free`` deliveries to start now, high first. Regular deliveries beyond them
        are handed back; high ones are held (for up to ``hold_s``)."""
        high, regular = self.queues["high"], self.queues["regular"]
        out: list[Msg] = []
        for q in (high, regular):
            while q.ready and len(out) < free:
                out.append(q.ready.popleft()[0])
        if regular.ready:
            await nak_all([m for m, _ in regular.ready])
            regular.ready.clear()
        stale = time.monotonic() - self.hold_s
        while high.ready and high.ready[0][1] < stale:
            await nak_all([high.ready.popleft()[0]])
        return out

    async def wait(self, timeout: float) -> None:
        """Until a delivery arrives, a request ends or :meth:`poke` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()

    def poke(self) -> None:
        self.wake.set()
