"""Replay: rebuild the read model from a log of ``scale.replay_events`` events with
``conveyor replay`` (the projector not running); events/s, end to end, repeated on one log.

The log is real: every job's history is a valid path (submitted → started → progressed →
completed, or failed and retried), encoded by ``conveyor_events`` and written by the event
store in atomic batches, with each ``job.submitted``'s run command beside it. Jobs go through
in waves, several waves in flight, so a job's events are spread among other jobs' as under
load. After the last replay the read model is checked against what was written: one row per
job, the counts by status, no dead letters, the checkpoint at the log's last event (and, at
smoke scale, ``conveyor verify``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from conveyor_api.ids import new_job_id
from conveyor_bench.harness import Cluster, Scale, conveyor
from conveyor_bench.stats import spread
from conveyor_bus import JetStreamEventStore, connect
from conveyor_bus.store import MAX_BATCH_MESSAGES
from conveyor_events import (
    AnyEvent,
    ErrorInfo,
    JobCompleted,
    JobFailed,
    JobProgressed,
    JobStarted,
    JobSubmitted,
    Status,
    Write,
)
from conveyor_events.events import (
    CompletedData,
    FailedData,
    ProgressedData,
    StartedData,
    SubmittedData,
)
from conveyor_events.names import Priority

WAVE = 400
"""Jobs per wave: their submits, then their starts, progress and outcomes."""
WAVES_IN_FLIGHT = 6
WORKER = "worker:bench-1"


@dataclass
class Log:
    """What was written: events, jobs and each job's final status."""

    events: int = 0
    statuses: Counter[str] = field(default_factory=Counter)

    @property
    def jobs(self) -> int:
        return sum(self.statuses.values())


class Wave:
    """One wave of jobs, each a valid history, as the event store's writes in stages."""

    def __init__(self, rng: random.Random, start: datetime, size: int) -> None:
        self.rng = rng
        self.now = start
        self.jobs = [new_job_id(int(start.timestamp() * 1000)) for _ in range(size)]
        self.final: dict[str, Status] = {}

    def _at(self) -> datetime:
        self.now += timedelta(microseconds=self.rng.randrange(50, 500))
        return self.now

    def stages(self) -> list[list[Write]]:
        rng = self.rng
        submits, starts, progress, outcomes, retries = [], [], [], [], []
        for job_id in self.jobs:
            sleep = rng.random() < 0.3
            payload: dict[str, Any] = (
                {"seconds": round(rng.uniform(0, 60), 1), "steps": 10, "fail": False, "busy": False}
                if sleep
                else {}
            )
            data = SubmittedData(
                type="sleep" if sleep else "noop",
                priority="high" if rng.random() < 0.2 else "regular",
                payload=payload,
                max_attempts=2,
            )
            submits.append(
                Write(
                    job_id,
                    [JobSubmitted(job_id=job_id, at=self._at(), actor="user:bench", data=data)],
                    expected_seq=0,
                    priority=data.priority,
                )
            )
            roll = rng.random()
            if roll < 0.02:
                self.final[job_id] = "pending"
                continue
            starts.append(self._event(JobStarted, job_id, StartedData(attempt=1, worker_id="b")))
            if roll < 0.04:
                self.final[job_id] = "running"
                continue
            if sleep:
                for step in (1, 5):
                    progress.append(
                        self._event(JobProgressed, job_id, ProgressedData(attempt=1, progress=step))
                    )
            if roll < 0.10:
                error = ErrorInfo(type="RuntimeError", message="boom")
                retry = roll < 0.07
                failed = FailedData(attempt=1, error=error, retry=retry)
                outcomes.append(self._event(JobFailed, job_id, failed, data.priority))
                if retry:
                    again = StartedData(attempt=2, worker_id="b", run=2)
                    retries.append(self._event(JobStarted, job_id, again))
                    retries.append(self._event(JobCompleted, job_id, CompletedData(attempt=2)))
                    self.final[job_id] = "completed"
                else:
                    self.final[job_id] = "failed"
            else:
                outcomes.append(self._event(JobCompleted, job_id, CompletedData(attempt=1)))
                self.final[job_id] = "completed"
        return [submits, starts, progress, outcomes, retries]

    def _event(
        self, kind: type[AnyEvent], job_id: str, data: Any, priority: Priority = "regular"
    ) -> Write:
        event = kind(job_id=job_id, at=self._at(), actor=WORKER, data=data)
        return Write(job_id, [event], expected_seq=None, priority=priority)


def _chunks(writes: list[Write]) -> list[list[Write]]:
    """Writes in atomic batches of at most MAX_BATCH_MESSAGES messages."""
    out: list[list[Write]] = [[]]
    size = 0
    for w in writes:
        n = len(w.events)
        if size + n > MAX_BATCH_MESSAGES:
            out.append([])
            size = 0
        out[-1].append(w)
        size += n
    return [c for c in out if c]


async def write_log(nats_url: str, events: int, seed: int = 7) -> Log:
    """Append waves of valid histories until the log holds at least ``events`` events."""
    nc = await connect(nats_url, "bench-replay")
    store = JetStreamEventStore(nc, publish_timeout=60)
    rng = random.Random(seed)
    log = Log()
    start = datetime.now(UTC) - timedelta(days=1)
    size = max(10, min(WAVE, events // (WAVES_IN_FLIGHT * 10)))
    try:

        async def lane() -> None:
            nonlocal start
            while log.events < events:
                wave = Wave(rng, start, size)
                start += timedelta(seconds=1)
                stages = wave.stages()
                log.events += sum(len(w.events) for stage in stages for w in stage)
                log.statuses.update(wave.final.values())
                for stage in stages:
                    await asyncio.gather(*(store.append(c) for c in _chunks(stage)))

        await asyncio.gather(*(lane() for _ in range(WAVES_IN_FLIGHT)))
    finally:
        await nc.close()
    return log


async def _read_model(database_url: str) -> dict[str, Any]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT status, count(*) AS n FROM jobs GROUP BY status")
        letters = await conn.fetchval("SELECT count(*) FROM dead_letters")
        checkpoint = await conn.fetchval(
            "SELECT last_seq FROM projector_checkpoint WHERE name = 'projector'"
        )
    finally:
        await conn.close()
    return {
        "statuses": {r["status"]: r["n"] for r in rows},
        "dead_letters": letters,
        "checkpoint": checkpoint,
    }


async def _last_seq(nats_url: str) -> int:
    from conveyor_bus import DirectGetter
    from conveyor_bus.reader import last_event_sequence

    nc = await connect(nats_url, "bench-replay-check")
    try:
        return await last_event_sequence(DirectGetter(nc))
    finally:
        await nc.close()


def run(scale: Scale) -> dict[str, Any]:
    with Cluster("replay") as cluster:
        env = cluster.env
        t0 = time.monotonic()
        log = asyncio.run(write_log(env["NATS_URL"], scale.replay_events))
        write_s = time.monotonic() - t0
        print(f"  wrote {log.events} events of {log.jobs} jobs in {write_s:.1f}s", flush=True)
        runs: list[float] = []
        for _ in range(scale.repeats):
            t0 = time.monotonic()
            conveyor("replay", env=env, timeout=900)
            elapsed = time.monotonic() - t0
            runs.append(log.events / elapsed)
            print(f"  replay: {elapsed:.1f}s, {runs[-1]:.0f} events/s", flush=True)
        model = asyncio.run(_read_model(env["DATABASE_URL"]))
        last = asyncio.run(_last_seq(env["NATS_URL"]))
        expected = {s: n for s, n in log.statuses.items() if n}
        problems = []
        if model["statuses"] != expected:
            problems.append(f"statuses {model['statuses']} != written {expected}")
        if model["dead_letters"]:
            problems.append(f"{model['dead_letters']} dead letters")
        if model["checkpoint"] != last:
            problems.append(f"checkpoint {model['checkpoint']} != last event {last}")
        if scale.smoke:
            conveyor("verify", env=env, timeout=300)
        if problems:
            raise RuntimeError("replay built a wrong read model: " + "; ".join(problems))
    return {
        "events": log.events,
        "jobs": log.jobs,
        "write_log_s": round(write_s, 1),
        "events_per_s": spread(runs, 0),
        "verified": "counts, checkpoint" + (", conveyor verify" if scale.smoke else ""),
    }
