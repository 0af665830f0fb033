"""OpenTelemetry spans, exported over OTLP/HTTP to a receiver in this process (issue 12,
Observability): a job submitted through the real api with a ``traceparent`` header is one
trace, the api's request span a child of the header's parent, its publish span inside the
request, and the worker's run span a child of the publish (joined by the ``traceparent`` in
the job's NATS headers), the worker's log line on the same trace. With no ``OTEL_*`` variable
no SDK is loaded and nothing is exported (every other end-to-end test runs so too)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator

import pytest

from support.otlp import Received, Receiver
from support.system import System

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    with Receiver() as r:
        yield r


@pytest.fixture(scope="module")
def system(
    receiver: Receiver, nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: a span is sent soon after it ends
        "CONVEYOR_LOG_FORMAT": "json",
    }
    with System(
        nats_url, database_url, tmp_path_factory.mktemp("otel-logs"), workers=1, env=env
    ) as s:
        yield s


def one(spans: list[Received], **fields: str) -> Received:
    found = [s for s in spans if all(getattr(s, k) == v for k, v in fields.items())]
    assert len(found) == 1, (fields, spans)
    return found[0]


def test_the_request_publish_and_run_spans_are_one_trace(
    system: System, receiver: Receiver
) -> None:
    trace_id, caller = os.urandom(16).hex(), os.urandom(8).hex()
    response = system.http.post(
        "/api/v1/jobs", json={"type": "noop"}, headers={"traceparent": f"00-{trace_id}-{caller}-01"}
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    system.wait_for(job_id, "completed", timeout=10)

    def complete(spans: list[Received]) -> bool:
        return {"SPAN_KIND_SERVER", "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"} <= {
            s.kind for s in spans if s.trace_id == trace_id
        }

    spans = [s for s in receiver.wait_for(complete) if s.trace_id == trace_id]
    request = one(spans, kind="SPAN_KIND_SERVER")
    assert (request.service, request.name, request.parent_id) == (
        "conveyor-api",
        "POST /api/v1/jobs",
        caller,
    )
    assert request.attributes["http.response.status_code"] == 201
    assert request.attributes["http.route"] == "/api/v1/jobs"
    publish = one(spans, kind="SPAN_KIND_PRODUCER")
    assert (publish.service, publish.parent_id) == ("conveyor-api", request.span_id)
    assert publish.attributes["conveyor.job_id"] == job_id
    assert publish.attributes["messaging.system"] == "nats"
    run = one(spans, kind="SPAN_KIND_CONSUMER")
    assert (run.service, run.parent_id) == ("conveyor-worker", publish.span_id)
    assert run.attributes["conveyor.job_id"] == job_id
    assert run.attributes["conveyor.attempt"] == 1
    assert not any(s.error for s in spans)

    lines = [json.loads(x) for x in system.log("worker-1").splitlines() if x.startswith("{")]
    mine = [x for x in lines if x.get("job_id") == job_id]
    assert mine and all(x["trace_id"] == trace_id for x in mine), mine


def test_a_request_without_traceparent_starts_its_own_trace(
    system: System, receiver: Receiver
) -> None:
    job_id = system.submit("noop")["id"]
    response = system.http.get(f"/api/v1/jobs/{job_id}/events")
    assert response.status_code == 200
    name = "GET /api/v1/jobs/{job_id}/events"  # the route's template, not the job's id
    request = one(receiver.wait_for(lambda got: any(s.name == name for s in got)), name=name)
    assert request.parent_id == "" and len(request.trace_id) == 32
    assert request.attributes["http.route"] == "/api/v1/jobs/{job_id}/events"
    assert request.attributes["url.path"] == f"/api/v1/jobs/{job_id}/events"


OFF = """
import sys
from conveyor_bus import spans
assert spans.configure("conveyor-api", {}) is False
with spans.span("x", "server", root=True) as s:
    assert s.traceparent is not None and s.traceparent.startswith("00-")
print(sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")))
"""


def test_without_otel_variables_no_sdk_is_loaded() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    ran = subprocess.run(
        [sys.executable, "-c", OFF], env=env, capture_output=True, text=True, timeout=60
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.strip() == "[]"


def test_a_setting_spans_cannot_follow_stops_the_start() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "conveyor_api.main"],
        env={**os.environ, "OTEL_TRACES_EXPORTER": "jaeger"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == 1, ran.stderr
    assert "conveyor api: OTEL_TRACES_EXPORTER='jaeger': jaeger is not an exporter" in ran.stderr
