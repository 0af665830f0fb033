"""The README's screenshot, from a real run: the real services (the workers also serve
tests/e2e/jobs/user_jobs.py and ``exec`` of /bin/echo), a dozen-odd jobs of several types made
through the API and left in every status, the dashboard at a desktop size with two rows
selected (the bulk bar) and the detail of a job that was retried, failed and was restarted
with a reason (its attempts, its timeline with who and why). The scene is asserted, so this
test fails when the page does not show it; with CONVEYOR_SCREENSHOT set (``make screenshot``)
it also writes the PNG there."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ViewportSize, expect

from support.system import System

pytestmark = [pytest.mark.browser, pytest.mark.timeout(90)]

JOBS_DIR = Path(__file__).parents[1] / "e2e" / "jobs"
VIEWPORT: ViewportSize = {"width": 1440, "height": 900}
MAX_HEIGHT = 2400  # px, the screenshot's
WAIT = 15_000  # ms, for each expectation (a loaded 2-core machine)


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    """api, notifier, projector and two workers that serve the user's types and exec too."""
    path = os.pathsep.join(p for p in (str(JOBS_DIR), os.environ.get("PYTHONPATH")) if p)
    env = {
        "CONVEYOR_JOB_MODULES": "user_jobs",
        "CONVEYOR_EXEC_ALLOW": "/bin/echo",
        "PYTHONPATH": path,
    }
    logs = tmp_path_factory.mktemp("logs")
    with System(nats_url, database_url, logs, workers=2, env=env) as s:
        yield s


def wait_types(system: System, *names: str, timeout: float = 20) -> None:
    """Until every worker serves ``names`` (the API refuses a type no worker runs)."""
    deadline = time.monotonic() + timeout
    served: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        items = system.http.get("/api/v1/types").json()["items"]
        served = {t["name"]: t.get("workers", []) for t in items}
        if all(len(served.get(n, [])) == 2 for n in names):
            return
        time.sleep(0.1)
    raise AssertionError(f"types served: {served}")


def post(system: System, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = system.http.post(f"/api/v1{path}", json=body)
    assert response.status_code in (200, 201, 202), response.text
    out: dict[str, Any] = response.json()
    return out


def scene(system: System) -> dict[str, Any]:
    """The jobs, oldest first; answers the ids the page is checked against."""
    submit = system.submit
    later = (datetime.now(UTC) + timedelta(hours=2)).isoformat()
    done = [
        submit("resize-image", payload={"url": "s3://photos/cat.jpg", "width": 640})["id"],
        submit("noop", priority="high")["id"],
        submit("sleep", payload={"seconds": 0.4, "steps": 4})["id"],
        submit("exec", payload={"argv": ["/bin/echo", '{"rows": 1204}']})["id"],
        submit("resize-image", payload={"url": "s3://photos/dog.png"})["id"],
    ]
    # Fails twice (the second time with no attempts left), then is restarted and succeeds.
    retried = submit("flaky-fetch", payload={"succeed_on": 3, "delay_s": 0.2}, max_attempts=2)
    declined = submit("charge-card", payload={"card": "4242", "cents": 1999})["id"]
    crashed = submit("sleep", payload={"seconds": 0.2, "steps": 2, "fail": True})["id"]
    stopped = submit("sleep", payload={"seconds": 60, "steps": 60})["id"]
    pending = [
        submit("noop", run_at=later)["id"],
        submit("resize-image", payload={"url": "s3://photos/owl.gif"}, run_at=later)["id"],
    ]
    running = [
        submit("sleep", payload={"seconds": 40, "steps": 200}, priority="high")["id"],
        submit("sleep", payload={"seconds": 60, "steps": 120})["id"],
    ]
    for job_id in done:
        system.wait_for(job_id, "completed")
    system.wait_for(retried["id"], "failed", attempt=2)
    post(system, f"/jobs/{retried['id']}/restart", {"reason": "upstream is back (INC-2231)"})
    system.wait_for(stopped, "running")
    post(system, f"/jobs/{stopped}/stop", {"reason": "wrong input file"})
    system.wait_for(retried["id"], "completed", attempt=3)
    for job_id in (declined, crashed):
        system.wait_for(job_id, "failed")
    system.wait_for(stopped, "stopped")
    for job_id in running:
        system.wait_for(job_id, "running")
    return {
        "completed": [*done, retried["id"]],
        "failed": [declined, crashed],
        "stopped": [stopped],
        "pending": pending,
        "running": running,
        "retried": retried["id"],
    }


def test_the_readme_screenshot(browser: Browser, system: System) -> None:
    wait_types(system, "resize-image", "flaky-fetch", "charge-card", "exec")
    jobs = scene(system)
    retried = jobs["retried"]
    context = browser.new_context(viewport=VIEWPORT, color_scheme="light")
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    try:
        page.goto(f"{system.api_url}/#/jobs/{retried}")
        expect(page.locator("#feed-status")).to_have_text("live", timeout=WAIT)

        # Every job in its row with its status, newest first.
        rows = page.locator("#jobs tbody tr[data-job-id]")
        expect(rows).to_have_count(sum(len(v) for k, v in jobs.items() if k != "retried"))
        for status in ("completed", "failed", "stopped", "pending", "running"):
            for job_id in jobs[status]:
                row = page.locator(f'#jobs tr[data-job-id="{job_id}"]')
                expect(row.locator(".status")).to_have_text(status, timeout=WAIT)

        # The detail of the retried job: three attempts (two failed, the restarted one
        # completed), the restart in the timeline with who and why.
        detail = page.locator("#job-detail")
        expect(detail).to_have_attribute("data-status", "completed", timeout=WAIT)
        attempts = detail.locator("#attempts tbody tr")
        expect(attempts).to_have_count(3, timeout=WAIT)
        expect(attempts.nth(0)).to_have_attribute("data-outcome", "failed")
        expect(attempts.nth(1)).to_have_attribute("data-outcome", "failed")
        expect(attempts.nth(2)).to_have_attribute("data-outcome", "completed")
        restart = detail.locator('#timeline li[data-type="job.restarted"]')
        expect(restart.locator(".ev-why")).to_have_text(
            re.compile(r"^user:anonymous · reason: upstream is back \(INC-2231\)"), timeout=WAIT
        )
        expect(detail.locator('#timeline li[data-type="job.completed"]')).to_have_count(1)

        # Two finished rows selected: the bulk bar counts them.
        for job_id in jobs["completed"][1:3]:
            page.get_by_label(f"Select job {job_id[:8]}…{job_id[-4:]}").check()
        expect(page.locator("#bulk-count")).to_have_text("2 selected")
        expect(page.locator('button[data-bulk="delete"]')).to_be_enabled()

        # A running job's progress moves live.
        live = page.locator(f'#jobs tr[data-job-id="{jobs["running"][0]}"] .progress progress')
        expect(live).to_have_attribute(
            "aria-valuenow", re.compile(r"^([1-9]\d)(\.\d+)?$"), timeout=WAIT
        )
        assert not errors, f"javascript errors: {errors}"

        target = os.environ.get("CONVEYOR_SCREENSHOT")
        if target:
            # Tall enough for the detail and the whole job list below it, no more.
            page.evaluate("window.scrollTo(0, 0)")
            box = page.locator("#jobs-panel").bounding_box()  # from the viewport's top
            assert box is not None
            height = min(MAX_HEIGHT, int(box["y"] + box["height"]) + 24)
            page.set_viewport_size({"width": VIEWPORT["width"], "height": height})
            expect(live).to_be_visible()
            page.screenshot(path=target)
    finally:
        context.close()
        for job_id in jobs["running"]:  # the workers need not wait for them at the end
            system.http.post(f"/api/v1/jobs/{job_id}/stop")
