"""Golden events: stored events as Conveyor wrote them, one file per shape ever written, in
``golden/<wire name>/v<version>[-<what changed>].json``.

Every later version of the code must still read them: a golden file is never edited to
follow the code, only added. A compatible change (a field added with a default) adds a file
of the same version (``v1-audit.json``); an incompatible one raises the type's version
(conveyor_events.upcast) and adds ``v<n>.json``. Each file decodes, and re-encodes to the
type's current version without losing what it says.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from conveyor_events import EVENT_TYPES, JobFailed, JobSubmitted, decode_event, encode_event
from conveyor_events.upcast import UPCASTERS, VERSION_KEY

pytestmark = pytest.mark.unit

GOLDEN = Path(__file__).parent / "golden"
FILES = sorted(GOLDEN.glob("*/*.json"))
NAME = re.compile(r"v(?P<version>[1-9][0-9]*)(-[a-z0-9-]+)?\.json")


def golden(path: Path) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(path.read_text())
    return parsed


def file_id(path: Path) -> str:
    return f"{path.parent.name}/{path.stem}"


def version_in_name(path: Path) -> int:
    found = NAME.fullmatch(path.name)
    assert found is not None, f"{file_id(path)}: name it v<version>[-<what changed>].json"
    return int(found["version"])


def contains(whole: Any, part: Any) -> bool:
    """Whether ``whole`` has every key of ``part`` (recursively) with an equal value."""
    if isinstance(part, dict):
        return isinstance(whole, dict) and all(
            key in whole and contains(whole[key], value) for key, value in part.items()
        )
    return bool(whole == part)


def test_every_version_of_every_event_type_has_a_golden_file() -> None:
    assert sorted({p.parent.name for p in FILES}) == sorted(EVENT_TYPES)
    for name in EVENT_TYPES:
        versions = {version_in_name(p) for p in FILES if p.parent.name == name}
        assert versions == set(range(1, UPCASTERS.version(name) + 1)), name


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_golden_file_is_the_version_its_name_says(path: Path) -> None:
    doc = golden(path)
    assert doc["type"] == path.parent.name
    assert UPCASTERS.version_of(doc) == version_in_name(path)


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_golden_event_decodes(path: Path) -> None:
    event = decode_event(path.read_bytes())

    assert event.name == path.parent.name
    assert event.job_id == "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
    assert event.at == datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert event.actor == golden(path)["actor"]


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_golden_event_re_encodes_to_the_current_version(path: Path) -> None:
    event = decode_event(path.read_bytes())

    encoded = json.loads(encode_event(event))

    assert encoded.get(VERSION_KEY, 1) == UPCASTERS.version(event.name)
    assert decode_event(json.dumps(encoded).encode()) == event
    # nothing the golden file says (as upcast) is lost or renamed on the way back out
    assert contains(encoded, UPCASTERS.upcast(golden(path)))


@pytest.mark.parametrize("path", FILES, ids=file_id)
def test_unknown_fields_are_ignored(path: Path) -> None:
    """A newer producer added fields: this version still reads the event."""
    newer = golden(path)
    newer["trace_id"] = "4bf92f3577b34da6a3ce929d0e0e4736"
    newer["data"]["added_later"] = {"nested": [1, 2, 3]}

    event = decode_event(json.dumps(newer).encode())

    assert event == decode_event(path.read_bytes())


def test_golden_values_decode_as_written() -> None:
    submitted = decode_event((GOLDEN / "job.submitted" / "v1.json").read_bytes())
    failed = decode_event((GOLDEN / "job.failed" / "v1.json").read_bytes())

    assert isinstance(submitted, JobSubmitted)
    assert submitted.data.payload == {"seconds": 2.5, "steps": 5, "fail": False}
    assert submitted.data.run_at == datetime(2026, 11, 23, 10, 5, tzinfo=UTC)
    assert isinstance(failed, JobFailed)
    assert failed.data.error.type == "TimeoutError"
    assert failed.data.retry_at == datetime(2026, 11, 23, 10, 0, 30, tzinfo=UTC)
