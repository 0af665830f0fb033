"""Reading a window of the event log: the events of one job or of some types, between two
sequences or two times, a batch at a time (``conveyor export``, ``GET /api/v1/events``).

Batched direct gets with a subject filter (``names.event_subjects``): the server skips what
the filter leaves out, and no consumer is created. A type stored on two subjects (a runnable
type, also on its work queue) is read on both and merged by sequence.

Times are the log's own: ``since`` and ``until`` compare the time the server stored each
event (its JetStream timestamp, in stream order), not the ``at`` the writer put in it (a
client's clock; within milliseconds of it for events written live). One direct get with
``start_time`` turns a time into the sequence of the first event stored at or after it (the
server looks it up in its index, no scan), so every window is a range of sequences:
``since`` starts a read there and ``until`` ends it before the first event stored after it.
Times are to the microsecond; ``until`` includes the whole of its microsecond.
"""

from __future__ import annotations

import asyncio
import heapq
import json
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec
from nats.aio.client import Client

from conveyor_bus.connection import require_connected
from conveyor_bus.directget import DirectGetter, StoredMsg
from conveyor_bus.errors import BusUnavailable
from conveyor_events import AnyEvent, names
from conveyor_events.events import EVENT_TYPES

PAGE = 500
"""Messages per direct get."""
_encoder = msgspec.json.Encoder()
LAST_TIME = datetime(2262, 4, 11, tzinfo=UTC)
"""The server keeps times as int64 nanoseconds since 1970: a later ``start_time`` wraps round
to 1677 (the first message), so times from here on are treated as after every event."""
FIRST_TIME = datetime(1970, 1, 1, tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Window:
    """What to read: every field narrows it."""

    job_id: str | None = None
    types: tuple[str, ...] = ()
    """Wire names (``job.failed``); empty: every type."""
    after_seq: int = 0
    since: datetime | None = None
    """Events stored at or after this time (timezone-aware)."""
    until: datetime | None = None
    """Events stored at or before this time (timezone-aware)."""

    def __post_init__(self) -> None:
        unknown = [t for t in self.types if t not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}")
        for bound in (self.since, self.until):
            if bound is not None and bound.utcoffset() is None:
                raise ValueError(f"{bound.isoformat()} has no UTC offset")

    @property
    def subjects(self) -> tuple[str, ...]:
        types: Sequence[str | None] = sorted(set(self.types)) or [None]
        return tuple(s for t in types for s in names.event_subjects(self.job_id, t))


@dataclass(frozen=True, slots=True)
class Span:
    """A window as sequences: ``first`` to ``last`` (None: the end of the log)."""

    first: int
    last: int | None

    @property
    def empty(self) -> bool:
        return self.last is not None and self.last < self.first


def nanos(t: datetime) -> str:
    """``t`` as the server reads a time: RFC 3339, UTC, nine fractional digits."""
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


class LogWindows:
    """Reads windows of the log through ``getter`` (one shared subscription)."""

    def __init__(self, nc: Client, getter: DirectGetter | None = None) -> None:
        self._nc = nc
        self.getter = getter if getter is not None else DirectGetter(nc)

    async def _first_stored_at(self, t: datetime) -> int | None:
        """The sequence of the first event stored at or after ``t``, None when there is none
        (yet)."""
        if t >= LAST_TIME:
            return None
        when = max(t, FIRST_TIME)
        request = {"start_time": nanos(when), "next_by_subj": names.EVENTS_ALL}
        got = await self.getter.batch(names.STREAM, request)
        return got[0].seq if got else None

    async def last_seq(self) -> int:
        """The sequence of the newest event in the log (0 when there is none)."""
        got = await self.getter.batch(names.STREAM, {"last_by_subj": names.EVENTS_ALL})
        return got[0].seq if got else 0

    async def span(self, window: Window) -> Span:
        """The window as sequences, as the log is now."""
        first, last = window.after_seq + 1, None
        if window.since is not None:
            found = await self._first_stored_at(window.since)
            if found is None:
                return Span(first, first - 1)
            first = max(first, found)
        if window.until is not None:
            # times are to the microsecond: ``until`` takes in its whole microsecond
            after = (
                None
                if window.until >= LAST_TIME
                else await self._first_stored_at(window.until + timedelta(microseconds=1))
            )
            if after is not None:
                last = after - 1
            elif window.until <= datetime.now(UTC):
                last = await self.last_seq()  # what is stored from now on is after ``until``
        return Span(first, last)

    async def read(
        self, window: Window, span: Span, page: int = PAGE, *, ahead: bool = False
    ) -> AsyncIterator[list[StoredMsg]]:
        """The messages on the window's subjects from ``span.first`` to ``span.last``, in
        stream order, a batch at a time (at most ``page`` per subject held at once, twice
        that with ``ahead``: each subject's next batch read while the caller works)."""
        if span.empty:
            return
        sources = [_Source(self.getter, s, span, page, ahead) for s in window.subjects]
        try:
            if len(sources) == 1:
                source = sources[0]
                while True:
                    await source.fill()
                    if not source.buffer:
                        return
                    yield list(source.buffer)
                    source.buffer.clear()
            while True:
                await asyncio.gather(*(s.fill() for s in sources))
                if not any(s.buffer for s in sources):
                    return
                # every source still reading holds a batch: up to the smallest of their last
                # sequences, no source can still bring an earlier message
                open_ends = [s.buffer[-1].seq for s in sources if not s.done]
                bound = min(open_ends) if open_ends else None
                taken = [s.take(bound) for s in sources]
                yield list(heapq.merge(*taken, key=lambda m: m.seq))
        finally:
            for source in sources:
                source.close()

    async def stored_time(self, seq: int) -> datetime:
        """When the log stored the message at ``seq`` (its JetStream timestamp)."""
        require_connected(self._nc)
        try:
            reply = await self._nc.request(
                f"$JS.API.DIRECT.GET.{names.STREAM}", json.dumps({"seq": seq}).encode(), timeout=5
            )
        except Exception as e:
            raise BusUnavailable(f"direct get of seq {seq}: {e}") from e
        stamp = (reply.headers or {}).get("Nats-Time-Stamp")
        if stamp is None:
            raise BusUnavailable(f"no message at seq {seq}")
        return parse_stamp(stamp)


def parse_stamp(stamp: str) -> datetime:
    """A server timestamp (RFC 3339, up to nine fractional digits), to the microsecond."""
    head, _, frac = stamp.rstrip("Z").partition(".")
    micros = (frac + "000000")[:6]
    return datetime.fromisoformat(f"{head}.{micros}+00:00")


class _Source:
    """One subject's messages in a span; with ``ahead``, the next batch asked for as soon as
    one arrives, so it comes while the caller works on this one."""

    def __init__(
        self, getter: DirectGetter, subject: str, span: Span, page: int, ahead: bool
    ) -> None:
        self.getter = getter
        self.subject = subject
        self.next = span.first
        self.last = span.last
        self.page = page
        self.ahead = ahead
        self.buffer: deque[StoredMsg] = deque()
        self.done = False
        self._next_batch: asyncio.Task[list[StoredMsg]] | None = None

    def _fetch(self) -> asyncio.Task[list[StoredMsg]]:
        request = {"seq": self.next, "next_by_subj": self.subject, "batch": self.page}
        return asyncio.ensure_future(self.getter.batch(names.STREAM, request))

    async def fill(self) -> None:
        if self.done or self.buffer:
            return
        task, self._next_batch = self._next_batch or self._fetch(), None
        got = await task
        for m in got:
            if self.last is not None and m.seq > self.last:
                self.done = True
                break
            self.buffer.append(m)
        if not got or got[-1].num_pending == 0:
            self.done = True
        if self.buffer:
            self.next = self.buffer[-1].seq + 1
            if self.last is not None and self.next > self.last:
                self.done = True
        if self.ahead and not self.done:
            self._next_batch = self._fetch()

    def close(self) -> None:
        if self._next_batch is not None:
            self._next_batch.cancel()
            self._next_batch = None

    def take(self, bound: int | None) -> list[StoredMsg]:
        """The buffered messages up to ``bound`` (None: all)."""
        out: list[StoredMsg] = []
        while self.buffer and (bound is None or self.buffer[0].seq <= bound):
            out.append(self.buffer.popleft())
        return out


def frame(seq: int, event: AnyEvent) -> bytes:
    """The public shape of a stored event (SPEC §2): ``{seq, type, job_id, at, actor, data}``
    as JSON, the event as this code reads it (an old version upcast, no ``v``)."""
    return b'{"seq":%d,%s' % (seq, _encoder.encode(event)[1:])
