"""``conveyor replay``: rebuild the read model from the event log.

By default beside the live one (ADR 0018): the migrations create the tables again in the
schema ``conveyor_rebuild``, a projector of its own fills them from the whole log while the
live tables keep serving the API and the live projector keeps projecting, passes follow the
log's end until little is left, and then one transaction holding the handover lock catches up
the rest, checks that the rebuild is not behind the live checkpoint and moves the rebuilt
tables in. ``--in-place`` empties the live tables and rebuilds them where they are (reads
answer partial data until it is done).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections import deque
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import TextIO

import asyncpg
from nats.aio.client import Client

from conveyor_bus import DirectGetter
from conveyor_bus.reader import last_event_sequence
from conveyor_db import create_pool, reset
from conveyor_db.rebuild import (
    REBUILD_SCHEMA,
    RETIRED_SCHEMA,
    RebuildError,
    Switched,
    create_rebuild,
    drop_side_schemas,
    leftover_checkpoint,
    live_schema,
    rebuild_search_path,
    replay_lock,
    switch_tables,
    take_handover,
)
from conveyor_projector.projector import Projector

TAIL = 2_000
"""Events left to the log's end small enough to catch up under the handover lock, which
holds the live projector (not the reads) still meanwhile."""
SWITCH_ATTEMPTS = 50
"""Tries of the switch when the live tables' locks are not free within the lock timeout."""


class Progress:
    """A progress bar on stderr when it is a terminal (events/s and time left), else
    nothing but the lines :meth:`say` prints."""

    def __init__(self, stream: TextIO = sys.stderr, *, bar: bool | None = None) -> None:
        self.stream = stream
        self.bar = stream.isatty() if bar is None else bar
        self._window: deque[tuple[float, int]] = deque()
        self._drawn = False

    def say(self, line: str) -> None:
        self._end_bar()
        print(line, file=self.stream, flush=True)

    def rate(self, position: int) -> float | None:
        """Events/s over the last five seconds."""
        now = time.monotonic()
        self._window.append((now, position))
        while len(self._window) > 2 and now - self._window[0][0] > 5:
            self._window.popleft()
        (t0, p0), (t1, p1) = self._window[0], self._window[-1]
        return (p1 - p0) / (t1 - t0) if t1 > t0 else None

    def update(self, label: str, position: int, until: int) -> None:
        rate = self.rate(position)
        if not self.bar:
            return
        done = position / until if until else 1.0
        filled = "#" * int(min(done, 1.0) * 30)
        speed = f"{rate:,.0f} events/s" if rate is not None else "- events/s"
        left = until - position
        eta = _duration(left / rate) if rate and left > 0 else ("0:00" if left <= 0 else "-")
        self.stream.write(
            f"\r{label} [{filled:<30}] {position:,}/{until:,}  {speed}  ETA {eta}\x1b[K"
        )
        self.stream.flush()
        self._drawn = True

    def _end_bar(self) -> None:
        if self._drawn:
            self.stream.write("\n")
            self._drawn = False


def _duration(seconds: float) -> str:
    s = int(seconds + 0.5)
    h, rest = divmod(s, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


async def _follow(
    work: Awaitable[None], projector: Projector, until: int, progress: Progress, label: str
) -> None:
    task = asyncio.ensure_future(work)
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            progress.update(label, projector.position, until)
    finally:
        if not task.done():
            task.cancel()
    await task


@dataclass(frozen=True, slots=True)
class Rebuilt:
    switched: Switched
    events: int
    seconds: float
    tries: int
    """Switch transactions it took (more than one when the live tables were busy)."""


async def replay_beside(nc: Client, database_url: str, progress: Progress) -> Rebuilt:
    """Rebuild the read model in :data:`REBUILD_SCHEMA` and switch it in; the live model is
    untouched until the switch commits. Raises :class:`RebuildError` (the live model as it
    was, the partial rebuild dropped)."""
    started = time.monotonic()
    conn = await asyncpg.connect(database_url, timeout=30)
    try:
        async with replay_lock(conn):
            live = await live_schema(conn)
            path = await rebuild_search_path(conn)
            left = await leftover_checkpoint(conn)
            if left is not None:
                progress.say(
                    f"dropping the partial rebuild an earlier replay left (at sequence {left})"
                )
            await drop_side_schemas(conn)
            try:
                rebuilt = await _rebuild_and_switch(nc, database_url, conn, live, path, progress)
            except BaseException:
                await asyncio.shield(_drop_quietly(conn))
                raise
            done = await _drop_retired(conn)
            if not done:
                progress.say(
                    f"the old tables are left in schema {RETIRED_SCHEMA} (busy); the next"
                    " replay drops them"
                )
    finally:
        await conn.close()
    switched, tries = rebuilt
    return Rebuilt(switched, switched.checkpoint, time.monotonic() - started, tries)


async def _rebuild_and_switch(
    nc: Client,
    database_url: str,
    conn: asyncpg.Connection,
    live: str,
    path: str,
    progress: Progress,
) -> tuple[Switched, int]:
    build = await asyncpg.connect(database_url, timeout=30, server_settings={"search_path": path})
    try:
        await create_rebuild(build)
    finally:
        await build.close()
    getter = DirectGetter(nc)
    pool = await create_pool(database_url, min_size=1, max_size=2, timeout=30, search_path=path)
    try:
        projector = Projector(nc, pool, handover=False)
        until = await last_event_sequence(getter)
        progress.say(
            f"rebuilding the read model in schema {REBUILD_SCHEMA} beside the live one"
            f" ({live}), from the log up to sequence {until}"
        )
        while True:
            await _follow(projector.catch_up(until), projector, until, progress, "replaying")
            until = await last_event_sequence(getter)
            if until - projector.position <= TAIL:
                break
        for tries in range(1, SWITCH_ATTEMPTS + 1):
            try:
                async with conn.transaction():
                    await take_handover(conn)
                    until = await last_event_sequence(getter)
                    await projector.catch_up(until)
                    switched = await switch_tables(conn, live)
                progress.update("replaying", projector.position, until)
                return switched, tries
            except asyncpg.LockNotAvailableError:
                await asyncio.sleep(min(0.02 * tries, 0.5))
        raise RebuildError(
            f"the live tables stayed busy through {SWITCH_ATTEMPTS} tries of the switch (a long"
            " transaction reading them?); the live read model is unchanged: run replay again"
        )
    finally:
        await pool.close()


async def _drop_quietly(conn: asyncpg.Connection) -> None:
    with contextlib.suppress(asyncpg.PostgresError, OSError):  # else the next replay does
        await drop_side_schemas(conn)


async def _drop_retired(conn: asyncpg.Connection) -> bool:
    for _ in range(5):
        try:
            await drop_side_schemas(conn, lock_timeout="1s")
            return True
        except asyncpg.LockNotAvailableError:
            await asyncio.sleep(0.2)
    return False


async def replay_in_place(nc: Client, pool: asyncpg.Pool, progress: Progress) -> int:
    """Empty the live read model and rebuild it where it is; returns the sequence it
    reached."""
    async with pool.acquire() as conn, replay_lock(conn):
        until = await last_event_sequence(DirectGetter(nc))
        async with conn.transaction():
            # between two of the live projector's batches: emptying the tables under one
            # that has read the checkpoint would deadlock with it
            await take_handover(conn)
            await reset(conn)
        projector = Projector(nc, pool)
        await _follow(projector.catch_up(until), projector, until, progress, "replaying")
    return until
