"""``make bench`` in miniature (``--smoke``): every scenario, the peers included, runs end to
end on tiny sizes, so the benchmark cannot rot. Its figures mean nothing (all scenarios run
at once); what is checked is that each one measured what it should."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.e2e, pytest.mark.long]


@pytest.mark.timeout(420)
def test_every_scenario_of_the_benchmark_runs(tmp_path: Path) -> None:
    out = tmp_path / "smoke.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "bench")}
    for name in ("NATS_URL", "DATABASE_URL"):  # the benchmark starts servers of its own
        env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-m", "conveyor_bench", "--smoke", "--out", str(out)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert done.returncode == 0, done.stderr[-6000:] + done.stdout[-2000:]
    r = json.loads(out.read_text())

    assert r["smoke"] is True
    assert r["throughput"]["jobs_per_s"]["median"] > 0
    assert set(r["peers"]["peers"]) == {"celery", "dramatiq", "taskiq"}
    assert all(p["throughput_jobs_per_s"]["median"] > 0 for p in r["peers"]["peers"].values())
    assert r["throughput_ratio_vs_best_peer"] > 0
    assert r["latency"]["started_ms"]["runs"][0]["n"] == 20
    assert r["latency"]["ws_completed_ms"]["p50"] > 0
    assert set(r["scaleout"]["workers"]) == {"2"}
    assert r["replay"]["events_per_s"]["median"] > 0
    assert "conveyor verify" in r["replay"]["verified"]
    assert r["queries"]["worst_p99_ms"] > 0 and len(r["queries"]["ms"]) >= 10
    assert r["fanout"]["all_clients_got_every_event"] is True
    assert r["fanout"]["slow_disconnects"] == 0
    assert all(v["median"] > 0 for v in r["footprint"]["rss_mb"].values())
    assert {t["target"] for t in r["targets"]} >= {"throughput", "worker idle RSS"}
