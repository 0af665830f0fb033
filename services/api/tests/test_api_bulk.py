"""``POST /api/v1/jobs/bulk`` (conveyor_api.bulk) over a fake service: the body's rules (422s
naming the field), the caps, duplicate ids, per-job refusals, an unreachable log, the bound on
concurrent calls, and the dry run judged with ``decide``. The real API is in
tests/browser/test_dashboard_ops.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from conveyor_api import bulk, problems
from conveyor_api.audit import Origin
from conveyor_bus import BusUnavailable
from conveyor_db import JobFilter, Page
from conveyor_events import InvalidTransition, JobNotFound, JobState

pytestmark = pytest.mark.unit

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def job(n: int, status: str) -> JobState:
    return JobState(
        id=f"01JOB{n:021d}",
        type="noop",
        priority="regular",
        payload={},
        status=status,  # type: ignore[arg-type]
        created_at=NOW,
        updated_at=NOW,
    )


class FakeReads:
    def __init__(self, jobs: dict[str, JobState]) -> None:
        self.jobs = jobs

    async def get(self, job_id: str) -> JobState | None:
        return self.jobs.get(job_id)


class FakeService:
    """What bulk.py calls: list_jobs (paged, newest first), stop/restart/delete, reads.get."""

    def __init__(self, jobs: list[JobState]) -> None:
        self.jobs = {j.id: j for j in jobs}
        self.reads = FakeReads(self.jobs)
        self.calls: list[tuple[str, str, str]] = []
        self.origins: dict[str, Origin] = {}
        self.in_flight = 0
        self.most_in_flight = 0
        self.away_after: int | None = None

    async def list_jobs(self, flt: JobFilter, limit: int, cursor: str | None) -> Page:
        ids = sorted(
            (i for i, j in self.jobs.items() if not flt.statuses or j.status in flt.statuses),
            reverse=True,
        )
        if cursor:
            ids = [i for i in ids if i < cursor]
        items = [self.jobs[i] for i in ids[:limit]]
        return Page(items, items[-1].id if len(ids) > limit else None)

    async def _act(self, action: str, job_id: str, actor: str, allowed: set[str]) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)
            if self.away_after is not None and len(self.calls) >= self.away_after:
                raise BusUnavailable("timeout")
            self.calls.append((action, job_id, actor))
            found = self.jobs.get(job_id)
            if found is None:
                raise JobNotFound(f"job {job_id} not found")
            if found.status not in allowed:
                raise InvalidTransition(f"cannot {action} a {found.status} job")
        finally:
            self.in_flight -= 1

    async def stop(self, job_id: str, who: Origin) -> None:
        self.origins[job_id] = who
        await self._act("stop", job_id, who["actor"], {"pending", "running"})

    async def restart(self, job_id: str, who: Origin) -> None:
        self.origins[job_id] = who
        await self._act("restart", job_id, who["actor"], {"failed", "stopped"})

    async def delete(self, job_id: str, who: Origin) -> None:
        self.origins[job_id] = who
        await self._act("delete", job_id, who["actor"], {"completed", "failed", "stopped"})


async def post(service: FakeService, body: Any) -> httpx.Response:
    app = FastAPI()
    problems.install(app)
    app.include_router(bulk.router, prefix="/api/v1")
    app.state.service = service
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        return await http.post("/api/v1/jobs/bulk", json=body)


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"action": "restart"}, "body"),
        ({"action": "restart", "ids": [], "filter": {}}, "body"),
        ({"action": "retry", "ids": ["x"]}, "action"),
        ({"action": "stop", "filter": {"status": ["done"]}}, "filter.status.0"),
        ({"action": "stop", "filter": {"state": "failed"}}, "filter.state"),
        ({"action": "stop", "filter": {"priority": "low"}}, "filter.priority"),
        ({"action": "stop", "ids": ["x"] * (bulk.MAX_IDS + 1)}, "ids"),
        ({"action": "stop", "ids": [""]}, "ids.0"),
        ({"action": "stop", "ids": ["x"], "dry_run": "yes"}, "dry_run"),
    ],
)
async def test_a_bad_body_is_a_422_naming_the_field(body: dict[str, Any], field: str) -> None:
    response = await post(FakeService([]), body)
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in response.json()["errors"]], response.json()


async def test_ids_each_acted_on_or_refused_with_the_reason() -> None:
    service = FakeService([job(1, "failed"), job(2, "completed"), job(3, "stopped")])
    ids = [job(1, "").id, job(2, "").id, job(3, "").id, job(1, "").id, "01NOSUCHJOB"]
    out = (await post(service, {"action": "restart", "ids": ids})).json()
    assert out["matched"] == 4  # the repeated id once
    assert out["acted"] == 2
    assert out["refused"] == [
        {"id": job(2, "").id, "reason": "cannot restart a completed job"},
        {"id": "01NOSUCHJOB", "reason": "job 01NOSUCHJOB not found"},
    ]
    assert sorted(c[1] for c in service.calls) == sorted([*ids[:3], "01NOSUCHJOB"])
    assert {c[2] for c in service.calls} == {"user:anonymous"}


async def test_each_job_records_the_reason_and_request_like_a_single_action() -> None:
    service = FakeService([job(1, "failed"), job(2, "stopped")])
    ids = [job(1, "").id, job(2, "").id]
    body = {"action": "restart", "ids": ids, "reason": "  after the fix of ticket 12  "}
    out = (await post(service, body)).json()
    assert out["acted"] == 2, out
    assert {o["reason"] for o in service.origins.values()} == {"after the fix of ticket 12"}
    assert {o["client_address"] for o in service.origins.values()} == {"127.0.0.1"}
    assert set(service.origins) == set(ids)


async def test_a_reason_a_single_action_refuses_is_refused_in_bulk() -> None:
    service = FakeService([job(1, "failed")])
    body = {"action": "restart", "ids": [job(1, "").id], "reason": "two\x00words"}
    response = await post(service, body)
    assert response.status_code == 422, response.text
    assert "reason" in [e["field"] for e in response.json()["errors"]]
    assert service.calls == []


async def test_a_filter_selects_like_the_list_and_is_capped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    jobs = [job(n, "failed" if n % 2 else "completed") for n in range(1, 31)]
    service = FakeService(jobs)
    monkeypatch.setattr(bulk, "PAGE", 4)
    out = (await post(service, {"action": "delete", "filter": {"status": ["failed"]}})).json()
    assert (out["matched"], out["acted"], out["refused"]) == (15, 15, [])
    monkeypatch.setattr(bulk, "MAX_MATCHED", 14)
    service = FakeService(jobs)
    response = await post(service, {"action": "delete", "filter": {"status": ["completed"]}})
    assert response.status_code == 422
    assert response.json()["errors"][0]["field"] == "filter"
    assert "more than 14 jobs" in response.json()["detail"]
    assert service.calls == []  # nothing done


async def test_a_dry_run_writes_nothing_and_judges_each_job_with_decide() -> None:
    service = FakeService([job(1, "failed"), job(2, "running"), job(3, "pending")])
    out = (await post(service, {"action": "stop", "filter": {}, "dry_run": True})).json()
    assert out["dry_run"] is True
    assert (out["matched"], out["acted"]) == (3, 2)
    assert [r["id"] for r in out["refused"]] == [job(1, "").id]
    assert service.calls == []


WHO = Origin(actor="user:a", reason=None, request_id=None, client_address=None)


async def test_at_most_concurrency_at_once_and_a_lost_log_stops_the_rest() -> None:
    service = FakeService([job(n, "pending") for n in range(500)])
    acted, refused = await bulk.act_on(list(service.jobs), lambda i: service.stop(i, WHO))
    assert (acted, refused) == (500, [])
    assert 1 < service.most_in_flight <= bulk.CONCURRENCY

    service = FakeService([job(n, "pending") for n in range(500)])
    service.away_after = 100
    acted, refused = await bulk.act_on(list(service.jobs), lambda i: service.stop(i, WHO))
    assert acted == 100
    assert len(refused) == 400
    assert len(service.calls) == 100
    reasons = {r.reason.split(":")[0] for r in refused}
    assert reasons <= {"the event log (NATS JetStream) is unavailable", "not tried"}
