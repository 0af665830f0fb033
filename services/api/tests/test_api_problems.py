"""How validation errors are reported: the field path without its location prefix, and the
offending value echoed only when it is a scalar JSON can carry."""

from __future__ import annotations

from typing import Any

import pytest

from conveyor_api.problems import _echo, _field

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("loc", "expected"),
    [
        (("body", "type"), "type"),
        (("body", "payload", "seconds"), "payload.seconds"),
        (("body", "items", 0, "name"), "items.0.name"),
        (("query", "limit"), "limit"),
        (("header", "content-type"), "content-type"),
        (("path", "job_id"), "job_id"),
        (("body",), "body"),
        ((), "body"),
        (("priority",), "priority"),
        (("payload", "body"), "payload.body"),
        ((0, "x"), "0.x"),
    ],
)
def test_field(loc: tuple[Any, ...], expected: str) -> None:
    assert _field(loc) == expected


def test_only_the_first_location_part_is_dropped() -> None:
    assert _field(("body", "body", "query")) == "body.query"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("sleep", "sleep"),
        ("", ""),
        (0, 0),
        (-3, -3),
        (2.5, 2.5),
        (True, True),
        (False, False),
        (None, None),
    ],
)
def test_scalars_are_echoed_as_they_are(value: Any, expected: Any) -> None:
    echoed = _echo(value)

    assert echoed == expected
    assert type(echoed) is type(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")],
)
def test_non_finite_floats_are_echoed_as_their_repr(value: float, expected: str) -> None:
    assert _echo(value) == expected


def test_long_strings_are_truncated_to_200_characters() -> None:
    assert _echo("x" * 200) == "x" * 200
    assert _echo("y" * 201) == "y" * 200
    assert _echo("é" * 10_000) == "é" * 200


@pytest.mark.parametrize(
    "value",
    [[], [1, 2], {}, {"a": 1}, (1,), {1}, b"bytes", object()],
    ids=["empty-list", "list", "empty-dict", "dict", "tuple", "set", "bytes", "object"],
)
def test_non_scalars_are_not_echoed(value: Any) -> None:
    assert _echo(value) is None
