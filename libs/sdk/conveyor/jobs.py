"""Job types: a name, the JSON schema of its payload, its handler and its defaults, in one
registry. ``@conveyor.job`` builds a :class:`JobType` from a function and registers it; the
worker runs what the registry holds and publishes each type's schema, which is how the API
validates a payload without importing your code."""

from __future__ import annotations

import inspect
import re
import typing
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import msgspec

from conveyor.context import Context

Handler = Callable[[Context, Any], Any] | Callable[[Context, Any], Awaitable[Any]]
"""``(ctx, payload) -> result``, a coroutine function or a plain one (run in a thread)."""

NAME = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
MAX_NAME = 200


class Defaults(msgspec.Struct, frozen=True, omit_defaults=True, forbid_unknown_fields=True):
    """What a submission of the type gets when it does not say."""

    max_attempts: int | None = None
    timeout_s: float | None = None
    priority: Literal["high", "regular"] | None = None

    def __post_init__(self) -> None:
        if self.max_attempts is not None and not 1 <= self.max_attempts <= 100:
            raise ValueError(f"max_attempts must be 1 to 100, not {self.max_attempts}")
        if self.timeout_s is not None and not 0 < self.timeout_s <= 7 * 86_400:
            raise ValueError(f"timeout_s must be above 0 and at most 7 days, not {self.timeout_s}")


@dataclass(frozen=True)
class JobType:
    """One job type. ``schema`` is the payload's type: a ``msgspec.Struct`` (or anything
    msgspec converts to, such as a dataclass or TypedDict), a pydantic model, or ``dict``
    for any JSON object. ``rules`` adds JSON Schema keywords to the payload's schema for what
    the type checks across fields."""

    name: str
    schema: Any
    handler: Handler
    defaults: Defaults = field(default_factory=Defaults)
    rules: dict[str, Any] = field(default_factory=dict)
    description: str | None = None
    grace_s: float = 0.0
    """How long the handler may take to end once cancelled (a program's SIGTERM grace): the
    worker keeps the job's delivery that much longer past its timeout."""

    def __post_init__(self) -> None:
        if len(self.name) > MAX_NAME or not NAME.match(self.name):
            raise ValueError(
                f"job type name {self.name!r}: letters, digits, '_' and '-', in parts joined "
                f"by single dots, at most {MAX_NAME} characters (e.g. 'images.resize')"
            )
        if not callable(self.handler):
            raise TypeError(f"job type {self.name!r}: the handler is not callable")
        json_schema(self.schema)  # fails now, at import, rather than at a worker's start

    @property
    def is_async(self) -> bool:
        return inspect.iscoroutinefunction(self.handler)

    def describe(self) -> dict[str, Any]:
        """What a worker publishes of the type (no code): ``GET /api/v1/types`` shows it."""
        return {
            "name": self.name,
            "schema": {**json_schema(self.schema), **self.rules},
            "defaults": msgspec.to_builtins(self.defaults),
            "description": inspect.cleandoc(self.description) if self.description else None,
        }

    def decode(self, payload: dict[str, Any]) -> Any:
        """The handler's argument from a payload the API validated (defaults filled)."""
        return decode(self.schema, payload)


def _is_pydantic(schema: Any) -> bool:
    return isinstance(schema, type) and hasattr(schema, "model_json_schema")


def _free(schema: Any) -> bool:
    return schema in (dict, Any, inspect.Parameter.empty) or typing.get_origin(schema) is dict


def json_schema(schema: Any) -> dict[str, Any]:
    """The JSON schema of a payload type, its own definition at the top."""
    if _free(schema):
        return {"type": "object"}
    if _is_pydantic(schema):
        generated: dict[str, Any] = schema.model_json_schema()
        return generated
    try:
        generated = msgspec.json.schema(schema)
    except TypeError as e:
        raise TypeError(f"no JSON schema for the payload type {schema!r}: {e}") from None
    defs: dict[str, Any] = generated.pop("$defs", {})
    ref = generated.get("$ref", "")
    top = ref.rsplit("/", 1)[-1] if ref.startswith("#/$defs/") else None
    if top is not None and len(generated) == 1:
        generated = defs.pop(top)
        if any(f"#/$defs/{top}" in str(d) for d in defs.values()):  # recursive: keep the def
            defs[top] = generated
    if generated.get("type") != "object":
        raise TypeError(f"a payload is a JSON object; {schema!r} is not one")
    return {**generated, "$defs": defs} if defs else generated


def decode(schema: Any, payload: dict[str, Any]) -> Any:
    if _free(schema):
        return payload
    if _is_pydantic(schema):
        return schema.model_validate(payload)
    return msgspec.convert(payload, schema, strict=True)


def payload_type(handler: Handler) -> Any:
    """The annotation of a handler's second parameter (the payload); ``dict`` without one."""
    params = list(inspect.signature(handler).parameters.values())
    if len(params) < 2:
        raise TypeError(f"a handler takes (ctx, payload); {handler!r} takes {len(params)}")
    try:
        hints = typing.get_type_hints(handler)
    except Exception:  # an annotation that does not resolve here: take the payload as is
        return dict
    return hints.get(params[1].name, dict)


class Registry:
    """Job types by name."""

    def __init__(self) -> None:
        self._types: dict[str, JobType] = {}

    def add(self, job_type: JobType) -> JobType:
        known = self._types.get(job_type.name)
        if known is not None and known.handler is not job_type.handler:
            raise ValueError(
                f"job type {job_type.name!r} is registered twice: by "
                f"{_where(known.handler)} and by {_where(job_type.handler)}"
            )
        self._types[job_type.name] = job_type
        return job_type

    def job(
        self,
        name: str,
        *,
        max_attempts: int | None = None,
        timeout_s: float | None = None,
        priority: Literal["high", "regular"] | None = None,
        payload: Any = None,
    ) -> Callable[[Handler], Handler]:
        """Register the decorated function as the handler of job type ``name``; its payload
        type is ``payload``, or the annotation of its second parameter."""

        def register(handler: Handler) -> Handler:
            self.add(
                JobType(
                    name=name,
                    schema=payload if payload is not None else payload_type(handler),
                    handler=handler,
                    defaults=Defaults(max_attempts, timeout_s, priority),
                    description=inspect.getdoc(handler),
                )
            )
            return handler

        return register

    def get(self, name: str) -> JobType | None:
        return self._types.get(name)

    def __iter__(self) -> Iterator[JobType]:
        return iter(sorted(self._types.values(), key=lambda t: t.name))

    def __len__(self) -> int:
        return len(self._types)


def _where(handler: Handler) -> str:
    return f"{getattr(handler, '__module__', '?')}.{getattr(handler, '__qualname__', handler)}"


registry = Registry()
"""The registry ``@conveyor.job`` adds to, and that workers run."""


job = registry.job
"""``@conveyor.job("resize-image", max_attempts=3, timeout_s=60)``: the decorated
``(ctx, payload)`` function handles jobs of that type. See :meth:`Registry.job`."""
