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

    ``url`` is one server's URL or a comma-separated list of them, the nodes of a cluster:
    the client connects to one and, when it is lost, to another (:func:`server_urls`).
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
        servers=server_urls(url),
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


def server_urls(url: str) -> list[str]:
    """The servers named by ``NATS_URL``: one URL, or several separated by commas.

    nats-py takes a list for a cluster; a single string holding commas would be parsed as one
    URL. Each URL carries its own credentials (the client logs in to each server with those of
    its URL)."""
    urls = [part.strip() for part in url.split(",") if part.strip()]
    if not urls:
        raise ValueError("NATS_URL names no server: give one URL or several separated by commas")
    return urls


def require_connected(nc: Client) -> None:
    """Fail at once while the client is away from the server.

    nats-py buffers what is published while it reconnects and sends it when the server is
    back, so a request made during an outage would wait for its timeout and might still be
    written after the caller was told it failed. Refusing it here answers "unavailable" at
    once and leaves nothing behind to be written later.
    """
    if not nc.is_connected:
        raise BusUnavailable("not connected to NATS (reconnecting)")
