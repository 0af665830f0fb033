"""Golden events: one hand-written stored event per type, in ``golden/<wire name>.json``.

They are the wire format as it was written; every later version of the code must still read
them. Schemas evolve only by adding fields with defaults, so a golden file is never edited to
follow the code, only added.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor_events import EVENT_TYPES, JobFailed, JobSubmitted, decode_event, encode_event

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"


def golden(name: str) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads((GOLDEN / f"{name}.json").read_text())
    return parsed


def contains(whole: Any, part: Any) -> bool:
    """Whether ``whole`` has every key of ``part`` (recursively) with an equal value."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contains(whole[key], value) for key, value in part.items()
        )
    return bool(whole == part)


def test_every_event_type_has_a_golden_file() -> None:
    assert sorted(p.name.removesuffix(".json") for p in GOLDEN.glob("*.json")) == sorted(
        EVENT_TYPES
    )


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_golden_event_decodes(name: str) -> None:
    raw = (GOLDEN / f"{name}.json").read_bytes()

    event = decode_event(raw)

    assert event.name == name
    assert event.job_id == "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
    assert event.at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert event.actor == golden(name)["actor"]


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_golden_event_round_trips(name: str) -> None:
    event = decode_event((GOLDEN / f"{name}.json").read_bytes())

    encoded = encode_event(event)

    assert decode_event(encoded) == event
    # nothing the golden file says is lost or renamed on the way back out
    assert contains(json.loads(encoded), golden(name))


@pytest.mark.parametrize("name", EVENT_TYPES)
def test_unknown_fields_are_ignored(name: str) -> None:
    """A newer producer added fields: this version still reads the event."""
    newer = golden(name)
    newer["trace_id"] = "4bf92f3577b34da6a3ce929d0e0e4736"
    newer["data"]["added_in_v2"] = {"nested": [1, 2, 3]}

    event = decode_event(json.dumps(newer).encode())

    assert event == decode_event((GOLDEN / f"{name}.json").read_bytes())


def test_golden_values_decode_as_written() -> None:
    submitted = decode_event((GOLDEN / "job.submitted.json").read_bytes())
    failed = decode_event((GOLDEN / "job.failed.json").read_bytes())

    assert isinstance(submitted, JobSubmitted)
    assert submitted.data.payload == {"seconds": 2.5, "steps": 5, "fail": False}
    assert submitted.data.run_at == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    assert isinstance(failed, JobFailed)
    assert failed.data.error.type == "TimeoutError"
    assert failed.data.retry_at == datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
