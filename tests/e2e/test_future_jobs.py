"""Jobs not yet due never keep due jobs from running (issue 10, defect 4; ADR 0010).

A run not yet due is handed back with a delayed nak, and a handed-back message still counts
as delivered and not acknowledged. With the consumers' old ``max_ack_pending`` of 20,000,
20 batches of far-future jobs stopped every due job of their priority from being delivered,
while the workers churned redeliveries of the held ones every ack wait.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import httpx
import nats
import pytest

from conveyor_bus.topology import api_request
from conveyor_events import names
from support.system import ACK_WAIT_S, System

pytestmark = pytest.mark.e2e

OLD_MAX_ACK_PENDING = 20_000
FUTURE = OLD_MAX_ACK_PENDING + 500


def consumer_state(system: System) -> dict[str, int]:
    async def read() -> dict[str, int]:
        nc = await nats.connect(system.nats_url)
        try:
            info = await api_request(
                nc, f"$JS.API.CONSUMER.INFO.{names.STREAM}.{names.run_consumer('regular')}"
            )
        finally:
            await nc.close()
        return {
            "ack_pending": int(info["num_ack_pending"]),
            "redelivered": int(info["num_redelivered"]),
            "pending": int(info["num_pending"]),
        }

    return asyncio.run(read())


def test_more_future_jobs_than_the_old_ack_limit_leave_due_jobs_running(system: System) -> None:
    run_at = (datetime.now(UTC) + timedelta(days=7)).isoformat()
    with httpx.Client(base_url=system.api_url, timeout=60) as http:
        for start in range(0, FUTURE, 1000):
            jobs = [{"type": "noop", "run_at": run_at}] * min(1000, FUTURE - start)
            response = http.post("/api/v1/jobs/batch", json={"jobs": jobs})
            assert response.status_code == 201, response.text

    # Every future job is delivered once and held: the consumer has no more to hand out.
    deadline = time.monotonic() + 90
    while (state := consumer_state(system))["pending"] > 0 or state["ack_pending"] < FUTURE:
        assert time.monotonic() < deadline, f"the future jobs were not all taken up: {state}"
        time.sleep(0.5)

    due = system.submit("noop")
    done = system.wait_for(due["id"], "completed", timeout=15)
    assert done["attempt"] == 1

    # Held for their whole wait: past several ack waits, no future job came back.
    time.sleep(2 * ACK_WAIT_S)
    state = consumer_state(system)
    assert state["redelivered"] == 0, state
    assert state["ack_pending"] == FUTURE, state
    listed = system.http.get("/api/v1/jobs", params={"status": "pending", "limit": 1}).json()
    assert listed["items"] and listed["items"][0]["run_at"] is not None
