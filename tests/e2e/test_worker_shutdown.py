"""SIGTERM a worker with jobs running (issue 3's battery, test 9): they finish within the
grace period or are handed back for immediate redelivery; none waits for the ack wait."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator

import pytest

from support.invariants import check_invariants
from support.system import System

pytestmark = pytest.mark.e2e

ACK_WAIT_S = 6.0
GRACE_S = 1.5


@pytest.fixture(scope="module")
def lone(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """One worker that runs several jobs at once (another joins later)."""
    env = {
        "CONVEYOR_ACK_WAIT_S": str(ACK_WAIT_S),
        "CONVEYOR_SHUTDOWN_GRACE_S": str(GRACE_S),
        "CONVEYOR_CONCURRENCY": "4",
    }
    with System(nats_url, database_url, tmp_path_factory.mktemp("logs"), workers=1, env=env) as s:
        yield s


def test_sigterm_lets_short_jobs_finish_and_hands_long_ones_back_at_once(lone: System) -> None:
    """SIGTERM a worker with jobs running: they finish within the grace period or are
    redelivered at once; none waits for the ack wait (test 9)."""
    system = lone
    shorts = [system.submit("sleep", payload={"seconds": 1.0, "steps": 2}) for _ in range(2)]
    longs = [system.submit("sleep", payload={"seconds": 60, "steps": 60}) for _ in range(2)]
    for j in shorts + longs:
        system.wait_for(j["id"], "running", worker_id="worker-1", timeout=10)
    system.start_worker("worker-2")
    deadline = time.monotonic() + 20
    while "worker-2" not in {w["id"] for w in system.http.get("/api/v1/workers").json()["items"]}:
        assert time.monotonic() < deadline, "worker-2 never came up"
        time.sleep(0.1)

    terminated_at = time.monotonic()
    system.signal("worker-1", signal.SIGTERM)
    for j in longs:  # handed back at once, not after the ack wait (6 s here)
        taken = system.wait_for(j["id"], "running", attempt=2, timeout=ACK_WAIT_S * 2)
        assert taken["worker_id"] == "worker-2"
    assert time.monotonic() - terminated_at < GRACE_S + 2.0
    for j in shorts:  # finished within the grace period, by the worker that started them
        done = system.wait_for(j["id"], "completed", timeout=5)
        assert (done["attempt"], done["worker_id"]) == (1, "worker-1")
    assert system.procs.pop("worker-1").wait(10) == 0

    for j in longs:
        system.http.post(f"/api/v1/jobs/{j['id']}/stop")
    check_invariants(system, [j["id"] for j in shorts + longs])
