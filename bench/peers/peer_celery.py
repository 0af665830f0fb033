"""Celery: Redis broker (db 0) and Redis result backend (db 1), prefork pool, concurrency 2.

Imported by the worker (`celery -A peer_celery worker`) for the app and its task, and by run.py
for the driver.
"""

from __future__ import annotations

import time

import celery
import redis
from celery import Celery

from infra import BenchError, env_binary, wait_until
from peer import (
    POLL_INTERVAL_S,
    RESULT_TIMEOUT_S,
    WARM_UP_JOBS,
    ThroughputRun,
    redis_db_url,
)

BROKER_DB = 0
RESULT_DB = 1
QUEUE = "celery"

app = Celery("peer_celery", broker=redis_db_url(BROKER_DB), backend=redis_db_url(RESULT_DB))
app.conf.broker_connection_retry_on_startup = True


@app.task(name="noop")
def noop() -> float:
    """The no-op job; its result is the wall time at which the handler started."""
    return time.time()


class CeleryPeer:
    name = "celery"
    version = celery.__version__
    setup = (
        "Redis broker + Redis result backend, prefork pool concurrency 2 (one worker; "
        "gossip, mingle and heartbeat off), apply_async() in a loop for bulk submission (it "
        "took less client CPU than group(...).apply_async())"
    )

    def __init__(self) -> None:
        self._broker = redis.Redis.from_url(redis_db_url(BROKER_DB))
        self._results = redis.Redis.from_url(redis_db_url(RESULT_DB))

    def worker_argv(self) -> list[str]:
        argv = [env_binary("celery"), "-A", "peer_celery", "worker", "--pool", "prefork"]
        argv += ["--concurrency", "2", "--loglevel", "WARNING"]
        return [*argv, "--without-gossip", "--without-mingle", "--without-heartbeat"]

    def warm_up(self) -> None:
        pending = [noop.apply_async() for _ in range(WARM_UP_JOBS)]
        for result in pending:
            result.get(timeout=RESULT_TIMEOUT_S)

    def reset(self) -> None:
        if self._broker.llen(QUEUE):
            raise BenchError("the celery queue is not empty between runs")
        self._results.flushdb()

    def throughput(self, jobs: int) -> ThroughputRun:
        start = time.perf_counter()
        sent = [noop.apply_async() for _ in range(jobs)]
        submitted = time.perf_counter()
        done = wait_until(self._results.dbsize, jobs, POLL_INTERVAL_S)
        sent[-1].get(timeout=RESULT_TIMEOUT_S)
        return ThroughputRun(submitted - start, done - start)

    def latency(self, jobs: int, gap_s: float) -> list[float]:
        sent = []
        for _ in range(jobs):
            before = time.time()
            sent.append((before, noop.apply_async()))
            time.sleep(gap_s)
        return [(result.get(timeout=RESULT_TIMEOUT_S) - before) * 1e3 for before, result in sent]

    def close(self) -> None:
        consumer = app.backend.result_consumer
        consumer.stop()
        consumer.subscribed_to.clear()  # results freed later must not unsubscribe from Redis
        self._broker.close()
        self._results.close()
