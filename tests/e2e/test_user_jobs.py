"""A user's own Python jobs end to end (issue 11): a worker loads tests/e2e/jobs/user_jobs.py
through ``CONVEYOR_JOB_MODULES``, publishes its types, and the API validates submissions of
them against the published schemas without importing the module."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client

from conveyor_bus.types import publish_types
from conveyor_cli.dev.embedded import free_port
from support.system import System

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(120)]

JOBS_DIR = Path(__file__).parent / "jobs"
WORKER = "user-worker"


@pytest.fixture(scope="module")
def marks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("marks")


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory, marks: Path
) -> Iterator[System]:
    env = {"USER_JOBS_MARKS": str(marks)}
    with System(
        nats_url, database_url, tmp_path_factory.mktemp("logs"), workers=0, env=env
    ) as system:
        path = os.pathsep.join(p for p in (str(JOBS_DIR), os.environ.get("PYTHONPATH")) if p)
        system.start_worker(WORKER, CONVEYOR_JOB_MODULES="user_jobs", PYTHONPATH=path)
        wait_served(system, "resize-image")
        yield system


def wait_served(system: System, name: str, timeout: float = 20) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = {t["name"]: t for t in system.http.get("/api/v1/types").json()["items"]}
        if WORKER in found.get(name, {}).get("workers", []):
            served: dict[str, Any] = found[name]
            return served
        time.sleep(0.1)
    raise AssertionError(f"no live worker runs {name}: {system.log(WORKER)[-2000:]}")


def refusal(system: System, body: dict[str, Any]) -> dict[str, Any]:
    response = system.http.post("/api/v1/jobs", json=body)
    assert response.status_code == 422, response.text
    problem: dict[str, Any] = response.json()
    return problem


def test_the_types_list_shows_a_user_type_with_its_schema_defaults_and_worker(
    system: System,
) -> None:
    resize = wait_served(system, "resize-image")
    assert resize["schema"]["properties"]["url"] == {"type": "string"}
    assert resize["schema"]["required"] == ["url"]
    assert resize["defaults"] == {"max_attempts": 3, "timeout_s": 60.0}
    assert resize["description"] == "Resize an image (four tiles, a progress report each)."
    names = {t["name"] for t in system.http.get("/api/v1/types").json()["items"]}
    assert {"noop", "sleep", "flaky-fetch", "charge-card", "crunch"} <= names
    worker = next(w for w in system.http.get("/api/v1/workers").json()["items"])
    assert "resize-image" in worker["types"] and "sleep" in worker["types"]


def test_a_typed_job_runs_with_progress_and_the_types_defaults(system: System) -> None:
    job = system.submit("resize-image", payload={"url": "https://example.com/cat.png"})
    assert job["payload"] == {"url": "https://example.com/cat.png", "width": 800}
    assert (job["max_attempts"], job["timeout_s"]) == (3, 60.0)

    done = system.wait_for(job["id"], "completed")
    assert done["result"] == {"url": "https://example.com/cat.png", "width": 800, "attempt": 1}
    progress = [e["data"] for e in system.events(job["id"]) if e["type"] == "job.progressed"]
    assert progress[-1] == {"progress": 100.0, "message": "tile 4/4", "attempt": 1}


def test_what_a_submission_says_wins_over_the_types_defaults(system: System) -> None:
    job = system.submit("resize-image", payload={"url": "u"}, max_attempts=1, timeout_s=None)
    assert (job["max_attempts"], job["timeout_s"]) == (1, None)


@pytest.mark.parametrize(
    ("body", "field", "says"),
    [
        ({"payload": {"url": "u", "width": "wide"}}, "payload.width", 'not of type "integer"'),
        ({"payload": {"url": "u", "width": 0}}, "payload.width", "less than the minimum of 1"),
        ({"payload": {}}, "payload.url", "required"),
        ({"payload": {"url": "u", "height": 3}}, "payload.height", "not a field"),
    ],
)
def test_a_bad_payload_of_a_user_type_is_refused_by_the_api_naming_the_field(
    system: System, marks: Path, body: dict[str, Any], field: str, says: str
) -> None:
    problem = refusal(system, {"type": "resize-image", **body})
    assert problem["errors"][0]["field"] == field, problem
    assert says in problem["detail"], problem
    api = system.procs["api"].pid
    assert not (marks / str(api)).exists()  # the API never imported the user's module
    assert (marks / str(system.procs[WORKER].pid)).exists()  # the worker did


def test_a_pydantic_payload_is_checked_too(system: System) -> None:
    problem = refusal(system, {"type": "charge-card", "payload": {"card": "12", "cents": 5}})
    assert problem["errors"][0]["field"] == "payload.card", problem


def test_an_unknown_type_is_refused_naming_the_types_live_workers_run(system: System) -> None:
    problem = refusal(system, {"type": "resize-imagee"})
    assert problem["errors"][0]["field"] == "type"
    assert "unknown job type 'resize-imagee'" in problem["detail"]
    assert "resize-image" in problem["detail"] and "CONVEYOR_JOB_MODULES" in problem["detail"]


def test_retry_asks_for_another_attempt_after_its_delay(system: System) -> None:
    job = system.submit("flaky-fetch", payload={"succeed_on": 3, "delay_s": 0.3})
    done = system.wait_for(job["id"], "completed")
    assert done["result"] == {"attempts": 3}
    events = system.events(job["id"])
    failed = [e for e in events if e["type"] == "job.failed"]
    assert [f["data"]["error"]["type"] for f in failed] == ["Retry", "Retry"]
    assert all(f["data"]["retry"] for f in failed)
    assert failed[0]["data"]["error"]["message"] == "upstream busy on attempt 1"
    starts = [e["at"] for e in events if e["type"] == "job.started"]
    fails = [e["at"] for e in failed]
    gaps = [
        (datetime.fromisoformat(s) - datetime.fromisoformat(f)).total_seconds()
        for f, s in zip(fails, starts[1:], strict=True)
    ]
    assert all(g >= 0.29 for g in gaps), gaps  # its own delay, not the worker's backoff


def test_retry_past_the_last_attempt_fails_the_job(system: System) -> None:
    job = system.submit("flaky-fetch", payload={"succeed_on": 9, "delay_s": 0.1})
    failed = system.wait_for(job["id"], "failed")
    assert failed["attempt"] == 3 and failed["error"]["type"] == "Retry"


def test_a_permanent_failure_skips_the_remaining_attempts(system: System) -> None:
    job = system.submit("charge-card", payload={"card": "4242", "cents": 100})
    assert job["max_attempts"] == 5
    failed = system.wait_for(job["id"], "failed")
    assert failed["attempt"] == 1
    assert failed["error"]["type"] == "PermanentFailure"
    assert failed["error"]["message"] == "card 4242 declined"


def test_a_sync_handler_is_stopped_through_ctx_cancelled(system: System, marks: Path) -> None:
    job = system.submit("crunch")
    system.wait_for(job["id"], "running", timeout=10)
    time.sleep(0.3)
    stop = system.http.post(f"/api/v1/jobs/{job['id']}/stop")
    assert stop.status_code == 202, stop.text
    system.wait_for(job["id"], "stopped", timeout=10)
    rounds = int((marks / f"cancelled-{job['id']}").read_text())
    assert rounds >= 1  # the handler saw ctx.cancelled and returned


def test_a_sync_handler_past_its_timeout_is_told_and_fails(system: System, marks: Path) -> None:
    job = system.submit("crunch", timeout_s=0.5)
    failed = system.wait_for(job["id"], "failed", timeout=15)
    assert failed["error"]["type"] == "Timeout"
    assert (marks / f"cancelled-{job['id']}").exists()


async def test_a_type_no_live_worker_runs_is_refused(system: System, nc: Client) -> None:
    """Published once (a worker that is gone), run by nobody now: a job of it would wait
    for nothing, so it is refused, saying why."""
    await publish_types(nc, [{"name": "orphaned-type", "schema": {"type": "object"}}])
    problem = refusal(system, {"type": "orphaned-type"})
    assert problem["errors"][0]["field"] == "type"
    assert "no live worker runs job type 'orphaned-type'" in problem["detail"]
    listed = {t["name"]: t for t in system.http.get("/api/v1/types").json()["items"]}
    assert listed["orphaned-type"]["workers"] == []


def test_an_api_may_queue_types_not_deployed_yet(system: System) -> None:
    """``CONVEYOR_ACCEPT_UNSERVED_TYPES``: a job of a type no worker runs yet is queued
    (pending; the workers that cannot run it hand it back), and its payload is checked as
    an object only."""
    port = free_port()
    system.start("api-open", "api", CONVEYOR_API_PORT=str(port), CONVEYOR_ACCEPT_UNSERVED_TYPES="1")
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as api:
        deadline = time.monotonic() + 20
        while True:
            try:
                if api.get("/readyz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, system.log("api-open")[-2000:]
            time.sleep(0.1)
        queued = api.post("/api/v1/jobs", json={"type": "ships-next-week", "payload": {"a": 1}})
        assert queued.status_code == 201, queued.text
        refused = api.post("/api/v1/jobs", json={"type": "ships-next-week", "payload": [1]})
        assert refused.status_code == 422, refused.text
        known = api.post("/api/v1/jobs", json={"type": "resize-image", "payload": {}})
        assert known.status_code == 422  # a published type's schema still applies
    assert refusal(system, {"type": "ships-next-week"})["errors"][0]["field"] == "type"
    time.sleep(1.0)
    assert system.job(queued.json()["id"]).json()["status"] == "pending"
    system.stop("api-open")
