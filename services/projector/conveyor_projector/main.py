"""``conveyor projector``: keep the PostgreSQL read model up to date with the event log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

import asyncpg

from conveyor_bus.runtime import bootstrap, configure_logging, run, stop_on_signals
from conveyor_db import create_pool, migrate
from conveyor_projector.metrics import ProjectorMetrics
from conveyor_projector.projector import Projector
from conveyor_projector.settings import Settings

log = logging.getLogger("conveyor.projector")


async def migrate_when_ready(url: str, timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        try:
            conn = await asyncpg.connect(url, timeout=5)
            break
        except (OSError, asyncpg.PostgresError, TimeoutError) as e:
            if loop.time() > deadline:
                raise
            log.warning("waiting for PostgreSQL: %s", e)
            await asyncio.sleep(0.5)
    try:
        await migrate(conn)
    finally:
        await conn.close()


async def serve(settings: Settings) -> None:
    stop = stop_on_signals()
    nc = await bootstrap(settings, "conveyor-projector")
    await migrate_when_ready(settings.database_url)
    pool = await create_pool(settings.database_url, min_size=1, max_size=2)
    metrics = ProjectorMetrics()
    if settings.metrics_port is not None:
        metrics.serve(settings.metrics_host, settings.metrics_port)
        log.info("metrics on http://%s:%d/metrics", settings.metrics_host, settings.metrics_port)
    days = settings.retention_terminal_days
    retention = timedelta(days=days) if days is not None else None
    if retention is not None:
        log.info("retention: terminal jobs leave the read model %s after they finished", retention)
    projector = Projector(
        nc,
        pool,
        batch_size=settings.batch_size,
        fetch_timeout_s=settings.fetch_timeout_s,
        metrics=metrics,
        retention=retention,
    )
    try:
        await projector.run(stop)
    finally:
        with contextlib.suppress(Exception):
            await nc.close()
        await pool.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    run(serve(settings))


if __name__ == "__main__":
    main()
