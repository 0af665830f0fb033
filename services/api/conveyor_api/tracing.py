"""Each request's request id and trace context, for its log lines and the jobs it submits.

A plain ASGI middleware: it reads ``X-Request-Id`` (or makes one) and ``traceparent`` (or
starts a trace), sets them as the context of the request's log lines, hands the trace on to
what the request writes (``JobService.submit`` reads :func:`current_trace`), and answers with
the ``X-Request-Id``.
"""

from __future__ import annotations

import os
import re

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor_bus import logs, tracecontext

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
"""A caller's request id, kept when it looks like one (it goes into log lines as is)."""


def current_trace() -> str | None:
    """The ``traceparent`` the request's writes carry (None outside a request)."""
    return logs.traceparent.get()


def current_request_id() -> str | None:
    """The request's id (``X-Request-Id``), which its events record (None outside a
    request)."""
    return logs.request_id.get() or None


class TraceContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given: dict[str, str] = {}
        for name, value in scope["headers"]:
            key = name.decode("latin-1").lower()
            if key in (REQUEST_ID_HEADER, "traceparent"):
                given[key] = value.decode("latin-1")
        request_id = given.get(REQUEST_ID_HEADER, "")
        if not _REQUEST_ID.match(request_id):
            request_id = os.urandom(8).hex()
        tokens = (
            logs.request_id.set(request_id),
            logs.traceparent.set(tracecontext.child(given.get("traceparent"))),
        )

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            logs.request_id.reset(tokens[0])
            logs.traceparent.reset(tokens[1])
