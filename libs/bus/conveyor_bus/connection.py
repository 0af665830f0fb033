"""Connecting to NATS: reconnect forever, log state changes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import nats
from nats.aio.client import Client

from conveyor_bus import natsheaders
from conveyor_bus.errors import BusUnavailable

log = logging.getLogger("conveyor.bus")


async def connect(
    url: str,
    name: str,
    *,
    connect_timeout: float = 5.0,
    on_reconnect: Callable[[Client], Coroutine[Any, Any, None]] | None = None,
) -> Client:
    """A NATS connection that never gives up reconnecting (the client's default does).

    ``on_reconnect`` runs as a task of its own after every reconnect (e.g. to restore the
    topology of a server that restarted)."""
    tasks: set[asyncio.Task[None]] = set()
    client: list[Client] = []

    async def on_error(e: Exception) -> None:
        log.warning("nats error: %s", e)

    async def on_disconnect() -> None:
        log.info("nats disconnected")

    async def on_reconnected() -> None:
        log.info("nats reconnected")
        if on_reconnect is not None and client:
            task = asyncio.create_task(on_reconnect(client[0]), name="on-reconnect")
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    natsheaders.install()
    nc = await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnected,
        pending_size=64 * 1024 * 1024,
    )
    client.append(nc)
    return nc


def require_connected(nc: Client) -> None:
    """Fail at once while the client is away from the server.

    nats-py buffers what is published while it reconnects and sends it when the server is
    back, so a request made during an outage would wait for its timeout and might still be
    written after the caller was told it failed. Refusing it here answers "unavailable" at
    once and leaves nothing behind to be written later.
    """
    if not nc.is_connected:
        raise BusUnavailable("not connected to NATS (reconnecting)")
