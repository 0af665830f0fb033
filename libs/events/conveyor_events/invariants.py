"""Checks of a job's history against the transitions table (SPEC §6, invariants 2 and 4)."""

from __future__ import annotations

from collections.abc import Sequence

from conveyor_events.errors import IllegalEvent
from conveyor_events.events import AnyEvent, JobCompleted
from conveyor_events.state import JobState
from conveyor_events.step import step


def history_problems(events: Sequence[AnyEvent]) -> list[str]:
    """Every way this history leaves the transitions table; empty for a valid path. An
    illegal event is reported with its position and left out; the rest is judged from the
    state before it."""
    problems: list[str] = []
    state: JobState | None = None
    completions = 0
    for index, event in enumerate(events):
        try:
            state = step(state, event)
        except IllegalEvent as e:
            problems.append(f"event {index + 1} ({event.name}): {e.problem}")
            continue
        completions += isinstance(event, JobCompleted)
    if completions > 1:
        problems.append(f"{completions} job.completed events (at most one is allowed)")
    return problems
