"""The API's token rules as rules (auth.py, ratelimit.py): which paths are open, 401/403, the
principal put in the scope, and the submission bucket. The real API is in
tests/e2e/test_auth.py."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.types import Message

from conveyor_api.auth import Auth, is_open
from conveyor_api.ratelimit import RateLimited, SubmitLimiter
from conveyor_bus.tokens import Principal, Role, Tokens

pytestmark = pytest.mark.unit

OPERATE = "operate-secret-0123456789"
READ = "read-secret-0123456789ab"
TOKENS = Tokens([("alice", "operate", OPERATE), ("dash", "read", READ)])


async def _nothing(*_: Any) -> None:
    return None


def _scope(method: str, path: str, token: str | None) -> dict[str, Any]:
    headers = [(b"authorization", f"Bearer {token}".encode())] if token else []
    return {"type": "http", "method": method, "path": path, "headers": headers}


def refusal(method: str, path: str, token: str | None, tokens: Tokens = TOKENS) -> Any:
    scope = _scope(method, path, token)
    found = Auth(_nothing, tokens).refusal(scope)
    return (found[0] if found else None), scope.get("state", {}).get("principal")


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/healthz",
        "/readyz",
        "/metrics",
        "/api/v1/healthz",
        "/api/v1/readyz",
        "/api/v1/metrics",
        "/dashboard/app.js",
        "/docs",
        "/docs/static/swagger-ui.css",
        "/openapi.json",
    ],
)
def test_probes_metrics_and_the_pages_are_open(path: str) -> None:
    assert is_open(path)
    assert refusal("GET", path, None) == (None, None)


@pytest.mark.parametrize(
    "path", ["/api/v1/jobs", "/api/v1/types", "/api/v1/schedules", "/api/v1/nope", "/dashboardx"]
)
def test_everything_else_needs_a_token(path: str) -> None:
    assert not is_open(path)
    assert refusal("GET", path, None) == (401, None)
    assert refusal("GET", path, "not-a-token-at-all-x") == (401, None)
    assert refusal("GET", path, READ) == (None, Principal("dash", Role.READ))
    assert refusal("GET", path, OPERATE) == (None, Principal("alice", Role.OPERATE))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/jobs"),
        ("POST", "/api/v1/jobs/batch"),
        ("POST", "/api/v1/jobs/01JX/stop"),
        ("POST", "/api/v1/jobs/01JX/restart"),
        ("DELETE", "/api/v1/jobs/01JX"),
        ("POST", "/api/v1/schedules"),
        ("PATCH", "/api/v1/schedules/nightly"),
        ("PUT", "/api/v1/anything"),
    ],
)
def test_a_read_token_may_not_write(method: str, path: str) -> None:
    assert refusal(method, path, READ)[0] == 403
    assert refusal(method, path, OPERATE)[0] is None
    assert refusal(method, path, None)[0] == 401


def test_without_tokens_everyone_is_anonymous_with_every_right() -> None:
    assert refusal("DELETE", "/api/v1/jobs/x", None, Tokens()) == (
        None,
        Principal("anonymous", Role.OPERATE),
    )


async def test_a_refusal_is_a_problem_with_a_bearer_challenge() -> None:
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    await Auth(_nothing, TOKENS)(
        _scope("GET", "/api/v1/jobs", "wrong-token-0123456789"), receive, send
    )
    start = sent[0]
    headers = dict(start["headers"])
    assert start["status"] == 401
    assert headers[b"content-type"] == b"application/problem+json"
    assert headers[b"www-authenticate"] == b'Bearer realm="conveyor", error="invalid_token"'
    assert b"wrong-token" not in sent[1]["body"]


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_bucket_lets_a_burst_through_then_the_rate() -> None:
    clock = Clock()
    limiter = SubmitLimiter(rate=2, burst=3, clock=clock)
    for _ in range(3):
        limiter.admit("alice")
    with pytest.raises(RateLimited, match="at most 2 jobs/s with bursts of 3") as raised:
        limiter.admit("alice")
    assert raised.value.retry_after_s == 1
    limiter.admit("dash")  # a bucket per principal
    clock.now += 0.5  # one more job's worth
    limiter.admit("alice")
    with pytest.raises(RateLimited):
        limiter.admit("alice")
    clock.now += 100  # refills up to the burst, no further
    for _ in range(3):
        limiter.admit("alice")
    with pytest.raises(RateLimited):
        limiter.admit("alice")


def test_a_batch_costs_its_jobs_and_one_bigger_than_the_burst_goes_into_debt() -> None:
    clock = Clock()
    limiter = SubmitLimiter(rate=10, burst=5, clock=clock)
    with pytest.raises(RateLimited):
        limiter.admit("alice", 4)
        limiter.admit("alice", 2)
    limiter = SubmitLimiter(rate=10, burst=5, clock=clock)
    limiter.admit("alice", 25)  # a full bucket lets it in: 20 owed
    with pytest.raises(RateLimited) as raised:
        limiter.admit("alice")
    assert raised.value.retry_after_s == 3  # (1 + 20) / 10, rounded up
    clock.now += 2.2
    limiter.admit("alice")


def test_no_rate_is_no_limit() -> None:
    limiter = SubmitLimiter(rate=0, burst=1)
    for _ in range(10_000):
        limiter.admit("alice", 1000)
