"""The pure half of ``conveyor verify``: splitting the log into histories, parked messages
and unparked poison, and what the report counts as a failure."""

from __future__ import annotations

import pytest

from conveyor_bus import StoredMsg
from conveyor_cli.verify import Report, histories
from conveyor_db import DeadLetter
from conveyor_events import encode_event, names
from conveyor_events import testing as ev

pytestmark = pytest.mark.unit

SUBJECT = names.event_subject(ev.JOB)


def msg(seq: int, data: bytes) -> StoredMsg:
    return StoredMsg(seq=seq, subject=SUBJECT, data=data)


def letter(seq: int, kind: str = "undecodable") -> DeadLetter:
    return DeadLetter.of(seq, SUBJECT, ev.JOB, kind, f"reason {seq}", b"raw")


LOG = [
    msg(1, encode_event(ev.submitted())),
    msg(2, b"garbage"),
    msg(3, encode_event(ev.started())),
    msg(4, encode_event(ev.completed())),
    msg(5, encode_event(ev.started(2))),  # after completion
]


def test_parked_messages_are_left_out_and_listed() -> None:
    report = Report()

    jobs = histories(LOG, [letter(2), letter(5, "impossible_transition")], report)

    assert jobs == {ev.JOB: [ev.submitted(), ev.started(), ev.completed()]}
    assert [d.seq for d in report.parked] == [2, 5]
    assert report.ok
    assert "parked: seq 2 on conveyor.events." in report.render()
    assert report.render().endswith(
        "OK: the read model equals the fold of the log (2 parked events left out)"
    )


def test_poison_missing_from_the_dead_letter_table_is_a_failure() -> None:
    report = Report()

    jobs = histories(LOG, [letter(5, "impossible_transition")], report)

    assert [u.seq for u in report.unparked] == [2]
    assert report.unparked[0].poison.kind == "undecodable"
    assert len(jobs[ev.JOB]) == 3
    assert not report.ok
    text = report.render()
    assert "poison not in the dead-letter table: seq 2" in text
    assert text.splitlines()[-1] == (
        "FAILED: 0 missing, 0 extra, 0 differing, 0 invalid histories, 1 poison events not parked"
    )


def test_a_dead_letter_of_no_message_is_a_failure() -> None:
    report = Report()

    histories(LOG, [letter(2), letter(5), letter(99)], report)

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
