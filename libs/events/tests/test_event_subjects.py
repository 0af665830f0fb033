"""The subjects a read of the log filters on (names.event_subjects), against where each event
is stored (events.subject_of)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from conveyor_events import AnyEvent, names, runnable, subject_of
from conveyor_events import testing as ev

pytestmark = pytest.mark.unit


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: ``*`` one token, ``>`` one or more at the end."""
    want, got = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(got) > i
        if i >= len(got) or token not in ("*", got[i]):
            return False
    return len(got) == len(want)


EVENTS: list[AnyEvent] = [
    ev.submitted(),
    ev.submitted(run_at=ev.T0 + timedelta(minutes=1)),
    ev.started(),
    ev.progressed(),
    ev.completed(),
    ev.failed(1, retry=True),
    ev.failed(1, retry=True, retry_at=ev.T0 + timedelta(minutes=1)),
    ev.failed(1),
    ev.stop_requested(),
    ev.stopped(),
    ev.restarted(),
    ev.deleted(),
]


def test_queued_event_types_are_the_runnable_ones() -> None:
    assert {e.name for e in EVENTS if runnable(e)} == set(names.QUEUED_EVENT_TYPES)


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: e.name)
@pytest.mark.parametrize("priority", names.PRIORITIES)
def test_every_stored_event_is_in_exactly_the_filters_that_name_it(
    event: AnyEvent, priority: names.Priority
) -> None:
    stored = subject_of(event, priority)
    for job in (event.job_id, "01OTHERJOB0000000000000000", None):
        for event_type in (event.name, "job.progressed", "job.deleted", None):
            hits = [s for s in names.event_subjects(job, event_type) if matches(s, stored)]
            wanted = job in (event.job_id, None) and event_type in (event.name, None)
            assert len(hits) == (1 if wanted else 0), (stored, job, event_type, hits)
