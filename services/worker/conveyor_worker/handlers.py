"""Built-in job types and the context a handler receives."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from conveyor_events.jobtypes import SleepPayload, parse_payload


class JobFailed(Exception):
    """The handler reports a failure (retried while attempts are left)."""


class PermanentFailure(JobFailed):
    """The handler reports a failure that no retry can fix: skip the remaining attempts."""


class JobContext(Protocol):
    job_id: str
    attempt: int
    log: logging.LoggerAdapter[logging.Logger]

    def progress(self, percent: float, message: str | None = None) -> None:
        """Report progress; coalesced, the last value is always written."""


Handler = Callable[[JobContext, dict[str, Any]], Awaitable[Any]]


async def noop(ctx: JobContext, payload: dict[str, Any]) -> None:
    return None


class BusyNotAllowed(PermanentFailure):
    """``sleep`` with ``busy: true`` on a worker that does not allow it."""


async def sleep(ctx: JobContext, payload: dict[str, Any], *, allow_busy: bool = False) -> Any:
    p = parse_payload(payload, SleepPayload)
    if p.busy and not allow_busy:
        # it would hold this worker's event loop for up to 30 s: every other job here waits
        raise BusyNotAllowed(
            "sleep with busy=true holds the worker's event loop and is disabled on this "
            "worker; set CONVEYOR_ALLOW_BUSY_SLEEP=true on a worker for tests and demos"
        )
    start = time.monotonic()
    for step in range(1, p.steps + 1):
        if p.busy:
            _spin_until(start + p.seconds * step / p.steps)
        else:
            await asyncio.sleep(p.seconds / p.steps)
        ctx.progress(100.0 * step / p.steps, f"step {step}/{p.steps}")
    if p.fail:
        raise JobFailed(f"failed on purpose after {p.seconds}s (payload fail=true)")
    return {"slept": p.seconds, "steps": p.steps}


def _spin_until(deadline: float) -> None:
    """Compute until ``deadline`` without ever awaiting (the event loop is blocked)."""
    n = 0
    while time.monotonic() < deadline:
        n = (n * 31 + 7) % 1_000_003


def builtin(*, allow_busy: bool = False) -> dict[str, Handler]:
    """The built-in job types' handlers; ``allow_busy``: whether ``sleep`` may burn CPU."""
    return {"noop": noop, "sleep": functools.partial(sleep, allow_busy=allow_busy)}
