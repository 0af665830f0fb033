"""``conveyor migrate | replay | verify``: commands that use the log and the database
directly (``NATS_URL``, ``DATABASE_URL``; the defaults find the servers of ``make up``)."""

from __future__ import annotations

import asyncio
import sys

import asyncpg
from nats.aio.client import Client

from conveyor_bus import connect, ensure_topology
from conveyor_bus.migrate import mark_migrated, migrate_layout, needs_migration
from conveyor_bus.runtime import EXIT_LAYOUT
from conveyor_bus.settings import BusSettings
from conveyor_bus.topology import LayoutError, check_layout
from conveyor_cli.replay import Progress, replay_beside, replay_in_place
from conveyor_cli.verify import Report, compare, verify
from conveyor_db import create_pool, migrate
from conveyor_db.rebuild import RebuildError
from conveyor_db.settings import DatabaseSettings
from conveyor_events import names

__all__ = ["Report", "Settings", "compare", "replay", "run", "verify"]


class Settings(BusSettings, DatabaseSettings):
    """``conveyor migrate | replay | verify``: ``NATS_URL``, ``DATABASE_URL``, ``CONVEYOR_*``."""


def run(command: str, *, wait_s: float | None = None, in_place: bool = False) -> int:
    """``wait_s``: ``verify --wait``; ``in_place``: ``replay --in-place``."""
    settings = Settings()
    return asyncio.run(_main(command, settings, wait_s, in_place))


async def _main(
    command: str, settings: Settings, wait_s: float | None = None, in_place: bool = False
) -> int:
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
        if command == "replay" and not in_place:
            return await replay_beside_live(nc, settings.database_url)
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
    """``conveyor replay --in-place``: empty the read model and rebuild it from the whole log
    where it is."""
    progress = Progress(bar=False if quiet else None)
    try:
        until = await replay_in_place(nc, pool, progress)
    except RebuildError as e:
        print(f"conveyor replay: {e}", file=sys.stderr)
        return 1
    if not quiet:
        progress.say(f"read model rebuilt in place up to sequence {until}")
    return 0


async def replay_beside_live(nc: Client, database_url: str) -> int:
    """``conveyor replay``: rebuild the read model beside the live one, then switch to it."""
    progress = Progress()
    try:
        done = await replay_beside(nc, database_url, progress)
    except RebuildError as e:
        progress.say(f"conveyor replay: {e}")
        return 1
    rate = done.events / done.seconds if done.seconds > 0 else 0.0
    progress.say(
        f"read model rebuilt up to sequence {done.switched.checkpoint} and switched in"
        f" (the live projector was at {done.switched.live_checkpoint};"
        f" {len(done.switched.tables)} tables: {', '.join(done.switched.tables)});"
        f" {done.seconds:.1f}s, {rate:,.0f} events/s"
        + (f", {done.tries} tries of the switch" if done.tries > 1 else "")
    )
    return 0
