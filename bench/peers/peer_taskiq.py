"""Taskiq: taskiq-nats pull-based JetStream broker, NATS object store result backend.

Imported by the worker (`taskiq worker peer_taskiq:broker --workers 1`) for the broker and its
task, and by run.py for the driver, which runs Taskiq's asyncio client on one event loop.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine
from importlib import metadata
from typing import Any, TypeVar

from nats.js import JetStreamContext
from taskiq import AsyncTaskiqTask
from taskiq_nats import NATSObjectStoreResultBackend, PullBasedJetStreamBroker

from infra import BenchError, check_count, env_binary
from peer import POLL_INTERVAL_S, RESULT_TIMEOUT_S, WARM_UP_JOBS, ThroughputRun, nats_url

TASK_STREAM = "taskiq_jetstream"
RESULT_BUCKET = "taskiq_results"
RESULT_STREAM = f"OBJ_{RESULT_BUCKET}"
# An object store put of a small result is two stream messages: one chunk, one meta.
MESSAGES_PER_RESULT = 2
# Submissions awaited together with asyncio.gather.
SUBMIT_CHUNK = 500

T = TypeVar("T")

broker = PullBasedJetStreamBroker(servers=nats_url(), stream_name=TASK_STREAM)
broker = broker.with_result_backend(
    NATSObjectStoreResultBackend(servers=nats_url(), bucket_name=RESULT_BUCKET)
)


@broker.task(task_name="noop")
async def noop() -> float:
    """The no-op job; its result is the wall time at which the handler started."""
    return time.time()


class TaskiqPeer:
    name = "taskiq"
    version = metadata.version("taskiq")
    setup = (
        f"taskiq-nats {metadata.version('taskiq-nats')} PullBasedJetStreamBroker (defaults: "
        "fetch batch 1) + NATSObjectStoreResultBackend, 1 worker process (default "
        f"max-async-tasks 100), async task, kiq() gathered {SUBMIT_CHUNK} at a time for bulk "
        "submission"
    )

    def __init__(self) -> None:
        self._runner = asyncio.Runner()
        self._run(broker.startup())

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self._runner.run(coroutine)

    @property
    def _js(self) -> JetStreamContext:
        return broker.js

    def worker_argv(self) -> list[str]:
        argv = [env_binary("taskiq"), "worker", "peer_taskiq:broker", "--workers", "1"]
        return [*argv, "--log-level", "WARNING"]

    def warm_up(self) -> None:
        self._run(self._warm_up())

    async def _warm_up(self) -> None:
        tasks = [await noop.kiq() for _ in range(WARM_UP_JOBS)]
        for task in tasks:
            await task.wait_result(timeout=RESULT_TIMEOUT_S)

    def reset(self) -> None:
        self._run(self._reset())

    async def _reset(self) -> None:
        await self._js.purge_stream(TASK_STREAM)
        await self._js.purge_stream(RESULT_STREAM)

    def throughput(self, jobs: int) -> ThroughputRun:
        return self._run(self._throughput(jobs))

    async def _throughput(self, jobs: int) -> ThroughputRun:
        start = time.perf_counter()
        sent: list[AsyncTaskiqTask[float]] = []
        for first in range(0, jobs, SUBMIT_CHUNK):
            size = min(SUBMIT_CHUNK, jobs - first)
            sent += await asyncio.gather(*(noop.kiq() for _ in range(size)))
        submitted = time.perf_counter()
        done = await self._wait_for_results(jobs)
        await sent[-1].wait_result(timeout=RESULT_TIMEOUT_S)
        return ThroughputRun(submitted - start, done - start)

    async def _wait_for_results(self, jobs: int) -> float:
        """Polls the result stream every POLL_INTERVAL_S; the time it held all results."""
        while True:
            seen = await self._stored_results()
            if seen >= jobs:
                check_count(seen, jobs)
                return time.perf_counter()
            await asyncio.sleep(POLL_INTERVAL_S)

    async def _stored_results(self) -> int:
        info = await self._js.stream_info(RESULT_STREAM)
        return info.state.messages // MESSAGES_PER_RESULT

    def latency(self, jobs: int, gap_s: float) -> list[float]:
        return self._run(self._latency(jobs, gap_s))

    async def _latency(self, jobs: int, gap_s: float) -> list[float]:
        sent = []
        for _ in range(jobs):
            before = time.time()
            sent.append((before, await noop.kiq()))
            await asyncio.sleep(gap_s)
        latencies = []
        for before, task in sent:
            result = await task.wait_result(timeout=RESULT_TIMEOUT_S)
            if result.is_err:
                raise BenchError(f"a taskiq job failed: {result.error!r}")
            latencies.append((result.return_value - before) * 1e3)
        return latencies

    def close(self) -> None:
        try:
            self._run(broker.shutdown())
        finally:
            self._runner.close()
