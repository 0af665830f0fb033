"""The pure part of the projection: fold a batch of events into the affected rows."""

from __future__ import annotations

import logging
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass, field

from conveyor_events import AnyEvent, JobState, evolve

log = logging.getLogger("conveyor.projector")


@dataclass
class Changes:
    upserts: dict[str, JobState] = field(default_factory=dict)
    deletes: set[str] = field(default_factory=set)
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """(seq, reason) of events that could not be applied."""


def project(
    states: MutableMapping[str, JobState], events: Iterable[tuple[int, AnyEvent]]
) -> Changes:
    """Apply events in order to ``states`` (the rows they touch, updated in place)."""
    changes = Changes()
    for seq, event in events:
        try:
            state = evolve(states.get(event.job_id), event)
        except ValueError as e:
            changes.skipped.append((seq, str(e)))
            continue
        states[event.job_id] = state
        if state.deleted:
            changes.upserts.pop(event.job_id, None)
            changes.deletes.add(event.job_id)
        else:
            changes.upserts[event.job_id] = state
            changes.deletes.discard(event.job_id)
    return changes
