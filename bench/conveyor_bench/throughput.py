"""Throughput: ``noop`` jobs submitted through the batch endpoint as fast as the client
allows; jobs/s from the first submit until the read model shows the last one completed."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx

from conveyor_bench.harness import Cluster, Scale, Services
from conveyor_bench.stats import spread

BATCH = 1_000
"""Jobs per ``POST /jobs/batch`` (the endpoint's limit)."""
IN_FLIGHT = 4
"""Batch requests the client keeps in flight."""


async def _submit_all(api_url: str, jobs: int) -> None:
    sizes = [min(BATCH, jobs - start) for start in range(0, jobs, BATCH)]
    gate = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(base_url=api_url, timeout=60) as http:

        async def one(size: int) -> None:
            async with gate:
                body = {"jobs": [{"type": "noop"}] * size}
                response = await http.post("/api/v1/jobs/batch", json=body)
                if response.status_code != 201:
                    raise RuntimeError(f"batch refused: {response.status_code} {response.text}")

        await asyncio.gather(*(one(size) for size in sizes))


def completed(http: httpx.Client) -> int:
    counts: dict[str, int] = http.get("/api/v1/stats").json()["by_status"]
    return counts["completed"]


def one_run(scale: Scale) -> tuple[float, dict[str, float]]:
    """Jobs/s, and the CPU milliseconds each process spent per job."""
    with (
        Cluster("throughput") as cluster,
        Services(cluster) as services,
        httpx.Client(base_url=services.api_url, timeout=30) as http,
    ):
        cpu_before = services.cpu_s()
        started = time.monotonic()
        asyncio.run(_submit_all(services.api_url, scale.throughput_jobs))
        deadline = started + max(120.0, scale.throughput_jobs / 100)
        while (done := completed(http)) < scale.throughput_jobs:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{done} of {scale.throughput_jobs} jobs completed")
            time.sleep(0.1)
        rate = scale.throughput_jobs / (time.monotonic() - started)
        cpu = {
            name: round((used - cpu_before[name]) * 1000 / scale.throughput_jobs, 3)
            for name, used in services.cpu_s().items()
        }
        return rate, cpu


def run(scale: Scale) -> dict[str, Any]:
    runs = [one_run(scale) for _ in range(scale.repeats)]
    cpu = {name: spread([c[name] for _, c in runs], 3)["median"] for name in runs[0][1]}
    return {
        "jobs": scale.throughput_jobs,
        "jobs_per_s": spread([rate for rate, _ in runs]),
        "cpu_ms_per_job": {**cpu, "total": round(sum(cpu.values()), 3)},
    }
