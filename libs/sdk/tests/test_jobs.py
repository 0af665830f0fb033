"""The public package: what ``@conveyor.job`` makes of a function, and the context."""

from __future__ import annotations

import asyncio
import threading
from typing import Annotated, Any

import msgspec
import pydantic
import pytest

import conveyor

pytestmark = pytest.mark.unit


class Resize(msgspec.Struct):
    url: str
    width: Annotated[int, msgspec.Meta(ge=1)] = 800


class Model(pydantic.BaseModel):
    title: str
    pages: int = 1


def test_the_decorator_registers_a_type_from_the_payload_annotation() -> None:
    types = conveyor.Registry()

    @types.job("resize-image", max_attempts=3, timeout_s=60)
    async def resize(ctx: conveyor.Context, p: Resize) -> dict[str, Any]:
        """Resize it."""
        return {}

    job_type = types.get("resize-image")
    assert job_type is not None and job_type.handler is resize and job_type.is_async
    described = job_type.describe()
    assert described["defaults"] == {"max_attempts": 3, "timeout_s": 60}
    assert described["description"] == "Resize it."
    schema = described["schema"]
    assert schema["type"] == "object" and schema["required"] == ["url"]
    assert schema["properties"]["width"] == {"type": "integer", "minimum": 1, "default": 800}
    assert job_type.decode({"url": "u"}) == Resize("u", 800)


def test_a_pydantic_model_and_a_plain_dict_are_payload_types_too() -> None:
    types = conveyor.Registry()

    @types.job("report")
    def report(ctx: conveyor.Context, p: Model) -> None: ...

    @types.job("anything")
    async def anything(ctx: conveyor.Context, p: dict[str, Any]) -> None: ...

    reported = types.get("report")
    assert reported is not None and not reported.is_async
    assert reported.describe()["schema"]["required"] == ["title"]
    assert reported.decode({"title": "t"}) == Model(title="t")
    free = types.get("anything")
    assert free is not None
    assert free.describe()["schema"] == {"type": "object"}
    assert free.decode({"x": [1]}) == {"x": [1]}


def test_a_second_handler_for_a_name_is_refused_naming_both() -> None:
    types = conveyor.Registry()
    types.job("a")(first := lambda ctx, p: None)
    types.job("a")(first)  # the same one again (a module imported twice) is fine
    with pytest.raises(ValueError, match="registered twice"):
        types.job("a")(lambda ctx, p: None)


@pytest.mark.parametrize("name", ["", "a b", "a..b", ".a", "a.", "x" * 201, "a/b", "a*"])
def test_a_type_name_must_be_a_subject_safe_name(name: str) -> None:
    with pytest.raises(ValueError, match="job type name"):
        conveyor.JobType(name, dict, lambda ctx, p: None)


def test_a_payload_type_that_is_not_an_object_is_refused_at_import() -> None:
    with pytest.raises(TypeError, match="JSON object"):
        conveyor.JobType("n", int, lambda ctx, p: None)


@pytest.mark.parametrize(
    "bad", [{"max_attempts": 0}, {"max_attempts": 101}, {"timeout_s": 0}, {"timeout_s": -1}]
)
def test_defaults_are_checked(bad: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        conveyor.Defaults(**bad)


@pytest.mark.parametrize("delay", [-1, float("nan")])
def test_retry_needs_a_delay_of_zero_or_more(delay: float) -> None:
    with pytest.raises(ValueError, match="delay"):
        conveyor.Retry(delay)


async def test_progress_from_a_thread_reaches_the_loop_and_cancel_is_seen() -> None:
    seen: list[tuple[float, str | None]] = []
    got = asyncio.Event()

    def sink(pct: float, message: str | None) -> None:
        assert threading.current_thread() is threading.main_thread()
        seen.append((pct, message))
        got.set()

    ctx = conveyor.Context("01J0000000000000000000000A", 2, sink)
    await asyncio.to_thread(ctx.progress, 40, "from a thread")
    await asyncio.wait_for(got.wait(), 5)
    assert seen == [(40.0, "from a thread")]
    with pytest.raises(ValueError, match="between 0 and 100"):
        ctx.progress(101)
    assert not ctx.cancelled and not ctx.wait_cancelled(0.01)
    ctx.cancel()
    assert ctx.cancelled and ctx.wait_cancelled(0)
