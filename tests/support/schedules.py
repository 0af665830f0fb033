"""What a schedule's subjects hold in JetStream, read raw (for the schedule tests)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import datetime

from nats.aio.client import Client

from conveyor_bus.schedules import parse_time
from conveyor_events import decode_event, names
from conveyor_events.events import JobSubmitted
from support.jetstream import api


@dataclass(frozen=True)
class StoredTick:
    seq: int
    time: datetime
    """When the server stored it (microseconds)."""
    headers: dict[str, str]

    @property
    def second(self) -> int:
        """The tick's second (seconds since 1970): what its job's id is derived from."""
        return int(self.time.timestamp())


async def stored_ticks(nc: Client, name: str) -> list[StoredTick]:
    """Every tick of the schedule still in the stream, oldest first, with its headers."""
    out: list[StoredTick] = []
    seq = 0
    while True:
        got = await api(
            nc,
            f"$JS.API.STREAM.MSG.GET.{names.SCHEDULES_STREAM}",
            {"seq": seq + 1, "next_by_subj": names.schedule_tick_subject(name)},
        )
        if "message" not in got:
            return out
        raw = got["message"]
        lines = base64.b64decode(raw.get("hdrs") or "").decode().split("\r\n")[1:]
        headers = dict(line.split(": ", 1) for line in lines if ": " in line)
        out.append(StoredTick(raw["seq"], parse_time(raw["time"]), headers))
        seq = raw["seq"]


async def submitted_by(nc: Client, actor: str) -> list[JobSubmitted]:
    """Every ``job.submitted`` in the event log whose actor is ``actor``."""
    out: list[JobSubmitted] = []
    seq = 0
    while True:
        got = await api(
            nc,
            f"$JS.API.STREAM.MSG.GET.{names.STREAM}",
            {"seq": seq + 1, "next_by_subj": f"{names.JOB_PREFIX}.*.submitted.*"},
        )
        if "message" not in got:
            return out
        seq = got["message"]["seq"]
        event = decode_event(base64.b64decode(got["message"]["data"]))
        if isinstance(event, JobSubmitted) and event.actor == actor:
            out.append(event)
