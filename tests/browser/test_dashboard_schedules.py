"""The dashboard's schedules card in a real headless Chromium against the real services:
create from the page, pause and resume, delete after confirming, the server's errors at
their fields, and the list's refresh (every 10 s while the tab is visible)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, Route, expect

from support.system import System

pytestmark = [pytest.mark.browser, pytest.mark.timeout(30)]

ZONE = "Europe/Paris"
"""The browser's time zone, which the form offers by default."""
ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


@pytest.fixture(autouse=True)
def no_schedules(system: System) -> Iterator[None]:
    """Each test starts and ends with no schedule (a left-over one would keep making jobs)."""

    def clear() -> None:
        for s in system.http.get("/api/v1/schedules").json()["items"]:
            system.http.delete(f"/api/v1/schedules/{s['name']}")

    clear()
    yield
    clear()


@pytest.fixture
def page(browser: Browser, system: System) -> Iterator[Page]:
    """The dashboard, loaded, with nothing fetched from outside and no javascript error."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000}, timezone_id=ZONE)
    page = context.new_page()
    external: list[str] = []
    errors: list[str] = []

    def local_only(route: Route) -> None:
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:")):
            route.continue_()
        else:
            external.append(route.request.url)
            route.abort()

    page.route("**/*", local_only)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on(
        "console",  # a blocked load or inline style: the page broke its own CSP
        lambda m: errors.append(m.text) if "Content Security Policy" in m.text else None,
    )
    try:
        yield page
    finally:
        context.close()
    assert not external, f"the dashboard fetched from outside: {external}"
    assert not errors, f"javascript or CSP errors: {errors}"


def open_dashboard(page: Page, system: System) -> Locator:
    """The schedules card, once the page has read the list and the job types."""
    page.goto(system.api_url + "/")
    card = page.locator("#schedules")
    expect(card.locator("#schedules-count")).to_have_text(re.compile(r"^\d+$"), timeout=10_000)
    expect(card.locator('#schedule-type option[value="noop"]')).to_be_attached(timeout=10_000)
    return card


def create(system: System, name: str, cron: str = "0 3 * * *", **body: Any) -> dict[str, Any]:
    job = {"type": "noop"}
    response = system.http.post(
        "/api/v1/schedules", json={"name": name, "cron": cron, "job": job, **body}
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def schedule(system: System, name: str) -> dict[str, Any]:
    response = system.http.get(f"/api/v1/schedules/{name}")
    assert response.status_code == 200, response.text
    got: dict[str, Any] = response.json()
    return got


def button(page: Page, name: str) -> Locator:
    return page.get_by_role("button", name=name, exact=True)


def test_a_schedule_made_on_the_page_ticks_and_makes_jobs(page: Page, system: System) -> None:
    card = open_dashboard(page, system)
    form = card.locator("#schedule-form")
    timezone = form.get_by_label("Time zone")
    expect(timezone).to_have_value(ZONE)  # the browser's zone by default
    form.get_by_label("Name").fill("every-second")
    form.get_by_label("Cron").fill("* * * * * *")
    timezone.fill("UTC")
    form.get_by_label("Job type").select_option("noop")
    form.get_by_label("Payload (JSON)").fill("{}")
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/schedules") and r.request.method == "POST"
    ) as response:
        form.get_by_role("button", name="Create schedule").click()
    assert response.value.status == 201, response.value.text()
    assert response.value.json()["job"]["type"] == "noop"

    row = card.locator('tr[data-schedule="every-second"]')
    expect(row.locator(".cron")).to_have_text("* * * * * *")
    expect(row.locator(".timezone")).to_have_text("UTC")
    expect(row.locator(".type")).to_have_text("noop")
    expect(row.locator(".state")).to_have_text("enabled")
    next_run = row.locator(".next time")
    expect(next_run).to_have_attribute("datetime", ISO)
    assert next_run.get_attribute("title") == next_run.get_attribute("datetime")
    assert (next_run.text_content() or "").strip()  # in the browser's locale
    expect(form.locator("#schedule-form-result")).to_have_text("Created every-second.")

    # The list refreshes every 10 s: the row then shows the tick that fired.
    last_run = row.locator(".last time")
    expect(last_run).to_have_attribute("datetime", ISO, timeout=15_000)
    assert schedule(system, "every-second")["last_run_at"] is not None
    deadline = time.monotonic() + 10
    while True:
        jobs = system.http.get("/api/v1/jobs", params={"type": "noop"}).json()["items"]
        if jobs:
            break
        assert time.monotonic() < deadline, "the schedule made no job"
        time.sleep(0.2)
    assert system.events(jobs[0]["id"])[0]["actor"] == "schedule:every-second"


def test_pause_and_resume_from_the_page(page: Page, system: System) -> None:
    create(system, "nightly", timezone=ZONE)
    card = open_dashboard(page, system)
    row = card.locator('tr[data-schedule="nightly"]')
    expect(row.locator(".next time")).to_be_attached()

    button(page, "Pause nightly").click()
    expect(row.locator(".state")).to_have_text("paused")
    expect(row).to_have_attribute("data-enabled", "false")
    expect(row.locator(".next time")).to_have_count(0)  # no next run while paused
    got = schedule(system, "nightly")
    assert got["enabled"] is False and got["next_run_at"] is None

    # The same button, renamed, keeps the focus: Enter resumes.
    resume = button(page, "Resume nightly")
    expect(resume).to_be_focused()
    page.keyboard.press("Enter")
    expect(row.locator(".state")).to_have_text("enabled")
    expect(row.locator(".next time")).to_have_attribute(
        "datetime", schedule(system, "nightly")["next_run_at"].replace("+00:00", "Z")
    )
    assert schedule(system, "nightly")["enabled"] is True
    expect(button(page, "Pause nightly")).to_be_focused()


def test_delete_asks_first(page: Page, system: System) -> None:
    create(system, "cleanup")
    create(system, "keep-me")
    card = open_dashboard(page, system)
    row = card.locator('tr[data-schedule="cleanup"]')
    expect(card.locator("#schedules-count")).to_have_text("2")

    button(page, "Delete cleanup").click()
    expect(button(page, "Cancel, keep cleanup")).to_be_focused()
    page.keyboard.press("Escape")  # changes its mind
    expect(button(page, "Delete cleanup")).to_be_focused()
    assert system.http.get("/api/v1/schedules/cleanup").status_code == 200

    button(page, "Delete cleanup").click()
    with page.expect_response(lambda r: r.request.method == "DELETE") as response:
        button(page, "Yes, delete cleanup").click()
    assert response.value.status == 204
    expect(row).to_have_count(0)
    expect(card.locator("#schedules-count")).to_have_text("1")
    assert system.http.get("/api/v1/schedules/cleanup").status_code == 404
    assert [s["name"] for s in system.http.get("/api/v1/schedules").json()["items"]] == ["keep-me"]
    expect(button(page, "Pause keep-me")).to_be_focused()  # the focus stays in the list


def test_the_servers_errors_show_at_their_fields(page: Page, system: System) -> None:
    card = open_dashboard(page, system)
    form = card.locator("#schedule-form")
    form.get_by_label("Name").fill("broken")
    cron = form.get_by_label("Cron")
    cron.fill("61 * * * *")
    with page.expect_response(lambda r: r.request.method == "POST") as response:
        form.get_by_role("button", name="Create schedule").click()
    assert response.value.status == 422
    problem = response.value.json()
    [error] = problem["errors"]
    assert error["field"] == "cron" and "61 is out of range" in error["message"], problem
    expect(form.locator('[data-error-for="cron"]')).to_have_text(error["message"])
    expect(cron).to_have_attribute("aria-invalid", "true")
    expect(cron).to_be_focused()
    expect(form.locator('[data-error-for="name"]')).to_be_hidden()

    # Fixed cron, unknown zone: the error moves to the zone.
    cron.fill("0 3 * * *")
    form.get_by_label("Time zone").fill("Mars/Olympus_Mons")
    form.get_by_role("button", name="Create schedule").click()
    expect(form.locator('[data-error-for="timezone"]')).to_contain_text("timezone")
    expect(form.locator('[data-error-for="cron"]')).to_be_hidden()
    expect(cron).not_to_have_attribute("aria-invalid", "true")
    assert system.http.get("/api/v1/schedules").json()["items"] == []
    expect(card.locator("#schedules-empty")).to_be_visible()


def test_the_list_refreshes_while_visible_and_reports_a_failed_read(
    page: Page, system: System
) -> None:
    """Every 10 s while the tab is visible, none while hidden, at once when it shows again;
    an API that fails leaves the rows and says so."""
    create(system, "steady")
    reads: list[float] = []
    page.on(
        "request",
        lambda r: (
            reads.append(time.monotonic())
            if r.url.endswith("/api/v1/schedules") and r.method == "GET"
            else None
        ),
    )
    page.clock.install()
    card = open_dashboard(page, system)
    expect(card.locator('tr[data-schedule="steady"]')).to_be_visible()
    before = len(reads)
    page.clock.run_for(10_500)
    page.wait_for_timeout(300)
    assert len(reads) == before + 1

    visibility = """state => {
        Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
        document.dispatchEvent(new Event("visibilitychange"));
    }"""
    page.evaluate(visibility, "hidden")
    page.clock.run_for(60_000)
    page.wait_for_timeout(300)
    assert len(reads) == before + 1, "read while hidden"
    page.evaluate(visibility, "visible")
    page.wait_for_timeout(300)
    assert len(reads) == before + 2, "not read when shown again"

    def unavailable(route: Route) -> None:
        problem = '{"title": "Service Unavailable", "status": 503, "detail": "NATS is away"}'
        route.fulfill(status=503, content_type="application/problem+json", body=problem)

    page.route("**/api/v1/schedules", unavailable)
    page.clock.run_for(10_500)
    expect(card.locator("#schedules-error")).to_have_text("Could not load schedules: NATS is away")
    expect(card.locator('tr[data-schedule="steady"]')).to_be_visible()
    page.unroute("**/api/v1/schedules", unavailable)
    page.clock.run_for(10_500)
    expect(card.locator("#schedules-error")).to_be_hidden()
