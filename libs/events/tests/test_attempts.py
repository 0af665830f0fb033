"""The attempts of a job, derived from its history: ``fold(history).attempts``, for every way
an attempt ends and every cause of the next one. Histories are made by ``decide``, as the
API and the workers make them."""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec
import pytest

from conveyor_events import (
    AnyCommand,
    AnyEvent,
    Attempt,
    AttemptError,
    CompleteJob,
    ConfirmStop,
    DeleteJob,
    ErrorInfo,
    FailJob,
    FailureCause,
    JobFailed,
    JobState,
    ReportProgress,
    RestartJob,
    StartJob,
    StopJob,
    SubmitJob,
    allowed_actions,
    decide,
    decode_event,
    encode_event,
    fold,
    fold_stored,
    step,
)
from conveyor_events import testing as ev
from conveyor_events.attempts import next_attempts

pytestmark = pytest.mark.unit

BOOM = ErrorInfo(type="ValueError", message="bad row 7", traceback="Traceback ...")
TIMEOUT = ErrorInfo(type="Timeout", message="attempt 1 exceeded timeout_s=1.0")


def at(second: int) -> datetime:
    return ev.T0 + timedelta(seconds=second)


class Job:
    """A job driven through ``decide`` and ``step``; each command one second after the last."""

    def __init__(self, max_attempts: int = 1) -> None:
        self.second = 0
        self.events: list[AnyEvent] = []
        self.state: JobState | None = None
        self.do(SubmitJob(job_id=ev.JOB, now=at(0), actor=ev.USER, type="sleep",
                          max_attempts=max_attempts))  # fmt: skip

    def do(self, command: AnyCommand) -> list[AnyEvent]:
        out = decide(command, self.state)
        for event in out:
            self.events.append(event)
            self.state = step(self.state, event, seq=len(self.events))
        return out

    def _tick(self) -> datetime:
        self.second += 1
        return at(self.second)

    def start(self, worker: str, run: int | None = None, max_deliveries: int | None = None) -> None:
        assert self.state is not None
        command = StartJob(
            job_id=ev.JOB,
            now=self._tick(),
            actor=f"worker:{worker}",
            worker_id=worker,
            run=run or self.state.run,
            max_deliveries=max_deliveries,
        )
        self.do(command)

    def fail(self, error: ErrorInfo = BOOM, cause: FailureCause = "handler_error") -> None:
        assert self.state is not None
        command = FailJob(
            job_id=ev.JOB,
            now=self._tick(),
            actor="worker:w",
            attempt=self.state.attempt,
            error=error,
            retry_delay_s=5,
            cause=cause,
        )
        self.do(command)

    def complete(self) -> None:
        assert self.state is not None
        attempt = self.state.attempt
        self.do(CompleteJob(job_id=ev.JOB, now=self._tick(), actor="worker:w", attempt=attempt))

    def operator(self, command: type[StopJob | RestartJob | DeleteJob]) -> None:
        self.do(command(job_id=ev.JOB, now=self._tick(), actor=ev.USER, reason="because"))

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        assert self.state is not None
        return self.state.attempts


def test_a_job_never_started_has_no_attempts() -> None:
    job = Job()
    assert job.attempts == ()
    assert job.state is not None and job.state.seq == 1


def test_one_attempt_that_completes() -> None:
    job = Job()
    job.start("w-1")
    assert job.attempts == (Attempt(attempt=1, worker_id="w-1", started_at=at(1)),)
    job.do(ReportProgress(job_id=ev.JOB, now=at(2), actor="worker:w-1", attempt=1, progress=50))
    job.second = 2
    job.complete()

    assert job.attempts == (
        Attempt(
            attempt=1, worker_id="w-1", started_at=at(1), finished_at=at(3), outcome="completed"
        ),
    )
    assert job.state is not None and job.state.seq == len(job.events) == 4


def test_a_handler_error_then_a_retry_that_completes() -> None:
    job = Job(max_attempts=2)
    job.start("w-1")
    job.fail()
    assert job.attempts[-1].next_cause == "handler_error"  # why it waits: a retry is due
    job.start("w-2")
    job.complete()

    first, second = job.attempts
    assert first == Attempt(
        attempt=1,
        worker_id="w-1",
        started_at=at(1),
        finished_at=at(2),
        outcome="failed",
        error=AttemptError("ValueError", "bad row 7"),
        next_cause="handler_error",
    )
    assert (second.attempt, second.worker_id, second.outcome, second.next_cause) == (
        2,
        "w-2",
        "completed",
        None,
    )


def test_a_timeout_is_told_from_a_handler_error() -> None:
    job = Job(max_attempts=2)
    job.start("w-1")
    job.fail(TIMEOUT, cause="timeout")
    job.start("w-1")
    job.fail(TIMEOUT, cause="timeout")  # the last: no next attempt

    first, second = job.attempts
    assert (first.outcome, first.error, first.next_cause) == (
        "failed",
        AttemptError("Timeout", TIMEOUT.message),
        "timeout",
    )
    assert (second.outcome, second.next_cause) == ("failed", None)


def test_a_lost_worker_is_noticed_by_the_redelivery() -> None:
    job = Job()
    job.start("w-1")
    job.start("w-2", run=1)  # w-1 was killed: the same run delivered again
    job.complete()

    first, second = job.attempts
    assert first == Attempt(
        attempt=1,
        worker_id="w-1",
        started_at=at(1),
        finished_at=at(2),  # when the loss was noticed
        outcome="lost",
        next_cause="worker_lost",
    )
    assert (second.worker_id, second.outcome) == ("w-2", "completed")


def test_lost_too_often_the_last_attempt_fails_as_lost() -> None:
    job = Job()
    job.start("w-1", max_deliveries=1)
    job.start("w-2", run=1, max_deliveries=1)

    assert job.state is not None and job.state.status == "failed"
    [only] = job.attempts
    assert (only.attempt, only.worker_id, only.outcome, only.next_cause) == (
        1,
        "w-1",
        "lost",
        None,
    )
    assert only.error is not None and only.error.type == "WorkerLost"


def test_an_operator_restart_is_the_cause_of_the_next_attempt() -> None:
    job = Job()
    job.start("w-1")
    job.fail()
    assert job.attempts[-1].next_cause is None  # no attempts left
    job.operator(RestartJob)
    assert job.attempts[-1].next_cause == "operator_restart"
    job.start("w-2")

    assert [(a.attempt, a.outcome, a.next_cause) for a in job.attempts] == [
        (1, "failed", "operator_restart"),
        (2, "running", None),
    ]


def test_a_stopped_attempt_then_a_restart() -> None:
    job = Job()
    job.start("w-1")
    job.operator(StopJob)
    assert job.attempts[-1].outcome == "running"  # until the worker confirms
    job.do(ConfirmStop(job_id=ev.JOB, now=at(9), actor="worker:w-1", attempt=1))
    assert [a.outcome for a in job.attempts] == ["stopped"]
    assert job.attempts[-1].finished_at == at(9)
    job.operator(RestartJob)
    assert job.attempts[-1].next_cause == "operator_restart"


def test_a_stop_while_waiting_for_a_retry_cancels_the_cause_a_restart_sets_another() -> None:
    job = Job(max_attempts=3)
    job.start("w-1")
    job.fail()
    assert job.attempts[-1].next_cause == "handler_error"
    job.operator(StopJob)  # pending: stopped at once, no retry any more
    assert job.attempts[-1].next_cause is None
    job.operator(RestartJob)
    job.start("w-1")

    assert [(a.outcome, a.next_cause) for a in job.attempts] == [
        ("failed", "operator_restart"),
        ("running", None),
    ]


def test_the_fold_of_the_log_holds_the_same_attempts() -> None:
    """The projector, verify and ``as_of`` fold stored events: the same attempts, the same
    sequence, also after the events went through the log's encoding."""
    job = Job(max_attempts=2)
    job.start("w-1")
    job.fail(TIMEOUT, cause="timeout")
    job.start("w-2")
    job.start("w-3", run=2)
    job.complete()

    stored = [(n, decode_event(encode_event(e))) for n, e in enumerate(job.events, 1)]
    assert fold_stored(stored) == job.state
    plain = fold(job.events)
    assert plain is not None and plain.attempts == job.attempts and plain.seq == 0


def test_events_written_before_cause_existed_tell_it_by_their_error() -> None:
    """An old job.failed has no ``cause``: the worker's Timeout (no traceback) is a timeout,
    a handler's exception that happens to be called Timeout (with a traceback) is not."""
    job = Job(max_attempts=3)
    job.start("w-1")
    base = job.state
    assert base is not None

    def old_failure(error: ErrorInfo) -> JobFailed:
        raw = msgspec.json.decode(encode_event(ev.failed(1, retry=True, at=at(5))))
        raw["data"]["error"] = msgspec.to_builtins(error)
        raw["data"].pop("cause", None)
        event = decode_event(msgspec.json.encode(raw))
        assert isinstance(event, JobFailed) and event.data.cause is None
        return event

    ours = ErrorInfo(type="Timeout", message="attempt 1 exceeded timeout_s=1.0")
    theirs = ErrorInfo(type="Timeout", message="upstream", traceback="Traceback ...")
    assert next_attempts(base.attempts, old_failure(ours))[-1].next_cause == "timeout"
    assert next_attempts(base.attempts, old_failure(theirs))[-1].next_cause == "handler_error"


@pytest.mark.parametrize(
    ("history", "actions"),
    [
        ([], ["stop"]),
        (["start"], ["stop"]),
        (["start", "stop"], ["stop"]),  # stopping: a second stop is accepted (no new event)
        (["start", "complete"], ["delete"]),
        (["start", "fail"], ["restart", "delete"]),
        (["stop"], ["restart", "delete"]),
        (["stop", "delete"], []),
    ],
)
def test_actions_are_what_decide_accepts(history: list[str], actions: list[str]) -> None:
    job = Job()
    for step_ in history:
        match step_:
            case "start":
                job.start("w-1")
            case "complete":
                job.complete()
            case "fail":
                job.fail()
            case "stop":
                job.operator(StopJob)
            case "delete":
                job.operator(DeleteJob)
    assert allowed_actions(job.state) == actions
    assert allowed_actions(None) == []


def test_operator_events_record_the_reason_request_and_client() -> None:
    state = fold([ev.submitted(), ev.started()])
    command = StopJob(
        job_id=ev.JOB,
        now=at(3),
        actor="user:alice",
        reason="wrong input file",
        request_id="req-42",
        client_address="10.0.0.7",
    )

    [event] = decide(command, state)

    assert event.name == "job.stop_requested"
    assert msgspec.to_builtins(event)["data"] == {
        "reason": "wrong input file",
        "request_id": "req-42",
        "client_address": "10.0.0.7",
    }
