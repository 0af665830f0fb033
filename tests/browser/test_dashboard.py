"""The dashboard in a real headless Chromium against the real services."""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, WebSocket, expect, sync_playwright
from websockets.sync.client import ClientConnection, connect

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


class Watched:
    """What a page did that it must not: fetch from outside, throw, break its CSP."""

    def __init__(self, page: Page) -> None:
        self.external: list[str] = []
        self.errors: list[str] = []
        self.csp: list[str] = []
        page.route("**/*", self._no_internet)
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)

    def _no_internet(self, route: object) -> None:
        url = route.request.url  # type: ignore[attr-defined]
        if not url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            self.external.append(url)
            route.abort()  # type: ignore[attr-defined]
        else:
            route.continue_()  # type: ignore[attr-defined]

    def _console(self, message: ConsoleMessage) -> None:
        # Chromium reports each blocked load or inline script as a console error.
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)

    def check(self, what: str) -> None:
        assert not self.external, f"{what} fetched from outside: {self.external}"
        assert not self.errors, f"javascript errors: {self.errors}"
        assert not self.csp, f"{what} broke its Content-Security-Policy: {self.csp}"


@pytest.fixture
def watched_page(browser: Browser, system: System) -> Iterator[tuple[Page, Watched]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    watched = Watched(page)
    page.goto(system.api_url + "/")
    expect(page.locator("#feed-status")).to_have_text("live", timeout=10_000)
    try:
        yield page, watched
    finally:
        context.close()


@pytest.fixture
def page(watched_page: tuple[Page, Watched]) -> Iterator[Page]:
    page, watched = watched_page
    yield page
    watched.check("the dashboard")


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


def test_the_dashboard_runs_under_its_csp_which_blocks_inline_script(
    watched_page: tuple[Page, Watched],
) -> None:
    """Control for the CSP check of every test above: a script injected into the page (as an
    XSS would) does not run, and the violation is seen."""
    page, watched = watched_page
    page.evaluate(
        """() => { const s = document.createElement("script");
                   s.textContent = "window.__injected = true"; document.body.append(s); }"""
    )
    expect(page.locator("#feed-status")).to_have_text("live")
    assert page.evaluate("window.__injected") is None
    assert any("script-src" in text for text in watched.csp), watched.csp


def test_the_api_docs_render_from_the_apis_own_files(browser: Browser, system: System) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    watched = Watched(page)
    try:
        page.goto(system.api_url + "/docs")
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("Conveyor")
        stop = page.locator("#operations-default-stop_job_api_v1_jobs__job_id__stop_post")
        expect(stop).to_be_visible(timeout=10_000)
        # "Try it out" is a same-origin write from a browser page: the guards let it through.
        submit = page.locator("#operations-default-submit_job_api_v1_jobs_post")
        submit.locator(".opblock-summary").click()
        submit.get_by_role("button", name="Try it out").click()
        submit.locator("textarea.body-param__text").fill('{"type": "noop"}')
        with page.expect_response(lambda r: r.url.endswith("/api/v1/jobs")) as response:
            submit.get_by_role("button", name="Execute").click()
        assert response.value.status == 201, response.value.text()
        assert response.value.request.headers.get("origin") == system.api_url
    finally:
        context.close()
    watched.check("/docs")


@pytest.fixture
def full_notifier(system: System) -> Iterator[ClientConnection]:
    """The system's notifier restarted to take one websocket, which this holds."""

    def restart(full: bool) -> None:
        port = str(system.notifier_port)
        system.stop("notifier")
        if full:
            system.start("notifier", "notifier", CONVEYOR_PORT=port, CONVEYOR_MAX_CLIENTS="1")
        else:
            system.start("notifier", "notifier", CONVEYOR_PORT=port)
        system.wait_ready()

    restart(full=True)
    try:
        with connect(system.ws_url) as holder:
            yield holder
    finally:
        restart(full=False)


def test_a_full_notifier_is_retried_with_backoff_not_hammered(
    browser: Browser, system: System, full_notifier: ClientConnection
) -> None:
    """The notifier closes the page's feed with 1013 (max_clients) right after it opens:
    the page comes back after 0.5 s doubling up to 10 s, each jittered, so about four
    attempts in 4 s (the 2026-12 feed came back after 50-100 ms: some fifty), and it goes
    live once a slot frees."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    watched = Watched(page)
    sockets: list[WebSocket] = []
    page.on("websocket", lambda ws: sockets.append(ws))
    try:
        before = system.metric("notifier", "conveyor_ws_refused_total", reason="max_clients")
        page.goto(system.api_url + "/")
        page.wait_for_timeout(4_000)
        attempts = len(sockets)
        assert 2 <= attempts <= 6, f"{attempts} websockets in 4 s"
        assert all(ws.is_closed() for ws in sockets)
        refused = system.metric("notifier", "conveyor_ws_refused_total", reason="max_clients")
        assert refused - before >= attempts

        full_notifier.close()  # a slot frees
        deadline = time.monotonic() + 20
        while len(sockets) == attempts or sockets[-1].is_closed():
            assert time.monotonic() < deadline, "the feed never came back"
            page.wait_for_timeout(100)
        page.wait_for_timeout(1_000)
        assert not sockets[-1].is_closed()
        expect(page.locator("#feed-status")).to_have_text("live")
    finally:
        context.close()
    watched.check("the dashboard")


def test_the_create_form_takes_its_types_and_example_payloads_from_the_api(page: Page) -> None:
    """The type list is what live workers run (GET /types), not a list in the page; picking
    a type puts its example payload (from its schema's defaults) and names its fields."""
    options = page.locator("#known-types option")
    expect(options.first).to_be_attached(timeout=10_000)
    values = options.evaluate_all("els => els.map(e => e.value)")
    assert {"noop", "sleep"} <= set(values), values
    form = page.locator("#create-form")
    kind = form.locator('input[name="type"]')
    payload = form.locator('textarea[name="payload"]')
    kind.fill("noop")
    expect(payload).to_have_value("{}")
    expect(page.locator("#create-hint")).to_contain_text("No payload")
    kind.fill("sleep")
    expect(payload).to_have_value('{"seconds":5,"steps":10,"fail":false,"busy":false}')
    expect(page.locator("#create-hint")).to_contain_text("seconds?: number")
    kind.fill("no-such-type")
    expect(page.locator("#create-hint")).to_contain_text("No live worker runs no-such-type")
