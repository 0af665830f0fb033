"""The API's own listen settings (CONVEYOR_API_HOST, CONVEYOR_API_PORT), the notifier's not
taken for them, and the old shared names read only as a deprecated fallback (ADR 0015)."""

from __future__ import annotations

import logging

import pytest
from pydantic import ValidationError

from conveyor_api.settings import DEPRECATED, Settings
from conveyor_bus.settings import warn_deprecated

pytestmark = pytest.mark.unit

NAMES = ("CONVEYOR_API_HOST", "CONVEYOR_API_PORT", "CONVEYOR_HOST", "CONVEYOR_PORT")


@pytest.fixture(autouse=True)
def clean(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (*NAMES, "CONVEYOR_NOTIFIER_HOST", "CONVEYOR_NOTIFIER_PORT"):
        monkeypatch.delenv(name, raising=False)


def test_the_api_reads_its_own_names(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().host, Settings().port) == ("127.0.0.1", 8000)
    monkeypatch.setenv("CONVEYOR_NOTIFIER_PORT", "9001")  # the notifier's: not the api's
    monkeypatch.setenv("CONVEYOR_NOTIFIER_HOST", "0.0.0.0")
    assert (Settings().host, Settings().port) == ("127.0.0.1", 8000)
    monkeypatch.setenv("CONVEYOR_API_PORT", "9000")
    monkeypatch.setenv("conveyor_api_host", "0.0.0.0")  # case-insensitive, as every setting
    assert (Settings().host, Settings().port) == ("0.0.0.0", 9000)
    assert Settings(host="::1", port=1).host == "::1"  # by field name, from code


def test_the_old_names_are_a_fallback_that_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CONVEYOR_PORT", "9002")
    monkeypatch.setenv("CONVEYOR_HOST", "0.0.0.0")
    assert (Settings().host, Settings().port) == ("0.0.0.0", 9002)
    with caplog.at_level(logging.WARNING, "conveyor.settings"):
        warn_deprecated(DEPRECATED)
    assert sorted(r.getMessage() for r in caplog.records) == [
        "CONVEYOR_HOST is deprecated and will stop being read: set CONVEYOR_API_HOST instead",
        "CONVEYOR_PORT is deprecated and will stop being read: set CONVEYOR_API_PORT instead",
    ]
    monkeypatch.setenv("CONVEYOR_API_PORT", "9003")  # the new name wins, and nothing warns
    monkeypatch.setenv("CONVEYOR_API_HOST", "127.0.0.1")
    assert (Settings().host, Settings().port) == ("127.0.0.1", 9003)
    caplog.clear()
    with caplog.at_level(logging.WARNING, "conveyor.settings"):
        warn_deprecated(DEPRECATED)
    assert caplog.records == []


def test_a_port_out_of_range_names_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_API_PORT", "70000")
    with pytest.raises(ValidationError, match="CONVEYOR_API_PORT"):
        Settings()
