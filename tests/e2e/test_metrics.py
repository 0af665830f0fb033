"""Every service exposes the SPEC §5 metrics after a small workload (issue 12, Observability).

Names start with ``conveyor_``, no series is labelled by job id, and the projector's lag is
one metric, exposed once (by the projector, which measures it).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.system import System

pytestmark = pytest.mark.e2e

SPEC_METRICS = {
    "api": {
        "conveyor_jobs_submitted",
        "conveyor_queue_depth",
        "conveyor_api_requests",
        "conveyor_api_request_seconds",
    },
    "worker-1": {
        "conveyor_jobs_started",
        "conveyor_jobs_completed",
        "conveyor_jobs_failed",
        "conveyor_job_run_seconds",
        "conveyor_job_queue_wait_seconds",
        "conveyor_worker_running",
    },
    "projector": {"conveyor_projector_lag_events", "conveyor_projector_events_applied"},
    "notifier": {"conveyor_ws_connections"},
}
"""Per service, what SPEC §5 asks of it: jobs submitted, completed and failed by type and
priority, run time and queue wait histograms, queue depth, projector lag, websockets."""


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    logs = tmp_path_factory.mktemp("logs")
    with System(nats_url, database_url, logs, workers=1, metrics=True) as s:
        yield s


def url(system: System, service: str) -> str:
    if service == "api":
        return f"{system.api_url}/metrics"
    return f"http://127.0.0.1:{system.metrics_ports[service]}/metrics"


def families(system: System, service: str) -> dict[str, set[str]]:
    """Each metric family with samples, and the labels its samples carry."""
    text = httpx.get(url(system, service), timeout=5).text
    found: dict[str, set[str]] = {}
    for family in text_string_to_metric_families(text):
        if family.samples:
            labels = found.setdefault(family.name, set())
            for sample in family.samples:
                labels.update(sample.labels)
    return found


def test_every_service_exposes_the_spec_metrics_after_a_workload(system: System) -> None:
    jobs = [system.submit("noop") for _ in range(3)]
    jobs.append(system.submit("sleep", payload={"seconds": 0, "steps": 1, "fail": True}))
    jobs.append(system.submit("noop", priority="high"))
    for job in jobs:
        system.wait_for(job["id"], "completed", "failed", timeout=15)
    deadline = time.monotonic() + 10
    while True:  # the api measures the queue depth every few seconds
        exposed = {service: families(system, service) for service in SPEC_METRICS}
        missing = {s: sorted(want - exposed[s].keys()) for s, want in SPEC_METRICS.items()}
        if not any(missing.values()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not any(missing.values()), missing
    assert exposed["worker-1"]["conveyor_jobs_failed"] >= {"type", "priority"}
    assert exposed["worker-1"]["conveyor_jobs_completed"] >= {"type", "priority"}
    assert exposed["api"]["conveyor_jobs_submitted"] >= {"type", "priority"}

    lag_metrics = set()
    for service, found in exposed.items():
        for name, labels in found.items():
            assert name.startswith("conveyor_"), (service, name)
            assert not labels & {"job_id", "job", "id"}, (service, name, labels)
            if "lag" in name:
                lag_metrics.add((service, name))
    assert lag_metrics == {("projector", "conveyor_projector_lag_events")}


DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "conveyor.json"
_NAME = re.compile(r"\bconveyor_[a-z_]+\b")


def exposed_names(system: System, service: str) -> set[str]:
    """Every series name a service can expose: its samples', and those of its families
    with no sample yet (a labelled metric before its first use)."""
    text = httpx.get(url(system, service), timeout=5).text
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}
        names.update([family.name, *(family.name + s for s in suffixes.get(family.type, []))])
    return names


def test_the_grafana_dashboard_names_only_metrics_that_exist(system: System) -> None:
    exist = set().union(*(exposed_names(system, service) for service in SPEC_METRICS))
    dashboard = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]
    named = {name for expr in exprs for name in _NAME.findall(expr)}
    assert named and named <= exist, sorted(named - exist)
    for spec_metrics in SPEC_METRICS.values():  # the dashboard shows each SPEC metric
        shown = {n.removesuffix("_total").removesuffix("_bucket") for n in named}
        assert spec_metrics - shown <= {"conveyor_projector_events_applied"}, spec_metrics - shown
