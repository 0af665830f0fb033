"""``conveyor worker``: run jobs from the work queues until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from conveyor_bus import spans
from conveyor_bus.runtime import bootstrap, configure_logging, run, stop_on_signals
from conveyor_worker.loading import JobModuleError, load_types
from conveyor_worker.settings import Settings
from conveyor_worker.worker import Worker

log = logging.getLogger("conveyor.worker")


async def serve(settings: Settings) -> None:
    stop = stop_on_signals()
    types = load_types(settings)  # before connecting: a broken module fails the start at once
    nc = await bootstrap(settings, f"conveyor-worker-{settings.worker_id}")
    worker = Worker(settings, nc, types)

    async def relay() -> None:
        await stop.wait()
        worker.shutdown()

    relay_task = asyncio.create_task(relay())
    try:
        await worker.run()
    finally:
        relay_task.cancel()
        with contextlib.suppress(Exception):
            await nc.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level, settings.log_format)
    try:
        spans.configure("conveyor-worker")  # off unless OTEL_* variables name an exporter
        run(serve(settings))
    except (JobModuleError, spans.TracingConfigError) as e:
        raise SystemExit(f"conveyor worker: {e}") from None


if __name__ == "__main__":
    main()
