"""Small helpers of the worker: handing deliveries back, retry delays, JSON-safe output."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
from nats.aio.msg import Msg


def utc_now() -> datetime:
    return datetime.now(UTC)


async def nak_all(msgs: Iterable[Msg]) -> None:
    for msg in msgs:
        with contextlib.suppress(Exception):
            await msg.nak()


def retry_delays() -> Iterator[float]:
    delay = 0.05
    while True:
        yield delay
        delay = min(delay * 2, 2.0)


def jsonable(value: Any) -> Any:
    """Handler results go into the log as JSON (anything else becomes its repr), without NUL
    characters, which PostgreSQL's text and jsonb cannot hold."""
    try:
        value = msgspec.json.decode(msgspec.json.encode(value))
    except (TypeError, msgspec.EncodeError):
        value = repr(value)
    return clean_text(value)


def clean_text(value: Any) -> Any:
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, list):
        return [clean_text(v) for v in value]
    if isinstance(value, dict):
        return {clean_text(k): clean_text(v) for k, v in value.items()}
    return value
