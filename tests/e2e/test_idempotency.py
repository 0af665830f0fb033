"""``Idempotency-Key``: one job per key, however often and however late it is repeated.

The key is recorded in the log itself (``conveyor.idempotency.<hash>``, written in the job's
atomic batch with an expected last subject sequence of 0), not left to JetStream's
``Nats-Msg-Id`` deduplication. To show that, this module's event-log stream is created with a
duplicate window of one second, and the repeats come after JetStream itself has forgotten a
message id (a probe shows it storing the same id twice).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any, cast

import httpx
import pytest
from nats.aio.client import Client

from conveyor_api.schemas import JobIn
from conveyor_api.service import JobService, batch_item_key
from conveyor_api.types import TypeCatalog
from conveyor_bus import BusError, DirectGetter, JetStreamEventStore, connect
from conveyor_bus.topology import api_request, event_log_config
from conveyor_events import decode_event, names
from support.invariants import verify
from support.system import System

pytestmark = pytest.mark.e2e

WINDOW_S = 1.0
CALLS = 100


@pytest.fixture(scope="module")
async def short_window(nats_url: str) -> AsyncIterator[float]:
    """The event-log stream with a duplicate window of ``WINDOW_S``, made before the services
    start (they create only what is missing). On a shared server (``NATS_URL``) the existing
    stream is updated, and put back afterwards."""
    nc = await connect(nats_url, "conveyor-tests")
    config = {**event_log_config(), "duplicate_window": int(WINDOW_S * 10**9)}
    try:
        info: dict[str, Any] | None = await api_request(nc, f"$JS.API.STREAM.INFO.{names.STREAM}")
    except BusError:  # no such stream yet
        info = None
    verb = "UPDATE" if info else "CREATE"
    await api_request(nc, f"$JS.API.STREAM.{verb}.{names.STREAM}", config)
    try:
        yield WINDOW_S
    finally:
        if info:
            await api_request(nc, f"$JS.API.STREAM.UPDATE.{names.STREAM}", info["config"])
        await nc.close()


@pytest.fixture(scope="module")
def system(
    short_window: float, nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with System(nats_url, database_url, tmp_path_factory.mktemp("logs"), workers=1) as s:
        yield s


async def post_all(
    system: System, bodies: list[dict[str, Any]], key: str | None
) -> list[httpx.Response]:
    """Every body at once, each on its own connection, with ``key`` as Idempotency-Key."""
    headers = {"Idempotency-Key": key} if key is not None else {}
    limits = httpx.Limits(max_connections=len(bodies))
    async with httpx.AsyncClient(base_url=system.api_url, timeout=30, limits=limits) as client:
        go = asyncio.Event()

        async def post(body: dict[str, Any]) -> httpx.Response:
            await go.wait()
            return await client.post("/api/v1/jobs", json=body, headers=headers)

        calls = [asyncio.create_task(post(b)) for b in bodies]
        await asyncio.sleep(0.05)
        go.set()
        return await asyncio.gather(*calls)


async def log_counts(nc: Client, key: str) -> tuple[int, int]:
    """(job.submitted events, records of ``key``) in the whole log (a submission is its own
    run command: nothing else is written)."""
    getter = DirectGetter(nc)
    events = await getter.all_by_subject(names.STREAM, names.EVENTS_ALL)
    submitted = sum(decode_event(m.data).name == "job.submitted" for m in events)
    records = len(await getter.all_by_subject(names.STREAM, names.idempotency_subject(key)))
    return submitted, records


async def forgotten_by_jetstream(nc: Client, timeout: float = 10) -> None:
    """Wait until JetStream stores a second message with a ``Nats-Msg-Id`` it has seen: its
    own deduplication has forgotten everything older (the control that the window passed)."""
    js = nc.jetstream()
    probe = {"Nats-Msg-Id": f"probe-{uuid.uuid4()}"}
    subject = f"{names.KEY_PREFIX}.window-probe"
    first = await js.publish(subject, b"probe", headers=probe)
    again = await js.publish(subject, b"probe", headers=probe)
    assert again.duplicate and again.seq == first.seq  # inside the window: deduplicated
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        await asyncio.sleep(WINDOW_S / 2)
        later = await js.publish(subject, b"probe", headers=probe)
        if not later.duplicate:
            assert later.seq > first.seq
            return
    raise AssertionError("JetStream never forgot the probe's message id")


async def test_a_key_sent_100_times_at_once_creates_one_job(system: System, nc: Client) -> None:
    key = f"nightly-{uuid.uuid4()}"
    before = await log_counts(nc, key)

    responses = await post_all(system, [{"type": "noop"}] * CALLS, key)

    assert Counter(r.status_code for r in responses) == {201: 1, 200: CALLS - 1}
    ids = {r.json()["id"] for r in responses}
    assert len(ids) == 1, ids
    [job_id] = ids
    assert {r.headers["location"] for r in responses} == {f"/api/v1/jobs/{job_id}"}
    submitted, records = await log_counts(nc, key)
    assert (submitted - before[0], records) == (1, 1)
    assert [e["type"] for e in system.events(job_id)][:1] == ["job.submitted"]

    # After JetStream's duplicate window: still the one job, nothing written.
    await forgotten_by_jetstream(nc)
    late = await post_all(system, [{"type": "noop"}] * CALLS, key)
    assert Counter(r.status_code for r in late) == {200: CALLS}
    assert {r.json()["id"] for r in late} == {job_id}
    assert await log_counts(nc, key) == (submitted, 1)


async def test_the_count_sees_every_job_without_a_key(system: System, nc: Client) -> None:
    """Control for the counting above: the same burst without the header makes 100 jobs."""
    before = await log_counts(nc, "unused")

    responses = await post_all(system, [{"type": "noop"}] * CALLS, None)

    assert Counter(r.status_code for r in responses) == {201: CALLS}
    submitted, _ = await log_counts(nc, "unused")
    assert submitted - before[0] == CALLS


class _UnguardedRecord(JetStreamEventStore):
    """The event store writing the idempotency record without its expected sequence 0."""

    async def _publish(self, batch: list[tuple[str, bytes, dict[str, str]]]) -> tuple[int, int]:
        unguarded = [
            (subject, data, {} if subject.startswith(names.KEY_PREFIX) else headers)
            for subject, data, headers in batch
        ]
        return await super()._publish(unguarded)


@pytest.mark.parametrize("guarded", [True, False], ids=["record", "control-unguarded"])
async def test_the_record_s_expected_sequence_is_what_makes_one_job(
    nc: Client, guarded: bool
) -> None:
    """The API's submit path in process, 100 times at once with one key: with the record's
    expected last subject sequence 0 there is one job; without it (the control) the requests
    that looked up the key before any record existed each create one."""
    store = JetStreamEventStore(nc) if guarded else _UnguardedRecord(nc)
    unused = cast(Any, None)  # submit needs neither the read model nor the queue
    service = JobService(store, unused, unused, unused, TypeCatalog(store.getter, 15.0))
    key = f"in-process-{uuid.uuid4()}"

    submitted = await asyncio.gather(
        *(service.submit(JobIn(type="noop"), "user:test", key) for _ in range(CALLS))
    )

    created = {s.state.id for s in submitted if s.created}
    assert (len(created) == 1) is guarded, len(created)


async def test_a_repeat_with_another_body_returns_the_first_job(system: System) -> None:
    """docs/reference/rest-api.md, Idempotency: bodies are not compared; a repeat returns the
    job first submitted with the key (200), however different its body; an invalid body is
    refused (422) before the key is looked at, and writes nothing."""
    key = f"report-{uuid.uuid4()}"
    first = system.http.post(
        "/api/v1/jobs",
        json={"type": "sleep", "payload": {"seconds": 0.1, "steps": 1}},
        headers={"Idempotency-Key": key},
    )
    assert first.status_code == 201, first.text
    others: list[dict[str, Any]] = [
        {"type": "noop"},
        {"type": "noop", "priority": "high", "max_attempts": 3},
        {"type": "sleep", "payload": {"seconds": 9}},
    ] * 10

    repeats = await post_all(system, others, key)

    assert {r.status_code for r in repeats} == {200}
    assert {r.json()["id"] for r in repeats} == {first.json()["id"]}
    assert {(r.json()["type"], r.json()["priority"]) for r in repeats} == {("sleep", "regular")}
    bad = system.http.post("/api/v1/jobs", json={"type": "bogus"}, headers={"Idempotency-Key": key})
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"


async def test_a_repeat_after_delete_returns_the_deleted_job(system: System) -> None:
    """docs/reference/rest-api.md, Idempotency: 200 with the job's last state, while
    GET /jobs/{id} answers 404; no second job."""
    key = f"once-{uuid.uuid4()}"
    job = system.http.post("/api/v1/jobs", json={"type": "noop"}, headers={"Idempotency-Key": key})
    system.wait_for(job.json()["id"], "completed")
    assert system.http.delete(f"/api/v1/jobs/{job.json()['id']}").status_code == 204

    again = system.http.post(
        "/api/v1/jobs", json={"type": "noop"}, headers={"Idempotency-Key": key}
    )

    assert again.status_code == 200 and again.json()["id"] == job.json()["id"]
    assert again.json()["status"] == "completed"
    assert system.job(job.json()["id"]).status_code == 404


BATCH = 1000


async def submitted_ids(nc: Client) -> list[str]:
    getter = DirectGetter(nc)
    events = await getter.all_by_subject(names.STREAM, names.EVENTS_ALL)
    return [
        e.job_id for e in map(decode_event, (m.data for m in events)) if e.name == "job.submitted"
    ]


async def test_a_keyed_batch_written_in_part_is_completed_once_by_its_retry(
    system: System, nc: Client
) -> None:
    """A batch of 1,000 jobs with a key is 2,000 messages, written as four atomic batches; if
    NATS goes away between them, the request answers 503 with part of it written. That part
    is made here as such a request leaves it (the first 400 jobs, with their derived keys, by
    the same command handler), then the client's retry completes the batch: the 400 are
    answered as they are, only the other 600 are written, and every later repeat is 200."""
    key = f"import-{uuid.uuid4()}"
    bodies = [{"type": "noop", "payload": {}} for _ in range(BATCH)]
    before = await submitted_ids(nc)
    store = JetStreamEventStore(nc)
    unused = cast(Any, None)
    service = JobService(store, unused, unused, unused, TypeCatalog(store.getter, 15.0))
    now = datetime.now(UTC)
    commands = [await service._command(JobIn(**b), "user:anonymous", now) for b in bodies]
    keys = [batch_item_key(key, n) for n in range(400)]
    await service.commands.submit(commands[:400], keys)  # what the interrupted request wrote

    async with httpx.AsyncClient(base_url=system.api_url, timeout=60) as client:
        retry = await client.post(
            "/api/v1/jobs/batch", json={"jobs": bodies}, headers={"Idempotency-Key": key}
        )
        assert retry.status_code == 201, retry.text
        ids = [job["id"] for job in retry.json()["items"]]
        assert ids[:400] == [c.job_id for c in commands[:400]]
        assert len(set(ids)) == BATCH
        again = await client.post(
            "/api/v1/jobs/batch", json={"jobs": bodies}, headers={"Idempotency-Key": key}
        )
        assert again.status_code == 200, again.text
        assert [job["id"] for job in again.json()["items"]] == ids

    after = await submitted_ids(nc)
    assert sorted(after[len(before) :]) == sorted(ids)  # each job written once, no more


async def test_a_keyed_batch_sent_twice_at_once_writes_each_job_once(
    system: System, nc: Client
) -> None:
    key = f"import-{uuid.uuid4()}"
    bodies = [{"type": "noop"} for _ in range(300)]
    before = await submitted_ids(nc)
    async with httpx.AsyncClient(base_url=system.api_url, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post(
                    "/api/v1/jobs/batch", json={"jobs": bodies}, headers={"Idempotency-Key": key}
                )
                for _ in range(4)
            )
        )
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    answers = {tuple(job["id"] for job in r.json()["items"]) for r in responses}
    assert len(answers) == 1
    [ids] = answers
    after = await submitted_ids(nc)
    assert sorted(after[len(before) :]) == sorted(ids)


def test_the_read_model_equals_the_log(system: System) -> None:
    verify(system)
