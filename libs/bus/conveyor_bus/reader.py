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
import logging
from typing import Any

import nats.errors
from nats.aio.client import Client
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

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
    def __init__(self, nc: Client, subject: str, start_seq: int) -> None:
        self._nc = nc
        self._js = nc.jetstream()
        self._subject = subject
        self.next_seq = max(1, start_seq)
        """The first stream sequence not yet returned."""
        self._sub: Any = None
        self._consumer_seq = 0
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
        self._sub = await self._js.pull_subscribe(
            self._subject, durable=None, stream=names.STREAM, config=config
        )
        self._consumer_seq = 0

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
            info = await self._sub.consumer_info()
        except Exception as e:
            log.warning("log reader on %s: %s; reopening at %d", self._subject, e, self.next_seq)
            await self.close()
            return
        if info.delivered.consumer_seq > self._consumer_seq:
            log.warning("lost delivery in %s at %d; reopening", self._subject, self.next_seq)
            await self.close()

    async def close(self) -> None:
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def fetch(self, max_msgs: int = 1000, timeout: float = 1.0) -> list[StoredMsg]:
        """The next messages in order (possibly none after ``timeout``). Raises
        BusUnavailable while NATS is away."""
        try:
            require_connected(self._nc)
            if self._sub is not None and self._nc.stats["reconnects"] != self._reconnects:
                log.info("reconnected; reopening %s at %d", self._subject, self.next_seq)
                await self.close()
            if self._sub is None:
                await self._open()
            msgs = await self._sub.fetch(max_msgs, timeout=timeout)
        except (nats.errors.TimeoutError, TimeoutError):
            await self._check_idle_gap()
            return []
        except BusUnavailable:
            raise
        except Exception as e:
            log.warning("log reader on %s: %s; reopening at %d", self._subject, e, self.next_seq)
            await self.close()
            raise BusUnavailable(str(e)) from e
        out: list[StoredMsg] = []
        for m in msgs:
            md = m.metadata
            if md.sequence.consumer != self._consumer_seq + 1:
                log.warning("gap in %s at %d; reopening", self._subject, self.next_seq)
                await self.close()
                break
            self._consumer_seq = md.sequence.consumer
            self.next_seq = md.sequence.stream + 1
            out.append(StoredMsg(seq=md.sequence.stream, subject=m.subject, data=m.data))
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
