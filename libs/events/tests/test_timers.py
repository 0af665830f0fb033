"""Which events wait for a timer, on which subject they are stored, what their timer says
(conveyor_events/timers.py), and which subjects a reader accepts them on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor_events import encode_event, names, subject_of
from conveyor_events import testing as ev
from conveyor_events.poison import Poison, read_event
from conveyor_events.timers import LONGEST_TIMER, cancels_timer, decode_due, delayed, timer_for

pytestmark = pytest.mark.unit

LATER = ev.T0 + timedelta(minutes=5)


def test_a_run_due_after_its_event_waits_for_a_timer_off_the_work_queue() -> None:
    waiting = ev.submitted(run_at=LATER)
    retry = ev.failed(retry=True, retry_at=LATER)

    assert delayed(waiting) and delayed(retry)
    assert subject_of(waiting, "high") == names.event_subject(ev.JOB, "job.submitted")
    assert subject_of(retry, "high") == names.event_subject(ev.JOB, "job.failed")


def test_a_run_due_at_once_is_on_its_work_queue_and_has_no_timer() -> None:
    for event in (
        ev.submitted(),
        ev.submitted(run_at=ev.T0),
        ev.submitted(run_at=ev.T0 - timedelta(hours=1)),
        ev.restarted(),
        ev.failed(retry=True, retry_at=None),
    ):
        assert not delayed(event)
        assert timer_for(event, "high", 1) is None
        assert subject_of(event, "high").endswith(".high")
    assert not delayed(ev.failed(retry=False)) and not delayed(ev.completed())


def test_a_timer_fires_its_due_at_the_run_time_to_the_microsecond() -> None:
    at = LATER + timedelta(microseconds=123456)
    timer = timer_for(ev.submitted(run_at=at), "high", 1)

    assert timer is not None
    assert timer.subject == names.timer_subject(ev.JOB)
    assert timer.target == names.due_subject(ev.JOB, "high")
    assert timer.headers()[names.HEADER_SCHEDULE] == "@at 2026-11-23T10:05:00.123456Z"
    assert names.HEADER_SCHEDULE_TTL in timer.headers()
    due = decode_due(timer.body)
    assert (due.job_id, due.run, due.due) == (ev.JOB, 1, at)


def test_a_retry_timer_names_the_run_it_asks_for() -> None:
    timer = timer_for(ev.failed(retry=True, retry_at=LATER), "regular", 3)

    assert timer is not None and decode_due(timer.body).run == 3


def test_a_timer_is_set_at_most_a_century_ahead() -> None:
    far = datetime(2999, 1, 1, tzinfo=UTC)
    timer = timer_for(ev.submitted(run_at=far), "regular", 1)

    assert timer is not None
    assert timer.fires_at == ev.T0 + LONGEST_TIMER < datetime(2262, 1, 1, tzinfo=UTC)
    assert decode_due(timer.body).due == far  # the worker holds it again for the rest


def test_only_the_stop_of_a_pending_job_cancels_its_timer() -> None:
    assert cancels_timer(ev.stopped(attempt=None))
    assert not cancels_timer(ev.stopped(attempt=1))
    assert not cancels_timer(ev.completed()) and not cancels_timer(ev.deleted())


def test_a_reader_takes_a_delayed_event_on_either_subject_and_an_undelayed_one_on_its_queue() -> (
    None
):
    waiting = ev.submitted(run_at=LATER, priority="high")
    plain = names.event_subject(ev.JOB, "job.submitted")
    queued = names.event_subject(ev.JOB, "job.submitted", "high")
    # layout 3 stores it plain; a layout-2 log holds it on its queue (held by a delayed nak)
    assert read_event(plain, encode_event(waiting)) == waiting
    assert read_event(queued, encode_event(waiting)) == waiting

    now = ev.submitted(priority="high")
    off_queue = read_event(plain, encode_event(now))
    assert isinstance(off_queue, Poison) and off_queue.kind == "wrong_subject"
    completed = read_event(queued.replace("submitted", "completed"), encode_event(ev.completed()))
    assert isinstance(completed, Poison) and completed.kind == "wrong_subject"
