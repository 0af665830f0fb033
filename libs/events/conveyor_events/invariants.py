"""Checks of a job's history against the transitions table (SPEC §6, invariants 2 and 4)."""

from __future__ import annotations

from collections.abc import Sequence

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


def history_problems(events: Sequence[AnyEvent]) -> list[str]:
    """Every way this history leaves the transitions table; empty for a valid path."""
    problems: list[str] = []
    state: JobState | None = None
    completions = 0
    for index, event in enumerate(events):
        problem = illegal_transition(state, event)
        if problem:
            problems.append(f"event {index + 1} ({event.name}): {problem}")
            continue
        completions += isinstance(event, JobCompleted)
        state = evolve(state, event)
    if completions > 1:
        problems.append(f"{completions} job.completed events (at most one is allowed)")
    return problems


def illegal_transition(state: JobState | None, event: AnyEvent) -> str | None:
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
