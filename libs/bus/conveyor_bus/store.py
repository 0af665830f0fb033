"""The event store on JetStream: a job's history by batched direct gets, appends checked
against the job's last event on any of its subjects, several writes as one atomic batch.

A job's events live on ``conveyor.job.<id>.<event>[.<priority>]`` (names.py). Every append
carries ``Nats-Expected-Last-Subject-Sequence`` with ``...-Subject: conveyor.job.<id>.>``,
so the check is against the job's last event whatever its subject. One write is one plain
publish (one disk sync); several writes, or a write with an idempotency record, are one
atomic batch: all of it or none.

A write with a run due later (``conveyor_events.timers``) sets its timer in
``CONVEYOR_TIMERS`` first, then appends its events: a crash between the two leaves a timer
whose due names a run the log does not hold, which the worker acknowledges; never a waiting
run without a timer. A stop of a pending job removes the job's timer after the stop is
written (a timer that outlives it fires a due the worker only acknowledges).
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence

import msgspec
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout

from conveyor_bus.connection import require_connected
from conveyor_bus.directget import DirectGetter, StoredMsg
from conveyor_bus.errors import BusError, BusUnavailable
from conveyor_events import (
    ConcurrencyConflict,
    IllegalEvent,
    JobState,
    Loaded,
    StoredEvent,
    Write,
    encode_event,
    names,
    step,
    subject_of,
)
from conveyor_events.poison import Poison, read_event
from conveyor_events.timers import Timer, cancels_timer, timer_for

log = logging.getLogger("conveyor.bus")

MAX_BATCH_MESSAGES = 500
"""Messages per atomic batch (the server allows 1,000)."""
WRONG_LAST_SEQUENCE = 10071

Message = tuple[str, bytes, dict[str, str]]


class _PubAck(msgspec.Struct):
    seq: int = 0
    count: int = 1
    error: dict[str, object] | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


def expect(job_id: str, seq: int) -> dict[str, str]:
    """Headers of an append that must follow the job's message ``seq`` (0: a new job)."""
    return {
        names.HEADER_EXPECTED_LAST_SUBJECT_SEQ: str(seq),
        names.HEADER_EXPECTED_SUBJECT: names.job_subjects(job_id),
    }


def messages(write: Write) -> list[tuple[Message, bool]]:
    """What a write stores, each message with whether it is one of the write's events: its
    events on their subjects (the first checked against the job's last message), then its
    idempotency record (checked to be the key's first). A write's trace context rides in
    its events' ``traceparent`` header."""
    out: list[tuple[Message, bool]] = []
    for i, event in enumerate(write.events):
        checked = i == 0 and write.expected_seq is not None
        headers = expect(write.job_id, write.expected_seq or 0) if checked else {}
        if write.trace is not None:
            headers[names.HEADER_TRACEPARENT] = write.trace
        out.append(((subject_of(event, write.priority), encode_event(event), headers), True))
    if write.idempotency_key is not None:
        record = names.idempotency_subject(write.idempotency_key)
        headers = {names.HEADER_EXPECTED_LAST_SUBJECT_SEQ: "0"}
        out.append(((record, write.job_id.encode(), headers), False))
    return out


def timers(write: Write) -> list[Timer]:
    """The timers a write sets before its events are appended (one per delayed run)."""
    found = (timer_for(e, write.priority, write.run, write.trace) for e in write.events)
    return [t for t in found if t is not None]


class JetStreamEventStore:
    """The :class:`~conveyor_events.store.EventStore` port on the ``CONVEYOR_JOBS`` stream."""

    def __init__(self, nc: Client, *, publish_timeout: float = 5.0) -> None:
        self._nc = nc
        self._getter = DirectGetter(nc)
        self._timeout = publish_timeout
        self._batch_ids = itertools.count()
        self._batch_prefix = os.urandom(6).hex()

    @property
    def getter(self) -> DirectGetter:
        return self._getter

    @property
    def nc(self) -> Client:
        return self._nc

    # -- reading -------------------------------------------------------------------------

    async def history(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        events, _, _ = await self._read(job_id, None, 0, keep_after=after_seq, limit=limit)
        return events

    async def load(self, job_id: str, *, after: Loaded | None = None) -> Loaded:
        state, start = (after.state, after.last_seq) if after is not None else (None, 0)
        _, state, last_seq = await self._read(job_id, state, start)
        return Loaded(state, last_seq)

    async def _read(
        self,
        job_id: str,
        state: JobState | None,
        after_seq: int,
        *,
        keep_after: int | None = None,
        limit: int | None = None,
    ) -> tuple[list[StoredEvent], JobState | None, int]:
        """The job's events after ``after_seq``, stepped onto ``state``, and the sequence of
        the last message on its subjects (the expected sequence of the next append, poison
        or not). Poison — what the projector parks as a dead letter: garbage, or a transition
        the table forbids — is left out, so every reader of a job agrees with the read
        model. ``keep_after``: only events after this sequence are returned (the ones before
        are still stepped, for the poison filter); ``limit``: the read stops once it has that
        many. A page of the log is worked on before the next one is asked for, so a long
        history never holds the event loop for long."""
        events: list[StoredEvent] = []
        last = after_seq
        subjects = names.job_subjects(job_id)
        async for page in self._getter.pages(names.STREAM, subjects, start=after_seq + 1):
            for m in page:
                last = m.seq
                event = read_event(m.subject, m.data)
                try:
                    if isinstance(event, Poison):
                        raise ValueError(event.reason)
                    state = step(state, event, seq=m.seq)
                except (ValueError, IllegalEvent) as e:
                    log.warning("ignoring poison at seq %d of job %s: %s", m.seq, job_id, e)
                    continue
                if keep_after is None or m.seq > keep_after:
                    events.append(StoredEvent(m.seq, event))
                    if limit is not None and len(events) >= limit:
                        return events, state, last
        return events, state, last

    async def last_seq(self, job_id: str) -> int:
        msg = await self.last_message(names.job_subjects(job_id))
        return msg.seq if msg is not None else 0

    async def last_message(self, subject: str) -> StoredMsg | None:
        got = await self._getter.batch(names.STREAM, {"last_by_subj": subject})
        return got[0] if got else None

    async def key_owner(self, key: str) -> str | None:
        msg = await self.last_message(names.idempotency_subject(key))
        return msg.data.decode() if msg else None

    # -- writing -------------------------------------------------------------------------

    async def append(self, writes: Sequence[Write]) -> None:
        """Append all writes, all of them or none: one plain publish for a single message,
        an atomic batch for more. Fills each write's ``seqs``. Raises ConcurrencyConflict
        when an expected sequence did not match (nothing was written), BusUnavailable when
        NATS did not answer."""
        batch = [(w, m, is_event) for w in writes for m, is_event in messages(w)]
        if not batch:
            return
        if len(batch) > MAX_BATCH_MESSAGES:
            raise ValueError(f"{len(batch)} messages exceed one atomic batch")
        await self._set_timers([t for w in writes for t in timers(w)])
        last_seq, count = await self._publish([m for _, m, _ in batch])
        if count != len(batch):
            raise BusError(f"JetStream stored {count} of {len(batch)} messages of a batch")
        first_seq = last_seq - len(batch) + 1
        for offset, (write, _, is_event) in enumerate(batch):
            if is_event:
                write.seqs.append(first_seq + offset)
        for write in writes:
            if any(cancels_timer(e) for e in write.events):
                await self._cancel_timer(write.job_id)

    async def set_timer(self, timer: Timer) -> None:
        """Set one timer again (a worker mends a run's timer that another write replaced)."""
        await self._set_timers([timer])

    async def _set_timers(self, found: list[Timer]) -> None:
        """Write timers (each replacing its job's earlier one, if any), as one atomic batch
        of the timers stream: one disk sync however many."""
        if found:
            await self._publish([(t.subject, t.body, t.headers()) for t in found])

    async def _cancel_timer(self, job_id: str) -> None:
        """Remove the job's timer, if it has one; the stop is written already, so a failure
        here only leaves a due that the worker acknowledges."""
        subject = f"$JS.API.STREAM.PURGE.{names.TIMERS_STREAM}"
        body = msgspec.json.encode({"filter": names.timer_subject(job_id)})
        try:
            await self._nc.request(subject, body, timeout=self._timeout)
        except Exception as e:
            log.warning("timer of job %s not removed (its due will be ignored): %s", job_id, e)

    async def _publish(self, batch: list[Message]) -> tuple[int, int]:
        """Publish as one atomic batch (or a plain publish for one message): the last
        message's stream sequence and how many messages were stored."""
        require_connected(self._nc)
        try:
            if len(batch) == 1:
                subject, data, headers = batch[0]
                reply = await self._nc.request(
                    subject, data, headers=headers or None, timeout=self._timeout
                )
            else:
                batch_id = f"{self._batch_prefix}-{next(self._batch_ids)}"
                for n, (subject, data, headers) in enumerate(batch[:-1], 1):
                    h = {**headers, names.HEADER_BATCH_ID: batch_id, names.HEADER_BATCH_SEQ: str(n)}
                    await self._nc.publish(subject, data, headers=h)
                subject, data, headers = batch[-1]
                h = {
                    **headers,
                    names.HEADER_BATCH_ID: batch_id,
                    names.HEADER_BATCH_SEQ: str(len(batch)),
                    names.HEADER_BATCH_COMMIT: "1",
                }
                reply = await self._nc.request(subject, data, headers=h, timeout=self._timeout)
        except NatsTimeout as e:
            raise BusUnavailable("NATS did not acknowledge the write in time") from e
        except BusError:
            raise
        except Exception as e:
            raise BusUnavailable(f"NATS write failed: {e}") from e
        ack = _ack_decoder.decode(reply.data)
        if ack.error is not None:
            code = ack.error.get("err_code")
            description = str(ack.error.get("description"))
            if code == WRONG_LAST_SEQUENCE:
                raise ConcurrencyConflict(description)
            raise BusError(f"JetStream refused the write: {description} (code {code})")
        return ack.seq, ack.count
