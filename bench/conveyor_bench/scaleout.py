"""Scale-out: the same batch of ``sleep`` jobs on 1, 2 and 4 worker processes; the makespan
(first submit until the read model shows the last one completed) against the ideal.

Each worker runs ``scaleout_concurrency`` attempts at once (set lower than the default so
that one process cannot take the whole batch at once), so the ideal makespan is
``ceil(jobs / (workers x concurrency)) x seconds``.
"""

from __future__ import annotations

import math
import time
from typing import Any

import httpx

from conveyor_bench.harness import Cluster, Scale, Services
from conveyor_bench.stats import spread
from conveyor_bench.throughput import completed


def one_run(scale: Scale, workers: int) -> float:
    env = {"CONVEYOR_CONCURRENCY": str(scale.scaleout_concurrency)}
    with (
        Cluster("scaleout") as cluster,
        Services(cluster, workers=workers, worker_env=env) as services,
        httpx.Client(base_url=services.api_url, timeout=30) as http,
    ):
        payload = {"seconds": scale.scaleout_sleep_s, "steps": 1}
        body = {"jobs": [{"type": "sleep", "payload": payload}] * scale.scaleout_jobs}
        started = time.monotonic()
        http.post("/api/v1/jobs/batch", json=body).raise_for_status()
        deadline = started + 120
        while completed(http) < scale.scaleout_jobs:
            if time.monotonic() > deadline:
                raise TimeoutError("scale-out jobs did not complete in 120 s")
            time.sleep(0.05)
        return time.monotonic() - started


def run(scale: Scale) -> dict[str, Any]:
    results: dict[str, Any] = {
        "jobs": scale.scaleout_jobs,
        "sleep_s": scale.scaleout_sleep_s,
        "concurrency_per_worker": scale.scaleout_concurrency,
        "workers": {},
    }
    for workers in scale.scaleout_workers:
        rounds = math.ceil(scale.scaleout_jobs / (workers * scale.scaleout_concurrency))
        ideal = rounds * scale.scaleout_sleep_s
        makespans = spread([one_run(scale, workers) for _ in range(scale.repeats)], 2)
        results["workers"][str(workers)] = {
            "ideal_s": ideal,
            "makespan_s": makespans,
            "vs_ideal": round(makespans["median"] / ideal, 3),
        }
    return results
