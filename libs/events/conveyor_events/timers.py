"""Timers: a run due later waits as a message schedule of nats-server, not as a delivery.

A runnable event whose run is due after the event itself (a ``run_at`` in the future, a
retry's backoff) is *delayed*: it is stored without its priority token, so no worker is
delivered it, and a timer is written first, in stream ``CONVEYOR_TIMERS``: an ``@at``
schedule on ``conveyor.timer.<job id>`` whose target is ``conveyor.due.<job id>.<priority>``.
At its time nats-server publishes the due message, the log sources it, and the workers'
consumer of that priority delivers it: the worker reads the job and starts the run it names.
A waiting job is two stored messages and an entry in the server's timing wheel, nothing more
(ADR 14; the server's behaviour is pinned in tests/integration/test_schedule_facts.py).

Everything here is pure; the store writes the timers, the worker reads the due messages.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

import msgspec

from conveyor_events import names
from conveyor_events.events import AnyEvent, JobStopped, delivered_now, not_before, runnable
from conveyor_events.names import Priority

LONGEST_TIMER: Final = timedelta(days=36_500)
"""The furthest ahead a timer is set. nats-server keeps a schedule's time as int64
nanoseconds since 1970, which ends in 2262: a schedule past it fires at once. A run due
later than this fires early, and the worker that gets it holds it again (ADR 10's delayed
nak) for what is left."""
DUE_TTL: Final = "168h"
"""How long the timers stream keeps a due message it fired (the log keeps its own copy,
sourced at once; this covers a log that could not source for a week)."""


class Due(msgspec.Struct, frozen=True, kw_only=True):
    """The body of a timer, and of the due message it fires: run ``run`` of the job is due."""

    job_id: str
    run: int
    due: datetime


_encoder = msgspec.json.Encoder()
_decoder = msgspec.json.Decoder(Due)


def decode_due(raw: bytes) -> Due:
    """Raises ``msgspec.DecodeError`` on anything but a due body."""
    return _decoder.decode(raw)


@dataclass(frozen=True, slots=True)
class Timer:
    """One ``@at`` schedule: its subject, when it fires, where, and what it carries."""

    subject: str
    fires_at: datetime
    target: str
    body: bytes
    trace: str | None = None
    """The W3C ``traceparent`` of the write that set it: the server copies it into the due."""

    def headers(self) -> dict[str, str]:
        when = self.fires_at.isoformat(timespec="microseconds").replace("+00:00", "Z")
        headers = {
            names.HEADER_SCHEDULE: f"@at {when}",
            names.HEADER_SCHEDULE_TARGET: self.target,
            names.HEADER_SCHEDULE_TTL: DUE_TTL,
        }
        if self.trace is not None:
            headers[names.HEADER_TRACEPARENT] = self.trace
        return headers


def delayed(event: AnyEvent) -> bool:
    """Whether ``event`` asks for a run due after the event itself: it waits for a timer
    instead of being delivered."""
    return runnable(event) and not delivered_now(event)


def timer_for(
    event: AnyEvent, priority: Priority, run: int, trace: str | None = None
) -> Timer | None:
    """The timer of a delayed runnable event (``run``: the run it asks for; ``trace``: the
    ``traceparent`` its due carries), else None."""
    if not delayed(event):
        return None
    due = not_before(event)
    assert due is not None
    body = _encoder.encode(Due(job_id=event.job_id, run=run, due=due))
    return Timer(
        subject=names.timer_subject(event.job_id),
        fires_at=min(due, event.at + LONGEST_TIMER),
        target=names.due_subject(event.job_id, priority),
        body=body,
        trace=trace,
    )


def cancels_timer(event: AnyEvent) -> bool:
    """Whether ``event`` ends a wait: the stop of a pending job (its run, due later or not,
    will never start; a timer left would fire a due the worker only acknowledges)."""
    return isinstance(event, JobStopped) and event.data.attempt is None
