"""The browser checks as rules (guards.py): which Host, Origin and Content-Type a request may
carry, how the settings are read, and the dashboard's websocket source. The real API is in
tests/e2e/test_foreign_pages.py."""

from __future__ import annotations

import hashlib
from importlib import resources

import pytest
from pydantic import ValidationError
from starlette.responses import PlainTextResponse

from conveyor_api.app import _hosts
from conveyor_api.guards import Guard, normal_origin, split_host
from conveyor_api.pages import notifier_source, policy
from conveyor_api.settings import Settings

pytestmark = pytest.mark.unit

OK = PlainTextResponse("ok")  # the app behind the guard; these tests only ask the guard

GUARD = Guard(OK, allowed_hosts=["localhost", "api.lan"], allowed_origins=["https://a.example"])


def status(method: str = "GET", host: str | None = "127.0.0.1:8000", **headers: str) -> int:
    raw = [(b"host", host.encode())] if host is not None else []
    raw += [(k.replace("_", "-").encode(), v.encode()) for k, v in headers.items()]
    refusal = GUARD.refusal({"type": "http", "method": method, "scheme": "http", "headers": raw})
    return 200 if refusal is None else refusal[0]


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("127.0.0.1:8000", 200),
        ("localhost", 200),
        ("LOCALHOST.:8000", 200),
        ("api.lan:443", 200),
        ("[::1]:8000", 200),
        ("10.0.0.7", 200),
        ("evil.example:8000", 400),
        ("localhost.evil.example", 400),
        ("127.0.0.1.evil.example", 400),
        ("bad host", 400),
        ("localhost:99999", 400),
        ("", 400),
        (None, 400),
    ],
)
def test_host(host: str | None, expected: int) -> None:
    assert status(host=host) == expected


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, 200),  # curl -X POST .../stop
        ({"content_length": "0"}, 200),
        ({"content_type": "application/json", "content_length": "2"}, 200),
        ({"content_type": "Application/JSON; charset=utf-8", "content_length": "2"}, 200),
        ({"content_type": "application/json"}, 200),
        ({"content_type": "application/x-www-form-urlencoded", "content_length": "3"}, 415),
        ({"content_type": "application/x-www-form-urlencoded", "content_length": "0"}, 415),
        ({"content_type": "multipart/form-data; boundary=x", "content_length": "9"}, 415),
        ({"content_type": "text/plain", "content_length": "2"}, 415),
        ({"content_type": "application/json-patch+json", "content_length": "2"}, 415),
        ({"content_length": "2"}, 415),  # a body without a type
        ({"transfer_encoding": "chunked"}, 415),
        ({"origin": "http://127.0.0.1:8000"}, 200),  # the dashboard itself
        ({"origin": "https://a.example"}, 200),
        ({"origin": "https://A.example:443"}, 200),
        ({"origin": "https://evil.example"}, 403),
        ({"origin": "http://127.0.0.1:8001"}, 403),  # another port is another origin
        ({"origin": "http://a.example"}, 403),
        ({"origin": "null"}, 403),
        ({"origin": "https://evil.example", "content_type": "text/plain"}, 403),
    ],
)
def test_write(headers: dict[str, str], expected: int) -> None:
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        assert status(method, **headers) == expected, method


def test_reads_carry_any_origin_and_type() -> None:
    assert status("GET", origin="https://evil.example", content_type="text/plain") == 200


def test_the_own_origin_is_the_host_the_request_names() -> None:
    assert status("POST", host="localhost", origin="https://localhost") == 200
    assert status("POST", host="localhost:80", origin="http://localhost") == 200
    assert status("POST", host="localhost:8080", origin="http://localhost") == 403


def test_settings_are_comma_lists_checked_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONVEYOR_ALLOWED_HOSTS", "Conveyor.example., *")
    monkeypatch.setenv("CONVEYOR_ALLOWED_ORIGINS", "https://a.example:443,http://b.example:81")
    settings = Settings()
    assert settings.allowed_hosts == ["conveyor.example", "*"]
    assert settings.allowed_origins == ["https://a.example", "http://b.example:81"]
    assert Settings(allowed_hosts=[]).allowed_hosts == []
    monkeypatch.setenv("CONVEYOR_ALLOWED_ORIGINS", "a.example")
    with pytest.raises(ValidationError, match="allowed_origins"):
        Settings()
    monkeypatch.setenv("CONVEYOR_ALLOWED_ORIGINS", "https://a.example/path")
    with pytest.raises(ValidationError, match="not an origin"):
        Settings()
    monkeypatch.delenv("CONVEYOR_ALLOWED_ORIGINS")
    monkeypatch.setenv("CONVEYOR_ALLOWED_HOSTS", "a.example:80")
    with pytest.raises(ValidationError, match="allowed_hosts"):
        Settings()


def test_the_name_the_api_listens_on_is_answered() -> None:
    assert _hosts(Settings(host="myhost.lan")) == ["localhost", "myhost.lan"]
    assert _hosts(Settings(host="0.0.0.0")) == ["localhost"]
    assert _hosts(Settings(host="127.0.0.1")) == ["localhost"]


def test_any_host_with_a_star() -> None:
    star = Guard(OK, allowed_hosts=["*"], allowed_origins=[])
    scope = {"type": "http", "method": "GET", "headers": [(b"host", b"evil.example")]}
    assert star.refusal(scope) is None


def test_any_origin_with_a_star(monkeypatch: pytest.MonkeyPatch) -> None:
    """``*`` means any origin, as it does for the notifier, which reads the same variable."""
    monkeypatch.setenv("CONVEYOR_ALLOWED_ORIGINS", "*, https://a.example")
    assert Settings().allowed_origins == ["*", "https://a.example"]
    star = Guard(OK, allowed_hosts=["localhost"], allowed_origins=["*"])
    headers = [(b"host", b"localhost"), (b"origin", b"https://evil.example")]
    assert star.refusal({"type": "http", "method": "POST", "headers": headers}) is None


def test_split_host_and_normal_origin() -> None:
    assert split_host("Example.COM.:8000") == ("example.com", 8000)
    assert split_host("[::1]") == ("[::1]", None)
    assert split_host("a/b") is None
    assert normal_origin("HTTPS://X.example:443/") == "https://x.example"
    assert normal_origin("http://x.example:8080") == "http://x.example:8080"
    with pytest.raises(ValueError, match="not an origin"):
        normal_origin("ftp://x.example")


@pytest.mark.parametrize(
    ("configured", "scheme", "host", "expected"),
    [
        (None, "http", "127.0.0.1:8000", "ws://127.0.0.1:8001"),
        (None, "https", "conveyor.example", "wss://conveyor.example:8001"),
        ("ws://127.0.0.1:9001/ws", "http", "127.0.0.1:8000", "ws://127.0.0.1:9001"),
        ("/ws", "https", "conveyor.example", "wss://conveyor.example"),
        ("http://feed.example/ws", "http", "localhost:8000", "ws://feed.example"),
        (None, "http", "[::1]:8000", "ws: wss:"),  # no host-source names an IPv6 address
        ("ws://[::1]:8001/ws", "http", "localhost", "ws: wss:"),
    ],
)
def test_notifier_source(configured: str | None, scheme: str, host: str, expected: str) -> None:
    assert notifier_source(configured, scheme, host) == expected


def test_policy() -> None:
    csp = policy(connect_src="'self' ws://h:8001")
    assert "connect-src 'self' ws://h:8001" in csp
    assert "frame-ancestors 'none'" in csp and "script-src 'self';" in csp
    assert "unsafe" not in csp


SWAGGER_UI = {  # swagger-ui-dist 5.32.6 from npm; services/api/README.md
    "swagger-ui-bundle.js": "4b5a9b35a1adf37f00d39c0bae23cdb37007e2946240ef035137cc85b4d55349",
    "swagger-ui.css": "ca238f7d7c2cf4480c1e77a9c3b9da915ab216e96ffd354e69076560c650c6de",
}


@pytest.mark.parametrize("name", sorted(SWAGGER_UI))
def test_the_docs_files_are_the_checked_swagger_ui(name: str) -> None:
    """A new fastapi-offline brings other files: compare them with npm's again, then here."""
    data = (resources.files("fastapi_offline") / "static" / name).read_bytes()
    assert hashlib.sha256(data).hexdigest() == SWAGGER_UI[name]
