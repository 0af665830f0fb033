"""The real services as child processes, for end-to-end tests."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from conveyor_cli.dev.embedded import free_port
from conveyor_cli.dev.up import stop_all, wait_ready

ACK_WAIT_S = 3.0


class System:
    def __init__(
        self,
        nats_url: str,
        database_url: str,
        log_dir: Path,
        *,
        workers: int = 2,
        env: dict[str, str] | None = None,
        metrics: bool = False,
    ) -> None:
        self.nats_url = nats_url
        self.database_url = database_url
        self.log_dir = log_dir
        self.api_port = free_port()
        self.notifier_port = free_port()
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.with_metrics = metrics
        self.metrics_ports: dict[str, int] = {"notifier": self.notifier_port}
        self.env = {
            **os.environ,
            "NATS_URL": nats_url,
            "DATABASE_URL": database_url,
            "CONVEYOR_ACK_WAIT_S": str(ACK_WAIT_S),
            "CONVEYOR_CONCURRENCY": "4",  # small, so tests can fill every slot
            "CONVEYOR_LOG_LEVEL": "info",
            "CONVEYOR_RETRY_BASE_S": "0.2",
            "CONVEYOR_RETRY_CAP_S": "1",
            # where the dashboard is: the notifier lets its pages (that origin) open the feed
            "CONVEYOR_API_URL": f"http://127.0.0.1:{self.api_port}",
            **(env or {}),
        }
        self.n_workers = workers
        self.http = httpx.Client(base_url=self.api_url, timeout=15)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.notifier_port}/ws"

    # -- processes -----------------------------------------------------------------------

    def start(
        self, name: str, command: str, *, metrics: bool = False, **env: str
    ) -> subprocess.Popen[bytes]:
        """A service process; a projector or worker started with ``metrics`` (or in a system
        built with ``metrics=True``) serves Prometheus metrics on a port of its own."""
        if (metrics or self.with_metrics) and command in ("projector", "worker"):
            self.metrics_ports[name] = free_port()
            env["CONVEYOR_METRICS_PORT"] = str(self.metrics_ports[name])
        log = (self.log_dir / f"{name}.log").open("ab")
        proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor_cli.main", command],
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.procs[name] = proc
        return proc

    def start_worker(
        self, name: str, *, metrics: bool = False, **env: str
    ) -> subprocess.Popen[bytes]:
        """A worker process; with ``metrics``, serving Prometheus metrics (see ``metric``)."""
        return self.start(name, "worker", metrics=metrics, CONVEYOR_WORKER_ID=name, **env)

    def metric(self, name: str, sample: str, **labels: str) -> float:
        """One sample of a process's Prometheus metrics (0 when the series has none yet)."""
        return scrape(f"http://127.0.0.1:{self.metrics_ports[name]}/metrics", sample, **labels)

    def conveyor(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        """The ``conveyor`` command, pointed at this system's services and servers."""
        env = {
            **self.env,
            "CONVEYOR_API_URL": self.api_url,
            "CONVEYOR_NOTIFIER_URL": self.ws_url,
        }
        return subprocess.run(
            [sys.executable, "-m", "conveyor_cli.main", *args],
            env=env,
            stdin=subprocess.DEVNULL,  # never a terminal: nothing asks
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def signal(self, name: str, sig: int) -> None:
        self.procs[name].send_signal(sig)

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.kill()
        proc.wait()

    def stop(self, name: str, timeout: float = 30) -> int:
        proc = self.procs.pop(name)
        proc.terminate()
        try:
            return proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            raise

    def __enter__(self) -> System:
        self.start(
            "api", "api", CONVEYOR_API_PORT=str(self.api_port), CONVEYOR_NOTIFIER_URL=self.ws_url
        )
        self.start("notifier", "notifier", CONVEYOR_NOTIFIER_PORT=str(self.notifier_port))
        self.start("projector", "projector")
        for n in range(1, self.n_workers + 1):
            self.start_worker(f"worker-{n}")
        try:
            self.wait_ready()
        except BaseException:  # a service that does not come up leaves none running
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.http.close()
        stop_all(self.procs, 15)

    def wait_ready(self, timeout: float = 30) -> None:
        wait_ready(
            self.procs,
            self.api_url,
            self.notifier_port,
            self.n_workers,
            self.log,
            timeout,
            token=self.env.get("CONVEYOR_TOKEN"),
        )

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    # -- API helpers ---------------------------------------------------------------------

    def submit(self, type_: str = "noop", **body: Any) -> dict[str, Any]:
        response = self.http.post("/api/v1/jobs", json={"type": type_, **body})
        assert response.status_code == 201, response.text
        job: dict[str, Any] = response.json()
        return job

    def job(self, job_id: str) -> httpx.Response:
        return self.http.get(f"/api/v1/jobs/{job_id}")

    def events(self, job_id: str) -> list[dict[str, Any]]:
        """The job's whole history, page after page."""
        items: list[dict[str, Any]] = []
        after: int | None = 0
        while after is not None:
            response = self.http.get(
                f"/api/v1/jobs/{job_id}/events", params={"after_seq": after, "limit": 10_000}
            )
            assert response.status_code == 200, response.text
            page = response.json()
            items.extend(page["items"])
            after = page["next"]
        return items

    def wait_for(
        self, job_id: str, *statuses: str, timeout: float = 20, **fields: Any
    ) -> dict[str, Any]:
        """Poll ``GET /jobs/{id}`` until the job has one of ``statuses`` (and ``fields``). That
        read follows the log when the projector lags: wait for rows (lists, counts, SQL) apart."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            response = self.job(job_id)
            if response.status_code == 200:
                last = response.json()
                if last["status"] in statuses and all(last[k] == v for k, v in fields.items()):
                    return dict(last)
            time.sleep(0.05)
        raise AssertionError(
            f"job {job_id} never reached {statuses} {fields}; last: {json.dumps(last)}"
        )

    def wait_gone(self, job_id: str, timeout: float = 10) -> None:
        """Until ``GET /jobs/{id}`` answers 404 and the row has left the read model."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.job(job_id).status_code == 404 and self.listed(job_id) is None:
                return
            time.sleep(0.05)
        raise AssertionError(f"job {job_id} still in the read model")

    def listed(self, job_id: str) -> dict[str, Any] | None:
        """The job's row as the list endpoint shows it (the read model alone), if any."""
        items = self.http.get("/api/v1/jobs", params={"q": job_id}).json()["items"]
        return next((dict(j) for j in items if j["id"] == job_id), None)

    def wait_projected(self, job_id: str, *statuses: str, timeout: float = 20) -> dict[str, Any]:
        """Until the job's row in the read model has one of ``statuses``."""
        deadline = time.monotonic() + timeout
        row = None
        while time.monotonic() < deadline:
            row = self.listed(job_id)
            if row is not None and row["status"] in statuses:
                return row
            time.sleep(0.05)
        raise AssertionError(f"row of {job_id} never reached {statuses}; last: {row}")


def scrape(url: str, sample: str, **labels: str) -> float:
    """One sample of a Prometheus endpoint (0 when the series has none yet)."""
    text = httpx.get(url, timeout=5).text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(sample) + (r"\{" + re.escape(wanted) + r"\}" if labels else "")
    match = re.search(rf"^{pattern} (\S+)$", text, re.MULTILINE)
    return float(match.group(1)) if match else 0.0
