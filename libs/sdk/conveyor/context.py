"""The context a handler is called with: its job, progress, a logger and cancellation."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable

ProgressSink = Callable[[float, str | None], None]


class Context:
    """Given to a handler as its first argument (built by the worker).

    ``job_id`` and ``attempt`` (1 on the first run) say what runs; ``log`` is a logger whose
    records carry both. ``progress(pct, message)`` may be called as often as you like, from
    the event loop or from a sync handler's thread: the worker writes the latest value at
    most a few times a second, and the last one always. ``cancelled`` turns true when the job
    is stopped, times out or its worker shuts down: an async handler is also cancelled
    (``asyncio.CancelledError`` at its next ``await``), a sync handler runs in a thread and
    has to look (``ctx.cancelled``, or ``ctx.wait_cancelled(seconds)`` instead of a sleep)."""

    def __init__(self, job_id: str, attempt: int, progress: ProgressSink) -> None:
        self.job_id = job_id
        self.attempt = attempt
        self.log = logging.LoggerAdapter(
            logging.getLogger("conveyor.job"), {"job_id": job_id, "attempt": attempt}
        )
        self._sink = progress
        self._cancelled = threading.Event()
        self._loop = asyncio.get_running_loop()
        self._loop_thread = threading.get_ident()

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report ``percent`` done (0 to 100) and an optional message."""
        percent = float(percent)
        if not 0.0 <= percent <= 100.0:
            raise ValueError(f"progress must be between 0 and 100, not {percent!r}")
        if message is not None and not isinstance(message, str):
            raise TypeError(f"progress message must be a str or None, not {type(message)}")
        if threading.get_ident() == self._loop_thread:
            self._sink(percent, message)
        else:
            self._loop.call_soon_threadsafe(self._sink, percent, message)

    @property
    def cancelled(self) -> bool:
        """Whether this attempt should end now (stop, timeout or shutdown)."""
        return self._cancelled.is_set()

    def wait_cancelled(self, timeout_s: float | None = None) -> bool:
        """Block (a sync handler's sleep) until cancelled or ``timeout_s`` passed; whether
        it was cancelled."""
        return self._cancelled.wait(timeout_s)

    def cancel(self) -> None:
        """Called by the worker: the attempt is to end."""
        self._cancelled.set()
