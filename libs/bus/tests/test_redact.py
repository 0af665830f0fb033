"""A URL in a log line or an error message shows where, never the secret to get in."""

from __future__ import annotations

import pytest

from conveyor_bus.redact import redact

pytestmark = pytest.mark.unit


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("nats://conveyor:s3cret@127.0.0.1:4222", "nats://conveyor:***@127.0.0.1:4222"),
        ("nats://127.0.0.1:4222", "nats://127.0.0.1:4222"),
        ("nats://t0ken@nats.internal", "nats://***@nats.internal"),
        ("tls://u:p@a:4222,tls://v:q@b:4222", "tls://u:***@a:4222,tls://v:***@b:4222"),
        (
            "postgresql://postgres:pw@127.0.0.1:54320/conveyor",
            "postgresql://postgres:***@127.0.0.1:54320/conveyor",
        ),
        ("postgresql://postgres@127.0.0.1/conveyor", "postgresql://postgres@127.0.0.1/conveyor"),
        (
            "postgresql://db/conveyor?user=c&password=pw&sslmode=require",
            "postgresql://db/conveyor?user=c&password=***&sslmode=require",
        ),
        ("postgresql://u:p%40ss@[::1]:5432/x", "postgresql://u:***@[::1]:5432/x"),
        ("postgresql://u:p@ss@host/x", "postgresql://u:***@host/x"),
        ("not a url", "not a url"),
    ],
)
def test_redact_keeps_where_and_who_but_not_the_secret(url: str, shown: str) -> None:
    assert redact(url) == shown
