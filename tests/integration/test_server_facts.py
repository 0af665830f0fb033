"""What Conveyor's layout relies on, checked against the pinned nats-server (2.15.1).

If an upgrade changes one of these, this module fails first, and says which fact broke:

- ``Nats-Expected-Last-Subject-Sequence`` checked against a wildcard with
  ``Nats-Expected-Last-Subject-Sequence-Subject``: every append to a job is checked against
  its last event on any of its subjects (a stale append and a second submission refused);
- a direct get ``last_by_subj`` and ``next_by_subj`` take that wildcard too;
- a consumer filtered on ``conveyor.job.*.*.<priority>`` gets the runnable events of that
  priority straight from the log, and nothing else;
- a ``no_wait`` pull request ends with a 404 status when it got fewer messages than asked
  for, and without a status when it got all of them (the worker's probe of the high queue);
- a sealed stream refuses every write; stream metadata round-trips;
- a batched direct get is chained: each message names the sequence of the one sent before it
  in ``Nats-Last-Sequence`` (0 for the first), and the end-of-batch names the last one (the
  getter's check that no reply was lost);
- a delayed nak holds a message for the whole delay, also past the ack wait, and with
  ``max_ack_pending: -1`` any number of held messages leaves the next one deliverable;
- a nak delay that ends past what int64 nanoseconds hold (year 2262) is a plain nak: the
  message comes back at once (why a hold is capped at a year, ``MAX_HOLD_S``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from conveyor_bus import connect
from conveyor_worker.delivery import MAX_HOLD_S
from support.jetstream import WRONG_LAST_SEQUENCE, api, publish

pytestmark = pytest.mark.integration

STREAM = "FACTS"


def expect(job: str, seq: int) -> dict[str, str]:
    return {
        "Nats-Expected-Last-Subject-Sequence": str(seq),
        "Nats-Expected-Last-Subject-Sequence-Subject": f"facts.job.{job}.>",
    }


@pytest.fixture
async def client(nats_url: str) -> AsyncIterator[Client]:
    nc = await connect(nats_url, "test-server-facts")
    config = {
        "name": STREAM,
        "subjects": ["facts.job.*.*", "facts.job.*.*.*"],
        "storage": "file",
        "allow_direct": True,
        "allow_atomic": True,
        "metadata": {"conveyor_layout": "2"},
    }
    created = await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", config)
    assert "error" not in created, created
    try:
        yield nc
    finally:
        await api(nc, f"$JS.API.STREAM.DELETE.{STREAM}")
        await nc.close()


async def test_appends_are_checked_against_the_last_event_on_any_of_the_jobs_subjects(
    client: Client,
) -> None:
    first = await publish(client, "facts.job.A.submitted.high", b"s", expect("A", 0))
    assert first["seq"] == 1
    again = await publish(client, "facts.job.A.submitted.high", b"s", expect("A", 0))
    assert again["error"]["err_code"] == WRONG_LAST_SEQUENCE  # a second submission
    started = await publish(client, "facts.job.A.started", b"st", expect("A", 1))
    assert started["seq"] == 2
    stale = await publish(client, "facts.job.A.completed", b"c", expect("A", 1))
    assert stale["error"]["err_code"] == WRONG_LAST_SEQUENCE  # on another subject of A
    other = await publish(client, "facts.job.B.submitted.regular", b"s", expect("B", 0))
    assert other["seq"] == 3  # another job's events do not count
    done = await publish(client, "facts.job.A.completed", b"c", expect("A", 2))
    assert done["seq"] == 4


async def test_direct_gets_take_the_jobs_wildcard(client: Client) -> None:
    for subject, seq in [("submitted.regular", 0), ("started", 1), ("completed", 2)]:
        await publish(client, f"facts.job.C.{subject}", b"x", expect("C", seq))
    last = await client.request(
        f"$JS.API.DIRECT.GET.{STREAM}", json.dumps({"last_by_subj": "facts.job.C.>"}).encode()
    )
    assert last.headers is not None
    assert (last.headers["Nats-Sequence"], last.headers["Nats-Subject"]) == (
        "3",
        "facts.job.C.completed",
    )
    missing = await client.request(
        f"$JS.API.DIRECT.GET.{STREAM}", json.dumps({"last_by_subj": "facts.job.Z.>"}).encode()
    )
    assert missing.headers is not None and missing.headers["Status"] == "404"
    inbox = client.new_inbox()
    got: list[Msg] = []
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        got.append(msg)
        if msg.headers and msg.headers.get("Status"):
            done.set()

    await client.subscribe(inbox, cb=on_msg)
    request = {"seq": 1, "next_by_subj": "facts.job.C.>", "batch": 10}
    await client.publish(f"$JS.API.DIRECT.GET.{STREAM}", json.dumps(request).encode(), reply=inbox)
    await asyncio.wait_for(done.wait(), 5)
    assert [m.data for m in got[:-1]] == [b"x", b"x", b"x"]


async def pull(
    nc: Client, consumer: str, body: dict[str, Any], wait_s: float = 0.5
) -> list[tuple[str | None, bytes]]:
    """One pull request: (status or None, data) of everything that answered it."""
    inbox = nc.new_inbox()
    got: list[tuple[str | None, bytes]] = []

    async def on_msg(msg: Msg) -> None:
        got.append((msg.headers.get("Status") if msg.headers else None, msg.data))

    sub = await nc.subscribe(inbox, cb=on_msg)
    next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{STREAM}.{consumer}"
    await nc.publish(next_subject, json.dumps(body).encode(), reply=inbox)
    await asyncio.sleep(wait_s)
    await sub.unsubscribe()
    return got


async def test_a_consumer_reads_the_runnable_events_of_one_priority_from_the_log(
    client: Client,
) -> None:
    config = {"durable_name": "high", "filter_subject": "facts.job.*.*.high"}
    created = await api(
        client,
        f"$JS.API.CONSUMER.CREATE.{STREAM}.high",
        {"stream_name": STREAM, "config": {**config, "ack_policy": "explicit"}},
    )
    assert "error" not in created, created
    await publish(client, "facts.job.D.submitted.high", b"d-submitted", expect("D", 0))
    await publish(client, "facts.job.D.started", b"d-started", expect("D", 1))
    await publish(client, "facts.job.E.submitted.regular", b"e-submitted", expect("E", 0))
    await publish(client, "facts.job.D.failed.high", b"d-retry", expect("D", 2))
    await publish(client, "facts.job.F.failed", b"f-failed", expect("F", 0))

    answered = await pull(client, "high", {"batch": 10, "no_wait": True})

    assert answered == [(None, b"d-submitted"), (None, b"d-retry"), ("404", b"")]


async def test_a_no_wait_request_says_when_the_queue_ran_dry(client: Client) -> None:
    config = {"durable_name": "probe", "filter_subject": "facts.job.*.*.high"}
    await api(
        client,
        f"$JS.API.CONSUMER.CREATE.{STREAM}.probe",
        {"stream_name": STREAM, "config": {**config, "ack_policy": "explicit"}},
    )
    assert await pull(client, "probe", {"batch": 4, "no_wait": True}) == [("404", b"")]
    for job in "GH":
        await publish(client, f"facts.job.{job}.submitted.high", job.encode(), expect(job, 0))

    assert await pull(client, "probe", {"batch": 1, "no_wait": True}) == [(None, b"G")]  # full
    assert await pull(client, "probe", {"batch": 4, "no_wait": True}) == [
        (None, b"H"),
        ("404", b""),
    ]


async def test_a_sealed_stream_refuses_writes_and_metadata_round_trips(client: Client) -> None:
    info = await api(client, f"$JS.API.STREAM.INFO.{STREAM}")
    assert info["config"]["metadata"]["conveyor_layout"] == "2"
    sealed = await api(
        client, f"$JS.API.STREAM.UPDATE.{STREAM}", {**info["config"], "sealed": True}
    )
    assert sealed["config"]["sealed"] is True

    refused = await publish(client, "facts.job.I.submitted.high", b"i", expect("I", 0))

    assert "sealed" in refused["error"]["description"]


async def test_a_batched_direct_get_is_chained_by_sequence(client: Client) -> None:
    for job in "JKL":
        await publish(client, f"facts.job.{job}.submitted.high", b"x", expect(job, 0))
    await publish(client, "facts.job.K.started", b"y", expect("K", 2))
    inbox = client.new_inbox()
    got: list[dict[str, str]] = []
    done = asyncio.Event()

    async def on_msg(msg: Msg) -> None:
        got.append(dict(msg.headers or {}))
        if msg.headers and msg.headers.get("Status"):
            done.set()

    await client.subscribe(inbox, cb=on_msg)
    request = {"seq": 2, "next_by_subj": "facts.job.*.>", "batch": 10}
    await client.publish(f"$JS.API.DIRECT.GET.{STREAM}", json.dumps(request).encode(), reply=inbox)
    await asyncio.wait_for(done.wait(), 5)

    *msgs, end = got
    assert [(m["Nats-Sequence"], m["Nats-Last-Sequence"]) for m in msgs] == [
        ("2", "0"),
        ("3", "2"),
        ("4", "3"),
    ]
    assert [m["Nats-Num-Pending"] for m in msgs] == ["2", "1", "0"]
    assert (end["Status"], end["Nats-Last-Sequence"], end["Nats-Num-Pending"]) == ("204", "4", "0")


async def test_a_delayed_nak_holds_past_the_ack_wait_and_held_messages_do_not_block(
    client: Client,
) -> None:
    config = {
        "durable_name": "held",
        "filter_subject": "facts.job.*.*.high",
        "ack_policy": "explicit",
        "ack_wait": 500_000_000,  # 0.5 s
        "max_ack_pending": -1,
    }
    created = await api(
        client, f"$JS.API.CONSUMER.CREATE.{STREAM}.held", {"stream_name": STREAM, "config": config}
    )
    assert "error" not in created, created
    assert created["config"]["max_ack_pending"] == -1
    for job in "MNP":
        await publish(client, f"facts.job.{job}.submitted.high", job.encode(), expect(job, 0))
    sub = await client.jetstream().pull_subscribe_bind("held", STREAM)
    first = await sub.fetch(2, timeout=2)
    for msg in first:
        await msg.nak(delay=2.0)  # four ack waits

    [due] = await sub.fetch(1, timeout=2)  # the held ones do not stand in its way
    assert due.data == b"P"
    await due.ack()
    with pytest.raises(asyncio.TimeoutError):
        await sub.fetch(1, timeout=1.2)  # past two ack waits: still held
    again = await sub.fetch(2, timeout=3)
    assert sorted(m.data for m in again) == [b"M", b"N"]


async def test_a_nak_delay_past_the_year_2262_is_a_plain_nak(client: Client) -> None:
    config = {
        "durable_name": "far",
        "filter_subject": "facts.job.*.*.high",
        "ack_policy": "explicit",
        "ack_wait": 30_000_000_000,
        "max_ack_pending": -1,
    }
    created = await api(
        client, f"$JS.API.CONSUMER.CREATE.{STREAM}.far", {"stream_name": STREAM, "config": config}
    )
    assert "error" not in created, created
    for job in "MN":
        await publish(client, f"facts.job.{job}.submitted.high", job.encode(), expect(job, 0))
    sub = await client.jetstream().pull_subscribe_bind("far", STREAM)
    held, overflowing = await sub.fetch(2, timeout=2)
    await held.nak(delay=MAX_HOLD_S)
    await overflowing.nak(delay=300 * 365 * 24 * 3600.0)  # 9.5e18 ns: more than int64 holds
    [again] = await sub.fetch(1, timeout=2)
    assert again.data == overflowing.data
    await again.ack()
    with pytest.raises(asyncio.TimeoutError):
        await sub.fetch(1, timeout=1)  # the capped one stays held
