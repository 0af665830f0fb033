"""Costs a caller cannot grow without bound, through the real services (issue 10): a job's
history read a page at a time, ``q`` taken literally, CPU-bound sleeps only where a worker
allows them, and a worker named after a dotted host still visible."""

from __future__ import annotations

import time
from typing import Any

import pytest

from support.system import System

pytestmark = pytest.mark.e2e

PROBLEM = "application/problem+json"


def pages(system: System, job_id: str, limit: int) -> list[list[dict[str, Any]]]:
    out: list[list[dict[str, Any]]] = []
    after: int | None = 0
    while after is not None:
        response = system.http.get(
            f"/api/v1/jobs/{job_id}/events", params={"after_seq": after, "limit": limit}
        )
        assert response.status_code == 200, response.text
        body = response.json()
        out.append(body["items"])
        after = body["next"]
    return out


def test_a_jobs_history_is_read_a_page_at_a_time(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 1.0, "steps": 8})
    system.wait_for(job["id"], "completed", timeout=15)
    everything = system.events(job["id"])
    assert len(everything) >= 5  # submitted, started, progress (coalesced), completed

    by_two = pages(system, job["id"], 2)

    assert [e for page in by_two for e in page] == everything
    assert all(len(page) == 2 for page in by_two[:-1]) and 1 <= len(by_two[-1]) <= 2
    past_the_end = system.http.get(
        f"/api/v1/jobs/{job['id']}/events", params={"after_seq": everything[-1]["seq"]}
    )
    assert past_the_end.status_code == 200
    assert past_the_end.json() == {"items": [], "next": None}


@pytest.mark.parametrize(
    "params", [{"limit": 0}, {"limit": 10_001}, {"after_seq": -1}, {"limit": "ten"}]
)
def test_a_bad_page_of_events_is_refused_naming_the_parameter(
    system: System, params: dict[str, int | str]
) -> None:
    job = system.submit("noop")
    response = system.http.get(f"/api/v1/jobs/{job['id']}/events", params=params)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    [name] = params
    assert name in response.json()["detail"]


def test_events_of_an_unknown_job_are_404_on_any_page(system: System) -> None:
    for params in ({}, {"after_seq": 5}):
        response = system.http.get("/api/v1/jobs/01ZZZZZZZZZZZZZZZZZZZZZZZZ/events", params=params)
        assert response.status_code == 404, response.text


@pytest.mark.parametrize("q", ["%", "_", "%%", "_%_", "\\"])
def test_q_wildcards_match_only_themselves(system: System, q: str) -> None:
    """``%`` and ``_`` used to be LIKE wildcards: ``q=%`` matched every job, and a miss made
    of them scanned the whole table. No job's id or payload holds these characters."""
    for _ in range(2):
        system.wait_projected(system.submit("sleep", payload={"seconds": 0})["id"], "completed")

    listed = system.http.get("/api/v1/jobs", params={"q": q})

    assert listed.status_code == 200, listed.text
    assert listed.json()["items"] == []


def test_a_busy_sleep_fails_at_once_on_a_worker_that_does_not_allow_it(system: System) -> None:
    """A CPU-bound sleep holds its worker's event loop for up to 30 s; only workers started
    with CONVEYOR_ALLOW_BUSY_SLEEP run one. It fails without a retry, saying how to allow it."""
    job = system.submit("sleep", payload={"seconds": 5, "busy": True}, max_attempts=3)
    failed = system.wait_for(job["id"], "failed", timeout=15)

    assert failed["attempt"] == 1
    assert failed["error"]["type"] == "BusyNotAllowed"
    assert "CONVEYOR_ALLOW_BUSY_SLEEP" in failed["error"]["message"]
    assert failed["finished_at"] is not None


def test_a_worker_named_after_a_dotted_host_is_listed(system: System) -> None:
    """The worker id is a token of its heartbeat subject; ``box.local-7`` made that subject
    invalid, and the worker invisible in GET /workers."""
    system.start("dotted", "worker", CONVEYOR_WORKER_ID="box.local-7")
    try:
        deadline = time.monotonic() + 20
        while True:
            ids = [w["id"] for w in system.http.get("/api/v1/workers").json()["items"]]
            if "box-local-7" in ids:
                break
            assert time.monotonic() < deadline, f"the dotted worker never showed up: {ids}"
            time.sleep(0.2)
        job = system.submit("sleep", payload={"seconds": 0.2})
        assert system.wait_for(job["id"], "completed", timeout=15)["status"] == "completed"
    finally:
        assert system.stop("dotted") == 0
