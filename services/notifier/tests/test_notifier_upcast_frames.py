"""The feed shows an old version of an event as every reader does: upcast (the hypothetical
job.progressed change of libs/events/tests/test_upcast.py, registered while a test runs)."""

from __future__ import annotations

import json

import pytest

from conveyor_bus import StoredMsg
from conveyor_events import encode_event
from conveyor_events import testing as ev
from conveyor_events.upcast import UPCASTERS, Doc
from conveyor_notifier.frames import frame

pytestmark = pytest.mark.unit

SUBJECT = f"conveyor.job.{ev.JOB}.progressed"
OLD = {
    "type": "job.progressed",
    "job_id": ev.JOB,
    "at": "2026-11-23T10:00:00Z",
    "actor": ev.WORKER,
    "data": {"attempt": 1, "fraction": 0.4},
}


def fraction_to_percent(doc: Doc) -> Doc:
    doc["data"]["progress"] = doc["data"].pop("fraction") * 100
    return doc


def test_an_old_version_is_framed_upcast_and_the_current_one_without_its_version() -> None:
    with UPCASTERS.extended("job.progressed", fraction_to_percent):
        old = frame(StoredMsg(5, SUBJECT, json.dumps(OLD).encode()))
        current = frame(StoredMsg(6, SUBJECT, encode_event(ev.progressed(1, 60))))
    assert isinstance(old, bytes) and isinstance(current, bytes)
    assert json.loads(old) == {
        "seq": 5,
        **OLD,
        "data": {"attempt": 1, "progress": 40.0, "message": None},
    }
    assert json.loads(current)["data"]["progress"] == 60.0
    assert "v" not in json.loads(current)
