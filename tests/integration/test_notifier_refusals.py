"""A notifier (its app and hub, in this process) on real NATS and real websockets, refusing
what it cannot serve with 1013 instead of a gap or a crash: a replay whose read of the log
lost a reply (issue 10, defect 10), and a replay past ``max_replays`` running at once
(defect 7). The reads are the real direct getter's against the real server; only a lost
reply (one dropped, or a subscription limit small enough to drop some) and a gate (to hold
a replay) are the test's."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import websockets
from nats.aio.client import Client
from nats.aio.msg import Msg
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from conveyor_bus import DirectGetter, StoredMsg
from conveyor_events import JobSubmitted, encode_event, names
from conveyor_events.events import SubmittedData
from conveyor_notifier.app import Notifier
from conveyor_notifier.guards import Admission, OriginPolicy
from conveyor_notifier.hub import Batches, Hub

pytestmark = pytest.mark.integration

T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


@dataclass
class Served:
    url: str
    notifier: Notifier

    def refused(self, reason: str) -> float:
        value = self.notifier.registry.get_sample_value(
            "conveyor_ws_refused_total", {"reason": reason}
        )
        return value or 0.0


@asynccontextmanager
async def running(nc: Client, getter: Batches, **hub: Any) -> AsyncIterator[Served]:
    fan = Hub(nc, client_buffer=10_000, getter=getter, **hub)
    notifier = Notifier(
        fan, 64 * 1024, OriginPolicy("http://127.0.0.1:8000", []), Admission(100, 100)
    )
    await fan.start()
    try:
        async with serve(
            notifier.handle,
            "127.0.0.1",
            0,
            process_request=notifier.process_request,
            compression=None,
        ) as server:
            port = server.sockets[0].getsockname()[1]
            yield Served(f"ws://127.0.0.1:{port}/ws", notifier)
    finally:
        await fan.stop()


async def append(nc: Client, job_id: str, n: int, pad: int = 0) -> list[int]:
    js = nc.jetstream()
    seqs = []
    for _ in range(n):
        event = JobSubmitted(
            job_id=job_id,
            at=T0,
            actor="user:t",
            data=SubmittedData(type="noop", payload={"pad": "x" * pad}),
        )
        ack = await js.publish(
            names.event_subject(job_id, "job.submitted", "regular"), encode_event(event)
        )
        seqs.append(ack.seq)
    return seqs


async def closed_with(url: str) -> tuple[list[int], int | None, str]:
    """The seqs a client got before the server closed it, and the close's code and reason
    (None and "" when the server did not close it within 3 s of its last frame)."""
    seqs: list[int] = []
    async with websockets.connect(url, max_size=None) as ws:
        try:
            while True:
                seqs.append(json.loads(await asyncio.wait_for(ws.recv(), 3))["seq"])
        except ConnectionClosed:
            return seqs, ws.close_code, ws.close_reason or ""
        except TimeoutError:
            return seqs, None, ""


class LosesOne(DirectGetter):
    """The real getter, whose subscription loses the 10th reply of each batch, as a client
    that fell behind drops one (a slow consumer): the server's replies are real, and so is
    the chain check that must notice the hole."""

    def __init__(self, nc: Client) -> None:
        super().__init__(nc)
        self.replies: dict[str, int] = {}

    async def _on_msg(self, msg: Msg) -> None:
        token = msg.subject.rsplit(".", 1)[-1]
        self.replies[token] = self.replies.get(token, 0) + 1
        if self.replies[token] != 10:
            await super()._on_msg(msg)


@pytest.mark.parametrize("loss", ["one reply", "slow consumer"])
async def test_a_replay_that_lost_a_reply_is_closed_1013_and_the_feed_lives_on(
    nc: Client, loss: str
) -> None:
    """A replay whose read of the log lost a reply: the 10th of a page (deterministic), or
    whatever a subscription that may queue only 4 replies drops of 200 2 KB events (for
    real, as in test_event_store; when the end of the batch is dropped too the read times
    out). The client gets no frame of a replay with a hole: it is closed with 1013 "event
    log unavailable", counted, and the notifier goes on serving."""
    job_id = "01JDQ5N3X8W4Y6Z7A9B2C3D4RA" if loss == "one reply" else "01JDQ5N3X8W4Y6Z7A9B2C3D4RC"
    written = await append(nc, job_id, 200, pad=2048)
    since = written[0] - 1
    async with running(nc, DirectGetter(nc)) as served:  # control: a getter that loses none
        assert await closed_with(f"{served.url}?job_id={job_id}&since={since}") == (
            written,
            None,
            "",
        )
    lossy = LosesOne(nc) if loss == "one reply" else DirectGetter(nc, pending_msgs_limit=4)
    async with running(nc, lossy) as served:
        for n in range(1, 4):
            seqs, code, reason = await closed_with(f"{served.url}?job_id={job_id}&since={since}")
            assert (len(seqs), code) == (0, 1013), (len(seqs), code, reason)
            assert reason.startswith("event log unavailable")
            assert served.refused("log_unavailable") == n

        async with websockets.connect(served.url) as live:  # no replay: the live feed
            await asyncio.sleep(0.2)
            [seq] = await append(nc, job_id, 1)
            async with asyncio.timeout(10):
                assert json.loads(await live.recv())["seq"] == seq > written[-1]


class Gated:
    """The real getter, holding every replay's read until ``gate`` opens."""

    def __init__(self, inner: DirectGetter) -> None:
        self.inner = inner
        self.gate = asyncio.Event()

    async def batch(
        self, stream: str, request: dict[str, Any], timeout: float = 5.0
    ) -> list[StoredMsg]:
        if "next_by_subj" in request:
            await self.gate.wait()
        return await self.inner.batch(stream, request, timeout)


async def test_a_replay_past_max_replays_is_closed_1013_after_replay_wait_s(
    nc: Client,
) -> None:
    job_id = "01JDQ5N3X8W4Y6Z7A9B2C3D4RB"
    written = await append(nc, job_id, 3)
    gated = Gated(DirectGetter(nc))
    async with running(nc, gated, max_replays=1, replay_wait_s=0.3) as served:
        held = await websockets.connect(f"{served.url}?job_id={job_id}&since=0")
        try:
            await asyncio.sleep(0.1)  # its replay holds the only slot

            seqs, code, reason = await closed_with(f"{served.url}?since=0")
            assert (seqs, code) == ([], 1013)
            assert reason.startswith("busy: 1 replays are running (max_replays)")
            assert served.refused("max_replays") == 1

            gated.gate.set()
            async with asyncio.timeout(10):
                assert [json.loads(await held.recv())["seq"] for _ in written] == written
        finally:
            gated.gate.set()
            await held.close()
        async with websockets.connect(f"{served.url}?job_id={job_id}&since=0") as later:
            async with asyncio.timeout(10):
                assert [json.loads(await later.recv())["seq"] for _ in written] == written
