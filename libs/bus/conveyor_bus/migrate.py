"""Copying a log of the old layout into this one (``conveyor migrate``).

Layout 1 kept every event of a job on ``conveyor.events.<id>`` of stream ``CONVEYOR``, beside
run commands on ``conveyor.run.<priority>``. Layout 2 (names.py) keeps them in stream
``CONVEYOR_JOBS``, each event on its own subject under ``conveyor.job.<id>.``, the runnable
ones naming their priority. The copy keeps every message in its order, each with its old
sequence in a ``Conveyor-Migrated-Seq`` header; it leaves the run commands behind (the
runnable events are the commands now), and keeps poison on the job's subjects, where every
reader classifies it as before. Sequences change, so the read model is rebuilt afterwards.

While it copies, the new stream's metadata says so, and no service starts on it; a copy that
was interrupted resumes after its last copied message (it writes atomic batches). At the end
the old stream is sealed: it stays readable for audit, and nothing can write to it any more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client

from conveyor_bus.directget import DirectGetter, StoredMsg
from conveyor_bus.errors import BusError, BusUnavailable
from conveyor_bus.store import MAX_BATCH_MESSAGES, Message
from conveyor_bus.topology import (
    MIGRATING,
    LayoutError,
    api_request,
    event_log_config,
    stream_info,
)
from conveyor_events import AnyEvent, JobSubmitted, decode_event, names, runnable

log = logging.getLogger("conveyor.bus")

READ_PAGE = 2_000
UNREADABLE = "job.unreadable"
"""The event type named by the subject of a copied message that is no event (it is read
back as the same poison it was)."""

Progress = Callable[[int, int], None]
"""Called with (old sequence copied up to, old sequence to reach)."""


@dataclass(frozen=True, slots=True)
class Migrated:
    copied: int
    """Messages this run wrote to the new stream."""
    left_behind: int
    """Run commands not copied (the runnable events are the commands now)."""
    last_legacy_seq: int


async def needs_migration(nc: Client) -> bool:
    """Whether the server holds a log of the old layout that is not copied yet (or a copy
    that did not finish)."""
    legacy = await stream_info(nc, names.LEGACY_STREAM)
    if legacy is None:
        return False
    if not legacy["config"].get("sealed"):
        return True
    current = await stream_info(nc, names.STREAM)
    return current is not None and _migration_of(current) == MIGRATING


async def migrate_layout(
    nc: Client, *, replicas: int = 1, progress: Progress | None = None
) -> Migrated:
    """Copy the old stream into the new one, then seal the old one. Refuses while services
    use the old stream. Run again after an interruption, it resumes. The new stream stays
    marked as being migrated (no service starts on it) until :func:`mark_migrated`, once the
    read model was rebuilt from it."""
    legacy = await stream_info(nc, names.LEGACY_STREAM)
    if legacy is None:
        raise LayoutError(f"there is no stream {names.LEGACY_STREAM} to migrate")
    if not legacy["config"].get("sealed"):
        await _refuse_while_in_use(nc)
    until = int(legacy["state"]["last_seq"])
    current = await stream_info(nc, names.STREAM)
    if current is None:
        config = event_log_config(replicas, {names.MIGRATED_FROM_KEY: MIGRATING})
        await api_request(nc, f"$JS.API.STREAM.CREATE.{names.STREAM}", config)
        start = 1
    elif _migration_of(current) == MIGRATING:
        start = await _copied_up_to(nc, int(current["state"]["last_seq"])) + 1
        log.info("resuming the copy of %s after its sequence %d", names.LEGACY_STREAM, start - 1)
    else:
        raise LayoutError(
            f"stream {names.STREAM} already holds a log that no migration writes to, so "
            f"{names.LEGACY_STREAM} cannot be copied into it; move one of them aside first"
        )
    copied, left_behind = await _Copier(nc).copy(start, until, progress)
    await _seal(nc, legacy)
    return Migrated(copied, left_behind, until)


def _migration_of(info: dict[str, Any]) -> str | None:
    metadata: dict[str, str] = info["config"].get("metadata") or {}
    return metadata.get(names.MIGRATED_FROM_KEY)


async def _refuse_while_in_use(nc: Client) -> None:
    """Services of the old version read the old stream through the two work-queue consumers
    (their pull requests wait there) and ephemeral readers (projector, notifier)."""
    listing = await api_request(nc, f"$JS.API.CONSUMER.LIST.{names.LEGACY_STREAM}", {"offset": 0})
    busy = [
        c["name"]
        for c in listing.get("consumers") or []
        if not c["config"].get("durable_name") or c.get("num_waiting", 0) > 0
    ]
    if busy:
        raise LayoutError(
            f"Conveyor services still read {names.LEGACY_STREAM} (consumers {', '.join(busy)}): "
            "stop every api, worker, projector and notifier, wait 30 s (an ephemeral reader "
            "outlives its service that long), then run `conveyor migrate` again"
        )


async def _copied_up_to(nc: Client, last_seq: int) -> int:
    """The old sequence of the last message copied (0: none yet)."""
    if last_seq == 0:
        return 0
    try:
        msg = await nc.jetstream().get_msg(names.STREAM, seq=last_seq)
    except nats.errors.Error as e:
        raise BusUnavailable(f"reading {names.STREAM} at {last_seq}: {e}") from e
    return int((msg.headers or {}).get(names.HEADER_MIGRATED_SEQ, 0))


class _Copier:
    def __init__(self, nc: Client) -> None:
        self.nc = nc
        self.getter = DirectGetter(nc)
        self.priorities: dict[str, names.Priority] = {}
        self.batches = 0

    async def copy(self, start: int, until: int, progress: Progress | None) -> tuple[int, int]:
        copied = left_behind = 0
        seq = start
        while seq <= until:
            page = await self.getter.batch(
                names.LEGACY_STREAM, {"seq": seq, "next_by_subj": ">", "batch": READ_PAGE}
            )
            page = [m for m in page if m.seq <= until]
            if not page:
                break
            out: list[Message] = []
            for m in page:
                message = await self._translate(m)
                if message is None:
                    left_behind += 1
                else:
                    out.append(message)
            for i in range(0, len(out), MAX_BATCH_MESSAGES):
                await self._write(out[i : i + MAX_BATCH_MESSAGES])
            copied += len(out)
            seq = page[-1].seq + 1
            if progress is not None:
                progress(page[-1].seq, until)
        return copied, left_behind

    async def _translate(self, m: StoredMsg) -> Message | None:
        """The message's place in the new layout (None: a run command, not copied)."""
        headers = {names.HEADER_MIGRATED_SEQ: str(m.seq)}
        if m.subject.startswith(names.LEGACY_RUN_PREFIX):
            return None
        if m.subject.startswith(names.LEGACY_IDEMPOTENCY_PREFIX):
            return (
                names.idempotency_subject_of_digest(m.subject.rsplit(".", 1)[-1]),
                m.data,
                headers,
            )
        job_id = m.subject.rsplit(".", 1)[-1]
        event = _decode(m.data)
        if event is None:  # poison: the same poison on the job's subjects
            return names.event_subject(job_id, UNREADABLE), m.data, headers
        if isinstance(event, JobSubmitted) and event.job_id == job_id:
            self.priorities.setdefault(job_id, event.data.priority)
        priority = await self._priority(job_id) if runnable(event) else None
        return names.event_subject(job_id, event.name, priority), m.data, headers

    async def _priority(self, job_id: str) -> names.Priority:
        found = self.priorities.get(job_id)
        if found is None:  # submitted before an interrupted run: its copy says
            subject = names.event_subject(job_id, "job.submitted") + ".*"
            got = await self.getter.batch(names.STREAM, {"last_by_subj": subject})
            found = "high" if got and got[0].subject.endswith(".high") else "regular"
            self.priorities[job_id] = found
        return found

    async def _write(self, batch: list[Message]) -> None:
        """One atomic batch: a copy interrupted between two batches resumes at the next."""
        self.batches += 1
        batch_id = f"migrate-{self.batches}"
        last = len(batch)
        for n, (subject, data, headers) in enumerate(batch, 1):
            h = {**headers, names.HEADER_BATCH_ID: batch_id, names.HEADER_BATCH_SEQ: str(n)}
            if n < last:
                await self.nc.publish(subject, data, headers=h)
                continue
            h[names.HEADER_BATCH_COMMIT] = "1"
            reply = await self.nc.request(subject, data, headers=h, timeout=30)
            ack = msgspec.json.decode(reply.data)
            if "error" in ack:
                raise BusError(f"copying into {names.STREAM}: {ack['error']}")


def _decode(raw: bytes) -> AnyEvent | None:
    try:
        return decode_event(raw)
    except (msgspec.DecodeError, RecursionError):
        return None


async def _seal(nc: Client, legacy: dict[str, Any]) -> None:
    if legacy["config"].get("sealed"):
        return
    config = {**legacy["config"], "sealed": True}
    await api_request(nc, f"$JS.API.STREAM.UPDATE.{names.LEGACY_STREAM}", config)


async def mark_migrated(nc: Client, until: int) -> None:
    """The copy is complete and the read model rebuilt: services may start on the new log."""
    current = await stream_info(nc, names.STREAM)
    assert current is not None
    config = current["config"]
    metadata = {
        **(config.get("metadata") or {}),
        names.MIGRATED_FROM_KEY: f"{names.LEGACY_STREAM}@{until}",
    }
    await api_request(nc, f"$JS.API.STREAM.UPDATE.{names.STREAM}", {**config, "metadata": metadata})
