"""Fixtures of the integration tests that need a nats-server of their own (to restart it, or
to start from an empty store), rather than the session's."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor_cli.dev.embedded import NatsServer


@pytest.fixture
def server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server of this test's own, on an empty store."""
    srv = NatsServer(tmp_path / "nats").start()
    try:
        yield srv
    finally:
        srv.stop()
