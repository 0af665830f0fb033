"""Deliveries of runnable events, strictly high before regular, with pull requests kept open.

Strict priority means: a free slot takes a high job whenever one is queued, on whichever
worker the slot frees. So a regular delivery may start only while this worker knows the high
queue holds nothing for it, and that is known in two ways only:

- a **probe** of the high queue (a ``no_wait`` pull request for as many jobs as there are free
  slots) ended short of its batch: the queue was empty;
- a **watch** on the high queue (a long-polling pull request for one job) is open and has not
  delivered: the server would have delivered any high job to it.

A slot that frees while no watch is open (the worker was full) is offered to the high queue
first: the probe's answer comes before any regular request is sent. A watch asks for one job
only, so a full worker that receives a high job through it hands it back at once and holds no
credit to receive it again; the next free slot anywhere takes it.

A regular request is a long poll for the free slots. A delivery that finds no free slot is
handed back at once (``-NAK``: delivered again, to whichever worker asks next); a high one
evicts a regular delivery not yet started. Requests expire after ``EXPIRES_S`` and are
renewed, which bounds how long credit for slots that filled up meanwhile lives; one the server
has lost (a restart) is forgotten a little after it should have ended.

Deliveries do not say which request they answer (they carry the stream's subject), so each
queue has at most one request open at a time, and every delivery is counted against it; its
end (a status message) is recognised by the request's own reply subject.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from conveyor_events import names
from conveyor_worker.support import nak_all

log = logging.getLogger("conveyor.worker")

EXPIRES_S = 0.5
"""How long the server holds a long-polling request open: requests are renewed as they
expire, so this bounds how long credit a worker no longer wants (its slots filled up) lives."""
LOST_AFTER_S = EXPIRES_S + 0.25
"""When a request whose end the server never signalled is taken as gone."""
RENEW_WITHIN_S = 0.02
"""A watch that expired this recently renews as a watch (nothing came while it was open);
after longer, the high queue is probed again first."""
PROBE_PAUSE_S = 0.002
"""After a probe answered that other requests claim the queued jobs: wait before asking
again (they are handed back, or taken, in a moment)."""

Kind = Literal["probe", "watch", "poll"]


@dataclass(slots=True)
class _Request:
    reply: str
    kind: Kind
    left: int
    lost_at: float


@dataclass(eq=False)
class _Queue:
    """One work queue: its open pull request (at most one) and its deliveries in hand."""

    priority: names.Priority
    inbox: str
    next_subject: str
    open: _Request | None = None
    ready: deque[Msg] = field(default_factory=deque)
    sub: Subscription | None = None
    ids: Iterator[int] = field(default_factory=itertools.count)
    empty_at: float | None = None
    """When a request last showed the queue had nothing more for us (None: since then
    something was delivered, or nothing was asked)."""
    retry_at: float = 0.0

    def current(self, now: float) -> _Request | None:
        if self.open is not None and self.open.lost_at < now:
            self.open = None
        return self.open

    def delivered(self) -> None:
        self.empty_at = None
        if self.open is not None:
            self.open.left -= 1
            if self.open.left <= 0:
                self.open = None  # satisfied: the queue may hold more

    def ended(self, reply: str, status: str, now: float) -> None:
        request = self.open
        if request is None or request.reply != reply:
            return
        self.open = None
        if request.kind == "probe":
            if status == "404":  # ended short of its batch: nothing more is queued
                self.empty_at = now
            elif status == "408":  # queued jobs are claimed by other requests: ask again soon
                self.retry_at = now + PROBE_PAUSE_S
        elif status == "408":  # expired: nothing came while it was open
            self.empty_at = now


class Intake:
    def __init__(self, nc: Client, free_slots: Callable[[], int]) -> None:
        """``free_slots``: slots not taken by an attempt (deliveries in hand not counted)."""
        self.nc = nc
        self.free_slots = free_slots
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
        self.high, self.regular = self.queues["high"], self.queues["regular"]

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
            q.current(time.monotonic()) for q in self.queues.values()
        ):
            await asyncio.sleep(0.05)
        for q in self.queues.values():
            if q.sub is not None:
                with contextlib.suppress(Exception):
                    await q.sub.unsubscribe()

    def high_clear(self, now: float) -> bool:
        """Whether the high queue is known to hold nothing for this worker: a watch is open
        (any high job would be delivered to it), or a probe just found it empty."""
        request = self.high.current(now)
        if request is not None:
            return request.kind == "watch"
        return self.high.empty_at is not None and now - self.high.empty_at < RENEW_WITHIN_S

    def _in_hand(self) -> int:
        return len(self.high.ready) + len(self.regular.ready)

    def _receiver(self, q: _Queue) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            status = msg.headers.get("Status") if msg.headers else None
            if status is not None:
                if status != "100":  # anything but an idle heartbeat ends the request
                    q.ended(msg.subject, status, time.monotonic())
                    self.wake.set()
                return
            q.delivered()
            if self.closed:
                await nak_all([msg])
                return
            if self._in_hand() >= self.free_slots() and not await self._make_room(q):
                await nak_all([msg])  # no room: the next free slot anywhere takes it
                self.wake.set()
                return
            q.ready.append(msg)
            self.wake.set()

        return receive

    async def _make_room(self, q: _Queue) -> bool:
        """A delivery came from ``q`` with every free slot spoken for: whether room was made
        for it. A high one evicts a regular delivery not yet started."""
        if q is self.high and self.regular.ready:
            await nak_all([self.regular.ready.pop()])
            return True
        return False

    async def request(self, free: int) -> None:
        """Ask for as many jobs as there are free slots that no delivery in hand will take:
        the high queue first; the regular queue only once the high one is known clear."""
        if self.closed or not self.nc.is_connected:
            return
        now = time.monotonic()
        high = self.high
        for_high = free - len(high.ready)  # regular deliveries in hand give way to high ones
        if for_high > 0 and high.current(now) is None and now >= high.retry_at:
            if high.empty_at is not None and now - high.empty_at < RENEW_WITHIN_S:
                await self._pull(high, "watch", 1, now)
            else:
                await self._pull(high, "probe", for_high, now)
                return  # its answer first
        wanted = free - self._in_hand()
        if wanted > 0 and self.high_clear(now) and self.regular.current(now) is None:
            await self._pull(self.regular, "poll", wanted, now)

    async def _pull(self, q: _Queue, kind: Kind, n: int, now: float) -> None:
        body: dict[str, object] = {"batch": n}
        if kind == "probe":
            body["no_wait"] = True
        else:
            body["expires"] = int(EXPIRES_S * 1e9)
        reply = f"{q.inbox}.{next(q.ids)}"
        try:
            await self.nc.publish(q.next_subject, json.dumps(body).encode(), reply=reply)
        except Exception as e:  # disconnected: the next round asks again
            log.debug("pull request on %s failed: %s", q.priority, e)
            return
        q.open = _Request(reply=reply, kind=kind, left=n, lost_at=now + LOST_AFTER_S)
        if kind != "probe":
            q.empty_at = None

    def take(self, free: int) -> list[Msg]:
        """Up to ``free`` deliveries to start now: high ones first, regular ones only while
        the high queue is known clear (else they wait for the probe's answer)."""
        out: list[Msg] = []
        high, regular = self.high, self.regular
        while high.ready and len(out) < free:
            out.append(high.ready.popleft())
        if self.high_clear(time.monotonic()):
            while regular.ready and len(out) < free:
                out.append(regular.ready.popleft())
        return out

    async def wait(self, timeout: float) -> None:
        """Until a delivery arrives, a request ends, a probe is due again or :meth:`poke` is
        called."""
        now = time.monotonic()
        for q in self.queues.values():
            if q.retry_at > now:
                timeout = min(timeout, q.retry_at - now)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), timeout)
        self.wake.clear()

    def poke(self) -> None:
        self.wake.set()


class Turns:
    """Smooth weighted round robin over the priorities (nginx's upstream algorithm): at each
    pick every candidate gains its weight and the richest is picked and pays the total, so
    with weights high=4, regular=1 and both queues full, one start in five is regular, spread
    out (``hhrhh``...), not bunched. A queue with nothing to give is not a candidate and gains
    nothing, so an idle priority saves up no burst for later."""

    def __init__(self, weights: Mapping[names.Priority, int]) -> None:
        self.weights = dict(weights)
        self.credit = dict.fromkeys(self.weights, 0)

    def pick(self, candidates: Iterable[names.Priority]) -> names.Priority | None:
        """Pick one of ``candidates`` and charge it (None: no candidate)."""
        chosen = [p for p in candidates if self.weights.get(p, 0) > 0]
        if not chosen:
            return None
        for p in chosen:
            self.credit[p] += self.weights[p]
        best = max(chosen, key=lambda p: self.credit[p])
        self.credit[best] -= sum(self.weights[p] for p in chosen)
        return best


class WeightedIntake(Intake):
    """Weighted priority (``CONVEYOR_PRIORITY_WEIGHTS``): while both queues hold jobs, each
    priority gets its weight's share of this worker's starts, so regular jobs progress under a
    flood of high ones; a queue with nothing queued gives its share to the other.

    The turns are dealt when slots are asked for: each free slot is one pick of
    :class:`Turns` among the queues that last had jobs, and each of these is probed
    (``no_wait``) for its picks. A probe that ends short marks its queue dry, and the slots it
    left go to the other queue in the next round. A dry queue is watched (a long poll for one
    job), so new work is seen at once; a job it brings to a full hand evicts one of the other
    queue's not yet started (the watch is the only asking beyond the free slots)."""

    def __init__(
        self, nc: Client, free_slots: Callable[[], int], weights: Mapping[names.Priority, int]
    ) -> None:
        super().__init__(nc, free_slots)
        self.turns = Turns(weights)

    async def _make_room(self, q: _Queue) -> bool:
        for other in self.queues.values():
            if other is not q and other.ready:
                await nak_all([other.ready.pop()])
                return True
        return False

    async def request(self, free: int) -> None:
        if self.closed or not self.nc.is_connected:
            return
        now = time.monotonic()
        queues = list(self.queues.values())
        open_ = {q.priority: q.current(now) for q in queues}
        if any(r is not None and r.kind == "probe" for r in open_.values()):
            return  # its answer first: it decides what the other slots go to
        wanted = free - self._in_hand()
        idle = [q for q in queues if open_[q.priority] is None and now >= q.retry_at]
        wet = [q.priority for q in idle if q.empty_at is None]
        picks = dict.fromkeys(self.queues, 0)
        for _ in range(max(wanted, 0)):
            p = self.turns.pick(wet)
            if p is None:
                break
            picks[p] += 1
        for q in idle:
            if picks[q.priority]:
                await self._pull(q, "probe", picks[q.priority], now)
            elif q.empty_at is not None:
                await self._pull(q, "poll", 1, now)

    def take(self, free: int) -> list[Msg]:
        out: list[Msg] = []
        for q in self.queues.values():  # the hand holds what the turns asked for
            while q.ready and len(out) < free:
                out.append(q.ready.popleft())
        return out
