"""``conveyor worker``: run jobs from the work queues until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from conveyor_bus.runtime import bootstrap, configure_logging, run
from conveyor_worker.handlers import BUILTIN
from conveyor_worker.settings import Settings
from conveyor_worker.worker import Worker

log = logging.getLogger("conveyor.worker")


async def serve(settings: Settings) -> None:
    stop_early = asyncio.Event()  # a SIGTERM before the worker exists
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_early.set)
    nc = await bootstrap(settings, f"conveyor-worker-{settings.worker_id}")
    worker = Worker(settings, nc, dict(BUILTIN))
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.shutdown)
    if stop_early.is_set():
        worker.shutdown()
    try:
        await worker.run()
    finally:
        with contextlib.suppress(Exception):
            await nc.close()


def main() -> None:
    settings = Settings()
    configure_logging(settings.log_level)
    run(serve(settings))


if __name__ == "__main__":
    main()
