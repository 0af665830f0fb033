"""Errors as ``application/problem+json`` (RFC 9457): status, title, detail — and for
validation errors the list of fields that were wrong."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import Match

from conveyor_api.ratelimit import RateLimited
from conveyor_bus import BusError, BusUnavailable
from conveyor_db import DatabaseUnavailable
from conveyor_events import (
    ConcurrencyConflict,
    DomainError,
    InvalidPayload,
    InvalidTransition,
    JobNotFound,
)

log = logging.getLogger("conveyor.api")

PROBLEM = "application/problem+json"
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    413: "Content Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Content",
    429: "Too Many Requests",
    503: "Service Unavailable",
}


def problem(
    status: int,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": _TITLES.get(status, "Error"),
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "header", "path"):
        parts = parts[1:]
    return ".".join(parts) or "body"


def _echo(value: Any) -> str | int | float | bool | None:
    """The offending value, when it is a scalar that JSON can carry."""
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return value[:200]
    return value if isinstance(value, int | float | bool) else None


def validation_problem(exc: RequestValidationError) -> JSONResponse:
    errors = []
    for err in exc.errors():
        if err.get("type") == "json_invalid":
            return problem(400, f"malformed JSON body: {err.get('msg')}")
        field = _field(tuple(err.get("loc", ())))
        message = str(err.get("msg", "invalid"))
        if err.get("type") == "literal_error" and "expected" in err.get("ctx", {}):
            message = f"must be one of {err['ctx']['expected']}"
        errors.append({"field": field, "message": message, "value": _echo(err.get("input"))})
    detail = "; ".join(
        f"{e['field']}: {e['message']}"
        + (f" (got {e['value']!r})" if e["value"] is not None else "")
        for e in errors
    )
    return problem(422, detail or "invalid request", errors)


def _allowed_methods(request: Request) -> list[str]:
    """Every method some route serves on this path. Starlette's 405 names only the methods of
    the first route whose path matched (``Allow: POST`` for ``/jobs``, which also has GET)."""
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match in (Match.FULL, Match.PARTIAL):
            methods |= set(getattr(route, "methods", None) or ())
    return sorted(methods)


def install(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return validation_problem(exc)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            allowed = _allowed_methods(request)
            headers["Allow"] = ", ".join(allowed)
            return problem(
                405,
                f"{request.method} is not allowed here; allowed: {headers['Allow']}",
                headers=headers,
            )
        return problem(exc.status_code, str(exc.detail), headers=headers)

    @app.exception_handler(DomainError)
    async def _domain(_: Request, exc: DomainError) -> JSONResponse:
        if isinstance(exc, JobNotFound):
            return problem(404, str(exc))
        if isinstance(exc, InvalidPayload):
            pairs = getattr(exc, "errors", None) or [(exc.field, str(exc))]
            return problem(422, str(exc), [{"field": f, "message": m} for f, m in pairs])
        if isinstance(exc, InvalidTransition):
            return problem(409, str(exc))
        return problem(409, str(exc))

    @app.exception_handler(RateLimited)
    async def _rate(_: Request, exc: RateLimited) -> JSONResponse:
        return problem(429, str(exc), headers={"Retry-After": str(exc.retry_after_s)})

    @app.exception_handler(BusError)
    async def _bus(_: Request, exc: BusError) -> JSONResponse:
        log.warning("nats: %s", exc)
        detail = "the event log (NATS JetStream) is unavailable; try again"
        if not isinstance(exc, BusUnavailable):
            detail = f"the event log refused the write: {exc}"
        return problem(503, detail, headers={"Retry-After": "1"})

    @app.exception_handler(ConcurrencyConflict)
    async def _conflicts(_: Request, exc: ConcurrencyConflict) -> JSONResponse:
        log.warning("conflicts: %s", exc)
        detail = f"{exc}; the job changes too fast right now, try again"
        return problem(503, detail, headers={"Retry-After": "1"})

    @app.exception_handler(DatabaseUnavailable)
    async def _db(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("postgres: %s", exc)
        return problem(
            503,
            "the read model (PostgreSQL) is unavailable; try again",
            headers={"Retry-After": "1"},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(500, "internal error; see the API's log")
