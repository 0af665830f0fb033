"""API reads while PostgreSQL is stopped or hung: DatabaseUnavailable within the timeout
(never a hang), and the pool serves again once the server is back."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Iterator
from pathlib import Path

import asyncpg
import pytest

from conveyor_cli.dev.embedded import PostgresServer
from conveyor_db import DatabaseUnavailable, ReadModel, create_pool, migrate

pytestmark = pytest.mark.integration

TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    server = PostgresServer(Path(tmp_path_factory.mktemp("pg-outage")), durable=False).start()

    async def migrated() -> None:
        conn = await asyncpg.connect(server.url())
        try:
            await migrate(conn)
        finally:
            await conn.close()

    asyncio.run(migrated())
    try:
        yield server
    finally:
        if server.proc is not None and server.proc.poll() is None:
            server.thaw()
        server.stop()


@pytest.fixture
async def reads(postgres: PostgresServer) -> AsyncIterator[ReadModel]:
    pool = await create_pool(postgres.url(), min_size=0, max_size=4, timeout=TIMEOUT_S)
    try:
        yield ReadModel(pool, timeout=TIMEOUT_S)
    finally:
        pool.terminate()


async def timed_reads(reads: ReadModel) -> list[tuple[str, float]]:
    """Several reads at once: what each raised, and how long it took."""

    async def one(read: Awaitable[object]) -> tuple[str, float]:
        started = time.monotonic()
        try:
            await read
            outcome = "ok"
        except DatabaseUnavailable:
            outcome = "unavailable"
        return outcome, time.monotonic() - started

    return list(
        await asyncio.gather(
            one(reads.counts()), one(reads.get("x")), one(reads.ping()), one(reads.checkpoint())
        )
    )


async def test_reads_answer_within_the_timeout_while_postgres_hangs(
    postgres: PostgresServer, reads: ReadModel
) -> None:
    await reads.ping()  # a pooled connection, opened before the server hangs
    postgres.freeze()
    try:
        outcomes = await timed_reads(reads)
    finally:
        postgres.thaw()
    # Cancelling a query on a hung server makes asyncpg wait for the server-side cancel
    # (10 s and more) before it gives the connection back; a read must not wait for that.
    assert [o for o, _ in outcomes] == ["unavailable"] * 4
    assert max(t for _, t in outcomes) < TIMEOUT_S + 0.5
    async with asyncio.timeout(15):
        while True:
            try:
                await reads.ping()
                break
            except DatabaseUnavailable:
                await asyncio.sleep(0.1)


async def test_reads_fail_fast_while_postgres_is_stopped_then_recover(
    postgres: PostgresServer, reads: ReadModel
) -> None:
    await reads.ping()
    postgres.stop()
    try:
        outcomes = await timed_reads(reads)
    finally:
        postgres.start()
    assert [o for o, _ in outcomes] == ["unavailable"] * 4
    assert max(t for _, t in outcomes) < TIMEOUT_S + 0.5
    async with asyncio.timeout(10):
        while True:
            try:
                assert await reads.counts() is not None
                break
            except DatabaseUnavailable:
                await asyncio.sleep(0.1)
