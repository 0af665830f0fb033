"""SPEC §6 checked at the end of a fault test, through the real services and the real log."""

from __future__ import annotations

import time
from collections.abc import Iterable

import msgspec

from conveyor_events import decode_event
from conveyor_events.invariants import history_problems
from support.system import System

TERMINAL = ("completed", "failed", "stopped")


def wait_terminal(system: System, job_ids: Iterable[str], timeout: float = 60) -> dict[str, str]:
    """Poll the read model until every job is terminal; the status of each."""
    pending = set(job_ids)
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for job_id in list(pending):
            response = system.job(job_id)
            if response.status_code == 200 and response.json()["status"] in TERMINAL:
                statuses[job_id] = response.json()["status"]
                pending.discard(job_id)
        if pending:
            time.sleep(0.2)
    assert not pending, f"{len(pending)} jobs never became terminal, e.g. {sorted(pending)[:5]}"
    return statuses


def verify(system: System, wait_s: float = 30, *, poisoned: Iterable[str] = ()) -> str:
    """``conveyor verify --wait``: read model == fold of the log, projector caught up, every
    job terminal, every history a valid path (invariants 1 to 4). Its report."""
    result = system.conveyor("verify", "--wait", str(wait_s), timeout=wait_s + 120)
    assert result.returncode == 0, f"verify failed:\n{result.stdout}\n{result.stderr}"
    # verify leaves parked events out; none may exist but on the jobs a test ``poisoned`` on
    # purpose (an event the services wrote that the projector had to park breaks invariant 4)
    parked = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("parked:") and not any(job_id in line for job_id in poisoned)
    ]
    assert not parked, "events were parked as dead letters:\n" + "\n".join(parked)
    return result.stdout


def check_invariants(system: System, accepted: Iterable[str], timeout: float = 60) -> None:
    """Every accepted job is in the log and terminal; no attempt completed twice; every
    history is a valid path; the read model equals the fold (SPEC §6, 1 to 5)."""
    accepted = list(accepted)
    wait_terminal(system, accepted, timeout)
    for job_id in accepted:
        events = system.events(job_id)  # read from the log, not the read model
        assert events and events[0]["type"] == "job.submitted", f"{job_id} missing from the log"
        history = [decode_event(_stored(e)) for e in events]
        assert history_problems(history) == [], (job_id, history_problems(history))
    verify(system)


def _stored(frame: dict[str, object]) -> bytes:
    """An events-endpoint frame back in its stored form (without ``seq``)."""
    return msgspec.json.encode({k: v for k, v in frame.items() if k != "seq"})
