"""``conveyor migrate | replay | verify``: commands that use the log and the database
directly (``NATS_URL``, ``DATABASE_URL``; the defaults find the servers of ``make up``)."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from nats.aio.client import Client

from conveyor_bus import DirectGetter, connect, ensure_topology
from conveyor_bus.reader import last_event_sequence
from conveyor_bus.settings import BusSettings
from conveyor_cli.verify import Report, compare, verify
from conveyor_db import create_pool, migrate, reset
from conveyor_db.settings import DatabaseSettings
from conveyor_projector.projector import Projector

__all__ = ["Report", "Settings", "compare", "replay", "run", "verify"]


class Settings(BusSettings, DatabaseSettings):
    """``conveyor migrate | replay | verify``: ``NATS_URL``, ``DATABASE_URL``, ``CONVEYOR_*``."""


def run(command: str, *, wait_s: float | None = None) -> int:
    """``wait_s``: ``verify --wait``."""
    settings = Settings()
    return asyncio.run(_main(command, settings, wait_s))


async def _main(command: str, settings: Settings, wait_s: float | None = None) -> int:
    nc = await connect(settings.nats_url, f"conveyor-{command}")
    try:
        await ensure_topology(
            nc,
            ack_wait_s=settings.ack_wait_s,
            worker_ttl_s=settings.worker_ttl_s,
            replicas=settings.replicas,
            update=command == "migrate",
        )
        conn = await asyncpg.connect(settings.database_url)
        try:
            applied = await migrate(conn)
        finally:
            await conn.close()
        if command == "migrate":
            print(f"topology ready; migrations applied: {', '.join(applied) or 'none needed'}")
            return 0
        pool = await create_pool(settings.database_url, min_size=1, max_size=4, timeout=30)
        try:
            if command == "replay":
                return await replay(nc, pool)
            report = await verify(nc, pool, wait_s=wait_s)
            print(report.render())
            return 0 if report.ok else 1
        finally:
            await pool.close()
    finally:
        await nc.close()


async def replay(nc: Client, pool: asyncpg.Pool, *, quiet: bool = False) -> int:
    """Empty the read model and rebuild it from the whole log."""
    until = await last_event_sequence(DirectGetter(nc))
    async with pool.acquire() as conn:
        await reset(conn)
    projector = Projector(nc, pool)
    task = asyncio.create_task(projector.catch_up(until))
    while not task.done():
        await asyncio.wait({task}, timeout=0.2)
        if not quiet:
            done = projector.position / until if until else 1.0
            bar = "#" * int(done * 30)
            print(
                f"\rreplaying [{bar:<30}] {projector.position}/{until}",
                end="",
                file=sys.stderr,
                flush=True,
            )
    await task
    if not quiet:
        print(f"\nread model rebuilt up to sequence {until}", file=sys.stderr)
    return 0
