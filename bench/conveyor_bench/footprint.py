"""Footprint: resident memory of each service process when idle, after start-up and after
a short burst of work (caches warm, every code path imported)."""

from __future__ import annotations

import time
from typing import Any

import httpx

from conveyor_bench.harness import Cluster, Scale, Services, wait_until
from conveyor_bench.stats import spread
from conveyor_bench.throughput import completed

BURST = 200


def one_run() -> dict[str, float]:
    with (
        Cluster("footprint") as cluster,
        Services(cluster) as services,
        httpx.Client(base_url=services.api_url, timeout=30) as http,
    ):
        body = {"jobs": [{"type": "noop"}] * BURST}
        http.post("/api/v1/jobs/batch", json=body).raise_for_status()
        wait_until(lambda: completed(http) == BURST, 60, "the burst to complete")
        time.sleep(3.0)  # idle again
        return services.rss_mb()


def run(scale: Scale) -> dict[str, Any]:
    runs = [one_run() for _ in range(scale.repeats)]
    return {
        "rss_mb": {name: spread([r[name] for r in runs]) for name in runs[0]},
        "after_jobs": BURST,
    }
