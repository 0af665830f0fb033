"""Ack-wait heartbeats from a thread of their own.

A run command is redelivered when its ack wait passes without an ack or an ``in_progress``
(``+WPI``). The worker's event loop cannot be trusted to send those: a CPU-bound handler
that never awaits holds the loop for as long as it computes. So the heartbeats come from a
thread with its own event loop and its own NATS connection (an ack is a plain publish to the
delivery's reply subject, from any connection). Python's GIL switches threads every few
milliseconds even under a busy loop, so the thread keeps its beat.

A heartbeat has a deadline: an attempt with ``timeout_s`` gets heartbeats until its timeout
plus a margin while its handler runs. A handler that hogs the loop past its timeout (so it
cannot be cancelled) then loses its delivery like a frozen worker, and the fencing of the
log turns away whatever it reports later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time

from nats.aio.client import Client

from conveyor_bus import connect
from conveyor_worker.metrics import WorkerMetrics

log = logging.getLogger("conveyor.worker")

IN_PROGRESS = b"+WPI"


class Heartbeats:
    def __init__(self, nats_url: str, name: str, interval_s: float, metrics: WorkerMetrics) -> None:
        self.nats_url = nats_url
        self.name = name
        self.interval_s = interval_s
        self._deadlines: dict[str, float | None] = {}
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="heartbeats", daemon=True)
        self.metrics = metrics
        self.last_success = time.monotonic()
        """When heartbeats last reached NATS (monotonic)."""

    def healthy(self, now: float) -> bool:
        """The thread runs and has flushed to NATS within the last three intervals (or is
        still starting)."""
        if not self._thread.is_alive():
            return False
        return now - self.last_success < 3 * self.interval_s + 5

    def start(self, timeout: float = 10.0) -> None:
        self._thread.start()
        self._ready.wait(timeout)

    def close(self) -> None:
        self._closing.set()
        self._thread.join(5)

    def beat(self, reply: str, deadline: float | None = None) -> None:
        """Keep the delivery with this reply subject alive (until ``deadline``, monotonic)."""
        with self._lock:
            self._deadlines[reply] = deadline

    def forget(self, reply: str) -> None:
        with self._lock:
            self._deadlines.pop(reply, None)

    def due(self, now: float) -> list[str]:
        """The reply subjects to beat for now: those without a deadline or before it."""
        with self._lock:
            return [r for r, d in self._deadlines.items() if d is None or now < d]

    def _main(self) -> None:
        asyncio.run(self._loop())

    async def _loop(self) -> None:
        nc: Client | None = None
        while nc is None and not self._closing.is_set():
            try:
                nc = await connect(self.nats_url, f"{self.name}-heartbeats")
            except Exception as e:
                log.warning("heartbeat connection failed (%s); retrying", e)
                self._ready.set()
                await self._sleep(1.0)
        self._ready.set()
        if nc is None:
            return
        try:
            while not self._closing.is_set():
                await self._sleep(self.interval_s)
                replies = self.due(time.monotonic())
                try:
                    for reply in replies:
                        await nc.publish(reply, IN_PROGRESS)
                    await nc.flush(timeout=2)
                    self.metrics.heartbeats.inc(len(replies))
                    self.last_success = time.monotonic()
                except Exception as e:  # NATS away: the next beat tries again
                    log.warning("heartbeats not sent: %s", e)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _sleep(self, seconds: float) -> None:
        """Wait ``seconds``, or less when the worker closes."""
        await asyncio.to_thread(self._closing.wait, seconds)
