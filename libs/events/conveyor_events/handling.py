"""The command handler: decide → append with the expected sequence → on a conflict, reload
the job and decide again. Every writer of the log goes through it: the API's commands, the
worker's starts, progress and outcomes.

It works on the :class:`~conveyor_events.store.EventStore` port, so the rules around it are
tested against the in-memory store (``conveyor_events.testing``) as well as against
JetStream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import msgspec

from conveyor_events.commands import AnyCommand, SubmitJob
from conveyor_events.decide import decide
from conveyor_events.errors import ConcurrencyConflict, TooManyConflicts
from conveyor_events.events import AnyEvent
from conveyor_events.state import JobState
from conveyor_events.step import step
from conveyor_events.store import EventStore, Loaded, Outcome, StoredEvent, Write

CONFLICT_RETRIES = 20
BATCH_MESSAGES = 500
"""Messages in one atomic batch of a batch submission (the server allows 1,000)."""

Append = Callable[[Write], Awaitable[None]]


class Decision(Protocol):
    """What a decision function returns: the events to append (none: nothing to write)."""

    @property
    def events(self) -> Sequence[AnyEvent]: ...


D = TypeVar("D", bound=Decision)


@dataclass(frozen=True, slots=True)
class Decided:
    """The decision of a command: :func:`~conveyor_events.decide.decide`'s events."""

    events: list[AnyEvent]


async def _pause(attempt: int) -> None:
    await asyncio.sleep(min(0.002 * (attempt + 1), 0.05))


class CommandHandler:
    def __init__(
        self,
        store: EventStore,
        *,
        append: Append | None = None,
        retries: int = CONFLICT_RETRIES,
        pause: Callable[[int], Awaitable[None]] = _pause,
    ) -> None:
        """``append``: how one write reaches the store (default: on its own; a worker groups
        concurrent writes into atomic batches)."""
        self.store = store
        self._append = append or self._append_alone
        self._retries = retries
        self._pause = pause

    async def _append_alone(self, write: Write) -> None:
        await self.store.append([write])

    async def execute(self, command: AnyCommand, known: Loaded | None = None) -> Outcome:
        """Decide ``command`` on the job (on ``known`` first, when the caller holds it) and
        append what it decided. Domain errors propagate: nothing was written."""

        def decision(loaded: Loaded) -> Decided:
            return Decided(decide(command, loaded.state))

        _, outcome = await self.handle(command.job_id, decision, known)
        if outcome is None:  # decide raises for a job without history, but for a submit
            raise AssertionError(f"{type(command).__name__} decided on no job")
        return outcome

    async def handle(
        self, job_id: str, decision: Callable[[Loaded], D], known: Loaded | None = None
    ) -> tuple[D, Outcome | None]:
        """The loop around any decision: ``decision(loaded)`` says what to append; when
        another writer appended first, the job is read again (only what follows ``loaded``)
        and decided again. The decision, and the outcome (None for a job with no history
        and nothing to write)."""
        loaded = known if known is not None else await self.store.load(job_id)
        for attempt in range(self._retries):
            decided = decision(loaded)
            if not decided.events:
                if loaded.state is None:
                    return decided, None
                return decided, Outcome(loaded.state, loaded.last_seq, [])
            try:
                return decided, await self._write(job_id, decided.events, loaded)
            except ConcurrencyConflict:
                await self._pause(attempt)
                after = loaded if loaded.state is not None else None
                loaded = await self.store.load(job_id, after=after)
        raise TooManyConflicts(f"job {job_id} kept changing while a command was decided")

    async def _write(self, job_id: str, events: Sequence[AnyEvent], loaded: Loaded) -> Outcome:
        state = loaded.state
        for event in events:
            state = step(state, event)
        assert state is not None
        write = Write(
            job_id, events, expected_seq=loaded.last_seq, priority=state.priority, run=state.run
        )
        await self._append(write)
        stored = [StoredEvent(seq, e) for seq, e in zip(write.seqs, events, strict=True)]
        state = msgspec.structs.replace(state, seq=write.seqs[-1])
        return Outcome(state, write.seqs[-1], stored)

    async def submit(
        self,
        commands: Sequence[SubmitJob],
        keys: Sequence[str | None] = (),
        *,
        trace: str | None = None,
    ) -> list[Outcome]:
        """New jobs: one write each, written together in atomic batches (one plain publish
        for a single job without a key). ``keys``: each command's idempotency key (none
        when shorter); ``trace``: the W3C ``traceparent`` the writes carry. Raises
        ``ConcurrencyConflict`` when a key is taken: then nothing of that atomic batch was
        written (the other batches of a large submission may be)."""
        writes: list[tuple[Write, JobState]] = []
        for n, cmd in enumerate(commands):
            events = decide(cmd, None)
            state = step(None, events[0])
            key = keys[n] if n < len(keys) else None
            writes.append((Write(cmd.job_id, events, 0, cmd.priority, key, trace=trace), state))
        chunks = list(_chunks([w for w, _ in writes], BATCH_MESSAGES))
        await asyncio.gather(*(self.store.append(chunk) for chunk in chunks))
        return [
            Outcome(
                msgspec.structs.replace(state, seq=w.seqs[0]),
                w.seqs[-1],
                [StoredEvent(w.seqs[0], w.events[0])],
            )
            for w, state in writes
        ]


def messages_of(write: Write) -> int:
    """How many messages a write stores: its events, and its idempotency record."""
    return len(write.events) + (write.idempotency_key is not None)


def _chunks(writes: list[Write], limit: int) -> Iterator[list[Write]]:
    chunk: list[Write] = []
    size = 0
    for write in writes:
        n = messages_of(write)
        if chunk and size + n > limit:
            yield chunk
            chunk, size = [], 0
        chunk.append(write)
        size += n
    if chunk:
        yield chunk
