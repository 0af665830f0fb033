"""Bearer tokens on the REST API (SPEC §4), as a pure ASGI middleware, checked after the
browser guards and before any route reads the body.

With tokens configured (``CONVEYOR_TOKENS``, ``CONVEYOR_TOKENS_FILE``; see
:mod:`conveyor_bus.tokens`) every request needs ``Authorization: Bearer <token>``, except
the probes and metrics (``/healthz``, ``/readyz``, ``/metrics``, also under ``/api/v1``) and
the pages a browser loads before anyone can log in: the dashboard (``/``, ``/dashboard/*``),
Swagger UI (``/docs``, its files) and ``/openapi.json`` (the API's shape and the job types'
payload schemas, no job data). Without a token or with one that is not configured: 401 with
``WWW-Authenticate: Bearer``; a ``read`` token on a write (POST, PUT, PATCH, DELETE): 403.

The request's principal goes into ``scope["state"]["principal"]``; routes read it with
:func:`principal` and record ``user:<name>`` as the actor of the events they write. No token
configured: auth is off and every request is ``anonymous`` with every right.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from conveyor_api.guards import WRITES
from conveyor_api.problems import PROBLEM, problem
from conveyor_bus.tokens import ANONYMOUS, Principal, Role, Tokens, bearer

OPEN_PATHS = frozenset(
    {
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/healthz",
        "/api/v1/readyz",
        "/api/v1/metrics",
        "/docs",
        "/openapi.json",
    }
)
OPEN_PREFIXES = ("/dashboard/", "/docs/static/")
SUBMISSIONS = ("/api/v1/jobs", "/api/v1/jobs/batch")
"""The paths whose POSTs are rate-limited per principal (ratelimit.py)."""
NOBODY = Principal(ANONYMOUS, Role.OPERATE)
"""Every request's principal while auth is off."""
REALM = 'Bearer realm="conveyor"'


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def principal(request: Request) -> Principal:
    found: Principal = request.scope.get("state", {}).get("principal", NOBODY)
    return found


def actor(request: Request) -> str:
    """The actor of the events this request writes (SPEC §2): ``user:<principal>``."""
    return f"user:{principal(request).name}"


class Auth:
    def __init__(self, app: ASGIApp, tokens: Tokens) -> None:
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refusal = self.refusal(scope)
        if refusal is None:
            await self.app(scope, receive, send)
            return
        status, detail, challenge = refusal
        headers = {"WWW-Authenticate": challenge} if challenge else None
        await problem(status, detail, headers=headers)(scope, receive, send)

    def refusal(self, scope: Scope) -> tuple[int, str, str | None] | None:
        """(status, detail, WWW-Authenticate) of a request that may not go on; else None, with
        its principal put in the scope."""
        if not self.tokens.enabled:
            scope.setdefault("state", {})["principal"] = NOBODY
            return None
        if is_open(scope["path"]):
            return None
        presented = bearer(Headers(scope=scope).get("authorization"))
        if presented is None:
            return (
                401,
                "this API needs a token: send the header Authorization: Bearer <token> "
                "(the CLI sends CONVEYOR_TOKEN)",
                REALM,
            )
        found = self.tokens.lookup(presented)
        if found is None:
            return (
                401,
                "the bearer token is not valid here (not one of the API's tokens); "
                "send a configured token",
                f'{REALM}, error="invalid_token"',
            )
        scope.setdefault("state", {})["principal"] = found
        method = scope["method"]
        if method in WRITES and not found.role.permits(Role.OPERATE):
            return (
                403,
                f"token {found.name!r} has role {found.role.value}, which may only read; "
                f"{method} (submit, stop, restart, delete, schedules) needs a token with role "
                "operate",
                None,
            )
        return None


def document(app: FastAPI) -> None:
    """Name the bearer scheme and its refusals (401 on every guarded operation, 403 on
    writes, 429 on submissions) in the OpenAPI document; call after guards.document."""
    content = {PROBLEM: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    plain = app.openapi

    def with_auth() -> dict[str, Any]:
        schema = plain()
        schemes = schema.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {
            "type": "http",
            "scheme": "bearer",
            "description": "when the API has tokens configured (CONVEYOR_TOKENS)",
        }
        for path, operations in schema.get("paths", {}).items():
            if is_open(path):
                continue
            for method, operation in operations.items():
                operation.setdefault("security", [{"bearer": []}, {}])
                codes = {"401": "No token, or not one of the API's tokens"}
                if method.upper() in WRITES:  # guards.document has named 403 for the Origin
                    codes["403"] = "Origin is another site's, or the token may only read"
                if method == "post" and path in SUBMISSIONS:
                    codes["429"] = "Too many submissions by this token (submit_rate)"
                responses = operation.setdefault("responses", {})
                for code, description in codes.items():
                    responses.setdefault(code, {"description": description, "content": content})
        return schema

    app.openapi = with_auth  # type: ignore[method-assign]
