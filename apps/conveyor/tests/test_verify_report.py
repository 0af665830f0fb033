"""The pure half of ``conveyor verify``: classifying every message of the log itself (the
projector's rule), comparing that with the dead letters, and what the report counts as a
failure."""

from __future__ import annotations

import pytest

from conveyor_bus import StoredMsg
from conveyor_cli.verify import Report, classify
from conveyor_db import DeadLetter
from conveyor_events import AnyEvent, encode_event, fold_stored, names, subject_of
from conveyor_events import testing as ev

pytestmark = pytest.mark.unit

GARBAGE = names.event_subject(ev.JOB, "job.unreadable")
COMPLETED_SUBJECT = names.event_subject(ev.JOB, "job.completed")


def msg(seq: int, event: AnyEvent | bytes) -> StoredMsg:
    """A message of the log: an event on its own subject, or garbage on the job's."""
    if isinstance(event, bytes):
        return StoredMsg(seq=seq, subject=GARBAGE, data=event)
    return StoredMsg(seq=seq, subject=subject_of(event, "regular"), data=encode_event(event))


def letter(seq: int, kind: str = "impossible_transition") -> DeadLetter:
    """A dead letter of the message of LOG at ``seq``."""
    subject = next((m.subject for m in LOG if m.seq == seq), GARBAGE)
    return DeadLetter.of(seq, subject, ev.JOB, kind, f"reason {seq}", b"raw")


LOG = [
    msg(1, ev.submitted()),
    msg(2, b"garbage"),
    msg(3, ev.started()),
    msg(4, ev.completed()),
    msg(5, ev.started(2)),  # after completion
    msg(6, ev.completed()),  # a second completion
]
POISON = [letter(2, "undecodable"), letter(5), letter(6)]
"""What the projector must park of LOG."""
COMPLETED = fold_stored([(1, ev.submitted()), (3, ev.started()), (4, ev.completed())])


def test_parked_poison_is_left_out_and_listed() -> None:
    report = Report()

    states = classify(LOG, POISON, report)

    assert states == {ev.JOB: COMPLETED}
    assert [d.seq for d in report.parked] == [2, 5, 6]
    assert report.ok
    assert f"parked: seq 2 on {GARBAGE}: undecodable" in report.render()
    assert report.render().endswith(
        "OK: the read model equals the fold of the log (3 parked events left out)"
    )


def test_a_clean_log_folds_as_fold_does() -> None:
    report = Report()

    states = classify([LOG[0], LOG[2], LOG[3]], [], report)

    assert states == {ev.JOB: COMPLETED}
    assert report.ok
    assert not report.parked


def test_poison_missing_from_the_dead_letter_table_is_a_failure() -> None:
    report = Report()

    states = classify(LOG, POISON[1:], report)

    assert [u.seq for u in report.unparked] == [2]
    assert report.unparked[0].poison.kind == "undecodable"
    assert states == {ev.JOB: COMPLETED}
    assert not report.ok
    text = report.render()
    assert "poison not in the dead-letter table: seq 2" in text
    assert text.splitlines()[-1] == (
        "FAILED: 0 missing, 0 extra, 0 differing, 0 invalid histories, 1 poison events not parked"
    )


def test_a_second_completion_that_is_not_parked_is_an_invalid_history() -> None:
    report = Report()

    states = classify(LOG, POISON[:2], report)

    assert report.invalid == {ev.JOB: ["seq 6 (job.completed): while completed"]}
    assert states == {ev.JOB: COMPLETED}  # left out of the fold, as the projector must
    assert not report.ok
    assert f"invalid history: {ev.JOB}: seq 6 (job.completed): while completed" in (
        report.render().splitlines()
    )


def test_a_parked_valid_event_is_a_failure_and_stays_in_the_fold() -> None:
    """The projector parked the job's real completion (and then, consistently, the events
    that are illegal after it)."""
    report = Report()

    states = classify(LOG, [*POISON, letter(4)], report)

    assert [(v.letter.seq, v.event) for v in report.valid_parked] == [(4, "job.completed")]
    assert states == {ev.JOB: COMPLETED}
    assert [d.seq for d in report.parked] == [2, 5, 6]
    assert not report.ok
    lines = report.render().splitlines()
    assert (
        f"parked a valid event: seq 4 on {COMPLETED_SUBJECT} (job.completed),"
        " parked as impossible_transition: reason 4"
    ) in lines
    assert lines[-1] == (
        "FAILED: 0 missing, 0 extra, 0 differing, 0 invalid histories, 1 valid events parked"
    )


@pytest.mark.parametrize("kind", ["undecodable", "invalid", "wrong_subject"])
def test_a_valid_event_parked_under_any_kind_but_unstorable_is_a_failure(kind: str) -> None:
    report = Report()

    classify(LOG, [*POISON, letter(3, kind)], report)

    assert [v.letter.kind for v in report.valid_parked] == [kind]
    assert not report.ok


def test_a_valid_event_parked_as_unstorable_is_left_out_and_not_a_failure() -> None:
    """Verify cannot tell what PostgreSQL refuses; it folds on as the projector did without
    the event, so what follows is judged against the state before it: without the
    completion, the second start is a legal redelivery and the projector must apply it."""
    unstorable = [letter(2, "undecodable"), letter(4, "unstorable"), letter(6)]
    report = Report()

    states = classify(LOG, unstorable, report)

    assert [d.seq for d in report.unstorable] == [4]
    assert (states[ev.JOB].status, states[ev.JOB].attempt) == ("running", 2)
    assert [d.seq for d in report.parked] == [2, 6]
    assert report.ok
    lines = report.render().splitlines()
    assert (
        f"parked unstorable (a valid event, not checked): seq 4 on {COMPLETED_SUBJECT}: reason 4"
    ) in lines
    assert lines[-1] == "OK: the read model equals the fold of the log (3 parked events left out)"

    report = Report()
    classify(LOG, [*unstorable, letter(5)], report)  # the second start parked as well
    assert [v.letter.seq for v in report.valid_parked] == [5]
    assert not report.ok


def test_after_an_unstorable_submission_the_jobs_events_must_be_parked_too() -> None:
    log = [LOG[0], LOG[2], LOG[3]]

    report = Report()
    states = classify(log, [letter(1, "unstorable"), letter(3), letter(4)], report)
    assert (states, report.ok) == ({}, True)

    report = Report()
    classify(log, [letter(1, "unstorable")], report)  # the projector applied its start
    assert report.invalid == {
        ev.JOB: [
            "seq 3 (job.started): before job.submitted",
            "seq 4 (job.completed): before job.submitted",
        ]
    }
    assert not report.ok


def test_an_unstorable_dead_letter_of_poison_is_simply_parked() -> None:
    report = Report()

    classify(LOG, [letter(2, "unstorable"), *POISON[1:]], report)

    assert [d.seq for d in report.parked] == [2, 5, 6]
    assert not report.unstorable
    assert report.ok


def test_a_dead_letter_of_no_message_is_a_failure() -> None:
    report = Report()

    classify(LOG, [*POISON, letter(99)], report)

    assert [d.seq for d in report.stray] == [99]
    assert not report.ok
    assert "dead letter of no event in the log: seq 99" in report.render()


def test_without_wait_unfinished_jobs_are_a_count_only() -> None:
    report = Report(unfinished={"a": "running", "b": "pending", "c": "running"})
    report.checkpoint, report.last_event = 10, 12

    assert report.ok
    assert "3 jobs not terminal yet (1 pending, 2 running)" in report.render()


def test_with_wait_unfinished_jobs_and_a_lagging_checkpoint_are_failures() -> None:
    report = Report(unfinished={"a": "running"}, checkpoint=10, last_event=12, waited_s=20)

    assert not report.ok
    lines = report.render().splitlines()
    assert "not terminal after waiting 20 s: a (running)" in lines
    assert "checkpoint behind the log after waiting 20 s: 10 < 12" in lines
    assert lines[-1].endswith("1 jobs not terminal, checkpoint behind the log")


def test_with_wait_an_idle_system_passes() -> None:
    report = Report(checkpoint=12, last_event=12, waited_s=20)

    assert report.ok
