"""A due message as the worker reads it: triage, then the runnable event of the run it names
found in the job's history (services/worker/conveyor_worker/delivery.py)."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from conveyor_events import StoredEvent, names
from conveyor_events import testing as ev
from conveyor_events.timers import Due
from conveyor_worker import delivery
from conveyor_worker.delivery import Ack, Delivery, DueRun, Nak, Term

pytestmark = pytest.mark.unit

NOW = ev.T0 + timedelta(minutes=10)
DUE_AT = ev.T0 + timedelta(minutes=5)


def due_message(run: int = 1, *, job: str = ev.JOB, due: object = DUE_AT) -> bytes:
    return msgspec.json.encode({"job_id": job, "run": run, "due": due})


def triage(data: bytes, subject: str | None = None, **kw: object) -> object:
    subject = subject or names.due_subject(ev.JOB, "regular")
    return delivery.triage(40, subject, data, now=NOW, stopping=False, **kw)  # type: ignore[arg-type]


def test_a_due_message_is_triaged_as_the_run_it_names() -> None:
    got = triage(due_message(run=2), delivered=2)

    assert got == DueRun(40, Due(job_id=ev.JOB, run=2, due=DUE_AT), 2)


def test_a_due_message_that_is_not_one_or_names_another_job_is_terminated() -> None:
    garbage = triage(b"{not json")
    other = triage(due_message(job="01JDQ5N3X8W4Y6Z7A9B2C3D4E6"))

    assert isinstance(garbage, Term) and garbage.kind == "invalid"
    assert isinstance(other, Term) and other.kind == "wrong_subject"


def test_a_stopping_worker_hands_a_due_back() -> None:
    got = delivery.triage(
        1, names.due_subject(ev.JOB, "high"), due_message(), now=NOW, stopping=True
    )
    assert got == Nak(0.0, "the worker is stopping")


HISTORY = [
    StoredEvent(3, ev.submitted(max_attempts=2, run_at=DUE_AT)),
    StoredEvent(9, ev.started(1)),
    StoredEvent(12, ev.failed(1, retry=True, retry_at=DUE_AT)),
]


def due(run: int, delivered: int = 1) -> DueRun:
    return DueRun(40, Due(job_id=ev.JOB, run=run, due=DUE_AT), delivered)


def test_the_run_a_due_names_is_its_runnable_event_in_the_history() -> None:
    first = delivery.due_delivery(HISTORY, due(1), now=NOW)
    second = delivery.due_delivery(HISTORY, due(2), now=NOW)

    assert first == Delivery(3, HISTORY[0].event)
    assert second == Delivery(12, HISTORY[2].event)


def test_a_due_fired_before_its_run_is_due_is_held_for_the_rest() -> None:
    early = delivery.due_delivery(HISTORY, due(1), now=DUE_AT - timedelta(seconds=30))

    assert isinstance(early, Nak) and early.delay_s == pytest.approx(30)


def test_a_run_the_history_does_not_hold_is_awaited_then_taken_as_an_orphan_timer() -> None:
    lagging = delivery.due_delivery(HISTORY, due(3, delivered=1), now=NOW)
    orphan = delivery.due_delivery(HISTORY, due(3, delivered=delivery.ORPHAN_AFTER), now=NOW)
    nothing = delivery.due_delivery([], due(1, delivered=delivery.ORPHAN_AFTER), now=NOW)

    assert isinstance(lagging, Nak) and lagging.delay_s == delivery.LAG_RETRY_S
    assert isinstance(orphan, Ack) and isinstance(nothing, Ack)


def test_a_second_due_of_a_running_run_is_acked_but_its_own_redelivery_starts_it_again() -> None:
    running = [*HISTORY, StoredEvent(15, ev.started(2, run=2))]

    again = delivery.due_delivery(running, due(2, delivered=1), now=NOW)
    redelivered = delivery.due_delivery(running, due(2, delivered=2), now=NOW)

    assert isinstance(again, Ack)
    assert redelivered == Delivery(12, HISTORY[2].event)  # its worker was lost


def test_a_due_for_another_time_sets_the_runs_own_timer_again() -> None:
    """A second submission of an existing job id writes its timer over the job's own before
    its event is refused: the due that fires names the other time."""
    other = DueRun(40, Due(job_id=ev.JOB, run=2, due=DUE_AT + timedelta(hours=1)), 1)

    got = delivery.due_delivery(HISTORY, other, now=NOW)

    assert isinstance(got, delivery.Rearm)
    assert got.timer.subject == names.timer_subject(ev.JOB)
    assert got.timer.fires_at == DUE_AT
    finished = [*HISTORY, StoredEvent(15, ev.stopped())]
    assert isinstance(delivery.due_delivery(finished, other, now=NOW), Ack)
