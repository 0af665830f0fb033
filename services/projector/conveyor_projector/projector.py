"""The projector: reads the event log from its checkpoint and applies it to PostgreSQL, in
batches, with the rows and the checkpoint written in one transaction."""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg
import msgspec
from nats.aio.client import Client

from conveyor_bus import BusError, StoredMsg
from conveyor_bus.reader import LogReader
from conveyor_db import CONNECTION_ERRORS, load_states, lock_checkpoint, save_projection
from conveyor_events import AnyEvent, decode_event, names
from conveyor_projector.projection import project

log = logging.getLogger("conveyor.projector")

T = TypeVar("T")


class Rewound(Exception):
    """The checkpoint went back (``conveyor replay`` reset the read model)."""

    def __init__(self, checkpoint: int) -> None:
        super().__init__(f"checkpoint rewound to {checkpoint}")
        self.checkpoint = checkpoint


class Projector:
    def __init__(
        self,
        nc: Client,
        pool: asyncpg.Pool,
        *,
        batch_size: int = 1000,
        fetch_timeout_s: float = 1.0,
    ) -> None:
        self.nc = nc
        self.pool = pool
        self.batch_size = batch_size
        self.fetch_timeout_s = fetch_timeout_s
        self.position = 0
        """The last stream sequence applied (or skipped as already applied)."""

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
        """Project until the checkpoint reaches ``until_seq`` (``conveyor replay``)."""
        self.position = await self.checkpoint()
        if self.position >= until_seq:
            return
        reader = LogReader(self.nc, names.EVENTS_ALL, self.position + 1)
        try:
            while self.position < until_seq:
                msgs = await reader.fetch(self.batch_size, timeout=self.fetch_timeout_s)
                if msgs:
                    await self.apply(msgs)
        finally:
            await reader.close()

    async def apply(self, msgs: list[StoredMsg]) -> None:
        """Apply one batch in one transaction; events at or below the checkpoint are skipped."""
        async with self.pool.acquire() as conn, conn.transaction():
            checkpoint = await lock_checkpoint(conn)
            if checkpoint < self.position:
                raise Rewound(checkpoint)
            events: list[tuple[int, AnyEvent]] = []
            for m in msgs:
                if m.seq <= checkpoint:
                    continue
                try:
                    events.append((m.seq, decode_event(m.data)))
                except (msgspec.DecodeError, msgspec.ValidationError) as e:
                    log.error("skipping undecodable event at seq %d: %s", m.seq, e)
            last = msgs[-1].seq
            if last <= checkpoint:
                self.position = checkpoint
                return
            states = await load_states(conn, list({e.job_id for _, e in events}))
            changes = project(states, events)
            for seq, reason in changes.skipped:
                log.error("skipping event at seq %d: %s", seq, reason)
            await save_projection(conn, list(changes.upserts.values()), list(changes.deletes), last)
        self.position = last


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
