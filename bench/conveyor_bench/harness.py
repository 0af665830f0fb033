"""Servers and services for one measurement: a fresh nats-server (file store,
``sync_interval: always``) and PostgreSQL in a temporary directory, and the four services as
separate processes with ``make up``'s settings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from conveyor_cli.dev.embedded import NatsServer, PostgresServer, children, free_port
from conveyor_cli.dev.up import stop_all, wait_ready

BENCH_DIR = Path(__file__).resolve().parent.parent
WORK_DIR = BENCH_DIR / "work"


@dataclass(frozen=True)
class Scale:
    """How big each scenario is: the full benchmark, or the smoke run of ``make test``."""

    smoke: bool = False
    repeats: int = 3
    throughput_jobs: int = 20_000
    latency_jobs: int = 500
    latency_gap_s: float = 0.02
    scaleout_jobs: int = 64
    scaleout_sleep_s: float = 2.0
    scaleout_concurrency: int = 16
    scaleout_workers: tuple[int, ...] = (1, 2, 4)
    replay_events: int = 1_000_000
    query_jobs: int = 1_000_000
    fanout_clients: int = 1_000
    fanout_events_per_s: int = 1_000
    fanout_seconds: float = 10.0

    @classmethod
    def smoke_run(cls) -> Scale:
        return cls(
            smoke=True,
            repeats=1,
            throughput_jobs=500,
            latency_jobs=20,
            scaleout_jobs=4,
            scaleout_sleep_s=0.2,
            scaleout_concurrency=2,
            scaleout_workers=(2,),
            replay_events=3_000,
            query_jobs=3_000,
            fanout_clients=20,
            fanout_events_per_s=200,
            fanout_seconds=2.0,
        )


class Cluster:
    """NATS JetStream and PostgreSQL, fresh and migrated, in a temporary directory."""

    def __init__(self, name: str) -> None:
        WORK_DIR.mkdir(parents=True, exist_ok=True)
        self.root = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=WORK_DIR))
        self.nats = NatsServer(self.root / "nats")
        self.postgres = PostgresServer(self.root / "postgres")

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "NATS_URL": self.nats.url,
            "DATABASE_URL": self.postgres.url(),
            "CONVEYOR_LOG_LEVEL": "warning",
        }

    def __enter__(self) -> Cluster:
        try:
            self.nats.start()
            self.postgres.start()
            conveyor("migrate", env=self.env)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.postgres.remove()  # as root its cluster is outside self.root (pgplace.py)
        self.nats.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def conveyor(*args: str, env: dict[str, str], timeout: float = 600) -> str:
    """Run a ``conveyor`` command to its end; its output, or an error with its output."""
    done = subprocess.run(
        [sys.executable, "-m", "conveyor_cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"conveyor {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


@dataclass
class Services:
    """api, notifier, projector and ``workers`` workers, each its own process."""

    cluster: Cluster
    workers: int = 2
    worker_env: dict[str, str] = field(default_factory=dict)
    api_port: int = field(default_factory=free_port)
    notifier_port: int = field(default_factory=free_port)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.notifier_port}/ws"

    def start(self, name: str, command: str, **env: str) -> None:
        log = (self.cluster.root / f"{name}.log").open("ab")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "conveyor_cli.main", command],
            env={**self.cluster.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def start_worker(self, n: int) -> None:
        self.start(f"worker-{n}", "worker", CONVEYOR_WORKER_ID=f"bench-{n}", **self.worker_env)

    def __enter__(self) -> Services:
        try:
            self.start("api", "api", CONVEYOR_API_PORT=str(self.api_port))
            self.start("notifier", "notifier", CONVEYOR_NOTIFIER_PORT=str(self.notifier_port))
            self.start("projector", "projector")
            for n in range(1, self.workers + 1):
                self.start_worker(n)
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def stop(self) -> None:
        stop_all(self.procs, 20)

    def wait_ready(self, timeout: float = 60) -> None:
        wait_ready(self.procs, self.api_url, self.notifier_port, self.workers, self.log, timeout)

    def log(self, name: str) -> str:
        path = self.cluster.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def cpu_s(self) -> dict[str, float]:
        """CPU seconds used so far by each service, nats-server and PostgreSQL (all of
        its processes)."""
        used = {name: cpu_s(proc.pid) for name, proc in self.procs.items()}
        nats, postgres = self.cluster.nats.proc, self.cluster.postgres.proc
        assert nats is not None and postgres is not None
        used["nats-server"] = cpu_s(nats.pid)
        used["postgres"] = cpu_s(postgres.pid) + sum(
            cpu_s(pid) for pid in children(postgres.pid) if Path(f"/proc/{pid}").exists()
        )
        return used

    def rss_mb(self) -> dict[str, float]:
        """Resident memory of each service process, in MiB."""
        return {name: rss_mb(proc.pid) for name, proc in self.procs.items()}


def cpu_s(pid: int) -> float:
    """CPU time (user + system) a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int, field: str = "VmRSS") -> float:
    """Resident memory of a process in MiB (``VmHWM``: its peak so far)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {field} for pid {pid}")


def wait_until(check: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll ``check()`` until it is true; the monotonic time it first was."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(interval)
    raise TimeoutError(f"{what}: not reached within {timeout:.0f}s")
