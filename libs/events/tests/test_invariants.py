"""``history_problems``: a job's history checked against the transitions table (SPEC §6).
A valid life has no problems; each illegal step is reported with its position, is not
applied, and the rest of the history is judged from the state before it."""

from __future__ import annotations

import pytest

from conveyor_events import AnyEvent
from conveyor_events.invariants import history_problems
from conveyor_events.testing import (
    completed,
    deleted,
    failed,
    progressed,
    restarted,
    started,
    stop_requested,
    stopped,
    submitted,
)

pytestmark = pytest.mark.unit

# -- valid histories -----------------------------------------------------------------------


def test_an_empty_history_has_no_problems() -> None:
    assert history_problems([]) == []


def test_a_full_life_has_no_problems() -> None:
    events: list[AnyEvent] = [submitted(), started(1), progressed(1), completed(1), deleted()]

    assert history_problems(events) == []


def test_a_life_with_retry_stop_and_restart_has_no_problems() -> None:
    events: list[AnyEvent] = [
        submitted(max_attempts=2),
        started(1),
        progressed(1, 10),
        failed(1, retry=True),
        started(2, run=2),
        stop_requested(),
        stopped(2),
        restarted(),
        started(3, run=3),
        started(4, run=3),  # redelivered after a worker died: a new attempt while running
        progressed(4, 100),
        failed(4),
        restarted(),
        stopped(),  # stopped while pending
        restarted(),
        started(5, run=5),
        completed(5),
        deleted(),
    ]

    assert history_problems(events) == []


@pytest.mark.parametrize(
    "ending",
    [[completed(1)], [failed(1)], [stop_requested(), stopped(1)]],
    ids=["completed", "failed", "stopped"],
)
def test_every_terminal_job_can_be_deleted(ending: list[AnyEvent]) -> None:
    assert history_problems([submitted(), started(1), *ending, deleted()]) == []


# -- illegal histories ---------------------------------------------------------------------


def test_two_completions_are_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), completed(1)]

    assert history_problems(events) == ["event 4 (job.completed): while completed"]


def test_a_completion_after_a_restart_of_a_completed_job_is_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), restarted(), completed(1)]

    assert history_problems(events) == [
        "event 4 (job.restarted): restarted while completed",
        "event 5 (job.completed): while completed",
    ]


def test_a_start_that_skips_an_attempt_number_is_reported() -> None:
    assert history_problems([submitted(), started(2)]) == [
        "event 2 (job.started): attempt 2 after attempt 0"
    ]
    assert history_problems([submitted(max_attempts=2), started(1), started(3)]) == [
        "event 3 (job.started): attempt 3 after attempt 1"
    ]


def test_a_start_that_repeats_an_attempt_number_is_reported() -> None:
    assert history_problems([submitted(), started(1), started(1)]) == [
        "event 3 (job.started): attempt 1 after attempt 1"
    ]


def test_progress_for_an_old_attempt_is_reported() -> None:
    events: list[AnyEvent] = [
        submitted(max_attempts=2),
        started(1),
        failed(1, retry=True),
        started(2, run=2),
        progressed(1),
    ]

    assert history_problems(events) == [
        "event 5 (job.progressed): for attempt 1 while attempt 2 is current"
    ]


@pytest.mark.parametrize(
    ("event", "name"),
    [(completed(1), "job.completed"), (failed(1), "job.failed")],
    ids=["completed", "failed"],
)
def test_an_outcome_for_an_old_attempt_is_reported(event: AnyEvent, name: str) -> None:
    events: list[AnyEvent] = [submitted(max_attempts=2), started(1), started(2), event]

    assert history_problems(events) == [
        f"event 4 ({name}): for attempt 1 while attempt 2 is current"
    ]


def test_progress_while_pending_is_reported() -> None:
    assert history_problems([submitted(), progressed(1)]) == [
        "event 2 (job.progressed): while pending"
    ]


def test_stopped_without_a_stop_request_while_running_is_reported() -> None:
    assert history_problems([submitted(), started(1), stopped(1)]) == [
        "event 3 (job.stopped): stopped while running (stop requested: False)"
    ]


def test_stopped_for_another_attempt_is_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), stop_requested(), stopped(2)]

    assert history_problems(events) == [
        "event 4 (job.stopped): stopped while running (stop requested: True)"
    ]


def test_a_second_stop_request_is_reported() -> None:
    events: list[AnyEvent] = [submitted(), started(1), stop_requested(), stop_requested()]

    assert history_problems(events) == [
        "event 4 (job.stop_requested): stop requested while running"
    ]


def test_a_restart_while_running_is_reported() -> None:
    assert history_problems([submitted(), started(1), restarted()]) == [
        "event 3 (job.restarted): restarted while running"
    ]


def test_a_delete_while_pending_is_reported() -> None:
    assert history_problems([submitted(), deleted()]) == [
        "event 2 (job.deleted): deleted while pending"
    ]


def test_a_delete_while_running_is_reported() -> None:
    assert history_problems([submitted(), started(1), deleted()]) == [
        "event 3 (job.deleted): deleted while running"
    ]


@pytest.mark.parametrize(
    "event",
    [
        started(1),
        progressed(1),
        completed(1),
        failed(1),
        stop_requested(),
        stopped(),
        restarted(),
        deleted(),
    ],
    ids=lambda e: e.name,
)
def test_anything_after_job_deleted_is_reported(event: AnyEvent) -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), deleted(), event]

    assert history_problems(events) == [f"event 5 ({event.name}): after job.deleted"]


def test_a_second_submission_is_reported_even_after_job_deleted() -> None:
    events: list[AnyEvent] = [submitted(), started(1), completed(1), deleted(), submitted()]

    assert history_problems(events) == ["event 5 (job.submitted): submitted twice"]


@pytest.mark.parametrize(
    "event",
    [started(1), progressed(1), completed(1), stopped(), restarted(), deleted()],
    ids=lambda e: e.name,
)
def test_an_event_before_job_submitted_is_reported(event: AnyEvent) -> None:
    assert history_problems([event, submitted()]) == [
        f"event 1 ({event.name}): before job.submitted"
    ]


def test_an_illegal_event_is_not_applied() -> None:
    # started(2) is rejected, so started(1) is judged against attempt 0 and is legal.
    events: list[AnyEvent] = [submitted(), started(2), started(1), completed(1)]

    assert history_problems(events) == ["event 2 (job.started): attempt 2 after attempt 0"]


def test_every_problem_is_reported_in_order() -> None:
    events: list[AnyEvent] = [
        progressed(1),
        submitted(),
        deleted(),
        started(1),
        restarted(),
        completed(1),
        completed(1),
    ]

    assert history_problems(events) == [
        "event 1 (job.progressed): before job.submitted",
        "event 3 (job.deleted): deleted while pending",
        "event 5 (job.restarted): restarted while running",
        "event 7 (job.completed): while completed",
    ]
