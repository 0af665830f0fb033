"""Reading the event log in order from a given sequence, without gaps or duplicates.

An ephemeral pull consumer without acks (the reader keeps its own position, e.g. the
projector's checkpoint in PostgreSQL). Consumer sequences are contiguous, so a gap (a lost
fetch reply after a reconnect) is detected and the consumer is recreated from the next
stream sequence the reader still needs. After a reconnect the consumer is recreated from the
reader's position too: the server may have restarted, and an ephemeral consumer does not
survive that.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import deque
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from conveyor_bus.acks import ack_info
from conveyor_bus.connection import require_connected
from conveyor_bus.directget import DirectGetter, StoredMsg
from conveyor_bus.errors import BusUnavailable
from conveyor_events import names

log = logging.getLogger("conveyor.bus")

IDLE_CHECK_S = 2.0


async def last_sequence(nc: Client) -> int:
    """The event log's last stream sequence (0 when empty)."""
    try:
        require_connected(nc)
        info = await nc.jetstream().stream_info(names.STREAM)
    except Exception as e:
        raise BusUnavailable(f"stream info: {e}") from e
    return int(info.state.last_seq)


class LogReader:
    """Pull requests are sent by hand and the deliveries taken in a subscription callback
    (nats-py's ``fetch`` spends a task, a timer and a uuid on every message and parses each
    delivery's metadata into dataclasses). One pull request is open at a time; the next is
    sent as soon as one ends, before the caller works on what it got, so the next messages
    arrive meanwhile and gather into the next batch."""

    def __init__(self, nc: Client, subject: str, start_seq: int) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._subject = subject
        self.next_seq = max(1, start_seq)
        """The first stream sequence not yet returned."""
        self._sub: Any = None
        self._consumer = ""
        self._generation = 0
        self._consumer_seq = 0
        """The consumer sequence of the last delivery taken."""
        self._delivered: deque[StoredMsg] = deque()
        self._arrived = asyncio.Event()
        self._broken: str | None = None
        """Why the consumer must be reopened (a gap in the deliveries, an error status)."""
        self._credit = 0
        """Deliveries the open pull request may still bring (0: none open)."""
        self._request_ends = 0.0
        self._checked_at = 0.0
        self._reconnects = 0
        """The client's reconnect count when the consumer was created."""

    async def _open(self) -> None:
        config = ConsumerConfig(
            filter_subject=self._subject,
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=self.next_seq,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
            mem_storage=True,
            num_replicas=1,
        )
        self._reconnects = self._nc.stats["reconnects"]
        info = await self._js.add_consumer(names.STREAM, config)
        self._consumer = info.name
        self._generation += 1
        generation = self._generation

        async def on_msg(msg: Msg) -> None:
            if generation == self._generation:
                self._take(msg)

        self._consumer_seq = 0
        self._delivered.clear()
        self._broken = None
        self._credit = 0
        self._sub = await self._nc.subscribe(self._nc.new_inbox(), cb=on_msg)

    def _take(self, msg: Msg) -> None:
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is not None:
            if status in ("408", "409", "404"):  # the pull request ended (expired, ...)
                self._credit = 0
            elif status != "100":  # 503 no responders (the consumer is gone), ...
                self._broken = f"pull request answered {status} {headers.get('Description', '')}"
            self._arrived.set()
            return
        if self._broken is not None:
            return
        stream_seq, consumer_seq, _ = ack_info(msg.reply)
        if consumer_seq != self._consumer_seq + 1:
            self._broken = "gap"
            self._arrived.set()
            return
        self._consumer_seq = consumer_seq
        self._credit -= 1
        self._delivered.append(StoredMsg(seq=stream_seq, subject=msg.subject, data=msg.data))
        self._arrived.set()

    async def _request(self, batch: int, timeout: float) -> None:
        """Send a pull request unless one is still open."""
        loop = asyncio.get_running_loop()
        if self._credit > 0 and loop.time() < self._request_ends:
            return
        self._credit = batch
        self._request_ends = loop.time() + timeout
        request = {"batch": batch, "expires": int(timeout * 1e9)}
        await self._nc.publish(
            f"$JS.API.CONSUMER.MSG.NEXT.{names.STREAM}.{self._consumer}",
            json.dumps(request).encode(),
            reply=self._sub.subject,
        )

    async def _check_idle_gap(self) -> None:
        """A delivery lost at the end of the log shows no gap until the next one arrives;
        while idle, compare with what the server says it delivered (every few seconds)."""
        loop = asyncio.get_running_loop()
        if self._sub is None or loop.time() - self._checked_at < IDLE_CHECK_S:
            return
        if not self._nc.is_connected:
            return  # fetch reopens the consumer after the reconnect
        self._checked_at = loop.time()
        try:
            info = await self._js.consumer_info(names.STREAM, self._consumer)
        except Exception as e:
            log.warning("log reader on %s: %s; reopening at %d", self._subject, e, self.next_seq)
            await self.close()
            return
        if info.delivered.consumer_seq > self._consumer_seq:
            log.warning("lost delivery in %s at %d; reopening", self._subject, self.next_seq)
            await self.close()

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        self._generation += 1
        self._delivered.clear()
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def fetch(self, max_msgs: int = 1000, timeout: float = 1.0) -> list[StoredMsg]:
        """The next messages in order (possibly none after ``timeout``): what has arrived,
        else the first to arrive within ``timeout``. Raises BusUnavailable while NATS is
        away."""
        try:
            require_connected(self._nc)
            if self._sub is not None and self._nc.stats["reconnects"] != self._reconnects:
                log.info("reconnected; reopening %s at %d", self._subject, self.next_seq)
                await self.close()
            if self._sub is None:
                await self._open()
            if not self._delivered and self._broken is None:
                self._arrived.clear()
                await self._request(max_msgs, timeout)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._arrived.wait(), timeout)
        except BusUnavailable:
            raise
        except Exception as e:
            log.warning("log reader on %s: %s; reopening at %d", self._subject, e, self.next_seq)
            await self.close()
            raise BusUnavailable(str(e)) from e
        delivered = self._delivered
        out = [delivered.popleft() for _ in range(min(max_msgs, len(delivered)))]
        if out:
            self.next_seq = out[-1].seq + 1
        if self._broken is not None and not delivered:
            log.warning(
                "log reader on %s: %s; reopening at %d", self._subject, self._broken, self.next_seq
            )
            await self.close()
        elif not out:
            await self._check_idle_gap()
        elif self._credit <= 0:
            with contextlib.suppress(Exception):  # else sent by the next fetch
                await self._request(max_msgs, timeout)
        return out


async def event_lag(getter: DirectGetter, after_seq: int) -> int:
    """How many events the log holds after ``after_seq`` (a reader's position)."""
    got = await getter.batch(
        names.STREAM, {"seq": after_seq + 1, "next_by_subj": names.EVENTS_ALL, "batch": 1}
    )
    if not got:
        return 0
    return 1 + got[0].num_pending


async def last_event_sequence(getter: DirectGetter) -> int:
    """The sequence of the newest event in the log (0 when there is none)."""
    got = await getter.batch(names.STREAM, {"last_by_subj": names.EVENTS_ALL})
    return got[0].seq if got else 0
