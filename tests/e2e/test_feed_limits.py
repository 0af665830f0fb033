"""The notifier's connections are bounded (issue 10, defect 7): past ``max_clients`` open
websockets, or ``max_clients_per_address`` from one client address, a new one is closed with
1013 (try again later) and counted by reason, while the admitted ones keep getting every
event; a slot freed lets the next one in. A real notifier process on real NATS; the client
addresses are real too (127.0.0.1, 127.0.0.2, ...: all of 127/8 is this machine)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import websockets
from nats.aio.client import Client
from websockets.asyncio.client import ClientConnection
from websockets.exceptions import ConnectionClosed

from conveyor_bus import JetStreamEventStore
from conveyor_events import CommandHandler, SubmitJob
from support.notifier import notifier as run_notifier
from support.system import scrape

pytestmark = pytest.mark.e2e

MAX_CLIENTS = 4
PER_ADDRESS = 2


@pytest.fixture(scope="module")
def notifier(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with run_notifier(
        nats_url,
        tmp_path_factory.mktemp("notifier"),
        CONVEYOR_MAX_CLIENTS=str(MAX_CLIENTS),
        CONVEYOR_MAX_CLIENTS_PER_ADDRESS=str(PER_ADDRESS),
    ) as port:
        yield port


def refused(port: int, reason: str) -> float:
    return scrape(f"http://127.0.0.1:{port}/metrics", "conveyor_ws_refused_total", reason=reason)


async def open_from(port: int, address: str) -> ClientConnection:
    return await websockets.connect(f"ws://127.0.0.1:{port}/ws", local_addr=(address, 0))


async def closed_1013(ws: ClientConnection) -> str:
    """The reason of the 1013 close the server sends at once."""
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(ws.recv(), 10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1013, closed.value
    return closed.value.rcvd.reason


async def all_get_the_next_event(nc: Client, clients: list[ClientConnection], n: int) -> None:
    job_id = f"01JDQ5N3X8W4Y6Z7A9B2C3D{n:03d}"
    await CommandHandler(JetStreamEventStore(nc)).submit(
        [SubmitJob(job_id=job_id, now=datetime.now(UTC), actor="user:t", type="noop")]
    )
    for ws in clients:
        assert json.loads(await asyncio.wait_for(ws.recv(), 10))["job_id"] == job_id


async def test_past_either_cap_a_websocket_is_closed_1013_and_counted(
    nc: Client, notifier: int
) -> None:
    first = [await open_from(notifier, "127.0.0.1") for _ in range(PER_ADDRESS)]
    await asyncio.sleep(0.2)  # registered

    one_too_many = await open_from(notifier, "127.0.0.1")
    reason = await closed_1013(one_too_many)
    assert reason.startswith(f"busy: {PER_ADDRESS} clients from your address")
    assert "max_clients_per_address" in reason
    assert refused(notifier, "max_clients_per_address") == 1

    others = [await open_from(notifier, "127.0.0.2") for _ in range(MAX_CLIENTS - PER_ADDRESS)]
    await asyncio.sleep(0.2)
    full = await open_from(notifier, "127.0.0.3")  # a fresh address, but no room at all
    reason = await closed_1013(full)
    assert reason.startswith(f"busy: {MAX_CLIENTS} clients are connected (max_clients)")
    assert refused(notifier, "max_clients") == 1

    await all_get_the_next_event(nc, first + others, 1)

    await first.pop().close()  # a slot frees: the next one is served
    await asyncio.sleep(0.2)
    again = await open_from(notifier, "127.0.0.1")
    await all_get_the_next_event(nc, [*first, *others, again], 2)
    for ws in [*first, *others, again]:
        await ws.close()
