"""``read_event``: every message of the log is either an event or poison with a clear reason,
and reading never raises; an event must sit on the subject names.py gives it; ``step`` is the
transitions table, one event at a time."""

from __future__ import annotations

import pytest

from conveyor_events import AnyEvent, IllegalEvent, encode_event, fold, step, subject_of
from conveyor_events import testing as ev
from conveyor_events.invariants import history_problems
from conveyor_events.names import Priority, event_subject
from conveyor_events.poison import POISON_KINDS, REASON_LIMIT, Poison, poison, read_event

pytestmark = pytest.mark.unit

SUBJECT = f"conveyor.job.{ev.JOB}.submitted.regular"
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
    assert kind_of(SUBMITTED, f"conveyor.job.{OTHER}.submitted.regular") == "wrong_subject"


@pytest.mark.parametrize(
    "subject",
    [
        f"conveyor.job.{ev.JOB}.started",  # another event type's subject
        f"conveyor.job.{ev.JOB}.submitted",  # a submission off the work queues
        f"conveyor.job.{ev.JOB}.submitted.high",  # a regular job on the high queue
        f"conveyor.job.{ev.JOB}.submitted.urgent",  # no such priority
        f"conveyor.events.{ev.JOB}",  # layout 1
        "conveyor.job",
    ],
)
def test_an_event_its_subject_does_not_describe_is_wrong_subject(subject: str) -> None:
    assert kind_of(SUBMITTED, subject) == "wrong_subject"


@pytest.mark.parametrize(
    ("event", "priority"),
    [
        (ev.submitted(), "regular"),
        (ev.submitted(priority="high"), "high"),
        (ev.started(), "high"),
        (ev.failed(retry=True), "high"),
        (ev.failed(retry=False), "regular"),
        (ev.stop_requested(), "regular"),
        (ev.restarted(), "high"),
        (ev.deleted(), "regular"),
    ],
    ids=repr,
)
def test_every_event_is_read_back_from_the_subject_it_is_written_to(
    event: AnyEvent, priority: Priority
) -> None:
    assert read_event(subject_of(event, priority), encode_event(event)) == event


def test_a_failure_with_a_retry_goes_to_the_work_queue_and_one_without_does_not() -> None:
    assert subject_of(ev.failed(retry=True), "high") == event_subject(ev.JOB, "job.failed", "high")
    assert subject_of(ev.failed(retry=False), "high") == event_subject(ev.JOB, "job.failed")
    retry_off_queue = event_subject(ev.JOB, "job.failed")
    assert kind_of(encode_event(ev.failed(retry=True)), retry_off_queue) == "wrong_subject"


def test_reasons_are_bounded_and_free_of_nul() -> None:
    long = poison("invalid", "x\x00" * 10_000)

    assert len(long.reason) == REASON_LIMIT
    assert "\x00" not in long.reason and long.reason.endswith("...")
    assert set(POISON_KINDS) >= {"undecodable", "impossible_transition", "unstorable"}


def test_step_agrees_with_history_problems() -> None:
    done = fold([ev.submitted(), ev.started(), ev.completed()])

    assert step(None, ev.submitted()) == fold([ev.submitted()])
    with pytest.raises(IllegalEvent) as before_submit:
        step(None, ev.completed())
    assert str(before_submit.value) == f"job.completed for job {ev.JOB}: before job.submitted"
    with pytest.raises(IllegalEvent) as late_start:
        step(done, ev.started(2))
    assert late_start.value.problem == "started while completed"
    history: list[AnyEvent] = [ev.submitted(), ev.started(), ev.completed(), ev.started(2)]
    assert history_problems(history) == ["event 4 (job.started): started while completed"]
