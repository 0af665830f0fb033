"""What run.py needs from each peer driver, and the settings every driver shares."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

HERE = Path(__file__).resolve().parent
# Completion pollers check the result store this often: cheap enough not to rob the worker
# of CPU on a 2-core machine, fine enough (<= 0.1 s) against runs of tens of seconds.
POLL_INTERVAL_S = 0.1
WARM_UP_JOBS = 20
RESULT_TIMEOUT_S = 60
# Environment variables through which workers (and the client, at import) find the servers.
REDIS_URL_ENV = "BENCH_REDIS_URL"
NATS_URL_ENV = "BENCH_NATS_URL"


@dataclass(frozen=True)
class Infra:
    redis_url: str
    nats_url: str

    def export(self) -> None:
        """Makes the URLs visible to peer modules imported after this call."""
        os.environ.update(self.worker_env())

    def worker_env(self) -> dict[str, str]:
        return {REDIS_URL_ENV: self.redis_url, NATS_URL_ENV: self.nats_url, "PYTHONPATH": str(HERE)}


def redis_db_url(db: int) -> str:
    return f"{os.environ.get(REDIS_URL_ENV, 'redis://127.0.0.1:6379')}/{db}"


def nats_url() -> str:
    return os.environ.get(NATS_URL_ENV, "nats://127.0.0.1:4222")


@dataclass(frozen=True)
class ThroughputRun:
    """Seconds from the first submit until the last submit returned, and until all completed."""

    submit_s: float
    total_s: float


class Peer(Protocol):
    name: str
    version: str
    setup: str

    def worker_argv(self) -> list[str]:
        """The command that starts the peer's worker process(es)."""

    def warm_up(self) -> None:
        """Runs a few jobs to completion: the worker is ready and warm when this returns."""

    def reset(self) -> None:
        """Empties queues and the result store, so each run starts from fresh state."""

    def throughput(self, jobs: int) -> ThroughputRun:
        """Seconds from the first submit until the result store holds all `jobs` results."""

    def latency(self, jobs: int, gap_s: float) -> list[float]:
        """Per job: handler start wall time minus wall time just before submit, in ms."""

    def close(self) -> None:
        """Releases the client's connections (run.py stops the worker)."""
