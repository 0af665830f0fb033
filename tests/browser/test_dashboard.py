"""The dashboard in a real headless Chromium against the real services."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from support.system import System

pytestmark = pytest.mark.browser

CHROMIUM = os.environ.get("CONVEYOR_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
    "--disable-quic",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not shutil.which(CHROMIUM) and not Path(CHROMIUM).exists():
        pytest.fail(f"Chromium not found at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def page(browser: Browser, system: System) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    external: list[str] = []

    def no_internet(route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if not url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            external.append(url)
            route.abort()  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    page.route("**/*", no_internet)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(system.api_url + "/")
    expect(page.locator("#feed-status")).to_have_text("live", timeout=10_000)
    try:
        yield page
    finally:
        context.close()
    assert not external, f"the dashboard fetched from outside: {external}"
    assert not errors, f"javascript errors: {errors}"


def row(page: Page, job_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#jobs tr[data-job-id="{job_id}"]')


def submit_from_form(page: Page, type_: str, payload: str) -> str:
    form = page.locator("#create-form")
    form.locator('input[name="type"]').fill(type_)
    form.locator('textarea[name="payload"]').fill(payload)
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/jobs") and r.request.method == "POST"
    ) as response:
        form.locator('button[type="submit"]').click()
    assert response.value.status == 201
    job_id: str = response.value.json()["id"]
    return job_id


def test_a_sleep_job_moves_to_completed_live(page: Page, system: System, tmp_path: Path) -> None:
    page.evaluate("window.__marker = 'no reload'")
    job_id = submit_from_form(page, "sleep", '{"seconds": 2, "steps": 4}')
    r = row(page, job_id)
    expect(r).to_be_visible()
    expect(r.locator(".id")).to_contain_text(job_id[:8])
    expect(r.locator(".status")).to_have_text("running", timeout=10_000)
    expect(r.locator(".progress progress")).to_have_attribute("aria-valuenow", "50", timeout=10_000)
    screenshot = os.environ.get("CONVEYOR_SCREENSHOT")
    if screenshot:
        page.screenshot(path=screenshot)
    expect(r.locator(".status")).to_have_text("completed", timeout=10_000)
    expect(r.locator(".progress progress")).to_have_attribute("aria-valuenow", "100")
    assert page.evaluate("window.__marker") == "no reload"


def test_stop_restart_delete_buttons(page: Page, system: System) -> None:
    job_id = submit_from_form(page, "sleep", '{"seconds": 30, "steps": 30}')
    r = row(page, job_id)
    expect(r.locator(".status")).to_have_text("running", timeout=10_000)
    expect(r.locator('button[data-action="delete"]')).to_be_disabled()
    r.locator('button[data-action="stop"]').click()
    expect(r.locator(".status")).to_have_text("stopped", timeout=5_000)
    r.locator('button[data-action="restart"]').click()
    expect(r.locator(".status")).to_have_text("running", timeout=10_000)
    r.locator('button[data-action="stop"]').click()
    expect(r.locator(".status")).to_have_text("stopped", timeout=5_000)
    r.locator('button[data-action="delete"]').click()
    expect(r).to_have_count(0, timeout=5_000)
    system.wait_gone(job_id)


def test_bad_payload_shows_the_problem(page: Page) -> None:
    form = page.locator("#create-form")
    form.locator('input[name="type"]').fill("sleep")
    form.locator('textarea[name="payload"]').fill('{"seconds": -1}')
    form.locator('button[type="submit"]').click()
    expect(page.locator("#create-error")).to_contain_text("payload.seconds")


def test_detail_view_shows_the_timeline(page: Page, system: System) -> None:
    job = system.submit("sleep", payload={"seconds": 0.5, "steps": 2})
    system.wait_for(job["id"], "completed")
    page.goto(f"{system.api_url}/#/jobs/{job['id']}")
    detail = page.locator("#job-detail")
    expect(detail).to_be_visible()
    expect(page.locator("#timeline li")).to_have_count(len(system.events(job["id"])))
    expect(page.locator("#timeline li").first).to_contain_text("job.submitted")
    expect(page.locator("#timeline li").last).to_contain_text("job.completed")


def test_filters_live_in_the_url_and_workers_are_listed(page: Page, system: System) -> None:
    page.locator('#filters input[name="status"][value="completed"]').check()
    expect(page).to_have_url(re.compile(r"status=completed"))
    page.reload()
    expect(page.locator('#filters input[name="status"][value="completed"]')).to_be_checked()
    expect(page.locator("#workers tr[data-worker-id]")).to_have_count(2, timeout=10_000)
