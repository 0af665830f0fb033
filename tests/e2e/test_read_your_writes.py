"""``GET /jobs/{id}`` right after a write reflects it, also when the projector has not applied
it (the projector is frozen with SIGSTOP here), and poison as the job's last message in the log
does not change the answer, before or after the projector parks it.

Controls: while the projector is frozen the read model (``GET /jobs``, which reads only it)
still shows the job as it was, so each GET below really was answered from the log."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import nats
import pytest

from conveyor_cli.dev.embedded import NatsServer
from conveyor_events import encode_event
from conveyor_events import testing as ev
from support.invariants import raw_subject
from support.system import System

pytestmark = pytest.mark.e2e

LATER = "2999-01-01T00:00:00Z"


@contextmanager
def frozen_projector(system: System) -> Iterator[None]:
    system.signal("projector", signal.SIGSTOP)
    try:
        yield
    finally:
        system.signal("projector", signal.SIGCONT)


def get(system: System, job_id: str) -> dict[str, Any]:
    response = system.job(job_id)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def row(system: System, job_id: str) -> dict[str, Any]:
    job = system.listed(job_id)
    assert job is not None, f"no row for {job_id}"
    return job


def write(system: System, job_id: str, action: str) -> dict[str, Any]:
    response = system.http.post(f"/api/v1/jobs/{job_id}/{action}")
    assert response.status_code == 202, response.text
    job: dict[str, Any] = response.json()
    return job


def assert_reflects(read: dict[str, Any], written: dict[str, Any]) -> None:
    """A read reflects a write: it is the written job, or a later version of it."""
    assert read["version"] >= written["version"], (read, written)
    if read["version"] == written["version"]:
        assert read == written


def wait_idle(system: System, timeout: float = 10) -> None:
    """Until the projector has applied (or parked) every event of the log."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if system.http.get("/api/v1/stats").json()["projector_lag"] == 0:
            return
        time.sleep(0.05)
    raise AssertionError("the projector did not catch up")


async def inject(system: System, job_id: str, data: bytes) -> int:
    """A raw message on the job's subject, published with the plain NATS client; its seq."""
    nc = await nats.connect(system.nats_url)
    try:
        reply = await nc.request(raw_subject(job_id, data), data, timeout=5)
    finally:
        await nc.close()
    ack = json.loads(reply.data)
    assert "error" not in ack, ack
    return int(ack["seq"])


def test_get_reflects_201_202_and_204_while_the_projector_is_frozen(system: System) -> None:
    old = system.submit("noop", run_at=LATER)
    system.wait_projected(old["id"], "pending")  # its row is in the read model
    with frozen_projector(system):
        new = system.submit("noop", run_at=LATER)
        assert get(system, new["id"]) == new  # 201: found at once
        assert system.listed(new["id"]) is None  # control: no row yet

        stopped = write(system, old["id"], "stop")
        assert stopped["status"] == "stopped"
        assert get(system, old["id"]) == stopped  # 202: the new status at once
        assert row(system, old["id"])["status"] == "pending"  # control: the row is behind

        restarted = write(system, old["id"], "restart")
        assert restarted["status"] == "pending" and restarted["version"] == 3
        assert_reflects(get(system, old["id"]), restarted)
        # The restart cleared run_at: a worker runs it, and GET follows the worker's
        # events in the log too.
        done = system.wait_for(old["id"], "completed", timeout=10)
        assert done["version"] == 5 and done["attempt"] == 1
        assert row(system, old["id"])["version"] == 1

        assert system.http.delete(f"/api/v1/jobs/{old['id']}").status_code == 204
        assert system.job(old["id"]).status_code == 404  # 204: gone at once
        assert system.listed(old["id"]) is not None  # control: the row is still there

        assert write(system, new["id"], "stop")["status"] == "stopped"
        assert system.http.delete(f"/api/v1/jobs/{new['id']}").status_code == 204
        assert system.job(new["id"]).status_code == 404
    system.wait_gone(old["id"])
    wait_idle(system)
    assert system.job(old["id"]).status_code == 404
    assert system.job(new["id"]).status_code == 404


def test_a_stop_of_a_running_job_is_seen_at_once(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 30, "steps": 30})
    system.wait_projected(job["id"], "running")
    with frozen_projector(system):
        stopping = write(system, job["id"], "stop")
        assert stopping["stop_requested"] is True and stopping["status"] == "running"
        read = get(system, job["id"])
        assert_reflects(read, stopping)
        assert read["stop_requested"] or read["status"] == "stopped"
        assert row(system, job["id"])["stop_requested"] is False  # control
        # The worker's job.stopped, seen through GET while the read model stands still.
        stopped = system.wait_for(job["id"], "stopped", timeout=5)
        assert stopped["version"] == stopping["version"] + 1
    system.wait_for(job["id"], "stopped")


async def test_poison_as_the_last_message_does_not_change_the_answer(system: System) -> None:
    running = system.submit("sleep", payload={"seconds": 30, "steps": 30})
    system.wait_projected(running["id"], "running")
    with frozen_projector(system):
        fresh = system.submit("noop", run_at=LATER)
        await inject(system, fresh["id"], b"\xff\x00 garbage after a fresh submit")
        assert get(system, fresh["id"]) == fresh

        now = datetime.now(UTC)
        await inject(system, fresh["id"], encode_event(ev.deleted(job=fresh["id"], at=now)))
        assert get(system, fresh["id"]) == fresh  # a job.deleted while pending is poison

        before = get(system, running["id"])
        await inject(system, running["id"], encode_event(ev.deleted(job=running["id"], at=now)))
        after = get(system, running["id"])
        assert after["status"] == "running"
        assert_reflects(after, before)
        assert system.listed(fresh["id"]) is None  # control: the projector saw nothing

    wait_idle(system)  # the projector parks the poison; GET answers from its rows again
    assert get(system, fresh["id"]) == fresh
    assert get(system, running["id"])["status"] == "running"
    assert system.listed(fresh["id"]) == fresh

    write(system, running["id"], "stop")
    system.wait_for(running["id"], "stopped")
    write(system, fresh["id"], "stop")
    wait_idle(system)
    verify = system.conveyor("verify")
    assert verify.returncode == 0, verify.stdout + verify.stderr
    assert verify.stdout.count("parked: seq") == 3, verify.stdout


def test_with_nats_frozen_the_read_model_answers_within_the_bound(
    system: System, nats_server: NatsServer | None
) -> None:
    """A hung NATS server (SIGSTOP: connections open, nothing answers) costs a GET the log
    check's bound (1 s), then the read model answers."""
    if nats_server is None or nats_server.proc is None:
        pytest.skip("needs the NATS server the tests start")
    job = system.submit("noop")
    done = system.wait_for(job["id"], "completed")
    wait_idle(system)
    nats_server.proc.send_signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        response = system.job(job["id"])
        elapsed = time.monotonic() - started
    finally:
        nats_server.proc.send_signal(signal.SIGCONT)
    assert response.status_code == 200 and response.json() == done
    assert 0.9 < elapsed < 2.5, elapsed
