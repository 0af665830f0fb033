"""The event store: a job's history from the log, and appends guarded by optimistic
concurrency, written as JetStream atomic batches (one disk sync per batch)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import msgspec
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout

from conveyor_bus.connection import require_connected
from conveyor_bus.directget import DirectGetter, StoredMsg
from conveyor_bus.errors import BusError, BusUnavailable, ConcurrencyConflict
from conveyor_events import (
    AnyCommand,
    AnyEvent,
    JobState,
    JobSubmitted,
    RunJob,
    SubmitJob,
    decide,
    encode_event,
    encode_run,
    evolve,
    fold,
    names,
    run_to_queue,
)
from conveyor_events.invariants import illegal_transition
from conveyor_events.poison import Poison, read_event

log = logging.getLogger("conveyor.bus")

MAX_BATCH_MESSAGES = 500
"""Messages per atomic batch (the server allows 1,000)."""
WRONG_LAST_SEQUENCE = 10071
CONFLICT_RETRIES = 20


class _PubAck(msgspec.Struct):
    seq: int = 0
    count: int = 1
    error: dict[str, object] | None = None


_ack_decoder = msgspec.json.Decoder(_PubAck)


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    event: AnyEvent


@dataclass(frozen=True, slots=True)
class Loaded:
    """A job folded from its log; ``last_seq`` is 0 for a job with no events."""

    state: JobState | None
    last_seq: int


@dataclass(slots=True)
class Write:
    """Events for one job (and the run command they imply), appended together."""

    job_id: str
    events: Sequence[AnyEvent]
    expected_seq: int | None
    """The job's last sequence as the writer saw it; None appends without the check."""
    run: RunJob | None = None
    priority: names.Priority = "regular"
    idempotency_key: str | None = None
    seqs: list[int] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Outcome:
    """The state after a command, as folded from the log, and the events it appended."""

    state: JobState
    last_seq: int
    events: list[StoredEvent]


class EventStore:
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

    async def history(self, job_id: str) -> list[StoredEvent]:
        """Every event of a job, in order (also after it was deleted), without poison."""
        events, _, _ = await self._read(job_id, None, 0)
        return events

    async def load(self, job_id: str) -> Loaded:
        _, state, last_seq = await self._read(job_id, None, 0)
        return Loaded(state, last_seq)

    async def load_submitted(self, job_ids: Sequence[str]) -> dict[str, Loaded]:
        """Of these jobs, the ones whose whole history is still their ``job.submitted``,
        loaded in one round trip (the last message of each job's subject). A job missing
        from the answer has more history, or none in this read: load it on its own."""
        if not job_ids:
            return {}
        subjects = [names.event_subject(j) for j in job_ids]
        msgs = await self._getter.batch(
            names.STREAM, {"multi_last": subjects, "batch": len(subjects)}
        )
        found: dict[str, Loaded] = {}
        for m in msgs:
            event = read_event(m.subject, m.data)
            if isinstance(event, JobSubmitted):
                found[event.job_id] = Loaded(evolve(None, event), m.seq)
        return found

    async def refresh(self, loaded: Loaded) -> Loaded:
        """``loaded`` brought up to date by reading only the events after it."""
        if loaded.state is None:
            raise ValueError("refresh needs a loaded job")
        _, state, last_seq = await self._read(loaded.state.id, loaded.state, loaded.last_seq)
        return Loaded(state, last_seq)

    async def _read(
        self, job_id: str, state: JobState | None, after_seq: int
    ) -> tuple[list[StoredEvent], JobState | None, int]:
        """The job's events after ``after_seq``, folded onto ``state``, and the sequence of
        the subject's last message (the expected sequence of the next append, poison or
        not). Poison — what the projector parks as a dead letter: garbage, or a transition
        the table forbids — is left out, so every reader of a job agrees with the read
        model."""
        msgs = await self._getter.all_by_subject(
            names.STREAM, names.event_subject(job_id), start=after_seq + 1
        )
        events: list[StoredEvent] = []
        for m in msgs:
            event = read_event(m.subject, m.data)
            problem = (
                event.reason if isinstance(event, Poison) else illegal_transition(state, event)
            )
            if problem is not None:
                log.warning("ignoring poison at seq %d of job %s: %s", m.seq, job_id, problem)
                continue
            assert not isinstance(event, Poison)
            state = evolve(state, event)
            events.append(StoredEvent(m.seq, event))
        return events, state, msgs[-1].seq if msgs else after_seq

    async def last_message(self, subject: str) -> StoredMsg | None:
        got = await self._getter.batch(names.STREAM, {"last_by_subj": subject})
        return got[0] if got else None

    async def on_leader(self, job_id: str) -> bool:
        """Whether the stream's leader holds any event of the job. Direct gets may be served
        by a replica that lags; this asks the leader, so a False is final: the job was never
        submitted (its first event and its run command are written together)."""
        require_connected(self._nc)
        try:
            await self._nc.jetstream().get_last_msg(names.STREAM, names.event_subject(job_id))
        except nats.js.errors.NotFoundError:
            return False
        except (nats.errors.Error, TimeoutError) as e:
            raise BusUnavailable(f"cannot ask the stream leader about {job_id}: {e}") from e
        return True

    # -- writing -------------------------------------------------------------------------

    async def append(self, writes: Sequence[Write]) -> None:
        """Append all writes in one atomic batch: all of them land, or none.

        Fills each write's ``seqs``. Raises ConcurrencyConflict when any expected sequence
        did not match (nothing was written), BusUnavailable when NATS did not answer.
        """
        messages: list[tuple[str, bytes, dict[str, str], Write | None]] = []
        for w in writes:
            for i, event in enumerate(w.events):
                headers: dict[str, str] = {}
                if i == 0 and w.expected_seq is not None:
                    headers[names.HEADER_EXPECTED_LAST_SUBJECT_SEQ] = str(w.expected_seq)
                messages.append((names.event_subject(w.job_id), encode_event(event), headers, w))
            if w.run is not None:
                messages.append((names.run_subject(w.priority), encode_run(w.run), {}, None))
            if w.idempotency_key is not None:
                messages.append(
                    (
                        names.idempotency_subject(w.idempotency_key),
                        w.job_id.encode(),
                        {names.HEADER_EXPECTED_LAST_SUBJECT_SEQ: "0"},
                        None,
                    )
                )
        if not messages:
            return
        if len(messages) > MAX_BATCH_MESSAGES:
            raise ValueError(f"{len(messages)} messages exceed one atomic batch")
        last_seq, count = await self._publish_batch([(s, d, h) for s, d, h, _ in messages])
        if count != len(messages):
            raise BusError(f"JetStream stored {count} of {len(messages)} messages of a batch")
        first_seq = last_seq - len(messages) + 1
        for offset, (_, _, _, owner) in enumerate(messages):
            if owner is not None:
                owner.seqs.append(first_seq + offset)

    async def _publish_batch(
        self, messages: list[tuple[str, bytes, dict[str, str]]]
    ) -> tuple[int, int]:
        """Publish as one atomic batch (or a plain publish for one message): the last
        message's stream sequence and how many messages were stored."""
        require_connected(self._nc)
        try:
            if len(messages) == 1:
                subject, data, headers = messages[0]
                reply = await self._nc.request(
                    subject, data, headers=headers or None, timeout=self._timeout
                )
            else:
                batch_id = f"{self._batch_prefix}-{next(self._batch_ids)}"
                for n, (subject, data, headers) in enumerate(messages[:-1], 1):
                    h = {**headers, names.HEADER_BATCH_ID: batch_id, names.HEADER_BATCH_SEQ: str(n)}
                    await self._nc.publish(subject, data, headers=h)
                subject, data, headers = messages[-1]
                h = {
                    **headers,
                    names.HEADER_BATCH_ID: batch_id,
                    names.HEADER_BATCH_SEQ: str(len(messages)),
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

    # -- deciding ------------------------------------------------------------------------

    async def execute(
        self, command: AnyCommand, *, priority_hint: names.Priority | None = None
    ) -> Outcome:
        """Load the job, decide, append with the expected sequence; on a conflict reload
        and decide again. Domain errors propagate unchanged (nothing is written)."""
        for _ in range(CONFLICT_RETRIES):
            loaded = await self.load(command.job_id)
            try:
                return await self.apply(command, loaded)
            except ConcurrencyConflict:
                await asyncio.sleep(0.005)
        raise BusError(f"job {command.job_id}: too many concurrent writers, try again")

    async def apply(
        self,
        command: AnyCommand,
        loaded: Loaded,
        append: Callable[[Write], Awaitable[None]] | None = None,
    ) -> Outcome:
        """Decide ``command`` on an already loaded job and append the result once
        (through ``append``, e.g. a :class:`BatchAppender`, when given)."""
        before = loaded.state
        events = decide(command, before)
        if not events:
            assert before is not None
            return Outcome(before, loaded.last_seq, [])
        after = before
        for event in events:
            after = evolve(after, event)
        assert after is not None
        write = Write(
            job_id=command.job_id,
            events=events,
            expected_seq=loaded.last_seq,
            run=run_to_queue(before, after),
            priority=after.priority,
        )
        if append is None:
            await self.append([write])
        else:
            await append(write)
        stored = [StoredEvent(s, e) for s, e in zip(write.seqs, events, strict=True)]
        return Outcome(after, write.seqs[-1], stored)

    async def submit(
        self, commands: Sequence[SubmitJob], idempotency_key: str | None = None
    ) -> list[Outcome]:
        """Submit new jobs: each job's ``job.submitted`` and its run command in one atomic
        batch (chunked for large batches). See docs/explanation/submit-path.md."""
        writes: list[tuple[Write, JobState]] = []
        for cmd in commands:
            events = decide(cmd, None)
            state = fold(events)
            assert state is not None
            writes.append(
                (
                    Write(
                        job_id=cmd.job_id,
                        events=events,
                        expected_seq=0,
                        run=run_to_queue(None, state),
                        priority=cmd.priority,
                        idempotency_key=idempotency_key,
                    ),
                    state,
                )
            )
        per_chunk = max(1, MAX_BATCH_MESSAGES // 3)
        chunks = [writes[i : i + per_chunk] for i in range(0, len(writes), per_chunk)]
        await asyncio.gather(*(self.append([w for w, _ in chunk]) for chunk in chunks))
        return [
            Outcome(state, w.seqs[-1], [StoredEvent(w.seqs[0], w.events[0])]) for w, state in writes
        ]

    async def idempotent_job(self, key: str) -> str | None:
        """The job id first submitted with this ``Idempotency-Key``, if any."""
        msg = await self.last_message(names.idempotency_subject(key))
        return msg.data.decode() if msg else None
