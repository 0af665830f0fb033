"""The notifier's composition root: ``GET /ws``, health and metrics."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Query, Response, WebSocket, WebSocketDisconnect
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from conveyor_bus import BusError, ensure_topology
from conveyor_bus.runtime import connect_when_ready
from conveyor_notifier.hub import Hub, Overflow
from conveyor_notifier.settings import Settings

log = logging.getLogger("conveyor.notifier")

_JOB_ID = re.compile(r"^[0-9A-Z]{26}$")
TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008


def create_app(settings: Settings) -> FastAPI:
    registry = CollectorRegistry()
    connections = Gauge("conveyor_ws_connections", "Open websocket connections", registry=registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await connect_when_ready(settings.nats_url, "conveyor-notifier")
        await ensure_topology(
            nc,
            ack_wait_s=settings.ack_wait_s,
            worker_ttl_s=settings.worker_ttl_s,
            replicas=settings.replicas,
        )
        hub = Hub(nc, settings.client_buffer)
        await hub.start()
        app.state.hub = hub
        try:
            yield
        finally:
            await hub.stop()
            with contextlib.suppress(Exception):
                await nc.close()

    app = FastAPI(title="Conveyor notifier", lifespan=lifespan)

    @app.websocket("/ws")
    async def ws(
        websocket: WebSocket,
        job_id: str | None = Query(None),
        since: str | None = Query(None),
    ) -> None:
        await websocket.accept()
        problem = _check(job_id, since)
        if problem:
            await websocket.close(code=POLICY_VIOLATION, reason=problem)
            return
        hub: Hub = app.state.hub
        try:
            client = await hub.connect(job_id, int(since) if since is not None else None)
        except Overflow:
            await websocket.close(
                code=TRY_AGAIN_LATER, reason="replay too large; use a later since"
            )
            return
        except BusError:
            await websocket.close(code=TRY_AGAIN_LATER, reason="event log unavailable")
            return
        connections.inc()
        receiver = asyncio.create_task(_drain_incoming(websocket))
        try:
            while not receiver.done():
                sender = asyncio.create_task(client.next_frames())
                done, _ = await asyncio.wait(
                    {sender, receiver}, return_when=asyncio.FIRST_COMPLETED
                )
                if sender not in done:
                    sender.cancel()
                    break
                for data in sender.result():
                    await websocket.send_text(data.decode())
        except Overflow:
            log.info("disconnecting a slow client (buffer of %d frames full)", client.limit)
            with contextlib.suppress(Exception):
                await websocket.close(
                    code=TRY_AGAIN_LATER, reason="too slow; reconnect with since=<last seq>"
                )
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            receiver.cancel()
            hub.disconnect(client)
            connections.dec()

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return app


def _check(job_id: str | None, since: str | None) -> str | None:
    if job_id is not None and not _JOB_ID.match(job_id):
        return f"job_id: {job_id[:40]!r} is not a job id"
    if since is not None and (not since.isdigit() or len(since) > 19):
        return f"since: {since[:40]!r} is not a sequence number (a non-negative integer)"
    return None


async def _drain_incoming(websocket: WebSocket) -> None:
    """Read (and ignore) what the client sends, to notice when it goes away."""
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
