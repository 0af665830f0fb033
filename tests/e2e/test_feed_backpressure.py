"""A client that stops reading is disconnected with 1013; the others get every event."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import socket
from collections.abc import Iterator
from datetime import UTC, datetime

import httpx
import pytest
import websockets
from nats.aio.client import Client

from conveyor_bus import JetStreamEventStore
from conveyor_events import CommandHandler, SubmitJob
from conveyor_notifier.app import SLOW_CLIENT_CLOSE_S
from support.notifier import notifier as run_notifier

pytestmark = pytest.mark.e2e

BUFFER = 1000
EVENTS = 10_000


@pytest.fixture(scope="module")
def notifier(nats_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    with run_notifier(
        nats_url, tmp_path_factory.mktemp("notifier"), CONVEYOR_CLIENT_BUFFER=str(BUFFER)
    ) as port:
        yield port


def stalled_client(port: int) -> socket.socket:
    """A websocket client that completes the handshake and then never reads."""
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)
    assert head.startswith(b"HTTP/1.1 101"), head
    return sock


def frames(data: bytes) -> list[tuple[int, bytes]]:
    """(opcode, payload) of each unmasked server frame in ``data``."""
    out, i = [], 0
    while i + 2 <= len(data):
        opcode, length = data[i] & 0x0F, data[i + 1] & 0x7F
        i += 2
        if length == 126:
            length, i = int.from_bytes(data[i : i + 2], "big"), i + 2
        elif length == 127:
            length, i = int.from_bytes(data[i : i + 8], "big"), i + 8
        out.append((opcode, data[i : i + length]))
        i += length
    return out


async def test_a_stalled_client_is_closed_with_1013_and_others_get_everything(
    nc: Client, notifier: int
) -> None:
    stalled = stalled_client(notifier)
    reader = await websockets.connect(f"ws://127.0.0.1:{notifier}/ws")
    seqs: list[int] = []

    async def read() -> None:  # a client that keeps reading while the events are written
        while len(seqs) < EVENTS:
            seqs.append(json.loads(await reader.recv())["seq"])

    reading = asyncio.create_task(read())
    store = CommandHandler(JetStreamEventStore(nc))
    now = datetime.now(UTC)
    for batch in range(EVENTS // 100):
        await store.submit(
            [
                SubmitJob(job_id=f"01BP{batch:04d}{n:018d}", now=now, actor="user:t", type="noop")
                for n in range(100)
            ]
        )
    async with asyncio.timeout(30):
        await reading
    assert seqs == sorted(set(seqs)) and len(seqs) == EVENTS
    await reader.close()

    # the stalled client reads only well after the notifier gave up on it: what reached it,
    # some events, then the 1013 close frame
    await asyncio.sleep(SLOW_CLIENT_CLOSE_S + 1)
    stalled.settimeout(10)
    data = b""
    while chunk := stalled.recv(1 << 16):
        data += chunk
    stalled.close()
    received = frames(data)
    texts = [payload for opcode, payload in received if opcode == 1]
    opcode, payload = received[-1]
    assert opcode == 8 and int.from_bytes(payload[:2], "big") == 1013, received[-1]
    assert 0 < len(texts) < EVENTS
    async with httpx.AsyncClient() as http:
        metrics = (await http.get(f"http://127.0.0.1:{notifier}/metrics")).text
    assert "conveyor_ws_slow_disconnects_total 1.0" in metrics


async def test_bad_query_is_refused_with_1008(notifier: int) -> None:
    for query in ("since=-1", "since=abc", "job_id=nope"):
        async with websockets.connect(f"ws://127.0.0.1:{notifier}/ws?{query}") as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == 1008
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"http://127.0.0.1:{notifier}/nope")).status_code == 404
