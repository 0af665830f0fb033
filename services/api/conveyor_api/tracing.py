"""Each request's request id and trace context, for its log lines and the jobs it submits.

A plain ASGI middleware: it reads ``X-Request-Id`` (or makes one) and ``traceparent`` (or
starts a trace), sets them as the context of the request's log lines, hands the trace on to
what the request writes (``JobService.submit`` publishes in :func:`publishing`), and answers
with the ``X-Request-Id``. With OpenTelemetry spans on (:mod:`conveyor_bus.spans`) the request
is a server span and each publish of jobs a producer span inside it, whose context is the
``traceparent`` the jobs' messages carry to the worker.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor_bus import logs, spans

REQUEST_ID_HEADER = "x-request-id"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
"""A caller's request id, kept when it looks like one (it goes into log lines as is)."""


def current_trace() -> str | None:
    """The ``traceparent`` the request's writes carry (None outside a request)."""
    return logs.traceparent.get()


@contextmanager
def publishing(jobs: int, job_id: str | None = None) -> Iterator[str | None]:
    """Around a publish of ``jobs`` submissions (``job_id``: of one): the ``traceparent`` to
    write into their messages, a producer span's when spans are on."""
    attributes: dict[str, spans.Attribute] = {
        "messaging.system": "nats",
        "messaging.operation.type": "send",
        "messaging.destination.template": "conveyor.job.{job_id}.submitted",
        "messaging.batch.message_count": jobs,
    }
    if job_id is not None:
        attributes["conveyor.job_id"] = job_id
    if not spans.enabled():
        yield current_trace()
        return
    with spans.span("send job.submitted", "producer", attributes=attributes) as span:
        yield span.traceparent


def current_request_id() -> str | None:
    """The request's id (``X-Request-Id``), which its events record (None outside a
    request)."""
    return logs.request_id.get() or None


def route_template(path: str, route: str) -> str:
    """The template of the route that matched ``path``, with the prefixes of the routers it
    was included by: FastAPI keeps an included router's routes relative to its prefix
    (``/jobs/{job_id}`` for ``/api/v1/jobs/abc``). ``route`` alone when the path's segments do
    not line up with it (a parameter holding slashes)."""
    segments, wanted = path.split("/"), route.split("/")
    head = len(segments) - len(wanted)
    if head < 0:
        return route
    for got, want in zip(segments[head + 1 :], wanted[1:], strict=True):
        if not (want.startswith("{") and want.endswith("}")) and got != want:
            return route
    return "/".join(segments[: head + 1]) + route if head > 0 else route


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
        method = scope.get("method", "GET")
        attributes: dict[str, spans.Attribute] = {
            "http.request.method": method,
            "url.path": scope.get("path", ""),
        }
        with spans.span(
            method, "server", remote=given.get("traceparent"), root=True, attributes=attributes
        ) as span:
            tokens = (logs.request_id.set(request_id), logs.traceparent.set(span.traceparent))

            async def send_with_id(message: Message) -> None:
                if message["type"] == "http.response.start":
                    MutableHeaders(scope=message)[REQUEST_ID_HEADER] = request_id
                    span.set("http.response.status_code", message["status"])
                    if message["status"] >= 500:
                        span.fail(f"HTTP {message['status']}")
                await send(message)

            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = getattr(scope.get("route"), "path", None)  # set by the router
                if isinstance(route, str):
                    template = route_template(scope.get("path", ""), route)
                    span.rename(f"{method} {template}")
                    span.set("http.route", template)
                logs.request_id.reset(tokens[0])
                logs.traceparent.reset(tokens[1])
