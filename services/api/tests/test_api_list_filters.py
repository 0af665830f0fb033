"""``GET /api/v1/jobs``'s filters as the route parses them, over a fake service: worker, the
created/finished time ranges as RFC 3339 times with an offset (a 422 naming the parameter
otherwise), and what reaches the read model. The SQL is tested on PostgreSQL in
tests/integration/test_job_filters.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import httpx
import pytest
from fastapi import FastAPI

from conveyor_api import problems, routes
from conveyor_db import JobFilter, Page

pytestmark = pytest.mark.unit


class FakeService:
    def __init__(self) -> None:
        self.filters: list[JobFilter] = []

    async def list_jobs(self, flt: JobFilter, limit: int, cursor: str | None) -> Page:
        self.filters.append(flt)
        return Page([], None)


APP = FastAPI()
problems.install(APP)
APP.include_router(routes.router, prefix="/api/v1")


async def get(service: FakeService, params: dict[str, str]) -> httpx.Response:
    APP.state.service = service
    transport = httpx.ASGITransport(app=APP)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.get("/api/v1/jobs", params=params)


async def test_worker_and_time_ranges_reach_the_read_model() -> None:
    service = FakeService()
    response = await get(
        service,
        {
            "worker": "worker-7",
            "created_after": "2026-12-01T10:00:00Z",
            "created_before": "2026-12-02T10:00:00.250+02:00",
            "finished_after": "2026-12-01t10:00:00z",
            "finished_before": "2026-12-03 10:00:00+00:00",
            "status": "completed",
        },
    )
    assert response.status_code == 200, response.text
    [flt] = service.filters
    assert flt.worker == "worker-7"
    assert flt.statuses == ["completed"]
    assert flt.created_after == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert flt.created_before == datetime(
        2026, 12, 2, 10, 0, 0, 250_000, tzinfo=timezone(timedelta(hours=2))
    )
    assert flt.finished_after == datetime(2026, 12, 1, 10, tzinfo=UTC)
    assert flt.finished_before == datetime(2026, 12, 3, 10, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    [
        "yesterday",
        "2026-12-01",  # a date is not an instant
        "2026-12-01T10:00:00",  # no offset: whose 10 o'clock?
        "1733000000",
        "2026-13-01T10:00:00Z",
        "2026-12-01T10:00Z",  # RFC 3339 needs the seconds
        "",
    ],
)
async def test_a_time_that_is_not_rfc3339_is_422_naming_the_parameter(value: str) -> None:
    service = FakeService()
    for name in ("created_after", "created_before", "finished_after", "finished_before"):
        response = await get(service, {name: value})
        assert response.status_code == 422, response.text
        body = response.json()
        assert body["detail"].startswith(f"{name}: ")
        assert "RFC 3339" in body["detail"]
        assert body["errors"][0]["field"] == name
    assert service.filters == []


async def test_a_worker_with_a_control_character_is_422() -> None:
    response = await get(FakeService(), {"worker": "w\x01"})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "worker"
