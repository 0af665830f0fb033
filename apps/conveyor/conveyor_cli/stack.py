"""The credentials of ``make up``'s servers, in ``<data dir>/credentials.json``.

``conveyor up`` makes them at its first start (the file 0600, the data directory 0700), starts
the servers with them, passes URLs carrying them to every service and writes down the ports it
used. The other ``conveyor`` commands read the file for ``NATS_URL`` / ``DATABASE_URL`` when
these are unset, so from the checkout they find the local stack with no environment set.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from conveyor_cli.logins import Login, nats_url, postgres_url, private_dir, write_private

DATA_DIR_ENV = "CONVEYOR_DATA_DIR"
DEFAULT_DATA_DIR = Path(".conveyor")
FILE = "credentials.json"


def data_dir(environ: Mapping[str, str]) -> Path:
    """``make up``'s data directory: ``CONVEYOR_DATA_DIR``, else ``.conveyor``."""
    return Path(environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR)


@dataclass(frozen=True)
class Credentials:
    nats: Login
    postgres: Login
    nats_port: int | None = None
    """Where ``conveyor up`` last started its nats-server (None: it used ``NATS_URL``)."""
    postgres_port: int | None = None

    def urls(self) -> dict[str, str]:
        """``NATS_URL`` and ``DATABASE_URL`` of the servers ``conveyor up`` last started."""
        found = {}
        if self.nats_port is not None:
            found["NATS_URL"] = nats_url(self.nats, self.nats_port)
        if self.postgres_port is not None:
            found["DATABASE_URL"] = postgres_url(self.postgres, self.postgres_port)
        return found

    def started(self, nats_port: int | None, postgres_port: int | None) -> Credentials:
        return replace(self, nats_port=nats_port, postgres_port=postgres_port)


def load_or_create(directory: Path) -> Credentials:
    """The credentials in ``directory`` (made 0700), new ones written down when missing."""
    private_dir(directory)
    found = _read(directory / FILE)  # one we may not read is an error, never replaced
    if found is None:
        found = Credentials(Login.new("conveyor"), Login.new("postgres"))
        save(directory, found)
    (directory / FILE).chmod(0o600)
    return found


def load(directory: Path) -> Credentials | None:
    """The credentials in ``directory``, or None when there are none (or we may not read them)."""
    try:
        return _read(directory / FILE)
    except (PermissionError, NotADirectoryError):
        return None


def _read(path: Path) -> Credentials | None:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    try:
        raw = json.loads(text)
        return Credentials(
            _login(raw["nats"]),
            _login(raw["postgres"]),
            _port(raw["nats"]),
            _port(raw["postgres"]),
        )
    except (ValueError, KeyError, TypeError) as e:
        raise RuntimeError(f"{path} is not conveyor's credentials file: {e}") from e


def save(directory: Path, credentials: Credentials) -> None:
    raw = {
        name: {"user": login.user, "password": login.password, "port": port}
        for name, login, port in (
            ("nats", credentials.nats, credentials.nats_port),
            ("postgres", credentials.postgres, credentials.postgres_port),
        )
    }
    write_private(directory / FILE, json.dumps(raw, indent=2) + "\n")


def _login(raw: dict[str, Any]) -> Login:
    user, password = raw["user"], raw["password"]
    if not isinstance(user, str) or not isinstance(password, str):
        raise TypeError("user and password must be strings")
    return Login(user, password)


def _port(raw: dict[str, Any]) -> int | None:
    port = raw.get("port")
    if port is not None and not isinstance(port, int):
        raise TypeError("port must be a number")
    return port


def fill_env(environ: MutableMapping[str, str]) -> None:
    """Set ``NATS_URL`` / ``DATABASE_URL`` from the local stack's credentials where unset."""
    credentials = load(data_dir(environ))
    if credentials is not None:
        for name, url in credentials.urls().items():
            environ.setdefault(name, url)


def env_lines(environ: Mapping[str, str]) -> list[str] | None:
    """``conveyor env``: shell lines exporting the local stack's URLs (None: no stack)."""
    credentials = load(data_dir(environ))
    if credentials is None or not credentials.urls():
        return None
    return [f"export {name}={shlex.quote(url)}" for name, url in credentials.urls().items()]
