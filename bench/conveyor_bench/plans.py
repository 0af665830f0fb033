"""The query plans of the job list at ``--jobs`` jobs (1,000,000 by default): the read model
filled as the queries scenario fills it, then ``EXPLAIN (ANALYZE, BUFFERS)`` of the query the
api makes for one request of each combination, printed as Markdown (docs/performance.md
holds the output). Only PostgreSQL runs; the SQL is ``conveyor_db.search.list_query``'s.

    PYTHONPATH=bench .venv/bin/python -m conveyor_bench.plans [--jobs N] [--only a,b]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import datetime
from pathlib import Path

import asyncpg

from conveyor_bench.queries import Data, Params, combinations, fill, rows
from conveyor_cli.dev.embedded import PostgresServer
from conveyor_db import migrate
from conveyor_db.rows import SELECT_COLUMNS
from conveyor_db.search import JobFilter, list_query

LIMIT = 50


def job_filter(params: Params) -> tuple[JobFilter, str | None]:
    """The filter and cursor the api builds from these query parameters."""

    def instant(name: str) -> datetime | None:
        value = params.get(name)
        return datetime.fromisoformat(value) if value else None

    statuses = [s for s in params.get("status", "").split(",") if s]
    flt = JobFilter(
        statuses,
        params.get("priority"),
        params.get("type"),
        params.get("q"),
        params.get("worker"),
        instant("created_after"),
        instant("created_before"),
        instant("finished_after"),
        instant("finished_before"),
    )
    return flt, params.get("cursor")


async def explain(url: str, data: Data, only: set[str] | None) -> list[tuple[str, Params, str]]:
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("SET plan_cache_mode = force_custom_plan")

        async def page2(params: Params) -> str:
            flt, cursor = job_filter(params)
            sql, args = list_query(flt, LIMIT, cursor)
            found = await conn.fetch(f"SELECT id {sql}", *args)
            return str(found[LIMIT - 1]["id"])

        cursors = {
            "failed": await page2({"status": "failed"}),
            "all": await page2({}),
        }

        def sync_page2(params: Params) -> str:
            return cursors["failed" if params else "all"]

        out = []
        for name, make in combinations(data, random.Random(5), sync_page2).items():
            if only and name not in only:
                continue
            params = make()
            flt, cursor = job_filter(params)
            sql, args = list_query(flt, LIMIT, cursor)
            for _ in range(3):  # warm: the plan of a hot cache, as the bench measures
                await conn.fetch(f"SELECT {SELECT_COLUMNS} {sql}", *args)
            plan = await conn.fetch(
                f"EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) SELECT {SELECT_COLUMNS} {sql}", *args
            )
            out.append((name, params, "\n".join(r[0] for r in plan)))
        return out
    finally:
        await conn.close()


async def prepare(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await migrate(conn)
    finally:
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--only", help="comma list of combinations")
    args = parser.parse_args()
    only = set(args.only.split(",")) if args.only else None
    with tempfile.TemporaryDirectory(prefix="conveyor-plans-") as tmp:
        server = PostgresServer(Path(tmp) / "pg", durable=False).start()
        try:
            url = server.url()
            asyncio.run(prepare(url))
            t0 = time.monotonic()
            data = rows(args.jobs)
            generated = time.monotonic() - t0
            asyncio.run(fill(url, data.records))
            data.records.clear()
            print(
                f"<!-- {args.jobs} jobs: generated in {generated:.1f}s,"
                f" filled in {time.monotonic() - t0 - generated:.1f}s -->\n"
            )
            for name, params, plan in asyncio.run(explain(url, data, only)):
                print(f"**{name}** `{params}`\n\n```\n{plan}\n```\n")
        finally:
            server.remove()


if __name__ == "__main__":
    main()
