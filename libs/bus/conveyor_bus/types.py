"""Job types as the workers publish them: name, payload JSON schema, defaults (never code),
one message per type on its own subject, the last kept. The API validates submissions with
them, so it imports no handler."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec
from nats.aio.client import Client

from conveyor_bus.directget import DirectGetter
from conveyor_bus.errors import BusUnavailable
from conveyor_events import names


class PublishedType(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    schema: dict[str, Any]
    defaults: dict[str, Any] = {}
    description: str | None = None


_decoder = msgspec.json.Decoder(PublishedType)


async def publish_types(nc: Client, types: Iterable[dict[str, Any]]) -> None:
    """Publish each description (``conveyor.JobType.describe()``); durable when it returns.
    A later worker's description of a type replaces an earlier one."""
    js = nc.jetstream()
    for described in types:
        published = msgspec.convert(described, PublishedType)
        try:
            await js.publish(names.type_subject(published.name), msgspec.json.encode(published))
        except Exception as e:
            raise BusUnavailable(f"publish type {published.name}: {e}") from e


async def published_types(getter: DirectGetter) -> dict[str, PublishedType]:
    found: dict[str, PublishedType] = {}
    for msg in await getter.last_per_subject(names.TYPES_STREAM, names.TYPES_ALL):
        try:
            published = _decoder.decode(msg.data)
        except msgspec.DecodeError:
            continue  # not ours to show; a worker's next start writes it again
        found[published.name] = published
    return found
