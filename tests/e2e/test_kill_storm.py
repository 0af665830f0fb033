"""A kill storm (issue 3's battery, test 1): jobs of mixed length across three worker
processes while a random worker is SIGKILLed every 2 s and restarted. Every job ends
terminal, none completes twice, WorkerLost only where a run really was started
max_deliveries times, and SPEC §6 holds. The storm must have hit jobs in flight: attempts
whose worker was killed under them and that another attempt took over. Histories come from the
raw log (the events endpoint leaves forbidden transitions out); a second completion forged
onto the log at the end shows the check catches one.

``CONVEYOR_SOAK_SCALE`` (default 1) multiplies the number of jobs and the time bounds
(``make soak``).
"""

from __future__ import annotations

import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from conveyor_events import testing as ev
from support.invariants import as_frames, check_invariants, forge, raw_history
from support.system import System

SCALE = max(1, int(os.environ.get("CONVEYOR_SOAK_SCALE", "1")))
JOBS = 500 * SCALE
WORKERS = ("worker-1", "worker-2", "worker-3")
KILL_EVERY_S = 2.0
STORM_LIMIT_S = 90.0 * SCALE
ACK_WAIT_S = 2.0
MAX_DELIVERIES = 3
SEED = int(os.environ.get("CONVEYOR_STORM_SEED", str(random.randrange(1 << 30))))

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(100 + 2 * STORM_LIMIT_S)]

OUTCOMES = ("job.completed", "job.failed", "job.stopped")


@pytest.fixture(scope="module")
def storm_system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    env = {
        "CONVEYOR_ACK_WAIT_S": str(ACK_WAIT_S),
        "CONVEYOR_CONCURRENCY": "12",
        "CONVEYOR_MAX_DELIVERIES": str(MAX_DELIVERIES),
        "CONVEYOR_RETRY_BASE_S": "0.1",
        "CONVEYOR_RETRY_CAP_S": "0.5",
    }
    log_dir = tmp_path_factory.mktemp("logs")
    with System(nats_url, database_url, log_dir, workers=len(WORKERS), env=env) as system:
        yield system


def mixed_jobs(rng: random.Random, n: int) -> list[dict[str, Any]]:
    """A third noop, the rest sleeps of 0.05 to 1.5 s; some fail every attempt, some have
    attempts to spare; a fifth high priority."""
    jobs = []
    for _ in range(n):
        body: dict[str, Any] = {"priority": "high" if rng.random() < 0.2 else "regular"}
        if rng.random() < 1 / 3:
            body["type"] = "noop"
        else:
            fail = rng.random() < 0.15
            seconds = round(rng.uniform(0.05, 1.5), 2)
            body["type"] = "sleep"
            body["payload"] = {"seconds": seconds, "steps": rng.randint(1, 5), "fail": fail}
            if fail or rng.random() < 0.2:
                body["max_attempts"] = rng.randint(2, 3)
        jobs.append(body)
    return jobs


@dataclass
class Storm:
    kills: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    """Per worker name, when each of its processes was killed (after it was gone)."""
    rounds: int = 0
    seconds: float = 0.0
    left: list[int] = field(default_factory=list)
    """Jobs not yet terminal, every 5 s."""

    def killed_after(self, worker: str, at: datetime) -> datetime | None:
        """The kill of the process of ``worker`` that was alive at ``at``."""
        return next((k for k in self.kills[worker] if k > at), None)


def unfinished(system: System) -> int:
    by_status: dict[str, int] = system.http.get("/api/v1/stats").json()["by_status"]
    terminal = by_status["completed"] + by_status["failed"] + by_status["stopped"]
    return max(JOBS - terminal, by_status["pending"] + by_status["running"])


def storm(system: System, rng: random.Random) -> Storm:
    """Kill a random worker every 2 s (and start it again) until every job is terminal."""
    record = Storm()
    started = time.monotonic()
    next_kill = started + KILL_EVERY_S
    left = JOBS
    while time.monotonic() - started < STORM_LIMIT_S:
        left = unfinished(system)
        if left == 0:
            break
        if time.monotonic() - started >= 5 * len(record.left):
            record.left.append(left)
        if time.monotonic() >= next_kill:
            victim = rng.choice(WORKERS)
            system.kill(victim)
            record.kills[victim].append(datetime.now(UTC))
            system.start_worker(victim)
            record.rounds += 1
            next_kill += KILL_EVERY_S
        time.sleep(0.1)
    record.seconds = time.monotonic() - started
    assert left == 0, (
        f"{left} of {JOBS} jobs not terminal after {STORM_LIMIT_S:.0f} s of kill storm "
        f"({record.rounds} kills, seed {SEED}, not terminal every 5 s: {record.left}); "
        f"logs in {system.log_dir}"
    )
    return record


def all_jobs(system: System) -> dict[str, dict[str, Any]]:
    """Every job in the read model, by id."""
    jobs: dict[str, dict[str, Any]] = {}
    params: dict[str, Any] = {"limit": 500}
    while True:
        page = system.http.get("/api/v1/jobs", params=params).json()
        jobs.update({j["id"]: j for j in page["items"]})
        if not page["next_cursor"]:
            return jobs
        params["cursor"] = page["next_cursor"]


@dataclass
class Attempt:
    number: int
    run: int
    worker: str
    at: datetime
    outcomes: list[dict[str, Any]] = field(default_factory=list)


def attempts_of(history: list[dict[str, Any]]) -> dict[int, Attempt]:
    attempts: dict[int, Attempt] = {}
    for event in history:
        data = event["data"]
        if event["type"] == "job.started":
            at = datetime.fromisoformat(event["at"])
            attempts[data["attempt"]] = Attempt(data["attempt"], data["run"], data["worker_id"], at)
        elif event["type"] in OUTCOMES and data.get("attempt") is not None:
            attempts[data["attempt"]].outcomes.append(event)
    return attempts


def outcome_problems(history: list[dict[str, Any]], status: str) -> list[str]:
    """No double completion: one ``job.completed`` exactly when the job ended completed, and
    at most one outcome per attempt."""
    problems = []
    completions = sum(e["type"] == "job.completed" for e in history)
    if completions != (status == "completed"):
        problems.append(f"{status}, {completions} job.completed")
    for a in attempts_of(history).values():
        if len(a.outcomes) > 1:
            problems.append(f"attempt {a.number} has {len(a.outcomes)} outcomes")
    return problems


def lost(attempt: Attempt) -> bool:
    """No worker settled the attempt (the WorkerLost failure is the log's, not a worker's)."""
    return all(
        e["type"] == "job.failed" and e["data"]["error"]["type"] == "WorkerLost"
        for e in attempt.outcomes
    )


def retry_problems(history: list[dict[str, Any]], max_attempts: int) -> list[str]:
    """A handler's failure is retried exactly while attempts are left (an attempt lost with
    its worker counts too), and not before its ``retry_at``."""
    problems = []
    retry_at: datetime | None = None
    for event in history:
        data = event["data"]
        if event["type"] == "job.started" and retry_at is not None:
            if datetime.fromisoformat(event["at"]) < retry_at - timedelta(seconds=0.05):
                problems.append(f"attempt {data['attempt']} started before {retry_at}")
            retry_at = None
        if event["type"] == "job.failed" and data["error"]["type"] != "WorkerLost":
            if data["retry"] != (data["attempt"] < max_attempts):
                problems.append(f"attempt {data['attempt']} of {max_attempts}: {data['retry']=}")
            if data["retry"]:
                retry_at = datetime.fromisoformat(data["retry_at"])
    return problems


def test_kill_storm_loses_nothing_and_completes_nothing_twice(storm_system: System) -> None:
    system = storm_system
    rng = random.Random(SEED)
    bodies = mixed_jobs(rng, JOBS)
    jobs: dict[str, dict[str, Any]] = {}
    for i in range(0, JOBS, 1000):
        response = system.http.post("/api/v1/jobs/batch", json={"jobs": bodies[i : i + 1000]})
        assert response.status_code == 201, response.text
        items = response.json()["items"]
        jobs.update({j["id"]: b for j, b in zip(items, bodies[i : i + 1000], strict=True)})
    assert len(jobs) == JOBS

    record = storm(system, rng)
    histories = check_invariants(system, jobs)  # the raw log, poison and all

    problems: list[str] = []
    redelivered_after_kill = 0
    unexplained: list[str] = []
    worker_lost = 0
    statuses: Counter[str] = Counter()
    finals = all_jobs(system)
    for job_id, body in jobs.items():
        history = as_frames(histories[job_id])
        final = finals[job_id]
        statuses[final["status"]] += 1
        attempts = attempts_of(history)
        problems += [f"{job_id}: {p}" for p in outcome_problems(history, final["status"])]
        problems += [f"{job_id}: {p}" for p in retry_problems(history, body.get("max_attempts", 1))]
        for run, starts in Counter(a.run for a in attempts.values()).items():
            if starts > MAX_DELIVERIES:
                problems.append(f"{job_id}: run {run} started {starts} times")

        # every attempt that no worker settled and another attempt took over: its worker
        # must have been killed under it
        for a in attempts.values():
            after = attempts.get(a.number + 1)
            if after is None or not lost(a):
                continue
            kill = record.killed_after(a.worker, a.at)
            if kill is not None and kill <= after.at:
                redelivered_after_kill += 1
            else:
                unexplained.append(f"{job_id} attempt {a.number} on {a.worker} at {a.at}")

        error = final["error"] or {}
        if error.get("type") == "WorkerLost":
            worker_lost += 1
            last = attempts[final["attempt"]]
            of_run = [a for a in attempts.values() if a.run == last.run]
            if len(of_run) != MAX_DELIVERIES or not all(lost(a) for a in of_run):
                problems.append(f"{job_id}: WorkerLost after {len(of_run)} starts of its run")
            if record.killed_after(last.worker, last.at) is None:
                unexplained.append(f"{job_id} attempt {last.number} on {last.worker} (WorkerLost)")
        elif body.get("payload", {}).get("fail"):
            if final["status"] != "failed" or error.get("type") != "JobFailed":
                problems.append(f"{job_id}: meant to fail, ended {final['status']} {error}")
        elif final["status"] != "completed":
            problems.append(f"{job_id}: ended {final['status']} {error}")

    summary = (
        f"seed {SEED}: {JOBS} jobs, {record.rounds} kills in {record.seconds:.1f} s, "
        f"{redelivered_after_kill} attempts taken over after a kill, {worker_lost} WorkerLost, "
        f"statuses {dict(statuses)}, not terminal every 5 s: {record.left}"
    )
    print(summary)
    assert not problems, f"{summary}\n" + "\n".join(problems[:20])
    assert not unexplained, (
        f"{summary}\nattempts redelivered without their worker being killed "
        "(a heartbeat failed?):\n" + "\n".join(unexplained[:20])
    )
    # the fault really hit jobs in flight
    assert redelivered_after_kill > 0, summary

    # control: a second completion, forged onto the log as an unfenced zombie would write
    # it, is caught by the same check (the events endpoint would leave it out)
    victim = next(j for j in jobs if finals[j]["status"] == "completed")
    attempt = finals[victim]["attempt"]
    forge(system.nats_url, ev.completed(attempt, job=victim, at=datetime.now(UTC)))
    assert outcome_problems(as_frames(raw_history(system.nats_url, victim)), "completed") == [
        "completed, 2 job.completed",
        f"attempt {attempt} has 2 outcomes",
    ]
