"""Payload validation against a job type's JSON schema (which the workers publish: the API
validates without importing any handler's code). Validation fills top-level defaults and names
the field that is wrong, so the API can answer 422 with a useful message."""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs

from conveyor_events.errors import InvalidPayload


class PayloadSchema:
    """One job type's payload schema, compiled once."""

    def __init__(self, job_type: str, schema: dict[str, Any]) -> None:
        self.job_type = job_type
        self.schema = schema
        try:
            self._validator = jsonschema_rs.validator_for(schema)
        except (jsonschema_rs.ValidationError, ValueError) as e:
            raise ValueError(f"job type {job_type!r} has no valid JSON schema: {e}") from None
        properties = schema.get("properties")
        self._defaults = {
            name: prop["default"]
            for name, prop in (properties.items() if isinstance(properties, dict) else ())
            if isinstance(prop, dict) and "default" in prop
        }

    def validate(self, payload: Any) -> dict[str, Any]:
        """The payload with top-level defaults filled in; raises :class:`InvalidPayload`
        naming the field (``payload.x[2].y``) and what is wrong with it."""
        try:
            value = _json_numbers(payload)
        except TooDeep as e:
            field = f"payload{e.path}"
            raise InvalidPayload(
                f"{field}: nested deeper than {MAX_PAYLOAD_DEPTH} levels (the most a payload "
                "may be)",
                field=field,
            ) from None
        for error in self._validator.iter_errors(value):
            raise _invalid(error, value) from None
        if not isinstance(value, dict):
            raise InvalidPayload("payload: must be a JSON object", field="payload")
        missing = {k: v for k, v in self._defaults.items() if k not in value}
        return {**value, **json.loads(json.dumps(missing))} if missing else value


def _invalid(error: jsonschema_rs.ValidationError, payload: Any) -> InvalidPayload:
    path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.instance_path)
    kind = error.kind
    message = error.message
    if isinstance(kind, jsonschema_rs.ValidationErrorKind.AdditionalProperties):
        unexpected = sorted(kind.unexpected)
        path += f".{unexpected[0]}"
        message = "not a field of this payload (unknown fields are refused)"
    elif isinstance(kind, jsonschema_rs.ValidationErrorKind.Required):
        path += f".{kind.property}"
        message = "required, and missing"
    if len(message) > MAX_MESSAGE:  # it quotes the value, which may be large
        message = message[: MAX_MESSAGE - 1] + "…"
    field = f"payload{path}"
    return InvalidPayload(f"{field}: {message}", field=field)


MAX_MESSAGE = 300


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
