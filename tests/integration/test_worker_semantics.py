"""Failure semantics of a real worker on a real JetStream, with handlers written for the test:
retries with exponential backoff and jitter, permanent failures, timeouts."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from nats.aio.client import Client

import conveyor
from conveyor_bus import JetStreamEventStore
from conveyor_events import CommandHandler, JobFailed, JobStarted, JobState, SubmitJob
from conveyor_worker.settings import Settings
from conveyor_worker.worker import Worker

pytestmark = pytest.mark.integration

RETRY_BASE_S = 0.2
RETRY_CAP_S = 0.5
calls: dict[str, int] = {}


class BadInput(conveyor.PermanentFailure):
    pass


async def flaky(ctx: conveyor.Context, payload: dict[str, Any]) -> str:
    calls[ctx.job_id] = calls.get(ctx.job_id, 0) + 1
    if ctx.attempt < payload["succeed_at"]:
        raise RuntimeError(f"boom {ctx.attempt}")
    return "finally"


async def hopeless(ctx: conveyor.Context, payload: dict[str, Any]) -> None:
    calls[ctx.job_id] = calls.get(ctx.job_id, 0) + 1
    raise BadInput("the input can never work")


async def hang(ctx: conveyor.Context, payload: dict[str, Any]) -> None:
    await asyncio.sleep(60)


TYPES = conveyor.Registry()
for name, handler in {"flaky": flaky, "hopeless": hopeless, "hang": hang}.items():
    TYPES.job(name)(handler)


@pytest.fixture
async def worker(nc: Client, nats_url: str) -> AsyncIterator[Worker]:
    settings = Settings(
        nats_url=nats_url,
        worker_id="semantics",
        concurrency=4,
        retry_base_s=RETRY_BASE_S,
        retry_cap_s=RETRY_CAP_S,
    )
    w = Worker(settings, nc, TYPES)
    task = asyncio.create_task(w.run())
    try:
        yield w
    finally:
        w.shutdown()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 30)


async def run_job(store: JetStreamEventStore, job_id: str, type_: str, **fields: Any) -> JobState:
    await CommandHandler(store).submit(
        [SubmitJob(job_id=job_id, now=datetime.now(UTC), actor="user:test", type=type_, **fields)]
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        state = (await store.load(job_id)).state
        if state is not None and state.status in ("completed", "failed", "stopped"):
            return state
        await asyncio.sleep(0.05)
    raise AssertionError(f"{job_id} never finished: {(await store.load(job_id)).state}")


async def failures(store: JetStreamEventStore, job_id: str) -> list[JobFailed]:
    return [e.event for e in await store.history(job_id) if isinstance(e.event, JobFailed)]


async def test_a_failing_handler_is_retried_with_backoff_until_it_succeeds(
    nc: Client, worker: Worker
) -> None:
    store = JetStreamEventStore(nc)
    job = "01SEMANTICS000000000000001"
    state = await run_job(store, job, "flaky", payload={"succeed_at": 3}, max_attempts=3)

    assert (state.status, state.attempt, state.result) == ("completed", 3, "finally")
    failed = await failures(store, job)
    assert [f.data.attempt for f in failed] == [1, 2]
    for f in failed:
        assert f.data.retry is True and f.data.retry_at is not None
        ceiling = min(RETRY_CAP_S, RETRY_BASE_S * 2 ** (f.data.attempt - 1))
        delay = (f.data.retry_at - f.at).total_seconds()
        assert ceiling / 2 <= delay <= ceiling + 1e-6  # equal jitter: half fixed, half random
        assert f.data.error.type == "RuntimeError"
        assert f.data.error.message == f"boom {f.data.attempt}"
        assert f.data.error.traceback and "RuntimeError: boom" in f.data.error.traceback
    # and the next attempt really waited for retry_at
    starts = [e.event for e in await store.history(job) if isinstance(e.event, JobStarted)]
    for f, nxt in zip(failed, starts[1:], strict=True):
        assert f.data.retry_at is not None and nxt.at >= f.data.retry_at


async def test_the_last_failure_fails_the_job_with_the_error(nc: Client, worker: Worker) -> None:
    store = JetStreamEventStore(nc)
    job = "01SEMANTICS000000000000002"
    state = await run_job(store, job, "flaky", payload={"succeed_at": 99}, max_attempts=2)

    assert (state.status, state.attempt) == ("failed", 2)
    assert state.error is not None and state.error.message == "boom 2"
    last = (await failures(store, job))[-1]
    assert (last.data.retry, last.data.retry_at) == (False, None)


async def test_a_permanent_failure_skips_the_remaining_attempts(nc: Client, worker: Worker) -> None:
    store = JetStreamEventStore(nc)
    job = "01SEMANTICS000000000000003"
    state = await run_job(store, job, "hopeless", max_attempts=5)

    assert (state.status, state.attempt, calls[job]) == ("failed", 1, 1)
    assert state.error is not None
    assert (state.error.type, state.error.message) == ("BadInput", "the input can never work")
    [only] = await failures(store, job)
    assert only.data.retry is False


async def test_a_timed_out_attempt_is_cancelled_and_fails_with_timeout(
    nc: Client, worker: Worker
) -> None:
    store = JetStreamEventStore(nc)
    job = "01SEMANTICS000000000000004"
    began = time.monotonic()
    state = await run_job(store, job, "hang", timeout_s=0.3, max_attempts=2)

    assert time.monotonic() - began < 10  # not the handler's 60 s
    assert (state.status, state.attempt) == ("failed", 2)
    failed = await failures(store, job)
    assert [(f.data.error.type, f.data.retry) for f in failed] == [
        ("Timeout", True),
        ("Timeout", False),
    ]
    assert "exceeded timeout_s=0.3" in failed[0].data.error.message
