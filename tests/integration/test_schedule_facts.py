"""What JetStream's message schedules (ADR-51) do on the pinned nats-server (2.15.1), checked
before delayed and recurring jobs are built on them (issue 11). If an upgrade changes one of
these, this module fails first and says which fact broke:

- a stream with ``allow_msg_schedules`` accepts a schedule also when it denies delete and
  purge; an ``@at`` schedule fires once, within a second of its time, into its target
  subject of the same stream: the schedule's body and headers, with ``Nats-Scheduler`` (the
  schedule's subject) and ``Nats-Schedule-Next: purge`` added, ``Nats-Schedule*`` and
  ``Nats-Expected-*`` stripped; and the schedule message itself is removed from the stream,
  whatever deny-delete says: **a schedule is not a record**, so it must never be an event of
  the log, only a copy of one;
- a schedule whose time has passed fires at once; one that fell due while the server was
  down fires after the restart;
- a client cancels a pending schedule with a message carrying ``Nats-Schedule-Next: purge``
  and ``Nats-Scheduler: <the schedule's subject>``, also on a stream that denies purge (the
  message asking for it stays in the stream); the delete API is refused there;
- a schedule's publish takes ``Nats-Expected-Last-Subject-Sequence``: a second schedule on
  the same subject expecting none is refused;
- a repeating schedule (``@every``, cron with seconds and ``Nats-Schedule-Time-Zone``) fires
  on each tick, on the second, naming the next tick in ``Nats-Schedule-Next``, keeps its
  schedule message, and ends when a plain message replaces it on its subject.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from conveyor_cli.embedded import NatsServer
from support.jetstream import WRONG_LAST_SEQUENCE, api, publish

pytestmark = pytest.mark.integration

STREAM = "SCHEDULES"


@pytest.fixture
async def client(server: NatsServer) -> AsyncIterator[Client]:
    nc = await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)
    config = {
        "name": STREAM,
        "subjects": ["s.>"],
        "storage": "file",
        "allow_msg_schedules": True,
        "deny_delete": True,
        "deny_purge": True,
    }
    created = await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", config)
    assert "error" not in created, created
    try:
        yield nc
    finally:
        await nc.close()


def at(when: datetime) -> str:
    return "@at " + when.strftime("%Y-%m-%dT%H:%M:%SZ")


def next_second(ahead_s: float) -> datetime:
    """A whole second at least ``ahead_s`` from now (schedules have second precision)."""
    return (datetime.now(UTC) + timedelta(seconds=ahead_s + 1)).replace(microsecond=0)


def stamp(text: str) -> datetime:
    """The server's RFC 3339 time (nanoseconds, ``Z``) to microseconds."""
    whole, _, fraction = text.removesuffix("Z").partition(".")
    return datetime.fromisoformat(f"{whole}.{fraction[:6].ljust(6, '0')}+00:00")


class Stored:
    def __init__(self, raw: dict[str, Any]) -> None:
        self.seq: int = raw["seq"]
        self.subject: str = raw["subject"]
        self.time = stamp(raw["time"])
        self.data = base64.b64decode(raw.get("data") or "")
        lines = base64.b64decode(raw.get("hdrs") or "").decode().split("\r\n")[1:]
        self.headers = dict(line.split(": ", 1) for line in lines if ": " in line)


async def last(nc: Client, subject: str) -> Stored | None:
    got = await api(nc, f"$JS.API.STREAM.MSG.GET.{STREAM}", {"last_by_subj": subject})
    return Stored(got["message"]) if "message" in got else None


async def fired(nc: Client, subject: str, timeout: float) -> Stored:
    deadline = time.monotonic() + timeout
    while (msg := await last(nc, subject)) is None:
        assert time.monotonic() < deadline, f"nothing fired into {subject}"
        await asyncio.sleep(0.05)
    return msg


async def test_an_at_schedule_fires_once_on_time_and_leaves_no_trace_of_itself(
    client: Client,
) -> None:
    due = next_second(1)
    headers = {
        "Nats-Schedule": at(due),
        "Nats-Schedule-Target": "s.due.a",
        "Nats-Expected-Last-Subject-Sequence": "0",
        "Conveyor-Kept": "yes",
    }
    ack = await publish(client, "s.sched.a", b"the event", headers)
    assert "error" not in ack, ack

    msg = await fired(client, "s.due.a", timeout=5)
    assert due <= msg.time < due + timedelta(seconds=1)
    assert msg.data == b"the event"
    assert msg.headers == {
        "Conveyor-Kept": "yes",
        "Nats-Scheduler": "s.sched.a",
        "Nats-Schedule-Next": "purge",
    }
    await asyncio.sleep(1.5)
    assert await last(client, "s.sched.a") is None  # removed, on a deny-delete stream
    info = await api(client, f"$JS.API.STREAM.INFO.{STREAM}", {"subjects_filter": ">"})
    assert info["state"]["subjects"] == {"s.due.a": 1}  # fired once


async def test_a_schedule_whose_time_has_passed_fires_at_once(client: Client) -> None:
    sent = datetime.now(UTC)
    await publish(
        client,
        "s.sched.p",
        b"late",
        {"Nats-Schedule": "@at 2020-01-01T00:00:00Z", "Nats-Schedule-Target": "s.due.p"},
    )
    msg = await fired(client, "s.due.p", timeout=2)
    assert msg.time - sent < timedelta(seconds=1)


async def test_a_client_purge_cancels_a_schedule_on_a_stream_that_denies_purge(
    client: Client,
) -> None:
    due = next_second(1)
    sched = {"Nats-Schedule": at(due), "Nats-Schedule-Target": "s.due.c"}
    stored = await publish(client, "s.sched.c", b"cancel me", sched)
    deleted = await api(client, f"$JS.API.STREAM.MSG.DELETE.{STREAM}", {"seq": stored["seq"]})
    assert "error" in deleted  # deny_delete

    purge = {"Nats-Schedule-Next": "purge", "Nats-Scheduler": "s.sched.c"}
    ack = await publish(client, "s.cancel.c", b"", purge)
    assert "error" not in ack, ack
    await asyncio.sleep((due - datetime.now(UTC)).total_seconds() + 1.5)
    assert await last(client, "s.due.c") is None
    assert await last(client, "s.sched.c") is None
    assert await last(client, "s.cancel.c") is not None


async def test_a_schedule_publish_takes_an_expected_sequence(client: Client) -> None:
    sched = {
        "Nats-Schedule": at(next_second(30)),
        "Nats-Schedule-Target": "s.due.x",
        "Nats-Expected-Last-Subject-Sequence": "0",
    }
    assert "error" not in await publish(client, "s.sched.x", b"first", sched)
    again = await publish(client, "s.sched.x", b"second", sched)
    assert again["error"]["err_code"] == WRONG_LAST_SEQUENCE


async def test_a_schedule_due_while_the_server_was_down_fires_after_the_restart(
    server: NatsServer, client: Client
) -> None:
    due = next_second(1)
    await publish(
        client, "s.sched.r", b"kept", {"Nats-Schedule": at(due), "Nats-Schedule-Target": "s.due.r"}
    )
    server.stop(signal.SIGKILL)
    await asyncio.sleep((due - datetime.now(UTC)).total_seconds() + 1)
    server.start()
    msg = await fired(client, "s.due.r", timeout=10)
    assert msg.data == b"kept" and msg.time > due


async def test_a_repeating_schedule_fires_each_tick_and_ends_when_replaced(
    client: Client,
) -> None:
    await publish(
        client,
        "s.sched.k",
        b"tick",
        {
            "Nats-Schedule": "*/1 * * * * *",
            "Nats-Schedule-Target": "s.due.k",
            "Nats-Schedule-Time-Zone": "Europe/Paris",
        },
    )
    await publish(
        client,
        "s.sched.e",
        b"every",
        {"Nats-Schedule": "@every 1s", "Nats-Schedule-Target": "s.due.e"},
    )
    await asyncio.sleep(3.2)
    ticks = await ticks_of(client, "s.due.k")
    assert len(ticks) >= 2
    for tick in ticks:
        assert tick.time.microsecond < 100_000  # on the second
        following = datetime.fromisoformat(tick.headers["Nats-Schedule-Next"])
        assert following.utcoffset() == timedelta(hours=1)  # Paris in December
        assert following == tick.time.replace(microsecond=0) + timedelta(seconds=1)
    assert len(await ticks_of(client, "s.due.e")) >= 2
    assert (await last(client, "s.sched.k")) is not None  # a repeating schedule stays

    await publish(client, "s.sched.e", b"ended")  # a plain message replaces the schedule
    before = len(await ticks_of(client, "s.due.e"))
    await asyncio.sleep(2.2)
    assert len(await ticks_of(client, "s.due.e")) == before


async def ticks_of(nc: Client, subject: str) -> list[Stored]:
    out: list[Stored] = []
    seq = 0
    while True:
        got = await api(
            nc, f"$JS.API.STREAM.MSG.GET.{STREAM}", {"seq": seq + 1, "next_by_subj": subject}
        )
        if "message" not in got:
            return out
        out.append(Stored(got["message"]))
        seq = out[-1].seq
