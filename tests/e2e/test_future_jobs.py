"""Jobs not yet due cost nothing while they wait, and never keep due jobs from running
(issue 10, defect 4; issue 11; ADRs 10 and 14).

Ten thousand jobs delayed by 45 seconds are ten thousand timers in ``CONVEYOR_TIMERS``: no
worker is handed any of them while they wait, every process stays idle, a due job submitted
meanwhile runs at once, and at their time they all run.
"""

from __future__ import annotations

import os
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from conveyor_cli.dev.embedded import NatsServer
from support.system import System
from support.timers import consumer_state, stamp, timers_held

pytestmark = [pytest.mark.e2e, pytest.mark.long, pytest.mark.timeout(240)]

DELAYED = 10_000
WAIT_S = 45
WINDOW_S = 15
IDLE_SHARE = 0.05
"""The most of one core a process may use while the delayed jobs wait."""
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (/proc/<pid>/stat, fields 14 and 15)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def count(http: httpx.Client, status: str) -> int:
    stats = http.get("/api/v1/stats").json()
    return int(stats["by_status"].get(status, 0))


def test_ten_thousand_delayed_jobs_wait_with_idle_cpu_then_all_run(
    system: System, nats_server: NatsServer | None
) -> None:
    run_at = (datetime.now(UTC) + timedelta(seconds=WAIT_S)).replace(microsecond=0)
    before = {p: consumer_state(system.nats_url, p) for p in ("high", "regular")}
    with httpx.Client(base_url=system.api_url, timeout=60) as http:
        first: str | None = None
        for _ in range(DELAYED // 1000):
            jobs = [{"type": "noop", "run_at": run_at.isoformat()}] * 1000
            response = http.post("/api/v1/jobs/batch", json={"jobs": jobs})
            assert response.status_code == 201, response.text
            first = first or response.json()["items"][0]["id"]
        assert timers_held(system.nats_url) == DELAYED
        deadline = time.monotonic() + 30
        while count(http, "pending") < DELAYED:
            assert time.monotonic() < deadline, "the read model never showed every delayed job"
            time.sleep(0.2)

        # a due job is not held up by the waiting ones
        due = system.submit("noop")
        assert system.wait_for(due["id"], "completed", timeout=10)["attempt"] == 1

        # waiting: nothing delivered, nothing held, every process idle
        pids = {name: proc.pid for name, proc in system.procs.items()}
        if nats_server is not None and nats_server.proc is not None:
            pids["nats-server"] = nats_server.proc.pid
        start = {name: cpu_seconds(pid) for name, pid in pids.items()}
        time.sleep(WINDOW_S)
        used = {name: (cpu_seconds(pid) - start[name]) / WINDOW_S for name, pid in pids.items()}
        print("share of a core while 10,000 jobs wait:", {n: f"{u:.1%}" for n, u in used.items()})
        assert datetime.now(UTC) < run_at, "the submission took longer than the wait"
        for priority in ("high", "regular"):
            state = consumer_state(system.nats_url, priority)
            assert state["ack_pending"] == 0, state
            # only the due job was delivered
            assert state["delivered"] - before[priority]["delivered"] <= 1, state
        busy = {name: share for name, share in used.items() if share > IDLE_SHARE}
        assert not busy, f"processes busy while the delayed jobs wait: {busy}"

        # at their time, they all run
        deadline = time.monotonic() + WAIT_S + 60
        while count(http, "completed") < DELAYED + 1:
            assert time.monotonic() < deadline, f"{count(http, 'completed')} completed"
            time.sleep(0.5)
        drained = (datetime.now(UTC) - run_at).total_seconds()
        print(f"10,000 delayed jobs completed {drained:.1f} s after their time")
    assert first is not None
    job = system.job(first).json()
    assert 0 <= (stamp(job["started_at"]) - run_at).total_seconds() < 1.0, job
    assert timers_held(system.nats_url) == 0
