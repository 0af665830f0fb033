"""Connecting to NATS: reconnect forever, log state changes."""

from __future__ import annotations

import logging

import nats
from nats.aio.client import Client

log = logging.getLogger("conveyor.bus")


async def connect(url: str, name: str, *, connect_timeout: float = 5.0) -> Client:
    """A NATS connection that never gives up reconnecting (the client's default does)."""

    async def on_error(e: Exception) -> None:
        log.warning("nats error: %s", e)

    async def on_disconnect() -> None:
        log.info("nats disconnected")

    async def on_reconnect() -> None:
        log.info("nats reconnected")

    return await nats.connect(
        url,
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=connect_timeout,
        allow_reconnect=True,
        error_cb=on_error,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        pending_size=64 * 1024 * 1024,
    )
