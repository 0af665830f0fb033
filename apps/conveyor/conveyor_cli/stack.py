"""The credentials of ``make up``'s servers, in ``<data dir>/credentials.json``.

``conveyor up`` makes them at its first start (the file 0600, the data directory 0700), starts
the servers with them, passes URLs carrying them to every service and writes down the ports it
used. The other ``conveyor`` commands read the file for ``NATS_URL`` / ``DATABASE_URL`` when
these are unset, so from the checkout they find the local stack with no environment set.

NATS has one user per service besides the operator's (``nats``: every right, for ``migrate``,
``replay``, ``verify`` and the operator's tools): ``api``, ``worker``, ``projector`` and
``notifier``, each allowed only its service's subjects (:mod:`conveyor_bus.permissions`).
``conveyor up`` gives each service process its own, and so does ``conveyor <service>`` when it
takes ``NATS_URL`` from the file. A file written before there were service users gets them at
the next ``conveyor up``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from conveyor_cli.logins import Login, nats_url, postgres_url, private_dir, write_private

DATA_DIR_ENV = "CONVEYOR_DATA_DIR"
DEFAULT_DATA_DIR = Path(".conveyor")
FILE = "credentials.json"
NATS_SERVICES = ("api", "worker", "projector", "notifier")
"""The services that log in to ``make up``'s NATS as users of their own (names of
:data:`conveyor_bus.permissions.SERVICES`)."""


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
    nats_services: dict[str, Login] = field(default_factory=dict)
    """Each service's NATS user (:data:`NATS_SERVICES`), allowed only that service's subjects."""

    def urls(self) -> dict[str, str]:
        """``NATS_URL`` and ``DATABASE_URL`` of the servers ``conveyor up`` last started."""
        found = {}
        if self.nats_port is not None:
            found["NATS_URL"] = nats_url(self.nats, self.nats_port)
        if self.postgres_port is not None:
            found["DATABASE_URL"] = postgres_url(self.postgres, self.postgres_port)
        return found

    def nats_url_for(self, service: str) -> str | None:
        """The ``NATS_URL`` of ``service``'s own user on the nats-server ``conveyor up`` last
        started (None: it started none, or there is no such user)."""
        login = self.nats_services.get(service)
        if login is None or self.nats_port is None:
            return None
        return nats_url(login, self.nats_port)

    def started(self, nats_port: int | None, postgres_port: int | None) -> Credentials:
        return replace(self, nats_port=nats_port, postgres_port=postgres_port)

    def with_service_logins(self) -> Credentials:
        """These credentials with a new NATS user for every service that has none."""
        missing = {s: Login.new(s) for s in NATS_SERVICES if s not in self.nats_services}
        return replace(self, nats_services={**self.nats_services, **missing})


def load_or_create(directory: Path) -> Credentials:
    """The credentials in ``directory`` (made 0700), new ones written down when missing."""
    private_dir(directory)
    found = _read(directory / FILE)  # one we may not read is an error, never replaced
    if found is None or set(found.nats_services) != set(NATS_SERVICES):
        found = found or Credentials(Login.new("conveyor"), Login.new("postgres"))
        found = found.with_service_logins()
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
            {name: _login(login) for name, login in raw["nats"].get("services", {}).items()},
        )
    except (ValueError, KeyError, TypeError) as e:
        raise RuntimeError(f"{path} is not conveyor's credentials file: {e}") from e


def save(directory: Path, credentials: Credentials) -> None:
    raw: dict[str, dict[str, Any]] = {
        name: {"user": login.user, "password": login.password, "port": port}
        for name, login, port in (
            ("nats", credentials.nats, credentials.nats_port),
            ("postgres", credentials.postgres, credentials.postgres_port),
        )
    }
    raw["nats"]["services"] = {
        name: {"user": login.user, "password": login.password}
        for name, login in credentials.nats_services.items()
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


def fill_env(environ: MutableMapping[str, str], service: str | None = None) -> None:
    """Set ``NATS_URL`` / ``DATABASE_URL`` from the local stack's credentials where unset; for
    ``service`` (a name of :data:`NATS_SERVICES`) ``NATS_URL`` is its own user's."""
    credentials = load(data_dir(environ))
    if credentials is not None:
        own = credentials.nats_url_for(service) if service is not None else None
        urls = credentials.urls()
        if own is not None:
            urls["NATS_URL"] = own
        for name, url in urls.items():
            environ.setdefault(name, url)


def env_lines(environ: Mapping[str, str]) -> list[str] | None:
    """``conveyor env``: shell lines exporting the local stack's URLs (None: no stack)."""
    credentials = load(data_dir(environ))
    if credentials is None or not credentials.urls():
        return None
    return [f"export {name}={shlex.quote(url)}" for name, url in credentials.urls().items()]
