"""``conveyor up`` (what ``make up`` runs): embedded servers, every service, restarts."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

import asyncpg
import httpx
import nats
import nats.errors
import pytest
import websockets.sync.client
from websockets.typing import Origin

from conveyor_bus import connect
from conveyor_bus.runtime import EXIT_LAYOUT
from conveyor_cli.dev.embedded import NatsServer, children, free_port
from conveyor_events import names
from support.legacy import LegacyLog, write_legacy_log
from support.sync import run_sync

pytestmark = [pytest.mark.e2e, pytest.mark.long]


class Up:
    def __init__(self, data_dir: Path) -> None:
        self.ports = {name: free_port() for name in ("api", "notifier", "nats", "postgres")}
        self.data_dir = data_dir
        self.log = data_dir.parent / f"up-{time.monotonic_ns()}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.ports['api']}", timeout=10)

    def __enter__(self) -> Up:
        env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "conveyor_cli.main",
                "up",
                "--data-dir",
                str(self.data_dir),
                *(
                    arg
                    for name, port in self.ports.items()
                    for arg in (f"--{name}-port", str(port))
                ),
            ],
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()
            try:
                workers = self.http.get("/api/v1/workers").json()["items"]
                if self.http.get("/readyz").status_code == 200 and len(workers) == 2:
                    return self
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.2)
        raise TimeoutError(self.log.read_text())

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGINT)  # Ctrl-C
        assert self.proc.wait(60) == 0, self.log.read_text()[-3000:]
        self.http.close()

    def wait_completed(self, job_id: str, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = self.http.get(f"/api/v1/jobs/{job_id}")
            if r.status_code == 200 and r.json()["status"] == "completed":
                return
            time.sleep(0.1)
        raise AssertionError(f"{job_id} not completed")


@pytest.fixture
def data(tmp_path: Path) -> Iterator[Path]:
    """The data directory of ``conveyor up``; as root its PostgreSQL cluster lives in a
    directory of its own (conveyor_cli/pgplace.py), deleted here after the test."""
    path = tmp_path / "data"
    yield path
    link = path / "postgres" / "pgdata"
    if link.is_symlink():
        shutil.rmtree(link.resolve().parent, ignore_errors=True)


def test_up_runs_everything_restarts_the_dead_and_keeps_data(data: Path) -> None:
    with Up(data) as up:
        assert f"Dashboard: http://127.0.0.1:{up.ports['api']}/" in up.log.read_text()
        job = up.http.post(
            "/api/v1/jobs", json={"type": "sleep", "payload": {"seconds": 0.2, "steps": 2}}
        )
        assert job.status_code == 201
        up.wait_completed(job.json()["id"])
        page = httpx.get(f"http://127.0.0.1:{up.ports['api']}/").text
        assert f"ws://127.0.0.1:{up.ports['notifier']}/ws" in page
        # the dashboard's own origin may open the feed, whatever port the api is on
        feed = f"ws://127.0.0.1:{up.ports['notifier']}/ws"
        dashboard = f"http://127.0.0.1:{up.ports['api']}"
        with websockets.sync.client.connect(feed, origin=Origin(dashboard), open_timeout=10.0):
            pass

        # a worker that dies is restarted by the supervisor
        victim = up.http.get("/api/v1/workers").json()["items"][0]
        os.kill(victim["pid"], signal.SIGKILL)
        deadline = time.monotonic() + 30
        pids: dict[str, int] = {}
        while time.monotonic() < deadline:
            pids = {w["id"]: w["pid"] for w in up.http.get("/api/v1/workers").json()["items"]}
            if pids.get(victim["id"], victim["pid"]) != victim["pid"]:
                break
            time.sleep(0.3)
        assert pids[victim["id"]] != victim["pid"], "the killed worker was not restarted"
        assert "restarting" in up.log.read_text()
    assert (data / "nats").is_dir() and (data / "postgres" / "pgdata").is_dir()

    # a second `up` on the same data finds the earlier job
    with Up(data) as again:
        earlier = again.http.get(f"/api/v1/jobs/{job.json()['id']}")
        assert earlier.status_code == 200 and earlier.json()["status"] == "completed"


def test_up_over_a_log_of_the_old_layout_migrates_it_and_runs_what_was_queued(
    data: Path,
) -> None:
    """A ``.conveyor/`` written by Conveyor before 2026-12: a service started on its own stops
    and says to run ``conveyor migrate``; ``make up`` runs it, the queued jobs run, the
    finished ones and the idempotency key are kept, and verify passes."""
    old = NatsServer(data / "nats").start()
    try:
        log = run_sync(_write_legacy(old.url))
        alone = subprocess.run(
            [sys.executable, "-m", "conveyor_cli.main", "worker"],
            env={**os.environ, "NATS_URL": old.url},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert alone.returncode == EXIT_LAYOUT, alone.stderr
        assert "run `conveyor migrate`" in alone.stderr
    finally:
        old.stop()

    with Up(data) as up:
        output = up.log.read_text()
        assert "the event log is in the old layout" in output and "is sealed" in output
        for job_id, status in log.jobs.items():
            if status == "pending":
                up.wait_completed(job_id)
            elif status == "deleted":
                assert up.http.get(f"/api/v1/jobs/{job_id}").status_code == 404
            else:
                got = up.http.get(f"/api/v1/jobs/{job_id}")
                assert got.status_code == 200 and got.json()["status"] == status, (job_id, got.text)
        again = up.http.post(
            "/api/v1/jobs", json={"type": "noop"}, headers={"Idempotency-Key": log.key}
        )
        assert (again.status_code, again.json()["id"]) == (200, log.keyed_job)
        verified = conveyor(data, "verify", "--wait", "20")
        assert verified.returncode == 0, verified.stdout + verified.stderr


def test_up_lets_in_only_who_has_the_credentials_file(data: Path) -> None:
    """Another local user reaches the ports but not the password: NATS and PostgreSQL refuse
    logins without it. The password is in ``credentials.json`` (0600, the data directory
    0700, also when it was made world-readable before), never in the output, and the
    ``conveyor`` commands find it there."""
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    with Up(data) as up:
        run_sync(_refused_without_password(up.ports["nats"], up.ports["postgres"]))
        credentials = data / "credentials.json"
        assert stat.S_IMODE(credentials.stat().st_mode) == 0o600
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        secrets = [entry["password"] for entry in json.loads(credentials.read_text()).values()]
        assert all(secrets) and not any(s in up.log.read_text() for s in secrets)

        own = json.loads(credentials.read_text())["nats"]["services"]
        assert set(own) == set(SERVICE_USERS)
        passwords = [own[s]["password"] for s in SERVICE_USERS]
        assert len(set(passwords + secrets)) == len(passwords) + len(secrets)
        assert not any(p in up.log.read_text() for p in passwords)
        assert service_logins(up) == {s: (s, own[s]["password"]) for s in SERVICE_USERS}
        run_sync(_notifier_may_not_delete_the_log(up.ports["nats"], own["notifier"]))

        verified = conveyor(data, "verify")
        assert verified.returncode == 0, verified.stdout + verified.stderr
        printed = conveyor(data, "env")
        assert printed.returncode == 0, printed.stderr
        assert f"@127.0.0.1:{up.ports['nats']}" in printed.stdout
        assert all(s in printed.stdout for s in secrets)


SERVICE_USERS = ("api", "worker", "projector", "notifier")


def service_logins(up: Up) -> dict[str, tuple[str, str]]:
    """Each service process of ``up`` (its command, from /proc), and the NATS user and password
    of the ``NATS_URL`` it was started with."""
    assert up.proc is not None
    found: dict[str, tuple[str, str]] = {}
    for pid in children(up.proc.pid):
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        if b"conveyor_cli.main" not in argv:
            continue  # nats-server, postgres
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        url = next(e for e in environ if e.startswith(b"NATS_URL=")).decode()
        login = urlsplit(url.removeprefix("NATS_URL="))
        assert login.username is not None and login.password is not None
        login_of = (unquote(login.username), unquote(login.password))
        service = argv[argv.index(b"conveyor_cli.main") + 1].decode()
        assert found.setdefault(service, login_of) == login_of  # both workers: one user
    return found


async def _notifier_may_not_delete_the_log(nats_port: int, login: dict[str, str]) -> None:
    """The notifier's user reads, and no more: deleting the log's stream is refused (a
    permissions violation, so no answer), and the stream is still there."""
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    url = f"nats://{quote(login['user'])}:{quote(login['password'], safe='')}@127.0.0.1:{nats_port}"
    nc = await nats.connect(url, error_cb=on_error, allow_reconnect=False)
    try:
        with pytest.raises(nats.errors.TimeoutError):
            await nc.request(f"$JS.API.STREAM.DELETE.{names.STREAM}", b"", timeout=0.5)
        assert any("permissions violation" in e.lower() for e in errors), errors
        info = await nc.request(f"$JS.API.STREAM.INFO.{names.STREAM}", b"", timeout=5)
        assert json.loads(info.data)["config"]["name"] == names.STREAM
    finally:
        await nc.close()


async def _refused_without_password(nats_port: int, postgres_port: int) -> None:
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(
            f"nats://127.0.0.1:{nats_port}",
            allow_reconnect=False,
            max_reconnect_attempts=0,
            connect_timeout=2,
        )
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(f"postgresql://postgres@127.0.0.1:{postgres_port}/conveyor")


def conveyor(data: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """A ``conveyor`` command with no ``NATS_URL`` / ``DATABASE_URL``: it finds the servers
    of ``conveyor up --data-dir data`` through ``CONVEYOR_DATA_DIR``."""
    env = {k: v for k, v in os.environ.items() if k not in ("NATS_URL", "DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "conveyor_cli.main", *args],
        env={**env, "CONVEYOR_DATA_DIR": str(data), "PGPASSFILE": os.devnull},
        capture_output=True,
        text=True,
        timeout=120,
    )


async def _write_legacy(url: str) -> LegacyLog:
    nc = await connect(url, "legacy-writer")
    try:
        return await write_legacy_log(nc)
    finally:
        await nc.close()
