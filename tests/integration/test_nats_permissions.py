"""Bus credentials against a real nats-server (issue 12, "Bus security"): one user per
service with the permissions of ``conveyor_bus.permissions``; each does what its service does
through the service's own code paths, and each forbidden action is refused by the server with
a permissions violation (a worker writing operator events or deleting a stream, the notifier
writing anything, the api deleting a stream)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from conveyor_bus import (
    BusUnavailable,
    DirectGetter,
    JetStreamEventStore,
    StoredMsg,
    ensure_topology,
)
from conveyor_bus.permissions import SERVICES, example_authorization, matches
from conveyor_bus.reader import LogReader, last_sequence
from conveyor_bus.schedules import JetStreamSchedules, TickConsumer
from conveyor_bus.topology import queue_depth, stream_info
from conveyor_bus.types import publish_types, published_types
from conveyor_bus.workers import WorkerInfo, forget_worker, live_workers, publish_heartbeat
from conveyor_cli.dev.embedded import NatsServer, nats_server_binary
from conveyor_cli.logins import Login
from conveyor_events import (
    CommandHandler,
    CompleteJob,
    DeleteJob,
    ErrorInfo,
    FailJob,
    ReportProgress,
    RestartJob,
    StartJob,
    StopJob,
    SubmitJob,
    decode_event,
    names,
)

pytestmark = pytest.mark.integration

REFUSAL_WAIT_S = 3.0
ROOT = Path(__file__).resolve().parents[2]


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    logins = {name: Login.new(name) for name in SERVICES}
    srv = NatsServer(tmp_path_factory.mktemp("nats-permissions") / "nats", services=logins)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


class Session:
    """A connection as one service's user, and the errors the server sent it."""

    def __init__(self, nc: Client, errors: list[str]) -> None:
        self.nc = nc
        self.errors = errors

    async def refused(self, subject: str, what: str = "Publish") -> None:
        """Until the server has said that publishing (``what``: or a "Subscription") to
        ``subject`` is not allowed."""
        deadline = asyncio.get_running_loop().time() + REFUSAL_WAIT_S
        while not any(_violation(e, what, subject) for e in self.errors):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"no permissions violation for {subject}: {self.errors}")
            await asyncio.sleep(0.05)

    def violations(self) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e.lower()]


def _violation(error: str, what: str, subject: str) -> bool:
    return f'permissions violation for {what} to "{subject}"'.lower() in error.lower()


@asynccontextmanager
async def session(server: NatsServer, service: str) -> AsyncIterator[Session]:
    errors: list[str] = []

    async def on_error(e: Exception) -> None:
        errors.append(str(e))

    nc = await nats.connect(server.url_for(service), error_cb=on_error, name=service)
    try:
        yield Session(nc, errors)
    finally:
        await nc.close()


def submit(job_id: str, **fields: Any) -> SubmitJob:
    return SubmitJob(job_id=job_id, now=now(), actor="user:test", type="noop", **fields)


@pytest.fixture(scope="module")
def topology(server: NatsServer) -> None:
    """The admin creates the topology (``conveyor migrate`` does the same)."""

    async def create() -> None:
        async with session(server, "admin") as admin:
            await ensure_topology(admin.nc)

    asyncio.run(create())


def test_the_permissions_are_derived_from_names() -> None:
    worker, api = SERVICES["worker"], SERVICES["api"]
    job = "01PERMS00000000000000000001"
    for allowed in ("job.started", "job.progressed", "job.completed", "job.failed", "job.stopped"):
        assert worker.allows_publish(names.event_subject(job, allowed))
    assert worker.allows_publish(names.event_subject(job, "job.failed", "high"))
    for operators in ("job.submitted", "job.stop_requested", "job.restarted", "job.deleted"):
        assert not worker.allows_publish(names.event_subject(job, operators))
        assert api.allows_publish(names.event_subject(job, operators))
    assert not worker.allows_publish(names.event_subject(job, "job.submitted", "high"))
    assert not api.allows_publish(names.event_subject(job, "job.completed"))
    assert not SERVICES["notifier"].allows_publish(names.event_subject(job, "job.progressed"))
    assert not SERVICES["projector"].allows_publish(
        f"$JS.API.CONSUMER.MSG.NEXT.{names.STREAM}.{names.run_consumer('high')}"
    )
    assert matches("conveyor.job.>", "conveyor.job.x.started")
    assert not matches("conveyor.job.*", "conveyor.job.x.started")


async def test_the_api_submits_stops_restarts_and_deletes(
    server: NatsServer, topology: None
) -> None:
    async with session(server, "api") as api:
        await ensure_topology(api.nc)  # at start-up, on a topology that exists
        handler = CommandHandler(JetStreamEventStore(api.nc))
        later = "01PERMSAPI0000000000000001"
        now_job = "01PERMSAPI0000000000000002"
        await handler.submit([submit(later, run_at=now() + timedelta(hours=1))], ["a-key"])
        await handler.submit([submit(now_job, priority="high")])
        await handler.execute(StopJob(job_id=later, now=now(), actor="user:test"))  # timer purged
        await handler.execute(RestartJob(job_id=later, now=now(), actor="user:test"))
        await handler.execute(StopJob(job_id=later, now=now(), actor="user:test"))
        await handler.execute(DeleteJob(job_id=later, now=now(), actor="user:test"))
        await api.nc.publish(names.STOP_SIGNAL, now_job.encode())
        depth = await queue_depth(api.nc)
        assert depth["high"][0] >= 1
        getter = DirectGetter(api.nc)
        assert await live_workers(getter) == []
        assert await published_types(getter) == {}
        schedules = JetStreamSchedules(api.nc)
        await schedules.put("perms", b"{}", expected_seq=0, cron="* * * * * *", timezone="UTC")
        assert await schedules.get("perms") is not None
        ticks = TickConsumer(api.nc)
        for tick in await ticks.fetch(1, timeout=3):  # a tick a second
            await tick.ack()
        await ticks.close()
        await schedules.delete("perms")
        await api.nc.flush()
        assert api.violations() == []


async def test_a_worker_runs_a_job(server: NatsServer, topology: None) -> None:
    job_id, retried = "01PERMSWORKER0000000000001", "01PERMSWORKER0000000000002"
    async with session(server, "api") as api:
        await CommandHandler(JetStreamEventStore(api.nc)).submit(
            [submit(job_id), submit(retried, max_attempts=2)]
        )
    async with session(server, "worker") as worker:
        await ensure_topology(worker.nc)
        stops: list[bytes] = []

        async def on_stop(msg: Msg) -> None:
            stops.append(msg.data)

        await worker.nc.subscribe(names.STOP_SIGNAL, cb=on_stop)
        info = WorkerInfo(
            id="w1",
            host="here",
            pid=1,
            started_at=now(),
            last_heartbeat_at=now(),
            concurrency=1,
            running=[],
            types=["noop"],
        )
        await publish_heartbeat(worker.nc, info)
        await publish_types(worker.nc, [{"name": "noop", "schema": {"type": "object"}}])
        js = worker.nc.jetstream()
        pull = await js.pull_subscribe_bind(names.run_consumer("regular"), stream=names.STREAM)
        runnable = names.event_subject(job_id, "job.submitted", "regular")
        msgs = await pull.fetch(10, timeout=5)  # the other tests' runs too
        [msg] = [m for m in msgs if m.subject == runnable]
        await msg.in_progress()
        handler = CommandHandler(JetStreamEventStore(worker.nc))
        actor = "worker:w1"
        await handler.execute(
            StartJob(job_id=job_id, now=now(), actor=actor, worker_id="w1", run=1)
        )
        await handler.execute(
            ReportProgress(job_id=job_id, now=now(), actor=actor, attempt=1, progress=50.0)
        )
        await handler.execute(CompleteJob(job_id=job_id, now=now(), actor=actor, attempt=1))
        # a failure with a retry later: job.failed and the retry's timer
        await handler.execute(
            StartJob(job_id=retried, now=now(), actor=actor, worker_id="w1", run=1)
        )
        error = ErrorInfo(type="Boom", message="boom")
        await handler.execute(
            FailJob(
                job_id=retried, now=now(), actor=actor, attempt=1, error=error, retry_delay_s=60
            )
        )
        for m in msgs:
            await m.ack()
        await forget_worker(worker.nc, "w1")
        await worker.nc.flush()
        assert worker.violations() == []

    async with session(server, "admin") as admin:
        getter = DirectGetter(admin.nc)
        stored = await getter.all_by_subject(names.STREAM, names.job_subjects(job_id))
    assert [type(decode_event(m.data)).__name__ for m in stored] == [
        "JobSubmitted",
        "JobStarted",
        "JobProgressed",
        "JobCompleted",
    ]
    async with session(server, "admin") as admin:
        timer = await admin.nc.jetstream().get_last_msg(
            names.TIMERS_STREAM, names.timer_subject(retried)
        )
        assert timer.headers is not None and names.HEADER_SCHEDULE in timer.headers


async def test_the_readers_read_the_log(server: NatsServer, topology: None) -> None:
    async with session(server, "api") as api:
        await CommandHandler(JetStreamEventStore(api.nc)).submit(
            [submit("01PERMSREADER0000000000001")]
        )
    for service in ("projector", "notifier"):
        async with session(server, service) as reader:
            await ensure_topology(reader.nc)  # the notifier's finds everything made
            last = await last_sequence(reader.nc)
            log = LogReader(reader.nc, names.EVENTS_ALL, 1)
            read: list[StoredMsg] = []
            while not read or read[-1].seq < last:
                batch = await log.fetch(100, timeout=2)
                assert batch, f"{service} read nothing"
                read += batch
            await log.close()
            got = await DirectGetter(reader.nc).all_by_subject(names.STREAM, names.EVENTS_ALL)
            assert [m.seq for m in got] == [m.seq for m in read]
            assert await stream_info(reader.nc, names.STREAM) is not None
            assert reader.violations() == [], service


async def test_a_worker_may_not_write_operator_events_nor_delete_streams(
    server: NatsServer, topology: None
) -> None:
    async with session(server, "worker") as worker:
        store = JetStreamEventStore(worker.nc, publish_timeout=0.5)
        job_id = "01PERMSFORBIDDEN0000000001"
        with pytest.raises(BusUnavailable):
            await CommandHandler(store).submit([submit(job_id)])
        await worker.refused(names.event_subject(job_id, "job.submitted", "regular"))
        deleted = names.event_subject(job_id, "job.deleted")
        await worker.nc.publish(deleted, b"{}")
        await worker.refused(deleted)
        # and the server logs it (what tests/e2e/test_service_credentials.py finds none of)
        log = (server.store_dir / "nats.log").read_text(errors="replace")
        assert f'"$G/user:worker" - Publish Violation - Subject "{deleted}"' in log
        await _refused_request(worker, f"$JS.API.STREAM.DELETE.{names.STREAM}")
        await _refused_request(worker, f"$JS.API.STREAM.UPDATE.{names.STREAM}")
        await _refused_request(worker, f"$JS.API.CONSUMER.DELETE.{names.STREAM}.worker-high")
        await _refused_request(worker, f"$JS.API.STREAM.PURGE.{names.STREAM}")
    await _streams_intact(server)


async def test_the_notifier_may_only_read(server: NatsServer, topology: None) -> None:
    async with session(server, "notifier") as notifier:
        job_id = "01PERMSNOTIFIER00000000001"
        for event_type in ("job.submitted", "job.progressed", "job.completed", "job.deleted"):
            subject = names.event_subject(job_id, event_type)
            await notifier.nc.publish(subject, b"{}")
            await notifier.refused(subject)
        for subject in (
            names.STOP_SIGNAL,
            names.timer_subject(job_id),
            names.idempotency_subject("k"),
            names.worker_subject("w"),
            f"$JS.API.STREAM.CREATE.{names.STREAM}",
            f"$JS.API.CONSUMER.MSG.NEXT.{names.STREAM}.{names.run_consumer('high')}",
        ):
            await notifier.nc.publish(subject, b"{}")
            await notifier.refused(subject)
        await notifier.nc.subscribe(names.EVENTS_ALL)  # core subscriptions are refused too
        await notifier.refused(names.EVENTS_ALL, "Subscription")
    await _streams_intact(server)


async def test_the_api_may_not_delete_streams_nor_write_runs(
    server: NatsServer, topology: None
) -> None:
    async with session(server, "api") as api:
        await _refused_request(api, f"$JS.API.STREAM.DELETE.{names.STREAM}")
        await _refused_request(api, f"$JS.API.STREAM.DELETE.{names.TIMERS_STREAM}")
        completed = names.event_subject("01PERMSAPI0000000000000009", "job.completed")
        await api.nc.publish(completed, b"{}")
        await api.refused(completed)
    await _streams_intact(server)


async def test_the_notifier_does_not_start_before_the_topology_exists(tmp_path: Path) -> None:
    srv = NatsServer(tmp_path / "nats", services={"notifier": Login.new("notifier")}).start()
    try:
        async with session(srv, "notifier") as notifier:
            with pytest.raises(BusUnavailable, match="conveyor migrate"):
                await asyncio.wait_for(_topology_quickly(notifier.nc), 30)
            await notifier.refused(f"$JS.API.STREAM.CREATE.{names.TIMERS_STREAM}")
    finally:
        srv.stop()


async def _topology_quickly(nc: Client) -> None:
    await ensure_topology(nc)


async def _refused_request(who: Session, subject: str) -> None:
    with pytest.raises(nats.errors.TimeoutError):
        await who.nc.request(subject, json.dumps({}).encode(), timeout=0.5)
    await who.refused(subject)


async def _streams_intact(server: NatsServer) -> None:
    async with session(server, "admin") as admin:
        for stream in (names.STREAM, names.TIMERS_STREAM, names.WORKERS_STREAM):
            assert await stream_info(admin.nc, stream) is not None, stream


def test_the_deployment_example_is_these_permissions(tmp_path: Path) -> None:
    """deploy/nats/authorization.conf is what the services are tested with, and nats-server
    accepts it (included from a nats.conf, the passwords from its environment)."""
    example = ROOT / "deploy/nats/authorization.conf"
    assert example.read_text() == example_authorization(), (
        "deploy/nats/authorization.conf is out of date: write it again with "
        "conveyor_bus.permissions.example_authorization()"
    )
    (tmp_path / "authorization.conf").write_text(example.read_text())
    conf = tmp_path / "nats.conf"
    conf.write_text("listen: 127.0.0.1:4222\ninclude authorization.conf\n")
    env = {f"CONVEYOR_NATS_{name.upper()}_PASSWORD": f"pw-{name}" for name in SERVICES}
    checked = subprocess.run(
        [nats_server_binary(), "-t", "-c", str(conf)], capture_output=True, text=True, env=env
    )
    assert checked.returncode == 0, checked.stderr
