"""The parts of a worker that watch its running attempts: progress events (coalesced),
stop requests and the worker's presence heartbeat (ack-wait heartbeats: heartbeats.py)."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

import conveyor
from conveyor_bus import BusError, JetStreamEventStore
from conveyor_bus.workers import WorkerInfo, publish_heartbeat
from conveyor_events import (
    CommandHandler,
    ConcurrencyConflict,
    DomainError,
    JobState,
    Loaded,
    ReportProgress,
)
from conveyor_worker.heartbeats import Heartbeats
from conveyor_worker.running import RunningJob
from conveyor_worker.settings import Settings
from conveyor_worker.support import clean_text, utc_now

log = logging.getLogger("conveyor.worker")

PROGRESS_SHARE = 1000
"""Progress is written at most once per progress interval, or once per this share of the
time the attempt has run, whichever is longer: a long attempt writes about 700 progress
events per doubling of its run time (not 4 a second for a day), so every later read of its
history stays short."""


class Watching:
    id: str
    actor: str
    settings: Settings
    nc: Client
    store: JetStreamEventStore
    commands: CommandHandler
    running: dict[str, RunningJob]
    types: conveyor.Registry
    heartbeat_s: float
    heartbeats: Heartbeats
    _stopping: asyncio.Event
    _started_at: datetime

    def _spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        raise NotImplementedError

    # -- progress ------------------------------------------------------------------------

    def _on_progress(self, job: RunningJob, percent: float, message: str | None) -> None:
        job.pending_progress = (float(percent), clean_text(message))
        if job.progress_task is None or job.progress_task.done():
            job.progress_task = asyncio.create_task(self._write_progress(job))

    async def _write_progress(self, job: RunningJob) -> None:
        while job.pending_progress is not None and job.cancel_reason is None:
            now = time.monotonic()
            interval = max(self.settings.progress_interval_s, (now - job.started) / PROGRESS_SHARE)
            wait = job.last_progress_at + interval - now
            if wait > 0:
                await asyncio.sleep(wait)
            percent, message = job.pending_progress
            job.pending_progress = None
            command = ReportProgress(
                job_id=job.job_id,
                now=utc_now(),
                actor=self.actor,
                attempt=job.attempt,
                progress=percent,
                message=message,
            )
            try:
                outcome = await self.commands.execute(command, Loaded(job.state, job.last_seq))
            except DomainError:
                job.cancel("fenced")
                return
            except (BusError, ConcurrencyConflict) as e:
                log.warning("progress of %s not recorded: %s", job.job_id, e)
                if job.pending_progress is None:
                    job.pending_progress = (percent, message)
                await asyncio.sleep(self.settings.progress_interval_s)
                continue
            self._follow(job, outcome.state, outcome.last_seq)
            job.last_progress_at = time.monotonic()

    # -- stop requests, heartbeats, presence ----------------------------------------------

    async def _on_stop_signal(self, msg: Msg) -> None:
        job = self.running.get(msg.data.decode(errors="replace"))
        if job is not None:
            self._spawn(self._check_stop(job), "stop-check")

    async def _check_stop(self, job: RunningJob) -> None:
        """Read what was appended to the job since our last append; cancel the handler on a
        stop request or when fenced off."""
        loaded = await self.store.load(job.job_id, after=Loaded(job.state, job.last_seq))
        self._follow(job, loaded.state, loaded.last_seq)

    def _follow(self, job: RunningJob, state: JobState | None, last_seq: int) -> None:
        """What the log says of a running attempt, as read or as written: cancel the handler
        on a stop request, or when another attempt took the job over."""
        if (
            state is None
            or state.deleted
            or state.attempt != job.attempt
            or state.status != "running"
        ):
            job.cancel("fenced")
            return
        job.state, job.last_seq = state, last_seq
        if state.stop_requested and job.cancel_reason is None:
            log.info("stop requested for %s: cancelling attempt %d", job.job_id, job.attempt)
            job.cancel("stop")

    async def _stop_check_loop(self) -> None:
        interval = self.settings.stop_check_s
        while True:
            await asyncio.sleep(interval)
            now = time.monotonic()
            due = [
                j
                for j in self.running.values()
                if now - j.started >= interval
                and j.cancel_reason is None
                and (j.progress_task is None or j.progress_task.done())
            ]
            results = await asyncio.gather(
                *(self._check_stop(j) for j in due), return_exceptions=True
            )
            for r in results:
                if isinstance(r, Exception):
                    log.debug("stop check failed: %s", r)

    async def _presence_loop(self) -> None:
        host = socket.gethostname()
        while True:
            info = WorkerInfo(
                id=self.id,
                host=host,
                pid=os.getpid(),
                started_at=self._started_at,
                last_heartbeat_at=utc_now(),
                concurrency=self.settings.concurrency,
                running=sorted(self.running),
                stopping=self._stopping.is_set(),
                types=[t.name for t in self.types],
            )
            if not self.heartbeats.healthy(time.monotonic()) and self.nc.is_connected:
                # Without ack-wait heartbeats every running job would be redelivered while it
                # runs: stop taking jobs and let the supervisor start a fresh process.
                log.error("the heartbeat thread has stopped sending; shutting down")
                self.shutdown()
            try:
                await publish_heartbeat(self.nc, info)
            except Exception as e:
                log.debug("heartbeat not published: %s", e)
            await asyncio.sleep(self.settings.heartbeat_s)
