"""The tick consumer each API process runs in the background: every tick nats-server fires
becomes one job.

The consumer is shared by every API process, so a tick is delivered to one of them; it is
delivered again only when not acknowledged in time (a process that died, a lost ack). Either
way the job's id is the tick's (:func:`~conveyor_api.scheduling.tick_job_id`) and its
``job.submitted`` expects no earlier event of that job, so a second attempt is refused by the
log (a conflict) and the tick acknowledged: one tick, one job, without a leader of ours.

The tick's time is the second the server stored it in: the server fires on the second (see
tests/integration/test_schedule_ticks.py), and the tick carries no time of its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec
from prometheus_client import CollectorRegistry, Counter

from conveyor_api.scheduling import decode, tick_command
from conveyor_bus import BusError, BusUnavailable
from conveyor_bus.schedules import Tick, TickConsumer
from conveyor_events import CommandHandler, ConcurrencyConflict, SubmitJob

log = logging.getLogger("conveyor.api.schedules")

RETRY_S = 1.0
"""When a tick whose job could not be written (NATS away) is delivered again."""
IdOf = Callable[[str, int], str]


def tick_counter(registry: CollectorRegistry) -> Counter:
    return Counter(
        "conveyor_schedule_ticks",
        "Schedule ticks taken by this process, by outcome (created: its job was written "
        "here; duplicate: the log already had it; invalid: not a tick of ours; retried)",
        ["outcome"],
        registry=registry,
    )


class TickRunner:
    def __init__(
        self,
        consumer: TickConsumer,
        commands: CommandHandler,
        counter: Counter,
        *,
        id_of: IdOf | None = None,
    ) -> None:
        """``id_of``: the job id of a tick (name, second) in place of the derived one (the
        tests' control run, which shows that without it a tick taken twice is two jobs)."""
        self._consumer = consumer
        self._commands = commands
        self._counter = counter
        self._id_of = id_of
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="schedule-ticks")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.close()

    async def _run(self) -> None:
        delay = 0.1
        while True:
            try:
                ticks = await self._consumer.fetch()
            except BusUnavailable as e:
                log.debug("schedule ticks: %s", e)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
                continue
            delay = 0.1
            for tick in ticks:
                try:
                    await self.handle(tick)
                except Exception:  # never the end of this process's ticks
                    log.exception("tick of %s at %d ns", tick.name, tick.at_ns)
                    await _settle(tick.nak(RETRY_S))

    async def handle(self, tick: Tick) -> str:
        """Write the tick's job (unless the log has it) and acknowledge the tick; the
        outcome, as counted."""
        try:
            definition = decode(tick.data)
        except msgspec.DecodeError as e:
            log.error("tick of %s at %d ns is not a definition: %s", tick.name, tick.at_ns, e)
            await _settle(tick.term())
            return self._count("invalid")
        tick_s = tick.at_ns // 10**9
        command = tick_command(tick.name, definition, tick_s, datetime.now(UTC))
        if self._id_of is not None:
            command = msgspec.structs.replace(command, job_id=self._id_of(tick.name, tick_s))
        try:
            outcome = await self._submit(command)
        except BusError as e:
            log.warning("tick of %s at %d: %s; retried", tick.name, tick_s, e)
            await _settle(tick.nak(RETRY_S))
            return self._count("retried")
        log.info("tick of %s at %d: job %s %s", tick.name, tick_s, command.job_id, outcome)
        await _settle(tick.ack())
        return self._count(outcome)

    async def _submit(self, command: SubmitJob) -> str:
        try:
            await self._commands.submit([command])
        except ConcurrencyConflict:
            return "duplicate"  # the only subject checked is the new job's own
        return "created"

    def _count(self, outcome: str) -> str:
        self._counter.labels(outcome).inc()
        return outcome


async def _settle(reply: Awaitable[None]) -> None:
    """Send an ack, nak or term; one lost (NATS away) only means a redelivery."""
    try:
        await reply
    except Exception as e:
        log.debug("schedule tick reply: %s", e)
