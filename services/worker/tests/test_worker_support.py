"""The worker's pure helpers: JSON-safe handler results without NUL characters, and the
delays between retries of a write to the log."""

from __future__ import annotations

import itertools
import json
from datetime import UTC, datetime
from typing import Any

import pytest

from conveyor_worker.support import clean_text, jsonable, retry_delays

pytestmark = pytest.mark.unit

NUL = "\x00"
REPLACEMENT = "\ufffd"


class Opaque:
    def __repr__(self) -> str:
        return f"<Opaque{NUL}thing>"


@pytest.mark.parametrize(
    "value",
    [
        None,
        True,
        0,
        -7,
        2**70,
        1.5,
        "text",
        "",
        [],
        {},
        [1, "two", 3.0, None, False],
        {"a": {"b": [1, {"c": "d"}]}, "e": []},
    ],
)
def test_json_values_round_trip_unchanged(value: Any) -> None:
    assert jsonable(value) == value
    assert json.loads(json.dumps(jsonable(value))) == value


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ((1, "a"), [1, "a"]),
        ({"n": (1, (2, 3))}, {"n": [1, [2, 3]]}),
        ({1: "one"}, {"1": "one"}),
        (datetime(2026, 11, 23, 10, 0, tzinfo=UTC), "2026-11-23T10:00:00Z"),
        (float("nan"), None),
        (float("inf"), None),
    ],
    ids=["tuple", "nested-tuple", "int-key", "datetime", "nan", "inf"],
)
def test_values_json_can_carry_come_back_as_their_json_form(value: Any, expected: Any) -> None:
    assert jsonable(value) == expected


@pytest.mark.parametrize(
    "value",
    [object(), {"key": object()}, [1, object()], {(1, 2): "tuple key"}, {None: 1}],
    ids=["object", "nested-object", "object-in-list", "tuple-key", "none-key"],
)
def test_anything_else_becomes_its_repr(value: Any) -> None:
    assert jsonable(value) == repr(value)


def test_nul_characters_are_replaced_everywhere() -> None:
    value = {
        f"key{NUL}": [f"a{NUL}b", {f"inner{NUL}key": [f"{NUL}{NUL}", 1, None]}],
        "plain": f"x{NUL}",
    }

    assert jsonable(value) == {
        f"key{REPLACEMENT}": [
            f"a{REPLACEMENT}b",
            {f"inner{REPLACEMENT}key": [REPLACEMENT * 2, 1, None]},
        ],
        "plain": f"x{REPLACEMENT}",
    }
    assert NUL not in json.dumps(jsonable(value), ensure_ascii=False)


def test_nul_characters_in_a_repr_are_replaced() -> None:
    assert jsonable(Opaque()) == f"<Opaque{REPLACEMENT}thing>"


def test_a_result_with_nul_in_a_tuple_is_cleaned_after_becoming_a_list() -> None:
    assert jsonable((f"a{NUL}", [f"b{NUL}"])) == [f"a{REPLACEMENT}", [f"b{REPLACEMENT}"]]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (f"a{NUL}b{NUL}", f"a{REPLACEMENT}b{REPLACEMENT}"),
        ("no nul", "no nul"),
        ([f"{NUL}", [f"{NUL}"]], [REPLACEMENT, [REPLACEMENT]]),
        ({f"{NUL}": {f"{NUL}": f"{NUL}"}}, {REPLACEMENT: {REPLACEMENT: REPLACEMENT}}),
        (3, 3),
        (None, None),
        (2.5, 2.5),
    ],
)
def test_clean_text(value: Any, expected: Any) -> None:
    assert clean_text(value) == expected


def test_clean_text_does_not_change_its_input() -> None:
    value = {f"k{NUL}": [f"v{NUL}"]}

    clean_text(value)

    assert value == {f"k{NUL}": [f"v{NUL}"]}


def test_retry_delays_double_from_50ms_up_to_two_seconds() -> None:
    delays = list(itertools.islice(retry_delays(), 10))

    assert delays == pytest.approx([0.05, 0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0, 2.0, 2.0])


def test_retry_delays_never_end_and_stay_capped() -> None:
    delays = list(itertools.islice(retry_delays(), 1000))

    assert len(delays) == 1000
    assert max(delays) == 2.0
    assert delays[-1] == 2.0
