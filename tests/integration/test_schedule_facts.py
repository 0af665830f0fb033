"""What JetStream's message schedules (ADR-51) do on the pinned nats-server (2.15.1), checked
before delayed and recurring jobs are built on them (issue 11). If an upgrade changes one of
these, this module fails first and says which fact broke:

- **a stream that allows schedules allows purges and roll-ups**: asked for
  ``allow_msg_schedules`` with ``deny_purge``, the server (not pedantic) turns ``deny_purge``
  off and ``allow_rollup_hdrs`` on without a word (``deny_delete`` stays). So Conveyor's log
  (deny delete, deny purge) must not allow schedules: timers live in a stream of their own,
  whose due messages the log sources, keeping its own deny-purge;
- an ``@at`` schedule fires once, within a second of its time, into its target subject of
  the same stream: the schedule's body and headers, with ``Nats-Scheduler`` (the schedule's
  subject) and ``Nats-Schedule-Next: purge`` added, ``Nats-Schedule*`` and ``Nats-Expected-*``
  stripped; and the schedule message itself is removed from the stream, whatever deny-delete
  says: **a schedule is not a record**, so it must never be an event of the log, only a copy
  of one; an ``@at`` with fractional seconds fires at that instant, not on a whole second;
- a schedule whose time has passed fires at once; so does an ``@at`` past 2262 (the server
  keeps the time as int64 nanoseconds, which overflow), while one in 2200 waits; one that
  fell due while the server was down fires after the restart;
- a client cancels a pending schedule with a message carrying ``Nats-Schedule-Next: purge``
  and ``Nats-Scheduler: <the schedule's subject>`` (a purge, which the stream allows like
  every stream that allows schedules; the message asking for it stays in the stream); the
  delete API is refused there (deny-delete);
- a schedule's publish takes ``Nats-Expected-Last-Subject-Sequence``: a second schedule on
  the same subject expecting none is refused;
- a repeating schedule (``@every``, cron with seconds and ``Nats-Schedule-Time-Zone``) fires
  on each tick, on the second, naming the next tick in ``Nats-Schedule-Next``, keeps its
  schedule message, and ends when a plain message replaces it on its subject;
- with the timers in a stream of their own (``TIMERS``: schedules, TTLs, atomic batches, one
  message a subject) and a deny-delete, deny-purge log (``LOG``) sourcing its due messages: a
  due reaches the log within 0.1 s of firing, with its body and headers (``Nats-TTL`` from
  ``Nats-Schedule-TTL``, and ``Nats-Stream-Source``); the due expires from the timers stream
  after its TTL but stays in the log, which does not allow TTLs and ignores ``Nats-TTL``;
  schedules written as one atomic batch all fire; a second schedule on a subject replaces the
  first; the stream purge API (filtered on the schedule's subject) cancels a pending one; and
  a pending schedule survives a restart of the server, its due reaching the log after it.
"""

from __future__ import annotations

import asyncio
import base64
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
import pytest
from nats.aio.client import Client

from conveyor_cli.dev.embedded import NatsServer
from support.jetstream import WRONG_LAST_SEQUENCE, api, publish

pytestmark = pytest.mark.integration

STREAM = "SCHEDULES"
TIMERS = "TIMERS"
LOG = "LOG"


async def connect(server: NatsServer) -> Client:
    return await nats.connect(server.url, max_reconnect_attempts=-1, reconnect_time_wait=0.1)


@pytest.fixture
async def client(server: NatsServer) -> AsyncIterator[Client]:
    """A stream that allows schedules and denies delete (purge it cannot deny)."""
    nc = await connect(server)
    config = {
        "name": STREAM,
        "subjects": ["s.>"],
        "storage": "file",
        "allow_msg_schedules": True,
        "deny_delete": True,
    }
    created = await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", config)
    assert "error" not in created, created
    try:
        yield nc
    finally:
        await nc.close()


@pytest.fixture
async def timers(server: NatsServer) -> AsyncIterator[Client]:
    """Conveyor's layout: schedules in ``TIMERS``, their due messages sourced into ``LOG``."""
    nc = await connect(server)
    streams = {
        TIMERS: {
            "name": TIMERS,
            "subjects": ["t.timer.*", "t.due.*.*"],
            "storage": "file",
            "allow_msg_schedules": True,
            "allow_msg_ttl": True,
            "allow_atomic": True,
            "max_msgs_per_subject": 1,
        },
        LOG: {
            "name": LOG,
            "subjects": ["j.>"],
            "storage": "file",
            "deny_delete": True,
            "deny_purge": True,
            "allow_direct": True,
            "sources": [{"name": TIMERS, "filter_subject": "t.due.>"}],
        },
    }
    for name, config in streams.items():
        created = await api(nc, f"$JS.API.STREAM.CREATE.{name}", config)
        assert "error" not in created, created
    try:
        yield nc
    finally:
        await nc.close()


def at(when: datetime) -> str:
    return "@at " + when.strftime("%Y-%m-%dT%H:%M:%SZ")


def at_exactly(when: datetime) -> str:
    """``@at`` to the microsecond (RFC 3339 with a fraction, ``Z``)."""
    return "@at " + when.isoformat(timespec="microseconds").replace("+00:00", "Z")


def next_second(ahead_s: float) -> datetime:
    """A whole second at least ``ahead_s`` from now (cron ticks are on the second)."""
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


async def last(nc: Client, subject: str, stream: str = STREAM) -> Stored | None:
    got = await api(nc, f"$JS.API.STREAM.MSG.GET.{stream}", {"last_by_subj": subject})
    return Stored(got["message"]) if "message" in got else None


async def fired(nc: Client, subject: str, timeout: float, stream: str = STREAM) -> Stored:
    deadline = time.monotonic() + timeout
    while (msg := await last(nc, subject, stream)) is None:
        assert time.monotonic() < deadline, f"nothing fired into {subject} of {stream}"
        await asyncio.sleep(0.05)
    return msg


async def ticks_of(nc: Client, subject: str, stream: str = STREAM) -> list[Stored]:
    out: list[Stored] = []
    seq = 0
    while True:
        got = await api(
            nc, f"$JS.API.STREAM.MSG.GET.{stream}", {"seq": seq + 1, "next_by_subj": subject}
        )
        if "message" not in got:
            return out
        out.append(Stored(got["message"]))
        seq = out[-1].seq


async def until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


async def sleep_until(when: datetime) -> None:
    await asyncio.sleep(max(0.0, (when - datetime.now(UTC)).total_seconds()))


async def test_a_stream_that_allows_schedules_allows_purges_and_roll_ups(
    client: Client,
) -> None:
    """Asked for deny-purge, the server silently drops it and allows roll-ups: Conveyor's
    log (deny delete, deny purge) must not allow schedules; timers live in a stream of their
    own."""
    asked = {
        "name": "ASKED",
        "subjects": ["a.>"],
        "storage": "file",
        "allow_msg_schedules": True,
        "deny_delete": True,
        "deny_purge": True,
    }
    created = await api(client, "$JS.API.STREAM.CREATE.ASKED", asked)
    assert "error" not in created, created
    info = await api(client, "$JS.API.STREAM.INFO.ASKED")
    for config in (created["config"], info["config"]):
        assert config["allow_msg_schedules"] is True
        assert config["deny_delete"] is True
        assert config["deny_purge"] is False
        assert config["allow_rollup_hdrs"] is True
    purged = await api(client, "$JS.API.STREAM.PURGE.ASKED")
    assert purged.get("success") is True, purged


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


async def test_an_at_schedule_with_a_fraction_of_a_second_fires_at_that_instant(
    client: Client,
) -> None:
    """``@at`` keeps sub-second precision: it fires at its instant, not on a whole second."""
    # ~1.4 s ahead, half a second off the whole second: rounding either way misses the window
    due = next_second(0.9) + timedelta(microseconds=502_876)
    sched = {"Nats-Schedule": at_exactly(due), "Nats-Schedule-Target": "s.due.f"}
    ack = await publish(client, "s.sched.f", b"precise", sched)
    assert "error" not in ack, ack
    msg = await fired(client, "s.due.f", timeout=5)
    assert due <= msg.time < due + timedelta(seconds=0.3), msg.time - due


async def test_an_at_schedule_past_2262_fires_at_once(client: Client) -> None:
    """The server keeps a schedule's time as int64 nanoseconds: past 2262 it overflows and
    the schedule fires at once; one in 2200 waits."""
    sent = datetime.now(UTC)
    for year, subject in ((2999, "far"), (2200, "near")):
        sched = {
            "Nats-Schedule": f"@at {year}-01-01T00:00:00Z",
            "Nats-Schedule-Target": f"s.due.{subject}",
        }
        ack = await publish(client, f"s.sched.{subject}", b"", sched)
        assert "error" not in ack, ack
    msg = await fired(client, "s.due.far", timeout=1.5)
    assert msg.time - sent < timedelta(seconds=1)
    await sleep_until(sent + timedelta(seconds=1.5))
    assert await last(client, "s.due.near") is None
    assert await last(client, "s.sched.near") is not None  # still pending


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


async def test_a_client_purge_message_cancels_a_schedule(client: Client) -> None:
    """A ``Nats-Schedule-Next: purge`` message naming the schedule cancels it: a purge, which
    the stream allows (as every stream that allows schedules); the delete API is refused."""
    due = next_second(1)
    sched = {"Nats-Schedule": at(due), "Nats-Schedule-Target": "s.due.c"}
    stored = await publish(client, "s.sched.c", b"cancel me", sched)
    deleted = await api(client, f"$JS.API.STREAM.MSG.DELETE.{STREAM}", {"seq": stored["seq"]})
    assert "error" in deleted  # deny_delete

    purge = {"Nats-Schedule-Next": "purge", "Nats-Scheduler": "s.sched.c"}
    ack = await publish(client, "s.cancel.c", b"", purge)
    assert "error" not in ack, ack
    await sleep_until(due + timedelta(seconds=1.5))
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
    await sleep_until(due + timedelta(seconds=1))
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


async def test_a_due_is_sourced_into_the_log_and_outlives_its_ttl_there(timers: Client) -> None:
    """A due fired into ``TIMERS`` reaches the deny-purge ``LOG`` within 0.1 s, body and
    headers kept; after its TTL it is gone from ``TIMERS`` but not from ``LOG`` (which does
    not allow TTLs, so ignores ``Nats-TTL``); a later due is sourced too."""
    due = datetime.now(UTC) + timedelta(seconds=1.4)
    sched = {
        "Nats-Schedule": at_exactly(due),
        "Nats-Schedule-Target": "t.due.a.high",
        "Nats-Schedule-TTL": "3s",
    }
    ack = await publish(timers, "t.timer.a", b"the job", sched)
    assert "error" not in ack, ack

    fire = await fired(timers, "t.due.a.high", timeout=5, stream=TIMERS)
    copy = await fired(timers, "t.due.a.high", timeout=1, stream=LOG)
    assert timedelta(0) <= copy.time - fire.time < timedelta(seconds=0.1), copy.time - fire.time
    assert copy.data == fire.data == b"the job"
    source = copy.headers.pop("Nats-Stream-Source")
    assert source.startswith(f"{TIMERS} ")
    assert (
        copy.headers
        == fire.headers
        == {
            "Nats-Scheduler": "t.timer.a",
            "Nats-Schedule-Next": "purge",
            "Nats-TTL": "3s",
        }
    )
    assert await last(timers, "t.timer.a", TIMERS) is None  # the schedule is gone once fired
    info = await api(timers, f"$JS.API.STREAM.INFO.{LOG}")
    assert info["config"]["deny_purge"] is True
    assert info["config"]["deny_delete"] is True

    await sleep_until(fire.time + timedelta(seconds=4.5))
    assert await last(timers, "t.due.a.high", TIMERS) is None  # expired
    assert await last(timers, "t.due.a.high", LOG) is not None  # kept

    again = {"Nats-Schedule": "@at 2020-01-01T00:00:00Z", "Nats-Schedule-Target": "t.due.a.high"}
    assert "error" not in await publish(timers, "t.timer.a", b"again", again)
    await fired(timers, "t.due.a.high", timeout=2, stream=TIMERS)
    deadline = time.monotonic() + 1
    while len(copies := await ticks_of(timers, "t.due.a.high", LOG)) < 2:
        assert time.monotonic() < deadline, "the second due was not sourced"
        await asyncio.sleep(0.05)
    assert [c.data for c in copies] == [b"the job", b"again"]


async def test_schedules_written_as_one_atomic_batch_all_fire(timers: Client) -> None:
    """Several schedules committed as one atomic batch are all stored, and each fires."""
    due = datetime.now(UTC) + timedelta(seconds=1)
    batch = "b" + uuid.uuid4().hex
    names = ["b1", "b2", "b3"]

    def member(n: int, name: str) -> dict[str, str]:
        return {
            "Nats-Schedule": at_exactly(due),
            "Nats-Schedule-Target": f"t.due.{name}.high",
            "Nats-Batch-Id": batch,
            "Nats-Batch-Sequence": str(n),
        }

    for n, name in enumerate(names[:-1], start=1):
        await timers.publish(f"t.timer.{name}", name.encode(), headers=member(n, name))
    commit = member(len(names), names[-1]) | {"Nats-Batch-Commit": "1"}
    ack = await publish(timers, f"t.timer.{names[-1]}", names[-1].encode(), commit)
    assert "error" not in ack, ack
    assert ack["count"] == len(names)
    for name in names:
        msg = await fired(timers, f"t.due.{name}.high", timeout=5, stream=TIMERS)
        assert msg.data == name.encode()


async def test_a_second_schedule_on_a_subject_replaces_the_first(timers: Client) -> None:
    """Only the latest schedule on a subject fires, once, and none is left behind."""
    first = {"Nats-Schedule": at(next_second(30)), "Nats-Schedule-Target": "t.due.r.high"}
    assert "error" not in await publish(timers, "t.timer.r", b"first", first)
    due = datetime.now(UTC) + timedelta(seconds=1)
    second = {"Nats-Schedule": at_exactly(due), "Nats-Schedule-Target": "t.due.r.high"}
    assert "error" not in await publish(timers, "t.timer.r", b"second", second)

    msg = await fired(timers, "t.due.r.high", timeout=5, stream=TIMERS)
    assert msg.data == b"second"
    await asyncio.sleep(1)
    assert [c.data for c in await ticks_of(timers, "t.due.r.high", LOG)] == [b"second"]
    assert await last(timers, "t.timer.r", TIMERS) is None  # the first is not pending


async def test_the_purge_api_cancels_a_pending_schedule(timers: Client) -> None:
    """``$JS.API.STREAM.PURGE`` filtered on a schedule's subject removes it: it never fires."""
    due = datetime.now(UTC) + timedelta(seconds=1)
    sched = {"Nats-Schedule": at_exactly(due), "Nats-Schedule-Target": "t.due.x.high"}
    assert "error" not in await publish(timers, "t.timer.x", b"cancel me", sched)
    purged = await api(timers, f"$JS.API.STREAM.PURGE.{TIMERS}", {"filter": "t.timer.x"})
    assert purged.get("success") is True and purged["purged"] == 1, purged
    await sleep_until(due + timedelta(seconds=1.5))
    assert await last(timers, "t.due.x.high", TIMERS) is None
    assert await last(timers, "t.due.x.high", LOG) is None


async def test_a_pending_schedule_survives_a_restart_and_its_due_reaches_the_log(
    server: NatsServer, timers: Client
) -> None:
    """A schedule still pending across a restart of nats-server fires after it, and the log
    sources its due."""
    due = datetime.now(UTC) + timedelta(seconds=2.5)
    sched = {"Nats-Schedule": at_exactly(due), "Nats-Schedule-Target": "t.due.p.high"}
    assert "error" not in await publish(timers, "t.timer.p", b"kept", sched)
    server.stop()
    await until(lambda: not timers.is_connected)  # the client saw it go
    server.start()
    await until(lambda: timers.is_connected)
    assert datetime.now(UTC) < due  # restarted while the schedule was pending
    assert await last(timers, "t.timer.p", TIMERS) is not None

    copy = await fired(timers, "t.due.p.high", timeout=5, stream=LOG)
    assert copy.data == b"kept"
    assert copy.time >= due
