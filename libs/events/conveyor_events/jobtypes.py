"""Payload schemas of the built-in job types. Validation fills defaults and names the field
that is wrong, so the API can answer 422 with a useful message."""

from __future__ import annotations

import re
from typing import Annotated, Any, TypeVar

import msgspec

from conveyor_events.errors import InvalidPayload, UnknownJobType


class NoopPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``noop``: returns null at once."""


BUSY_LIMIT_S = 30.0
"""The longest a ``sleep`` job may burn CPU (``busy``)."""


class SleepPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``sleep``: reports progress ``steps`` times over ``seconds``, then completes
    (or fails, if ``fail``). With ``busy`` it burns CPU instead of sleeping, never yielding to
    the worker's event loop: a CPU-bound handler, for demonstrations and fault tests."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 5.0
    steps: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    fail: bool = False
    busy: bool = False

    def __post_init__(self) -> None:
        if self.busy and self.seconds > BUSY_LIMIT_S:
            # a busy handler holds its worker's event loop: no stop, timeout or shutdown
            # takes effect meanwhile, so keep it short
            raise ValueError(
                f"with busy=true, seconds must be at most {BUSY_LIMIT_S:g} - at `$.seconds`"
            )


PAYLOAD_SCHEMAS: dict[str, type[msgspec.Struct]] = {"noop": NoopPayload, "sleep": SleepPayload}

PAYLOAD_SCHEMA_RULES: dict[str, dict[str, Any]] = {
    "SleepPayload": {
        "if": {"properties": {"busy": {"const": True}}, "required": ["busy"]},
        "then": {"properties": {"seconds": {"maximum": BUSY_LIMIT_S}}},
    }
}
"""JSON Schema for what a payload's ``__post_init__`` checks across fields, by schema name
(msgspec's generated schema describes each field on its own)."""

_PATH = re.compile(r" - at `\$\.?([^`]*)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `([^`]*)`")


def validate_payload(job_type: str, payload: Any) -> dict[str, Any]:
    """The payload with defaults filled in; raises :class:`InvalidPayload` naming the field."""
    schema = PAYLOAD_SCHEMAS.get(job_type)
    if schema is None:
        known = ", ".join(sorted(PAYLOAD_SCHEMAS))
        raise UnknownJobType(
            f"type: unknown job type {job_type!r}; known types: {known}", field="type"
        )
    try:
        value = msgspec.convert(_json_numbers(payload), schema, strict=True)
    except TooDeep as e:
        field = f"payload{e.path}"
        raise InvalidPayload(
            f"{field}: nested deeper than {MAX_PAYLOAD_DEPTH} levels (the most a payload may be)",
            field=field,
        ) from None
    except msgspec.ValidationError as e:
        text = str(e)
        match = _PATH.search(text)
        message = _PATH.sub("", text)
        path = match.group(1) if match else ""
        if unknown := _UNKNOWN.match(message):
            path = f"{path}.{unknown.group(1)}" if path else unknown.group(1)
        field = f"payload.{path}" if path else "payload"
        raise InvalidPayload(f"{field}: {message}", field=field) from e
    result: dict[str, Any] = msgspec.to_builtins(value)
    return result


MAX_PAYLOAD_DEPTH = 64
"""The deepest a payload may nest objects and arrays (the payload itself is level 1)."""


class TooDeep(Exception):
    def __init__(self, where: _Where) -> None:
        keys: list[str] = []
        while where is not None:
            where, key = where
            keys.append(f"[{key}]" if isinstance(key, int) else f".{key}")
        self.path = "".join(reversed(keys))


_Where = tuple["_Where", str | int] | None
"""Where a value sits in the payload: (where its container sits, its key), None at the top."""


def _json_numbers(payload: Any) -> Any:
    """JSON has one kind of number: an integral ``2.0`` is the integer 2 (as JSON Schema's
    ``integer`` says), so an int field takes it; ``1.5`` and ``"2"`` are still refused.

    Walks without recursion and raises :class:`TooDeep` past ``MAX_PAYLOAD_DEPTH``, so a
    deeply nested payload is refused by name, never a ``RecursionError`` here or in a later
    reader (msgspec, PostgreSQL's jsonb, the dashboard)."""
    root: list[Any] = [None]
    # (container to fill, its key or index, the value to convert, its depth, where it sits)
    todo: list[tuple[Any, Any, Any, int, _Where]] = [(root, 0, payload, 1, None)]
    while todo:
        into, at, value, depth, where = todo.pop()
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        elif isinstance(value, dict | list):
            if depth > MAX_PAYLOAD_DEPTH:
                raise TooDeep(where)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            value = dict.fromkeys(value) if isinstance(value, dict) else [None] * len(value)
            todo.extend((value, k, v, depth + 1, (where, k)) for k, v in items)
        into[at] = value
    return root[0]


T = TypeVar("T", bound=msgspec.Struct)


def parse_payload(payload: dict[str, Any], schema: type[T]) -> T:
    """Decode a payload that was validated at submit time."""
    return msgspec.convert(payload, schema)
