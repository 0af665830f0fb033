"""The dashboard's login and roles (issue 14) in a real headless Chromium against the real
services with API tokens (``alice`` operate, ``dash`` read): without a token the page shows
the login and no job; a wrong token is refused at the field; a token it accepts is kept in
sessionStorage only (never localStorage, never a URL), sent as ``Authorization: Bearer`` on
every API call and as the feed's ``bearer.<token>`` subprotocol; a read token's page has no
action and says "read-only"; Sign out goes back to the login; with auth off no login shows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, Request, expect

from support.system import System

pytestmark = [pytest.mark.browser, pytest.mark.timeout(60)]

ALICE = "alice-operate-Zq3x9VbN2mK7pL4w"
DASH = "dash-read-Hs8dJ2fK5lQ9rT1y"
WRONG = "not-a-configured-token-at-all"
SECRETS = (ALICE, DASH, WRONG)
KEY = "conveyor.token"
"""The sessionStorage key the page keeps its token under."""


@pytest.fixture(scope="module")
def system(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    env = {
        "CONVEYOR_TOKENS": f"alice:operate:{ALICE},dash:read:{DASH}",
        "CONVEYOR_TOKEN": ALICE,  # what the readiness wait sends
    }
    with System(nats_url, database_url, tmp_path_factory.mktemp("logs"), env=env) as s:
        s.http.headers["Authorization"] = f"Bearer {ALICE}"  # the helpers' REST calls
        yield s


class Seen:
    """Every URL the page requested or navigated to, every websocket it opened, the headers
    of its API calls, and what it must not do (throw, break its CSP)."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.api_calls: list[tuple[str, str | None]] = []  # (url, Authorization)
        self.sockets: list[str] = []
        self.errors: list[str] = []
        self.csp: list[str] = []
        page.on("request", self._request)
        page.on("framenavigated", lambda frame: self.urls.append(frame.url))
        page.on("websocket", lambda ws: self.sockets.append(ws.url))
        page.on("pageerror", lambda e: self.errors.append(str(e)))
        page.on("console", self._console)

    def _request(self, request: Request) -> None:
        self.urls.append(request.url)
        if "/api/v1/" in request.url:
            self.api_calls.append((request.url, request.headers.get("authorization")))

    def _console(self, message: ConsoleMessage) -> None:
        if "Content Security Policy" in message.text:
            self.csp.append(message.text)

    def check(self, page: Page) -> None:
        assert not self.errors, f"javascript errors: {self.errors}"
        assert not self.csp, f"the dashboard broke its Content-Security-Policy: {self.csp}"
        for url in [*self.urls, *self.sockets, page.url]:
            assert not any(secret in url for secret in SECRETS), f"a token in a URL: {url}"
        assert page.evaluate("localStorage.length") == 0


@pytest.fixture
def page(browser: Browser, system: System) -> Iterator[tuple[Page, Seen]]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    seen = Seen(page)
    try:
        yield page, seen
        seen.check(page)
    finally:
        context.close()


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("API token").fill(token)
    page.get_by_role("button", name="Sign in").click()


def expect_login(page: Page) -> None:
    login = page.locator("#login")
    expect(login).to_be_visible(timeout=10_000)
    field = page.get_by_label("API token")
    expect(field).to_be_visible()
    expect(field).to_have_attribute("type", "password")
    expect(page.get_by_role("button", name="Sign in")).to_be_visible()
    expect(page.locator("main.layout")).to_be_hidden()
    expect(page.locator("#session")).to_be_hidden()


def row(page: Page, job_id: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#jobs tr[data-job-id="{job_id}"]')


def test_the_login_refuses_a_wrong_token_and_an_operate_token_sees_and_acts(
    page: tuple[Page, Seen], system: System
) -> None:
    page_, seen = page
    before = system.submit("noop")
    system.wait_for(before["id"], "completed")
    page_.goto(system.api_url + "/")
    expect_login(page_)
    expect(page_.get_by_label("API token")).to_be_focused()
    expect(page_.locator("#jobs tr[data-job-id]")).to_have_count(0)
    assert not seen.sockets, "the feed opened before a token was given"

    sign_in(page_, WRONG)
    expect(page_.locator("#login-error")).to_contain_text("token refused")
    expect(page_.get_by_label("API token")).to_be_visible()
    expect(page_.get_by_label("API token")).to_have_attribute("aria-invalid", "true")
    expect(page_.locator("main.layout")).to_be_hidden()
    assert page_.evaluate(f"sessionStorage.getItem('{KEY}')") is None

    sign_in(page_, ALICE)
    expect(page_.locator("#login")).to_be_hidden()
    expect(page_.locator("#feed-status")).to_have_text("live", timeout=10_000)
    expect(page_.locator("#principal")).to_have_text("alice")
    expect(row(page_, before["id"])).to_be_visible()
    assert page_.evaluate(f"sessionStorage.getItem('{KEY}')") == ALICE

    # the live feed, opened with the token: a job submitted by REST appears and completes
    job = system.submit("sleep", payload={"seconds": 1, "steps": 2})
    r = row(page_, job["id"])
    expect(r).to_be_visible(timeout=10_000)
    expect(r.locator(".status")).to_have_text("completed", timeout=15_000)
    assert len(seen.sockets) == 1, seen.sockets

    # the actions are there
    expect(r.locator('button[data-action="delete"]')).to_be_visible()
    expect(r.locator('button[data-action="restart"]')).to_be_visible()
    expect(page_.locator('#create-form button[type="submit"]')).to_be_visible()
    expect(page_.locator('#schedule-form button[type="submit"]')).to_be_visible()
    r.locator('button[data-action="delete"]').click()
    expect(r).to_have_count(0, timeout=5_000)
    system.wait_gone(job["id"])

    # every API call after signing in sent the token (the check before it, none or the wrong)
    signed = [url for url, auth in seen.api_calls if auth == f"Bearer {ALICE}"]
    unsigned = [(url, auth) for url, auth in seen.api_calls if auth != f"Bearer {ALICE}"]
    assert any(u.endswith("/api/v1/jobs/" + job["id"]) for u in signed), signed
    assert {u.split("?")[0].rsplit("/api/v1", 1)[1] for u in signed} >= {
        "/whoami",
        "/jobs",
        "/types",
        "/stats",
        "/workers",
        "/schedules",
    }
    assert unsigned == [
        (system.api_url + "/api/v1/whoami", None),
        (system.api_url + "/api/v1/whoami", f"Bearer {WRONG}"),
    ], unsigned

    # the session outlives a reload of the tab
    page_.reload()
    expect(page_.locator("#feed-status")).to_have_text("live", timeout=10_000)
    expect(page_.locator("#login")).to_be_hidden()
    expect(page_.locator("#principal")).to_have_text("alice")


def test_a_read_token_sees_jobs_but_no_action(page: tuple[Page, Seen], system: System) -> None:
    page_, _ = page
    job = system.submit("sleep", payload={"seconds": 30, "steps": 30})
    system.wait_for(job["id"], "running")
    created = system.http.post(
        "/api/v1/schedules",
        json={"name": "read-only-check", "cron": "0 3 * * *", "job": {"type": "noop"}},
    )
    assert created.status_code == 201, created.text
    try:
        page_.goto(system.api_url + "/")
        expect_login(page_)
        sign_in(page_, DASH)
        expect(page_.locator("#feed-status")).to_have_text("live", timeout=10_000)
        expect(page_.locator("#principal")).to_contain_text("read-only")
        expect(page_.locator("#principal")).to_contain_text("dash")
        r = row(page_, job["id"])
        expect(r.locator(".status")).to_have_text("running")
        schedule = page_.locator('tr[data-schedule="read-only-check"]')
        expect(schedule).to_be_visible(timeout=10_000)

        page_.goto(f"{system.api_url}/#/jobs/{job['id']}")
        expect(page_.locator("#job-detail")).to_be_visible()
        expect(page_.locator("#timeline li").first).to_contain_text("job.submitted")
        buttons = page_.locator("button[data-action]")
        assert buttons.count() >= 3 + 3 + 2  # the row's, the detail's, the schedule's
        for n in range(buttons.count()):
            expect(buttons.nth(n)).to_be_hidden()
        expect(page_.locator('#create-form button[type="submit"]')).to_be_hidden()
        expect(page_.locator('#schedule-form button[type="submit"]')).to_be_hidden()
        expect(page_.get_by_role("button", name="Submit job")).to_have_count(0)
        expect(page_.get_by_role("button", name="Stop", exact=False)).to_have_count(0)
        expect(page_.get_by_role("button", name="Sign out")).to_be_visible()
    finally:
        system.http.delete("/api/v1/schedules/read-only-check")
        system.http.post(f"/api/v1/jobs/{job['id']}/stop")


def test_a_read_token_has_no_bulk_selection_and_the_api_refuses_it(
    page: tuple[Page, Seen], system: System
) -> None:
    """The bulk bar, the row checkboxes and the "select every job shown" box are hidden for a
    read token; POST /jobs/bulk with it is 403, even as a dry run, and writes nothing."""
    page_, _ = page
    job = system.submit("noop")
    system.wait_for(job["id"], "completed")
    for body in (
        {"action": "delete", "ids": [job["id"]]},
        {"action": "delete", "filter": {}, "dry_run": True},
    ):
        refused = system.http.post(
            "/api/v1/jobs/bulk", json=body, headers={"Authorization": f"Bearer {DASH}"}
        )
        assert refused.status_code == 403, refused.text
    assert system.job(job["id"]).status_code == 200
    page_.goto(system.api_url + "/")
    sign_in(page_, DASH)
    expect(row(page_, job["id"])).to_be_visible(timeout=10_000)
    for hidden in ("#bulk-bar", "#select-page", '#jobs input[name="select"]', "[data-bulk]"):
        found = page_.locator(hidden)
        assert found.count() >= 1, hidden
        for n in range(found.count()):
            expect(found.nth(n)).to_be_hidden()
    expect(page_.get_by_role("checkbox", name="Select", exact=False)).to_have_count(0)

    page_.evaluate("sessionStorage.clear()")  # an operate token sees them
    page_.reload()
    sign_in(page_, ALICE)
    expect(page_.locator("#bulk-bar")).to_be_visible(timeout=10_000)
    expect(
        page_.get_by_role("checkbox", name=f"Select job {job['id'][:8]}", exact=False)
    ).to_be_visible()


def test_sign_out_returns_to_the_login_and_clears_the_session(
    page: tuple[Page, Seen], system: System
) -> None:
    page_, _ = page
    page_.goto(system.api_url + "/?status=completed")
    sign_in(page_, ALICE)
    expect(page_.locator("#feed-status")).to_have_text("live", timeout=10_000)
    assert page_.evaluate(f"sessionStorage.getItem('{KEY}')") == ALICE

    page_.get_by_role("button", name="Sign out").click()
    expect_login(page_)
    assert page_.evaluate("sessionStorage.length") == 0
    expect(page_.get_by_label("API token")).to_have_value("")
    page_.reload()  # still signed out
    expect_login(page_)


def test_a_token_refused_later_goes_back_to_the_login(
    page: tuple[Page, Seen], system: System
) -> None:
    """A token the API stops accepting (here: one put in the session by hand, as a rotated
    token would be) sends the page back to the login, which says why."""
    page_, _ = page
    page_.goto(system.api_url + "/")
    expect_login(page_)
    page_.evaluate(f"sessionStorage.setItem('{KEY}', '{WRONG}')")
    page_.reload()
    expect_login(page_)
    expect(page_.locator("#login-error")).to_contain_text("token refused")
    assert page_.evaluate(f"sessionStorage.getItem('{KEY}')") is None


def test_with_auth_off_no_login_shows(page: tuple[Page, Seen], system: System) -> None:
    """The api and the notifier restarted without tokens: the page is as before, a token
    left in the session forgotten. Last in the module: it puts the tokens back after."""
    page_, _ = page

    def restart(tokens: str) -> None:
        system.stop("api")
        system.stop("notifier")
        system.start(
            "api",
            "api",
            CONVEYOR_API_PORT=str(system.api_port),
            CONVEYOR_NOTIFIER_URL=system.ws_url,
            CONVEYOR_TOKENS=tokens,
        )
        system.start(
            "notifier",
            "notifier",
            CONVEYOR_NOTIFIER_PORT=str(system.notifier_port),
            CONVEYOR_TOKENS=tokens,
        )
        system.wait_ready()

    page_.goto(system.api_url + "/")
    sign_in(page_, ALICE)
    expect(page_.locator("#feed-status")).to_have_text("live", timeout=10_000)
    restart(tokens="")
    try:
        page_.reload()
        expect(page_.locator("#feed-status")).to_have_text("live", timeout=10_000)
        expect(page_.locator("#login")).to_be_hidden()
        expect(page_.locator("#session")).to_be_hidden()
        expect(page_.locator('#create-form button[type="submit"]')).to_be_visible()
        assert page_.evaluate(f"sessionStorage.getItem('{KEY}')") is None
    finally:
        restart(tokens=system.env["CONVEYOR_TOKENS"])
