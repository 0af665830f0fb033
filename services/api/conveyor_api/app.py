"""The API's composition root: ``create_app(settings)`` builds the adapters and the routes."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from conveyor_api import (
    auth,
    bulk,
    deadletters,
    guards,
    logroutes,
    openapi,
    pages,
    problems,
    schedules,
)
from conveyor_api.limits import BodyLimit
from conveyor_api.metrics import ApiMetrics, Observe
from conveyor_api.ratelimit import SubmitLimiter
from conveyor_api.routes import router, system_router
from conveyor_api.service import JobService
from conveyor_api.settings import Settings
from conveyor_api.tracing import TraceContext
from conveyor_api.types import TypeCatalog
from conveyor_bus import JetStreamEventStore
from conveyor_bus.runtime import bootstrap
from conveyor_bus.topology import queue_depth
from conveyor_db import ReadModel, create_pool
from conveyor_events import names

log = logging.getLogger("conveyor.api")


def create_app(settings: Settings) -> FastAPI:
    metrics = ApiMetrics()
    tokens = settings.load_tokens()
    if tokens.enabled:
        log.info("auth on: %d bearer tokens (%s)", len(tokens), ", ".join(tokens.names))
    else:
        log.info("auth off: no CONVEYOR_TOKENS / CONVEYOR_TOKENS_FILE; anyone may act")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        nc = await bootstrap(settings, "conveyor-api")
        timeout = settings.read_timeout_s
        pool = await create_pool(
            settings.database_url,
            min_size=0,
            max_size=10,
            timeout=timeout,
            statement_timeout_s=timeout,
            custom_plans=True,
        )

        async def stop_signal(job_id: str) -> None:
            await nc.publish(names.STOP_SIGNAL, job_id.encode())

        async def depth() -> dict[str, tuple[int, int]]:
            return await queue_depth(nc)

        app.state.nc = nc
        reads = ReadModel(pool, timeout=timeout)
        store = JetStreamEventStore(nc)
        types = TypeCatalog(
            store.getter, settings.worker_ttl_s, accept_unserved=settings.accept_unserved_types
        )
        app.state.service = JobService(store, reads, stop_signal, depth, types)
        ticks = schedules.start(app, nc, store, types)
        gauges = asyncio.create_task(_refresh_depth(metrics, depth), name="queue-depth")
        try:
            yield
        finally:
            gauges.cancel()
            await ticks.close()
            await nc.close()
            await pool.close()

    app = FastAPI(
        title="Conveyor",
        version="0.1.0",
        description="Submit, watch, stop, restart and delete background jobs.",
        lifespan=lifespan,
        docs_url=None,  # pages.py serves /docs from vendored files; ReDoc is not served
        redoc_url=None,
        # the request's span is TraceContext's (conveyor_bus.spans, off unless OTEL_* ask),
        # not FastAPI's own, which would start a second server span beside it
        telemetry={"tracing": False},
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.submits = SubmitLimiter(settings.submit_rate, settings.submit_burst)
    problems.install(app)
    app.include_router(bulk.router, prefix="/api/v1")  # before /jobs/{job_id}
    app.include_router(deadletters.router, prefix="/api/v1")
    app.include_router(router, prefix="/api/v1")
    app.include_router(logroutes.router, prefix="/api/v1")
    schedules.install(app)
    app.include_router(system_router)
    app.include_router(system_router, prefix="/api/v1", include_in_schema=False)
    guards.document(app)
    auth.document(app)
    openapi.serve(app)
    pages.mount(app, settings)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(auth.Auth, tokens=tokens)  # after the guards, before the body
    app.add_middleware(
        guards.Guard,
        allowed_hosts=_hosts(settings),
        allowed_origins=settings.allowed_origins,
    )
    app.add_middleware(Observe, metrics=metrics)
    app.add_middleware(TraceContext)  # outermost: every line of a request has its ids
    return app


QUEUE_DEPTH_INTERVAL_S = 5.0
"""How often the API measures ``conveyor_queue_depth`` (``GET /api/v1/stats`` also does)."""


async def _refresh_depth(
    metrics: ApiMetrics, depth: Callable[[], Awaitable[dict[str, tuple[int, int]]]]
) -> None:
    """Keep the queue-depth gauge current for scrapes, whether or not a dashboard is open."""
    while True:
        try:
            for priority, (pending, _) in (await depth()).items():
                metrics.queue_depth.labels(priority).set(pending)
        except Exception as e:  # NATS away: the gauge keeps its last value
            log.debug("queue depth not measured: %s", e)
        await asyncio.sleep(QUEUE_DEPTH_INTERVAL_S)


def _hosts(settings: Settings) -> list[str]:
    """``allowed_hosts``, and the name the API listens on when it is a name."""
    bound = guards.split_host(settings.host)
    if bound is None or guards.is_ip(bound[0]):
        return list(settings.allowed_hosts)
    return [*settings.allowed_hosts, bound[0]]
