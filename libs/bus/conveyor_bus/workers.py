"""Worker presence: each worker publishes a heartbeat to its own subject on a memory stream
that keeps one message per subject and drops it after the TTL."""

from __future__ import annotations

from datetime import datetime

import msgspec
from nats.aio.client import Client

from conveyor_bus.directget import DirectGetter
from conveyor_bus.topology import api_request
from conveyor_events import names


class WorkerInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    host: str
    pid: int
    started_at: datetime
    last_heartbeat_at: datetime
    concurrency: int
    running: list[str]
    stopping: bool = False
    types: list[str] = []
    """The job types this worker runs."""


_decoder = msgspec.json.Decoder(WorkerInfo)


async def publish_heartbeat(nc: Client, info: WorkerInfo) -> None:
    await nc.request(names.worker_subject(info.id), msgspec.json.encode(info), timeout=5)


async def forget_worker(nc: Client, worker_id: str) -> None:
    """Remove a worker at once (graceful shutdown) instead of waiting for its TTL."""
    await api_request(
        nc,
        f"$JS.API.STREAM.PURGE.{names.WORKERS_STREAM}",
        {"filter": names.worker_subject(worker_id)},
    )


async def live_workers(getter: DirectGetter) -> list[WorkerInfo]:
    msgs = await getter.last_per_subject(names.WORKERS_STREAM, names.WORKERS_ALL)
    workers = []
    for m in msgs:
        try:
            workers.append(_decoder.decode(m.data))
        except msgspec.DecodeError:
            continue
    return sorted(workers, key=lambda w: w.started_at)
