"""Recurring schedules on JetStream (``CONVEYOR_SCHEDULES``, ``allow_msg_schedules``).

A schedule is one subject, ``conveyor.schedules.def.<name>``, whose last message is its
definition (the body, opaque here). While it runs, that message carries ``Nats-Schedule``
(the cron), ``Nats-Schedule-Time-Zone`` and ``Nats-Schedule-Target:
conveyor.schedules.tick.<name>``, and nats-server itself publishes a copy of the body there
on each tick; a plain message in its place (paused) stops the ticks and keeps the
definition. Every write names the sequence it replaces (0: a new schedule), so two writers
never both win. Deleting a schedule purges both of its subjects.

The ticks are read through one durable consumer that every API process shares
(``api-schedule-ticks``): each tick goes to one of them, again only when not acknowledged.
"""

from __future__ import annotations

import base64
import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeout

from conveyor_bus.acks import ack_info
from conveyor_bus.connection import require_connected
from conveyor_bus.directget import DirectGetter
from conveyor_bus.errors import BusError, BusUnavailable
from conveyor_events import ConcurrencyConflict, names

log = logging.getLogger("conveyor.bus")

WRONG_LAST_SEQUENCE = 10071
NO_MESSAGE = 10037
BAD_PATTERN = 10189
BAD_TIME_ZONE = 10223


class ScheduleRefused(BusError):
    """nats-server refused the schedule (its cron or its time zone)."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True, slots=True)
class StoredSchedule:
    seq: int
    """The definition's sequence: what its next write must name."""
    data: bytes
    time: datetime


@dataclass(frozen=True, slots=True)
class Tick:
    """One tick fired by nats-server, as delivered to this process."""

    name: str
    at_ns: int
    """When the server stored the tick (nanoseconds since 1970, UTC)."""
    data: bytes
    """The definition as it was when it fired."""
    delivered: int
    msg: Msg

    async def ack(self) -> None:
        await self.msg.ack()

    async def nak(self, delay_s: float) -> None:
        await self.msg.nak(delay=delay_s)

    async def term(self) -> None:
        await self.msg.term()


def parse_time(text: str) -> datetime:
    """The server's RFC 3339 time (nanoseconds, ``Z``) to a UTC datetime (microseconds)."""
    whole, _, fraction = text.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}").replace(tzinfo=UTC)


class JetStreamSchedules:
    def __init__(self, nc: Client, *, timeout: float = 5.0) -> None:
        self._nc = nc
        self._getter = DirectGetter(nc)
        self._timeout = timeout

    async def _request(self, subject: str, data: bytes, headers: dict[str, str] | None) -> Any:
        require_connected(self._nc)
        try:
            reply = await self._nc.request(subject, data, headers=headers, timeout=self._timeout)
        except NatsTimeout as e:
            raise BusUnavailable(f"no answer from NATS on {subject}") from e
        except Exception as e:
            raise BusUnavailable(f"{subject}: {e}") from e
        return json.loads(reply.data)

    async def _last(self, subject: str) -> StoredSchedule | None:
        got = await self._request(
            f"$JS.API.STREAM.MSG.GET.{names.SCHEDULES_STREAM}",
            json.dumps({"last_by_subj": subject}).encode(),
            None,
        )
        if "error" in got:
            if got["error"].get("err_code") == NO_MESSAGE:
                return None
            raise BusError(f"read of {subject}: {got['error'].get('description')}")
        msg = got["message"]
        data = base64.b64decode(msg.get("data") or "")
        return StoredSchedule(int(msg["seq"]), data, parse_time(msg["time"]))

    async def get(self, name: str) -> StoredSchedule | None:
        """The schedule's definition, or None when there is no such schedule."""
        return await self._last(names.schedule_subject(name))

    async def last_tick(self, name: str) -> datetime | None:
        """When the schedule's last tick was stored (None: it never fired, or was deleted)."""
        last = await self._last(names.schedule_tick_subject(name))
        return last.time if last is not None else None

    async def all(self) -> list[tuple[str, bytes]]:
        """Every schedule's name and definition."""
        found = await self._getter.last_per_subject(names.SCHEDULES_STREAM, names.SCHEDULE_DEFS_ALL)
        return [(names.schedule_name_of(m.subject), m.data) for m in found]

    async def put(
        self, name: str, data: bytes, *, expected_seq: int, cron: str | None, timezone: str
    ) -> int:
        """Write the definition after ``expected_seq`` (0: a new schedule), firing on
        ``cron`` (six fields, seconds first) in ``timezone``, or paused (``cron`` None). Its
        sequence; raises ConcurrencyConflict when ``expected_seq`` is not the last (a name
        taken, a concurrent change), ScheduleRefused when the server refuses the cron or
        the time zone."""
        headers = {names.HEADER_EXPECTED_LAST_SUBJECT_SEQ: str(expected_seq)}
        if cron is None:
            headers[names.HEADER_ROLLUP] = "sub"  # one message per definition, paused too
        else:
            headers[names.HEADER_SCHEDULE] = cron
            headers[names.HEADER_SCHEDULE_TARGET] = names.schedule_tick_subject(name)
            headers[names.HEADER_SCHEDULE_TIME_ZONE] = timezone
        ack = await self._request(names.schedule_subject(name), data, headers)
        error = ack.get("error")
        if error is None:
            return int(ack["seq"])
        code, description = error.get("err_code"), str(error.get("description"))
        if code == WRONG_LAST_SEQUENCE:
            raise ConcurrencyConflict(description)
        if code == BAD_PATTERN:
            raise ScheduleRefused(f"nats-server refused the cron: {description}", "cron")
        if code == BAD_TIME_ZONE:
            raise ScheduleRefused(f"nats-server refused the time zone: {description}", "timezone")
        raise BusError(f"JetStream refused the schedule: {description} (code {code})")

    async def delete(self, name: str) -> None:
        """Remove the schedule (no tick fires after this returns) and its ticks."""
        for subject in (names.schedule_subject(name), names.schedule_tick_subject(name)):
            got = await self._request(
                f"$JS.API.STREAM.PURGE.{names.SCHEDULES_STREAM}",
                json.dumps({"filter": subject}).encode(),
                None,
            )
            if "error" in got:
                raise BusError(f"purge of {subject}: {got['error'].get('description')}")


class TickConsumer:
    """The ticks of every schedule, from the consumer all API processes share."""

    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._sub: Any = None

    async def fetch(self, batch: int = 1, timeout: float = 5.0) -> list[Tick]:
        """The ticks delivered within ``timeout`` (none: nothing is due). Raises
        BusUnavailable while NATS is away or the consumer is missing.

        The server hands a message to the oldest open pull request, and keeps handing them
        to one that has credit left. So by default one tick is asked for at a time, with a
        long-lived request (nats-py ends it a little before ``timeout``, and a tick due in
        between waits for the next request): the processes take turns, each tick going to
        the one that has waited longest."""
        try:
            require_connected(self._nc)
            if self._sub is None:
                js = self._nc.jetstream()
                self._sub = await js.pull_subscribe_bind(
                    names.SCHEDULE_TICK_CONSUMER, names.SCHEDULES_STREAM
                )
            msgs = await self._sub.fetch(batch, timeout=timeout)
        except NatsTimeout:
            return []
        except BusUnavailable:
            raise
        except Exception as e:
            await self.close()
            raise BusUnavailable(f"tick fetch: {e}") from e
        return [_tick(m) for m in msgs]

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            try:
                await sub.unsubscribe()
            except Exception as e:  # a closed connection: nothing to undo
                log.debug("tick consumer unsubscribe: %s", e)


def _tick(msg: Msg) -> Tick:
    tokens = msg.reply.split(".")
    at = 4 if len(tokens) == 9 else 6  # $JS.ACK v1 (9 tokens) or v2 (domain, account)
    return Tick(
        name=names.schedule_name_of(msg.subject),
        at_ns=int(tokens[at + 3]),
        data=msg.data,
        delivered=ack_info(msg.reply).delivered,
        msg=msg,
    )
