"""The pure part of the projection: fold a batch of events into the affected rows."""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, MutableMapping
from dataclasses import dataclass, field

from conveyor_db.stats import StatsDelta
from conveyor_events import AnyEvent, IllegalEvent, JobState, step

log = logging.getLogger("conveyor.projector")


@dataclass
class Changes:
    upserts: dict[str, JobState] = field(default_factory=dict)
    deletes: dict[str, int] = field(default_factory=dict)
    """Deleted jobs and the sequence of their ``job.deleted`` (their tombstones)."""
    skipped: list[tuple[int, str]] = field(default_factory=list)
    """(seq, reason) of events that could not be applied: transitions the table forbids."""
    stats: StatsDelta = field(default_factory=StatsDelta)
    """What the applied events change in the statistics (``conveyor_db.stats``)."""


def project(
    states: MutableMapping[str, JobState],
    events: Iterable[tuple[int, AnyEvent]],
    *,
    uncounted: Collection[str] = (),
) -> Changes:
    """Apply events in order to ``states`` (the rows they touch, updated in place; a deleted
    job's state, from its tombstone, has ``deleted=True``). An event the transitions table
    forbids in its job's state is skipped, as ``history_problems`` flags it, so the rows stay
    the fold of the events that were applied; since a deleted job stays deleted from one batch
    to the next, whatever follows its ``job.deleted`` is skipped wherever the batches end.
    ``uncounted``: jobs whose states ``job_counts`` does not hold (pruned by retention, folded
    from the log again): the statistics take them as new."""
    changes = Changes()
    for seq, event in events:
        before = states.get(event.job_id)
        counted = None if event.job_id in uncounted else before
        try:
            state = step(before, event, seq=seq)
        except IllegalEvent as e:
            changes.skipped.append((seq, str(e)))
            continue
        states[event.job_id] = state
        changes.stats.track(counted, state)
        if state.deleted:
            changes.upserts.pop(event.job_id, None)
            changes.deletes[event.job_id] = seq
        else:
            changes.upserts[event.job_id] = state
            changes.deletes.pop(event.job_id, None)
    return changes
