"""Property-based tests of ``decide`` and ``evolve`` (issue 3, test 10).

Hypothesis plays random command sequences against one job: every command kind, attempts and
run numbers that are current, stale or from the future, several workers, permanent and
retryable failures. Each command is decided on the state folded so far; a DomainError means
"rejected, nothing appended", otherwise its events are appended. Whatever the sequence, the
history must be a valid path through SPEC §2.1 and fold the same way however it is folded.

The last tests run the same properties against deliberately broken ``decide``/``evolve``
wrappers (local to this module) and show that Hypothesis finds a counterexample for each.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import reduce
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st

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
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobState,
    JobStopped,
    JobStopRequested,
    JobSubmitted,
    ReportProgress,
    RestartJob,
    StartJob,
    StopJob,
    SubmitJob,
    decide,
    evolve,
)
from conveyor_events.events import CompletedData
from conveyor_events.invariants import history_problems
from conveyor_events.testing import JOB, T0

pytestmark = pytest.mark.unit

USER = "user:alice"
WORKERS = ("w-1", "w-2", "w-3")
BOOM = ErrorInfo(type="RuntimeError", message="boom")

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CONTROLS = settings(max_examples=1000, deadline=None, database=None, phases=[Phase.generate])

Decide = Callable[[AnyCommand, JobState | None], list[AnyEvent]]
Evolve = Callable[[JobState | None, AnyEvent], JobState]

# -- commands ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One command, with its attempt/run given relative to the job's current ones (``delta``
    0 is current, -1 stale, +1 from the future), so that a random sequence hits the current
    attempt often enough to get somewhere, and stale ones often enough to test fencing."""

    kind: str
    delta: int = 0
    worker: str = WORKERS[0]
    permanent: bool = False
    max_attempts: int = 1
    max_deliveries: int | None = None

    def command(self, state: JobState | None, now: datetime) -> AnyCommand:
        attempt = (state.attempt if state else 0) + self.delta
        run = (state.run if state else 1) + self.delta
        user: dict[str, Any] = {"job_id": JOB, "now": now, "actor": USER}
        worker: dict[str, Any] = {"job_id": JOB, "now": now, "actor": f"worker:{self.worker}"}
        match self.kind:
            case "submit":
                return SubmitJob(**user, type="sleep", max_attempts=self.max_attempts)
            case "start":
                return StartJob(
                    **worker, worker_id=self.worker, run=run, max_deliveries=self.max_deliveries
                )
            case "progress":
                return ReportProgress(**worker, attempt=attempt, progress=50.0)
            case "complete":
                return CompleteJob(**worker, attempt=attempt, result={"ok": True})
            case "fail":
                return FailJob(
                    **worker,
                    attempt=attempt,
                    error=BOOM,
                    retry_delay_s=1.0,
                    permanent=self.permanent,
                )
            case "confirm_stop":
                return ConfirmStop(**worker, attempt=attempt)
            case "stop":
                return StopJob(**user)
            case "restart":
                return RestartJob(**user)
            case "delete":
                return DeleteJob(**user)
        raise AssertionError(self.kind)


def _all_steps() -> list[Step]:
    """Every step there is, each worker step with its weight in copies: scripts go deep
    (retries, several restarts) before a completion or a delete ends them, and current
    attempts come up four times as often as stale or future ones. One draw per step keeps
    generation cheap."""
    steps = []
    weights = {"start": 1, "fail": 3, "progress": 1, "complete": 1, "confirm_stop": 1}
    for kind, weight in weights.items():
        for delta in (0, 0, 0, 0, -1, 1):
            for worker in WORKERS:
                for permanent in (False, False, True):
                    for limit in (None, None, 1, 2) if kind == "start" else (None,):
                        steps += [Step(kind, delta, worker, permanent, 1, limit)] * weight
    user = {"stop": 2, "restart": 3, "delete": 1, "submit": 1}
    for kind, weight in user.items():
        for max_attempts in (1, 2, 3, 4):
            steps += [Step(kind, max_attempts=max_attempts)] * weight * 18
    return steps


STEPS = st.sampled_from(_all_steps())


@st.composite
def scripts(draw: st.DrawFn) -> list[Step]:
    """A submit (usually first, sometimes not), then up to 50 random commands (the length is
    drawn first: Hypothesis's own lists are mostly short)."""
    first = Step("submit", max_attempts=draw(st.integers(1, 4)))
    n = draw(st.integers(0, 50))
    rest = draw(st.lists(STEPS, min_size=n, max_size=n))
    if draw(st.integers(0, 9)) == 0:
        return rest  # no submit first: everything is rejected until one comes
    return [first, *rest]


# -- playing a script ------------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    command: AnyCommand
    before: JobState | None
    events: list[AnyEvent] | None
    """None when decide rejected the command."""


@dataclass(frozen=True)
class Played:
    history: list[AnyEvent]
    steps: list[Decided]
    state: JobState | None


def play(steps: Sequence[Step], decide: Decide = decide, evolve: Evolve = evolve) -> Played:
    state: JobState | None = None
    history: list[AnyEvent] = []
    decided: list[Decided] = []
    for n, step in enumerate(steps):
        command = step.command(state, T0 + timedelta(seconds=n))
        try:
            events = decide(command, state)
        except DomainError:
            decided.append(Decided(command, state, None))
            continue
        assert decide(command, state) == events, "decide is not a function of its inputs"
        decided.append(Decided(command, state, events))
        for event in events:
            state = evolve(state, event)
            history.append(event)
    return Played(history, decided, state)


def fold_with(
    evolve: Evolve, events: Sequence[AnyEvent], start: JobState | None = None
) -> JobState | None:
    return reduce(evolve, events, start)


# -- the properties, as a list of violations (so the controls can search for them) -----------


def violations(played: Played, evolve: Evolve = evolve) -> list[str]:
    found = [f"table: {p}" for p in history_problems(played.history)]
    history = played.history
    completions = sum(isinstance(e, JobCompleted) for e in history)
    if completions > 1:
        found.append(f"{completions} job.completed")
    found += _fold_problems(played, evolve)
    found += _attempt_problems(history)
    found += _budget_problems(played)
    found += _delivery_problems(played)
    found += _table_problems(played)
    return found


def _fold_problems(played: Played, evolve: Evolve) -> list[str]:
    history = played.history
    whole = fold_with(evolve, history)
    found = []
    if whole != played.state:
        found.append("fold of the history differs from the state built step by step")
    if fold_with(evolve, history) != whole:
        found.append("folding twice gives different states")
    for k in range(len(history) + 1):
        if fold_with(evolve, history[k:], fold_with(evolve, history[:k])) != whole:
            found.append(f"fold(prefix {k}) + rest differs from fold(whole)")
            break
    if whole is not None and whole.version != len(history):
        found.append(f"version {whole.version} after {len(history)} events")
    return found


def _attempt_problems(history: Sequence[AnyEvent]) -> list[str]:
    """Attempts start at 1 and go up by one per job.started, whatever happens in between;
    every other attempt-bearing event names the current attempt."""
    found = []
    attempt = 0
    for event in history:
        named: int | None = None
        match event:
            case JobStarted(data=d):
                if d.attempt != attempt + 1:
                    found.append(f"attempt {d.attempt} started after attempt {attempt}")
                attempt = d.attempt
            case JobProgressed(data=d) | JobCompleted(data=d) | JobFailed(data=d):
                named = d.attempt
            case JobStopped(data=d):
                named = d.attempt
        if named is not None and named != attempt:
            found.append(f"{event.name} for attempt {named} while {attempt} is current")
    return found


def _budget_problems(played: Played) -> list[str]:
    """Counted from the history alone (not from the state's bookkeeping): a retryable
    failure retries exactly while the current budget has attempts left, and a restart
    starts a fresh budget of ``max_attempts``."""
    found = []
    max_attempts = 1
    used = 0  # attempts started since the budget began (submit or the last restart)
    for d in played.steps:
        if d.events is None:
            continue
        cmd = d.command
        if isinstance(cmd, FailJob):
            [event] = d.events
            assert isinstance(event, JobFailed)
            assert d.before is not None
            expected = not cmd.permanent and not d.before.stop_requested and used < max_attempts
            if event.data.retry != expected:
                found.append(
                    f"attempt {cmd.attempt} failed with {used} of {max_attempts} attempts used: "
                    f"retry {event.data.retry}, expected {expected}"
                )
        for event in d.events:
            if isinstance(event, JobSubmitted):
                max_attempts, used = event.data.max_attempts, 0
            elif isinstance(event, JobRestarted):
                used = 0
            elif isinstance(event, JobStarted):
                used += 1
    return found


def _delivery_problems(played: Played) -> list[str]:
    """A start with ``max_deliveries`` fails the job (WorkerLost) exactly when its run was
    already started that many times and is still running; otherwise it starts an attempt."""
    found = []
    starts = 0  # starts of the current run (reset whenever the job is queued again)
    for d in played.steps:
        cmd = d.command
        if d.events is None:
            continue
        if isinstance(cmd, StartJob) and d.before is not None and not d.before.stop_requested:
            limit = cmd.max_deliveries
            lost = limit is not None and d.before.status == "running" and starts >= limit
            [event] = d.events
            got_lost = isinstance(event, JobFailed) and event.data.error.type == "WorkerLost"
            if got_lost != lost or (not lost and not isinstance(event, JobStarted)):
                found.append(f"run started {starts} times, max_deliveries {limit}: {event.name}")
        for event in d.events:
            if isinstance(event, JobSubmitted | JobRestarted) or (
                isinstance(event, JobFailed) and event.data.retry
            ):
                starts = 0
            elif isinstance(event, JobStarted):
                starts += 1
    return found


def _table_problems(played: Played) -> list[str]:
    """Rejected commands append nothing; a job leaves a terminal state only as the table
    says; and on every state reached, the user actions the table allows are accepted (not
    only 'never wrong' but also 'never stuck')."""
    found = []
    version = 0
    for d in played.steps:
        state = d.before
        if (state.version if state else 0) != version:
            found.append(f"version {state.version if state else 0}, {version} events appended")
        version += len(d.events or [])
        if state is None:
            continue
        kind = type(d.command)
        if d.events is not None and (
            state.deleted
            or (state.status == "completed" and kind is not DeleteJob)
            or (state.status in ("failed", "stopped") and kind not in (RestartJob, DeleteJob))
        ):
            found.append(f"{kind.__name__} accepted on a {state.status} job")
        if state.deleted:
            continue
        allowed: dict[type[StopJob | RestartJob | DeleteJob], bool] = {
            StopJob: state.status in ("pending", "running"),
            RestartJob: state.status in ("failed", "stopped"),
            DeleteJob: state.status in ("completed", "failed", "stopped"),
        }
        for action, ok in allowed.items():
            try:
                decide(action(job_id=JOB, now=d.command.now, actor=USER), state)
                accepted = True
            except DomainError:
                accepted = False
            if accepted != ok:
                verb = "accepted" if accepted else "refused"
                found.append(f"{action.__name__} {verb} on a {state.status} job")
    return found


# -- the property ------------------------------------------------------------------------------


@PROPERTIES
@given(scripts())
def test_random_command_sequences_only_produce_valid_histories(steps: list[Step]) -> None:
    assert violations(play(steps)) == []


def search(condition: Callable[[list[Step]], bool]) -> list[Step]:
    """A script for which ``condition`` holds, found by Hypothesis (without shrinking: the
    point is that one exists, and shrinking 50-step scripts is slow)."""
    return find(scripts(), condition, settings=CONTROLS)


def _having(kind: type[AnyEvent]) -> Callable[[list[Step]], bool]:
    return lambda steps: any(isinstance(e, kind) for e in play(steps).history)


def test_the_scripts_go_deep() -> None:
    """The generator is not stuck in the shallow end: it reaches every event type, lives
    with retries and several restarts, and lost workers (so the property is about something)."""
    for kind in (JobCompleted, JobFailed, JobStopRequested, JobStopped, JobRestarted, JobDeleted):
        search(_having(kind))

    def deep(steps: list[Step]) -> bool:
        history = play(steps).history
        restarts = sum(isinstance(e, JobRestarted) for e in history)
        return restarts >= 2 and any(isinstance(e, JobFailed) and e.data.retry for e in history)

    def worker_lost(steps: list[Step]) -> bool:
        history = play(steps).history
        return any(isinstance(e, JobFailed) and e.data.error.type == "WorkerLost" for e in history)

    search(deep)
    search(worker_lost)


# -- controls: the same property catches a broken decide or evolve -----------------------------


def _accepts_late_completions(command: AnyCommand, state: JobState | None) -> list[AnyEvent]:
    """A decide that takes a late ack from a fenced-off attempt (the zombie-worker bug)."""
    try:
        return decide(command, state)
    except InvalidTransition:
        if not isinstance(command, CompleteJob):
            raise
        data = CompletedData(attempt=command.attempt, result=command.result)
        return [JobCompleted(job_id=command.job_id, at=command.now, actor=command.actor, data=data)]


def _restart_keeps_the_budget(state: JobState | None, event: AnyEvent) -> JobState:
    """An evolve that forgets that a restart gives a fresh attempt budget."""
    after = evolve(state, event)
    if isinstance(event, JobRestarted) and state is not None:
        return msgspec.structs.replace(after, attempts_base=state.attempts_base)
    return after


def _start_skips_an_attempt(state: JobState | None, event: AnyEvent) -> JobState:
    """An evolve that counts a redelivery twice."""
    after = evolve(state, event)
    if isinstance(event, JobStarted) and state is not None and state.status == "running":
        return msgspec.structs.replace(after, attempt=after.attempt + 1)
    return after


def test_a_decide_that_accepts_late_completions_is_caught() -> None:
    bad = search(lambda s: bool(violations(play(s, decide=_accepts_late_completions))))

    problems = violations(play(bad, decide=_accepts_late_completions))
    assert any("job.completed" in p for p in problems), problems


def test_an_evolve_that_keeps_the_budget_across_a_restart_is_caught() -> None:
    def broken(steps: list[Step]) -> list[str]:
        return violations(play(steps, evolve=_restart_keeps_the_budget), _restart_keeps_the_budget)

    bad = search(lambda s: bool(broken(s)))

    assert any("attempts used" in p for p in broken(bad)), broken(bad)
    assert violations(play(bad)) == []


def test_an_evolve_that_skips_an_attempt_is_caught() -> None:
    def broken(steps: list[Step]) -> list[str]:
        return violations(play(steps, evolve=_start_skips_an_attempt), _start_skips_an_attempt)

    bad = search(lambda s: bool(broken(s)))

    assert any("attempt" in p for p in broken(bad)), broken(bad)
    assert violations(play(bad)) == []
