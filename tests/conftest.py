"""Fixtures: real servers and real service processes.

NATS: a fresh ``nats-server -js`` (file store, ``sync_interval: always``) on a free loopback
port per test module, or the server named by ``NATS_URL``. PostgreSQL: one embedded server
(pgserver) per session with a migrated template database, cloned into a database per test
module, or the server named by ``DATABASE_URL``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import AsyncIterator, Iterator

import asyncpg
import pytest
from nats.aio.client import Client

from conveyor_bus import connect, ensure_topology
from conveyor_cli.dev.embedded import NatsServer, PostgresServer
from conveyor_db import create_pool, migrate
from support.sync import run_sync
from support.system import System

_db_numbers = itertools.count()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The ``long`` modules first: ``make test`` hands whole modules to its parallel workers
    (``--dist loadfile``), and a long one handed out last would leave the others idle."""
    items.sort(key=lambda item: item.get_closest_marker("long") is None)


@pytest.fixture(scope="session")
def pg_admin_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a database on a server we may create databases on."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    server = PostgresServer(tmp_path_factory.mktemp("postgres"), durable=False).start()
    try:
        yield server.url("postgres")
    finally:
        server.stop()


@pytest.fixture(scope="session")
def template_db(pg_admin_url: str) -> str:
    async def build() -> str:
        conn = await asyncpg.connect(pg_admin_url)
        name = f"conveyor_tpl_{os.getpid()}"
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        tpl = await asyncpg.connect(_with_db(pg_admin_url, name))
        try:
            await migrate(tpl)
        finally:
            await tpl.close()
        return name

    return run_sync(build())


def _with_db(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture(scope="module")
def database_url(pg_admin_url: str, template_db: str) -> str:
    """A fresh, migrated database for this test module."""
    name = f"conveyor_t{os.getpid()}_{next(_db_numbers)}"

    async def create() -> None:
        conn = await asyncpg.connect(pg_admin_url)
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
        finally:
            await conn.close()

    run_sync(create())
    return _with_db(pg_admin_url, name)


@pytest.fixture(scope="module")
def nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer | None]:
    """A fresh JetStream server for this module (None when NATS_URL names one)."""
    if os.environ.get("NATS_URL"):
        yield None
        return
    server = NatsServer(tmp_path_factory.mktemp("nats")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def nats_url(nats_server: NatsServer | None) -> str:
    return nats_server.url if nats_server is not None else os.environ["NATS_URL"]


@pytest.fixture
async def nc(nats_url: str) -> AsyncIterator[Client]:
    client = await connect(nats_url, "conveyor-tests")
    await ensure_topology(client, ack_wait_s=3)
    try:
        yield client
    finally:
        await client.close()


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    """A connection pool on this module's database."""
    pool = await create_pool(database_url)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """api, notifier, projector and two workers as real processes."""
    with System(nats_url, database_url, tmp_path_factory.mktemp("logs"), workers=2) as s:
        yield s
