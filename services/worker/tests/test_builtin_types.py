"""The built-in types' payloads as the API checks them: against the JSON schema a worker
publishes (SPEC §2.2). Defaults are filled in, a bad payload is refused with the field that
is wrong, for the API's 422; the worker decodes what passed into the handler's type."""

from __future__ import annotations

from typing import Any

import pytest

import conveyor
from conveyor_events import InvalidPayload
from conveyor_events.jobtypes import MAX_PAYLOAD_DEPTH, PayloadSchema
from conveyor_worker import builtin

pytestmark = pytest.mark.unit


def published(name: str) -> PayloadSchema:
    job_type = conveyor.registry.get(name)
    assert job_type is not None
    return PayloadSchema(name, job_type.describe()["schema"])


SLEEP = published("sleep")
NOOP = published("noop")


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({}, {"seconds": 5.0, "steps": 10, "fail": False, "busy": False}),
        ({"seconds": 2}, {"seconds": 2, "steps": 10, "fail": False, "busy": False}),
        (
            {"seconds": 0.5, "steps": 1, "fail": True},
            {"seconds": 0.5, "steps": 1, "fail": True, "busy": False},
        ),
        (
            {"seconds": 0, "steps": 10_000},
            {"seconds": 0, "steps": 10_000, "fail": False, "busy": False},
        ),
        ({"seconds": 86_400}, {"seconds": 86_400, "steps": 10, "fail": False, "busy": False}),
    ],
)  # fmt: skip
def test_sleep_fills_defaults(payload: dict[str, Any], expected: dict[str, Any]) -> None:
    checked = SLEEP.validate(payload)
    assert checked == expected
    sleep = conveyor.registry.get("sleep")
    assert sleep is not None
    assert sleep.decode(checked) == builtin.SleepPayload(**expected)


def test_noop_takes_an_empty_payload() -> None:
    assert NOOP.validate({}) == {}


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({"seconds": "5"}, "payload.seconds", 'is not of type "number"'),
        ({"seconds": True}, "payload.seconds", 'is not of type "number"'),
        ({"seconds": None}, "payload.seconds", 'is not of type "number"'),
        ({"seconds": -1}, "payload.seconds", "less than the minimum of 0"),
        ({"seconds": 86_401}, "payload.seconds", "greater than the maximum of 86400"),
        ({"seconds": float("nan")}, "payload.seconds", 'is not of type "number"'),
        ({"seconds": float("inf")}, "payload.seconds", 'is not of type "number"'),
        ({"steps": 2.5}, "payload.steps", 'is not of type "integer"'),
        ({"steps": "10"}, "payload.steps", 'is not of type "integer"'),
        ({"steps": 0}, "payload.steps", "less than the minimum of 1"),
        ({"steps": 10_001}, "payload.steps", "greater than the maximum of 10000"),
        ({"fail": 1}, "payload.fail", 'is not of type "boolean"'),
        ({"fail": "yes"}, "payload.fail", 'is not of type "boolean"'),
        (None, "payload", 'is not of type "object"'),
        ([5, 10], "payload", 'is not of type "object"'),
        ("seconds=5", "payload", 'is not of type "object"'),
        ({"seconds": 1, "sleep": 2}, "payload.sleep", "not a field of this payload"),
        ({"seconds": 30.5, "busy": True}, "payload.seconds", "greater than the maximum of 30"),
    ],
)
def test_sleep_refuses_a_bad_payload_naming_the_field(payload: Any, field: str, says: str) -> None:
    with pytest.raises(InvalidPayload) as raised:
        SLEEP.validate(payload)

    assert type(raised.value) is InvalidPayload
    assert raised.value.field == field
    message = str(raised.value)
    assert message.startswith(f"{field}: ")
    assert says in message


def test_an_integral_number_is_an_integer() -> None:
    """JSON has one kind of number: ``2.0`` is 2, as JSON Schema's ``integer`` says; ``2.5``
    is still refused (above)."""
    assert SLEEP.validate({"steps": 2.0, "seconds": 3}) == {
        "seconds": 3, "steps": 2, "fail": False, "busy": False,
    }  # fmt: skip


@pytest.mark.parametrize("schema", [SLEEP, NOOP])
def test_an_unknown_field_is_the_field_of_the_error(schema: PayloadSchema) -> None:
    with pytest.raises(InvalidPayload) as raised:
        schema.validate({"sleep": 2})

    assert raised.value.field == "payload.sleep"


def test_a_huge_wrong_value_is_not_echoed_whole() -> None:
    with pytest.raises(InvalidPayload) as raised:
        SLEEP.validate({"seconds": "x" * 100_000})
    assert len(str(raised.value)) < 400


def test_a_busy_sleep_is_kept_short() -> None:
    assert SLEEP.validate({"seconds": 30, "busy": True})["busy"] is True
    sleep = conveyor.registry.get("sleep")
    assert sleep is not None
    with pytest.raises(ValueError, match="with busy=true"):  # and the worker's own check
        sleep.decode({"seconds": 30.5, "busy": True})


def nested(depth: int) -> list[Any]:
    """``depth`` lists inside each other (the outermost is level 1)."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def test_a_payload_may_nest_up_to_the_limit() -> None:
    payload = {"seconds": 1, "deep": nested(MAX_PAYLOAD_DEPTH - 1)}  # the payload is level 1
    with pytest.raises(InvalidPayload, match="not a field of this payload"):
        SLEEP.validate(payload)  # it reaches the schema, which names the field


@pytest.mark.parametrize("depth", [MAX_PAYLOAD_DEPTH, 470, 5_000])
def test_a_payload_nested_deeper_is_refused_naming_the_limit(depth: int) -> None:
    """A few hundred levels used to raise RecursionError (a 500 from the API)."""
    with pytest.raises(InvalidPayload) as refused:
        SLEEP.validate({"seconds": 1, "deep": nested(depth)})
    assert f"nested deeper than {MAX_PAYLOAD_DEPTH} levels" in str(refused.value)
    assert refused.value.field.startswith("payload.deep[0][0]")
