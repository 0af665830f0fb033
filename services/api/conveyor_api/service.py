"""The API's application layer: builds commands, runs them against the log, reads the read
model. Routes call this; it knows nothing about HTTP."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from conveyor_api.audit import Origin
from conveyor_api.ids import is_job_id, new_job_id
from conveyor_api.schemas import JobIn
from conveyor_api.tracing import current_request_id, publishing
from conveyor_api.types import TypeCatalog
from conveyor_bus import BusError, JetStreamEventStore
from conveyor_bus.reader import event_lag
from conveyor_bus.workers import WorkerInfo, live_workers
from conveyor_db import CheckedRow, JobFilter, Page, ReadModel
from conveyor_events import (
    AnyCommand,
    CommandHandler,
    ConcurrencyConflict,
    DeleteJob,
    InvalidPayload,
    JobNotFound,
    JobState,
    Loaded,
    Outcome,
    RestartJob,
    StopJob,
    StoredEvent,
    SubmitJob,
    TooManyConflicts,
    evolve,
)


class InvalidBatch(InvalidPayload):
    """Some jobs of a batch are invalid; nothing was written."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(message for _, message in errors), field="jobs")
        self.errors = errors


class StopSignal(Protocol):
    async def __call__(self, job_id: str) -> None: ...


def batch_item_key(key: str, index: int) -> str:
    """The idempotency key of the job at ``index`` of a batch submitted with ``key``. The
    newline cannot occur in a header value, so no single submission's key is one of these."""
    return f"{key}\nbatch item {index}"


BATCH_KEY_ROUNDS = 5
"""How often a keyed batch looks again at which of its jobs are written, when a concurrent
retry of it keeps writing some of them first."""


@dataclass(frozen=True, slots=True)
class SubmittedBatch:
    states: list[JobState]
    created: list[JobState]
    """The jobs this request wrote (none: every one was written by an earlier request with
    its key)."""


@dataclass(frozen=True, slots=True)
class Submitted:
    state: JobState
    created: bool
    """False when an ``Idempotency-Key`` matched an earlier submission."""


LOG_CHECK_TIMEOUT_S = 1.0
"""How long ``GET /jobs/{id}`` waits for the log (the last message, then a fold) before the
read model answers alone."""


def _now() -> datetime:
    return datetime.now(UTC)


def _stamp(instant: datetime) -> str:
    return instant.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _retrieve(task: asyncio.Future[int]) -> None:
    """Done callback of an abandoned log read: its error is not news."""
    if not task.cancelled():
        task.exception()


class JobService:
    def __init__(
        self,
        store: JetStreamEventStore,
        reads: ReadModel,
        stop_signal: StopSignal,
        queue_depth: QueueDepthSource,
        types: TypeCatalog,
        *,
        log_check_timeout_s: float = LOG_CHECK_TIMEOUT_S,
    ) -> None:
        self.store = store
        self.commands = CommandHandler(store)
        self.reads = reads
        self.log_check_timeout_s = log_check_timeout_s
        self._stop_signal = stop_signal
        self._queue_depth = queue_depth
        self.types = types

    # -- writes --------------------------------------------------------------------------

    async def _command(
        self, spec: JobIn, actor: str, now: datetime, client_address: str | None = None
    ) -> SubmitJob:
        """The submission of ``spec``: its type checked, what it leaves out taken from the
        type's defaults, then from the API's."""
        resolved = await self.types.resolve(spec.type, spec.payload)
        given = spec.model_fields_set
        defaults = resolved.defaults

        def pick(name: str, fallback: object) -> Any:
            if name in given:
                return getattr(spec, name)
            return defaults.get(name, fallback)

        return SubmitJob(
            job_id=new_job_id(int(now.timestamp() * 1000)),
            now=now,
            actor=actor,
            type=spec.type,
            priority=pick("priority", "regular"),
            payload=resolved.payload,
            max_attempts=pick("max_attempts", 1),
            timeout_s=pick("timeout_s", None),
            run_at=spec.run_at,
            request_id=current_request_id(),
            client_address=client_address,
        )

    async def submit(
        self,
        spec: JobIn,
        actor: str,
        idempotency_key: str | None,
        *,
        client_address: str | None = None,
    ) -> Submitted:
        command = await self._command(spec, actor, _now(), client_address)
        if idempotency_key is not None:
            existing = await self._idempotent(idempotency_key)
            if existing is not None:
                return Submitted(existing, created=False)
        try:
            with publishing(1, command.job_id) as trace:
                [outcome] = await self.commands.submit([command], [idempotency_key], trace=trace)
        except ConcurrencyConflict:
            # Another request with the same key won the race (the job id is new, so the
            # idempotency record is the only subject that can conflict).
            assert idempotency_key is not None
            existing = await self._idempotent(idempotency_key)
            if existing is None:
                raise
            return Submitted(existing, created=False)
        return Submitted(outcome.state, created=True)

    async def _idempotent(self, key: str) -> JobState | None:
        job_id = await self.store.key_owner(key)
        if job_id is None:
            return None
        loaded = await self.store.load(job_id)
        return loaded.state

    async def submit_batch(
        self,
        specs: list[JobIn],
        actor: str,
        idempotency_key: str | None = None,
        *,
        client_address: str | None = None,
    ) -> SubmittedBatch:
        """All jobs are validated before any is written; every bad one is reported.

        With an ``Idempotency-Key`` every job gets a key of its own, derived from it and its
        place in the batch. A batch that was written in part (a large one is several atomic
        batches, and NATS may go away between them) is completed by its retry: the jobs
        already written are answered as they are, only the others are written."""
        now = _now()
        commands, errors = [], []
        for index, spec in enumerate(specs):
            try:
                commands.append(await self._command(spec, actor, now, client_address))
            except InvalidPayload as e:
                errors.append((f"jobs.{index}.{e.field}", f"jobs.{index}.{e}"))
        if errors:
            raise InvalidBatch(errors)
        if idempotency_key is None:
            with publishing(len(commands)) as trace:
                outcomes = await self.commands.submit(commands, trace=trace)
            states = [o.state for o in outcomes]
            return SubmittedBatch(states, created=states)
        keys = [batch_item_key(idempotency_key, n) for n in range(len(commands))]
        written: dict[int, JobState] = {}
        for _ in range(BATCH_KEY_ROUNDS):
            owners = await asyncio.gather(*(self.store.key_owner(k) for k in keys))
            missing = [n for n, owner in enumerate(owners) if owner is None]
            if not missing:
                break
            try:
                with publishing(len(missing)) as trace:
                    outcomes = await self.commands.submit(
                        [commands[n] for n in missing], [keys[n] for n in missing], trace=trace
                    )
            except ConcurrencyConflict:
                continue  # a concurrent retry wrote some of them first: look again
            written = {n: o.state for n, o in zip(missing, outcomes, strict=True)}
            break
        else:
            raise TooManyConflicts(f"batch {idempotency_key!r} kept changing while written")
        earlier = [(n, owner) for n, owner in enumerate(owners) if owner is not None]
        loaded = await asyncio.gather(*(self.store.load(owner) for _, owner in earlier))
        by_index = dict(written)
        for (n, _), got in zip(earlier, loaded, strict=True):
            assert got.state is not None  # its key record is written with it, atomically
            by_index[n] = got.state
        return SubmittedBatch([by_index[n] for n in range(len(commands))], list(written.values()))

    async def stop(self, job_id: str, who: Origin) -> JobState:
        """Stop the job; who asked, from where and why is recorded in its event (as for
        :meth:`restart` and :meth:`delete`)."""
        outcome = await self._execute(StopJob(job_id=job_id, now=_now(), **who))
        if outcome.state.stop_requested:
            await self._stop_signal(job_id)
        return outcome.state

    async def restart(self, job_id: str, who: Origin) -> JobState:
        return (await self._execute(RestartJob(job_id=job_id, now=_now(), **who))).state

    async def delete(self, job_id: str, who: Origin) -> None:
        await self._execute(DeleteJob(job_id=job_id, now=_now(), **who))

    async def _execute(self, command: AnyCommand) -> Outcome:
        if not is_job_id(command.job_id):
            raise JobNotFound(f"job {command.job_id} not found")
        return await self.commands.execute(command)

    # -- reads ---------------------------------------------------------------------------

    async def get(self, job_id: str) -> JobState:
        """The job as the read model holds it, unless the log has news the projector has not
        applied yet (a write answered a moment ago): then the job folded from the log, with
        the poison filter every reader applies (``EventStore``). See :meth:`_caught_up`."""
        if not is_job_id(job_id):
            raise JobNotFound(f"job {job_id} not found")
        deadline = asyncio.get_running_loop().time() + self.log_check_timeout_s
        last = asyncio.ensure_future(self.store.last_seq(job_id))
        try:
            row = await self.reads.get_checked(job_id)  # DatabaseUnavailable: 503
        except BaseException:
            last.cancel()
            last.add_done_callback(_retrieve)
            raise
        state = await self._caught_up(job_id, row, last, deadline)
        if state is None and row.pruned:
            raise JobNotFound(
                f"job {job_id} finished long enough ago that retention pruned it from the read"
                " model (CONVEYOR_RETENTION_TERMINAL_DAYS); the log keeps its history:"
                f" GET /api/v1/jobs/{job_id}/events, or ?as_of= for its state at a time"
            )
        if state is None:
            raise JobNotFound(f"job {job_id} not found")
        return state

    async def _caught_up(
        self,
        job_id: str,
        row: CheckedRow,
        last: asyncio.Future[int],
        deadline: float,
    ) -> JobState | None:
        """The job's state, given its row (current to the projector's checkpoint, read in the
        same statement) and the sequence of the last message on its subject (one direct get,
        made while PostgreSQL answered). When the checkpoint has reached that message, the
        row is the fold of the job's whole history, poison left out, so it is the answer
        (None: unknown or deleted). Otherwise the events after the checkpoint are folded onto
        the row (or the whole history, when there is no row) with ``EventStore``'s filter.
        The log check ends by ``deadline``; past it, or with NATS away, the read model
        answers alone."""
        try:
            async with asyncio.timeout_at(deadline):
                last_seq = await last
                if last_seq == 0:
                    return None  # nothing in the log: never submitted
                if last_seq <= row.checkpoint:
                    return row.state
                after = Loaded(row.state, row.checkpoint) if row.state is not None else None
                loaded = await self.store.load(job_id, after=after)
        except (BusError, TimeoutError):
            last.cancel()
            last.add_done_callback(_retrieve)
            return row.state
        state = loaded.state
        return None if state is None or state.deleted else state

    async def as_of(self, job_id: str, when: datetime) -> JobState:
        """The job as it was at ``when``: its history from the log (a deleted job's too),
        folded up to the first event written after ``when``. The log's order is the job's
        order, so the state is always one the job really had, even if a writer's clock ran
        behind another's. JobNotFound when the job is unknown, was not yet submitted then, or
        was deleted by then."""
        if not is_job_id(job_id):
            raise JobNotFound(f"job {job_id} not found")
        state: JobState | None = None
        history = await self.store.history(job_id)
        if not history:
            raise JobNotFound(f"job {job_id} not found")
        for stored in history:
            if stored.event.at > when:
                break
            state = evolve(state, stored.event, seq=stored.seq)
        stamp = _stamp(when)
        if state is None:
            submitted = _stamp(history[0].event.at)
            raise JobNotFound(
                f"job {job_id} did not exist at {stamp}: it was submitted {submitted}"
            )
        if state.deleted:
            raise JobNotFound(
                f"job {job_id} was deleted at {_stamp(state.updated_at)}"
                f", before {stamp}; its history: GET /api/v1/jobs/{job_id}/events"
            )
        return state

    async def list_jobs(self, flt: JobFilter, limit: int, cursor: str | None) -> Page:
        return await self.reads.list_jobs(flt, limit, cursor)

    async def history(
        self, job_id: str, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        """A page of the job's history: the events after ``after_seq``, at most ``limit``."""
        if not is_job_id(job_id):
            raise JobNotFound(f"job {job_id} not found")
        events = await self.store.history(job_id, after_seq=after_seq, limit=limit)
        if not events and (after_seq == 0 or await self.store.last_seq(job_id) == 0):
            raise JobNotFound(f"job {job_id} not found")
        return events

    async def workers(self, ttl_s: float) -> list[WorkerInfo]:
        now = _now()
        found = await live_workers(self.store.getter)
        return [w for w in found if (now - w.last_heartbeat_at).total_seconds() <= ttl_s]

    async def queue_depth(self) -> dict[str, tuple[int, int]]:
        return await self._queue_depth()

    async def projector_lag(self) -> int:
        checkpoint = await self.reads.checkpoint()
        return await event_lag(self.store.getter, checkpoint)


class QueueDepthSource(Protocol):
    async def __call__(self) -> dict[str, tuple[int, int]]: ...
