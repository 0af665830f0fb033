"""``conveyor up``: the whole system on this machine, for trying Conveyor out.

Starts an embedded nats-server and PostgreSQL (data under ``.conveyor/``) unless
``NATS_URL`` / ``DATABASE_URL`` are set, each letting in only the holder of its password
(``.conveyor/credentials.json``, see :mod:`conveyor_cli.stack`), runs the migrations, then
runs api, notifier, projector and two workers as child processes, restarting any that
dies, until Ctrl-C. On its own nats-server each service logs in as a user of its own, allowed
only its subjects (:mod:`conveyor_bus.permissions`); ``migrate`` as the operator.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from conveyor_bus.redact import redact
from conveyor_cli import stack
from conveyor_cli.dev.embedded import NatsServer, PostgresServer

DEFAULT_NATS_PORT = 4222
DEFAULT_PG_PORT = 54320


@dataclass
class Service:
    name: str
    args: list[str]
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    restarts: int = 0
    started_at: float = 0.0

    def start(self, base_env: dict[str, str]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "conveyor_cli.main", *self.args],
            env={**base_env, **self.env},
        )
        self.started_at = time.monotonic()


def services(
    workers: int, api_port: int, notifier_port: int, nats: NatsServer | None = None
) -> list[Service]:
    """The child processes; on ``nats`` (ours, with a user per service) each service's
    ``NATS_URL`` is its own user's."""
    notifier_url = f"ws://127.0.0.1:{notifier_port}/ws"
    found = [
        Service(
            "api",
            ["api"],
            {"CONVEYOR_API_PORT": str(api_port), "CONVEYOR_NOTIFIER_URL": notifier_url},
        ),
        Service(
            "notifier",
            ["notifier"],  # the dashboard's origin may open the feed, on whatever port it is
            {
                "CONVEYOR_NOTIFIER_PORT": str(notifier_port),
                "CONVEYOR_API_URL": f"http://127.0.0.1:{api_port}",
            },
        ),
        Service("projector", ["projector"]),
    ]
    for n in range(1, workers + 1):
        found.append(Service(f"worker-{n}", ["worker"], {"CONVEYOR_WORKER_ID": f"local-{n}"}))
    if nats is not None:
        for svc in found:
            svc.env["NATS_URL"] = nats.url_for(svc.args[0])
    return found


def up(
    data_dir: Path,
    workers: int = 2,
    api_port: int = 8000,
    notifier_port: int = 8001,
    nats_port: int = DEFAULT_NATS_PORT,
    postgres_port: int = DEFAULT_PG_PORT,
) -> int:
    env = dict(os.environ)
    nats: NatsServer | None = None
    pg: PostgresServer | None = None
    running: list[Service] = []
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        credentials = stack.load_or_create(data_dir)
        if "NATS_URL" not in env:
            nats = NatsServer(
                data_dir / "nats",
                nats_port,
                login=credentials.nats,
                services=credentials.nats_services,
            ).start()
            env["NATS_URL"] = nats.url
            print(f"nats-server   {redact(nats.url)} (store {nats.store_dir})", flush=True)
        if "DATABASE_URL" not in env:
            pg = PostgresServer(
                data_dir / "postgres", postgres_port, login=credentials.postgres
            ).start()
            env["DATABASE_URL"] = pg.url()
            print(f"postgresql    {redact(pg.url())} (data {pg.data_dir})", flush=True)
        if nats is not None or pg is not None:
            started = credentials.started(nats.port if nats else None, pg.port if pg else None)
            stack.save(data_dir, started)
            print(
                f"credentials   {data_dir / stack.FILE} (`conveyor env` prints the URLs)",
                flush=True,
            )
        migrate = [sys.executable, "-m", "conveyor_cli.main", "migrate"]
        migrated = subprocess.run(migrate, env=env).returncode
        if migrated != 0:
            print(f"conveyor migrate exited with {migrated}: nothing started", flush=True)
            return migrated
        running = services(workers, api_port, notifier_port, nats)
        for svc in running:
            svc.start(env)
        print(
            f"\nConveyor is up.  Dashboard: http://127.0.0.1:{api_port}/"
            f"   API docs: http://127.0.0.1:{api_port}/docs   Ctrl-C stops everything.\n",
            flush=True,
        )
        while not stopping:
            time.sleep(0.5)
            for svc in running:
                assert svc.proc is not None
                code = svc.proc.poll()
                if code is not None and not stopping:
                    svc.restarts += 1
                    delay = min(10.0, 0.5 * 2 ** min(svc.restarts, 5))
                    if time.monotonic() - svc.started_at > 60:
                        svc.restarts, delay = 0, 0.5
                    print(f"{svc.name} exited with {code}; restarting in {delay:.1f}s", flush=True)
                    time.sleep(delay)
                    svc.start(env)
        return 0
    finally:
        print("\nstopping…", flush=True)
        for svc in running:
            if svc.proc is not None and svc.proc.poll() is None:
                svc.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        for svc in running:
            if svc.proc is not None:
                try:
                    svc.proc.wait(max(0.1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    svc.proc.kill()
        if pg is not None:
            pg.stop()
        if nats is not None:
            nats.stop()
        print("stopped.", flush=True)


def wait_ready(
    procs: Mapping[str, subprocess.Popen[bytes]],
    api_url: str,
    notifier_port: int,
    workers: int,
    log: Callable[[str], str],
    timeout: float,
    token: str | None = None,
) -> None:
    """Until the api is ready, the notifier healthy and ``workers`` workers have announced
    themselves; raises with the log of any service that exited meanwhile. ``token``: the
    bearer token to list the workers with, when the API has tokens."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}:\n{log(name)}")
        try:
            api = httpx.get(f"{api_url}/readyz", timeout=1)
            notifier = httpx.get(f"http://127.0.0.1:{notifier_port}/healthz", timeout=1)
            live = httpx.get(f"{api_url}/api/v1/workers", timeout=1, headers=headers)
            if (
                api.status_code == 200
                and notifier.status_code == 200
                and len(live.json()["items"]) >= workers
            ):
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError(
        "the services did not become ready:\n"
        + "\n".join(f"--- {name}\n{log(name)[-2000:]}" for name in procs)
    )


def stop_all(procs: Mapping[str, subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM to every process still running, then wait; kill what outlives ``timeout``."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs.values():
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
