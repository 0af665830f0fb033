"""Poison on the live event log, interleaved with normal jobs: the projector parks each poison
message in ``dead_letters`` and counts it, the notifier skips what it cannot decode without
breaking any client's feed, every normal job completes, and ``conveyor verify --wait`` passes,
listing the parked events. Then the control: verify fails on a hand-edited row and on a job
that does not finish."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
import websockets
from nats.aio.client import Client

from conveyor_bus import DirectGetter
from conveyor_bus.reader import last_event_sequence
from conveyor_db import ReadModel
from conveyor_events import encode_event, names
from conveyor_events import testing as ev
from support.invariants import raw_subject, read_history
from support.system import System

pytestmark = pytest.mark.e2e

NEVER_SUBMITTED = "01KP0000000000000000000001"
UNKNOWN_TYPE_JOB = "01KP0000000000000000000002"
INVALID_JOB = "01KP0000000000000000000003"
NUL_JOB = "01KP0000000000000000000004"
DEEP_JOB = "01KP0000000000000000000005"
GARBAGE_JOB = "01KP0000000000000000000006"
DECODING_KINDS = ("undecodable", "unknown_type", "invalid", "wrong_subject")
"""What the notifier cannot decode (it does not fold, so it forwards impossible transitions,
as the events endpoint shows them)."""


@pytest.fixture(scope="module")
def metered(
    nats_url: str, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    logs = tmp_path_factory.mktemp("logs")
    with System(nats_url, database_url, logs, workers=2, metrics=True) as s:
        yield s
    for name in ("projector", "notifier"):
        text = (logs / f"{name}.log").read_text(errors="replace")
        assert "Traceback" not in text, f"{name} crashed:\n{text[-3000:]}"


async def eventually(check: Any, timeout: float = 15) -> None:
    """Retry ``check()`` (a function that asserts) until it passes or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        await asyncio.sleep(0.2)


async def feed(url: str, frames: list[dict[str, Any]], ready: asyncio.Event) -> None:
    """Collect every frame of the feed, from the start of the log, until cancelled."""
    async with websockets.connect(f"{url}?since=0") as ws:
        ready.set()
        async for raw in ws:
            frames.append(json.loads(raw))


async def test_poison_is_parked_counted_and_skipped_while_normal_jobs_run(
    metered: System, nc: Client, pool: asyncpg.Pool
) -> None:
    js = nc.jetstream()
    poison: dict[int, str] = {}
    jobs: list[str] = []

    async def inject(job_id: str, data: bytes, kind: str) -> None:
        ack = await js.publish(raw_subject(job_id, data), data)
        poison[ack.seq] = kind

    async def submit(**body: Any) -> None:
        job = await asyncio.to_thread(metered.submit, "sleep", payload=body)
        jobs.append(job["id"])

    frames: list[dict[str, Any]] = []
    ready = asyncio.Event()
    listener = asyncio.create_task(feed(metered.ws_url, frames, ready))
    await asyncio.wait_for(ready.wait(), 10)
    try:
        await submit(seconds=0.2, steps=2)
        await inject(GARBAGE_JOB, b"\xff\xfe\x00 not an event", "undecodable")
        await submit(seconds=0.3, steps=3)
        await inject(UNKNOWN_TYPE_JOB, b'{"type": "job.exploded", "job_id": "x"}', "unknown_type")
        schema_invalid = encode_event(ev.submitted(job=INVALID_JOB)).replace(
            b'"max_attempts":1', b'"max_attempts":"many"'
        )
        await inject(INVALID_JOB, schema_invalid, "invalid")
        await submit(seconds=0)
        never_started = encode_event(ev.completed(job=NEVER_SUBMITTED))
        await inject(NEVER_SUBMITTED, never_started, "impossible_transition")
        deep = b'{"type": "job.submitted", "data": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
        await inject(DEEP_JOB, deep, "undecodable")
        nul = encode_event(ev.submitted(job=NUL_JOB))
        nul = nul.replace(b'"seconds":1', b'"seconds":"\\u0000"')  # valid, but not for jsonb
        await inject(NUL_JOB, nul, "unstorable")
        await inject(NEVER_SUBMITTED, encode_event(ev.submitted(job=jobs[0])), "wrong_subject")
        await submit(seconds=0.2, steps=2)
        for job_id in jobs:
            await asyncio.to_thread(metered.wait_for, job_id, "completed")
        # an impossible transition on a live job's subject: started again after completing
        await inject(jobs[0], encode_event(ev.started(2, job=jobs[0])), "impossible_transition")
        await submit(seconds=0)  # after the last poison
        await asyncio.to_thread(metered.wait_for, jobs[-1], "completed")

        # A submission the read model cannot hold is still a job of the log, so a worker ran
        # it (the event is the run command); what it wrote is parked with it, as the job has
        # no row to apply it to.
        async def nul_job_ran() -> None:
            ran = [e.name for e in await read_history(nc, NUL_JOB)]
            assert ran[:2] == ["job.submitted", "job.started"] and ran[-1] == "job.failed", ran

        for _ in range(100):
            with contextlib.suppress(AssertionError):
                await nul_job_ran()
                break
            await asyncio.sleep(0.1)
        await nul_job_ran()
        nul_seqs = await DirectGetter(nc).all_by_subject(names.STREAM, names.job_subjects(NUL_JOB))
        for m in nul_seqs[1:]:
            poison[m.seq] = "impossible_transition"

        # the projector's checkpoint reaches the log's end
        last = await last_event_sequence(DirectGetter(nc))
        assert last > max(poison)
        reads = ReadModel(pool)
        for _ in range(100):
            if await reads.checkpoint() >= last:
                break
            await asyncio.sleep(0.1)
        assert await reads.checkpoint() == last

        # one dead letter per poison message, with its sequence and a reason
        rows = await pool.fetch("SELECT seq, kind, job_id, reason, raw FROM dead_letters")
        assert {r["seq"]: r["kind"] for r in rows} == poison
        assert all(r["reason"] for r in rows)
        garbage = next(r for r in rows if r["job_id"] == GARBAGE_JOB)
        assert bytes(garbage["raw"]) == b"\xff\xfe\x00 not an event"
        assert "not JSON" in garbage["reason"]

        # every normal job completed, and the read model still shows them so
        for job_id in jobs:
            assert metered.job(job_id).json()["status"] == "completed"

        # the projector counted the dead letters by kind and reports its checkpoint
        kinds = Counter(poison.values())

        dead_letters = "conveyor_projector_dead_letters_total"

        def projector_counted() -> None:
            for kind, n in kinds.items():
                assert metered.metric("projector", dead_letters, kind=kind) == n
            assert metered.metric("projector", "conveyor_projector_checkpoint") == last
            applied = metered.metric("projector", "conveyor_projector_events_applied_total")
            assert applied >= 3 * len(jobs)

        await eventually(projector_counted)

        # the notifier counted what it cannot decode
        def notifier_counted() -> None:
            for kind in DECODING_KINDS:
                counted = metered.metric(
                    "notifier", "conveyor_notifier_poison_events_total", kind=kind
                )
                assert counted == kinds[kind], kind

        await eventually(notifier_counted)

        # the live client got every normal job's events, in order, and no undecodable frame
        def feed_complete() -> None:
            done = {f["job_id"] for f in frames if f["type"] == "job.completed"}
            assert set(jobs) <= done

        await eventually(feed_complete)
        undecodable = {seq for seq, kind in poison.items() if kind in DECODING_KINDS}
        seqs = [f["seq"] for f in frames]
        assert seqs == sorted(set(seqs))
        assert not undecodable & set(seqs)
        for job_id in jobs:
            types = [f["type"] for f in frames if f["job_id"] == job_id]
            assert types[0] == "job.submitted" and types.count("job.completed") == 1
        # a client replaying the whole log gets the same frames, poison skipped
        replayed: list[dict[str, Any]] = []
        replay_ready = asyncio.Event()
        replayer = asyncio.create_task(feed(metered.ws_url, replayed, replay_ready))
        await eventually(lambda: _assert_len(replayed, len(frames)))
        replayer.cancel()
        assert replayed == frames[: len(replayed)]
        assert not listener.done(), "the live client's feed broke"
    finally:
        listener.cancel()

    # verify waits for idle, lists the parked events and passes
    verified = metered.conveyor("verify", "--wait", "20")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    for seq, kind in poison.items():
        if kind == "unstorable":  # a valid event: verify cannot judge it without PostgreSQL
            line = rf"^parked unstorable \(a valid event, not checked\): seq {seq} on \S+: \S"
        else:  # poison by verify's own judgement too
            line = rf"^parked: seq {seq} on conveyor\.job\.[\w.]+: {kind}: \S"
        assert re.search(line, verified.stdout, re.MULTILINE), verified.stdout
    assert f"({len(poison)} parked events left out)" in verified.stdout


def _assert_len(frames: list[dict[str, Any]], n: int) -> None:
    assert len(frames) >= n


async def test_verify_fails_on_a_hand_edited_row_and_on_a_job_that_does_not_finish(
    metered: System, pool: asyncpg.Pool
) -> None:
    job = metered.submit("noop")
    metered.wait_for(job["id"], "completed")
    # GET reads your writes from the log, so the row may still lag: edit it once projected
    deadline = time.monotonic() + 15
    while await pool.fetchval("SELECT status FROM jobs WHERE id = $1", job["id"]) != "completed":
        assert time.monotonic() < deadline, "the projector never wrote the completed row"
        await asyncio.sleep(0.05)
    await pool.execute("UPDATE jobs SET progress = 42 WHERE id = $1", job["id"])
    try:
        edited = metered.conveyor("verify")
        assert edited.returncode == 1, edited.stdout
        assert f"differs: {job['id']}.progress: log 100.0, read model 42.0" in edited.stdout
        assert edited.stdout.splitlines()[-1].startswith("FAILED: 0 missing, 0 extra, 1 differing")
    finally:
        await pool.execute("UPDATE jobs SET progress = 100 WHERE id = $1", job["id"])

    slow = metered.submit("sleep", payload={"seconds": 30, "steps": 30})
    metered.wait_for(slow["id"], "running")
    try:
        unfinished = metered.conveyor("verify", "--wait", "1")
        assert unfinished.returncode == 1, unfinished.stdout
        assert f"not terminal after waiting 1 s: {slow['id']} (running)" in unfinished.stdout
        assert "1 jobs not terminal" in unfinished.stdout.splitlines()[-1]
        counted = metered.conveyor("verify")
        assert counted.returncode == 0, counted.stdout
        assert "1 jobs not terminal yet (1 running)" in counted.stdout
    finally:
        assert metered.http.post(f"/api/v1/jobs/{slow['id']}/stop").status_code == 202
        metered.wait_for(slow["id"], "stopped")
