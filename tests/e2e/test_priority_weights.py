"""Weighted priority (``CONVEYOR_PRIORITY_WEIGHTS=high=4,regular=1``): under a flood of high
jobs, regular jobs queued behind it still get their share of the starts, about one in five,
instead of waiting for the flood to end as strict priority makes them (issue 11).

Two workers of 4 slots; 400 high ``sleep`` jobs of 50 ms queued, then 40 regular ones. At the
weights' share the regular jobs are all started within the first ~200 starts, so at least a
hundred high jobs start after the last regular one; with strict priority none does (checked:
this test fails with the setting unset, 0 high jobs after the last regular one)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest

from support.invariants import check_invariants
from support.system import System

pytestmark = pytest.mark.e2e

HIGH = 400
REGULAR = 40
SLEEP = {"type": "sleep", "payload": {"seconds": 0.05, "steps": 1}}


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    env = {"CONVEYOR_PRIORITY_WEIGHTS": "high=4,regular=1"}
    with System(nats_url, database_url, tmp_path_factory.mktemp("logs"), env=env) as s:
        yield s


def batch(system: System, n: int, priority: str) -> list[str]:
    answer = system.http.post(
        "/api/v1/jobs/batch", json={"jobs": [{**SLEEP, "priority": priority}] * n}
    )
    assert answer.status_code == 201, answer.text
    return [j["id"] for j in answer.json()["items"]]


def started(system: System, priority: str) -> dict[str, Any]:
    items = system.http.get(
        "/api/v1/jobs", params={"limit": 500, "priority": priority, "type": "sleep"}
    ).json()["items"]
    return {j["id"]: datetime.fromisoformat(j["started_at"]) for j in items}


def test_regular_jobs_progress_under_a_flood_of_high_ones(system: System) -> None:
    high = [job for _ in range(HIGH // 100) for job in batch(system, 100, "high")]
    regular = batch(system, REGULAR, "regular")

    check_invariants(system, high + regular, timeout=120)
    high_starts, regular_starts = started(system, "high"), started(system, "regular")
    last_regular = max(regular_starts[r] for r in regular)
    behind = sum(high_starts[h] > last_regular for h in high)
    assert behind >= 100, f"only {behind} high jobs started after the last regular one"
    ahead = sum(high_starts[h] <= last_regular for h in high)
    share = REGULAR / (REGULAR + ahead)
    assert 0.1 <= share <= 0.4, f"regular jobs had {share:.0%} of the starts while both queued"
