"""``conveyor worker``: run jobs from the work queues until SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from conveyor_bus import ensure_topology
from conveyor_bus.runtime import configure_logging, connect_when_ready, run
from conveyor_worker.handlers import BUILTIN
from conveyor_worker.settings import Settings
from conveyor_worker.worker import Worker

log = logging.getLogger("conveyor.worker")


async def serve(settings: Settings) -> None:
    stop_early = asyncio.Event()  # a SIGTERM before the worker exists
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop_early.set)
    nc = await connect_when_ready(settings.nats_url, f"conveyor-worker-{settings.worker_id}")
    await ensure_topology(
        nc,
        ack_wait_s=settings.ack_wait_s,
        worker_ttl_s=settings.worker_ttl_s,
        replicas=settings.replicas,
    )
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
