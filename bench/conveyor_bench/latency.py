"""Latency at idle: jobs submitted one at a time, 20 ms apart, to an idle system.

- submit → started: ``started_at - created_at`` of each job (both stamped into the log, by
  the api and by the worker);
- submit → ``job.completed`` on a websocket: from just before ``POST /jobs`` is sent until
  the notifier's frame arrives at a client connected to the firehose.
"""

from __future__ import annotations

import asyncio
import json
import time
from datetime import datetime
from typing import Any

import httpx
import websockets

from conveyor_bench.harness import Cluster, Scale, Services
from conveyor_bench.stats import latencies, latency_runs

WARM_UP = 20


async def _measure(services: Services, jobs: int, gap_s: float) -> dict[str, Any]:
    completed_at: dict[str, float] = {}
    everything_seen = asyncio.Event()
    expected: set[str] = set()

    async def listen(ws: websockets.ClientConnection) -> None:
        async for frame in ws:
            event = json.loads(frame)
            if event["type"] == "job.completed":
                completed_at[event["job_id"]] = time.time()
                if expected and expected <= completed_at.keys():
                    everything_seen.set()

    async with (
        websockets.connect(services.ws_url, max_size=None) as ws,
        httpx.AsyncClient(base_url=services.api_url, timeout=10) as http,
    ):
        listener = asyncio.create_task(listen(ws))
        for _ in range(WARM_UP):
            (await http.post("/api/v1/jobs", json={"type": "noop"})).raise_for_status()
            await asyncio.sleep(gap_s)
        submitted: dict[str, float] = {}
        for _ in range(jobs):
            sent = time.time()
            response = await http.post("/api/v1/jobs", json={"type": "noop"})
            response.raise_for_status()
            submitted[response.json()["id"]] = sent
            await asyncio.sleep(max(0.0, gap_s - (time.time() - sent)))
        expected.update(submitted)
        if not expected <= completed_at.keys():
            await asyncio.wait_for(everything_seen.wait(), 60)
        listener.cancel()
        started_ms = []
        for job_id in submitted:
            job = (await http.get(f"/api/v1/jobs/{job_id}")).json()
            started = datetime.fromisoformat(job["started_at"])
            created = datetime.fromisoformat(job["created_at"])
            started_ms.append((started - created).total_seconds() * 1000)
    completed_ms = [(completed_at[j] - sent) * 1000 for j, sent in submitted.items()]
    return {"started_ms": latencies(started_ms), "ws_completed_ms": latencies(completed_ms)}


def one_run(scale: Scale) -> dict[str, Any]:
    with Cluster("latency") as cluster, Services(cluster) as services:
        time.sleep(1.0)  # let start-up settle: this is latency at idle
        return asyncio.run(_measure(services, scale.latency_jobs, scale.latency_gap_s))


def run(scale: Scale) -> dict[str, Any]:
    runs = [one_run(scale) for _ in range(scale.repeats)]
    return {
        "jobs": scale.latency_jobs,
        "gap_ms": scale.latency_gap_s * 1000,
        "started_ms": latency_runs([r["started_ms"] for r in runs]),
        "ws_completed_ms": latency_runs([r["ws_completed_ms"] for r in runs]),
    }
