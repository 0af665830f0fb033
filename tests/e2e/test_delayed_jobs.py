"""Runs due later wait on nats-server's scheduler, not in a delivery (issue 11; ADR 14).

A job with a future ``run_at``, and a retry's backoff, is stored off the work queues with a
timer in ``CONVEYOR_TIMERS``; the timer fires a due message that the log sources and a
worker starts. These tests run the real services: the run starts within a second of its
time, survives restarts of every service and of nats-server, and a stop cancels its timer.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta

import pytest

from conveyor_cli.dev.embedded import NatsServer
from conveyor_events import names
from support.system import System
from support.timers import consumer_state, log_subjects, stamp, timers_held

pytestmark = pytest.mark.e2e


def ahead(seconds: float) -> datetime:
    return datetime.now(UTC) + timedelta(seconds=seconds)


def started_late(job: dict[str, object]) -> float:
    """Seconds from the job's ``run_at`` to its start."""
    return (stamp(str(job["started_at"])) - stamp(str(job["run_at"]))).total_seconds()


def test_a_delayed_job_waits_off_the_work_queue_and_starts_within_a_second(
    system: System,
) -> None:
    run_at = ahead(2.5)
    before = consumer_state(system.nats_url)
    job = system.submit("noop", run_at=run_at.isoformat())
    assert timers_held(system.nats_url, job["id"]) == 1
    # stored without its priority token: no worker is handed it while it waits
    assert log_subjects(system.nats_url, job["id"]) == {
        names.event_subject(job["id"], "job.submitted"): 1
    }
    time.sleep(1.0)
    waiting = consumer_state(system.nats_url)
    assert waiting["delivered"] == before["delivered"] and waiting["ack_pending"] == 0

    done = system.wait_for(job["id"], "completed", timeout=10)
    assert 0 <= started_late(done) < 1.0, done
    assert done["attempt"] == 1
    subjects = log_subjects(system.nats_url, job["id"])
    assert subjects[names.due_subject(job["id"], "regular")] == 1  # the log keeps the due
    assert timers_held(system.nats_url, job["id"]) == 0  # a fired timer is gone


def test_a_stop_before_its_time_cancels_the_timer(system: System) -> None:
    job = system.submit("noop", run_at=ahead(2).isoformat())
    stopped = system.http.post(f"/api/v1/jobs/{job['id']}/stop")
    assert stopped.status_code == 202 and stopped.json()["status"] == "stopped"
    assert timers_held(system.nats_url, job["id"]) == 0
    time.sleep(3)
    assert names.due_subject(job["id"], "regular") not in log_subjects(system.nats_url, job["id"])
    types = [e["type"] for e in system.events(job["id"])]
    assert types == ["job.submitted", "job.stopped"]


def test_a_retry_waits_for_its_backoff_on_a_timer(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 0, "steps": 1, "fail": True}, max_attempts=3)
    failed = system.wait_for(job["id"], "failed", timeout=20)
    assert failed["attempt"] == 3
    events = system.events(job["id"])
    retries = [e for e in events if e["type"] == "job.failed" and e["data"]["retry"]]
    starts = [e for e in events if e["type"] == "job.started"]
    assert len(retries) == 2 and len(starts) == 3
    for retry, start in zip(retries, starts[1:], strict=True):
        assert stamp(start["at"]) >= stamp(retry["data"]["retry_at"])
        assert (stamp(start["at"]) - stamp(retry["data"]["retry_at"])).total_seconds() < 1.0
    subjects = log_subjects(system.nats_url, job["id"])
    assert subjects[names.event_subject(job["id"], "job.failed")] == 3  # none on a work queue
    assert subjects[names.due_subject(job["id"], "regular")] == 2


def test_a_run_at_past_the_servers_clock_range_waits(system: System) -> None:
    """nats-server keeps a schedule's time in int64 nanoseconds (to 2262): a timer is set
    at most a century ahead, and the run does not start early."""
    job = system.submit("noop", run_at="2999-01-01T00:00:00Z")
    assert timers_held(system.nats_url, job["id"]) == 1
    time.sleep(1.5)
    assert system.job(job["id"]).json()["status"] == "pending"
    assert names.due_subject(job["id"], "regular") not in log_subjects(system.nats_url, job["id"])


def test_run_at_survives_restarts_of_the_workers_the_api_and_nats_server(
    system: System, nats_server: NatsServer | None
) -> None:
    if nats_server is None:
        pytest.skip("NATS_URL names a server this test cannot restart")
    run_at = ahead(12)
    job = system.submit("noop", run_at=run_at.isoformat(), priority="high")
    workers = [name for name in list(system.procs) if name.startswith("worker-")]
    for name in workers:
        system.kill(name)
    system.stop("api")
    nats_server.stop(signal.SIGKILL)
    nats_server.start()
    system.start(
        "api", "api", CONVEYOR_API_PORT=str(system.api_port), CONVEYOR_NOTIFIER_URL=system.ws_url
    )
    for name in workers:
        system.start_worker(name)
    system.wait_ready()
    assert datetime.now(UTC) < run_at, "the restarts took longer than the wait"

    done = system.wait_for(job["id"], "completed", timeout=25)
    assert 0 <= started_late(done) < 1.0, done
    assert done["attempt"] == 1
