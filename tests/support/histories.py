"""A big log fast: finished jobs' whole histories written straight into the event log."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from conveyor_api.ids import new_job_id
from conveyor_bus import JetStreamEventStore, connect
from conveyor_bus.store import MAX_BATCH_MESSAGES
from conveyor_events import AnyEvent, JobCompleted, JobProgressed, JobStarted, JobSubmitted, Write
from conveyor_events.events import CompletedData, ProgressedData, StartedData, SubmittedData


def history(job_id: str, at: datetime, steps: int) -> Write:
    """A noop job submitted, started, progressed ``steps`` times and completed: one write."""
    tick = timedelta(milliseconds=1)
    worker = "worker:history-1"
    events: list[AnyEvent] = [
        JobSubmitted(job_id=job_id, at=at, actor="user:anonymous", data=SubmittedData(type="noop")),
        JobStarted(
            job_id=job_id, at=at + tick, actor=worker, data=StartedData(attempt=1, worker_id="h")
        ),
        *(
            JobProgressed(
                job_id=job_id,
                at=at + tick * (2 + i),
                actor=worker,
                data=ProgressedData(attempt=1, progress=100 * (i + 1) / steps),
            )
            for i in range(steps)
        ),
        JobCompleted(
            job_id=job_id, at=at + tick * (2 + steps), actor=worker, data=CompletedData(attempt=1)
        ),
    ]
    return Write(job_id, events, expected_seq=0)


async def write_histories(nats_url: str, jobs: int, steps: int, lanes: int = 4) -> list[str]:
    """``jobs`` finished histories of ``steps + 3`` events each, in atomic batches; their ids
    (the workers find them finished and leave them alone)."""
    nc = await connect(nats_url, "test-histories")
    store = JetStreamEventStore(nc, publish_timeout=60)
    start = datetime.now(UTC) - timedelta(hours=1)
    per_batch = max(1, MAX_BATCH_MESSAGES // (steps + 3))
    times = [start + timedelta(milliseconds=n) for n in range(jobs)]
    writes = [history(new_job_id(int(t.timestamp() * 1000)), t, steps) for t in times]
    batches = [writes[i : i + per_batch] for i in range(0, len(writes), per_batch)]
    try:

        async def lane(k: int) -> None:
            for batch in batches[k::lanes]:
                await store.append(batch)

        await asyncio.gather(*(lane(k) for k in range(lanes)))
    finally:
        await nc.close()
    return [w.job_id for w in writes]
