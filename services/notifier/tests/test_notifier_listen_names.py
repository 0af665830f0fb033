"""The notifier's own listen settings (CONVEYOR_NOTIFIER_HOST, CONVEYOR_NOTIFIER_PORT), the
api's not taken for them, and the old shared names as a deprecated fallback (ADR 0015)."""

from __future__ import annotations

import pytest

from conveyor_notifier.settings import DEPRECATED, Settings

pytestmark = pytest.mark.unit


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("API", "NOTIFIER", ""):
        for what in ("HOST", "PORT"):
            monkeypatch.delenv("_".join(filter(None, ("CONVEYOR", name, what))), raising=False)


def test_the_notifier_reads_its_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().host, Settings().port) == ("127.0.0.1", 8001)
    monkeypatch.setenv("CONVEYOR_API_PORT", "9000")
    monkeypatch.setenv("CONVEYOR_API_HOST", "0.0.0.0")
    assert (Settings().host, Settings().port) == ("127.0.0.1", 8001)
    monkeypatch.setenv("CONVEYOR_NOTIFIER_PORT", "9001")
    monkeypatch.setenv("CONVEYOR_NOTIFIER_HOST", "0.0.0.0")
    assert (Settings().host, Settings().port) == ("0.0.0.0", 9001)


def test_the_old_names_are_a_fallback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", "9002")
    assert Settings().port == 9002
    monkeypatch.setenv("CONVEYOR_NOTIFIER_PORT", "9003")
    assert Settings().port == 9003
    assert DEPRECATED == {
        "CONVEYOR_HOST": "CONVEYOR_NOTIFIER_HOST",
        "CONVEYOR_PORT": "CONVEYOR_NOTIFIER_PORT",
    }
