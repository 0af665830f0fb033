"""Worker faults through the real processes (issue 3's battery, tests 2, 7 and the work queue
half of 8): a frozen worker, a CPU-bound handler, poison run commands, and the max-deliveries
rule. Each test ends with SPEC §6 checked. Histories are read from the raw log: the events
endpoint leaves out forbidden transitions, a zombie's late write among them; the last test
shows, on writes forged onto the log, that the checks catch one."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor_api.ids import new_job_id
from conveyor_bus import connect
from conveyor_events import encode_event, names
from conveyor_events import testing as ev
from support.invariants import (
    as_frames,
    check_invariants,
    forge,
    raw_history,
    verify,
    wait_terminal,
)
from support.system import System

pytestmark = pytest.mark.e2e

ACK_WAIT_S = 2.0
GRACE_S = 1.5
MAX_DELIVERIES = 2


@pytest.fixture(scope="module")
def faulty(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """Three workers that each run one job at a time, with metrics, a short ack wait and a
    low max_deliveries."""
    env = {
        "CONVEYOR_ACK_WAIT_S": str(ACK_WAIT_S),
        "CONVEYOR_SHUTDOWN_GRACE_S": str(GRACE_S),
        "CONVEYOR_CONCURRENCY": "1",
        "CONVEYOR_MAX_DELIVERIES": str(MAX_DELIVERIES),
        "CONVEYOR_ALLOW_BUSY_SLEEP": "true",  # the CPU-bound handler of these tests
    }
    system = System(nats_url, database_url, tmp_path_factory.mktemp("logs"), workers=0, env=env)
    with system:
        for n in (1, 2, 3):
            system.start_worker(f"worker-{n}", metrics=True)
        wait_workers(system, 3)
        yield system


def wait_workers(system: System, n: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        live = system.http.get("/api/v1/workers").json()["items"]
        if len([w for w in live if not w["stopping"]]) >= n:
            return
        time.sleep(0.1)
    raise AssertionError(f"fewer than {n} workers came up")


def history(system: System, job_id: str) -> list[dict[str, Any]]:
    """The job's events as the log stores them, every one (the events endpoint leaves out
    what the transitions table forbids)."""
    return as_frames(raw_history(system.nats_url, job_id))


def events_of(system: System, job_id: str, kind: str) -> list[dict[str, Any]]:
    return [e for e in history(system, job_id) if e["type"] == kind]


def stale_writes(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of an attempt written after a later attempt had started: a zombie's writes."""
    current = 0
    stale = []
    for e in events:
        attempt = e["data"].get("attempt")
        if e["type"] == "job.started":
            current = max(current, attempt)
        elif attempt is not None and attempt < current:
            stale.append(e)
    return stale


def test_a_frozen_worker_that_wakes_up_is_fenced_off(faulty: System) -> None:
    """SIGSTOP longer than the ack wait, then SIGCONT: one completion, the zombie's writes
    rejected (issue 3, test 2)."""
    system = faulty
    job = system.submit("sleep", payload={"seconds": 5, "steps": 20})
    first = system.wait_for(job["id"], "running", timeout=10)
    zombie = first["worker_id"]
    system.wait_for(job["id"], "running", attempt=1, timeout=5, **{"worker_id": zombie})
    while system.job(job["id"]).json()["progress"] < 10:
        time.sleep(0.05)
    system.signal(zombie, signal.SIGSTOP)
    try:
        second = system.wait_for(job["id"], "running", attempt=2, timeout=ACK_WAIT_S + 10)
        assert second["worker_id"] != zombie  # the fault hit: the job was taken over
        time.sleep(0.5)
    finally:
        system.signal(zombie, signal.SIGCONT)

    done = system.wait_for(job["id"], "completed", timeout=20)
    assert (done["attempt"], done["worker_id"]) == (2, second["worker_id"])
    completed = events_of(system, job["id"], "job.completed")
    assert [e["data"]["attempt"] for e in completed] == [2]
    # The zombie woke up with its handler still going, tried to write, and was turned away.
    deadline = time.monotonic() + 10
    while system.metric(zombie, "conveyor_worker_fenced_total") < 1:
        assert time.monotonic() < deadline, "the woken worker never noticed it was fenced off"
        time.sleep(0.2)
    # Nothing of attempt 1 was written after attempt 2 began.
    events = history(system, job["id"])
    assert [e["data"]["attempt"] for e in events if e["type"] == "job.started"] == [1, 2]
    assert stale_writes(events) == []
    check_invariants(system, [job["id"]])


def test_a_cpu_bound_handler_keeps_its_delivery(faulty: System) -> None:
    """A handler that never yields to the event loop for 5 ack waits is not redelivered
    (test 7). The control job, whose heartbeats stop at its timeout, shows that the ack wait
    is short enough for a blocked worker to lose its job: it is redelivered, and after
    ``max_deliveries`` starts it fails with WorkerLost."""
    system = faulty
    busy_s = 5 * ACK_WAIT_S
    job = system.submit("sleep", payload={"seconds": busy_s, "steps": 4, "busy": True})
    control = system.submit(
        "sleep",
        payload={"seconds": busy_s, "steps": 4, "busy": True},
        timeout_s=0.2,
        max_attempts=3,
    )

    done = system.wait_for(job["id"], "completed", timeout=busy_s * 3 + 10)
    assert done["attempt"] == 1
    assert len(events_of(system, job["id"], "job.started")) == 1

    lost = system.wait_for(control["id"], "failed", timeout=busy_s * 4 + 20)
    assert lost["error"]["type"] == "WorkerLost", lost["error"]
    starts = events_of(system, control["id"], "job.started")
    assert len(starts) == MAX_DELIVERIES  # redelivered, not retried: attempts were left
    assert len({s["data"]["worker_id"] for s in starts}) == MAX_DELIVERIES
    assert events_of(system, control["id"], "job.completed") == []
    check_invariants(system, [job["id"], control["id"]], timeout=30)


POISONED: list[str] = []
"""Jobs on whose subjects a test put poison on purpose (the projector parks it)."""


def test_poison_on_the_work_queues_is_terminated_and_counted(faulty: System) -> None:
    """Garbage, a schema-invalid submission and another job's submission, each on the
    subject of a runnable event (a work queue): terminated (never delivered again), counted,
    parked by the projector, and the jobs around them unaffected (test 8)."""
    system = faulty
    wait_workers(system, 3)
    garbage, invalid, wrong = new_job_id(), new_job_id(), new_job_id()
    POISONED.extend([garbage, invalid, wrong])

    async def inject() -> None:
        nc = await connect(system.nats_url, "poison")
        js = nc.jetstream()
        try:
            submitted = "job.submitted"
            await js.publish(
                names.event_subject(garbage, submitted, "regular"), b"\x00\xffnot an event"
            )
            invalid_bytes = b'{"type": "job.submitted", "job_id": 7}'
            await js.publish(names.event_subject(invalid, submitted, "high"), invalid_bytes)
            other = encode_event(ev.submitted(job=new_job_id()))
            await js.publish(names.event_subject(wrong, submitted, "regular"), other)
        finally:
            await nc.close()

    before = [system.submit("noop") for _ in range(5)]
    asyncio.run(inject())
    after = [system.submit("sleep", payload={"seconds": 0.1, "steps": 1}) for _ in range(5)]
    wait_terminal(system, [j["id"] for j in before + after])
    verify(system, poisoned=POISONED)

    def total(reason: str) -> float:
        return sum(
            system.metric(w, "conveyor_worker_poison_commands_total", reason=reason)
            for w in system.metrics_ports
            if w in system.procs
        )

    def totals() -> tuple[float, float, float]:
        return total("undecodable"), total("invalid"), total("wrong_subject")

    deadline = time.monotonic() + 15
    while totals() != (1, 1, 1):
        assert time.monotonic() < deadline, totals()
        time.sleep(0.2)


def test_the_checks_catch_a_zombies_writes_forged_onto_the_log(faulty: System) -> None:
    """The control of the frozen-worker test: what an unfenced zombie would leave (attempt
    1's progress and completion after attempt 2 started, a second completion), forged onto
    the log of a job no worker runs. The raw history shows it, the checks above and SPEC §6
    fail on it, and the projector parked it. Last in the module: its dead letters would fail
    the verify of any test after it."""
    system = faulty
    job = new_job_id()
    POISONED.append(job)
    never = datetime.now(UTC) + timedelta(days=365)  # no worker starts it: the writes are forged
    forge(
        system.nats_url,
        ev.submitted(job=job, run_at=never),
        ev.started(1, job=job),
        ev.started(2, job=job),  # a redelivery: attempt 1's worker froze
        ev.progressed(1, job=job),  # the zombie wakes up
        ev.completed(2, job=job),
        ev.completed(1, job=job),  # the zombie's completion
    )

    events = history(system, job)
    completed = [e["data"]["attempt"] for e in events if e["type"] == "job.completed"]
    assert completed == [2, 1]
    assert [(e["type"], e["data"]["attempt"]) for e in stale_writes(events)] == [
        ("job.progressed", 1),
        ("job.completed", 1),
    ]
    with pytest.raises(AssertionError, match=r"for attempt 1 while attempt 2 is current"):
        check_invariants(system, [job])
    report = verify(system, poisoned=POISONED)
    assert report.count(f"on conveyor.job.{job}.progressed: impossible_transition") == 1, report
    assert report.count(f"on conveyor.job.{job}.completed: impossible_transition") == 1, report
