"""W3C trace context (``traceparent``: ``00-<trace id>-<parent id>-<flags>``), by hand.

The API takes a request's ``traceparent`` (or starts a trace), and writes a child of it into
the headers of the job's messages; the worker reads it off the delivery. Only the header's
version 00 is understood; anything else starts a new trace, as the recommendation says.
"""

from __future__ import annotations

import os
import re

_TRACEPARENT = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
_ZERO_TRACE = "0" * 32
_ZERO_SPAN = "0" * 16


def parse(header: str | None) -> tuple[str, str, str] | None:
    """Trace id, parent id and flags of a valid ``traceparent``, else None."""
    if header is None:
        return None
    found = _TRACEPARENT.match(header.strip().lower())
    if found is None:
        return None
    trace, parent, flags = found.groups()
    if trace == _ZERO_TRACE or parent == _ZERO_SPAN:
        return None
    return trace, parent, flags


def child(header: str | None) -> str:
    """A ``traceparent`` for work done on behalf of ``header``: the same trace and flags, a
    new parent id (a new sampled trace when ``header`` is missing or invalid)."""
    parsed = parse(header)
    trace, flags = (parsed[0], parsed[2]) if parsed is not None else (os.urandom(16).hex(), "01")
    return f"00-{trace}-{os.urandom(8).hex()}-{flags}"
