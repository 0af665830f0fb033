"""The Grafana dashboard in deploy/grafana: valid JSON, every panel a Prometheus query of
``conveyor_`` metrics (that each one exists is checked against the running services in
tests/e2e/test_metrics.py)."""

from __future__ import annotations

import json
import re
from pathlib import Path

DASHBOARD = Path(__file__).parents[2] / "deploy" / "grafana" / "conveyor.json"


def test_the_dashboard_is_json_with_a_query_in_every_panel() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] == "conveyor" and dashboard["panels"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            metrics = re.findall(r"\bconveyor_[a-z_]+\b", target["expr"])
            assert metrics, target["expr"]
            assert "job_id" not in target["expr"]
