"""A request's trace id reaches the worker's log lines (issue 12, Observability).

The API takes the request's W3C ``traceparent``, writes a child of it into the headers of
the job's submission (and of its timer, whose due the server fires with the timer's
headers); the worker reads it off the delivery and logs the attempt's lines, as JSON with
``CONVEYOR_LOG_FORMAT=json``, with the same trace id, the job id and the attempt.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from support.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    logs = tmp_path_factory.mktemp("logs")
    env = {"CONVEYOR_LOG_FORMAT": "json"}
    with System(nats_url, database_url, logs, workers=2, env=env) as s:
        yield s


def json_lines(system: System, *names: str) -> list[dict[str, Any]]:
    found = []
    for name in names:
        for line in system.log(name).splitlines():
            if line.startswith("{"):
                found.append(json.loads(line))
    return found


def worker_lines(system: System, job_id: str, timeout: float = 5) -> list[dict[str, Any]]:
    """The workers' JSON lines about ``job_id``, once its outcome's line is written."""
    deadline = time.monotonic() + timeout
    while True:
        lines = [x for x in json_lines(system, "worker-1", "worker-2") if x.get("job_id") == job_id]
        if any("job.completed" in x["msg"] for x in lines) or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


def submit(system: System, traceparent: str, **body: Any) -> dict[str, Any]:
    response = system.http.post(
        "/api/v1/jobs",
        json={"type": "noop", **body},
        headers={"traceparent": traceparent, "X-Request-Id": "req-trace-test"},
    )
    assert response.status_code == 201, response.text
    assert response.headers["x-request-id"] == "req-trace-test"
    job: dict[str, Any] = response.json()
    return job


def new_traceparent() -> tuple[str, str]:
    trace_id = os.urandom(16).hex()
    return trace_id, f"00-{trace_id}-{os.urandom(8).hex()}-01"


def test_every_line_is_json_with_its_level_logger_and_time(system: System) -> None:
    for name in ("api", "projector", "notifier", "worker-1"):
        lines = [x for x in system.log(name).splitlines() if x.strip()]
        assert lines, name
        for line in lines:
            parsed = json.loads(line)
            assert {"ts", "level", "logger", "msg"} <= parsed.keys(), (name, line)


def test_a_request_trace_id_reaches_the_worker_log_line(system: System) -> None:
    trace_id, traceparent = new_traceparent()
    job = submit(system, traceparent)
    system.wait_for(job["id"], "completed", timeout=10)
    lines = worker_lines(system, job["id"])
    assert [x["msg"] for x in lines] == [
        f"attempt 1 of job {job['id']} (noop) started",
        f"attempt 1 of job {job['id']}: job.completed",
    ]
    for line in lines:
        assert line["trace_id"] == trace_id and line["attempt"] == 1, line


def test_the_trace_id_rides_a_delayed_job_timer(system: System) -> None:
    trace_id, traceparent = new_traceparent()
    run_at = datetime.now(UTC) + timedelta(seconds=1)
    job = submit(system, traceparent, run_at=run_at.isoformat())
    system.wait_for(job["id"], "completed", timeout=10)
    lines = worker_lines(system, job["id"])
    assert lines and all(x["trace_id"] == trace_id for x in lines), lines
    assert any("started" in x["msg"] for x in lines)


def test_without_a_traceparent_the_api_starts_a_trace(system: System) -> None:
    job = system.submit("noop")
    system.wait_for(job["id"], "completed", timeout=10)
    lines = worker_lines(system, job["id"])
    assert lines and len({x.get("trace_id") for x in lines}) == 1, lines
    assert len(lines[0]["trace_id"]) == 32


def test_an_invalid_traceparent_starts_a_new_trace(system: System) -> None:
    job = submit(system, "00-not-a-trace-01")
    system.wait_for(job["id"], "completed", timeout=10)
    lines = worker_lines(system, job["id"])
    assert lines and len(lines[0]["trace_id"]) == 32
