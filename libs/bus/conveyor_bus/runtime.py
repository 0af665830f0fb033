"""Running a service's event loop (uvloop when installed) and waiting for NATS at start-up."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from nats.aio.client import Client

from conveyor_bus import logs
from conveyor_bus.connection import connect
from conveyor_bus.errors import BusUnavailable
from conveyor_bus.logs import LogFormat
from conveyor_bus.redact import redact
from conveyor_bus.settings import BusSettings
from conveyor_bus.topology import LayoutError, ensure_topology

log = logging.getLogger("conveyor.bus")

EXIT_LAYOUT = 78
"""A service's exit status when the log is of another layout (EX_CONFIG)."""
TOPOLOGY_WAIT_S = 60.0
"""How long a starting service waits for JetStream to answer its topology requests (an
election in a cluster takes seconds: docs/performance.md) before it gives up."""


def run(main: Coroutine[Any, Any, None]) -> None:
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
        return
    uvloop.run(main)


def configure_logging(level: str, fmt: LogFormat = "text") -> None:
    """Lines of ``fmt`` (``CONVEYOR_LOG_FORMAT``: text, or one JSON object a line)."""
    logs.configure(level, fmt)


async def connect_when_ready(
    url: str,
    name: str,
    timeout_s: float = 60.0,
    on_reconnect: Callable[[Client], Coroutine[Any, Any, None]] | None = None,
) -> Client:
    """Connect, waiting for the server to come up (a service may start before NATS)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            return await connect(url, name, on_reconnect=on_reconnect)
        except Exception as e:
            if loop.time() > deadline:
                raise
            log.warning("waiting for NATS at %s: %s", redact(url), e)
            await asyncio.sleep(0.5)


async def bootstrap(settings: BusSettings, name: str) -> Client:
    """Connect (waiting for NATS) and create whatever of the topology is missing, again after
    every reconnect: a server that restarted has lost its memory streams (worker presence),
    and a new server has nothing at all."""

    async def topology(nc: Client) -> None:
        await ensure_topology(
            nc,
            ack_wait_s=settings.ack_wait_s,
            worker_ttl_s=settings.worker_ttl_s,
            replicas=settings.replicas,
        )

    async def restore(nc: Client) -> None:
        delay = 0.1
        while not nc.is_closed:
            try:
                await topology(nc)
                return
            except Exception as e:  # any failure: try again, never give up
                log.warning("restoring the topology after a reconnect: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    nc = await connect_when_ready(settings.nats_url, name, on_reconnect=restore)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + TOPOLOGY_WAIT_S
    delay = 0.2
    while True:
        try:
            await topology(nc)
            return nc
        except LayoutError as e:
            # a log this version must not write to: say what to do, and do not start
            log.error("%s", e)
            await nc.close()
            raise SystemExit(EXIT_LAYOUT) from e
        except BusUnavailable as e:
            # connected, but JetStream does not answer yet: a cluster electing its leaders
            # (a start beside a restarted node), a server still recovering its streams
            if loop.time() + delay > deadline:
                await nc.close()
                raise
            log.warning("waiting for JetStream to answer: %s", e)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)


def stop_on_signals() -> asyncio.Event:
    """An event set by SIGTERM or SIGINT (graceful shutdown), installed first thing."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop
