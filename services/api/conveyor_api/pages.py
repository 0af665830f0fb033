"""The pages the API serves a browser, each with a Content-Security-Policy that lets it load
only this API's own files: the dashboard at ``/`` (plus the notifier's websocket) and Swagger
UI at ``/docs``, from the files of the pinned ``fastapi-offline`` package (swagger-ui-dist
5.32.6, byte for byte; see services/api/README.md), never from a CDN. There is no ReDoc page:
its styles are inline, which the policy forbids."""

from __future__ import annotations

import base64
import hashlib
import html
import re
from importlib import resources
from urllib.parse import urljoin, urlsplit

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from conveyor_api.guards import split_host
from conveyor_api.settings import Settings

NOTIFIER_PORT = 8001
"""The notifier's default port: the dashboard's feed is ``ws://<page host>:8001/ws`` unless
``notifier_url`` says otherwise (dashboard/feed.js derives it the same way)."""
DOCS_FILES = "/docs/static"

_BASE = {
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self' data:",
    "connect-src": "'self'",
    "object-src": "'none'",
    "frame-ancestors": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
}


def policy(**directives: str) -> str:
    """The base policy with ``directives`` (``connect_src="..."``) replacing its values."""
    merged = {**_BASE, **{k.replace("_", "-"): v for k, v in directives.items()}}
    return "; ".join(f"{name} {value}" for name, value in merged.items())


def notifier_source(notifier_url: str | None, scheme: str, host: str) -> str:
    """The CSP source of the websocket the dashboard opens from a page at
    ``scheme://host``: the origin of ``notifier_url`` (relative to the page, ``http`` as
    ``ws``), else this host name on the notifier's port."""
    page = f"{scheme}://{host}/"
    if notifier_url:
        parts = urlsplit(urljoin(page, notifier_url))
        ws = {"http": "ws", "https": "wss"}.get(parts.scheme, parts.scheme)
        try:
            hostname, port = parts.hostname or "", parts.port
        except ValueError:  # a port out of range: the page cannot connect anyway
            hostname, port = "", None
    else:
        parsed = split_host(host)
        ws = "wss" if scheme == "https" else "ws"
        hostname, port = (parsed[0] if parsed else ""), NOTIFIER_PORT
    if ws not in ("ws", "wss") or not re.fullmatch(r"[a-z0-9._-]+", hostname):
        # A host-source cannot name an IPv6 address: any websocket, then (scripts stay 'self').
        return "ws: wss:"
    return f"{ws}://{hostname}" + (f":{port}" if port else "")


def mount(app: FastAPI, settings: Settings) -> None:
    """``/`` and ``/dashboard/*``; ``/docs`` and its files when the app has an OpenAPI URL."""
    static = resources.files("conveyor_api") / "dashboard"
    index = (static / "index.html").read_text()
    index = index.replace("{{NOTIFIER_URL}}", html.escape(settings.notifier_url or ""))

    @app.get("/", include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        source = notifier_source(
            settings.notifier_url, request.url.scheme, request.headers.get("host", "")
        )
        csp = policy(connect_src=f"'self' {source}")
        return HTMLResponse(
            index, headers={"Cache-Control": "no-cache", "Content-Security-Policy": csp}
        )

    app.mount("/dashboard", StaticFiles(directory=str(static)), name="dashboard")
    if app.openapi_url is None:
        return

    page = get_swagger_ui_html(
        openapi_url=app.openapi_url,
        title=f"{app.title} - Swagger UI",
        swagger_js_url=f"{DOCS_FILES}/swagger-ui-bundle.js",
        swagger_css_url=f"{DOCS_FILES}/swagger-ui.css",
        swagger_favicon_url=f"{DOCS_FILES}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # no badge from validator.swagger.io
    ).body
    # FastAPI's page starts Swagger UI from one inline script: allowed by its hash alone.
    inline = re.findall(rb"<script>(.*?)</script>", bytes(page), re.DOTALL)
    hashes = " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(s).digest()).decode()}'" for s in inline
    )
    docs_csp = policy(script_src=f"'self' {hashes}")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(
            page, headers={"Cache-Control": "no-cache", "Content-Security-Policy": docs_csp}
        )

    files = resources.files("fastapi_offline") / "static"
    app.mount(DOCS_FILES, StaticFiles(directory=str(files)), name="docs-files")
