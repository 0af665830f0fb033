"""Upcasting on read (conveyor_events.upcast), shown on a hypothetical change: suppose
``job.progressed`` version 1 had stored ``{"fraction": 0.4, "note": "..."}`` and version 2
(today's struct) stores ``{"progress": 40.0, "message": "..."}``. No such version 1 was ever
written (every stored event is version 1 of today's shape), so the chain is registered only
while a test runs (``UPCASTERS.extended``)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest

from conveyor_events import JobProgressed, decode_event, encode_event
from conveyor_events import testing as ev
from conveyor_events.poison import Poison, read_event
from conveyor_events.upcast import UPCASTERS, Doc, UpcastError, Upcasters

pytestmark = pytest.mark.unit

SUBJECT = f"conveyor.job.{ev.JOB}.progressed"


def fraction_to_percent(doc: Doc) -> Doc:
    """job.progressed 1 -> 2: ``fraction`` (0..1) became ``progress`` (0..100), ``note``
    became ``message``."""
    data = doc["data"]
    data["progress"] = data.pop("fraction") * 100
    if "note" in data:
        data["message"] = data.pop("note")
    return doc


@pytest.fixture
def evolved() -> Iterator[None]:
    with UPCASTERS.extended("job.progressed", fraction_to_percent):
        yield


def v1(fraction: Any = 0.4, **data: Any) -> bytes:
    doc = {
        "type": "job.progressed",
        "job_id": ev.JOB,
        "at": "2026-11-23T10:00:00Z",
        "actor": ev.WORKER,
        "data": {"attempt": 1, "fraction": fraction, "note": "half way", **data},
    }
    return json.dumps(doc).encode()


def test_an_old_version_is_upcast_on_read(evolved: None) -> None:
    event = decode_event(v1())

    assert event == ev.progressed(1, 40.0, "half way")


def test_the_current_version_is_written_with_its_number_and_read_as_it_is(evolved: None) -> None:
    """The current version is not upcast again, though version 1 decoding of it would fit."""
    raw = encode_event(ev.progressed(1, 40.0, "m"))

    assert json.loads(raw)["v"] == 2
    assert decode_event(raw) == ev.progressed(1, 40.0, "m")


def test_an_old_version_that_fits_todays_struct_is_upcast_all_the_same() -> None:
    """A change of meaning without a change of shape: version 1 stored a fraction in
    ``progress`` itself. The typed decode succeeds; the version says it must be upcast."""

    def fraction_in_place(doc: Doc) -> Doc:
        doc["data"]["progress"] *= 100
        return doc

    old = encode_event(ev.progressed(1, 0.25))
    with UPCASTERS.extended("job.progressed", fraction_in_place):
        assert decode_event(old) == ev.progressed(1, 25.0)
        assert decode_event(encode_event(ev.progressed(1, 25.0))) == ev.progressed(1, 25.0)


def test_the_steps_run_in_order_from_the_stored_version() -> None:
    def to_v3(doc: Doc) -> Doc:
        doc["data"]["message"] = f"v3: {doc['data'].get('message')}"
        return doc

    with UPCASTERS.extended("job.progressed", fraction_to_percent, to_v3):
        assert decode_event(v1()) == ev.progressed(1, 40.0, "v3: half way")
        v2 = json.loads(v1())
        v2.update(v=2, data={"attempt": 1, "progress": 10, "message": "m"})
        assert decode_event(json.dumps(v2).encode()) == ev.progressed(1, 10.0, "v3: m")
        assert json.loads(encode_event(ev.progressed()))["v"] == 3


def test_a_newer_version_than_this_code_knows_is_read_as_it_is(evolved: None) -> None:
    newer = json.loads(encode_event(ev.progressed(1, 40.0)))
    newer["v"] = 7

    assert decode_event(json.dumps(newer).encode()) == ev.progressed(1, 40.0)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (v1(fraction="most"), "Expected `float`, got `str` - at `$.data.progress`"),
        (json.dumps({**json.loads(v1()), "data": {"attempt": 1}}).encode(), "cannot be upcast"),
        (json.dumps({**json.loads(v1()), "v": 0}).encode(), "`v` must be an integer >= 1"),
        (json.dumps({**json.loads(v1()), "v": "1"}).encode(), "`v` must be an integer >= 1"),
    ],
)
def test_an_old_event_no_upcaster_can_read_is_poison(
    evolved: None, raw: bytes, reason: str
) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_event(raw)
    found = read_event(SUBJECT, raw)
    assert isinstance(found, Poison)
    assert found.kind == "invalid"
    assert reason in found.reason


def test_without_the_chain_the_old_version_is_poison_and_nothing_is_written_with_v() -> None:
    assert isinstance(read_event(SUBJECT, v1()), Poison)
    assert "v" not in json.loads(encode_event(ev.progressed()))
    assert UPCASTERS.version("job.progressed") == 1


def test_versions_are_registered_in_order_and_extended_restores_them() -> None:
    registry = Upcasters()
    with pytest.raises(ValueError, match="the next upcaster is from version 1, not 2"):
        registry.register("job.started", 2)(fraction_to_percent)
    registry.register("job.started", 1)(fraction_to_percent)
    with registry.extended("job.started", fraction_to_percent):
        assert registry.version("job.started") == 3
    assert registry.version("job.started") == 2
    assert registry.versions == {"job.started": 2}
    with pytest.raises(UpcastError):
        registry.version_of({"v": True})


def test_upcast_is_identity_on_types_that_never_changed() -> None:
    doc = json.loads(encode_event(ev.started()))
    assert UPCASTERS.upcast(dict(doc)) == doc
    assert isinstance(decode_event(json.dumps(doc).encode()), type(ev.started()))
    assert not isinstance(decode_event(json.dumps(doc).encode()), JobProgressed)
