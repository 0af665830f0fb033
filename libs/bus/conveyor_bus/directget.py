"""Batched direct gets: a job's whole history in one round trip.

JetStream answers ``{"seq": 1, "next_by_subj": S, "batch": N}`` on ``$JS.API.DIRECT.GET``
with up to N stored messages followed by an end-of-batch status (204). nats-py has no helper
for it; one shared inbox subscription routes the replies to the waiting requests.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

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
    __slots__ = ("done", "error", "msgs", "single")

    def __init__(self, single: bool) -> None:
        self.single = single
        self.error: str | None = None
        self.msgs: list[StoredMsg] = []
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()


class DirectGetter:
    def __init__(self, nc: Client) -> None:
        self._nc = nc
        self._prefix = nc.new_inbox()
        self._ids = itertools.count()
        self._pending: dict[str, _Pending] = {}
        self._started = False

    async def _start(self) -> None:
        if not self._started:
            await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_msg)
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
                pending.error = f"{status} {headers.get('Description', '')}".strip()
            pending.done.set_result(None)
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

    async def all_by_subject(
        self, stream: str, subject: str, page: int = 1000, start: int = 1
    ) -> list[StoredMsg]:
        """Every message stored on ``subject`` (which may be a wildcard) from sequence
        ``start`` on, oldest first."""
        out: list[StoredMsg] = []
        while True:
            got = await self.batch(stream, {"seq": start, "next_by_subj": subject, "batch": page})
            out.extend(got)
            if not got or got[-1].num_pending == 0:  # the server may end a batch early
                return out
            start = got[-1].seq + 1

    async def last_per_subject(self, stream: str, subject: str) -> list[StoredMsg]:
        """The last message of every subject matching ``subject``."""
        return await self.batch(stream, {"multi_last": [subject], "batch": 10_000})
