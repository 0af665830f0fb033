"""A log of layout 1 (Conveyor before 2026-12), written as that version wrote it: stream
``CONVEYOR``, every event of a job on ``conveyor.events.<id>``, a run command
``{job_id, run, not_before}`` on ``conveyor.run.<priority>`` beside each event that queued a
run, idempotency records on ``conveyor.idempotency.<sha256[:40]>``, and the two work-queue
consumers. For the tests of ``conveyor migrate``."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client

from conveyor_events import AnyEvent, encode_event, runnable
from conveyor_events import testing as ev
from conveyor_events.names import Priority

STREAM = "CONVEYOR"
CONFIG: dict[str, Any] = {
    "name": STREAM,
    "subjects": ["conveyor.events.*", "conveyor.run.*", "conveyor.idempotency.*"],
    "retention": "limits",
    "storage": "file",
    "discard": "old",
    "deny_delete": True,
    "deny_purge": True,
    "allow_direct": True,
    "allow_atomic": True,
}


def consumer(priority: Priority) -> dict[str, Any]:
    return {
        "durable_name": f"worker-{priority}",
        "filter_subject": f"conveyor.run.{priority}",
        "ack_policy": "explicit",
        "deliver_policy": "all",
        "max_deliver": -1,
    }


async def api(nc: Client, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    reply = await nc.request(subject, json.dumps(body).encode(), timeout=5)
    answer: dict[str, Any] = json.loads(reply.data)
    assert "error" not in answer, answer
    return answer


@dataclass
class LegacyLog:
    """What was written, to check the copy against."""

    messages: list[tuple[str, bytes]] = field(default_factory=list)
    """(subject, data) in stream order."""
    jobs: dict[str, str] = field(default_factory=dict)
    """job id -> the status its history ends in."""
    key: str = "legacy-key"
    keyed_job: str = ""
    poison_job: str = ""


async def write_legacy_log(nc: Client) -> LegacyLog:
    """Jobs in every state a migration meets: completed (with a key), pending high, due for a
    retry, stopped, deleted, and garbage on a job's subject."""
    await api(nc, f"$JS.API.STREAM.CREATE.{STREAM}", CONFIG)
    for priority in ("high", "regular"):
        body = {"stream_name": STREAM, "config": consumer(priority)}
        await api(nc, f"$JS.API.CONSUMER.CREATE.{STREAM}.worker-{priority}", body)
    log = LegacyLog()
    t = datetime.now(UTC) - timedelta(minutes=5)
    done, pending, retry, stopped, gone, poison = (f"01JEGACY{n:018d}" for n in range(1, 7))
    log.keyed_job, log.poison_job = done, poison

    async def put(subject: str, data: bytes) -> None:
        ack = json.loads((await nc.request(subject, data, timeout=5)).data)
        assert "error" not in ack, ack
        log.messages.append((subject, data))

    async def event(e: AnyEvent, priority: Priority = "regular", run: int = 1) -> None:
        await put(f"conveyor.events.{e.job_id}", encode_event(e))
        if runnable(e):
            command = {"job_id": e.job_id, "run": run, "not_before": None}
            await put(f"conveyor.run.{priority}", json.dumps(command).encode())

    await event(ev.submitted(job=done, at=t))
    digest = hashlib.sha256(log.key.encode()).hexdigest()[:40]
    await put(f"conveyor.idempotency.{digest}", done.encode())
    await event(ev.started(job=done, at=t))
    await event(ev.completed(job=done, at=t))
    await event(ev.submitted(job=pending, at=t, priority="high"), "high")
    await event(ev.submitted(2, job=retry, at=t))
    await event(ev.started(job=retry, at=t))
    await event(ev.failed(1, retry=True, retry_at=t, job=retry, at=t), run=2)
    await event(ev.submitted(job=stopped, at=t))
    await event(ev.stopped(job=stopped, at=t))
    await event(ev.submitted(job=gone, at=t))
    await event(ev.stopped(job=gone, at=t))
    await event(ev.deleted(job=gone, at=t))
    await event(ev.submitted(job=poison, at=t))
    await put(f"conveyor.events.{poison}", b"\x00 not an event")
    await event(ev.stopped(job=poison, at=t))
    log.jobs = {
        done: "completed",
        pending: "pending",
        retry: "pending",
        stopped: "stopped",
        gone: "deleted",
        poison: "stopped",
    }
    return log
