"""Payload validation of the built-in job types (SPEC §2.2): defaults are filled in, and a bad
payload is refused with the field that is wrong, for the API's 422."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor_events import InvalidPayload, UnknownJobType
from conveyor_events.jobtypes import MAX_PAYLOAD_DEPTH, validate_payload

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, {"seconds": 5.0, "steps": 10, "fail": False, "busy": False}),
        ({"seconds": 2}, {"seconds": 2.0, "steps": 10, "fail": False, "busy": False}),
        (
            {"seconds": 0.5, "steps": 1, "fail": True},
            {"seconds": 0.5, "steps": 1, "fail": True, "busy": False},
        ),
        (
            {"seconds": 0, "steps": 10_000},
            {"seconds": 0.0, "steps": 10_000, "fail": False, "busy": False},
        ),
        ({"seconds": 86_400}, {"seconds": 86_400.0, "steps": 10, "fail": False, "busy": False}),
    ],
)
def test_sleep_fills_defaults(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    assert validate_payload("sleep", payload) == expected


def test_noop_takes_an_empty_payload() -> None:
    assert validate_payload("noop", {}) == {}


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({"seconds": "5"}, "payload.seconds", "Expected `float`, got `str`"),
        ({"seconds": True}, "payload.seconds", "Expected `float`, got `bool`"),
        ({"seconds": None}, "payload.seconds", "Expected `float`, got `null`"),
        ({"seconds": -1}, "payload.seconds", ">= 0"),
        ({"seconds": 86_401}, "payload.seconds", "<= 86400"),
        ({"seconds": float("nan")}, "payload.seconds", ">= 0"),
        ({"seconds": float("inf")}, "payload.seconds", "<= 86400"),
        ({"steps": 2.5}, "payload.steps", "Expected `int`, got `float`"),
        ({"steps": "10"}, "payload.steps", "Expected `int`, got `str`"),
        ({"steps": 0}, "payload.steps", ">= 1"),
        ({"steps": 10_001}, "payload.steps", "<= 10000"),
        ({"fail": 1}, "payload.fail", "Expected `bool`, got `int`"),
        ({"fail": "yes"}, "payload.fail", "Expected `bool`, got `str`"),
        (None, "payload", "Expected `object`, got `null`"),
        ([5, 10], "payload", "Expected `object`, got `array`"),
        ("seconds=5", "payload", "Expected `object`, got `str`"),
    ],
)
def test_sleep_refuses_a_bad_payload_naming_the_field(payload: Any, field: str, says: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        validate_payload("sleep", payload)

    assert type(raised.value) is InvalidPayload
    assert raised.value.field == field
    message = str(raised.value)
    assert message.startswith(f"{field}: ")
    assert says in message
    assert " - at `$" not in message  # msgspec's path is turned into the field name


def test_an_integral_number_is_an_integer() -> None:
    """JSON has one kind of number: ``2.0`` is 2, as JSON Schema's ``integer`` (the API's
    OpenAPI document) says; ``2.5`` is still refused (above)."""
    assert validate_payload("sleep", {"steps": 2.0, "seconds": 3}) == {
        "seconds": 3.0, "steps": 2, "fail": False, "busy": False,
    }  # fmt: skip


@pytest.mark.parametrize(
    ("job_type", "payload"),
    [("sleep", {"seconds": 1, "sleep": 2}), ("noop", {"sleep": 2})],
)
def test_an_unknown_field_is_refused_and_named(job_type: str, payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidPayload) as raised:
        validate_payload(job_type, payload)

    assert "unknown field `sleep`" in str(raised.value)


@pytest.mark.parametrize("job_type", ["sleep", "noop"])
def test_an_unknown_field_is_the_field_of_the_error(job_type: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        validate_payload(job_type, {"sleep": 2})

    assert raised.value.field == "payload.sleep"


@pytest.mark.parametrize("payload", [None, [], "x"])
def test_noop_refuses_a_payload_that_is_not_an_object(payload: Any) -> None:
    with pytest.raises(InvalidPayload) as raised:
        validate_payload("noop", payload)

    assert raised.value.field == "payload"


@pytest.mark.parametrize("job_type", ["", "Sleep", "exec2", "conveyor.handlers:missing"])
def test_an_unknown_type_is_refused_naming_the_type_field(job_type: str) -> None:
    with pytest.raises(UnknownJobType) as raised:
        validate_payload(job_type, {})

    assert raised.value.field == "type"
    assert str(raised.value) == f"type: unknown job type {job_type!r}; known types: noop, sleep"
    assert isinstance(raised.value, InvalidPayload)  # the API answers 422 for both


def test_a_busy_sleep_is_kept_short() -> None:
    assert validate_payload("sleep", {"seconds": 30, "busy": True})["busy"] is True
    with pytest.raises(InvalidPayload) as raised:
        validate_payload("sleep", {"seconds": 30.5, "busy": True})
    assert raised.value.field == "payload.seconds"
    assert str(raised.value) == "payload.seconds: with busy=true, seconds must be at most 30"


def nested(depth: int) -> list[Any]:
    """``depth`` lists inside each other (the outermost is level 1)."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_payload_may_nest_up_to_the_limit() -> None:
    payload = {"seconds": 1, "deep": nested(MAX_PAYLOAD_DEPTH - 1)}  # the payload is level 1
    with pytest.raises(InvalidPayload, match="unknown field `deep`"):
        validate_payload("sleep", payload)  # it reaches msgspec, which names the field


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH, 470, 5_000])
def test_a_payload_nested_deeper_is_refused_naming_the_limit(depth: int) -> None:
    """A few hundred levels used to raise RecursionError (a 500 from the API)."""
    with pytest.raises(InvalidPayload) as refused:
        validate_payload("sleep", {"seconds": 1, "deep": nested(depth)})
    assert f"nested deeper than {MAX_PAYLOAD_DEPTH} levels" in str(refused.value)
    assert refused.value.field.startswith("payload.deep[0][0]")
