"""A user's own job module, as a worker loads it (``CONVEYOR_JOB_MODULES=user_jobs``), for
tests/e2e/test_user_jobs.py: it imports only ``conveyor`` and its payload libraries.

Each process that imports it leaves a mark (a file named by its pid under
``USER_JOBS_MARKS``), so the test can tell that the API never did."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Annotated

import msgspec
import pydantic

import conveyor

MARKS = os.environ.get("USER_JOBS_MARKS")
if MARKS:
    Path(MARKS, str(os.getpid())).touch()


class Resize(msgspec.Struct, forbid_unknown_fields=True):
    url: str
    width: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 800


@conveyor.job("resize-image", max_attempts=3, timeout_s=60)
async def resize(ctx: conveyor.Context, p: Resize) -> dict[str, object]:
    """Resize an image (four tiles, a progress report each)."""
    for tile in range(1, 5):
        await asyncio.sleep(0.05)
        ctx.progress(25 * tile, f"tile {tile}/4")
    ctx.log.info("resized %s to %d", p.url, p.width)
    return {"url": p.url, "width": p.width, "attempt": ctx.attempt}


class Fetch(msgspec.Struct):
    succeed_on: int = 3
    delay_s: float = 0.3


@conveyor.job("flaky-fetch", max_attempts=3)
async def flaky(ctx: conveyor.Context, p: Fetch) -> dict[str, int]:
    if ctx.attempt < p.succeed_on:
        raise conveyor.Retry(p.delay_s, f"upstream busy on attempt {ctx.attempt}")
    return {"attempts": ctx.attempt}


class Charge(pydantic.BaseModel):  # a pydantic model works as well as a msgspec Struct
    model_config = pydantic.ConfigDict(extra="forbid")

    card: str = pydantic.Field(pattern=r"^[0-9]{4}$")
    cents: int = pydantic.Field(gt=0)


@conveyor.job("charge-card", max_attempts=5)
async def charge(ctx: conveyor.Context, p: Charge) -> None:
    raise conveyor.PermanentFailure(f"card {p.card} declined")


class Crunch(msgspec.Struct):
    rounds: int = 1_000_000


@conveyor.job("crunch")
def crunch(ctx: conveyor.Context, p: Crunch) -> dict[str, object]:
    """A sync handler: it runs in a thread and ends when told through ``ctx.cancelled``."""
    done = 0
    while done < p.rounds and not ctx.cancelled:
        done += 1
        ctx.progress(min(99.0, done), f"round {done}")
        if ctx.wait_cancelled(0.05):
            break
    if MARKS and ctx.cancelled:
        Path(MARKS, f"cancelled-{ctx.job_id}").write_text(str(done))
    return {"rounds": done}
