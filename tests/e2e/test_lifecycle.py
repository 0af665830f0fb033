"""The life of a job through the real processes, seen over HTTP and on the websocket."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
import websockets

from support.system import System

pytestmark = pytest.mark.e2e


async def collect(
    url: str, until: str, job_id: str | None = None, since: int | None = None, timeout: float = 20
) -> list[dict[str, Any]]:
    """Frames from the feed until one of type ``until`` (for ``job_id``) arrives."""
    query = "&".join(
        f"{k}={v}" for k, v in {"job_id": job_id, "since": since}.items() if v is not None
    )
    frames: list[dict[str, Any]] = []
    async with websockets.connect(f"{url}?{query}" if query else url) as ws:
        async with asyncio.timeout(timeout):
            async for raw in ws:
                frame = json.loads(raw)
                frames.append(frame)
                if frame["type"] == until and (job_id is None or frame["job_id"] == job_id):
                    return frames
    raise AssertionError("feed closed")


async def test_full_life_seen_in_get_and_on_the_websocket(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 0.6, "steps": 3})
    assert job["status"] == "pending" and job["version"] == 1 and job["attempt"] == 0
    frames = await collect(system.ws_url, "job.completed", job_id=job["id"], since=0)
    types = [f["type"] for f in frames]
    assert types[:2] == ["job.submitted", "job.started"]
    assert types[-1] == "job.completed" and types.count("job.completed") == 1
    progress = [f["data"]["progress"] for f in frames if f["type"] == "job.progressed"]
    assert progress and progress[-1] == 100.0 and progress == sorted(progress)
    seqs = [f["seq"] for f in frames]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert all(f["job_id"] == job["id"] for f in frames)
    assert frames[0]["actor"] == "user:anonymous"
    assert frames[1]["actor"].startswith("worker:")

    done = system.wait_for(job["id"], "completed")
    assert done["progress"] == 100.0 and done["attempt"] == 1
    assert done["result"] == {"slept": 0.6, "steps": 3}
    assert done["started_at"] and done["finished_at"] and done["worker_id"]
    history = system.events(job["id"])
    assert [e["seq"] for e in history] == seqs
    assert done["version"] == len(history)


async def test_live_feed_without_since_gets_new_events(system: System) -> None:
    listener = asyncio.create_task(collect(system.ws_url, "job.completed"))
    await asyncio.sleep(0.3)
    job = system.submit("noop")
    frames = await listener
    mine = [f["type"] for f in frames if f["job_id"] == job["id"]]
    assert mine == ["job.submitted", "job.started", "job.completed"]


async def test_since_resumes_without_gap_or_duplicate(system: System) -> None:
    first = system.submit("noop")
    system.wait_for(first["id"], "completed")
    history = system.events(first["id"])
    middle = history[1]["seq"]
    second = system.submit("sleep", payload={"seconds": 0.3, "steps": 2})
    frames = await collect(system.ws_url, "job.completed", job_id=None, since=middle)
    seqs = [f["seq"] for f in frames]
    assert seqs[0] > middle
    assert seqs == sorted(set(seqs))
    got_first = [f["seq"] for f in frames if f["job_id"] == first["id"]]
    assert got_first == [e["seq"] for e in history if e["seq"] > middle]
    # everything after `middle` up to the last frame, with nothing missing in between
    frames = await collect(system.ws_url, "job.completed", job_id=second["id"], since=0)
    assert [f["seq"] for f in frames] == [e["seq"] for e in system.events(second["id"])]


def test_stop_a_pending_job(system: System) -> None:
    job = system.submit("noop", run_at="2999-01-01T00:00:00Z")
    response = system.http.post(f"/api/v1/jobs/{job['id']}/stop")
    assert response.status_code == 202
    assert response.json()["status"] == "stopped"
    system.wait_for(job["id"], "stopped")
    assert [e["type"] for e in system.events(job["id"])] == ["job.submitted", "job.stopped"]


def test_stop_a_running_job_cancels_it_within_two_seconds(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 30, "steps": 30})
    system.wait_for(job["id"], "running")
    response = system.http.post(f"/api/v1/jobs/{job['id']}/stop")
    assert response.status_code == 202
    assert response.json()["stop_requested"] is True
    stopped = system.wait_for(job["id"], "stopped", timeout=5)
    history = system.events(job["id"])
    types = [e["type"] for e in history]
    assert types[-2:] == ["job.stop_requested", "job.stopped"]
    assert "job.completed" not in types

    asked = datetime.fromisoformat(history[-2]["at"])
    done = datetime.fromisoformat(history[-1]["at"])
    assert (done - asked).total_seconds() < 2
    assert stopped["stop_requested"] is False


def test_restart_a_stopped_job_runs_it_again(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 30, "steps": 30})
    system.wait_for(job["id"], "running")
    system.http.post(f"/api/v1/jobs/{job['id']}/stop")
    system.wait_for(job["id"], "stopped")
    response = system.http.post(f"/api/v1/jobs/{job['id']}/restart")
    assert response.status_code == 202
    assert response.json()["status"] == "pending"
    system.wait_for(job["id"], "running", attempt=2)
    system.http.post(f"/api/v1/jobs/{job['id']}/stop")
    system.wait_for(job["id"], "stopped")


def test_a_failed_job_is_retried_then_fails_and_can_be_restarted(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 0, "steps": 1, "fail": True}, max_attempts=2)
    failed = system.wait_for(job["id"], "failed")
    assert failed["attempt"] == 2
    assert failed["error"]["type"] == "JobFailed"
    failures = [e for e in system.events(job["id"]) if e["type"] == "job.failed"]
    assert [f["data"]["retry"] for f in failures] == [True, False]
    assert failures[0]["data"]["retry_at"] is not None
    assert system.http.post(f"/api/v1/jobs/{job['id']}/restart").status_code == 202
    done = system.wait_for(job["id"], "failed", attempt=4)
    # why four attempts: a handler error, the operator's restart, a handler error again
    assert [(a["attempt"], a["outcome"], a["next_cause"]) for a in done["attempts"]] == [
        (1, "failed", "handler_error"),
        (2, "failed", "operator_restart"),
        (3, "failed", "handler_error"),
        (4, "failed", None),
    ]
    assert all(a["error"]["type"] == "JobFailed" for a in done["attempts"])
    assert all(a["worker_id"] and a["started_at"] <= a["finished_at"] for a in done["attempts"])
    assert done["seq"] == system.events(job["id"])[-1]["seq"]
    assert done["actions"] == ["restart", "delete"]
    row = system.wait_projected(job["id"], "failed")  # the read model keeps them too
    assert (row["attempts"], row["seq"], row["actions"]) == (
        done["attempts"],
        done["seq"],
        done["actions"],
    )


def test_attempts_that_time_out_are_told_from_handler_errors(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 30, "steps": 1}, timeout_s=0.3, max_attempts=2)
    failed = system.wait_for(job["id"], "failed", attempt=2)
    assert [(a["outcome"], a["error"]["type"], a["next_cause"]) for a in failed["attempts"]] == [
        ("failed", "Timeout", "timeout"),
        ("failed", "Timeout", None),
    ]
    causes = [e["data"]["cause"] for e in system.events(job["id"]) if e["type"] == "job.failed"]
    assert causes == ["timeout", "timeout"]
    assert failed["actions"] == ["restart", "delete"]


@pytest.mark.parametrize(
    ("action", "status"),
    [
        ("stop", "completed"),
        ("restart", "completed"),
        ("restart", "running"),
        ("restart", "pending"),
        ("delete", "running"),
        ("delete", "pending"),
    ],
)
def test_forbidden_transitions_answer_409_and_write_nothing(
    system: System, action: str, status: str
) -> None:
    if status == "completed":
        job = system.submit("noop")
        system.wait_for(job["id"], "completed")
    elif status == "running":
        job = system.submit("sleep", payload={"seconds": 30, "steps": 30})
        system.wait_for(job["id"], "running")
    else:
        job = system.submit("noop", run_at="2999-01-01T00:00:00Z")
    before = system.events(job["id"])
    method = "DELETE" if action == "delete" else "POST"
    path = f"/api/v1/jobs/{job['id']}" + ("" if action == "delete" else f"/{action}")
    response = system.http.request(method, path)
    assert response.status_code == 409
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["status"] == 409 and status in problem["detail"]
    after = system.events(job["id"])
    assert [e for e in after if e["type"] not in ("job.progressed",)][: len(before)] == [
        e for e in before if e["type"] not in ("job.progressed",)
    ]
    assert not any(e["actor"] == "user:anonymous" for e in after[len(before) :])
    if status != "completed":
        system.http.post(f"/api/v1/jobs/{job['id']}/stop")


def test_delete_rules(system: System) -> None:
    job = system.submit("noop")
    system.wait_for(job["id"], "completed")
    assert system.http.delete(f"/api/v1/jobs/{job['id']}").status_code == 204
    system.wait_gone(job["id"])
    assert system.job(job["id"]).status_code == 404
    history = system.events(job["id"])
    assert history[-1]["type"] == "job.deleted"
    again = system.http.delete(f"/api/v1/jobs/{job['id']}")
    assert again.status_code == 404
    assert system.http.post(f"/api/v1/jobs/{job['id']}/restart").status_code == 404
    listed = system.http.get("/api/v1/jobs", params={"limit": 500}).json()["items"]
    assert job["id"] not in {j["id"] for j in listed}


def test_high_overtakes_queued_regular_jobs(system: System) -> None:
    """Every slot (2 workers x 4) held by a blocker that runs until stopped; 10 regular jobs
    and then a high one queue behind them. The first slot to free takes the high job: it
    starts before every regular job. The blockers end when the test says (a stop), not after
    a time, so a slow machine cannot free a slot before the queue is in place."""
    blockers = [system.submit("sleep", payload={"seconds": 120, "steps": 1}) for _ in range(8)]
    try:
        for b in blockers:
            system.wait_for(b["id"], "running", timeout=30)
        regular = [system.submit("noop") for _ in range(10)]
        high = system.submit("noop", priority="high")
        stop = system.http.post(f"/api/v1/jobs/{blockers[0]['id']}/stop")
        assert stop.status_code == 202, stop.text
        done = system.wait_for(high["id"], "completed")
    finally:
        for b in blockers:
            system.http.post(f"/api/v1/jobs/{b['id']}/stop")
    started = {j["id"]: system.wait_for(j["id"], "completed")["started_at"] for j in regular}
    assert all(done["started_at"] <= s for s in started.values()), (done, started)


def test_idempotency_key_returns_the_first_job(system: System) -> None:
    headers = {"Idempotency-Key": "order-42-charge"}
    first = system.http.post("/api/v1/jobs", json={"type": "noop"}, headers=headers)
    second = system.http.post("/api/v1/jobs", json={"type": "noop"}, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    assert second.headers["location"] == f"/api/v1/jobs/{first.json()['id']}"


def test_batch_submit_and_list_filters(system: System) -> None:
    response = system.http.post(
        "/api/v1/jobs/batch",
        json={
            "jobs": [
                {"type": "noop", "payload": {}},
                {"type": "sleep", "priority": "high", "payload": {"seconds": 0.1, "steps": 1}},
            ]
        },
    )
    assert response.status_code == 201
    items = response.json()["items"]
    assert [j["type"] for j in items] == ["noop", "sleep"]
    for j in items:
        system.wait_projected(j["id"], "completed")
    high = system.http.get("/api/v1/jobs", params={"priority": "high", "type": "sleep"}).json()
    assert items[1]["id"] in [j["id"] for j in high["items"]]
    assert all(j["priority"] == "high" and j["type"] == "sleep" for j in high["items"])
    by_prefix = system.http.get("/api/v1/jobs", params={"q": items[0]["id"][:20]}).json()
    assert [j["id"] for j in by_prefix["items"]] == [items[0]["id"]]
    page1 = system.http.get("/api/v1/jobs", params={"limit": 1}).json()
    page2 = system.http.get(
        "/api/v1/jobs", params={"limit": 1, "cursor": page1["next_cursor"]}
    ).json()
    assert page1["items"][0]["id"] > page2["items"][0]["id"]


def test_workers_stats_health_metrics(system: System) -> None:
    workers = system.http.get("/api/v1/workers").json()["items"]
    assert {w["id"] for w in workers} >= {"worker-1", "worker-2"}
    assert all(w["concurrency"] == 4 and w["heartbeat_age_s"] < 15 for w in workers)
    stats = system.http.get("/api/v1/stats").json()
    assert set(stats["by_status"]) == {"pending", "running", "completed", "failed", "stopped"}
    assert set(stats["queue_depth"]) == {"high", "regular"}
    assert system.http.get("/healthz").status_code == 200
    assert system.http.get("/readyz").json()["checks"] == {"nats": "ok", "postgres": "ok"}
    metrics = system.http.get("/metrics").text
    assert "conveyor_jobs_submitted_total" in metrics
    assert system.http.get("/docs").status_code == 200
    assert system.http.get("/openapi.json").json()["paths"]["/api/v1/jobs"]


def test_progress_is_coalesced_and_the_last_value_written(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 1.0, "steps": 200})
    system.wait_for(job["id"], "completed")
    progressed = [e for e in system.events(job["id"]) if e["type"] == "job.progressed"]
    # 200 reports over one second, at most one event per 0.25 s (plus the first and the last)
    assert 2 <= len(progressed) <= 7, len(progressed)
    assert progressed[-1]["data"]["progress"] == 100.0
    assert progressed[-1]["data"]["message"] == "step 200/200"


FAR = "2999-01-01T00:00:00Z"


def test_operator_events_record_who_from_where_and_why(system: System) -> None:
    """Auth off: the principal is anonymous; each write's request id (given or made) and
    client address go into its event, with the reason given in the body."""
    created = system.http.post(
        "/api/v1/jobs",
        json={"type": "sleep", "payload": {"seconds": 30}, "run_at": FAR},
        headers={"X-Request-Id": "sub-1"},
    )
    job_id = created.json()["id"]
    assert created.json()["actions"] == ["stop"]
    stop = system.http.post(
        f"/api/v1/jobs/{job_id}/stop",
        json={"reason": "  wrong input file  "},
        headers={"X-Request-Id": "stop-1"},
    )
    assert stop.status_code == 202 and stop.json()["actions"] == ["restart", "delete"]
    restart = system.http.post(f"/api/v1/jobs/{job_id}/restart", json={"reason": "fixed"})
    assert restart.status_code == 202
    system.wait_for(job_id, "running")
    second_stop = system.http.post(f"/api/v1/jobs/{job_id}/stop")  # no body: no reason
    system.wait_for(job_id, "stopped")
    deleted = system.http.request(
        "DELETE", f"/api/v1/jobs/{job_id}", json={"reason": "GDPR request 17"}
    )
    assert deleted.status_code == 204

    events = system.events(job_id)
    by_users = [e for e in events if e["actor"].startswith("user:")]
    audit = [
        (e["type"], e["actor"], e["data"]["reason"], e["data"]["request_id"]) for e in by_users
    ]
    assert audit == [
        ("job.submitted", "user:anonymous", None, "sub-1"),
        ("job.stopped", "user:anonymous", "wrong input file", "stop-1"),
        ("job.restarted", "user:anonymous", "fixed", restart.headers["x-request-id"]),
        ("job.stop_requested", "user:anonymous", None, second_stop.headers["x-request-id"]),
        ("job.deleted", "user:anonymous", "GDPR request 17", deleted.headers["x-request-id"]),
    ]
    assert {e["data"]["client_address"] for e in by_users} == {"127.0.0.1"}
    # the worker's events name the worker and the attempt
    by_workers = [e for e in events if not e["actor"].startswith("user:")]
    assert [e["type"] for e in by_workers] == ["job.started", "job.stopped"]
    worker = by_workers[0]["data"]["worker_id"]
    assert {e["actor"] for e in by_workers} == {f"worker:{worker}"}
    assert [e["data"]["attempt"] for e in by_workers] == [1, 1]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"reason": "x" * 501}, "reason"),
        ({"reason": 7}, "reason"),
        ({"reason": "   "}, "reason"),
        ({"reason": "a\x00b"}, "reason"),
        ({"why": "typo"}, "why"),
        (["reason"], "body"),
    ],
)
def test_a_bad_reason_is_422_naming_the_field_and_writes_nothing(
    system: System, body: object, field: str
) -> None:
    job = system.submit("noop", run_at=FAR)
    for method, action in (("POST", "stop"), ("POST", "restart"), ("DELETE", "")):
        path = f"/api/v1/jobs/{job['id']}" + (f"/{action}" if action else "")
        response = system.http.request(method, path, json=body)
        assert response.status_code == 422, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert [e["type"] for e in system.events(job["id"])] == ["job.submitted"]
    system.http.post(f"/api/v1/jobs/{job['id']}/stop")


def test_as_of_folds_the_history_up_to_that_instant(system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 0, "steps": 1, "fail": True})
    job_id = job["id"]
    system.wait_for(job_id, "failed")
    system.http.post(f"/api/v1/jobs/{job_id}/restart", json={"reason": "retry by hand"})
    system.wait_for(job_id, "failed", attempt=2)
    assert system.http.delete(f"/api/v1/jobs/{job_id}").status_code == 204
    events = system.events(job_id)
    assert system.job(job_id).status_code == 404

    def as_of(instant: datetime) -> Any:
        return system.http.get(f"/api/v1/jobs/{job_id}", params={"as_of": instant.isoformat()})

    instants = [datetime.fromisoformat(e["at"]) for e in events]
    for n, (event, instant) in enumerate(zip(events, instants, strict=True)):
        if event["type"] == "job.deleted":
            gone = as_of(instant)
            assert gone.status_code == 404 and "deleted" in gone.json()["detail"]
            continue
        then = as_of(instant)
        assert then.status_code == 200, then.text
        assert (then.json()["version"], then.json()["seq"]) == (n + 1, event["seq"])
        if n > 0 and instants[n - 1] < instant - timedelta(microseconds=1):
            before = as_of(instant - timedelta(microseconds=1)).json()
            assert before["seq"] == events[n - 1]["seq"]  # the transition not yet made
    before_delete = as_of(instants[-1] - timedelta(microseconds=1)).json()
    assert before_delete["status"] == "failed" and before_delete["actions"] == [
        "restart",
        "delete",
    ]
    assert [a["next_cause"] for a in before_delete["attempts"]] == ["operator_restart", None]
    early = as_of(instants[0] - timedelta(seconds=1))
    assert early.status_code == 404 and "did not exist" in early.json()["detail"]
    # an offset other than UTC, and a "+" that the query turned into a space
    plus_one = (instants[-1] - timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=1)))
    unescaped = f"/api/v1/jobs/{job_id}?as_of={plus_one.isoformat()}"
    assert system.http.get(unescaped).json()["status"] == "failed"
    assert system.http.get(f"/api/v1/jobs/01UNKNOWN0000000000000000?as_of={FAR}").status_code == 404


@pytest.mark.parametrize(
    "value",
    ["2026-12-07T10:00:00", "2026-12-07", "yesterday", "1700000000", "2026-13-01T00:00:00Z"],
)
def test_a_malformed_or_naive_as_of_is_422_naming_it(system: System, value: str) -> None:
    job = system.submit("noop", run_at=FAR)
    response = system.http.get(f"/api/v1/jobs/{job['id']}", params={"as_of": value})
    assert response.status_code == 422, response.text
    assert response.json()["errors"][0]["field"] == "as_of"
    assert "as_of" in response.json()["detail"]
    system.http.post(f"/api/v1/jobs/{job['id']}/stop")
