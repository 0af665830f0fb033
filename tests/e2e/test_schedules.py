"""Recurring schedules through the real services (issue 11): ``/api/v1/schedules`` and
``conveyor schedule``, with nats-server firing the ticks and two API processes taking them.

- a schedule ticking every second, taken by two API processes at once, makes exactly one
  job per tick: its ids are the ticks' own, none twice, and both processes took ticks;
- pausing stops the ticks and keeps the schedule, resuming starts them again, a changed cron
  ticks on the new one, deleting removes the schedule and its ticks;
- bad input is 4xx naming the field (cron, time zone, name, the job's type and payload),
  a name taken is 409, an unknown name 404, and nothing is written;
- the CLI's add, list, show, pause, resume and remove.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from nats.aio.client import Client

from conveyor_api.cron import parse
from conveyor_api.scheduling import tick_job_id
from conveyor_cli.dev.embedded import free_port
from support.schedules import StoredTick, stored_ticks, submitted_by
from support.system import System, scrape

pytestmark = [pytest.mark.e2e, pytest.mark.long, pytest.mark.timeout(120)]

SCHEDULES = "/api/v1/schedules"
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def replica(system: System) -> Iterator[httpx.Client]:
    """A second API process on the same NATS and PostgreSQL."""
    port = free_port()
    system.start("api-2", "api", CONVEYOR_API_PORT=str(port))
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
    deadline = time.monotonic() + 30
    while True:
        try:
            if client.get("/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, system.log("api-2")[-2000:]
        time.sleep(0.1)
    try:
        yield client
    finally:
        client.close()
        system.stop("api-2")


def create(system: System, **body: Any) -> dict[str, Any]:
    response = system.http.post(SCHEDULES, json=body)
    assert response.status_code == 201, response.text
    assert response.headers["location"] == f"{SCHEDULES}/{body['name']}"
    created: dict[str, Any] = response.json()
    return created


def patch(system: System, name: str, **body: Any) -> dict[str, Any]:
    response = system.http.patch(f"{SCHEDULES}/{name}", json=body)
    assert response.status_code == 200, response.text
    changed: dict[str, Any] = response.json()
    return changed


async def wait_ticks(nc: Client, name: str, n: int, timeout: float) -> list[StoredTick]:
    deadline = time.monotonic() + timeout
    while len(ticks := await stored_ticks(nc, name)) < n:
        assert time.monotonic() < deadline, f"{len(ticks)} of {n} ticks of {name}"
        await asyncio.sleep(0.1)
    return ticks


def created_here(port: int) -> float:
    return scrape(
        f"http://127.0.0.1:{port}/metrics", "conveyor_schedule_ticks_total", outcome="created"
    )


async def test_two_api_replicas_make_exactly_one_job_per_tick(
    system: System, replica: httpx.Client, nc: Client
) -> None:
    before = datetime.now(UTC)
    created = create(system, name="every-second", cron="* * * * * *", job={"type": "noop"})
    assert created["enabled"] is True and created["last_run_at"] is None
    assert created["job"] == {
        "type": "noop",
        "priority": "regular",
        "payload": {},
        "max_attempts": 1,
        "timeout_s": None,
    }
    next_run = datetime.fromisoformat(created["next_run_at"])
    assert before < next_run <= before + timedelta(seconds=2)

    await wait_ticks(nc, "every-second", 10, timeout=20)
    paused = patch(system, "every-second", enabled=False)
    assert paused["enabled"] is False and paused["next_run_at"] is None
    await asyncio.sleep(1.5)  # the last ticks are taken
    ticks = await stored_ticks(nc, "every-second")
    assert len(ticks) >= 10

    jobs = await submitted_by(nc, "schedule:every-second")
    ids = [j.job_id for j in jobs]
    assert len(ids) == len(set(ids)) == len(ticks)  # one job per tick, none twice
    assert set(ids) == {tick_job_id("every-second", t.second) for t in ticks}
    for job_id in ids:
        system.wait_for(job_id, "completed")

    here, there = created_here(system.api_port), created_here(replica_port(replica))
    assert here + there == len(ticks)
    assert here > 0 and there > 0  # both processes took ticks

    shown = system.http.get(f"{SCHEDULES}/every-second").json()
    last = datetime.fromisoformat(shown["last_run_at"])
    assert last == ticks[-1].time.replace(microsecond=0)


def replica_port(client: httpx.Client) -> int:
    port = client.base_url.port
    assert port is not None
    return port


async def test_pause_keeps_the_schedule_resume_restarts_it_delete_removes_it(
    system: System, nc: Client
) -> None:
    create(system, name="pausable", cron="* * * * * *", job={"type": "noop"})
    await wait_ticks(nc, "pausable", 2, timeout=5)
    patch(system, "pausable", enabled=False)
    await asyncio.sleep(0.5)
    paused = len(await stored_ticks(nc, "pausable"))
    await asyncio.sleep(2.5)
    assert len(await stored_ticks(nc, "pausable")) == paused  # no tick while paused
    shown = system.http.get(f"{SCHEDULES}/pausable").json()
    assert (shown["enabled"], shown["next_run_at"], shown["cron"]) == (False, None, "* * * * * *")
    listed = {s["name"]: s for s in system.http.get(SCHEDULES).json()["items"]}
    assert listed["pausable"]["enabled"] is False

    resumed = patch(system, "pausable", enabled=True)
    assert resumed["enabled"] is True and resumed["next_run_at"] is not None
    await wait_ticks(nc, "pausable", paused + 2, timeout=5)

    every_two = patch(system, "pausable", cron="*/2 * * * * *", timezone="Europe/Paris")
    assert (every_two["cron"], every_two["timezone"]) == ("*/2 * * * * *", "Europe/Paris")
    changed_at = len(await stored_ticks(nc, "pausable"))
    later = (await wait_ticks(nc, "pausable", changed_at + 2, timeout=8))[changed_at:]
    assert all(t.second % 2 == 0 for t in later)  # on the new cron

    assert system.http.delete(f"{SCHEDULES}/pausable").status_code == 204
    assert system.http.get(f"{SCHEDULES}/pausable").status_code == 404
    await asyncio.sleep(2.5)
    assert await stored_ticks(nc, "pausable") == []  # no tick since, none kept
    assert "pausable" not in {s["name"] for s in system.http.get(SCHEDULES).json()["items"]}
    for method in ("DELETE", "GET"):
        assert system.http.request(method, f"{SCHEDULES}/pausable").status_code == 404
    assert system.http.patch(f"{SCHEDULES}/pausable", json={"enabled": True}).status_code == 404

    again = create(system, name="pausable", cron="0 3 * * *", job={"type": "noop"})
    assert again["cron"] == "0 3 * * *"  # the name is free again
    system.http.delete(f"{SCHEDULES}/pausable")


def test_a_taken_name_is_409_and_the_schedule_unchanged(system: System) -> None:
    create(system, name="taken", cron="0 3 * * *", job={"type": "noop"}, enabled=False)
    again = system.http.post(
        SCHEDULES, json={"name": "taken", "cron": "0 4 * * *", "job": {"type": "noop"}}
    )
    assert again.status_code == 409, again.text
    assert again.headers["content-type"] == PROBLEM
    assert "'taken' exists" in again.json()["detail"]
    assert system.http.get(f"{SCHEDULES}/taken").json()["cron"] == "0 3 * * *"


def test_a_job_template_takes_its_types_defaults_and_checks_its_payload(
    system: System,
) -> None:
    made = create(
        system,
        name="template",
        cron="0 3 * * *",
        timezone="Europe/Paris",
        job={"type": "sleep", "payload": {"seconds": 1}, "priority": "high"},
        enabled=False,
    )
    job = made["job"]
    assert (job["type"], job["priority"], job["payload"]["seconds"]) == ("sleep", "high", 1)
    assert job["payload"]["steps"] == 10  # the schema's default, filled in as on submit
    assert made["next_run_at"] is None  # created paused
    resumed = patch(system, "template", enabled=True)
    expected = parse("0 3 * * *").after(datetime.now(UTC), ZoneInfo("Europe/Paris"))
    assert datetime.fromisoformat(resumed["next_run_at"]) == expected


BASE = {"name": "bad", "cron": "0 3 * * *", "job": {"type": "noop"}}


@pytest.mark.parametrize(
    ("change", "field", "says"),
    [
        ({"cron": "61 * * * *"}, "cron", "minute field '61'"),
        ({"cron": "* * * *"}, "cron", "has 4 fields"),
        ({"cron": "0 0 30 2 *"}, "cron", "matches no day"),
        ({"cron": "@every 1s"}, "cron", "unknown shorthand"),
        ({"cron": 5}, "cron", "string"),
        ({"timezone": "Mars/Olympus"}, "timezone", "not an IANA time zone"),
        ({"timezone": "Local"}, "timezone", "not an IANA time zone"),
        ({"name": "a.b"}, "name", "pattern"),
        ({"name": ""}, "name", "pattern"),
        ({"name": "x" * 101}, "name", "pattern"),
        ({"job": {"type": "no-such-type"}}, "job.type", "unknown job type"),
        ({"job": {"type": "sleep", "payload": {"seconds": "x"}}}, "job.payload", "seconds"),
        ({"job": {"type": "noop", "max_attempts": 0}}, "job.max_attempts", "greater"),
        ({"job": {"type": "noop", "run_at": "2030-01-01T00:00:00Z"}}, "job.run_at", "Extra"),
        ({"enabled": "yes"}, "enabled", "boolean"),
        ({"every": "day"}, "every", "Extra"),
    ],
)
def test_a_bad_schedule_is_422_naming_the_field(
    system: System, change: dict[str, Any], field: str, says: str
) -> None:
    response = system.http.post(SCHEDULES, json={**BASE, **change})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == PROBLEM
    problem = response.json()
    fields = [e["field"] for e in problem["errors"]]
    assert any(f == field or f.startswith(f"{field}.") for f in fields), problem
    assert says.lower() in json.dumps(problem).lower()
    assert system.http.get(f"{SCHEDULES}/bad").status_code == 404  # nothing written


def test_a_bad_change_is_422_and_changes_nothing(system: System) -> None:
    create(system, name="kept", cron="0 3 * * *", job={"type": "noop"}, enabled=False)
    for body, field in [
        ({"cron": "0 0 0 * * 7"}, "cron"),
        ({"timezone": "Nowhere/City"}, "timezone"),
        ({"job": {"type": "sleep", "payload": {"steps": -1}}}, "job.payload"),
        ({"name": "renamed"}, "name"),
    ]:
        response = system.http.patch(f"{SCHEDULES}/kept", json=body)
        assert response.status_code == 422, response.text
        assert any(e["field"].startswith(field) for e in response.json()["errors"])
    kept = system.http.get(f"{SCHEDULES}/kept").json()
    assert (kept["cron"], kept["timezone"], kept["job"]["type"]) == ("0 3 * * *", "UTC", "noop")


def test_writes_must_be_json_and_unknown_names_are_404(system: System) -> None:
    malformed = system.http.post(
        SCHEDULES, content=b"{not json", headers={"content-type": "application/json"}
    )
    assert malformed.status_code == 400
    form = system.http.post(
        SCHEDULES, content=b"name=x", headers={"content-type": "application/x-www-form-urlencoded"}
    )
    assert form.status_code == 415  # the API's guards apply to these routes too
    foreign = system.http.post(SCHEDULES, json=BASE, headers={"origin": "https://evil.example"})
    assert foreign.status_code == 403
    for path in ("/nope", "/a.b", "/%20"):
        assert system.http.get(SCHEDULES + path).status_code == 404
        assert system.http.delete(SCHEDULES + path).status_code == 404


def test_the_cli_adds_lists_pauses_resumes_and_removes(system: System) -> None:
    added = system.conveyor(
        "schedule", "add", "cli-nightly", "--cron", "0 3 * * *", "--timezone", "Europe/Paris",
        "sleep", "--payload", '{"seconds": 1}', "--priority", "high",
    )  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert added.stdout.startswith("cli-nightly") and "enabled" in added.stdout

    listed = json.loads(system.conveyor("schedule", "list", "--json").stdout)
    mine = next(s for s in listed["items"] if s["name"] == "cli-nightly")
    assert mine["job"]["priority"] == "high" and mine["timezone"] == "Europe/Paris"
    expected = parse("0 3 * * *").after(datetime.now(UTC), ZoneInfo("Europe/Paris"))
    assert datetime.fromisoformat(mine["next_run_at"]) == expected
    assert "cli-nightly" in system.conveyor("schedule", "list").stdout

    paused = system.conveyor("schedule", "pause", "cli-nightly")
    assert paused.returncode == 0 and "paused" in paused.stdout
    shown = json.loads(system.conveyor("schedule", "show", "cli-nightly").stdout)
    assert shown["enabled"] is False
    resumed = system.conveyor("schedule", "resume", "cli-nightly")
    assert resumed.returncode == 0 and "enabled" in resumed.stdout

    bad = system.conveyor("schedule", "add", "cli-bad", "--cron", "0 25 * * *", "noop")
    assert bad.returncode == 1 and "422" in bad.stderr and "hour field" in bad.stderr
    taken = system.conveyor("schedule", "add", "cli-nightly", "--cron", "0 4 * * *", "noop")
    assert taken.returncode == 1 and "409" in taken.stderr

    assert system.conveyor("schedule", "remove", "cli-nightly").returncode == 0
    gone = system.conveyor("schedule", "show", "cli-nightly")
    assert gone.returncode == 1 and "404" in gone.stderr
