"""The worker: takes runnable events off the log (high before regular), records each attempt
in the log, runs the handler with heartbeats, and settles the attempt with one fenced append."""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import functools
import logging
import random
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from nats.aio.client import Client
from nats.aio.msg import Msg

import conveyor
from conveyor_bus import BusError, JetStreamEventStore, logs, spans
from conveyor_bus.acks import ack_info
from conveyor_bus.appender import BatchAppender
from conveyor_bus.types import publish_types
from conveyor_bus.workers import forget_worker
from conveyor_events import (
    AnyCommand,
    AnyEvent,
    CommandHandler,
    CompleteJob,
    ConcurrencyConflict,
    ConfirmStop,
    ErrorInfo,
    FailJob,
    InvalidTransition,
    JobCompleted,
    JobFailed,
    JobNotFound,
    JobState,
    JobStopped,
    Loaded,
    StartJob,
    fold,
    names,
    not_before,
)
from conveyor_events.events import FailureCause
from conveyor_worker import delivery
from conveyor_worker.delivery import Ack, Conclude, Delivery, DueRun, Nak, Rearm, Start, Term
from conveyor_worker.heartbeats import Heartbeats
from conveyor_worker.intake import Intake, WeightedIntake
from conveyor_worker.metrics import WorkerMetrics
from conveyor_worker.running import RunningJob
from conveyor_worker.settings import Settings
from conveyor_worker.support import clean_text, jsonable, retry_delays, utc_now
from conveyor_worker.watching import Watching

log = logging.getLogger("conveyor.worker")

RUN_SPAN: dict[str, spans.Attribute] = {
    "messaging.system": "nats",
    "messaging.operation.type": "process",
    "messaging.destination.template": "conveyor.job.{job_id}.submitted",
}
"""The attributes of every run span (the job id and attempt are added once known)."""

_TRACEBACK_LIMIT = 8_000
_TIMEOUT_MARGIN_S = 5.0
"""Heartbeats go on this long past an attempt's timeout (plus its type's ``grace_s``, an
exec job's time between SIGTERM and SIGKILL), for its cancellation to settle."""
NOT_SERVED_RETRY_S = 5.0
"""A job of a type this worker does not run is handed back for this long (another worker,
or a later deployment, may run it)."""


class Worker(Watching):
    def __init__(self, settings: Settings, nc: Client, types: conveyor.Registry) -> None:
        self.settings = settings
        self.id = settings.worker_id
        self.actor = f"worker:{self.id}"
        self.nc = nc
        self.store = JetStreamEventStore(nc)
        self.appender = BatchAppender(self.store)
        self.commands = CommandHandler(self.store, append=self.appender.append)
        self.types = types
        self._threads = ThreadPoolExecutor(settings.concurrency, thread_name_prefix="job")
        """Where sync handlers run: one thread per slot at most."""
        self.running: dict[str, RunningJob] = {}
        self._reserved = 0
        free = lambda: self.settings.concurrency - self._reserved  # noqa: E731
        weights = settings.priority_weights
        self.intake = Intake(nc, free) if weights is None else WeightedIntake(nc, free, weights)
        self._stopping = asyncio.Event()
        self._started_at = utc_now()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._grace_over = False
        self.heartbeat_s = max(0.2, min(settings.ack_wait_s / 3, 10.0))
        self.ack_wait_s = settings.ack_wait_s
        self.metrics = WorkerMetrics()
        self.heartbeats = Heartbeats(
            settings.nats_url, f"conveyor-worker-{self.id}", self.heartbeat_s, self.metrics
        )

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self) -> None:
        """Run until :meth:`shutdown` is called, then hand back what is still running."""
        self.appender.start()
        await self._learn_ack_wait()
        await publish_types(self.nc, [t.describe() for t in self.types])
        await asyncio.to_thread(self.heartbeats.start)
        if self.settings.metrics_port is not None:
            self.metrics.serve(self.settings.metrics_host, self.settings.metrics_port)
        stop_sub = await self.nc.subscribe(names.STOP_SIGNAL, cb=self._on_stop_signal)
        background = [
            asyncio.create_task(self._presence_loop(), name="presence"),
            asyncio.create_task(self._stop_check_loop(), name="stop-check"),
        ]
        weights = self.settings.priority_weights
        mode = "strict" if weights is None else ",".join(f"{p}={w}" for p, w in weights.items())
        log.info(
            "worker %s started (concurrency %d, priority %s, types %s)",
            self.id,
            self.settings.concurrency,
            mode,
            ", ".join(t.name for t in self.types),
        )
        try:
            await self._fetch_loop()
            await self._drain()
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(Exception):
                await stop_sub.unsubscribe()
            with contextlib.suppress(Exception):
                await forget_worker(self.nc, self.id)
            await self.appender.close()
            await asyncio.to_thread(self.heartbeats.close)
            self._threads.shutdown(wait=False, cancel_futures=True)

    async def _learn_ack_wait(self) -> None:
        """Heartbeat at a third of the ack wait the consumers really have (another process
        may have created them with another setting than ours)."""
        js = self.nc.jetstream()
        ack_waits = [
            float(
                (await js.consumer_info(names.STREAM, names.run_consumer(p))).config.ack_wait or 30
            )
            for p in names.PRIORITIES
        ]
        self.ack_wait_s = min(ack_waits)
        self.heartbeat_s = max(0.2, min(self.ack_wait_s / 3, 10.0))
        self.heartbeats.interval_s = self.heartbeat_s

    def shutdown(self) -> None:
        """Stop fetching; running jobs get the grace period (SIGTERM)."""
        if not self._stopping.is_set():
            log.info("worker %s stopping: %d jobs running", self.id, len(self.running))
            self._stopping.set()
            self.intake.poke()

    async def _drain(self) -> None:
        """Let running attempts finish within the grace period, then hand back the rest."""
        deadline = time.monotonic() + self.settings.shutdown_grace_s
        while self._reserved and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        self._grace_over = True
        for job in list(self.running.values()):
            job.cancel("shutdown")
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _spawn(self, coro: Any, name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- fetching ------------------------------------------------------------------------

    async def _fetch_loop(self) -> None:
        intake = self.intake
        await intake.open()
        try:
            while not self._stopping.is_set():
                for msg in intake.take(self.settings.concurrency - self._reserved):
                    self._reserved += 1
                    self._spawn(self._attempt(msg), "attempt")
                await intake.request(self.settings.concurrency - self._reserved)
                await intake.wait(self.settings.idle_poll_s)
        finally:
            await intake.close()

    def _release(self) -> None:
        self._reserved -= 1
        self.intake.poke()

    # -- one attempt ---------------------------------------------------------------------

    async def _attempt(self, msg: Msg) -> None:
        """One delivery, in a task of its own and in its run span (a consumer span, child of
        the trace context its message carries, when OpenTelemetry spans are on): its log
        lines carry that trace context, and its job and attempt once known."""
        trace = (msg.headers or {}).get(names.HEADER_TRACEPARENT)
        with spans.span("process job", "consumer", remote=trace, attributes=RUN_SPAN) as span:
            if span.traceparent is not None:
                logs.traceparent.set(span.traceparent)
            await self._delivery(msg)
            span.set("conveyor.job_id", logs.job_id.get())
            span.set("conveyor.attempt", logs.attempt.get())

    async def _delivery(self, msg: Msg) -> None:
        try:
            job = await self._begin(msg)
            if job is not None:
                await self._execute(job)
        except (BusError, ConcurrencyConflict) as e:
            log.warning("cannot start a job now (%s); handing it back", e)
            with contextlib.suppress(Exception):
                await msg.nak(delay=1.0)
        except Exception:
            log.exception("attempt crashed; the delivery will be redelivered")
        finally:
            self._release()

    async def _begin(self, msg: Msg) -> RunningJob | None:
        """Triage the delivery, decide its start and record ``job.started``; None when there
        is nothing to run. A fresh submission needs no read: the delivered event is the
        job's whole history."""
        info = ack_info(msg.reply)
        seq = info.stream_seq
        triaged = delivery.triage(
            seq,
            msg.subject,
            msg.data,
            now=utc_now(),
            stopping=self._stopping.is_set(),
            delivered=info.delivered,
        )
        if isinstance(triaged, DueRun | Delivery):
            logs.job_id.set(triaged.job_id)
        if isinstance(triaged, DueRun):
            history = await self.store.history(triaged.job_id)
            asked = delivery.due_delivery(history, triaged, now=utc_now())
            if isinstance(asked, Rearm):
                log.warning("%s: its timer is set again", asked.reason)
                await self.store.set_timer(asked.timer)
                await msg.ack()
                return None
            if not isinstance(asked, Delivery):
                await self._answer(msg, asked)
                return None
            run, known = triaged.due.run, Loaded(fold(e.event for e in history), history[-1].seq)
            triaged = asked
        elif not isinstance(triaged, Delivery):
            await self._answer(msg, triaged)
            return None
        elif triaged.fresh:
            run, known = 1, triaged.known()
        else:
            history = await self.store.history(triaged.job_id)
            found = delivery.run_of(history, seq)
            if found is None:
                await self._answer(msg, Nak(delivery.LAG_RETRY_S, "history not read up to it"))
                return None
            run, known = found, Loaded(fold(e.event for e in history), history[-1].seq)
        if known.state is not None and self.types.get(known.state.type) is None:
            reason = f"{known.state.type!r} is not a job type of this worker"
            await self._answer(msg, Nak(NOT_SERVED_RETRY_S, reason))
            return None
        start = self._start_command(triaged.job_id, run)
        verdict, outcome = await self.commands.handle(
            triaged.job_id, lambda loaded: delivery.plan(triaged, loaded, start), known
        )
        if not isinstance(verdict, Start | Conclude):
            await self._answer(msg, verdict)
            return None
        assert outcome is not None
        if isinstance(verdict, Conclude):  # a stop, or the max-deliveries rule
            self._count_outcome(outcome.state, verdict.events[0], None)
            await msg.ack()
            return None
        job = RunningJob(msg=msg, state=outcome.state, last_seq=outcome.last_seq)
        logs.attempt.set(job.attempt)
        log.info("attempt %d of job %s (%s) started", job.attempt, job.job_id, job.state.type)
        self._count_start(job.state, triaged, msg)
        if (older := self.running.get(job.job_id)) is not None:
            older.cancel("fenced")  # our own earlier attempt was taken over
        self.running[job.job_id] = job
        if self._grace_over:
            job.cancel("shutdown")
        return job

    async def _answer(self, msg: Msg, verdict: Ack | Nak | Term) -> None:
        if isinstance(verdict, Ack):
            log.debug("acking %s: %s", msg.subject, verdict.reason)
            await msg.ack()
        elif isinstance(verdict, Nak):
            await msg.nak(delay=verdict.delay_s or None)
        else:
            await self._poison(msg, verdict)

    def _start_command(self, job_id: str, run: int) -> StartJob:
        return StartJob(
            job_id=job_id,
            now=utc_now(),
            actor=self.actor,
            worker_id=self.id,
            run=run,
            max_deliveries=self.settings.max_deliveries,
        )

    async def _poison(self, msg: Msg, verdict: Term) -> None:
        """Terminate a delivery that can never run: no redelivery, counted, logged."""
        seq = ack_info(msg.reply).stream_seq
        log.error("terminating the delivery of seq %d (%s): %s", seq, verdict.kind, verdict.reason)
        self.metrics.poison.labels(verdict.kind).inc()
        # "+TERM <reason>": JetStream's MSG_TERMINATED advisory carries the reason
        detail = f"{verdict.kind}: {verdict.reason}"
        await self.nc.publish(msg.reply, b"+TERM " + detail.encode(errors="replace")[:512])

    def _heartbeat_deadline(self, state: JobState) -> float | None:
        if state.timeout_s is None:
            return None
        job_type = self.types.get(state.type)
        margin = _TIMEOUT_MARGIN_S + (job_type.grace_s if job_type is not None else 0.0)
        return time.monotonic() + state.timeout_s + margin

    def _count_start(self, state: JobState, triaged: Delivery, msg: Msg) -> None:
        self.metrics.started.labels(state.type, state.priority).inc()
        queued = triaged.event.at
        due = not_before(triaged.event)
        if due is not None and due > queued:
            queued = due
        wait = (utc_now() - queued).total_seconds()
        self.metrics.queue_wait.labels(state.priority).observe(max(wait, 0.0))

    def _count_outcome(self, state: JobState, event: AnyEvent, run_s: float | None) -> None:
        m = self.metrics
        if isinstance(event, JobCompleted):
            m.completed.labels(state.type, state.priority).inc()
        elif isinstance(event, JobFailed):
            data = event.data
            retry = "true" if data.retry else "false"
            m.failed.labels(state.type, state.priority, data.error.type, retry).inc()
        elif isinstance(event, JobStopped):
            m.stopped.labels(state.type).inc()
        if run_s is not None:
            m.run_seconds.labels(state.type).observe(run_s)

    async def _execute(self, job: RunningJob) -> None:
        self.metrics.running.inc()
        try:
            self.heartbeats.beat(job.msg.reply, self._heartbeat_deadline(job.state))
            command = await self._run_handler(job)
            run_s = time.monotonic() - job.started
            self.heartbeats.beat(job.msg.reply)  # settling: no deadline any more
            if job.progress_task is not None:
                try:
                    await job.progress_task  # the last progress is written before the outcome
                except Exception as e:
                    log.warning("last progress of %s not recorded: %s", job.job_id, e)
            if command is None and job.cancel_reason == "shutdown":
                await job.msg.nak()  # hand it back for immediate redelivery
                self.metrics.handed_back.inc()
                return
            if job.cancel_reason == "fenced":
                self.metrics.fenced.inc()
                return
            if command is None:
                return
            await self._settle(job, command, run_s)
        finally:
            self.heartbeats.forget(job.msg.reply)
            self.metrics.running.dec()
            if self.running.get(job.job_id) is job:
                del self.running[job.job_id]

    async def _run_handler(self, job: RunningJob) -> AnyCommand | None:
        """Run the handler; the command that settles the attempt (None: hand it back)."""
        job_type = self.types.get(job.state.type)
        if job_type is None:  # not when it started (checked then), so a race: try elsewhere
            message = f"worker {self.id} has no handler for {job.state.type!r}"
            return self._fail(job, ErrorInfo(type="UnknownJobType", message=message))
        if job.cancel_reason == "stop":  # stopped before its handler began
            return ConfirmStop(
                job_id=job.job_id, now=utc_now(), actor=self.actor, attempt=job.attempt
            )
        if job.cancel_reason is not None:
            return None
        try:
            argument = job_type.decode(job.state.payload)
        except Exception as e:  # accepted unvalidated (a type not yet deployed), or changed
            message = f"the payload does not fit job type {job_type.name!r}: {e}"
            return self._fail(job, ErrorInfo(type="InvalidPayload", message=message), True)
        ctx = conveyor.Context(job.job_id, job.attempt, functools.partial(self._on_progress, job))
        job.context = ctx
        timeout = job.state.timeout_s
        if job_type.is_async:
            job.handler_task = asyncio.ensure_future(job_type.handler(ctx, argument))
        else:
            job.handler_task = asyncio.ensure_future(self._in_thread(ctx, job_type, argument))
        try:
            async with asyncio.timeout(timeout) as scope:
                result = await job.handler_task
            return CompleteJob(
                job_id=job.job_id,
                now=utc_now(),
                actor=self.actor,
                attempt=job.attempt,
                result=jsonable(result),
            )
        except asyncio.CancelledError:
            if job.cancel_reason == "stop":
                return ConfirmStop(
                    job_id=job.job_id, now=utc_now(), actor=self.actor, attempt=job.attempt
                )
            if job.cancel_reason is not None:
                return None
            raise
        except TimeoutError as e:
            ctx.cancel()
            if scope.expired():
                message = f"attempt {job.attempt} exceeded timeout_s={timeout}"
                error = ErrorInfo(type="Timeout", message=message)
                return self._fail(job, error, cause="timeout")
            return self._failure(job, e)
        except Exception as e:
            return self._failure(job, e)

    async def _in_thread(
        self, ctx: conveyor.Context, job_type: conveyor.JobType, argument: Any
    ) -> Any:
        """A sync handler, in a thread of its own. Cancelled (a stop, a timeout, shutdown),
        it is told through ``ctx.cancelled`` and waited for: a thread cannot be interrupted,
        and its attempt is not over while it still runs."""
        context = contextvars.copy_context()  # the handler's lines carry the job's ids
        future = asyncio.get_running_loop().run_in_executor(
            self._threads, context.run, job_type.handler, ctx, argument
        )
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            ctx.cancel()
            with contextlib.suppress(Exception):
                await future
            raise

    def _failure(self, job: RunningJob, e: Exception) -> FailJob:
        tb = "".join(traceback.format_exception(e))[-_TRACEBACK_LIMIT:]
        error = ErrorInfo(
            type=type(e).__name__,
            message=clean_text(str(e) or type(e).__name__),
            traceback=None if isinstance(e, conveyor.Retry) else clean_text(tb),
        )
        delay = e.delay_s if isinstance(e, conveyor.Retry) else None
        return self._fail(job, error, isinstance(e, conveyor.PermanentFailure), delay)

    def _fail(
        self,
        job: RunningJob,
        error: ErrorInfo,
        permanent: bool = False,
        delay_s: float | None = None,
        *,
        cause: FailureCause = "handler_error",
    ) -> FailJob:
        return FailJob(
            job_id=job.job_id,
            now=utc_now(),
            actor=self.actor,
            attempt=job.attempt,
            error=error,
            retry_delay_s=self._backoff(job.attempt) if delay_s is None else delay_s,
            permanent=permanent,
            cause=cause,
        )

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with equal jitter: half fixed, half random."""
        exponent = min(max(attempt - 1, 0), 64)  # 2**64 times any base is past any cap
        ceiling = min(self.settings.retry_cap_s, self.settings.retry_base_s * 2**exponent)
        return float(ceiling / 2 + random.uniform(0, ceiling / 2))

    async def _settle(self, job: RunningJob, command: AnyCommand, run_s: float) -> None:
        """Append the attempt's outcome (fenced by the expected sequence), then ack. While
        NATS is away it keeps trying (the attempt keeps its heartbeat), so a finished
        handler is not run again."""
        for delay in retry_delays():
            try:
                outcome = await self.commands.execute(command, Loaded(job.state, job.last_seq))
                for stored in outcome.events:
                    self._count_outcome(job.state, stored.event, run_s)
                    log.info("attempt %d of job %s: %s", job.attempt, job.job_id, stored.event.name)
                break
            except (InvalidTransition, JobNotFound) as e:
                if await self._settled_by_us(job):
                    break  # our outcome landed but its publish ack was lost: done
                # Fenced off: another worker owns the job now; its delivery is not ours to ack.
                log.warning("attempt %d of %s fenced off: %s", job.attempt, job.job_id, e)
                self.metrics.fenced.inc()
                return
            except (BusError, ConcurrencyConflict) as e:
                log.warning("cannot record outcome of %s yet: %s", job.job_id, e)
                await asyncio.sleep(delay)
        await job.msg.ack()

    async def _settled_by_us(self, job: RunningJob) -> bool:
        """Whether the log already holds this worker's outcome of this attempt (a write that
        landed while its acknowledgement was lost, then retried)."""
        try:
            history = await self.store.history(job.job_id)
        except BusError:
            return False
        return any(
            isinstance(e.event, JobCompleted | JobFailed | JobStopped)
            and e.seq > job.last_seq
            and e.event.actor == self.actor
            and e.event.data.attempt == job.attempt
            for e in history
        )
