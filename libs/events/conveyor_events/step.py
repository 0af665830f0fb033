"""``step(state, event)``: may this event follow, and what state results.

The one rule every reader of the log applies: the event store when it folds a job, the
projector, ``conveyor verify`` and the invariant checks. An event the transitions table
forbids raises :class:`IllegalEvent` and changes nothing; :func:`evolve` alone trusts its
input (it is for events that :func:`~conveyor_events.decide.decide` just produced).
"""

from __future__ import annotations

from collections.abc import Iterable

from conveyor_events.errors import IllegalEvent
from conveyor_events.events import (
    AnyEvent,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobStopped,
    JobStopRequested,
    JobSubmitted,
)
from conveyor_events.state import JobState, evolve


def step(state: JobState | None, event: AnyEvent, *, seq: int | None = None) -> JobState:
    """The state after ``event`` (stored at ``seq`` in the log: the state's ``seq``, when
    given); raises :class:`IllegalEvent` when the transitions table forbids it in ``state``
    (None: the job has no history yet)."""
    problem = _problem(state, event)
    if problem is not None:
        raise IllegalEvent(problem, event)
    return evolve(state, event, seq=seq)


def fold_stored(events: Iterable[tuple[int, AnyEvent]]) -> JobState | None:
    """The state after ``(seq, event)`` pairs of one job's log, in order, an event the table
    forbids left out (as every reader of the log leaves it out); ``seq`` is the last applied
    one's."""
    state: JobState | None = None
    for seq, event in events:
        try:
            state = step(state, event, seq=seq)
        except IllegalEvent:
            continue
    return state


def fold_legal(events: Iterable[AnyEvent]) -> tuple[JobState | None, list[IllegalEvent]]:
    """Every event stepped in order, an illegal one left out (the rest judged from the state
    before it): the state, and what was left out."""
    state: JobState | None = None
    left_out: list[IllegalEvent] = []
    for event in events:
        try:
            state = step(state, event)
        except IllegalEvent as e:
            left_out.append(e)
    return state, left_out


def _problem(state: JobState | None, event: AnyEvent) -> str | None:
    if isinstance(event, JobSubmitted):
        return None if state is None else "submitted twice"
    if state is None:
        return "before job.submitted"
    if state.deleted:
        return "after job.deleted"
    status = state.status
    match event:
        case JobStarted(data=d):
            if status not in ("pending", "running"):
                return f"started while {status}"
            if d.attempt != state.attempt + 1:
                return f"attempt {d.attempt} after attempt {state.attempt}"
            return None
        case JobProgressed(data=d) | JobCompleted(data=d) | JobFailed(data=d):
            if status != "running":
                return f"while {status}"
            if d.attempt != state.attempt:
                return f"for attempt {d.attempt} while attempt {state.attempt} is current"
            return None
        case JobStopRequested():
            return (
                None
                if status == "running" and not state.stop_requested
                else f"stop requested while {status}"
            )
        case JobStopped(data=d):
            if status == "pending" and d.attempt is None:
                return None
            if status == "running" and state.stop_requested and d.attempt == state.attempt:
                return None
            return f"stopped while {status} (stop requested: {state.stop_requested})"
        case JobRestarted():
            return None if status in ("failed", "stopped") else f"restarted while {status}"
        case JobDeleted():
            return (
                None if status in ("completed", "failed", "stopped") else f"deleted while {status}"
            )
    return None
