"""Requests a browser may not make (issue 10, defect 2), checked before any route runs.

- **Host.** A page on ``evil.example`` whose DNS name is re-pointed at 127.0.0.1 (DNS
  rebinding) talks to the API as its own origin: the browser sends ``Host: evil.example``.
  Only names in ``allowed_hosts`` are answered; any other is 400. An IP address is always
  answered: a page can only reach it under that address, a different origin from its own
  (as Vite and webpack-dev-server decide), so probes and scrapers that use a pod's IP work.
- **Origin on writes.** A write (POST, PUT, PATCH, DELETE) that carries an ``Origin`` other
  than the API's own (the request's ``Host``) or one of ``allowed_origins`` (``*``: any) is
  403: that is a page of another site posting here. Clients that are not browsers send no
  ``Origin``.
- **Content-Type on writes.** A write's body must be ``application/json``, which no HTML form
  and no cross-site ``fetch`` without a CORS preflight can send; a write without a body may
  send no Content-Type (``curl -X POST .../stop``), never a form's. Else 415.

Every response also forbids framing and MIME sniffing and sends no referrer.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from conveyor_api.problems import PROBLEM, problem

WRITES = frozenset({"POST", "PUT", "PATCH", "DELETE"})
JSON = "application/json"
ANY = "*"
_HOST = re.compile(r"(\[[0-9a-f:.]+\]|[a-z0-9_-]+(?:\.[a-z0-9_-]+)*)\.?(?::([0-9]{1,5}))?")
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALWAYS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


def split_host(value: str) -> tuple[str, int | None] | None:
    """A ``Host`` header (``name``, ``name:port``, ``1.2.3.4:80``, ``[::1]:8000``) as the
    lower-case host name without a trailing dot, and the port; None when it is none of these."""
    match = _HOST.fullmatch(value.strip().lower())
    if match is None:
        return None
    port = int(match[2]) if match[2] else None
    if port is not None and port > 65_535:
        return None
    return match[1], port


def is_ip(hostname: str) -> bool:
    try:
        ipaddress.ip_address(hostname.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


def normal_host(value: str) -> str:
    """A host name for ``allowed_hosts``: lower case, no port, no trailing dot."""
    parsed = split_host(value)
    if parsed is None or parsed[1] is not None:
        raise ValueError(f"{value!r} is not a host name (e.g. conveyor.example.com; no port)")
    return parsed[0]


def normal_origin(value: str) -> str:
    """An origin for ``allowed_origins``: ``scheme://host[:port]``, lower case, without the
    scheme's default port."""
    parts = urlsplit(value.strip().lower())
    host = split_host(parts.netloc) if parts.scheme in _DEFAULT_PORTS else None
    if host is None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"{value!r} is not an origin (scheme://host[:port], e.g. https://a.example)"
        )
    name, port = host
    return f"{parts.scheme}://{name}" + (
        "" if port in (None, _DEFAULT_PORTS[parts.scheme]) else f":{port}"
    )


def _same_origin(origin: str, host: tuple[str, int | None]) -> bool:
    """The ``Origin`` names the host and port the request was sent to (whatever the scheme a
    proxy in front of the API terminated)."""
    parts = urlsplit(origin)
    their = split_host(parts.netloc)
    if their is None or parts.scheme not in _DEFAULT_PORTS:
        return False
    default = _DEFAULT_PORTS[parts.scheme]
    return their[0] == host[0] and (their[1] or default) == (host[1] or default)


class Guard:
    """The checks above as a pure ASGI middleware; a refusal is a problem document and the
    request goes no further (nothing is read, nothing written)."""

    def __init__(self, app: ASGIApp, allowed_hosts: list[str], allowed_origins: list[str]) -> None:
        self.app = app
        self.any_host = ANY in allowed_hosts
        self.hosts = frozenset(allowed_hosts)
        self.any_origin = ANY in allowed_origins
        self.origins = frozenset(o for o in allowed_origins if o != ANY)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {name.lower() for name, _ in message.get("headers", [])}
                extra = [(k, v) for k, v in _ALWAYS if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, with_headers)
            return
        status, detail, field, value = refusal
        response = problem(status, detail, [{"field": field, "message": detail, "value": value}])
        await response(scope, receive, with_headers)

    def _listed(self, origin: str) -> bool:
        if self.any_origin:
            return True
        try:
            return normal_origin(origin) in self.origins
        except ValueError:  # "null" (a sandboxed frame, a file), or not an origin at all
            return False

    def refusal(self, scope: Scope) -> tuple[int, str, str, str] | None:
        """(status, detail, field, value) of the first check the request fails, else None."""
        headers = Headers(scope=scope)
        raw_host = headers.get("host", "")
        host = split_host(raw_host)
        if host is None:
            detail = f"Host: {raw_host[:200]!r} is not a host name[:port]"
            return (400, detail if raw_host else "the request has no Host header", "host", raw_host)
        if not (self.any_host or host[0] in self.hosts or is_ip(host[0])):
            allowed = ", ".join(sorted(self.hosts)) or "none"
            return (
                400,
                f"Host: {host[0]!r} is not a name this API answers to; allowed: any IP "
                f"address and {allowed} (setting allowed_hosts, env CONVEYOR_ALLOWED_HOSTS)",
                "host",
                raw_host,
            )
        if scope["method"] not in WRITES:
            return None
        origin = headers.get("origin")
        if origin is not None and not (_same_origin(origin, host) or self._listed(origin)):
            own = f"{scope.get('scheme', 'http')}://{raw_host}"
            extra = ", ".join(sorted(self.origins)) or "none set"
            return (
                403,
                f"Origin: {origin!r} may not write here (a page of another site); allowed: "
                f"this API's own origin {own} and allowed_origins (env "
                f"CONVEYOR_ALLOWED_ORIGINS: {extra})",
                "origin",
                origin,
            )
        content_type = headers.get("content-type")
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        if content_type is None and not has_body:
            return None
        media = (content_type or "").split(";", 1)[0].strip().lower()
        if media == JSON:
            return None
        if content_type is None:
            detail = f"body: a body without a Content-Type is not accepted; send it as {JSON}"
        else:
            detail = (
                f"body: Content-Type {content_type!r} is not accepted; a write's body must be "
                f"{JSON} (a write without a body may send no Content-Type at all)"
            )
        return (415, detail, "body", content_type or "")


def document(app: FastAPI) -> None:
    """Name the refusals in the app's OpenAPI document: 400 (Host) on every operation, 403
    (Origin) and 415 (Content-Type) on every write (FastAPI's way to extend the document)."""
    content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    plain = app.openapi

    def with_refusals() -> dict[str, Any]:
        schema = plain()
        for operations in schema.get("paths", {}).values():
            for method, operation in operations.items():
                codes = {"400": "Host is not a name this API answers to"}
                if method.upper() in WRITES:
                    codes["403"] = "Origin is another site's"
                    codes["415"] = "The body is not application/json"
                responses = operation.setdefault("responses", {})
                for code, description in codes.items():
                    responses.setdefault(code, {"description": description, "content": content})
        return schema

    app.openapi = with_refusals  # type: ignore[method-assign]
