"""Log lines as text or JSON, and what a line knows of the work it is about.

``CONVEYOR_LOG_FORMAT=json`` makes every line one JSON object: ``ts``, ``level``,
``logger``, ``msg``, and ``job_id``, ``attempt``, ``request_id`` and ``trace_id`` when the
code that logs is about one (context variables, set by the API per request and by the
worker per attempt; a task started inside inherits them), ``exc`` with a traceback.
"""

from __future__ import annotations

import json
import logging
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

LogFormat = Literal["text", "json"]

job_id: ContextVar[str | None] = ContextVar("conveyor_job_id", default=None)
attempt: ContextVar[int | None] = ContextVar("conveyor_attempt", default=None)
request_id: ContextVar[str | None] = ContextVar("conveyor_request_id", default=None)
traceparent: ContextVar[str | None] = ContextVar("conveyor_traceparent", default=None)
"""The W3C ``traceparent`` of the work at hand (``conveyor_bus.tracecontext``)."""

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def trace_id() -> str | None:
    """The trace id of the work at hand (from :data:`traceparent`), if any."""
    found = traceparent.get()
    return found.split("-")[1] if found is not None else None


class JsonFormatter(logging.Formatter):
    """One JSON object a line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in (
            ("job_id", job_id.get()),
            ("attempt", attempt.get()),
            ("request_id", request_id.get()),
            ("trace_id", trace_id()),
        ):
            if value is not None:
                line[key] = value
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


def configure(level: str, fmt: LogFormat = "text") -> None:
    """The root logger's level and one stderr handler of the format."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
