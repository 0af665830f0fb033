"""The notifier's composition root: a websockets server with ``GET /ws``, ``/healthz`` and
``/metrics``.

The ``websockets`` server is used directly (not through ASGI): it does the handshake, pings
and the close, and its flow control tells when a client's buffer is full. Event frames do not
go through its ``send`` (one call, one encoding and one socket write per event per client is
too slow for a thousand clients): the hub encodes each event's frame once and writes all the
frames a client is due in one write to its transport (:class:`_Frames`). A client that does
not read pauses its transport, its frames queue in the hub, and past its buffer it is
disconnected with 1013 instead of the server buffering for it without bound.

Before a websocket is accepted its ``Origin`` is checked (403 for another site's page); once
accepted, its token, when tokens are configured (closed with 4401/4403, see
:mod:`conveyor_notifier.auth`), and the open websockets are counted (1013 past
``max_clients`` or ``max_clients_per_address``); see :mod:`conveyor_notifier.guards`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import socket
import time
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from websockets.asyncio.server import ServerConnection, serve
from websockets.datastructures import Headers
from websockets.http11 import Request, Response
from websockets.protocol import State

from conveyor_bus import BusError
from conveyor_bus.runtime import bootstrap, stop_on_signals
from conveyor_bus.tokens import Tokens
from conveyor_notifier.auth import TokenGate, select_subprotocol
from conveyor_notifier.guards import Admission, OriginPolicy
from conveyor_notifier.hub import Client_, Hub, Overflow, ReplaysBusy
from conveyor_notifier.settings import Settings

log = logging.getLogger("conveyor.notifier")

_JOB_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")
TRY_AGAIN_LATER = 1013
POLICY_VIOLATION = 1008
SLOW_CLIENT_CLOSE_S = 5.0
"""How long the kernel may take to accept what is still buffered for a client disconnected
for being slow (the 1013 close frame last) before the connection is cut instead."""
CLOSE_HEADROOM = 64 * 1024
"""Kernel send buffer beyond what is buffered when a slow client is closed."""
REFUSALS = (
    "origin",
    "token",
    "max_clients",
    "max_clients_per_address",
    "max_replays",
    "replay_too_large",
    "log_unavailable",
    "bad_query",
)
"""Why a websocket was refused: the ``reason`` label of ``conveyor_ws_refused_total``."""
REFUSAL_LOG_EVERY_S = 10.0
"""Refusals are logged at most once per reason in this long (with the count in between)."""


class Notifier:
    def __init__(
        self,
        hub: Hub,
        send_buffer: int,
        origins: OriginPolicy,
        admission: Admission,
        tokens: Tokens | None = None,
    ) -> None:
        self.hub = hub
        self.gate = TokenGate(tokens or Tokens())
        self.send_buffer = send_buffer
        self.origins = origins
        self.admission = admission
        self.registry = CollectorRegistry()
        self.connections = Gauge(
            "conveyor_ws_connections", "Open websocket connections", registry=self.registry
        )
        self.slow_disconnects = Counter(
            "conveyor_ws_slow_disconnects",
            "Clients disconnected for being too slow (1013)",
            registry=self.registry,
        )
        self.refused = Counter(
            "conveyor_ws_refused",
            "Websockets refused (403 at the handshake, or closed at once with 4401, 4403, 1013 "
            "or 1008)",
            ["reason"],
            registry=self.registry,
        )
        for reason in REFUSALS:
            self.refused.labels(reason=reason)
        self._logged_at: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self.poison_events = Counter(
            "conveyor_notifier_poison_events",
            "Messages on the event log that are not events a client may see, skipped (kind)",
            ["kind"],
            registry=self.registry,
        )
        for kind in ("undecodable", "unknown_type", "invalid", "wrong_subject"):
            self.poison_events.labels(kind=kind)
        hub.on_poison = lambda p: self.poison_events.labels(kind=p.kind).inc()

    def process_request(self, connection: ServerConnection, request: Request) -> Response | None:
        path = urlsplit(request.path).path
        if path == "/healthz":
            return _response(HTTPStatus.OK, b'{"status": "ok"}\n', "application/json")
        if path == "/metrics":
            return _response(HTTPStatus.OK, generate_latest(self.registry), CONTENT_TYPE_LATEST)
        if path != "/ws":
            return _response(HTTPStatus.NOT_FOUND, b"not found; the feed is at /ws\n", "text/plain")
        refusal = self.origins.refusal(request.headers.get_all("Origin"))
        if refusal is not None:
            self._refuse(
                "origin", "refused a websocket handshake from %s: %s", _peer(connection), refusal
            )
            return _response(HTTPStatus.FORBIDDEN, refusal.encode() + b"\n", "text/plain")
        return None

    def _refuse(self, reason: str, message: str, *args: object) -> None:
        """Count a refusal, and log it unless one of its kind was logged just now."""
        self.refused.labels(reason=reason).inc()
        now = time.monotonic()
        if now - self._logged_at.get(reason, -REFUSAL_LOG_EVERY_S) < REFUSAL_LOG_EVERY_S:
            self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
            return
        self._logged_at[reason] = now
        unlogged = self._unlogged.pop(reason, 0)
        more = f" ({unlogged} more of these since the last line)" if unlogged else ""
        log.warning(message + more, *args)

    async def handle(self, ws: ServerConnection) -> None:
        address = _peer(ws)
        assert ws.request is not None
        checked = self.gate.check(ws.request.path, ws.request.headers)
        if isinstance(checked, tuple):
            code, reason = checked
            self._refuse("token", "closing a websocket from %s: %s", address, reason)
            await ws.close(code, reason)
            return
        refusal = self.admission.enter(address)
        if refusal is not None:
            self._refuse(refusal.reason, "closing a websocket from %s: %s", address, refusal.detail)
            await ws.close(TRY_AGAIN_LATER, refusal.detail)
            return
        try:
            await self._serve(ws)
        finally:
            self.admission.leave(address)

    async def _serve(self, ws: ServerConnection) -> None:
        assert ws.request is not None
        query = parse_qs(urlsplit(ws.request.path).query)
        job_id = query.get("job_id", [None])[-1]
        since = query.get("since", [None])[-1]
        problem = _check(job_id, since)
        if problem:
            self.refused.labels(reason="bad_query").inc()
            await ws.close(POLICY_VIOLATION, problem)
            return
        try:
            client = await self.hub.connect(job_id, int(since) if since is not None else None)
        except ReplaysBusy:
            detail = (
                f"busy: {self.hub.max_replays} replays are running (max_replays); try again later"
            )
            self._refuse("max_replays", "closing a websocket from %s: %s", _peer(ws), detail)
            await ws.close(TRY_AGAIN_LATER, detail)
            return
        except Overflow:
            self.refused.labels(reason="replay_too_large").inc()
            await ws.close(TRY_AGAIN_LATER, "replay too large; reconnect with a later since")
            return
        except BusError as e:
            self._refuse("log_unavailable", "cannot replay the log for a client: %s", e)
            await ws.close(TRY_AGAIN_LATER, "event log unavailable; try again")
            return
        sock = ws.transport.get_extra_info("socket")
        if sock is not None:  # bound what the kernel buffers for a client that does not read
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer)
        self.connections.inc()
        try:
            await self._pump(ws, client)
        finally:
            self.hub.disconnect(client)
            self.connections.dec()

    async def _pump(self, ws: ServerConnection, client: Client_) -> None:
        sender = asyncio.create_task(self._send(ws, client))
        closed = asyncio.create_task(ws.wait_closed())
        overflow = asyncio.create_task(client.overflow.wait())
        try:
            await asyncio.wait({sender, closed, overflow}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sender.cancel()
            closed.cancel()
            overflow.cancel()
        if client.overflowed:
            self.slow_disconnects.inc()
            log.info("disconnecting a slow client (%d frames behind)", client.limit)
            await _hand_over_close(ws, TRY_AGAIN_LATER, "too slow; reconnect with since=<last seq>")

    async def _send(self, ws: ServerConnection, client: Client_) -> None:
        with contextlib.suppress(Overflow):
            await client.pump(_Frames(ws))


class _Frames:
    """Writes whole, already encoded data frames to a connection's transport, around the
    library's protocol object (which only tracks data frames when fragmenting, which the
    feed never does); nothing is written once the connection is closing. The library's own
    frames (pings, pongs, the close) go through the same transport, between whole frames."""

    def __init__(self, ws: ServerConnection) -> None:
        self.ws = ws
        self.transport = ws.transport

    def write(self, data: bytes) -> bool:
        if self.ws.protocol.state is not State.OPEN:
            return False
        self.transport.write(data)
        return not self.ws.paused

    async def drain(self) -> bool:
        if self.ws.protocol.state is not State.OPEN:
            return False
        try:
            await self.ws.drain()
        except OSError:
            return False
        return self.ws.protocol.state is State.OPEN


async def _hand_over_close(ws: ServerConnection, code: int, reason: str) -> None:
    """Close a client that does not read, so that it still gets ``code`` whenever it reads
    again, while this process lets go of it at once.

    The close frame goes after the frames already written, so it waits behind them in the
    transport's buffer until the client reads. A closing handshake with a timeout (the
    library's ``close``) ends by aborting the transport, which throws the buffer away, close
    frame and all. Instead, the kernel's send buffer is made big enough to take everything
    still buffered, and the socket is closed gracefully: the kernel delivers the frames, the
    1013 last, and the FIN whenever the client reads (or gives up on a client that is gone),
    and nothing of it stays in this process. Only when the kernel cannot take all of it in
    ``SLOW_CLIENT_CLOSE_S`` is the transport aborted."""
    if ws.protocol.state is not State.OPEN:
        return
    ws.protocol.send_close(code, reason)
    transport = ws.transport
    for data in ws.protocol.data_to_send():
        if data:  # b"" asks for a half-close, which closing the socket does
            transport.write(data)
    sock = transport.get_extra_info("socket")
    if sock is not None:  # the kernel's buffer is full already: grow it by what is left
        with contextlib.suppress(OSError):
            size = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
            more = transport.get_write_buffer_size() + CLOSE_HEADROOM
            # the kernel doubles what it is given, and counts its bookkeeping against it
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size + more)
    transport.close()  # flushes into the kernel, then closes the socket (no RST)
    try:
        async with asyncio.timeout(SLOW_CLIENT_CLOSE_S):
            await ws.wait_closed()
    except TimeoutError:
        log.warning("a slow client's last frames did not fit the kernel's buffer; cut off")
        transport.abort()


def _peer(connection: ServerConnection) -> str:
    """The client's address (without its port)."""
    address = connection.remote_address
    return str(address[0]) if isinstance(address, tuple) and address else str(address)


def _response(status: HTTPStatus, body: bytes, content_type: str) -> Response:
    headers = Headers([("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return Response(status.value, status.phrase, headers, body)


def _check(job_id: str | None, since: str | None) -> str | None:
    if job_id is not None and not _JOB_ID.fullmatch(job_id):
        return f"job_id: {job_id[:40]!r} is not a job id"
    if since is not None and (not since.isascii() or not since.isdigit() or len(since) > 19):
        return f"since: {since[:40]!r} is not a sequence number (a non-negative integer)"
    return None


async def serve_forever(settings: Settings) -> None:
    stop = stop_on_signals()
    nc = await bootstrap(settings, "conveyor-notifier")
    hub = Hub(
        nc,
        settings.client_buffer,
        settings.write_pause_factor,
        max_replays=settings.max_replays,
        replay_wait_s=settings.replay_wait_s,
    )
    notifier = Notifier(
        hub,
        settings.socket_send_buffer,
        OriginPolicy(settings.api_url, settings.allowed_origins),
        Admission(settings.max_clients, settings.max_clients_per_address),
        settings.load_tokens(),
    )
    await hub.start()
    try:
        async with serve(
            notifier.handle,
            settings.host,
            settings.port,
            process_request=notifier.process_request,
            select_subprotocol=select_subprotocol,
            compression=None,  # one encoding of each frame serves every client
            close_timeout=2,
            max_size=64 * 1024,
            ping_interval=20,
            ping_timeout=20,
        ):
            log.info("notifier listening on ws://%s:%d/ws", settings.host, settings.port)
            await stop.wait()
    finally:
        await hub.stop()
        with contextlib.suppress(Exception):
            await nc.close()
