"""A notifier process of its own, for the tests of its limits and its backpressure."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from conveyor_cli.dev.embedded import free_port


@contextmanager
def notifier(nats_url: str, log_dir: Path, **env: str) -> Iterator[int]:
    """Run ``conveyor notifier`` with ``env`` added until the block ends: its port. Fails the
    test when its log shows a traceback."""
    port = free_port()
    log = log_dir / "notifier.log"
    proc = subprocess.Popen(
        [sys.executable, "-m", "conveyor_cli.main", "notifier"],
        env={**os.environ, "NATS_URL": nats_url, "CONVEYOR_NOTIFIER_PORT": str(port), **env},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        yield port
    finally:
        proc.terminate()
        proc.wait(10)
        assert not log.read_text().count("Traceback"), log.read_text()
