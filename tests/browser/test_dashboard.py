"""The dashboard in a real headless Chromium against the real services."""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, WebSocket, expect
from websockets.sync.client import ClientConnection, connect

from support.system import System

pytestmark = pytest.mark.browser


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
    form.locator("#payload-raw").check()  # the type's fields give way to the raw JSON
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
    form.locator("#payload-raw").check()
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
            system.start(
                "notifier", "notifier", CONVEYOR_NOTIFIER_PORT=port, CONVEYOR_MAX_CLIENTS="1"
            )
        else:
            system.start("notifier", "notifier", CONVEYOR_NOTIFIER_PORT=port)
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


# -- the create form's payload fields, built from the type's schema (issues 11, 14) ----------

JOBS_DIR = Path(__file__).parents[1] / "e2e" / "jobs"


def field(page: Page, name: str):  # type: ignore[no-untyped-def]
    return page.locator(f'#payload-fields [data-field="{name}"]')


def control(page: Page, name: str):  # type: ignore[no-untyped-def]
    return field(page, name).locator("input, select, textarea")


def submit_form(page: Page, status: int) -> dict[str, Any]:
    with page.expect_response(
        lambda r: r.url.endswith("/api/v1/jobs") and r.request.method == "POST"
    ) as response:
        page.locator('#create-form button[type="submit"]').click()
    assert response.value.status == status, response.value.text()
    body: dict[str, Any] = response.value.json()
    return body


def test_the_create_form_builds_fields_from_the_types_schema(page: Page, system: System) -> None:
    form = page.locator("#create-form")
    form.locator('input[name="type"]').fill("sleep")
    seconds, steps = control(page, "seconds"), control(page, "steps")
    fail, busy = control(page, "fail"), control(page, "busy")
    expect(seconds).to_have_attribute("type", "number")
    expect(seconds).to_have_value("5")
    expect(seconds).to_have_attribute("min", "0")
    expect(seconds).to_have_attribute("max", "86400")
    expect(steps).to_have_value("10")
    expect(steps).to_have_attribute("step", "1")
    expect(field(page, "steps").locator(".pf-help")).to_contain_text("1 to 10000")
    expect(fail).to_have_attribute("type", "checkbox")
    expect(fail).not_to_be_checked()
    expect(busy).to_have_attribute("type", "checkbox")
    expect(page.get_by_label("seconds", exact=True)).to_have_value("5")  # each has its label
    expect(form.locator('textarea[name="payload"]')).to_be_hidden()

    seconds.fill("0.1")
    steps.fill("2")
    job = submit_form(page, 201)
    payload = system.job(job["id"]).json()["payload"]
    assert payload == {"seconds": 0.1, "steps": 2, "fail": False, "busy": False}
    expect(row(page, job["id"])).to_be_visible()


def test_a_value_the_server_refuses_is_shown_at_its_field(page: Page) -> None:
    """The fields leave ranges to the API: what it refuses is shown at the field it names,
    the rest of the form kept."""
    page.locator('#create-form input[name="type"]').fill("sleep")
    seconds, steps = control(page, "seconds"), control(page, "steps")
    seconds.fill("1.5")
    steps.fill("0")  # below its min: the form is novalidate, so it reaches the API
    submit_form(page, 422)
    error = field(page, "steps").locator(".pf-error")
    expect(error).to_contain_text("less than the minimum of 1")
    expect(steps).to_have_attribute("aria-invalid", "true")
    described = steps.get_attribute("aria-describedby") or ""
    assert error.get_attribute("id") in described.split(), described
    expect(steps).to_be_focused()
    expect(page.locator("#create-error")).to_contain_text("payload.steps")
    expect(seconds).to_have_value("1.5")
    expect(seconds).not_to_have_attribute("aria-invalid", "true")
    expect(field(page, "seconds").locator(".pf-error")).to_be_hidden()

    steps.fill("3")  # a change clears the field's mark
    expect(error).to_be_hidden()
    expect(steps).not_to_have_attribute("aria-invalid", "true")

    # past the maximum, set by script with the input's own max removed
    seconds.evaluate(
        """el => { el.removeAttribute("max"); el.value = "100000";
                   el.dispatchEvent(new Event("input", {bubbles: true})); }"""
    )
    submit_form(page, 422)
    expect(field(page, "seconds").locator(".pf-error")).to_contain_text("maximum of 86400")
    expect(seconds).to_have_attribute("aria-invalid", "true")
    expect(steps).not_to_have_attribute("aria-invalid", "true")


def test_the_raw_json_toggle_round_trips(page: Page, system: System) -> None:
    form = page.locator("#create-form")
    form.locator('input[name="type"]').fill("sleep")
    raw, toggle = form.locator('textarea[name="payload"]'), form.locator("#payload-raw")
    control(page, "seconds").fill("0.3")
    control(page, "fail").check()
    toggle.focus()
    page.keyboard.press("Space")  # a checkbox: the keyboard toggles it
    expect(toggle).to_be_checked()
    expect(raw).to_be_visible()
    expect(page.locator("#payload-fields")).to_be_hidden()
    shown = json.loads(raw.input_value())
    assert shown == {"seconds": 0.3, "steps": 10, "fail": True, "busy": False}

    raw.fill('{"seconds": 2, "steps": 3}')
    toggle.uncheck()
    expect(control(page, "seconds")).to_have_value("2")
    expect(control(page, "steps")).to_have_value("3")
    expect(control(page, "fail")).not_to_be_checked()  # left out: the default
    expect(raw).to_be_hidden()
    toggle.check()
    assert json.loads(raw.input_value()) == {"seconds": 2, "steps": 3, "fail": False, "busy": False}

    # what the fields cannot show stays in the raw JSON, which is what is submitted
    raw.fill('{"seconds": 1, "steps": "many"}')
    toggle.click()
    expect(toggle).to_be_checked()
    expect(page.locator("#payload-note")).to_contain_text('steps is "many"')
    expect(raw).to_have_value('{"seconds": 1, "steps": "many"}')
    submit_form(page, 422)
    expect(raw).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#create-error")).to_contain_text("payload.steps")

    raw.fill('{"seconds": 0.2, "steps": 1}')
    toggle.uncheck()
    job = submit_form(page, 201)
    payload = system.job(job["id"]).json()["payload"]
    assert payload == {"seconds": 0.2, "steps": 1, "fail": False, "busy": False}


def test_schemaform_reads_msgspec_and_pydantic_schemas(page: Page) -> None:
    """The pure logic of schemaform.js, in the page: enums (typed or not, behind a $ref),
    optional scalars (anyOf with null), nested structs and arrays as JSON, exclusive bounds,
    and the ways an error names its field."""
    got = page.evaluate(
        """async () => {
      const sf = await import("/dashboard/schemaform.js");
      const msgspec = {type: "object", required: ["color"], properties: {
        mode: {enum: ["fast", "slow"], default: "fast"},
        opt: {anyOf: [{type: "integer", minimum: 1}, {type: "null"}], default: null},
        tags: {type: "array", items: {type: "string"}, default: []},
        inner: {anyOf: [{$ref: "#/$defs/In"}, {type: "null"}], default: null},
        color: {$ref: "#/$defs/Color"}},
        $defs: {In: {type: "object", properties: {a: {type: "integer"}}},
                Color: {enum: ["red", 3]}}};
      const pydantic = {type: "object", properties: {
        x: {type: "number", minimum: 0, exclusiveMaximum: 10, default: 1.0, title: "X",
            description: "the x"},
        n: {type: "integer", exclusiveMinimum: 0, title: "A count"}}};
      const fields = sf.formFields(msgspec);
      const py = sf.formFields(pydantic);
      const names = ["seconds", "a.b"];
      return {
        kinds: Object.fromEntries([...fields, ...py].map((f) => [f.name, f.kind])),
        options: fields.find((f) => f.name === "color").options,
        opt: fields.find((f) => f.name === "opt").attrs,
        x: py[0].attrs, xHelp: py[0].help, n: py[1].attrs, nHelp: py[1].help,
        example: sf.examplePayload(msgspec),
        unshown: sf.fieldStates(fields, {color: 3, opt: "2", zz: 1}).unshown,
        shown: [...sf.fieldStates(fields, {color: 3, tags: ["a"]}).states],
        targets: [{loc: ["body", "payload", "seconds"]}, {field: "payload.a.b[0]"},
                  {field: "$.seconds"}, {field: "max_attempts"}, {field: "payload.other"}]
          .map((e) => sf.errorTarget(e, names)),
      };
    }"""
    )
    assert got["kinds"] == {
        "mode": "select",
        "opt": "integer",
        "tags": "json",
        "inner": "json",
        "color": "select",
        "x": "number",
        "n": "integer",
    }
    assert got["options"] == ["red", 3]
    assert got["opt"] == {"step": "1", "min": "1"}
    assert got["x"] == {"step": "any", "min": "0", "max": "10"}
    assert got["xHelp"] == "the x. at least 0, less than 10"
    assert got["n"] == {"step": "1", "min": "1"}
    assert got["nHelp"] == "A count. a whole number, more than 0"
    assert json.loads(got["example"]) == {"mode": "fast", "opt": None, "tags": [], "inner": None}
    assert got["unshown"] == ['opt is "2"', "zz is not one of its fields"]
    assert dict(got["shown"]) == {
        "mode": "0",
        "opt": "",
        "tags": '["a"]',
        "inner": "null",
        "color": "1",
    }
    assert got["targets"] == [
        {"property": "seconds"},
        {"property": "a.b"},
        {"property": "seconds"},
        {"field": "max_attempts"},
        {"field": "payload"},
    ]


@pytest.fixture
def user_types(system: System) -> Iterator[None]:
    """The system's workers replaced by ones that also load tests/e2e/jobs/user_jobs.py, then
    put back. Both, under their own names: a worker hands a type it does not run back for
    5 s, and the workers test counts two."""
    path = os.pathsep.join(p for p in (str(JOBS_DIR), os.environ.get("PYTHONPATH")) if p)
    workers = [name for name in system.procs if name.startswith("worker-")]
    for name in workers:
        system.stop(name)
        system.start_worker(name, CONVEYOR_JOB_MODULES="user_jobs", PYTHONPATH=path)
    try:
        deadline = time.monotonic() + 20
        while True:
            types = {t["name"]: t for t in system.http.get("/api/v1/types").json()["items"]}
            if set(workers) <= set(types.get("charge-card", {}).get("workers", [])):
                break
            assert time.monotonic() < deadline, system.log(workers[-1])[-2000:]
            time.sleep(0.1)
        yield
    finally:
        for name in workers:
            system.stop(name)
            system.start_worker(name)
        system.wait_ready()


def test_a_user_types_fields(user_types: None, page: Page, system: System) -> None:
    """Types a user's module registers (msgspec and pydantic) get their fields too; the
    page (requested after user_types) loads once they are served."""
    kind = page.locator('#create-form input[name="type"]')
    kind.fill("charge-card")
    card, cents = control(page, "card"), control(page, "cents")
    expect(card).to_have_attribute("type", "text")
    expect(card).to_have_attribute("required", "")
    expect(field(page, "card").locator(".pf-req")).to_have_text("*")
    expect(field(page, "card").locator(".pf-help")).to_contain_text("matching ^[0-9]{4}$")
    expect(cents).to_have_attribute("min", "1")  # exclusiveMinimum 0, an integer

    kind.fill("resize-image")
    url, width = control(page, "url"), control(page, "width")
    expect(width).to_have_value("800")
    expect(width).to_have_attribute("max", "10000")
    submit_form(page, 422)
    expect(field(page, "url").locator(".pf-error")).to_contain_text("required, and missing")
    expect(url).to_have_attribute("aria-invalid", "true")
    url.fill("https://example.com/cat.png")
    job = submit_form(page, 201)
    assert system.job(job["id"]).json()["payload"] == {
        "url": "https://example.com/cat.png",
        "width": 800,
    }
    system.wait_for(job["id"], "completed")  # before its worker goes
