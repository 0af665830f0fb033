"""``read_event``: every message of the log is either an event or poison with a clear reason,
and reading never raises; ``transition_problem`` is the transitions table, one event at a
time."""

from __future__ import annotations

import pytest

from conveyor_events import AnyEvent, encode_event, fold
from conveyor_events import testing as ev
from conveyor_events.invariants import history_problems
from conveyor_events.poison import POISON_KINDS, REASON_LIMIT, Poison, poison, read_event
from conveyor_events.poison import transition_problem as problem

pytestmark = pytest.mark.unit

SUBJECT = f"conveyor.events.{ev.JOB}"
OTHER = "01JDQ5N3X8W4Y6Z7A9B2C3D4EZ"
SUBMITTED = encode_event(ev.submitted())


def kind_of(raw: bytes, subject: str = SUBJECT) -> str:
    read = read_event(subject, raw)
    assert isinstance(read, Poison), read
    assert read.reason
    assert "\x00" not in read.reason and len(read.reason) <= REASON_LIMIT
    return read.kind


def test_an_event_on_its_own_subject_is_read() -> None:
    assert read_event(SUBJECT, SUBMITTED) == ev.submitted()


@pytest.mark.parametrize(
    "raw",
    [b"", b"not json", b"\xff\xfe\x00garbage", b"{", SUBMITTED[:-1], SUBMITTED + b"}"],
    ids=repr,
)
def test_bytes_that_are_not_json_are_undecodable(raw: bytes) -> None:
    assert kind_of(raw) == "undecodable"


def test_json_nested_too_deeply_is_undecodable_not_a_crash() -> None:
    deep_payload = SUBMITTED.replace(
        b'"payload":{', b'"payload":{"deep":' + b"[" * 5000 + b"]" * 5000 + b","
    )

    assert kind_of(b"[" * 100_000) == "undecodable"
    assert kind_of(deep_payload) == "undecodable"


@pytest.mark.parametrize(
    "raw",
    [
        b'{"type": "job.exploded", "job_id": "x", "at": "2026-11-23T10:00:00Z", "actor": "a"}',
        b'{"type": 7}',
        b'{"type": "job.submitted\\u0000"}',
        b'{"job_id": "x"}',
        b"{}",
    ],
    ids=repr,
)
def test_objects_without_a_known_type_are_unknown_type(raw: bytes) -> None:
    assert kind_of(raw) == "unknown_type"


def test_the_unknown_type_is_named_in_the_reason() -> None:
    read = read_event(SUBJECT, b'{"type": "job.exploded"}')

    assert isinstance(read, Poison)
    assert "'job.exploded'" in read.reason and "job.submitted" in read.reason


@pytest.mark.parametrize(
    "raw",
    [
        SUBMITTED.replace(b'"type":"sleep"', b'"type":5'),
        SUBMITTED.replace(b'"at":"2026-11-23T10:00:00Z"', b'"at":"yesterday"'),
        b'{"type": "job.deleted"}',
        b"[]",
        b"42",
        b'"job.submitted"',
        b"null",
    ],
    ids=repr,
)
def test_a_known_type_that_breaks_its_schema_is_invalid(raw: bytes) -> None:
    assert kind_of(raw) == "invalid"


def test_the_invalid_field_is_named_in_the_reason() -> None:
    read = read_event(SUBJECT, SUBMITTED.replace(b'"type":"sleep"', b'"type":5'))

    assert isinstance(read, Poison)
    assert read.reason.startswith("job.submitted does not match its schema")
    assert "$.data.type" in read.reason


def test_an_event_of_another_job_on_this_subject_is_wrong_subject() -> None:
    assert kind_of(SUBMITTED, f"conveyor.events.{OTHER}") == "wrong_subject"


def test_reasons_are_bounded_and_free_of_nul() -> None:
    long = poison("invalid", "x\x00" * 10_000)

    assert len(long.reason) == REASON_LIMIT
    assert "\x00" not in long.reason and long.reason.endswith("...")
    assert set(POISON_KINDS) >= {"undecodable", "impossible_transition", "unstorable"}


def test_transition_problem_agrees_with_history_problems() -> None:
    done = fold([ev.submitted(), ev.started(), ev.completed()])

    assert problem(None, ev.submitted()) is None
    assert problem(None, ev.completed()) == f"job.completed for job {ev.JOB}: before job.submitted"
    late_start = problem(done, ev.started(2))
    assert late_start is not None and "started while completed" in late_start
    history: list[AnyEvent] = [ev.submitted(), ev.started(), ev.completed(), ev.started(2)]
    assert history_problems(history) == ["event 4 (job.started): started while completed"]
