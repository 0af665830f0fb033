"""The projector: reads the event log from its checkpoint and applies it to PostgreSQL, in
batches, with the rows, the dead letters and the checkpoint written in one transaction.

A message that is not an event it can apply (garbage, an unknown type, a schema-invalid event,
a transition the table forbids, a value the read model cannot hold) is parked in the
``dead_letters`` table, logged and counted; the projector moves on."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import asyncpg
from nats.aio.client import Client

from conveyor_bus import BusError, DirectGetter, JetStreamEventStore, StoredMsg
from conveyor_bus.reader import LogReader, event_lag
from conveyor_db import (
    CONNECTION_ERRORS,
    DeadLetter,
    Tombstone,
    load_states,
    lock_checkpoint,
    lock_checkpoint_row,
    save_dead_letters,
    save_projection,
)
from conveyor_db.rebuild import handover_lock
from conveyor_db.retention import prune_terminal
from conveyor_db.stats import KEEP, prune_stats
from conveyor_events import AnyEvent, IllegalEvent, JobState, names, step
from conveyor_events.poison import Poison, PoisonKind, poison, read_event
from conveyor_projector.logread import read_range
from conveyor_projector.metrics import ProjectorMetrics
from conveyor_projector.projection import project

log = logging.getLogger("conveyor.projector")

T = TypeVar("T")

STORAGE_ERRORS = (asyncpg.DataError, asyncpg.ProgramLimitExceededError)
"""PostgreSQL refusing a value (a NUL in text, an integer out of range, an oversized key):
the fault of one event, not of the database."""

LAG_INTERVAL_S = 1.0
MAINTENANCE_INTERVAL_S = 60.0
"""How often the projector prunes old statistics and, with retention on, old jobs."""
PRUNE_BATCH = 1000
"""Jobs pruned per transaction: short transactions, short pauses of the projection."""

Rehydrate = Callable[[str, int], Awaitable[JobState | None]]
"""A pruned job's state folded from the log, from its events before a sequence."""


class Rewound(Exception):
    """The checkpoint went back (``conveyor replay`` reset the read model)."""

    def __init__(self, checkpoint: int) -> None:
        super().__init__(f"checkpoint rewound to {checkpoint}")
        self.checkpoint = checkpoint


@dataclass
class Applied:
    """What one transaction did: events applied, messages parked, the new checkpoint."""

    checkpoint: int
    events: int = 0
    parked: list[DeadLetter] = field(default_factory=list)
    states: dict[str, JobState] = field(default_factory=dict)
    """The rows the transaction wrote, as written (deleted jobs left out)."""


Item = tuple[StoredMsg, AnyEvent]


class Projector:
    def __init__(
        self,
        nc: Client,
        pool: asyncpg.Pool,
        *,
        batch_size: int = 1000,
        replay_batch_size: int = 10_000,
        fetch_timeout_s: float = 1.0,
        metrics: ProjectorMetrics | None = None,
        cache_size: int = 20_000,
        handover: bool = True,
        retention: timedelta | None = None,
        maintenance_interval_s: float = MAINTENANCE_INTERVAL_S,
    ) -> None:
        """``handover``: each transaction first takes the handover lock (shared), so that
        ``conveyor replay`` can switch the read model's tables between two of them (ADR 0018);
        off for the projector that writes the rebuild itself."""
        self.nc = nc
        self.pool = pool
        self.batch_size = batch_size
        self.replay_batch_size = replay_batch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.metrics = metrics
        self.position = 0
        """The last stream sequence applied (or skipped as already applied)."""
        self.cache_size = cache_size
        self._cache: OrderedDict[str, JobState] = OrderedDict()
        """The rows this projector wrote last, most recent last: the same as the table's
        while the checkpoint is still :attr:`position` (nobody else wrote since), so a batch
        loads from PostgreSQL only the jobs missing here. Deleted jobs are never cached:
        their tombstones are always read from the table."""
        self._getter = DirectGetter(nc)
        self._lag_measured_at = 0.0
        self.handover = handover
        self.retention = retention
        """Terminal jobs that finished longer ago leave the read model (None: kept)."""
        self.maintenance_interval_s = maintenance_interval_s
        self._maintained_at: float | None = None
        self._store = JetStreamEventStore(nc)
        self._table: int | None = None
        """OID of the checkpoint's table at the last batch: another one means that
        ``conveyor replay`` switched the tables, and the cache holds rows of the old ones."""

    async def checkpoint(self) -> int:
        async with self.pool.acquire() as conn, conn.transaction():
            return await lock_checkpoint(conn)

    async def run(self, stop: asyncio.Event) -> None:
        """Project until ``stop`` is set, riding out NATS and PostgreSQL outages."""
        self.position = await _retry(self.checkpoint, stop)
        reader = LogReader(self.nc, names.EVENTS_ALL, self.position + 1)
        log.info("projecting from sequence %d", self.position + 1)
        try:
            while not stop.is_set():
                await self._measure_lag()
                await self._maintain_when_due()
                try:
                    msgs = await reader.fetch(self.batch_size, timeout=self.fetch_timeout_s)
                except BusError:
                    await asyncio.sleep(0.5)
                    continue
                if not msgs:
                    continue
                try:
                    await _retry(functools.partial(self.apply, msgs), stop)
                except Rewound as e:
                    log.info("%s; projecting again from %d", e, e.checkpoint + 1)
                    await reader.close()
                    self.position = e.checkpoint
                    reader = LogReader(self.nc, names.EVENTS_ALL, self.position + 1)
        finally:
            await reader.close()

    async def catch_up(self, until_seq: int) -> None:
        """Project until the checkpoint reaches ``until_seq`` (``conveyor replay``): the log
        read with batched direct gets of ``replay_batch_size`` events, the next batch read
        while the last one is written."""
        self.position = await self.checkpoint()
        async for msgs in read_range(
            self._getter, self.position + 1, until_seq, self.replay_batch_size
        ):
            await self.apply(msgs)

    async def apply(self, msgs: list[StoredMsg]) -> None:
        """Apply one batch in one transaction; events at or below the checkpoint are skipped.
        When PostgreSQL refuses a value, the batch is applied again event by event, and the
        events it refuses are parked as ``unstorable``."""
        async with self.pool.acquire() as conn:
            try:
                async with conn.transaction():
                    applied = await self._apply(conn, msgs, one_by_one=False)
            except STORAGE_ERRORS as e:
                log.warning(
                    "batch up to seq %d refused (%s); applying it event by event", msgs[-1].seq, e
                )
                self._cache.clear()
                async with conn.transaction():
                    applied = await self._apply(conn, msgs, one_by_one=True)
            except BaseException:
                self._cache.clear()
                raise
        self.position = applied.checkpoint
        self._remember(applied.states)
        for letter in applied.parked:
            log.error(
                "parked event at seq %d on %s (%s): %s",
                letter.seq,
                letter.subject,
                letter.kind,
                letter.reason,
            )
        if self.metrics is not None:
            self.metrics.applied.inc(applied.events)
            for letter in applied.parked:
                self.metrics.dead_letters.labels(kind=letter.kind).inc()
            self.metrics.checkpoint.set(applied.checkpoint)

    async def _apply(
        self, conn: asyncpg.Connection, msgs: list[StoredMsg], *, one_by_one: bool
    ) -> Applied:
        if self.handover:
            await handover_lock(conn)
        locked = await lock_checkpoint_row(conn)
        checkpoint = locked.seq
        if locked.table != self._table:
            if self._table is not None:
                log.info(
                    "the read model's tables were switched (conveyor replay) at %d", checkpoint
                )
            self._cache.clear()
            self._table = locked.table
        if checkpoint < self.position:
            raise Rewound(checkpoint)
        if checkpoint != self.position:
            self._cache.clear()  # another projector wrote meanwhile
        last = msgs[-1].seq
        if last <= checkpoint:
            return Applied(checkpoint)
        applied = Applied(last)
        items: list[Item] = []
        for m in msgs:
            if m.seq <= checkpoint:
                continue
            read = read_event(m.subject, m.data)
            if isinstance(read, Poison):
                applied.parked.append(_letter(m, read.kind, read.reason))
            else:
                items.append((m, read))
        await save_dead_letters(conn, applied.parked)
        if not one_by_one:
            applied.events, skipped, applied.states = await _write(
                conn, items, last, self._cache, self._rehydrate
            )
            applied.parked += skipped
        else:
            for m, event in items:
                try:
                    async with conn.transaction():  # a savepoint
                        events, skipped, _ = await _write(
                            conn, [(m, event)], m.seq, None, self._rehydrate
                        )
                except STORAGE_ERRORS as e:
                    reason = f"the read model cannot hold this {event.name}: {e}"
                    events, skipped = 0, [_letter(m, "unstorable", reason)]
                    await save_dead_letters(conn, skipped)
                applied.events += events
                applied.parked += skipped
            await save_projection(conn, [], [], last)
        applied.parked.sort(key=lambda d: d.seq)
        return applied

    def _remember(self, states: dict[str, JobState]) -> None:
        """Rows just committed go to the cache (the oldest fall out beyond its size)."""
        cache = self._cache
        for job_id, state in states.items():
            cache.pop(job_id, None)
            if not state.deleted:
                cache[job_id] = state
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    async def _rehydrate(self, job_id: str, before_seq: int) -> JobState | None:
        """A pruned job's state from its history in the log, before ``before_seq``: what its
        row held (the fold leaves out what the transitions table forbids, as the projector
        did)."""
        state: JobState | None = None
        for stored in await self._store.history(job_id):
            if stored.seq >= before_seq:
                break
            try:
                state = step(state, stored.event, seq=stored.seq)
            except IllegalEvent:
                continue
        log.info("job %s was pruned: folded from the log again", job_id)
        return state

    async def _maintain_when_due(self) -> None:
        now = asyncio.get_running_loop().time()
        if (
            self._maintained_at is not None
            and now - self._maintained_at < self.maintenance_interval_s
        ):
            return
        self._maintained_at = now
        try:
            await self.maintain()
        except CONNECTION_ERRORS as e:
            log.warning("maintenance skipped, PostgreSQL unavailable: %s", e)

    async def maintain(self) -> int:
        """Drop per-minute statistics older than a day and, with :attr:`retention`, prune
        terminal jobs that finished before it, :data:`PRUNE_BATCH` a transaction, each under
        the checkpoint's lock (no batch of any projector runs meanwhile); how many."""
        now = datetime.now(UTC)
        pruned = 0
        async with self.pool.acquire() as conn:
            async with conn.transaction():
                if self.handover:
                    await handover_lock(conn)
                await lock_checkpoint(conn)
                await prune_stats(conn, now - KEEP)
            cutoff = None if self.retention is None else now - self.retention
            while cutoff is not None:
                async with conn.transaction():
                    if self.handover:
                        await handover_lock(conn)
                    await lock_checkpoint(conn)
                    ids = await prune_terminal(conn, cutoff, PRUNE_BATCH)
                for job_id in ids:
                    self._cache.pop(job_id, None)
                pruned += len(ids)
                if self.metrics is not None:
                    self.metrics.pruned.inc(len(ids))
                if len(ids) < PRUNE_BATCH:
                    break
        if pruned:
            log.info("retention: pruned %d jobs that finished before %s", pruned, cutoff)
        return pruned

    async def _measure_lag(self) -> None:
        """Refresh the lag gauge, at most once per :data:`LAG_INTERVAL_S`."""
        if self.metrics is None:
            return
        now = asyncio.get_running_loop().time()
        if now - self._lag_measured_at < LAG_INTERVAL_S:
            return
        self._lag_measured_at = now
        try:
            self.metrics.lag.set(await event_lag(self._getter, self.position))
        except BusError as e:
            log.debug("cannot measure the lag: %s", e)
        self.metrics.checkpoint.set(self.position)


async def _write(
    conn: asyncpg.Connection,
    items: Sequence[Item],
    last_seq: int,
    cache: OrderedDict[str, JobState] | None,
    rehydrate: Rehydrate | None = None,
) -> tuple[int, list[DeadLetter], dict[str, JobState]]:
    """Project ``items`` onto the rows they touch (and the tombstones of deleted jobs), write
    the rows, the tombstones, the transitions the table forbids (as dead letters) and the
    checkpoint; returns (events applied, dead letters, the touched jobs' states). Rows in
    ``cache`` are taken from it instead of the table; a pruned job's state (retention) is
    folded from the log by ``rehydrate``."""
    by_seq = {m.seq: m for m, _ in items}
    states: dict[str, JobState] = {}
    missing: list[str] = []
    for job_id in {event.job_id for _, event in items}:
        cached = cache.get(job_id) if cache is not None else None
        if cached is None:
            missing.append(job_id)
        else:
            states[job_id] = cached
    pruned: set[str] = set()
    if missing:
        states.update(await load_states(conn, missing, pruned))
    if pruned and rehydrate is not None:  # retention pruned their rows: fold them again
        first = {}
        for m, event in reversed(items):
            first[event.job_id] = m.seq
        for job_id in pruned:
            state = await rehydrate(job_id, first[job_id])
            if state is not None:
                states[job_id] = state
    changes = project(states, [(m.seq, event) for m, event in items], uncounted=pruned)
    skipped = [
        _letter(by_seq[seq], "impossible_transition", reason) for seq, reason in changes.skipped
    ]
    tombstones = [
        Tombstone(job_id, seq, states[job_id].updated_at) for job_id, seq in changes.deletes.items()
    ]
    await save_projection(
        conn,
        list(changes.upserts.values()),
        tombstones,
        last_seq,
        dead_letters=skipped,
        stats=changes.stats,
        unpruned=sorted(pruned),
    )
    return len(items) - len(skipped), skipped, states


def _letter(m: StoredMsg, kind: PoisonKind, reason: str) -> DeadLetter:
    """A dead letter fit to store: text without NUL, a job id only when it looks like one."""
    clean = poison(kind, reason)
    subject = m.subject.replace("\x00", "\\x00")
    job_id = names.job_id_of(subject)
    return DeadLetter.of(
        m.seq, subject, job_id if len(job_id) <= 64 else None, clean.kind, clean.reason, m.data
    )


async def _retry(action: Callable[[], Awaitable[T]], stop: asyncio.Event) -> T:
    delay = 0.1
    while True:
        try:
            return await action()
        except CONNECTION_ERRORS as e:  # PostgreSQL is away: retry; other errors surface
            if stop.is_set():
                raise
            log.warning("PostgreSQL unavailable (%s); retrying in %.1fs", e, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
