"""Who may open the feed (the ``Origin`` of a handshake) and how many at once."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from conveyor_notifier.guards import Admission, OriginPolicy, dashboard_origins, normal_origin
from conveyor_notifier.settings import Settings

pytestmark = pytest.mark.unit


def test_the_dashboard_on_a_loopback_host_is_every_loopback_name() -> None:
    assert dashboard_origins("http://127.0.0.1:8000") == [
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
    ]
    assert dashboard_origins("http://[::1]:8000/") == dashboard_origins("http://localhost:8000")
    assert dashboard_origins("HTTPS://Conveyor.Example:443/api") == ["https://conveyor.example"]


def test_only_the_dashboards_and_the_listed_origins_may_open_the_feed() -> None:
    policy = OriginPolicy("http://127.0.0.1:8000", ["https://ops.example"])
    for ok in (
        "http://127.0.0.1:8000",
        "http://localhost:8000",
        "http://[::1]:8000",
        "HTTP://LOCALHOST:8000",
        "https://ops.example",
        "https://ops.example:443",
    ):
        assert policy.refusal([ok]) is None, ok
    for foreign in (
        "https://evil.example",
        "http://127.0.0.1:8001",  # another port: another local app's page
        "https://127.0.0.1:8000",
        "http://localhost.evil.example:8000",
        "http://ops.example",
        "null",  # a sandboxed frame, a file: page
        "",
    ):
        refusal = policy.refusal([foreign])
        assert refusal is not None and "CONVEYOR_ALLOWED_ORIGINS" in refusal, foreign
    assert policy.refusal(["http://127.0.0.1:8000", "http://127.0.0.1:8000"]) is not None


def test_a_handshake_without_origin_is_not_a_browsers_and_is_accepted() -> None:
    assert OriginPolicy("http://127.0.0.1:8000", []).refusal([]) is None


def test_a_star_allows_any_origin() -> None:
    assert OriginPolicy("http://127.0.0.1:8000", ["*"]).refusal(["https://a.example"]) is None


def test_settings_read_the_env_as_the_api_does(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ALLOWED_ORIGINS", "https://a.example:443, http://B.example:81")
    monkeypatch.setenv("CONVEYOR_API_URL", "http://127.0.0.1:9000")
    settings = Settings()
    assert settings.allowed_origins == ["https://a.example", "http://b.example:81"]
    assert settings.api_url == "http://127.0.0.1:9000"
    monkeypatch.setenv("CONVEYOR_ALLOWED_ORIGINS", "*")
    assert Settings().allowed_origins == ["*"]
    for bad in ("a.example", "https://a.example/path", "ftp://a.example", "https://u@a.example"):
        monkeypatch.setenv("CONVEYOR_ALLOWED_ORIGINS", bad)
        with pytest.raises(ValidationError, match="not an origin"):
            Settings()
    monkeypatch.delenv("CONVEYOR_ALLOWED_ORIGINS")
    monkeypatch.setenv("CONVEYOR_API_URL", "127.0.0.1:8000")
    with pytest.raises(ValidationError, match="api_url"):
        Settings()


def test_normal_origin() -> None:
    assert normal_origin("HTTPS://X.example.:443/") == "https://x.example"
    assert normal_origin("http://[::1]:80") == "http://[::1]"
    with pytest.raises(ValueError, match="not an origin"):
        normal_origin("http://a.example:99999")


def test_admission_caps_the_total_and_each_address() -> None:
    doors = Admission(max_clients=3, max_per_address=2)
    assert doors.enter("10.0.0.1") is None and doors.enter("10.0.0.1") is None
    refusal = doors.enter("10.0.0.1")
    assert refusal is not None and refusal.reason == "max_clients_per_address"
    assert doors.enter("10.0.0.2") is None
    refusal = doors.enter("10.0.0.3")
    assert refusal is not None and refusal.reason == "max_clients"
    assert len(refusal.detail.encode()) <= 123  # a close frame's reason
    doors.leave("10.0.0.1")
    assert doors.enter("10.0.0.3") is None
    for address in ("10.0.0.1", "10.0.0.2", "10.0.0.3"):
        doors.leave(address)
    assert doors.total == 0 and doors.by_address == {}


def test_no_cap_per_address_with_zero() -> None:
    doors = Admission(max_clients=1000, max_per_address=0)
    assert all(doors.enter("127.0.0.1") is None for _ in range(1000))
    assert doors.enter("127.0.0.1") is not None
