"""SPEC §2.1 as a test: ``decide(command, fold(history))`` for every job state and command.

The matrix below is the transitions table written out cell by cell. An allowed cell names the
events produced and the state they lead to; a forbidden cell names the domain error raised
(and, by raising, that nothing is written).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor_events import (
    AnyCommand,
    AnyEvent,
    CompleteJob,
    ConfirmStop,
    DeleteJob,
    DomainError,
    ErrorInfo,
    FailJob,
    InvalidTransition,
    JobAlreadyExists,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobNotFound,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobState,
    JobStopped,
    JobStopRequested,
    JobSubmitted,
    ReportProgress,
    RestartJob,
    StaleAttempt,
    StaleRun,
    StartJob,
    StopJob,
    SubmitJob,
    TooManyRuns,
    decide,
    evolve,
    fold,
    not_before,
    runnable,
)
from conveyor_events.decide import MAX_RUNS
from conveyor_events.events import (
    CompletedData,
    FailedData,
    ProgressedData,
    StartedData,
    StoppedData,
    SubmittedData,
)
from conveyor_events.invariants import history_problems

pytestmark = pytest.mark.unit

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
NOW = T0 + timedelta(minutes=5)
"""When every command of the matrix is issued."""
RETRY_DELAY_S = 30.0
RETRY_AT = NOW + timedelta(seconds=RETRY_DELAY_S)
USER = "user:alice"
W1, W2 = "w-1", "w-2"
BOOM = ErrorInfo(type="RuntimeError", message="boom", traceback="Traceback (most recent call last)")
RESULT = {"answer": 42}


def at(minute: int) -> datetime:
    return T0 + timedelta(minutes=minute)


# --- histories: one per job state --------------------------------------------------------


def history(state: str, max_attempts: int = 1) -> list[AnyEvent]:
    """The events that lead to ``state``. The running attempt is attempt 1, run 1, on W1."""
    submitted = JobSubmitted(
        job_id=JOB,
        at=at(0),
        actor=USER,
        data=SubmittedData(
            type="sleep",
            payload={"seconds": 2.0, "steps": 4, "fail": False},
            max_attempts=max_attempts,
        ),
    )
    started = JobStarted(
        job_id=JOB, at=at(1), actor=f"worker:{W1}", data=StartedData(attempt=1, worker_id=W1)
    )
    stop_requested = JobStopRequested(job_id=JOB, at=at(2), actor=USER)
    completed = JobCompleted(
        job_id=JOB, at=at(3), actor=f"worker:{W1}", data=CompletedData(attempt=1, result=None)
    )
    failed = JobFailed(
        job_id=JOB, at=at(3), actor=f"worker:{W1}", data=FailedData(attempt=1, error=BOOM)
    )
    stopped = JobStopped(job_id=JOB, at=at(3), actor=f"worker:{W1}", data=StoppedData(attempt=1))
    deleted = JobDeleted(job_id=JOB, at=at(4), actor=USER)
    histories: dict[str, list[AnyEvent]] = {
        "no job": [],
        "pending": [submitted],
        "running": [submitted, started],
        "stopping": [submitted, started, stop_requested],
        "completed": [submitted, started, completed],
        "failed": [submitted, started, failed],
        "stopped": [submitted, started, stop_requested, stopped],
        "deleted": [submitted, started, completed, deleted],
    }
    return histories[state]


STATES = ("no job", "pending", "running", "stopping", "completed", "failed", "stopped", "deleted")


# --- commands: one per column -------------------------------------------------------------


def command(name: str) -> AnyCommand:
    """The command of one column. Worker commands act on attempt 1 and run 1 (the current ones
    wherever the job has started)."""
    user: dict[str, Any] = {"job_id": JOB, "now": NOW, "actor": USER}
    w1: dict[str, Any] = {"job_id": JOB, "now": NOW, "actor": f"worker:{W1}"}
    w2: dict[str, Any] = {"job_id": JOB, "now": NOW, "actor": f"worker:{W2}"}
    fail: dict[str, Any] = {**w1, "attempt": 1, "error": BOOM, "retry_delay_s": RETRY_DELAY_S}
    columns: dict[str, Callable[[], AnyCommand]] = {
        "submit": lambda: SubmitJob(**user, type="noop"),
        "start": lambda: StartJob(**w2, worker_id=W2, run=1),
        "progress": lambda: ReportProgress(**w1, attempt=1, progress=42.5, message="step 2 of 4"),
        "complete": lambda: CompleteJob(**w1, attempt=1, result=RESULT),
        "fail, attempts left": lambda: FailJob(**fail),
        "fail, none left": lambda: FailJob(**fail),
        "fail, permanent": lambda: FailJob(**fail, permanent=True),
        "stop": lambda: StopJob(**user),
        "confirm stop": lambda: ConfirmStop(**w1, attempt=1),
        "restart": lambda: RestartJob(**user),
        "delete": lambda: DeleteJob(**user),
    }
    return columns[name]()


COMMANDS = (
    "submit",
    "start",
    "progress",
    "complete",
    "fail, attempts left",
    "fail, none left",
    "fail, permanent",
    "stop",
    "confirm stop",
    "restart",
    "delete",
)

MAX_ATTEMPTS = {"fail, attempts left": 3, "fail, permanent": 3}
"""``max_attempts`` of the job a column's command acts on (1 unless listed)."""


# --- outcomes -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Ok:
    """An allowed cell: the event types produced, fields of the first event's data, fields of
    the state after evolve, and whether a run command is queued with the events."""

    events: tuple[type, ...]
    data: dict[str, Any] = field(default_factory=dict)
    state: dict[str, Any] = field(default_factory=dict)
    queued: bool = False


def ok(*events: type, data: dict[str, Any] | None = None, queued: bool = False, **state: Any) -> Ok:
    return Ok(events=events, data=data or {}, state=state, queued=queued)


# fmt: off
SUBMITTED = ok(
    JobSubmitted,
    data={"type": "noop", "priority": "regular", "payload": {}, "max_attempts": 1},
    status="pending", attempt=0, run=1, version=1, created_at=NOW, queued=True,
)
STARTED = ok(
    JobStarted,
    data={"attempt": 1, "worker_id": W2, "run": 1},
    status="running", attempt=1, worker_id=W2, started_at=NOW,
)
REDELIVERED = ok(
    JobStarted,
    data={"attempt": 2, "worker_id": W2, "run": 1},
    status="running", attempt=2, worker_id=W2, started_at=NOW, stop_requested=False,
)
STOP_WINS_REDELIVERY = ok(
    JobStopped,
    data={"attempt": 1},
    status="stopped", attempt=1, stop_requested=False, finished_at=NOW,
)
PROGRESSED = ok(
    JobProgressed,
    data={"attempt": 1, "progress": 42.5, "message": "step 2 of 4"},
    status="running", progress=42.5, message="step 2 of 4", stop_requested=False,
)
PROGRESSED_WHILE_STOPPING = ok(
    JobProgressed,
    data={"attempt": 1, "progress": 42.5, "message": "step 2 of 4"},
    status="running", progress=42.5, message="step 2 of 4", stop_requested=True,
)
COMPLETED = ok(
    JobCompleted,
    data={"attempt": 1, "result": RESULT},
    status="completed", result=RESULT, progress=100.0, finished_at=NOW, stop_requested=False,
)
RETRIED = ok(
    JobFailed,
    data={"attempt": 1, "error": BOOM, "retry": True, "retry_at": RETRY_AT},
    status="pending", attempt=1, run=2, run_at=RETRY_AT, error=BOOM, attempts_left=2,
    queued=True,
)
FAILED = ok(
    JobFailed,
    data={"attempt": 1, "error": BOOM, "retry": False, "retry_at": None},
    status="failed", attempt=1, run=1, error=BOOM, finished_at=NOW, stop_requested=False,
)
STOPPED_WHILE_PENDING = ok(
    JobStopped,
    data={"attempt": None},
    status="stopped", attempt=0, finished_at=NOW,
)
STOP_REQUESTED = ok(JobStopRequested, status="running", stop_requested=True)
ALREADY_STOPPING = ok(status="running", stop_requested=True)  # no event: already so
STOP_CONFIRMED = ok(
    JobStopped,
    data={"attempt": 1},
    status="stopped", attempt=1, stop_requested=False, finished_at=NOW,
)
RESTARTED = ok(
    JobRestarted,
    status="pending", attempt=1, run=2, attempts_left=1, finished_at=None, result=None,
    progress=0.0, queued=True,
)
DELETED = ok(JobDeleted, deleted=True)
# fmt: on

NOT_FOUND = JobNotFound
EXISTS = JobAlreadyExists
NO = InvalidTransition

Outcome = Ok | type[DomainError]

# fmt: off
MATRIX: list[Any] = [  # (from, command, outcome) or a pytest.param of one
    # from          command                 outcome
    ("no job",      "submit",               SUBMITTED),
    ("no job",      "start",                NOT_FOUND),
    ("no job",      "progress",             NOT_FOUND),
    ("no job",      "complete",             NOT_FOUND),
    ("no job",      "fail, attempts left",  NOT_FOUND),
    ("no job",      "fail, none left",      NOT_FOUND),
    ("no job",      "fail, permanent",      NOT_FOUND),
    ("no job",      "stop",                 NOT_FOUND),
    ("no job",      "confirm stop",         NOT_FOUND),
    ("no job",      "restart",              NOT_FOUND),
    ("no job",      "delete",               NOT_FOUND),

    ("pending",     "submit",               EXISTS),
    ("pending",     "start",                STARTED),
    ("pending",     "progress",             NO),
    ("pending",     "complete",             NO),
    ("pending",     "fail, attempts left",  NO),
    ("pending",     "fail, none left",      NO),
    ("pending",     "fail, permanent",      NO),
    ("pending",     "stop",                 STOPPED_WHILE_PENDING),
    ("pending",     "confirm stop",         NO),
    ("pending",     "restart",              NO),
    ("pending",     "delete",               NO),

    ("running",     "submit",               EXISTS),
    ("running",     "start",                REDELIVERED),
    ("running",     "progress",             PROGRESSED),
    ("running",     "complete",             COMPLETED),
    ("running",     "fail, attempts left",  RETRIED),
    ("running",     "fail, none left",      FAILED),
    ("running",     "fail, permanent",      FAILED),
    ("running",     "stop",                 STOP_REQUESTED),
    ("running",     "confirm stop",         NO),
    ("running",     "restart",              NO),
    ("running",     "delete",               NO),

    # running with stop_requested: the worker is cancelling the handler
    ("stopping",    "submit",               EXISTS),
    ("stopping",    "start",                STOP_WINS_REDELIVERY),
    ("stopping",    "progress",             PROGRESSED_WHILE_STOPPING),
    ("stopping",    "complete",             COMPLETED),  # the completion won the race
    ("stopping",    "fail, attempts left",  FAILED),     # no retry once a stop is asked
    ("stopping",    "fail, none left",      FAILED),
    ("stopping",    "fail, permanent",      FAILED),
    ("stopping",    "stop",                 ALREADY_STOPPING),
    ("stopping",    "confirm stop",         STOP_CONFIRMED),
    ("stopping",    "restart",              NO),
    ("stopping",    "delete",               NO),

    ("completed",   "submit",               EXISTS),
    ("completed",   "start",                NO),
    ("completed",   "progress",             NO),
    ("completed",   "complete",             NO),  # never a second job.completed
    ("completed",   "fail, attempts left",  NO),
    ("completed",   "fail, none left",      NO),
    ("completed",   "fail, permanent",      NO),
    ("completed",   "stop",                 NO),
    ("completed",   "confirm stop",         NO),
    ("completed",   "restart",              NO),
    ("completed",   "delete",               DELETED),

    ("failed",      "submit",               EXISTS),
    ("failed",      "start",                NO),
    ("failed",      "progress",             NO),
    ("failed",      "complete",             NO),
    ("failed",      "fail, attempts left",  NO),
    ("failed",      "fail, none left",      NO),
    ("failed",      "fail, permanent",      NO),
    ("failed",      "stop",                 NO),
    ("failed",      "confirm stop",         NO),
    ("failed",      "restart",              RESTARTED),
    ("failed",      "delete",               DELETED),

    ("stopped",     "submit",               EXISTS),
    ("stopped",     "start",                NO),
    ("stopped",     "progress",             NO),
    ("stopped",     "complete",             NO),
    ("stopped",     "fail, attempts left",  NO),
    ("stopped",     "fail, none left",      NO),
    ("stopped",     "fail, permanent",      NO),
    ("stopped",     "stop",                 NO),
    ("stopped",     "confirm stop",         NO),
    ("stopped",     "restart",              RESTARTED),
    ("stopped",     "delete",               DELETED),

    # deleted: gone for every command; its id stays taken (the history is kept)
    ("deleted",     "submit",               EXISTS),
    ("deleted",     "start",                NOT_FOUND),
    ("deleted",     "progress",             NOT_FOUND),
    ("deleted",     "complete",             NOT_FOUND),
    ("deleted",     "fail, attempts left",  NOT_FOUND),
    ("deleted",     "fail, none left",      NOT_FOUND),
    ("deleted",     "fail, permanent",      NOT_FOUND),
    ("deleted",     "stop",                 NOT_FOUND),
    ("deleted",     "confirm stop",         NOT_FOUND),
    ("deleted",     "restart",              NOT_FOUND),
    ("deleted",     "delete",               NOT_FOUND),
]
# fmt: on


def _cell(row: Any) -> tuple[str, str]:
    values = row.values if hasattr(row, "values") else row
    return values[0], values[1]


def test_the_matrix_has_every_cell_once() -> None:
    cells = [_cell(row) for row in MATRIX]
    assert sorted(cells) == sorted((s, c) for s in STATES for c in COMMANDS)


def _params() -> list[Any]:
    return [
        row if hasattr(row, "values") else pytest.param(*row, id=f"{row[0]}-{row[1]}")
        for row in MATRIX
    ]


@pytest.mark.parametrize(("state", "name", "outcome"), _params())
def test_transition(state: str, name: str, outcome: Outcome) -> None:
    events = history(state, MAX_ATTEMPTS.get(name, 1))
    before = fold(events)
    cmd = command(name)

    if not isinstance(outcome, Ok):
        with pytest.raises(outcome) as raised:
            decide(cmd, before)
        assert type(raised.value) is outcome  # not a subclass: StaleAttempt is not the answer
        if outcome is InvalidTransition and (state, name) != ("running", "confirm stop"):
            assert before is not None
            assert f"it is {before.status}" in str(raised.value)
        return

    produced = decide(cmd, before)
    assert [type(e) for e in produced] == list(outcome.events)
    for event in produced:
        assert (event.job_id, event.at, event.actor) == (JOB, NOW, cmd.actor)
    if outcome.data:
        data = produced[0].data
        assert {k: getattr(data, k) for k in outcome.data} == outcome.data

    after = fold(events + produced)
    assert after is not None
    assert history_problems(events + produced) == []  # SPEC §6.4: a valid path
    assert {k: getattr(after, k) for k in outcome.state} == outcome.state
    if produced:
        assert after.version == len(events) + len(produced)
        assert after.updated_at == NOW
    else:
        assert after == before

    queued = [e for e in produced if runnable(e)]  # the event is the run command
    if outcome.queued:
        assert len(queued) == 1 and not_before(queued[0]) == after.run_at
        assert after.run == (before.run + 1 if before is not None else 1)
    else:
        assert queued == []


# --- error messages -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "name", "message"),
    [
        ("no job", "stop", f"job {JOB} not found"),
        ("deleted", "restart", f"job {JOB} not found"),
        ("pending", "submit", f"job {JOB} already exists"),
        ("pending", "complete", f"cannot complete job {JOB}: it is pending"),
        ("completed", "start", f"cannot start job {JOB}: it is completed"),
        ("failed", "progress", f"cannot report progress for job {JOB}: it is failed"),
        (
            "completed",
            "stop",
            f"cannot stop job {JOB}: it is completed; only a pending or running job can be stopped",
        ),
        (
            "running",
            "restart",
            f"cannot restart job {JOB}: it is running; "
            "only a failed or stopped job can be restarted",
        ),
        (
            "stopping",
            "delete",
            f"cannot delete job {JOB}: it is running; "
            "only a completed, failed or stopped job can be deleted",
        ),
        ("running", "confirm stop", f"job {JOB} has no stop request to confirm"),
    ],
)
def test_error_messages_say_what_forbids_the_action(state: str, name: str, message: str) -> None:
    with pytest.raises(DomainError) as raised:
        decide(command(name), fold(history(state)))
    assert str(raised.value) == message


# --- scenarios ----------------------------------------------------------------------------


class Job:
    """A job driven through ``decide``, the way services do: decide, append, fold."""

    def __init__(self, max_attempts: int = 1, run_at: datetime | None = None) -> None:
        self.events: list[AnyEvent] = []
        self.minute = 0
        self.do(SubmitJob(**self.user(), type="sleep", max_attempts=max_attempts, run_at=run_at))

    @property
    def state(self) -> JobState:
        state = fold(self.events)
        assert state is not None
        return state

    def now(self) -> datetime:
        self.minute += 1
        return at(self.minute)

    def user(self) -> dict[str, Any]:
        return {"job_id": JOB, "now": self.now(), "actor": USER}

    def worker(self, worker_id: str) -> dict[str, Any]:
        return {"job_id": JOB, "now": self.now(), "actor": f"worker:{worker_id}"}

    def do(self, cmd: AnyCommand) -> list[AnyEvent]:
        produced = decide(cmd, fold(self.events))
        self.events.extend(produced)
        return produced

    def start(
        self, worker_id: str = W1, run: int | None = None, max_deliveries: int | None = None
    ) -> list[AnyEvent]:
        run = self.state.run if run is None else run
        return self.do(
            StartJob(
                **self.worker(worker_id),
                worker_id=worker_id,
                run=run,
                max_deliveries=max_deliveries,
            )
        )

    def fail(self, attempt: int, delay_s: float = RETRY_DELAY_S) -> list[AnyEvent]:
        return self.do(
            FailJob(**self.worker(W1), attempt=attempt, error=BOOM, retry_delay_s=delay_s)
        )


def test_redelivery_starts_a_new_attempt_on_the_new_worker() -> None:
    job = Job()
    job.start(W1)
    job.do(ReportProgress(**job.worker(W1), attempt=1, progress=60, message="slow"))

    (started,) = job.start(W2, run=1)  # W1 died; JetStream redelivered run 1 to W2

    assert started == JobStarted(
        job_id=JOB, at=at(4), actor=f"worker:{W2}", data=StartedData(attempt=2, worker_id=W2)
    )
    state = job.state
    assert (state.status, state.attempt, state.worker_id) == ("running", 2, W2)
    assert (state.progress, state.message, state.started_at) == (0.0, None, at(4))


@pytest.mark.parametrize(
    "old",
    [
        lambda w: ReportProgress(**w, attempt=1, progress=99),
        lambda w: CompleteJob(**w, attempt=1, result="late"),
        lambda w: FailJob(**w, attempt=1, error=BOOM),
        lambda w: ConfirmStop(**w, attempt=1),
    ],
    ids=["progress", "complete", "fail", "confirm stop"],
)
def test_a_zombie_worker_is_fenced_off_after_a_redelivery(old: Any) -> None:
    job = Job()
    job.start(W1)
    job.start(W2, run=1)
    job.do(StopJob(**job.user()))  # so that only the attempt number can refuse ConfirmStop

    with pytest.raises(StaleAttempt) as raised:
        decide(old(job.worker(W1)), job.state)
    assert str(raised.value).endswith(f"of job {JOB}: attempt 2 is the current one")


def test_the_current_attempt_completes_after_a_redelivery() -> None:
    job = Job()
    job.start(W1)
    job.start(W2, run=1)

    (completed,) = job.do(CompleteJob(**job.worker(W2), attempt=2, result=RESULT))

    assert completed.data == CompletedData(attempt=2, result=RESULT)
    assert job.state.status == "completed"
    with pytest.raises(InvalidTransition, match="it is completed"):
        job.do(CompleteJob(**job.worker(W1), attempt=1))  # the zombie wakes up too late


def test_a_run_whose_workers_keep_dying_fails_with_worker_lost_past_max_deliveries() -> None:
    job = Job(max_attempts=5)
    for attempt in (1, 2, 3):  # each worker dies without a word: redelivered
        (started,) = job.start(f"w-{attempt}", max_deliveries=3)
        assert isinstance(started, JobStarted)
        assert started.data.attempt == attempt

    (lost,) = job.start("w-4", max_deliveries=3)

    assert isinstance(lost, JobFailed)
    assert lost.actor == "worker:w-4"
    assert (lost.data.attempt, lost.data.retry, lost.data.error.type) == (3, False, "WorkerLost")
    assert "started 3 times" in lost.data.error.message
    assert (job.state.status, job.state.attempt) == ("failed", 3)  # despite attempts left
    assert history_problems(job.events) == []
    with pytest.raises(InvalidTransition):
        job.start("w-5", max_deliveries=3)  # a later redelivery of the run is skipped


def test_max_deliveries_counts_the_starts_of_one_run_only() -> None:
    job = Job(max_attempts=3)
    job.start(W1, max_deliveries=2)
    job.start(W2, max_deliveries=2)  # W1 lost: second start of run 1
    job.fail(attempt=2)  # a handler failure queues run 2: its deliveries count afresh

    job.start(W1, max_deliveries=2)
    (started,) = job.start(W2, max_deliveries=2)

    assert isinstance(started, JobStarted)
    assert (job.state.status, job.state.attempt, job.state.run_base) == ("running", 4, 2)


def test_max_deliveries_restarts_counting_after_a_restart() -> None:
    job = Job()
    job.start(W1, max_deliveries=1)
    job.start(W2, max_deliveries=1)  # WorkerLost
    assert job.state.status == "failed"
    job.do(RestartJob(**job.user()))

    (started,) = job.start(W1, max_deliveries=1)

    assert isinstance(started, JobStarted)
    assert job.state.attempt - job.state.run_base == 1


def test_retry_requeues_the_job_after_the_backoff() -> None:
    job = Job(max_attempts=2)
    job.start(W1)
    before = job.state
    fail_at = at(job.minute + 1)

    (failed,) = job.fail(attempt=1, delay_s=12.5)

    retry_at = fail_at + timedelta(seconds=12.5)
    assert failed.data == FailedData(
        attempt=1, error=BOOM, retry=True, retry_at=retry_at, cause="handler_error"
    )
    after = job.state
    assert (after.status, after.attempt, after.run, after.attempts_left) == ("pending", 1, 2, 1)
    assert after.error == BOOM
    assert runnable(failed) and not_before(failed) == retry_at
    assert (before.run, after.run) == (1, 2)

    job.start(W2)  # run 2
    assert (job.state.status, job.state.attempt) == ("running", 2)
    (last,) = job.fail(attempt=2)
    assert last.data == FailedData(attempt=2, error=BOOM, retry=False, cause="handler_error")
    assert (job.state.status, job.state.attempts_left) == ("failed", 0)


def test_a_superseded_run_command_is_refused() -> None:
    job = Job(max_attempts=2)
    job.start(W1)
    job.fail(attempt=1)  # retry: run 2 is queued

    with pytest.raises(StaleRun, match=r"run 1 of job \S+ was superseded by 2"):
        job.start(W2, run=1)  # a late redelivery of run 1
    job.start(W2, run=2)
    assert job.state.attempt == 2


def test_a_run_command_from_before_a_restart_is_refused() -> None:
    job = Job()
    job.start(W1)
    job.fail(attempt=1)
    job.do(RestartJob(**job.user()))

    with pytest.raises(StaleRun):
        job.start(W2, run=1)
    job.start(W2, run=2)
    assert (job.state.status, job.state.attempt) == ("running", 2)


def test_restart_gives_a_fresh_attempt_budget() -> None:
    job = Job(max_attempts=2)
    job.start(W1)
    job.fail(attempt=1)
    job.start(W1)
    job.fail(attempt=2)
    assert (job.state.status, job.state.attempts_left) == ("failed", 0)

    job.do(RestartJob(**job.user()))

    assert (job.state.status, job.state.attempts_left, job.state.run) == ("pending", 2, 3)
    job.start(W2)
    assert job.state.attempt == 3  # attempts keep counting across restarts
    (retried,) = job.fail(attempt=3)
    assert isinstance(retried, JobFailed)
    assert retried.data.retry is True


def test_a_second_stop_of_a_stopping_job_writes_nothing() -> None:
    job = Job()
    job.start(W1)
    (requested,) = job.do(StopJob(**job.user()))
    assert isinstance(requested, JobStopRequested)

    assert job.do(StopJob(**job.user())) == []
    assert job.state.stop_requested is True


def test_a_stop_cancels_a_scheduled_retry() -> None:
    job = Job(max_attempts=3)
    job.start(W1)
    job.fail(attempt=1)  # pending, run 2 queued for later

    (stopped,) = job.do(StopJob(**job.user()))

    assert stopped.data == StoppedData(attempt=None)
    assert job.state.status == "stopped"
    with pytest.raises(InvalidTransition, match="it is stopped"):
        job.start(W2, run=2)  # the queued retry comes due and is skipped


def test_no_attempt_completes_twice() -> None:
    job = Job()
    job.start(W1)
    job.do(CompleteJob(**job.worker(W1), attempt=1))

    with pytest.raises(InvalidTransition):
        job.do(CompleteJob(**job.worker(W1), attempt=1))  # a duplicate ack / late retry
    assert [type(e) for e in job.events].count(JobCompleted) == 1


@pytest.mark.parametrize(
    ("reported", "stored"),
    [
        (-5.0, 0.0),
        (0.0, 0.0),
        (42.5, 42.5),
        (100.0, 100.0),
        (150.0, 100.0),
        (float("inf"), 100.0),
        (float("-inf"), 0.0),
    ],
)
def test_progress_is_clamped_to_0_100(reported: float, stored: float) -> None:
    job = Job()
    job.start(W1)

    (progressed,) = job.do(ReportProgress(**job.worker(W1), attempt=1, progress=reported))

    assert progressed.data == ProgressedData(attempt=1, progress=stored)
    assert job.state.progress == stored


# --- runnable events: the ones that queue a run ------------------------------------------


def test_submit_queues_run_1_not_before_run_at() -> None:
    run_at = at(60)
    (submitted,) = decide(
        SubmitJob(job_id=JOB, now=T0, actor=USER, type="noop", run_at=run_at), None
    )

    assert runnable(submitted) and not_before(submitted) == run_at
    assert evolve(None, submitted).run == 1


def test_restart_queues_the_next_run_at_once() -> None:
    job = Job(run_at=at(60))
    job.do(StopJob(**job.user()))

    (restarted,) = job.do(RestartJob(**job.user()))

    assert runnable(restarted) and not_before(restarted) is None
    assert (job.state.run, job.state.run_at) == (2, None)


@pytest.mark.parametrize(
    "name",
    ["start", "progress", "complete", "fail, none left", "stop", "confirm stop", "delete"],
)
def test_nothing_is_queued_when_the_run_does_not_change(name: str) -> None:
    state = {"start": "pending", "confirm stop": "stopping", "delete": "completed"}.get(
        name, "running"
    )
    before = fold(history(state))
    produced = decide(command(name), before)
    after = fold(history(state) + produced)

    assert after is not None and before is not None
    assert not any(runnable(e) for e in produced)
    assert after.run == before.run


def test_a_job_is_queued_at_most_max_runs_times() -> None:
    """Every decision on a job reads its history, so a job restarted in a loop stops at
    ``MAX_RUNS`` (its submission, retries and restarts) and says what to do instead."""
    job = Job()
    for _ in range(MAX_RUNS - 1):
        job.do(StopJob(**job.user()))
        job.do(RestartJob(**job.user()))
    assert job.state.run == MAX_RUNS
    job.do(StopJob(**job.user()))

    with pytest.raises(TooManyRuns, match=rf"queued {MAX_RUNS} times.*submit a new job"):
        job.do(RestartJob(**job.user()))
    assert isinstance(TooManyRuns(), InvalidTransition)  # the API answers 409
