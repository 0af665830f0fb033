"""The built-in job types, ``noop`` and ``sleep``, registered like any user's type (the
``exec`` type is in execjob.py: a worker serves it only with an allow-list)."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

import msgspec

import conveyor

BUSY_LIMIT_S = 30.0
"""The longest a ``sleep`` job may burn CPU (``busy``)."""


class NoopPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``noop``: returns null at once."""


class SleepPayload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """``sleep``: reports progress ``steps`` times over ``seconds``, then completes
    (or fails, if ``fail``). With ``busy`` it burns CPU instead of sleeping, never yielding to
    the worker's event loop: a CPU-bound handler, for demonstrations and fault tests."""

    seconds: Annotated[float, msgspec.Meta(ge=0, le=86_400)] = 5.0
    steps: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 10
    fail: bool = False
    busy: bool = False

    def __post_init__(self) -> None:
        if self.busy and self.seconds > BUSY_LIMIT_S:
            raise ValueError(
                f"with busy=true, seconds must be at most {BUSY_LIMIT_S:g} - at `$.seconds`"
            )


SLEEP_RULES = {
    # a busy handler holds its worker's event loop: no stop, timeout or shutdown takes effect
    # meanwhile, so keep it short (what __post_init__ checks, for the API's validation)
    "if": {"properties": {"busy": {"const": True}}, "required": ["busy"]},
    "then": {"properties": {"seconds": {"maximum": BUSY_LIMIT_S}}},
}


class JobFailed(Exception):
    """``sleep`` with ``fail: true`` (retried while attempts are left)."""


class BusyNotAllowed(conveyor.PermanentFailure):
    """``sleep`` with ``busy: true`` on a worker that does not allow it."""


async def noop(ctx: conveyor.Context, payload: NoopPayload) -> None:
    return None


class Sleep:
    """The ``sleep`` handler; ``allow_busy`` is the worker's CONVEYOR_ALLOW_BUSY_SLEEP."""

    allow_busy = False

    @classmethod
    async def run(cls, ctx: conveyor.Context, p: SleepPayload) -> dict[str, float | int]:
        if p.busy and not cls.allow_busy:
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


conveyor.registry.add(conveyor.JobType("noop", NoopPayload, noop, description=NoopPayload.__doc__))
conveyor.registry.add(
    conveyor.JobType(
        "sleep", SleepPayload, Sleep.run, rules=SLEEP_RULES, description=SleepPayload.__doc__
    )
)
