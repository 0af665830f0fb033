"""Dramatiq: Redis broker (db 2), Results middleware on Redis (db 3), 1 process x 2 threads.

Imported by the worker (`dramatiq peer_dramatiq`) for the broker and its actor, and by run.py
for the driver.
"""

from __future__ import annotations

import time

import dramatiq
import redis
from dramatiq.brokers.redis import RedisBroker
from dramatiq.results import Results
from dramatiq.results.backends import RedisBackend

from infra import env_binary, wait_until
from peer import (
    POLL_INTERVAL_S,
    RESULT_TIMEOUT_S,
    WARM_UP_JOBS,
    ThroughputRun,
    redis_db_url,
)

BROKER_DB = 2
RESULT_DB = 3
RESULT_TIMEOUT_MS = RESULT_TIMEOUT_S * 1000

broker = RedisBroker(url=redis_db_url(BROKER_DB))
# redis-py 8 closes a read after 5 s by default, under a blocking get_result of up to 60 s:
# a result slower than 5 s (the smoke run, beside every other scenario) raised a socket
# TimeoutError instead of arriving. The socket waits as long as the result may.
backend = RedisBackend(
    client=redis.Redis.from_url(redis_db_url(RESULT_DB), socket_timeout=RESULT_TIMEOUT_S + 5)
)
broker.add_middleware(Results(backend=backend))
dramatiq.set_broker(broker)


@dramatiq.actor(actor_name="noop", store_results=True)
def noop() -> float:
    """The no-op job; its result is the wall time at which the handler started."""
    return time.time()


class DramatiqPeer:
    name = "dramatiq"
    version = dramatiq.__version__
    setup = (
        "Redis broker + Results middleware (Redis backend), 1 worker process x 2 threads, "
        "send() in a loop for bulk submission"
    )

    def __init__(self) -> None:
        self._results = redis.Redis.from_url(redis_db_url(RESULT_DB))

    def worker_argv(self) -> list[str]:
        return [env_binary("dramatiq"), "peer_dramatiq", "--processes", "1", "--threads", "2"]

    def warm_up(self) -> None:
        pending = [noop.send() for _ in range(WARM_UP_JOBS)]
        for message in pending:
            message.get_result(block=True, timeout=RESULT_TIMEOUT_MS)

    def reset(self) -> None:
        self._results.flushdb()

    def throughput(self, jobs: int) -> ThroughputRun:
        start = time.perf_counter()
        sent = [noop.send() for _ in range(jobs)]
        submitted = time.perf_counter()
        done = wait_until(self._results.dbsize, jobs, POLL_INTERVAL_S)
        sent[-1].get_result(block=True, timeout=RESULT_TIMEOUT_MS)
        return ThroughputRun(submitted - start, done - start)

    def latency(self, jobs: int, gap_s: float) -> list[float]:
        sent = []
        for _ in range(jobs):
            before = time.time()
            sent.append((before, noop.send()))
            time.sleep(gap_s)
        return [
            (message.get_result(block=True, timeout=RESULT_TIMEOUT_MS) - before) * 1e3
            for before, message in sent
        ]

    def close(self) -> None:
        self._results.close()
        broker.close()
