"""What a worker does with a delivery, decided without NATS: triage, the run a runnable event
asks for, and the start planned on the job's state (services/worker/conveyor_worker/delivery.py),
also through the command handler on the in-memory store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from conveyor_events import (
    AnyEvent,
    CommandHandler,
    JobFailed,
    JobStarted,
    JobStopped,
    Loaded,
    StartJob,
    StoredEvent,
    encode_event,
    fold,
    names,
    subject_of,
)
from conveyor_events import testing as ev
from conveyor_events.testing import InMemoryEventStore
from conveyor_worker import delivery
from conveyor_worker.delivery import Ack, Conclude, Delivery, Nak, Start, Term

pytestmark = pytest.mark.unit

NOW = ev.T0 + timedelta(minutes=1)


def triage(event: AnyEvent, seq: int = 1, *, stopping: bool = False) -> object:
    subject = subject_of(event, "regular")
    return delivery.triage(seq, subject, encode_event(event), now=NOW, stopping=stopping)


def start(run: int = 1, max_deliveries: int | None = None) -> StartJob:
    return StartJob(
        job_id=ev.JOB,
        now=NOW,
        actor=ev.WORKER,
        worker_id=ev.WORKER_ID,
        run=run,
        max_deliveries=max_deliveries,
    )


def test_a_fresh_submission_is_its_own_history() -> None:
    got = triage(ev.submitted(), seq=7)

    assert isinstance(got, Delivery) and got.fresh
    assert got.known() == Loaded(fold([ev.submitted()]), 7)
    verdict = delivery.plan(got, got.known(), start())
    assert isinstance(verdict, Start)
    [started] = verdict.events
    assert isinstance(started, JobStarted) and started.data.attempt == 1


def test_bytes_that_are_no_event_are_terminated() -> None:
    subject = names.event_subject(ev.JOB, "job.submitted", "regular")
    got = delivery.triage(1, subject, b"\x00garbage", now=NOW, stopping=False)

    assert isinstance(got, Term) and got.kind == "undecodable"


def test_another_jobs_event_on_the_queue_is_terminated() -> None:
    subject = names.event_subject("01OTHER0000000000000000000", "job.submitted", "regular")
    raw = encode_event(ev.submitted())
    got = delivery.triage(1, subject, raw, now=NOW, stopping=False)

    assert isinstance(got, Term) and got.kind == "wrong_subject"


def test_a_run_not_yet_due_is_held_back_until_it_is_due() -> None:
    soon = triage(ev.submitted(run_at=NOW + timedelta(seconds=5)))
    later = triage(ev.failed(retry=True, retry_at=NOW + timedelta(hours=1)))

    assert isinstance(soon, Nak) and soon.delay_s == pytest.approx(5)
    assert isinstance(later, Nak) and later.delay_s == pytest.approx(3600)
    assert isinstance(triage(ev.submitted(run_at=NOW - timedelta(seconds=1))), Delivery)


def test_a_run_due_centuries_ahead_is_held_a_year_at_a_time() -> None:
    far = triage(ev.submitted(run_at=datetime(2999, 1, 1, tzinfo=UTC)))

    assert isinstance(far, Nak) and far.delay_s == delivery.MAX_HOLD_S


def test_a_stopping_worker_hands_a_delivery_back_at_once() -> None:
    assert triage(ev.submitted(), stopping=True) == Nak(0.0, "the worker is stopping")


def test_the_run_of_a_runnable_event_is_its_place_among_the_runnable_events() -> None:
    history = [
        StoredEvent(1, ev.submitted(max_attempts=2)),
        StoredEvent(3, ev.started(1)),
        StoredEvent(4, ev.failed(1, retry=True)),
        StoredEvent(9, ev.started(2, run=2)),
    ]

    assert delivery.run_of(history, 1) == 1
    assert delivery.run_of(history, 4) == 2
    assert delivery.run_of(history, 10) is None  # not read up to it yet
    assert delivery.run_of(history[:2], 4) is None


def test_a_read_that_lags_behind_the_delivery_is_retried() -> None:
    got = triage(ev.failed(retry=True), seq=12)
    assert isinstance(got, Delivery)

    verdict = delivery.plan(got, Loaded(fold([ev.submitted(), ev.started()]), 5), start(2))

    assert isinstance(verdict, Nak) and verdict.delay_s == delivery.LAG_RETRY_S


def test_a_superseded_run_or_a_finished_job_is_acked() -> None:
    got = triage(ev.submitted())
    assert isinstance(got, Delivery)
    retried = fold([ev.submitted(max_attempts=2), ev.started(), ev.failed(retry=True)])
    done = fold([ev.submitted(), ev.started(), ev.completed()])

    assert isinstance(delivery.plan(got, Loaded(retried, 4), start(1)), Ack)  # run 2 is on
    assert isinstance(delivery.plan(got, Loaded(done, 4), start(1)), Ack)


def test_a_pending_stop_wins_a_redelivery_and_so_does_the_delivery_limit() -> None:
    got = triage(ev.submitted())
    assert isinstance(got, Delivery)
    stopping = fold([ev.submitted(), ev.started(), ev.stop_requested()])
    lost = fold([ev.submitted(), ev.started(1), ev.started(2)])

    stop = delivery.plan(got, Loaded(stopping, 3), start())
    give_up = delivery.plan(got, Loaded(lost, 3), start(max_deliveries=2))

    assert isinstance(stop, Conclude) and isinstance(stop.events[0], JobStopped)
    assert isinstance(give_up, Conclude) and isinstance(give_up.events[0], JobFailed)
    assert give_up.events[0].data.error.type == "WorkerLost"


async def test_a_start_that_meets_a_stop_reads_again_and_the_stop_wins() -> None:
    store = InMemoryEventStore()
    handler = CommandHandler(store)
    seq = store.forge(ev.submitted())
    got = triage(ev.submitted(), seq=seq)
    assert isinstance(got, Delivery)
    known = got.known()
    store.forge(ev.started(1))  # a first delivery started it; its worker froze
    store.forge(ev.stop_requested())

    verdict, outcome = await handler.handle(
        ev.JOB, lambda loaded: delivery.plan(got, loaded, start()), known
    )

    assert isinstance(verdict, Conclude) and outcome is not None
    assert outcome.state.status == "stopped"
    assert store.conflicts == 1  # one append refused, then the job was read again
