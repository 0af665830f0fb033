"""Deliveries of run commands, high before regular, with pull requests kept open.

A worker with free slots keeps a long-polling pull request open on both work queues, so a
command reaches it the moment it is queued, whichever its priority (the way nats.go's
``Consume`` works, rather than polling one queue after the other). Each request asks for as
many commands as the worker has free slots that no delivery in hand will take. The server
cannot be told to forget a request, so credit may outlive the free slots it was asked for
(they filled up meanwhile, from the other queue); a delivery for which there is no free slot
is handed back at once (``-NAK``: redelivered, to whichever worker asks next). Requests
expire after ``EXPIRES_S`` and are renewed, which bounds how long such credit lives; one the
server has lost (a restart) is forgotten a little later, and a new one is made.

When a slot frees up, the worker asks both queues and starts what it got high first, so a
high command overtakes every queued regular one.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from conveyor_events import names
from conveyor_worker.support import nak_all

log = logging.getLogger("conveyor.worker")

EXPIRES_S = 0.5
"""How long the server holds one pull request open: requests are renewed as they expire,
so this bounds how long credit a worker no longer wants (its slots filled up) lives."""
LOST_AFTER_S = EXPIRES_S + 0.25
"""When a request whose end the server never signalled is taken as gone."""


@dataclass(slots=True)
class _Request:
    left: int
    lost_at: float


@dataclass(eq=False)
class _Queue:
    """One work queue's open pull requests, each with a reply subject of its own (so every
    delivery and every end is counted against the request it belongs to)."""

    priority: names.Priority
    inbox: str
    next_subject: str
    requests: dict[str, _Request] = field(default_factory=dict)
    ready: deque[Msg] = field(default_factory=deque)
    sub: Subscription | None = None
    ids: Iterator[int] = field(default_factory=itertools.count)

    def credit(self, now: float) -> int:
        """Commands the server may still deliver to us on the open requests."""
        for reply in [r for r, req in self.requests.items() if req.lost_at < now]:
            del self.requests[reply]
        return sum(r.left for r in self.requests.values())

    def delivered(self, reply: str) -> None:
        request = self.requests.get(reply)
        if request is not None:
            request.left -= 1
            if request.left <= 0:
                del self.requests[reply]


class Intake:
    def __init__(self, nc: Client, concurrency: int) -> None:
        self.nc = nc
        self.concurrency = concurrency
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
            q.sub = await self.nc.subscribe(f"{q.inbox}.*", cb=self._receiver(q))

    async def close(self) -> None:
        """Hand back what is in hand; deliveries still arriving are handed back as they come
        until the open requests have ended (at most ``LOST_AFTER_S``)."""
        self.closed = True
        for q in self.queues.values():
            await nak_all(q.ready)
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
                if status != "100":  # anything but an idle heartbeat ends the request
                    q.requests.pop(msg.subject, None)
                    self.wake.set()
                return
            q.delivered(msg.subject)
            if self.closed:
                await nak_all([msg])
                return
            q.ready.append(msg)
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
        reply = f"{q.inbox}.{next(q.ids)}"
        try:
            await self.nc.publish(q.next_subject, json.dumps(body).encode(), reply=reply)
        except Exception as e:  # disconnected: the next round asks again
            log.debug("pull request on %s failed: %s", q.priority, e)
            return
        q.requests[reply] = _Request(left=n, lost_at=now + LOST_AFTER_S)

    async def take(self, free: int) -> list[Msg]:
        """Up to ``free`` deliveries to start now, high first; the rest are handed back."""
        out: list[Msg] = []
        for q in self.queues.values():  # high first
            while q.ready and len(out) < free:
                out.append(q.ready.popleft())
            await nak_all(q.ready)
            q.ready.clear()
        return out

    async def wait(self, timeout: float) -> None:
        """Until a delivery arrives, a request ends or :meth:`poke` is called."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()

    def poke(self) -> None:
        self.wake.set()
