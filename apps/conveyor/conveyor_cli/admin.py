"""``conveyor migrate | replay | verify``: commands that use the log and the database
directly (``NATS_URL``, ``DATABASE_URL``; the defaults find the servers of ``make up``)."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from nats.aio.client import Client

from conveyor_bus import DirectGetter, connect, ensure_topology
from conveyor_bus.migrate import mark_migrated, migrate_layout, needs_migration
from conveyor_bus.reader import last_event_sequence
from conveyor_bus.runtime import EXIT_LAYOUT
from conveyor_bus.settings import BusSettings
from conveyor_bus.topology import LayoutError, check_layout
from conveyor_cli.verify import Report, compare, verify
from conveyor_db import create_pool, migrate, reset
from conveyor_db.settings import DatabaseSettings
from conveyor_events import names
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
        if command == "migrate" and await needs_migration(nc):
            await _migrate_layout(nc, settings)
        try:
            await check_layout(nc, upgrading=command == "migrate")
        except LayoutError as e:
            print(f"conveyor {command}: {e}", file=sys.stderr)
            return EXIT_LAYOUT
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


async def _migrate_layout(nc: Client, settings: Settings) -> None:
    """Copy a log of the old layout into this one, then rebuild the read model from it (the
    sequences are new), and only then let services start on it
    (docs/how-to/upgrade-the-log-layout.md)."""
    print(
        f"the event log is in the old layout (stream {names.LEGACY_STREAM}); copying it into "
        f"stream {names.STREAM}",
        file=sys.stderr,
    )

    def progress(done: int, until: int) -> None:
        bar = "#" * int(30 * done / until) if until else ""
        print(f"\rcopying [{bar:<30}] {done}/{until}", end="", file=sys.stderr, flush=True)

    try:
        migrated = await migrate_layout(nc, replicas=settings.replicas, progress=progress)
    except LayoutError as e:
        print(f"\nconveyor migrate: {e}", file=sys.stderr)
        raise SystemExit(EXIT_LAYOUT) from e
    print(
        f"\ncopied {migrated.copied} messages (up to sequence {migrated.last_legacy_seq} of "
        f"{names.LEGACY_STREAM}; {migrated.left_behind} run commands left behind, the runnable "
        f"events are the commands now); {names.LEGACY_STREAM} is sealed, kept for audit",
        file=sys.stderr,
    )
    conn = await asyncpg.connect(settings.database_url)
    try:
        await migrate(conn)
    finally:
        await conn.close()
    pool = await create_pool(settings.database_url, min_size=1, max_size=4, timeout=30)
    try:
        print("rebuilding the read model from the copied log", file=sys.stderr)
        await replay(nc, pool)
    finally:
        await pool.close()
    await mark_migrated(nc, migrated.last_legacy_seq)


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
