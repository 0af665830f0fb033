"""The embedded servers (``make up``'s and the tests') let in only who has the password: a NATS
connection or a PostgreSQL login without it is refused, a cluster made with trust auth before
takes the password on its next start and keeps its data, and as root PostgreSQL runs as a
user of its own without any mode outside its data directory changing (issue 10, defect 3)."""

from __future__ import annotations

import os
import shutil
import socket
import stat
from pathlib import Path
from urllib.parse import urlsplit

import asyncpg
import nats
import nats.errors
import pytest

from conveyor_cli.dev.embedded import NatsServer, PostgresServer
from conveyor_cli.pgplace import pg_bin

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def no_ambient_password(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A password from the environment or ~/.pgpass would hide a missing one."""
    monkeypatch.delenv("PGPASSWORD", raising=False)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def without_password(url: str, password: str | None = None) -> str:
    """``url`` with its password removed (or replaced by ``password``)."""
    parts = urlsplit(url)
    login = parts.username or ""
    if password is not None:
        login += f":{password}"
    return parts._replace(netloc=f"{login}@{parts.hostname}:{parts.port}").geturl()


async def password_only(server: PostgresServer) -> None:
    """``server`` refuses a login without the password and takes one with it."""
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(without_password(server.url()))
    conn = await asyncpg.connect(server.url())
    await conn.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_nats_refuses_a_connection_without_the_password(tmp_path: Path) -> None:
    server = NatsServer(tmp_path / "nats").start()
    try:
        for url in (f"nats://127.0.0.1:{server.port}", without_password(server.url, "wrong")):
            with pytest.raises(nats.errors.Error, match="Authorization Violation"):
                await nats.connect(
                    url, allow_reconnect=False, max_reconnect_attempts=0, connect_timeout=2
                )
        nc = await nats.connect(server.url, allow_reconnect=False, connect_timeout=2)
        try:  # JetStream is enabled for the user
            js = nc.jetstream()
            await js.add_stream(name="T", subjects=["t.>"])
            assert (await js.publish("t.1", b"x")).seq == 1
        finally:
            await nc.close()
        conf = server.store_dir / "nats.conf"
        assert mode(conf) == 0o600 and mode(server.store_dir) == 0o700
        password = urlsplit(server.url).password
        assert password and password in conf.read_text()
        assert password not in (server.store_dir / "nats.log").read_text()
    finally:
        server.stop()


async def test_postgres_refuses_a_login_without_the_password(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path / "pg", durable=False).start()
    try:
        for url in (without_password(server.url()), without_password(server.url(), "wrong")):
            with pytest.raises(asyncpg.InvalidPasswordError):
                await asyncpg.connect(url)
        conn = await asyncpg.connect(server.url())
        try:
            assert await conn.fetchval("SELECT current_database()") == "conveyor"
        finally:
            await conn.close()
    finally:
        server.stop()


def test_a_port_another_process_listens_on_is_not_taken_for_the_server(tmp_path: Path) -> None:
    """Any local user may listen on a loopback port first: ``start()`` fails, naming it, rather
    than hand out URLs with the password that would lead to that process, and nothing of ours
    connects to it."""
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        port = squatter.getsockname()[1]
        servers = (
            NatsServer(tmp_path / "nats", port),
            PostgresServer(tmp_path / "pg", port, durable=False),
        )
        for server in servers:
            try:
                with pytest.raises(RuntimeError, match="another process"):
                    server.start(timeout=10)
            finally:
                server.stop()
        squatter.setblocking(False)
        with pytest.raises(BlockingIOError):
            squatter.accept()


async def test_a_cluster_made_with_trust_auth_takes_the_password_and_keeps_its_data(
    tmp_path: Path,
) -> None:
    """A ``.conveyor/postgres`` from before: trust in pg_hba.conf, no password, and (as root)
    the cluster a directory of its own inside the data directory."""
    data = tmp_path / "pg"
    server = PostgresServer(data, durable=False).start()
    try:
        conn = await asyncpg.connect(server.url())
        try:
            await conn.execute("CREATE TABLE kept (id int); INSERT INTO kept VALUES (7)")
            await conn.execute("ALTER ROLE CURRENT_USER PASSWORD NULL")
        finally:
            await conn.close()
    finally:
        server.stop()
    _as_made_before(data / "pgdata")

    server.start()
    try:
        with pytest.raises(asyncpg.InvalidPasswordError):
            await asyncpg.connect(without_password(server.url()))
        conn = await asyncpg.connect(server.url())
        try:
            assert await conn.fetchval("SELECT id FROM kept") == 7
        finally:
            await conn.close()
        hba = (data / "pgdata" / "pg_hba.conf").read_text()
        assert "trust" not in _uncommented(hba)
        assert data.stat().st_uid == os.geteuid()
    finally:
        server.stop()


def _as_made_before(pgdata: Path) -> None:
    """As root, conveyor before 2026-12 kept the cluster in the data directory and gave
    that directory to pgserver."""
    if pgdata.is_symlink():
        target = pgdata.resolve()
        pgdata.unlink()
        shutil.move(target, pgdata)
        owner = target.parent.stat()
        os.chown(pgdata.parent, owner.st_uid, owner.st_gid)
    hba = pgdata / "pg_hba.conf"
    hba.write_text(hba.read_text().replace("scram-sha-256", "trust"))


def _uncommented(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs PostgreSQL as another user")
async def test_as_root_postgres_runs_as_another_user_and_changes_no_mode_outside(
    tmp_path: Path,
) -> None:
    """The checkout in a private (0700) directory: PostgreSQL still starts, as a user of its
    own, and no directory or file outside the data directory changes its mode."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    home.chmod(0o700)
    data = home / "repo" / ".conveyor" / "postgres"
    install = pg_bin().parent
    watched = [p for p in data.parents if p.exists()]
    watched += [*install.parents, install, *install.rglob("*")]
    before = {path: os.lstat(path).st_mode for path in watched}
    server = PostgresServer(data, durable=False).start()
    try:
        assert server.proc is not None
        uid = _uid(server.proc.pid)
        assert uid != 0
        changed = {
            str(path): (oct(mode_), oct(os.lstat(path).st_mode))
            for path, mode_ in before.items()
            if os.lstat(path).st_mode != mode_
        }
        assert changed == {}
        await password_only(server)
    finally:
        server.stop()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root writes in pgserver's directories")
async def test_as_root_a_file_that_pgserver_links_elsewhere_is_replaced_not_written_through(
    tmp_path: Path,
) -> None:
    """pgserver (anyone who got into the cluster of trust auth could run code as it) owns the
    cluster's directory: symlinks it plants where root writes pg_hba.conf (and the file
    written first beside it) are replaced, and what they point to stays as it was."""
    data = tmp_path / "pg"
    server = PostgresServer(data, durable=False).start()
    server.stop()
    pgdata = (data / "pgdata").resolve()
    victims = {name: tmp_path / f"victim-{name}" for name in ("hba", "part")}
    for victim in victims.values():
        victim.write_text("root's own\n")
    (pgdata / "pg_hba.conf").unlink()
    (pgdata / "pg_hba.conf").symlink_to(victims["hba"])
    (pgdata / ".pg_hba.conf.part").symlink_to(victims["part"])

    server.start()
    try:
        assert {name: v.read_text() for name, v in victims.items()} == {
            "hba": "root's own\n",
            "part": "root's own\n",
        }
        hba = pgdata / "pg_hba.conf"
        assert not hba.is_symlink() and "trust" not in _uncommented(hba.read_text())
        assert hba.stat().st_uid == pgdata.stat().st_uid != 0
        await password_only(server)
    finally:
        server.stop()


def _uid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise AssertionError(f"no Uid in /proc/{pid}/status")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root keeps the cluster elsewhere")
async def test_as_root_a_durable_cluster_goes_with_its_data_directory(tmp_path: Path) -> None:
    """Deleting the data directory starts afresh (no cluster of old comes back with another
    password), and the cluster of a temporary data directory that is gone is deleted by the
    next start of any."""
    data = tmp_path / "checkout" / ".conveyor" / "postgres"
    server = PostgresServer(data).start()
    try:
        conn = await asyncpg.connect(server.url())
        await conn.execute("CREATE TABLE old (id int)")
        await conn.close()
    finally:
        server.stop()
    home = (data / "pgdata").resolve().parent
    assert not home.is_relative_to(tmp_path) and mode(home) == 0o700

    shutil.rmtree(data)
    again = PostgresServer(data).start()
    try:
        conn = await asyncpg.connect(again.url())
        assert await conn.fetchval("SELECT to_regclass('old')") is None
        await conn.close()
    finally:
        again.stop()

    shutil.rmtree(tmp_path / "checkout")
    other = PostgresServer(tmp_path / "other").start()
    try:
        assert not home.exists()
    finally:
        other.remove()
    assert not (tmp_path / "other").exists()
