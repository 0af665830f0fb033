"""Reads of the API hold a pooled connection no longer than their statement timeout: PostgreSQL
cancels a slower statement itself, and the read is answered as unavailable (503), not as an
error of the server (issue 10, defect 9)."""

from __future__ import annotations

import time

import pytest

from conveyor_db import DatabaseUnavailable, ReadModel, create_pool

pytestmark = pytest.mark.integration


async def test_postgres_cancels_a_read_past_its_statement_timeout(database_url: str) -> None:
    pool = await create_pool(database_url, min_size=1, max_size=1, statement_timeout_s=0.2)
    reads = ReadModel(pool, timeout=5.0)  # the client would wait far longer
    try:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable, match="statement timeout"):
            await reads._fetch("SELECT pg_sleep(3)")
        assert time.monotonic() - started < 2
        # The one pooled connection is free again, and still works.
        assert await reads.checkpoint() == 0
        timeout = await pool.fetchval("SHOW statement_timeout")
        assert timeout == "200ms"
    finally:
        await pool.close()
