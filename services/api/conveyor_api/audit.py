"""Who did what, and why: what an operator's request records in its events beside the actor
(the request id, the client's address and a reason), and the instant of an ``as_of`` read."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, TypedDict

from fastapi import Request
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from conveyor_api.auth import actor
from conveyor_api.tracing import current_request_id
from conveyor_events import MAX_REASON_LENGTH

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _printable(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must be text without control characters (tab and newlines allowed)")
    return value


Reason = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_REASON_LENGTH),
    AfterValidator(_printable),
]
"""An operator's reason: 1 to 500 characters once trimmed, no control characters."""


class ReasonIn(BaseModel):
    """The optional body of a stop, a restart or a delete."""

    model_config = ConfigDict(extra="forbid")

    reason: Reason | None = Field(
        None,
        description=f"why (at most {MAX_REASON_LENGTH} characters), recorded in the event",
        examples=["customer asked to cancel the export (ticket 4711)"],
    )


class Origin(TypedDict):
    """Who asked, from where and why: what ``JobService``'s writes record, the fields of an
    :class:`~conveyor_events.OperatorCommand` and its event."""

    actor: str
    reason: str | None
    request_id: str | None
    client_address: str | None


def origin(request: Request, body: ReasonIn | None = None) -> Origin:
    """The fields of an operator command that say who asked, from where and why: ``actor``
    (``user:<principal>``), ``request_id`` (``X-Request-Id``, made by the tracing
    middleware when the client sent none), ``client_address`` (the peer, or what a trusted
    proxy forwarded: uvicorn's ``--forwarded-allow-ips``) and ``reason``."""
    client = request.client
    return {
        "actor": actor(request),
        "request_id": current_request_id(),
        "client_address": client.host if client is not None else None,
        "reason": body.reason if body is not None else None,
    }


_OFFSET_AFTER_SPACE = re.compile(r"(.*\d) (\d\d:\d\d)")
"""A ``+hh:mm`` offset whose plus a URL query turned into a space."""
_RFC3339 = re.compile(
    r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?P<fraction>\.\d+)?(?P<offset>[Zz]|[+-]\d\d:\d\d)"
)


def parse_instant(text: str) -> datetime:
    """An RFC 3339 date-time with its offset (``2026-12-07T10:00:00Z``,
    ``...10:00:00.5+01:00``), in UTC. Raises ValueError saying what is wrong: a date alone, a
    time without an offset (naive) or anything else."""
    value = text.strip()
    fixed = _OFFSET_AFTER_SPACE.fullmatch(value)
    if fixed is not None:
        value = f"{fixed[1]}+{fixed[2]}"
    match = _RFC3339.fullmatch(value)
    if match is None:
        if re.fullmatch(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d(:\d\d(\.\d+)?)?", value):
            raise ValueError(
                "has no offset: give one (Z for UTC), e.g. 2026-12-07T10:00:00Z;"
                " a time without one could be any time zone's"
            )
        raise ValueError("is not an RFC 3339 date-time with an offset, e.g. 2026-12-07T10:00:00Z")
    fraction = match["fraction"] or ""
    if len(fraction) > 7:  # datetime keeps microseconds: the rest is dropped, not rounded
        value = value.replace(fraction, fraction[:7], 1)
    try:
        parsed = datetime.fromisoformat(value.replace("z", "Z").replace("t", "T"))
        return parsed.astimezone(UTC)
    except (ValueError, OverflowError) as e:
        raise ValueError(f"is not a valid date-time ({e})") from e
