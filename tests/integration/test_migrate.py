"""``conveyor migrate`` from layout 1 (conveyor_bus/migrate.py) on a real server: services
refuse an old log and say what to do; the copy keeps every event and key in order, leaves the
run commands behind, resumes after an interruption, refuses while old services read, and seals
the old stream."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from conveyor_bus import DirectGetter, JetStreamEventStore, connect, ensure_topology
from conveyor_bus.migrate import _Copier, mark_migrated, migrate_layout, needs_migration
from conveyor_bus.topology import (
    MIGRATING,
    LayoutError,
    api_request,
    check_layout,
    event_log_config,
    run_consumer_config,
    stream_info,
)
from conveyor_cli.dev.embedded import NatsServer
from conveyor_events import decode_event, encode_event, fold, names
from conveyor_events import testing as ev
from support.legacy import STREAM as LEGACY
from support.legacy import LegacyLog, write_legacy_log

pytestmark = pytest.mark.integration


@pytest.fixture
async def client(server: NatsServer) -> AsyncIterator[Client]:
    nc = await connect(server.url, "migrate-test")
    try:
        yield nc
    finally:
        await nc.close()


def expected(log: LegacyLog) -> list[tuple[str, bytes, int]]:
    """The copy: (layout-2 subject, data, old sequence) of every message but run commands."""
    out = []
    for seq, (subject, data) in enumerate(log.messages, 1):
        if subject.startswith("conveyor.run."):
            continue
        token = subject.rsplit(".", 1)[-1]
        if subject.startswith("conveyor.idempotency."):
            out.append((f"conveyor.key.{token}", data, seq))
            continue
        try:
            event = decode_event(data)
        except Exception:
            out.append((f"conveyor.job.{token}.unreadable", data, seq))
            continue
        short = event.name.removeprefix("job.")
        high = token == "01JEGACY000000000000000002"
        lane = "" if short not in ("submitted", "failed") else (".high" if high else ".regular")
        out.append((f"conveyor.job.{token}.{short}{lane}", data, seq))
    return out


async def copied(nc: Client) -> list[tuple[str, bytes, int]]:
    info = await stream_info(nc, names.STREAM)
    assert info is not None
    js = nc.jetstream()
    out = []
    for seq in range(1, int(info["state"]["last_seq"]) + 1):
        msg = await js.get_msg(names.STREAM, seq=seq)
        headers = msg.headers or {}
        out.append((str(msg.subject), msg.data or b"", int(headers[names.HEADER_MIGRATED_SEQ])))
    return out


async def test_services_refuse_an_old_log_and_say_to_migrate(client: Client) -> None:
    await write_legacy_log(client)

    with pytest.raises(LayoutError, match="conveyor migrate"):
        await ensure_topology(client)

    assert await stream_info(client, names.STREAM) is None  # nothing was created beside it
    assert await needs_migration(client)


async def test_the_copy_keeps_every_event_and_key_in_order_and_seals_the_old_log(
    client: Client,
) -> None:
    log = await write_legacy_log(client)

    migrated = await migrate_layout(client)

    commands = sum(subject.startswith("conveyor.run.") for subject, _ in log.messages)
    assert (migrated.copied, migrated.left_behind) == (len(expected(log)), commands)
    assert await copied(client) == expected(log)
    with pytest.raises(LayoutError, match="has not finished"):  # until the read model is rebuilt
        await check_layout(client)
    await mark_migrated(client, migrated.last_legacy_seq)
    assert await check_layout(client) and not await needs_migration(client)
    await ensure_topology(client)  # the services' start-up: consumers on the copied log
    sealed = json.loads((await client.request("conveyor.events.X", b"{}", timeout=5)).data)
    assert "sealed" in sealed["error"]["description"]
    store = JetStreamEventStore(client)
    for job_id, status in log.jobs.items():
        state = (await store.load(job_id)).state
        assert state is not None
        assert ("deleted" if state.deleted else state.status) == status, job_id
    assert fold(e.event for e in await store.history(log.poison_job)) is not None
    assert await store.key_owner(log.key) == log.keyed_job
    # the runnable events of the jobs still to run are on the work queues
    depth = await DirectGetter(client).all_by_subject(names.STREAM, names.runnable_subjects("high"))
    assert [m.subject for m in depth] == ["conveyor.job.01JEGACY000000000000000002.submitted.high"]


async def test_an_interrupted_copy_resumes_after_its_last_message(client: Client) -> None:
    log = await write_legacy_log(client)
    config = event_log_config(1, {names.MIGRATED_FROM_KEY: MIGRATING})
    await api_request(client, f"$JS.API.STREAM.CREATE.{names.STREAM}", config)
    await _Copier(client).copy(1, 9, None)  # the first run stopped here
    assert len(await copied(client)) < len(expected(log))

    await migrate_layout(client)

    assert await copied(client) == expected(log)


async def test_no_copy_while_an_old_worker_waits_on_the_old_queues(client: Client) -> None:
    await write_legacy_log(client)
    inbox = client.new_inbox()

    async def ignore(_: Msg) -> None:
        return None

    await client.subscribe(inbox, cb=ignore)
    request = {"batch": 100, "expires": 10 * 10**9}  # more than is queued: it waits
    next_msg = f"$JS.API.CONSUMER.MSG.NEXT.{LEGACY}.worker-high"
    await client.publish(next_msg, json.dumps(request).encode(), reply=inbox)
    await asyncio.sleep(0.2)

    with pytest.raises(LayoutError, match="still read"):
        await migrate_layout(client)

    assert await stream_info(client, names.STREAM) is None


async def test_a_layout_2_log_is_refused_then_upgraded_in_place_keeping_every_message(
    client: Client,
) -> None:
    """Layout 3 adds the timers (ADR 14): the log sources their due messages and the run
    consumers read them. A layout-2 log is upgraded in place by ``conveyor migrate``
    (``ensure_topology(update=True)``), no copy; services refuse it until then."""
    old = event_log_config()
    del old["sources"]
    old["metadata"] = {names.LAYOUT_KEY: "2"}
    await api_request(client, f"$JS.API.STREAM.CREATE.{names.STREAM}", old)
    for priority in names.PRIORITIES:
        config = run_consumer_config(priority, 30.0)
        del config["filter_subjects"]
        config["filter_subject"] = names.runnable_subjects(priority)
        await api_request(
            client,
            f"$JS.API.CONSUMER.CREATE.{names.STREAM}.{config['durable_name']}",
            {"stream_name": names.STREAM, "config": config},
        )
    # a layout-2 job due later: on its work queue, held by a delayed nak (ADR 10)
    far = datetime(2999, 1, 1, tzinfo=UTC)
    waiting = encode_event(ev.submitted(job="01JEGACY000000000000000009", run_at=far))
    await client.jetstream().publish(
        names.event_subject("01JEGACY000000000000000009", "job.submitted", "regular"), waiting
    )

    with pytest.raises(LayoutError, match="conveyor migrate"):
        await ensure_topology(client)
    await ensure_topology(client, update=True)

    info = await stream_info(client, names.STREAM)
    assert info is not None
    assert info["config"]["metadata"][names.LAYOUT_KEY] == names.LAYOUT
    assert info["config"]["deny_purge"] and info["config"]["deny_delete"]
    assert [s["name"] for s in info["config"]["sources"]] == [names.TIMERS_STREAM]
    assert info["state"]["messages"] == 1
    assert await stream_info(client, names.TIMERS_STREAM) is not None
    for priority in names.PRIORITIES:
        consumer = await api_request(
            client, f"$JS.API.CONSUMER.INFO.{names.STREAM}.{names.run_consumer(priority)}"
        )
        assert consumer["config"]["filter_subjects"] == [
            names.runnable_subjects(priority),
            names.due_subjects(priority),
        ]
    assert await check_layout(client)  # services start on it now
    store = JetStreamEventStore(client)
    loaded = await store.load("01JEGACY000000000000000009")
    assert loaded.state is not None and loaded.state.status == "pending"
