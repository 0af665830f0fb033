"""For tests: event builders with sensible defaults, so a test states only what it is about
(``started(2)``, ``completed(1, job=A, at=t)``), and the event store in memory."""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from conveyor_events.errors import ConcurrencyConflict, IllegalEvent
from conveyor_events.events import (
    AnyEvent,
    CompletedData,
    ErrorInfo,
    FailedData,
    JobCompleted,
    JobDeleted,
    JobFailed,
    JobProgressed,
    JobRestarted,
    JobStarted,
    JobStopped,
    JobStopRequested,
    JobSubmitted,
    ProgressedData,
    StartedData,
    StoppedData,
    SubmittedData,
)
from conveyor_events.state import JobState
from conveyor_events.step import step
from conveyor_events.store import Loaded, StoredEvent, Write

JOB = "01JDQ5N3X8W4Y6Z7A9B2C3D4E5"
T0 = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
USER = "user:alice"
WORKER_ID = "w-1"
WORKER = f"worker:{WORKER_ID}"


def submitted(
    max_attempts: int = 1, *, job: str = JOB, at: datetime = T0, **data: Any
) -> JobSubmitted:
    fields = {"type": "sleep", "payload": {"seconds": 1}, **data}
    return JobSubmitted(
        job_id=job, at=at, actor=USER, data=SubmittedData(max_attempts=max_attempts, **fields)
    )


def started(attempt: int = 1, run: int = 1, *, job: str = JOB, at: datetime = T0) -> JobStarted:
    data = StartedData(attempt=attempt, worker_id=WORKER_ID, run=run)
    return JobStarted(job_id=job, at=at, actor=WORKER, data=data)


def progressed(
    attempt: int = 1,
    progress: float = 50,
    message: str | None = None,
    *,
    job: str = JOB,
    at: datetime = T0,
) -> JobProgressed:
    data = ProgressedData(attempt=attempt, progress=progress, message=message)
    return JobProgressed(job_id=job, at=at, actor=WORKER, data=data)


def completed(
    attempt: int = 1, result: Any = None, *, job: str = JOB, at: datetime = T0
) -> JobCompleted:
    data = CompletedData(attempt=attempt, result=result)
    return JobCompleted(job_id=job, at=at, actor=WORKER, data=data)


def failed(
    attempt: int = 1,
    retry: bool = False,
    retry_at: datetime | None = None,
    *,
    job: str = JOB,
    at: datetime = T0,
) -> JobFailed:
    error = ErrorInfo(type="OSError", message="disk full")
    data = FailedData(attempt=attempt, error=error, retry=retry, retry_at=retry_at)
    return JobFailed(job_id=job, at=at, actor=WORKER, data=data)


def stop_requested(*, job: str = JOB, at: datetime = T0) -> JobStopRequested:
    return JobStopRequested(job_id=job, at=at, actor=USER)


def stopped(attempt: int | None = None, *, job: str = JOB, at: datetime = T0) -> JobStopped:
    """Stopped while pending (``attempt`` None, by a user) or confirmed by the worker."""
    actor = USER if attempt is None else WORKER
    return JobStopped(job_id=job, at=at, actor=actor, data=StoppedData(attempt=attempt))


def restarted(*, job: str = JOB, at: datetime = T0) -> JobRestarted:
    return JobRestarted(job_id=job, at=at, actor=USER)


def deleted(*, job: str = JOB, at: datetime = T0) -> JobDeleted:
    return JobDeleted(job_id=job, at=at, actor=USER)


class InMemoryEventStore:
    """The :class:`~conveyor_events.store.EventStore` port in memory, with JetStream's
    semantics: one sequence for the whole log, appends checked against the job's last
    message, atomic multi-write appends, idempotency keys taken once. ``forge`` stores an
    event without any check (a zombie's write had fencing failed; poison)."""

    def __init__(self) -> None:
        self.log: list[tuple[str, AnyEvent]] = []
        """(job id, event), the event at index i having sequence i + 1."""
        self._jobs: dict[str, list[int]] = {}
        self._keys: dict[str, str] = {}
        self.conflicts = 0
        """Appends refused for a stale expected sequence or a taken key."""

    async def load(self, job_id: str, *, after: Loaded | None = None) -> Loaded:
        start = after.last_seq if after is not None else 0
        state = after.state if after is not None else None
        seqs = self._jobs.get(job_id, [])
        for seq in seqs:
            if seq > start:
                with contextlib.suppress(IllegalEvent):
                    state = step(state, self.log[seq - 1][1], seq=seq)
        return Loaded(state, seqs[-1] if seqs else start)

    async def history(
        self, job_id: str, *, after_seq: int = 0, limit: int | None = None
    ) -> list[StoredEvent]:
        out: list[StoredEvent] = []
        state: JobState | None = None
        for seq in self._jobs.get(job_id, []):
            event = self.log[seq - 1][1]
            with contextlib.suppress(IllegalEvent):
                state = step(state, event)
                if seq > after_seq:
                    out.append(StoredEvent(seq, event))
        return out if limit is None else out[:limit]

    async def last_seq(self, job_id: str) -> int:
        seqs = self._jobs.get(job_id)
        return seqs[-1] if seqs else 0

    async def key_owner(self, key: str) -> str | None:
        return self._keys.get(key)

    async def append(self, writes: Sequence[Write]) -> None:
        for w in writes:
            if w.expected_seq is not None and w.expected_seq != await self.last_seq(w.job_id):
                self.conflicts += 1
                raise ConcurrencyConflict(f"wrong last sequence for job {w.job_id}")
            if w.idempotency_key is not None and w.idempotency_key in self._keys:
                self.conflicts += 1
                owner = self._keys[w.idempotency_key]
                raise ConcurrencyConflict(f"idempotency key taken by job {owner}")
        for w in writes:
            for event in w.events:
                w.seqs.append(self._store(w.job_id, event))
            if w.idempotency_key is not None:
                self._keys[w.idempotency_key] = w.job_id

    def forge(self, event: AnyEvent) -> int:
        """Store ``event`` on its job without any check; its sequence."""
        return self._store(event.job_id, event)

    def _store(self, job_id: str, event: AnyEvent) -> int:
        self.log.append((job_id, event))
        seq = len(self.log)
        self._jobs.setdefault(job_id, []).append(seq)
        return seq
