"""Batched direct gets: a job's whole history in one round trip.

JetStream answers ``{"seq": 1, "next_by_subj": S, "batch": N}`` on ``$JS.API.DIRECT.GET``
with up to N stored messages followed by an end-of-batch status (204). nats-py has no helper
for it; one shared inbox subscription routes the replies to the waiting requests.

The replies are core NATS messages, which a client drops when it falls behind (a slow
consumer). A batch is therefore checked for continuity: the server reads it isolated from
writes and chains it, each message naming the sequence of the one sent before it
(``Nats-Last-Sequence``, 0 for the first) and the end-of-batch naming the last one. A break
in the chain is a read that did not happen (``BusUnavailable``), never a shorter history.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import DEFAULT_SUB_PENDING_MSGS_LIMIT

from conveyor_bus.connection import require_connected
from conveyor_bus.errors import BusUnavailable


@dataclass(frozen=True, slots=True)
class StoredMsg:
    seq: int
    subject: str
    data: bytes
    num_pending: int = 0
    """How many messages matching the request follow this one."""


class _Pending:
    __slots__ = ("done", "error", "left", "msgs", "single")

    def __init__(self, single: bool) -> None:
        self.single = single
        self.error: str | None = None
        self.msgs: list[StoredMsg] = []
        self.left = 0
        """What the end-of-batch says still matches after the last message sent."""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    @property
    def last_seq(self) -> int:
        return self.msgs[-1].seq if self.msgs else 0

    def broken(self, headers: dict[str, str]) -> bool:
        """Whether the message (or end-of-batch) with these headers does not follow the last
        one received: a message in between was lost."""
        previous = headers.get("Nats-Last-Sequence")
        return previous is not None and int(previous) != self.last_seq

    def fail(self, error: str) -> None:
        self.error = error
        self.done.set_result(None)


class DirectGetter:
    def __init__(
        self, nc: Client, *, pending_msgs_limit: int = DEFAULT_SUB_PENDING_MSGS_LIMIT
    ) -> None:
        """``pending_msgs_limit``: how many replies the subscription queues before the client
        drops them (the tests make it small)."""
        self._nc = nc
        self._limit = pending_msgs_limit
        self._prefix = nc.new_inbox()
        self._ids = itertools.count()
        self._pending: dict[str, _Pending] = {}
        self._started = False

    async def _start(self) -> None:
        if not self._started:
            await self._nc.subscribe(
                f"{self._prefix}.*", cb=self._on_msg, pending_msgs_limit=self._limit
            )
            self._started = True

    async def _on_msg(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        pending = self._pending.get(token)
        if pending is None or pending.done.done():
            return
        headers = msg.headers or {}
        status = headers.get("Status")
        if status is not None:
            # 204: end of batch; 404: nothing (more) found; anything else (408, 413, 503 no
            # responders, …) means the read did not happen, never "empty".
            if status not in ("204", "404"):
                pending.fail(f"{status} {headers.get('Description', '')}".strip())
            elif status == "204" and pending.broken(headers):
                pending.fail(f"the reply lost messages after seq {pending.last_seq}")
            else:
                pending.left = int(headers.get("Nats-Num-Pending", 0))
                pending.done.set_result(None)
            return
        if pending.broken(headers):
            pending.fail(f"the reply lost messages between seq {pending.last_seq} and the next")
            return
        pending.msgs.append(
            StoredMsg(
                seq=int(headers["Nats-Sequence"]),
                subject=headers["Nats-Subject"],
                data=msg.data,
                num_pending=int(headers.get("Nats-Num-Pending", 0)),
            )
        )
        if pending.single:
            pending.done.set_result(None)

    async def batch(
        self, stream: str, request: dict[str, Any], timeout: float = 5.0
    ) -> list[StoredMsg]:
        """One batched direct get; the messages it returned, in stream order."""
        require_connected(self._nc)
        await self._start()
        token = str(next(self._ids))
        pending = _Pending(single="batch" not in request)
        self._pending[token] = pending
        try:
            await self._nc.publish(
                f"$JS.API.DIRECT.GET.{stream}",
                json.dumps(request).encode(),
                reply=f"{self._prefix}.{token}",
            )
            await asyncio.wait_for(pending.done, timeout)
        except TimeoutError as e:
            raise BusUnavailable(f"direct get on {stream} timed out") from e
        except Exception as e:
            if isinstance(e, BusUnavailable):
                raise
            raise BusUnavailable(f"direct get on {stream}: {e}") from e
        finally:
            del self._pending[token]
        if pending.error is not None:
            raise BusUnavailable(f"direct get on {stream}: {pending.error}")
        return pending.msgs

    async def pages(
        self, stream: str, subject: str, page: int = 1000, start: int = 1
    ) -> AsyncIterator[list[StoredMsg]]:
        """The messages stored on ``subject`` (which may be a wildcard) from sequence
        ``start`` on, oldest first, a batch at a time: a reader can work on one (and let the
        event loop run) before the next is asked for."""
        while True:
            got = await self.batch(stream, {"seq": start, "next_by_subj": subject, "batch": page})
            if got:
                yield got
            if not got or got[-1].num_pending == 0:  # the server may end a batch early
                return
            start = got[-1].seq + 1

    async def all_by_subject(
        self, stream: str, subject: str, page: int = 1000, start: int = 1
    ) -> list[StoredMsg]:
        """Every message stored on ``subject`` from sequence ``start`` on, oldest first."""
        return [m async for got in self.pages(stream, subject, page, start) for m in got]

    async def last_per_subject(self, stream: str, subject: str) -> list[StoredMsg]:
        """The last message of every subject matching ``subject``."""
        return await self.batch(stream, {"multi_last": [subject], "batch": 10_000})
