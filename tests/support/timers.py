"""What the timers stream and the log hold for one job, read straight from nats-server."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import nats

from conveyor_bus.topology import api_request
from conveyor_events import names


def _run(nats_url: str, subject: str, body: dict[str, Any]) -> dict[str, Any]:
    async def call() -> dict[str, Any]:
        nc = await nats.connect(nats_url)
        try:
            return await api_request(nc, subject, body)
        finally:
            await nc.close()

    return asyncio.run(call())


def log_subjects(nats_url: str, job_id: str) -> dict[str, int]:
    """How many messages the log holds on each subject of the job: its events, and the due
    messages its timers fired (``conveyor.due.<id>.<priority>``)."""
    info = _run(
        nats_url,
        f"$JS.API.STREAM.INFO.{names.STREAM}",
        {"subjects_filter": f"conveyor.*.{job_id}.>"},
    )
    subjects: dict[str, int] = info["state"].get("subjects") or {}
    return subjects


def timers_held(nats_url: str, job_id: str | None = None) -> int:
    """Timers waiting in the timers stream (of one job, or of all)."""
    subject = names.timer_subject(job_id) if job_id else f"{names.TIMER_PREFIX}.*"
    info = _run(
        nats_url, f"$JS.API.STREAM.INFO.{names.TIMERS_STREAM}", {"subjects_filter": subject}
    )
    return sum((info["state"].get("subjects") or {}).values())


def consumer_state(nats_url: str, priority: names.Priority = "regular") -> dict[str, int]:
    info = _run(
        nats_url, f"$JS.API.CONSUMER.INFO.{names.STREAM}.{names.run_consumer(priority)}", {}
    )
    return {
        "ack_pending": int(info["num_ack_pending"]),
        "redelivered": int(info["num_redelivered"]),
        "pending": int(info["num_pending"]),
        "delivered": int(info["delivered"]["consumer_seq"]),
    }


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
