"""A small event log with every case a reader of windows meets, written raw into the real
stream: jobs in every state (one deleted), runnable events on work-queue subjects and off
them (a run due later, a retry), an idempotency record (not an event), a poison message on
an event subject. The reference the tests compare with is read back from the log itself."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from nats.aio.client import Client

from conveyor_bus import DirectGetter, connect, ensure_topology
from conveyor_bus.logwindow import LogWindows
from conveyor_events import AnyEvent, encode_event, names, subject_of
from conveyor_events import testing as ev
from conveyor_events.poison import Poison, read_event

DONE = "01KEXPRT000000000000000001"
GONE = "01KEXPRT000000000000000002"
RETRIED = "01KEXPRT000000000000000003"
POISONED = "01KEXPRT000000000000000004"


@dataclass(frozen=True, slots=True)
class Stored:
    seq: int
    subject: str
    stored_at: datetime
    event: AnyEvent | None
    """None: poison."""


@dataclass
class EventLog:
    messages: list[Stored] = field(default_factory=list)
    """Every message on an event subject, in log order, read back from the stream."""

    @property
    def events(self) -> list[Stored]:
        return [m for m in self.messages if m.event is not None]

    def select(
        self,
        job: str | None = None,
        types: tuple[str, ...] = (),
        since: datetime | None = None,
        until: datetime | None = None,
        after_seq: int = 0,
    ) -> list[int]:
        """The sequences a window should give, by brute force over the whole log."""
        return [
            m.seq
            for m in self.events
            if m.event is not None
            and (job is None or m.event.job_id == job)
            and (not types or m.event.name in types)
            and (since is None or m.stored_at >= since)
            and (until is None or m.stored_at <= until)
            and m.seq > after_seq
        ]


def history(t0: datetime) -> list[tuple[AnyEvent, names.Priority]]:
    at = [t0 + timedelta(seconds=n) for n in range(12)]
    later = t0 + timedelta(days=1)
    return [
        (ev.submitted(job=DONE, at=at[0], priority="high"), "high"),
        (ev.submitted(job=GONE, at=at[0], run_at=later), "regular"),
        (ev.started(job=DONE, at=at[1]), "high"),
        (ev.progressed(1, 50, "half", job=DONE, at=at[2]), "high"),
        (ev.submitted(job=RETRIED, at=at[2]), "regular"),
        (ev.stop_requested(job=GONE, at=at[3]), "regular"),
        (ev.completed(job=DONE, at=at[3]), "high"),
        (ev.stopped(job=GONE, at=at[4]), "regular"),
        (ev.started(job=RETRIED, at=at[4]), "regular"),
        (ev.failed(1, True, job=RETRIED, at=at[5]), "regular"),
        (ev.deleted(job=GONE, at=at[6]), "regular"),
        (ev.started(2, 2, job=RETRIED, at=at[7]), "regular"),
        (ev.failed(2, True, at[9], job=RETRIED, at=at[8]), "regular"),
        (ev.started(3, 3, job=RETRIED, at=at[9]), "regular"),
        (ev.failed(3, job=RETRIED, at=at[10]), "regular"),
        (ev.restarted(job=RETRIED, at=at[11]), "regular"),
    ]


async def write_event_log(nats_url: str) -> EventLog:
    nc = await connect(nats_url, "conveyor-tests-eventlog")
    try:
        await ensure_topology(nc, ack_wait_s=3)
        items = history(datetime.now(UTC) - timedelta(minutes=1))
        for n, (event, priority) in enumerate(items):
            await _put(nc, subject_of(event, priority), encode_event(event))
            if n == 6:
                await _put(nc, names.idempotency_subject("export-key"), DONE.encode())
                await _put(nc, names.event_subject(POISONED, "job.submitted"), b"{not json")
        return await read_back(nc)
    finally:
        await nc.close()


async def _put(nc: Client, subject: str, data: bytes) -> None:
    ack = json.loads((await nc.request(subject, data, timeout=5)).data)
    assert "error" not in ack, ack


async def read_back(nc: Client) -> EventLog:
    """Every message on an event subject with the time the log stored it."""
    windows = LogWindows(nc)
    log = EventLog()
    for m in await DirectGetter(nc).all_by_subject(names.STREAM, names.EVENTS_ALL):
        found = read_event(m.subject, m.data)
        event = None if isinstance(found, Poison) else found
        log.messages.append(Stored(m.seq, m.subject, await windows.stored_time(m.seq), event))
    return log


def public(seq: int, event: AnyEvent) -> dict[str, object]:
    """The SPEC's shape of a stored event, as JSON."""
    doc: dict[str, object] = json.loads(encode_event(event))
    doc.pop("v", None)
    return {"seq": seq, **doc}
