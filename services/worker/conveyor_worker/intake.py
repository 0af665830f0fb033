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
    reply: str
    left: int
    lost_at: float


@dataclass(eq=False)
class _Queue:
    """One work queue's open pull request. There is at most one at a time: deliveries do
    not say which request they answer (they carry the stream's subject), so with one open
    request every delivery is counted against the right one. Its end (a status message) is
    recognised by the request's own reply subject."""

    priority: names.Priority
    inbox: str
    next_subject: str
    open: _Request | None = None
    ready: deque[Msg] = field(default_factory=deque)
    sub: Subscription | None = None
    ids: Iterator[int] = field(default_factory=itertools.count)

    def credit(self, now: float) -> int:
        """Commands the server may still deliver to us on the open request."""
        if self.open is not None and self.open.lost_at < now:
            self.open = None
        return self.open.left if self.open is not None else 0

    def delivered(self) -> None:
        if self.open is not None:
            self.open.left -= 1
            if self.open.left <= 0:
                self.open = None

    def ended(self, reply: str) -> None:
        if self.open is not None and self.open.reply == reply:
            self.open = None


class Intake:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
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
                    q.ended(msg.subject)
                    self.wake.set()
                return
            q.delivered()
            if self.closed:
                await nak_all([msg])
                return
            q.ready.append(msg)
            self.wake.set()

        return receive

    async def request(self, free: int) -> None:
        """Ask both queues for as many commands as there are free slots that no delivery in
        hand will take, unless a request is open there already."""
        if self.closed or not self.nc.is_connected:
            return
        now = time.monotonic()
        high, regular = self.queues["high"], self.queues["regular"]
        wanted = free - len(high.ready) - len(regular.ready)
        for q in (high, regular):
            if wanted > 0 and q.credit(now) == 0:
                await self._pull(q, wanted, now)

    async def _pull(self, q: _Queue, n: int, now: float) -> None:
        body = {"batch": n, "expires": int(EXPIRES_S * 1e9)}
        reply = f"{q.inbox}.{next(q.ids)}"
        try:
            await self.nc.publish(q.next_subject, json.dumps(body).encode(), reply=reply)
        except Exception as e:  # disconnected: the next round asks again
            log.debug("pull request on %s failed: %s", q.priority, e)
            return
        q.open = _Request(reply=reply, left=n, lost_at=now + LOST_AFTER_S)

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
