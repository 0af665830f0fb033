"""Raw JetStream calls for the tests that check what the server itself does."""

from __future__ import annotations

import json
from typing import Any

from nats.aio.client import Client

WRONG_LAST_SEQUENCE = 10071
"""The server's error code for an expected last sequence that did not match."""


async def api(nc: Client, subject: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """A JetStream API request and its JSON answer (errors included, not raised)."""
    reply = await nc.request(subject, json.dumps(body or {}).encode(), timeout=5)
    answer: dict[str, Any] = json.loads(reply.data)
    return answer


async def publish(
    nc: Client, subject: str, data: bytes, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A publish to a stream and the server's acknowledgement (errors included)."""
    reply = await nc.request(subject, data, headers=headers, timeout=5)
    ack: dict[str, Any] = json.loads(reply.data)
    return ack
